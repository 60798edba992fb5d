#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solace_functions::fuzzing::parse_message(data));
