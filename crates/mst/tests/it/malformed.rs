//! The malformed-tree table: one hand-built tree per rule of the repository
//! spec's MST section, each rejected with its exact error. Trees are built
//! byte by byte (not by our builder), so these cases also stand for trees
//! written by other implementations.

use atrepo_mst::{Completeness, Error, Item, KeyRules, Limits, Records, WalkOptions, Walker};
use atrepo_store::MemoryStore;
use atrepo_verify::drisl::{Encoder, Problem};
use cid::Cid;
use sha2::Digest;

use crate::common::{
    Raw, cid_of, entry_less_node_on_layer_zero, key_on_layer, key_on_layer_after, node, put,
    raw_node, value, walk, walk_with,
};

/// Walks `root` strictly and asserts the error matches.
#[track_caller]
fn check(store: &MemoryStore, root: Cid, expect: impl Fn(&Error) -> bool) {
    match walk(store, root) {
        Ok(leaves) => panic!("accepted a malformed tree with {} leaves", leaves.len()),
        Err(e) => assert!(expect(&e), "wrong error: {e:?}"),
    }
}

/// Two sorted keys on layer 0 that share a long prefix.
fn two_layer0_keys() -> (String, String) {
    let mut keys = vec![key_on_layer(0, 0), key_on_layer(0, 1)];
    keys.sort();
    let b = keys.pop().unwrap();
    (keys.pop().unwrap(), b)
}

fn decode_problem(e: &Error) -> Option<&Problem> {
    match e {
        Error::Decode { error, .. } => Some(&error.problem),
        _ => None,
    }
}

#[test]
fn node_is_not_a_map() {
    let s = MemoryStore::new();
    let root = put(&s, vec![0x80]);
    check(&s, root, |e| matches!(decode_problem(e), Some(Problem::Unexpected { .. })));
}

#[test]
fn node_without_l() {
    let s = MemoryStore::new();
    let mut e = Encoder::new();
    e.map(1).text("e").array(0);
    let root = put(&s, e.into_bytes());
    check(&s, root, |e| matches!(decode_problem(e), Some(Problem::MapLength { found: 1, .. })));
}

#[test]
fn node_with_an_extra_field() {
    let s = MemoryStore::new();
    let mut e = Encoder::new();
    e.map(3).text("e").array(0).text("l").null().text("x").null();
    let root = put(&s, e.into_bytes());
    check(&s, root, |e| matches!(decode_problem(e), Some(Problem::MapLength { found: 3, .. })));
}

#[test]
fn entry_without_t() {
    let s = MemoryStore::new();
    let mut e = Encoder::new();
    e.map(2).text("e").array(1).map(3);
    e.text("k").bytes(key_on_layer(0, 0).as_bytes()).text("p").uint(0).text("v").link(&value(1));
    e.text("l").null();
    let root = put(&s, e.into_bytes());
    check(&s, root, |e| matches!(decode_problem(e), Some(Problem::MapLength { found: 3, .. })));
}

#[test]
fn node_keys_in_non_canonical_order() {
    let s = MemoryStore::new();
    let mut e = Encoder::new();
    e.map(2).text("l").null().text("e").array(0);
    let root = put(&s, e.into_bytes());
    check(&s, root, |e| {
        matches!(decode_problem(e), Some(Problem::UnexpectedKey { expected: "e", .. }))
    });
}

#[test]
fn trailing_bytes_after_the_node() {
    let s = MemoryStore::new();
    let mut bytes = node(None, &[(&key_on_layer(0, 0), value(1), None)]);
    bytes.push(0xf6);
    let root = put(&s, bytes);
    check(&s, root, |e| matches!(decode_problem(e), Some(Problem::TrailingBytes)));
}

#[test]
fn non_minimal_prefix_length() {
    let s = MemoryStore::new();
    let key = key_on_layer(0, 0);
    let good = node(None, &[(&key, value(1), None)]);
    // `p: 0` is `61 70 00`; write it as `61 70 18 00`.
    let at = good.windows(3).position(|w| w == [0x61, b'p', 0x00]).unwrap();
    let mut bad = good.clone();
    bad.splice(at + 2..at + 3, [0x18, 0x00]);
    let root = put(&s, bad);
    check(&s, root, |e| matches!(decode_problem(e), Some(Problem::NotMinimal)));
}

