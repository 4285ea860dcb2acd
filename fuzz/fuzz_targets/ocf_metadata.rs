//! libFuzzer target: see `cases::ocf_metadata`.
#![no_main]

// Each target uses one of the cases.
#[allow(dead_code)]
#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::ocf_metadata(data));
