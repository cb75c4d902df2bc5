//! Fuzz target `blockstore_model`: operation sequences on a block store (memory, redb, sqlite, sled, spill) against a BTreeMap model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atrepo::store::internal::fuzzing::blockstore_model(data));
