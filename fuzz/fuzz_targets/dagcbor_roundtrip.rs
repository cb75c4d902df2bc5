//! Fuzz target `dagcbor_roundtrip`: open DRISL data: accepted input re-encodes identically and holds no float.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::verify::internal::fuzzing::dagcbor_roundtrip(
    data
));
