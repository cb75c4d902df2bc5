//! A strict walk that meets a missing block stays where it was: once the
//! block is supplied, the same step succeeds. This is what lets a reader
//! verify a streaming CAR while its blocks are still arriving.

use std::collections::BTreeMap;

use atrepo_mst::{Builder, Error, Event, Records, WalkOptions, Walker};
use atrepo_store::{BlockRead, MemoryStore};

use crate::common::value;

#[test]
fn walk_resumes_after_each_missing_block() {
    let pairs: BTreeMap<String, u32> =
        (0..600).map(|i| (format!("app.bsky.feed.post/k{i:04}"), i)).collect();
    let full = MemoryStore::new();
    let root = Builder::new().build(&full, pairs.iter().map(|(k, v)| (k, value(*v)))).unwrap();
    for v in pairs.values() {
        full.insert(value(*v), atrepo_store::Bytes::from(v.to_be_bytes().to_vec()));
    }

    // Start with nothing; hand over each block the walk asks for.
    let arriving = MemoryStore::new();
    let options = WalkOptions::default().records(Records::Check);
    let mut walker = Walker::new(&arriving, root, options);
    let (mut keys, mut supplied) = (Vec::new(), 0);
    loop {
        match walker.next_event() {
            Ok(Some(Event::Leaf { key, .. })) => keys.push(key.to_owned()),
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            Ok(None) => break,
            Err(Error::MissingNode { cid } | Error::MissingRecord { cid, .. }) => {
                let bytes = full.get(&cid).unwrap().expect("the full store has every block");
                arriving.insert(cid, bytes);
                supplied += 1;
            }
            Err(e) => panic!("walk failed: {e}"),
        }
    }
    let expected: Vec<String> = pairs.keys().cloned().collect();
    assert_eq!(keys, expected);
    // Every node and every record was asked for exactly once.
    assert_eq!(supplied, full.len());
}

#[test]
fn other_errors_still_end_the_walk() {
    let store = MemoryStore::new();
    let root = crate::common::put(&store, vec![0x80]);
    let mut walker = Walker::new(&store, root, WalkOptions::default());
    assert!(matches!(walker.next_event(), Err(Error::Decode { .. })));
    assert!(matches!(walker.next_event(), Ok(None)));
}