#[test]
fn float_prefix_length() {
    let s = MemoryStore::new();
    let key = key_on_layer(0, 0);
    let good = node(None, &[(&key, value(1), None)]);
    let at = good.windows(3).position(|w| w == [0x61, b'p', 0x00]).unwrap();
    let mut bad = good.clone();
    bad.splice(at + 2..at + 3, [0xf9, 0x00, 0x00]);
    let root = put(&s, bad);
    check(&s, root, |e| matches!(decode_problem(e), Some(Problem::Float)));
}

#[test]
fn subtree_link_not_dag_cbor() {
    let s = MemoryStore::new();
    let raw_child = cid_of(0x55, b"not a node");
    let root = put(&s, raw_node(Some(raw_child), &[]));
    check(&s, root, |e| matches!(decode_problem(e), Some(Problem::UnblessedLink { .. })));
}

/// A record is a DAG-CBOR block: a record link that is raw, CIDv0, or
/// hashed with anything but sha2-256 is a malformed node, found by the
/// node's decoding, whether or not the block it names is present.
#[test]
fn record_link_not_dag_cbor_sha256() {
    let digest = sha2::Sha256::digest(b"a record");
    let sha256 = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
    let sha512 = cid::multihash::Multihash::<64>::wrap(0x13, &[7; 64]).unwrap();
    for bad in [cid_of(0x55, b"a record"), Cid::new_v0(sha256).unwrap(), Cid::new_v1(0x71, sha512)]
    {
        let s = MemoryStore::new();
        let key = key_on_layer(0, 0);
        let root = put(&s, raw_node(None, &[Raw { p: 0, k: key.as_bytes(), t: None, v: bad }]));
        check(&s, root, |e| matches!(decode_problem(e), Some(Problem::UnblessedLink { .. })));
    }
}

#[test]
fn too_many_entries() {
    let s = MemoryStore::new();
    let keys: Vec<String> = (0..201).map(|i| format!("com.example.record/k{i:04}")).collect();
    let entries: Vec<Raw<'_>> =
        keys.iter().map(|k| Raw { p: 0, k: k.as_bytes(), t: None, v: value(1) }).collect();
    let root = put(&s, raw_node(None, &entries));
    check(&s, root, |e| matches!(e, Error::TooManyEntries { limit: 200, found: 201, .. }));
}

#[test]
fn first_prefix_not_zero() {
    let s = MemoryStore::new();
    let key = key_on_layer(0, 0);
    let root = put(&s, raw_node(None, &[Raw { p: 1, k: key.as_bytes(), t: None, v: value(1) }]));
    check(&s, root, |e| matches!(e, Error::FirstPrefixNotZero { found: 1, .. }));
}

#[test]
fn prefix_longer_than_the_previous_key() {
    let s = MemoryStore::new();
    let (a, _) = two_layer0_keys();
    let entries = [
        Raw { p: 0, k: a.as_bytes(), t: None, v: value(1) },
        Raw { p: a.len() as u64 + 1, k: b"x", t: None, v: value(2) },
    ];
    let root = put(&s, raw_node(None, &entries));
    check(
        &s,
        root,
        |e| matches!(e, Error::PrefixTooLong { index: 1, previous_len, .. } if *previous_len == a.len()),
    );
}

// See: https://github.com/bluesky-social/atproto/issues/5429 (non-longest prefix).
#[test]
fn prefix_not_the_longest() {
    let s = MemoryStore::new();
    let (a, b) = two_layer0_keys();
    let longest = atrepo_mst::common_prefix_len(a.as_bytes(), b.as_bytes());
    assert!(longest > 5);
    let entries = [
        Raw { p: 0, k: a.as_bytes(), t: None, v: value(1) },
        Raw { p: 5, k: &b.as_bytes()[5..], t: None, v: value(2) },
    ];
    let root = put(&s, raw_node(None, &entries));
    check(
        &s,
        root,
        |e| matches!(e, Error::PrefixNotLongest { index: 1, prefix: 5, longest: l, .. } if *l == longest),
    );
}

