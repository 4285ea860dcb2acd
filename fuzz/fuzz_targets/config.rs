//! The configuration file, as `baton config check` and the agent read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = baton_config::parse_str(std::path::Path::new("fuzz.toml"), text);
});
