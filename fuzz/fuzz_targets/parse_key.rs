#![no_main]

libfuzzer_sys::fuzz_target!(|data: &str| solace_codec::fuzzing::parse_key(data));
