//! Fuzz target `car_header`: a bare CAR header: accepted only in canonical form, with blessed roots.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::car::internal::fuzzing::car_header(data));
