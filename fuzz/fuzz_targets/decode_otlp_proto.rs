#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spanlens_fuzz::decoders::decode_otlp_proto(data));
