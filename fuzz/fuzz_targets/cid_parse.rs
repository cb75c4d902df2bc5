//! Fuzz target `cid_parse`: a binary CID in strict and permissive mode: accepted CIDs round-trip; strict ones are blessed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::car::internal::fuzzing::cid_parse(data));
