#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| solace_codec::fuzzing::decode_arbitrary(data));
