//! Fuzz target `mst_node_decode`: one MST node under every key rule: accepted nodes re-encode identically.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::mst::internal::fuzzing::mst_node(data));
