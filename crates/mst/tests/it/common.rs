//! Helpers shared by the MST tests.

use atrepo_mst::{Item, KeyRules, WalkOptions, Walker, layer};
use atrepo_store::{BlockRead, BlockStore, Bytes, MemoryStore};
use atrepo_verify::drisl::Encoder;
use cid::Cid;
use sha2::Digest;

/// A blessed CID for some bytes.
pub(crate) fn cid_of(codec: u64, bytes: &[u8]) -> Cid {
    let mh = cid::multihash::Multihash::<64>::wrap(0x12, &sha2::Sha256::digest(bytes)).unwrap();
    Cid::new_v1(codec, mh)
}

/// A record CID, distinct per `n`.
pub(crate) fn value(n: u32) -> Cid {
    cid_of(0x71, &n.to_be_bytes())
}

/// The `n`-th valid repository path on `layer` (searching
/// `com.example.record/k<i>`).
pub(crate) fn key_on_layer(layer_wanted: u8, n: usize) -> String {
    (0u64..)
        .map(|i| format!("com.example.record/k{i:06}"))
        .filter(|k| layer(k.as_bytes()) == layer_wanted)
        .nth(n)
        .unwrap()
}

/// Stores a block and returns its CID.
pub(crate) fn put(store: &MemoryStore, bytes: Vec<u8>) -> Cid {
    let cid = cid_of(0x71, &bytes);
    store.put(cid, Bytes::from(bytes)).unwrap();
    cid
}

/// A node entry as written on the wire: prefix length, key suffix, right
/// subtree, value.
pub(crate) struct Raw<'a> {
    pub(crate) p: u64,
    pub(crate) k: &'a [u8],
    pub(crate) t: Option<Cid>,
    pub(crate) v: Cid,
}

/// Encodes a node exactly as given (no prefix compression of our own), in
/// canonical DRISL.
pub(crate) fn raw_node(left: Option<Cid>, entries: &[Raw<'_>]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.map(2).text("e").array(entries.len() as u64);
    for r in entries {
        e.map(4);
        e.text("k").bytes(r.k);
        e.text("p").uint(r.p);
        e.text("t").link_or_null(r.t.as_ref());
        e.text("v").link(&r.v);
    }
    e.text("l").link_or_null(left.as_ref());
    e.into_bytes()
}

/// A canonical node from full keys.
pub(crate) fn node(left: Option<Cid>, entries: &[(&str, Cid, Option<Cid>)]) -> Vec<u8> {
    let entries: Vec<(&[u8], Cid, Option<Cid>)> =
        entries.iter().map(|(k, v, t)| (k.as_bytes(), *v, *t)).collect();
    atrepo_mst::internal::encode_node(left.as_ref(), &entries)
}

/// Walks a tree strictly and returns its keys and values.
pub(crate) fn walk(
    store: &dyn BlockRead,
    root: Cid,
) -> Result<Vec<(String, Cid)>, atrepo_mst::Error> {
    walk_with(store, root, WalkOptions::default().keys(KeyRules::Strict))
}

/// Walks a tree with the given options, expecting leaves only.
pub(crate) fn walk_with(
    store: &dyn BlockRead,
    root: Cid,
    options: WalkOptions,
) -> Result<Vec<(String, Cid)>, atrepo_mst::Error> {
    Walker::new(store, root, options)
        .map(|item| match item? {
            Item::Leaf { key, cid, .. } => Ok((key, cid)),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// The first key on `layer` that sorts after `after`.
pub(crate) fn key_on_layer_after(layer_wanted: u8, after: &str) -> String {
    (0u64..)
        .map(|i| format!("com.example.record/k{i:06}"))
        .find(|k| k.as_str() > after && layer(k.as_bytes()) == layer_wanted)
        .unwrap()
}

/// A tree whose root has one layer-1 key, `top`, and a left link to an
/// entry-less node (so on layer 0) that points to a layer-0 leaf node: a
/// subtree below layer 0. Returns the root, the entry-less node and `top`.
pub(crate) fn entry_less_node_on_layer_zero(store: &MemoryStore) -> (Cid, Cid, String) {
    let low = key_on_layer(0, 0);
    let top = key_on_layer_after(1, &low);
    let leaf = put(store, node(None, &[(&low, value(1), None)]));
    let pointer = put(store, raw_node(Some(leaf), &[]));
    let root = put(store, node(Some(pointer), &[(&top, value(2), None)]));
    (root, pointer, top)
}