#[test]
fn empty_key() {
    let s = MemoryStore::new();
    let root = put(&s, raw_node(None, &[Raw { p: 0, k: b"", t: None, v: value(1) }]));
    check(&s, root, |e| matches!(e, Error::EmptyKey { index: 0, .. }));
}

#[test]
fn key_longer_than_1024_bytes() {
    let s = MemoryStore::new();
    let key = format!("com.example.record/{}", "a".repeat(1100));
    let root = put(&s, raw_node(None, &[Raw { p: 0, k: key.as_bytes(), t: None, v: value(1) }]));
    check(
        &s,
        root,
        |e| matches!(e, Error::KeyTooLong { len, limit: 1024, .. } if *len == key.len()),
    );
}

#[test]
fn key_without_a_collection() {
    let s = MemoryStore::new();
    let root = put(&s, raw_node(None, &[Raw { p: 0, k: b"no-slash-here", t: None, v: value(1) }]));
    check(&s, root, |e| matches!(e, Error::InvalidKey { key, .. } if key == "no-slash-here"));
}

// See: https://github.com/bluesky-social/atproto/issues/5429 (unnormalized NSID).
#[test]
fn unnormalized_nsid_in_a_key() {
    let s = MemoryStore::new();
    let key = "COM.Example.record/3jzfcijpj2z2a";
    let root = put(&s, raw_node(None, &[Raw { p: 0, k: key.as_bytes(), t: None, v: value(1) }]));
    check(&s, root, |e| matches!(e, Error::InvalidKey { key: k, .. } if k == key));
    // The same key passes lax rules (historical repositories).
    let lax = WalkOptions::default().keys(KeyRules::Lax);
    assert_eq!(walk_with(&s, root, lax).unwrap().len(), 1);
}

#[test]
fn keys_unsorted_within_a_node() {
    let s = MemoryStore::new();
    let (a, b) = two_layer0_keys();
    let root = put(&s, node(None, &[(&b, value(1), None), (&a, value(2), None)]));
    check(
        &s,
        root,
        |e| matches!(e, Error::KeyOrder { key, previous, .. } if *key == a && *previous == b),
    );
}

#[test]
fn duplicate_key_within_a_node() {
    let s = MemoryStore::new();
    let a = key_on_layer(0, 0);
    let root = put(&s, node(None, &[(&a, value(1), None), (&a, value(2), None)]));
    check(&s, root, |e| matches!(e, Error::DuplicateKey { key, .. } if *key == a));
}

#[test]
fn keys_of_two_layers_in_one_node() {
    let s = MemoryStore::new();
    let mut keys = [key_on_layer(0, 0), key_on_layer(1, 0)];
    keys.sort();
    let root = put(&s, node(None, &[(&keys[0], value(1), None), (&keys[1], value(2), None)]));
    // A root has no place to say which key is off its layer: both named.
    check(&s, root, |e| {
        matches!(e, Error::MixedLayers { first, key, .. }
            if *first == keys[0] && *key == keys[1])
    });
}

