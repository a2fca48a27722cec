#![no_main]
// The entry is shared with tests/fuzz_regressions.rs: see livemux::fuzzing::pipeline_file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| livemux::fuzzing::pipeline_file(data));
