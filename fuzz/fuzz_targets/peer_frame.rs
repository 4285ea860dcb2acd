//! libFuzzer target: see `cases::peer_frame`.
#![no_main]

// Each target uses one of the cases.
#[allow(dead_code)]
#[path = "../cases.rs"]
mod cases;

libfuzzer_sys::fuzz_target!(|data: &[u8]| cases::peer_frame(data));
