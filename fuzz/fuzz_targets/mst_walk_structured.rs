//! Fuzz target `mst_walk_structured`: a valid MST built from the input, then mutated: valid trees pass with the builder's root, mutated ones fail with a typed error in bounded reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::mst::internal::fuzzing::mst_walk_structured(
    data
));
