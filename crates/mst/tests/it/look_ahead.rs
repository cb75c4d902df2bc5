//! What a walk tells the store ahead of reading ([`BlockRead::look_ahead`]):
//! a node's children always, its records when they are checked or when
//! [`WalkOptions::records_ahead`] asks, and never anything that changes
//! what the walk yields.

use std::collections::BTreeSet;
use std::sync::Mutex;

use atrepo_mst::{Builder, Event, Records, WalkOptions, Walker};
use atrepo_store::{BlockRead, Bytes, MemoryStore, Result};
use cid::Cid;

use crate::common::put;

/// A `MemoryStore` that remembers every CID it was told of ahead.
#[derive(Default)]
struct Told {
    store: MemoryStore,
    ahead: Mutex<Vec<Cid>>,
}

impl BlockRead for Told {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        self.store.get(cid)
    }
    fn has(&self, cid: &Cid) -> Result<bool> {
        self.store.has(cid)
    }
    fn look_ahead(&self, cids: &[Cid], present: &mut Vec<bool>) -> Result<()> {
        self.ahead.lock().unwrap().extend_from_slice(cids);
        self.store.look_ahead(cids, present)
    }
    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        self.store.scan(f)
    }
}

/// A tree of 300 records (several layers), every record stored.
fn tree() -> (Told, Cid, BTreeSet<Cid>) {
    let told = Told::default();
    let mut records = BTreeSet::new();
    let mut pairs = Vec::new();
    for n in 0..300u32 {
        let record = put(&told.store, format!("record {n}").into_bytes());
        records.insert(record);
        pairs.push((format!("com.example.record/k{n:06}"), record));
    }
    let root = Builder::new().build(&told.store, pairs).unwrap();
    (told, root, records)
}

/// Walks, returning the leaves and the CIDs the store was told of ahead.
fn walk(told: &Told, root: Cid, options: WalkOptions) -> (Vec<(String, Cid)>, Vec<Cid>) {
    told.ahead.lock().unwrap().clear();
    let mut walker = Walker::new(told, root, options);
    let mut leaves = Vec::new();
    while let Some(event) = walker.next_event().unwrap() {
        match event {
            Event::Leaf { key, cid, .. } => leaves.push((key.to_owned(), cid)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(walker.stats().nodes > 10, "a tree of several nodes");
    (leaves, std::mem::take(&mut *told.ahead.lock().unwrap()))
}

#[test]
fn records_are_told_ahead_when_checked_or_asked_for_and_the_walk_is_the_same() {
    let (told, root, records) = tree();
    let mut first: Option<Vec<(String, Cid)>> = None;
    for mode in [Records::Skip, Records::Check, Records::Fetch] {
        for records_ahead in [false, true] {
            let options = WalkOptions::default().records(mode).records_ahead(records_ahead);
            let (leaves, ahead) = walk(&told, root, options);
            assert_eq!(leaves.len(), records.len());
            assert_eq!(*first.get_or_insert_with(|| leaves.clone()), leaves, "{mode:?}");
            let told_records: Vec<&Cid> = ahead.iter().filter(|c| records.contains(c)).collect();
            let nodes = ahead.len() - told_records.len();
            // Every child is told of once: every node but the root.
            assert!(nodes > 10, "{mode:?} {records_ahead}: {nodes} children told of");
            if mode == Records::Check || records_ahead {
                // Each record once, when its node is decoded.
                assert_eq!(told_records.len(), records.len(), "{mode:?} {records_ahead}");
                let distinct: BTreeSet<&Cid> = told_records.iter().copied().collect();
                assert_eq!(distinct.len(), records.len());
            } else {
                assert!(
                    told_records.is_empty(),
                    "{mode:?}: {} records told of",
                    told_records.len()
                );
            }
        }
    }
}

#[test]
fn records_ahead_is_off_by_default() {
    assert!(!WalkOptions::default().records_ahead);
    assert!(WalkOptions::default().records_ahead(true).records_ahead);
}
