//! Fuzz target `event_decode`: firehose frames and bodies: accepted events re-encode to the same event and go through the verifier.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::internal::fuzzing::event_decode(data));
