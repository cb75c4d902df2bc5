//! Fuzz target `commit_verify`: commit decode and verify, arbitrary signatures, and signatures made here: no high-S, DER or cross-curve acceptance.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::verify::internal::fuzzing::commit_verify(data));
