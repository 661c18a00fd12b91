//! Fuzz target: `mr_fuzz::journal` (see its doc) on libFuzzer's inputs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mr_fuzz::journal(data));
