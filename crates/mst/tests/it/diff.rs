//! Diffs: exactly the changed keys, reading only differing subtrees.

use std::collections::BTreeMap;

use atrepo_mst::{Builder, Change, KeyRules, Limits, diff};
use atrepo_store::MemoryStore;
use cid::Cid;
use proptest::prelude::*;

use crate::common::value;

fn build(store: &MemoryStore, pairs: &BTreeMap<String, u32>) -> Cid {
    Builder::new().build(store, pairs.iter().map(|(k, v)| (k, value(*v)))).unwrap()
}

fn expected(a: &BTreeMap<String, u32>, b: &BTreeMap<String, u32>) -> Vec<Change> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let before = a.get(k).map(|v| value(*v));
            let after = b.get(k).map(|v| value(*v));
            (before != after).then(|| Change { key: k.clone(), before, after })
        })
        .collect()
}

fn key() -> impl Strategy<Value = String> {
    ("[a-c]", "[a-z0-9]{1,8}").prop_map(|(c, r)| format!("com.example.{c}/{r}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn diff_lists_exactly_the_changes(
        a in prop::collection::btree_map(key(), 0u32..4, 0..120),
        b in prop::collection::btree_map(key(), 0u32..4, 0..120),
    ) {
        let store = MemoryStore::new();
        let (ra, rb) = (build(&store, &a), build(&store, &b));
        let (changes, _) = diff(&store, ra, &store, rb, KeyRules::Strict, &Limits::default()).unwrap();
        prop_assert_eq!(changes, expected(&a, &b));
    }
}

#[test]
fn a_small_change_reads_few_nodes() {
    let a: BTreeMap<String, u32> =
        (0..4000).map(|i| (format!("app.bsky.feed.post/k{i:05}"), i)).collect();
    let mut b = a.clone();
    b.insert("app.bsky.feed.post/k02000".to_owned(), 99_999);
    let store = MemoryStore::new();
    let (ra, rb) = (build(&store, &a), build(&store, &b));
    let (changes, stats) =
        diff(&store, ra, &store, rb, KeyRules::Strict, &Limits::default()).unwrap();
    assert_eq!(changes.len(), 1);
    // Two paths from root to leaf, a handful of layers each.
    assert!(stats.nodes_read <= 24, "read {} nodes", stats.nodes_read);
}
