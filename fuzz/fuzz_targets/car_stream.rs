//! Fuzz target `car_stream`: CAR bytes through the slice and stream readers (small limits); both must agree.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::car::internal::fuzzing::car_stream(data));
