//! Sync 1.1 inversion: undoing a commit's operations on its tree gives the
//! tree before the commit.

use std::collections::BTreeMap;

use atrepo_mst::{Builder, Error, KeyRules, Limits, Op, invert};
use atrepo_store::MemoryStore;
use cid::Cid;
use proptest::prelude::*;

use crate::common::value;

fn build(store: &MemoryStore, pairs: &BTreeMap<String, u32>) -> Cid {
    Builder::new().build(store, pairs.iter().map(|(k, v)| (k, value(*v)))).unwrap()
}

fn key() -> impl Strategy<Value = String> {
    ("[a-c]", "[a-z0-9]{1,8}").prop_map(|(c, r)| format!("com.example.{c}/{r}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inverting_a_commit_gives_the_previous_root(
        before in prop::collection::btree_map(key(), 0u32..1000, 0..100),
        changes in prop::collection::btree_map(key(), prop::option::of(1000u32..2000), 1..12),
    ) {
        let mut after = before.clone();
        let mut ops = Vec::new();
        for (k, change) in &changes {
            match (before.get(k), change) {
                (None, Some(v)) => {
                    after.insert(k.clone(), *v);
                    ops.push(Op::Create { key: k.clone(), cid: value(*v) });
                }
                (Some(old), Some(v)) => {
                    after.insert(k.clone(), *v);
                    ops.push(Op::Update { key: k.clone(), cid: value(*v), prev: value(*old) });
                }
                (Some(old), None) => {
                    after.remove(k);
                    ops.push(Op::Delete { key: k.clone(), prev: value(*old) });
                }
                (None, None) => {}
            }
        }
        let store = MemoryStore::new();
        let (root_before, root_after) = (build(&store, &before), build(&store, &after));
        let inverted = invert(&store, root_after, &ops, KeyRules::Strict, &Limits::default()).unwrap();
        prop_assert_eq!(inverted, root_before);
        // Order of operations does not matter.
        ops.reverse();
        let again = invert(&store, root_after, &ops, KeyRules::Strict, &Limits::default()).unwrap();
        prop_assert_eq!(again, root_before);
    }
}

#[test]
fn an_operation_that_does_not_match_is_refused() {
    let store = MemoryStore::new();
    let pairs: BTreeMap<String, u32> = [("com.example.a/x".to_owned(), 1)].into();
    let root = build(&store, &pairs);
    let ops = [Op::Create { key: "com.example.a/x".to_owned(), cid: value(2) }];
    let err = invert(&store, root, &ops, KeyRules::Strict, &Limits::default()).unwrap_err();
    assert!(matches!(err, Error::OpMismatch { key, .. } if key == "com.example.a/x"));
    let ops = [Op::Delete { key: "com.example.a/x".to_owned(), prev: value(1) }];
    let err = invert(&store, root, &ops, KeyRules::Strict, &Limits::default()).unwrap_err();
    assert!(matches!(err, Error::OpMismatch { .. }));
}

#[test]
fn a_missing_proof_node_is_reported() {
    let full = MemoryStore::new();
    let pairs: BTreeMap<String, u32> =
        (0..300).map(|i| (format!("com.example.a/k{i:04}"), i)).collect();
    let root = build(&full, &pairs);
    // Only the root node: deeper nodes are missing.
    let partial = MemoryStore::new();
    let bytes = atrepo_store::BlockRead::get(&full, &root).unwrap().unwrap();
    partial.insert(root, bytes);
    let ops = [Op::Create { key: "com.example.a/k0150".to_owned(), cid: value(150) }];
    let err = invert(&partial, root, &ops, KeyRules::Strict, &Limits::default()).unwrap_err();
    assert_eq!(err.kind(), atrepo_mst::ErrorKind::Missing, "{err:?}");
}
