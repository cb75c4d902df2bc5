//! Fuzz target `repo_full`: a whole repository CAR through verify_repo (small limits, no spilling), slice and stream drivers agreeing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::internal::fuzzing::repo_full(data));
