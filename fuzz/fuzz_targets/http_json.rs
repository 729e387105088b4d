//! Fuzz target `http_json`: see `server::fuzzing::http_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::http_json(data));
