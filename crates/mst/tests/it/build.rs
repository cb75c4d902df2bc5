//! Building trees: the same set of pairs gives the same root whatever the
//! order or the way (bulk builder, one insert at a time, inserts then
//! removals), and every built tree walks back strictly.

use std::collections::BTreeMap;

use atrepo_mst::{Builder, Tree};
use atrepo_store::{BlockStore, MemoryStore};
use cid::Cid;
use proptest::prelude::*;

use crate::common::{cid_of, value, walk};

/// The CID of the empty MST node `{e: [], l: null}`, as every atproto
/// implementation computes it.
const EMPTY_ROOT: &str = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";

fn keys() -> impl Strategy<Value = BTreeMap<String, u32>> {
    let key = ("[a-z]{1,3}", "[a-z0-9]{1,10}")
        .prop_map(|(coll, rkey)| format!("com.example.{coll}/{rkey}"));
    prop::collection::btree_map(key, any::<u32>(), 0..160)
}

fn build(store: &MemoryStore, pairs: &BTreeMap<String, u32>) -> Cid {
    Builder::new().build(store, pairs.iter().map(|(k, v)| (k, value(*v)))).unwrap()
}

#[test]
fn empty_tree_has_the_well_known_root() {
    let store = MemoryStore::new();
    let root = Builder::new().build(&store, std::iter::empty::<(&str, Cid)>()).unwrap();
    assert_eq!(root.to_string(), EMPTY_ROOT);
    assert_eq!(Tree::new(&store).root().to_string(), EMPTY_ROOT);
}

#[test]
fn duplicate_keys_are_refused() {
    let store = MemoryStore::new();
    let k = "com.example.record/a";
    let err = Builder::new().build(&store, [(k, value(1)), (k, value(2))]).unwrap_err();
    assert!(matches!(err, atrepo_mst::Error::BadKey { key, .. } if key == k));
}

/// Values a node cannot hold as record links (raw, CIDv0, sha2-512) are
/// refused by the builder and by tree inserts, before any node is written:
/// the nodes would be ones the walk refuses.
#[test]
fn record_links_a_node_cannot_hold_are_refused() {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(b"a record");
    let sha256 = cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
    let sha512 = cid::multihash::Multihash::<64>::wrap(0x13, &[7; 64]).unwrap();
    let k = "com.example.record/a";
    for bad in [cid_of(0x55, b"a record"), Cid::new_v0(sha256).unwrap(), Cid::new_v1(0x71, sha512)]
    {
        let store = MemoryStore::new();
        let err = Builder::new().build(&store, [(k, value(1)), ("com.example.record/b", bad)]);
        let err = err.unwrap_err();
        assert!(matches!(&err, atrepo_mst::Error::BadValue { value, .. } if *value == bad));
        assert_eq!(store.usage().unwrap().blocks, 0);
        let mut tree = Tree::new(&store);
        let err = tree.insert(k, bad).unwrap_err();
        assert!(matches!(&err, atrepo_mst::Error::BadValue { key, .. } if key == k));
        assert_eq!(err.kind(), atrepo_mst::ErrorKind::Malformed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn builder_walks_back_in_order(pairs in keys()) {
        let store = MemoryStore::new();
        let root = build(&store, &pairs);
        let walked = walk(&store, root).unwrap();
        let expected: Vec<(String, Cid)> = pairs.iter().map(|(k, v)| (k.clone(), value(*v))).collect();
        prop_assert_eq!(walked, expected);
    }

    #[test]
    fn insertion_order_does_not_matter(
        pairs in keys(),
        order in any::<u64>(),
    ) {
        let store = MemoryStore::new();
        let root = build(&store, &pairs);
        let mut shuffled: Vec<_> = pairs.iter().collect();
        // A deterministic shuffle from the seed.
        let mut state = order | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap());
        }
        let mut tree = Tree::new(&store);
        for (k, v) in shuffled {
            prop_assert_eq!(tree.insert(k, value(*v)).unwrap(), None);
        }
        prop_assert_eq!(tree.root(), root);
    }

    #[test]
    fn removing_keys_gives_the_tree_of_the_rest(
        pairs in keys(),
        drop_mask in any::<u64>(),
    ) {
        let store = MemoryStore::new();
        let root = build(&store, &pairs);
        let mut tree = Tree::load(&store, root).unwrap();
        let mut rest = pairs.clone();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if drop_mask >> (i % 64) & 1 == 1 {
                prop_assert_eq!(tree.remove(k).unwrap(), Some(value(*v)));
                rest.remove(k);
            }
        }
        let expected = build(&MemoryStore::new(), &rest);
        let (got, blocks) = tree.root_and_new_blocks();
        prop_assert_eq!(got, expected);
        // The new blocks are enough, with the old ones, to walk the result.
        for (cid, bytes) in blocks {
            BlockStore::put(&store, cid, bytes).unwrap();
        }
        prop_assert_eq!(walk(&store, got).unwrap().len(), rest.len());
    }

    #[test]
    fn updates_change_only_values(pairs in keys(), bump in 1u32..1000) {
        prop_assume!(!pairs.is_empty());
        let store = MemoryStore::new();
        let root = build(&store, &pairs);
        let mut tree = Tree::load(&store, root).unwrap();
        let mut updated = pairs.clone();
        for (k, v) in updated.iter_mut().step_by(3) {
            let old = *v;
            *v = v.wrapping_add(bump);
            prop_assert_eq!(tree.insert(k, value(*v)).unwrap(), Some(value(old)));
        }
        prop_assert_eq!(tree.root(), build(&MemoryStore::new(), &updated));
        for (k, v) in &updated {
            prop_assert_eq!(tree.get(k).unwrap(), Some(value(*v)));
        }
        prop_assert_eq!(tree.get("com.example.zzzz/absent").unwrap(), None);
    }
}
