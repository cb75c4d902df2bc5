//! Proofs: presence and absence from a path's blocks alone; a missing
//! subtree is inconclusive, never "absent".

use std::collections::BTreeMap;

use atrepo_mst::{Builder, KeyRules, Limits, ProofOutcome, prove, verify_proof};
use atrepo_store::{BlockStore, MemoryStore};

use crate::common::value;

fn tree() -> (MemoryStore, cid::Cid, BTreeMap<String, u32>) {
    let pairs: BTreeMap<String, u32> =
        (0..500).map(|i| (format!("app.bsky.feed.like/k{:05}", i * 2), i)).collect();
    let store = MemoryStore::new();
    let root = Builder::new().build(&store, pairs.iter().map(|(k, v)| (k, value(*v)))).unwrap();
    (store, root, pairs)
}

fn proof_store(store: &MemoryStore, root: cid::Cid, key: &str) -> MemoryStore {
    let blocks = prove(store, root, key, KeyRules::Strict, &Limits::default()).unwrap();
    let proof = MemoryStore::new();
    proof.write(blocks.into_iter().collect()).unwrap();
    proof
}

#[test]
fn presence_and_absence_from_the_proof_alone() {
    let (store, root, pairs) = tree();
    let limits = Limits::default();
    for i in [0u32, 1, 2, 499, 500, 997, 998, 999] {
        let key = format!("app.bsky.feed.like/k{i:05}");
        let proof = proof_store(&store, root, &key);
        let outcome = verify_proof(&proof, root, &key, KeyRules::Strict, &limits).unwrap();
        let want = match pairs.get(&key) {
            Some(v) => ProofOutcome::Present(value(*v)),
            None => ProofOutcome::Absent,
        };
        assert_eq!(outcome, want, "{key}");
    }
}

#[test]
fn a_missing_subtree_is_inconclusive() {
    let (store, root, _) = tree();
    let key = "app.bsky.feed.like/k00501";
    let blocks = prove(&store, root, key, KeyRules::Strict, &Limits::default()).unwrap();
    assert!(blocks.len() >= 2, "the tree should be deeper than its root");
    // Drop the last node on the path.
    let proof = MemoryStore::new();
    let (dropped, _) = blocks.last().cloned().unwrap();
    proof.write(blocks.into_iter().filter(|(c, _)| *c != dropped).collect()).unwrap();
    let outcome = verify_proof(&proof, root, key, KeyRules::Strict, &Limits::default()).unwrap();
    assert_eq!(outcome, ProofOutcome::Inconclusive { missing: dropped });
}

/// A path through an entry-less node on layer 0 (which can only point
/// below layer 0) is a malformed tree, not an absence: the same rule as
/// the walk's (`malformed::entry_less_node_on_layer_zero_with_a_subtree`).
#[test]
fn an_entry_less_node_on_layer_zero_is_an_error_not_an_absence() {
    let store = MemoryStore::new();
    let (root, pointer, top) = crate::common::entry_less_node_on_layer_zero(&store);
    // A key on layer 0 before `top`: its path goes through the entry-less
    // node.
    let absent = (0..)
        .map(|i| format!("a.b.c/x{i}"))
        .find(|k| atrepo_mst::layer(k.as_bytes()) == 0)
        .unwrap();
    assert!(absent < top);
    let limits = Limits::default();
    let found = verify_proof(&store, root, &absent, KeyRules::Lax, &limits);
    assert!(
        matches!(found, Err(atrepo_mst::Error::ChildBelowZero { cid }) if cid == pointer),
        "{found:?}"
    );
}
