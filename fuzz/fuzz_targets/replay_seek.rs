//! Fuzz target `replay_seek`: see `server::fuzzing::replay_seek`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::replay_seek(data));
