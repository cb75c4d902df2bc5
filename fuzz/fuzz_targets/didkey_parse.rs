//! Fuzz target `didkey_parse`: did:key, multikey and legacy multibase keys: accepted keys print back exactly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::verify::internal::fuzzing::did_key(data));
