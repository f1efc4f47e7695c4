#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| spanlens_fuzz::server::ingest_otlp_json(data));
