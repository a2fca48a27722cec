#![no_main]
// The entry is shared with tests/fuzz_regressions.rs: see livemux::fuzzing::mp4_walker.
libfuzzer_sys::fuzz_target!(|data: &[u8]| livemux::fuzzing::mp4_walker(data));
