//! Fuzz target `join_token`: see `server::fuzzing::join_token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::join_token(data));
