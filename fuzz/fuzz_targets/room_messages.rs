//! Fuzz target `room_messages`: see `server::fuzzing::room_messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::room_messages(data));
