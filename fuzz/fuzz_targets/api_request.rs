//! libFuzzer target: see `cases::api_request`.
#![no_main]

// Each target uses one of the cases.
#[allow(dead_code)]
#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::api_request(data));
