//! Fuzz target `http_headers`: see `server::fuzzing::http_headers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::http_headers(data));
