//! Fuzz target `replay_file`: see `server::fuzzing::replay_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::replay_file(data));