/// A child holding keys of two layers: its place under its parent says
/// which key is off its layer. A review found the child's first key (the
/// misplaced one) taken as its layer, and the keys that were in place
/// blamed.
#[test]
fn a_key_of_the_wrong_layer_first_in_a_child_is_the_one_named() {
    // A layer-1 root over a layer-0 child holding a layer-1 key `m` and a
    // layer-0 key: `m` first (the child right of the root's key) or last
    // (the child left of it). Either way `m` is named.
    for misplaced_first in [true, false] {
        let s = MemoryStore::new();
        let (child, root, m, l) = if misplaced_first {
            let r = key_on_layer(1, 0);
            let m = key_on_layer_after(1, &r);
            let l = key_on_layer_after(0, &m);
            let child = put(&s, node(None, &[(&m, value(1), None), (&l, value(2), None)]));
            (child, put(&s, node(None, &[(&r, value(3), Some(child))])), m, l)
        } else {
            let l = key_on_layer(0, 0);
            let m = key_on_layer_after(1, &l);
            let r = key_on_layer_after(1, &m);
            let child = put(&s, node(None, &[(&l, value(1), None), (&m, value(2), None)]));
            (child, put(&s, node(Some(child), &[(&r, value(3), None)])), m, l)
        };
        let named = |e: &Error| {
            matches!(e, Error::WrongLayer { cid, key, key_layer: 1, node_layer: 0 }
                if *cid == child && *key == m)
        };
        check(&s, root, named);
        // The same from a diff (against the empty tree) and a proof: each
        // knows the child's layer from its parent.
        let empty = put(&s, node(None, &[]));
        let err = atrepo_mst::diff(&s, empty, &s, root, KeyRules::Strict, &Limits::default())
            .unwrap_err();
        assert!(named(&err), "{err:?}");
        // (The layer-0 key's search path goes down to the child.)
        let err =
            atrepo_mst::prove(&s, root, &l, KeyRules::Strict, &Limits::default()).unwrap_err();
        assert!(named(&err), "{err:?}");
        // And the partial tree that inverts commits, reading the child.
        let err = atrepo_mst::Tree::load(&s, root).and_then(|mut t| t.get(&l)).unwrap_err();
        assert!(named(&err), "{err:?}");
    }
}

// See: https://github.com/bluesky-social/atproto/issues/5429 (key on the wrong layer).
#[test]
fn child_node_on_the_wrong_layer() {
    let s = MemoryStore::new();
    // A layer-0 key directly under a layer-2 node: its node should be on
    // layer 1.
    let low = key_on_layer(0, 0);
    let top = key_on_layer_after(2, &low);
    let child = put(&s, node(None, &[(&low, value(1), None)]));
    let root = put(&s, node(Some(child), &[(&top, value(2), None)]));
    check(
        &s,
        root,
        |e| matches!(e, Error::WrongLayer { cid, key_layer: 0, node_layer: 1, .. } if *cid == child),
    );
}

// See: https://github.com/bluesky-social/atproto/issues/5429 (right-subtree
// key below its bound).
#[test]
fn right_subtree_key_below_its_bound() {
    let bad = BadSubtree::new();
    check(&bad.store, bad.root, |e| bad.is_its_error(e));
}

/// The tree of `right_subtree_key_below_its_bound`: a root (layer 1) with
/// key `top`, whose right subtree `child` holds `low`, below `top`; and
/// `before`, the root without the subtree.
struct BadSubtree {
    store: MemoryStore,
    low: String,
    top: String,
    child: Cid,
    root: Cid,
    before: Cid,
}

impl BadSubtree {
    fn new() -> Self {
        let store = MemoryStore::new();
        let low = key_on_layer(0, 0);
        let top = key_on_layer_after(1, &low);
        let child = put(&store, node(None, &[(&low, value(1), None)]));
        let root = put(&store, node(None, &[(&top, value(2), Some(child))]));
        let before = put(&store, node(None, &[(&top, value(2), None)]));
        BadSubtree { store, low, top, child, root, before }
    }

    /// Whether `e` names the subtree, its key and the bound it breaks.
    fn is_its_error(&self, e: &Error) -> bool {
        matches!(e, Error::KeyOrder { cid, key, previous }
            if *cid == self.child && *key == self.low && *previous == self.top)
    }
}

/// The same tree changed as a partial tree (a commit's proof): the
/// subtree is read only when a change reaches it, and its key range is
/// checked then too (the node rules alone, layer included, pass it).
#[test]
fn right_subtree_key_below_its_bound_in_a_tree_being_changed() {
    let bad = BadSubtree::new();
    let probe = key_on_layer_after(0, &bad.top);
    let load = || atrepo_mst::Tree::load(&bad.store, bad.root).unwrap();
    let err = load().get(&probe).unwrap_err();
    assert!(bad.is_its_error(&err), "{err:?}");
    let err = load().insert(&probe, value(3)).unwrap_err();
    assert!(bad.is_its_error(&err), "{err:?}");
    // Left of the bad subtree nothing reads it.
    assert_eq!(load().get(&bad.low).unwrap(), None);
}

