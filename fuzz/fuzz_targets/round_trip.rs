#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solace_codec::fuzzing::round_trip(data));
