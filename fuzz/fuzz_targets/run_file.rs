//! Fuzz target: `mr_fuzz::run_file` (see its doc) on libFuzzer's inputs.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mr_fuzz::run_file(data));
