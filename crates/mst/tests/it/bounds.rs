//! Invariant: hostile trees cannot make a walk do more work than the
//! number of distinct blocks it is given, nor recurse on their depth.
//!
//! The walk keeps an explicit stack capped at `Limits::max_depth` and
//! refuses a node the second time it is reached, so a "DAG bomb" (a node
//! whose every link points at the same child, repeated down the layers,
//! which a naive walker visits exponentially often) fails after touching
//! each block at most once.

use std::sync::atomic::{AtomicU64, Ordering};

use atrepo_mst::{Error, KeyRules, WalkOptions, Walker};
use atrepo_store::{BlockRead, Bytes, MemoryStore};
use cid::Cid;

use crate::common::{key_on_layer, node, put, value};

/// A store that counts reads.
struct Counting<'a> {
    inner: &'a MemoryStore,
    reads: AtomicU64,
}

impl BlockRead for Counting<'_> {
    fn get(&self, cid: &Cid) -> atrepo_store::Result<Option<Bytes>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(cid)
    }
    fn scan(
        &self,
        f: &mut dyn FnMut(&Cid, &[u8]) -> atrepo_store::Result<()>,
    ) -> atrepo_store::Result<()> {
        self.inner.scan(f)
    }
}

#[test]
fn dag_bomb_fails_after_each_block_is_read_once() {
    // Layers 0..=5; each node holds 6 keys whose every link (left and each
    // right) points at the same child: a naive walk would visit 7^5 nodes.
    let store = MemoryStore::new();
    let mut child: Option<Cid> = None;
    let mut blocks = 0;
    for layer in 0..=5u8 {
        let mut keys: Vec<String> = (0..6).map(|n| key_on_layer(layer, n)).collect();
        keys.sort();
        let entries: Vec<(&str, Cid, Option<Cid>)> =
            keys.iter().zip(0..).map(|(k, i)| (k.as_str(), value(i), child)).collect();
        child = Some(put(&store, node(child, &entries)));
        blocks += 1;
    }
    let counting = Counting { inner: &store, reads: AtomicU64::new(0) };
    let options = WalkOptions::default().keys(KeyRules::Strict);
    let err = Walker::new(&counting, child.unwrap(), options).find_map(Result::err).unwrap();
    assert!(matches!(err, Error::NodeReachedTwice { .. } | Error::KeyOrder { .. }), "{err:?}");
    assert!(counting.reads.load(Ordering::Relaxed) <= blocks, "read more blocks than exist");
}

#[test]
fn a_long_chain_of_entry_less_nodes_is_capped() {
    // A valid-looking chain: a layer-L root key, then entry-less nodes down
    // to a layer-0 leaf. With the depth cap below the chain's length the
    // walk stops at the cap, without recursing.
    let store = MemoryStore::new();
    let leaf = key_on_layer(0, 0);
    let top = crate::common::key_on_layer_after(5, &leaf);
    let mut link = put(&store, node(None, &[(&leaf, value(0), None)]));
    for _ in 1..5 {
        link = put(&store, node(Some(link), &[]));
    }
    let root = put(&store, node(Some(link), &[(&top, value(1), None)]));
    let ok = Walker::new(&store, root, WalkOptions::default()).count();
    assert_eq!(ok, 2);
    let capped = WalkOptions::default().limits(atrepo_mst::Limits::default().max_depth(4));
    let err = Walker::new(&store, root, capped).find_map(Result::err).unwrap();
    assert!(matches!(err, Error::TooDeep { limit: 4, .. }), "{err:?}");
}
