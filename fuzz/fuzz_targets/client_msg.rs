//! Fuzz target `client_msg`: see `server::fuzzing::client_msg`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::client_msg(data));
