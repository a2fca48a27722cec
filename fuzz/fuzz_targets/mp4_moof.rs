#![no_main]
// The entry is shared with tests/fuzz_regressions.rs: see livemux::fuzzing::mp4_moof.
libfuzzer_sys::fuzz_target!(|data: &[u8]| livemux::fuzzing::mp4_moof(data));
