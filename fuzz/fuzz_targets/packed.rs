//! Fuzz target: `mr_fuzz::packed` (see its doc) on libFuzzer's inputs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mr_fuzz::packed(data));
