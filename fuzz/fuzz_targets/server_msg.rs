//! Fuzz target `server_msg`: see `server::fuzzing::server_msg`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::server_msg(data));
