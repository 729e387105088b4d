//! Fuzz target `map_json`: see `server::fuzzing::map_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::map_json(data));
