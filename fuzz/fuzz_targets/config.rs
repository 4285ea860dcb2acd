//! libFuzzer target: see `cases::config`.
#![no_main]

// Each target uses one of the cases.
#[allow(dead_code)]
#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::config(data));
