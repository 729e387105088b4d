//! Fuzz target `mdns_announcement`: see `server::fuzzing::mdns_announcement`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| server::fuzzing::mdns_announcement(data));
