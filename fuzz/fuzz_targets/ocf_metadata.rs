//! The meta-data XML an OCF agent prints, read for its advised timeouts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|xml: &str| {
    let _ = baton_resources::ocf::parse_actions(xml);
});