/// The same tree on the "after" side of a diff, which descends only into
/// subtrees that differ and so checks each node's key range itself.
#[test]
fn right_subtree_key_below_its_bound_in_a_diff() {
    let bad = BadSubtree::new();
    let s = &bad.store;
    let err = atrepo_mst::diff(s, bad.before, s, bad.root, KeyRules::Strict, &Limits::default())
        .unwrap_err();
    assert!(bad.is_its_error(&err), "{err:?}");
}

#[test]
fn empty_node_below_the_root() {
    let s = MemoryStore::new();
    let top = key_on_layer(1, 0);
    let empty = put(&s, raw_node(None, &[]));
    let root = put(&s, node(Some(empty), &[(&top, value(1), None)]));
    check(&s, root, |e| matches!(e, Error::EmptyNode { cid } if *cid == empty));
}

#[test]
fn root_that_only_points_to_a_subtree() {
    let s = MemoryStore::new();
    let child = put(&s, node(None, &[(&key_on_layer(0, 0), value(1), None)]));
    let root = put(&s, raw_node(Some(child), &[]));
    check(&s, root, |e| matches!(e, Error::RootOnlyPointer { cid } if *cid == root));
}

#[test]
fn layer_zero_node_with_a_subtree() {
    let s = MemoryStore::new();
    let other = put(&s, node(None, &[(&key_on_layer(0, 5), value(1), None)]));
    let root = put(&s, node(None, &[(&key_on_layer(0, 0), value(2), Some(other))]));
    check(&s, root, |e| matches!(e, Error::ChildBelowZero { cid } if *cid == root));
}

/// An entry-less node one layer below a layer-1 key is on layer 0, so its
/// subtree link would point below layer 0. (Its layer comes from its
/// parent alone; the proof checker applies the same rule, see
/// `proof::an_entry_less_node_on_layer_zero_is_an_error_not_an_absence`.)
#[test]
fn entry_less_node_on_layer_zero_with_a_subtree() {
    let s = MemoryStore::new();
    let (root, pointer, _) = entry_less_node_on_layer_zero(&s);
    check(&s, root, |e| matches!(e, Error::ChildBelowZero { cid } if *cid == pointer));
}

/// A root linking to one child twice (its left link and its first entry's
/// right link); the child is written to `child_in`, the root to `root_in`.
/// Returns the root and the child.
fn shared_subtree(child_in: &MemoryStore, root_in: &MemoryStore) -> (Cid, Cid) {
    let low = key_on_layer(0, 0);
    let first = key_on_layer_after(1, &low);
    let tops = [first.clone(), key_on_layer_after(1, &first)];
    let child = put(child_in, node(None, &[(&low, value(1), None)]));
    let root = put(
        root_in,
        node(Some(child), &[(&tops[0], value(2), Some(child)), (&tops[1], value(3), None)]),
    );
    (root, child)
}

#[test]
fn subtree_shared_by_two_links() {
    let s = MemoryStore::new();
    let (root, child) = shared_subtree(&s, &s);
    check(&s, root, |e| matches!(e, Error::NodeReachedTwice { cid } if *cid == child));
}

// A lenient walk reports a missing subtree wherever it is linked: it was
// never read, so the second link is not "reached twice" (the walk marks a
// node visited before reading it, and unmarks it when it is missing).
#[test]
fn a_missing_subtree_linked_twice_is_missing_twice_when_lenient() {
    let s = MemoryStore::new();
    let (root, child) = shared_subtree(&MemoryStore::new(), &s);
    let lenient = WalkOptions::default().completeness(Completeness::Lenient);
    let items: Vec<Item> = Walker::new(&s, root, lenient).collect::<Result<_, _>>().unwrap();
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(items[0], Item::MissingNode { cid: child });
    assert_eq!(items[2], Item::MissingNode { cid: child });
}

