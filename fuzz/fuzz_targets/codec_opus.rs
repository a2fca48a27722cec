#![no_main]
// The entry is shared with tests/fuzz_regressions.rs: see livemux::fuzzing::codec_opus.
libfuzzer_sys::fuzz_target!(|data: &[u8]| livemux::fuzzing::codec_opus(data));
