#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spanlens_fuzz::normalise::normalize_otlp_proto(data));