#[test]
fn missing_node() {
    let s = MemoryStore::new();
    let top = key_on_layer(1, 0);
    let absent = cid_of(0x71, b"absent node");
    let root = put(&s, node(Some(absent), &[(&top, value(1), None)]));
    check(&s, root, |e| matches!(e, Error::MissingNode { cid } if *cid == absent));
    // Lenient walks report it and go on.
    let lenient = WalkOptions::default().completeness(Completeness::Lenient);
    let items: Vec<Item> = Walker::new(&s, root, lenient).collect::<Result<_, _>>().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], Item::MissingNode { cid: absent });
    assert!(matches!(&items[1], Item::Leaf { key, .. } if *key == top));
}

#[test]
fn missing_root() {
    let s = MemoryStore::new();
    let absent = cid_of(0x71, b"absent root");
    check(&s, absent, |e| matches!(e, Error::MissingNode { cid } if *cid == absent));
}

#[test]
fn missing_record() {
    let s = MemoryStore::new();
    let key = key_on_layer(0, 0);
    let root = put(&s, node(None, &[(&key, value(1), None)]));
    let strict = WalkOptions::default().records(Records::Check);
    let err = walk_with(&s, root, strict).unwrap_err();
    assert!(matches!(err, Error::MissingRecord { key: k, cid } if k == key && cid == value(1)));
    let lenient = strict.completeness(Completeness::Lenient);
    let items: Vec<Item> = Walker::new(&s, root, lenient).collect::<Result<_, _>>().unwrap();
    assert_eq!(items, vec![Item::MissingRecord { key, cid: value(1) }]);
}

/// Records looked up ahead, a node at a time, are matched to their own
/// entries: in nodes of several entries, missing records among present
/// ones (first, middle, last) are reported for exactly their keys.
#[test]
fn missing_records_among_present_ones() {
    let s = MemoryStore::new();
    let pairs: Vec<(String, u32)> =
        (0..300).map(|i| (format!("app.bsky.feed.post/k{i:04}"), i)).collect();
    let root = atrepo_mst::Builder::new()
        .build(&s, pairs.iter().map(|(k, v)| (k.as_str(), value(*v))))
        .unwrap();
    let missing = |v: u32| v % 3 == 1 || v.is_multiple_of(7);
    for (_, v) in pairs.iter().filter(|(_, v)| !missing(*v)) {
        s.insert(value(*v), atrepo_store::Bytes::from(v.to_be_bytes().to_vec()));
    }
    let expected: Vec<Item> = pairs
        .iter()
        .map(|(key, v)| match missing(*v) {
            true => Item::MissingRecord { key: key.clone(), cid: value(*v) },
            false => Item::Leaf { key: key.clone(), cid: value(*v), record: None },
        })
        .collect();
    let lenient =
        WalkOptions::default().records(Records::Check).completeness(Completeness::Lenient);
    let items: Vec<Item> = Walker::new(&s, root, lenient).collect::<Result<_, _>>().unwrap();
    assert_eq!(items, expected);
    // Fetched, the present ones come with their bytes.
    let fetch = lenient.records(Records::Fetch);
    for (item, (_, v)) in Walker::new(&s, root, fetch).zip(&pairs) {
        match item.unwrap() {
            Item::Leaf { record: Some(bytes), .. } => assert_eq!(bytes[..], v.to_be_bytes()),
            Item::MissingRecord { .. } => assert!(missing(*v)),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn deeper_than_the_cap() {
    let s = MemoryStore::new();
    let low = key_on_layer(0, 0);
    let mid = key_on_layer_after(1, &low);
    let top = key_on_layer_after(2, &mid);
    let l0 = put(&s, node(None, &[(&low, value(1), None)]));
    let l1 = put(&s, node(Some(l0), &[(&mid, value(2), None)]));
    let root = put(&s, node(Some(l1), &[(&top, value(3), None)]));
    assert_eq!(walk(&s, root).unwrap().len(), 3);
    let shallow = WalkOptions::default().limits(Limits::default().max_depth(2));
    let err = walk_with(&s, root, shallow).unwrap_err();
    assert!(matches!(err, Error::TooDeep { limit: 2, .. }), "{err:?}");
}

#[test]
fn empty_tree_is_the_only_empty_node_allowed() {
    let s = MemoryStore::new();
    let root = put(&s, raw_node(None, &[]));
    assert_eq!(walk(&s, root).unwrap(), vec![]);
}
