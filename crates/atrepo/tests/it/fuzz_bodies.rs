//! The fuzz bodies (each crate's `internal::fuzzing`, which the cargo-fuzz
//! targets in `fuzz/` call) as bounded property tests, so that `cargo
//! test` and CI run them with nothing extra installed.
//!
//! Each body gets a fixed number of inputs: arbitrary bytes, or one of its
//! committed seeds (`fuzz/corpus/<target>`) with a few random edits
//! (overwrite, insert, delete, truncate), which reaches far deeper than
//! random bytes. Every committed seed is also replayed as is. Cases per
//! body: `PROPTEST_CASES` if set, else the count beside each test (the
//! slow bodies, which open disk stores or verify whole repositories, get
//! fewer). Long campaigns are `cargo xtask fuzz`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use atrepo::store::internal::fuzzing as store_fuzz;
use atrepo::{car, mst, verify};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

/// The committed seeds of a target, sorted by name.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("{target}: no seed corpus: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// One edit: at a position (scaled to the input), an action and a byte.
type Edit = (u16, u8, u8);

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for &(at, action, byte) in edits {
        let at = if data.is_empty() { 0 } else { usize::from(at) % (data.len() + 1) };
        match action % 5 {
            0 | 1 if at < data.len() => data[at] = byte,
            2 => data.insert(at, byte),
            3 if at < data.len() => {
                data.remove(at);
            }
            4 => data.truncate(at),
            _ => data.push(byte),
        }
    }
    data
}

/// Inputs for a target: a seed with edits (most of the time), or
/// arbitrary bytes.
fn inputs(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "{target}: empty seed corpus");
    let n = seeds.len();
    prop_oneof![
        3 => (0..n, prop::collection::vec(any::<Edit>(), 0..6))
            .prop_map(move |(i, edits)| apply(seeds[i].clone(), &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

macro_rules! fuzz_body {
    ($name:ident, $target:literal, $cases:expr, $body:path) => {
        mod $name {
            use super::*;

            #[test]
            fn replays_every_seed() {
                for seed in seeds($target) {
                    $body(&seed);
                }
            }

            proptest! {
                #![proptest_config(config($cases))]
                #[test]
                fn edited_seeds_and_random_bytes(data in inputs($target)) {
                    $body(&data);
                }
            }
        }
    };
}

fuzz_body!(car_stream, "car_stream", 1000, car::internal::fuzzing::car_stream);
fuzz_body!(car_header, "car_header", 2000, car::internal::fuzzing::car_header);
fuzz_body!(cid_parse, "cid_parse", 2000, car::internal::fuzzing::cid_parse);
fuzz_body!(
    dagcbor_roundtrip,
    "dagcbor_roundtrip",
    2000,
    verify::internal::fuzzing::dagcbor_roundtrip
);
fuzz_body!(mst_node_decode, "mst_node_decode", 2000, mst::internal::fuzzing::mst_node);
fuzz_body!(
    mst_walk_structured,
    "mst_walk_structured",
    500,
    mst::internal::fuzzing::mst_walk_structured
);
fuzz_body!(commit_verify, "commit_verify", 256, verify::internal::fuzzing::commit_verify);
fuzz_body!(didkey_parse, "didkey_parse", 2000, verify::internal::fuzzing::did_key);
fuzz_body!(syntax_parse, "syntax_parse", 2000, verify::internal::fuzzing::syntax);
fuzz_body!(event_decode, "event_decode", 500, atrepo::internal::fuzzing::event_decode);
fuzz_body!(repo_full, "repo_full", 500, atrepo::internal::fuzzing::repo_full);
fuzz_body!(blockstore_model, "blockstore_model", 64, store_fuzz::blockstore_model);

/// Every compiled store target, each with every seed's operations (the
/// proptest above picks targets by the first byte; this makes sure each
/// one runs).
#[test]
fn blockstore_model_runs_on_every_compiled_target() {
    let targets = store_fuzz::Target::compiled();
    // Memory, plus redb and a redb-backed spill store with redb (one of
    // the facade's default features).
    let least = if cfg!(feature = "redb") { 3 } else { 1 };
    assert!(targets.len() >= least, "{targets:?}");
    for target in targets {
        for seed in seeds("blockstore_model") {
            store_fuzz::blockstore_model_on(target, &seed);
        }
    }
}
