#![no_main]
// The entry is shared with tests/fuzz_regressions.rs: see livemux::fuzzing::mkv_finalize.
libfuzzer_sys::fuzz_target!(|data: &[u8]| livemux::fuzzing::mkv_finalize(data));
