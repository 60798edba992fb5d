#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solace_functions::fuzzing::validate_request(data));
