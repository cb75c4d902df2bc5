//! What a walk tells the store ahead of reading ([`BlockRead::look_ahead`]):
//! a node's children always, its records when they are checked or when
//! [`WalkOptions::records_ahead`] asks, and never anything that changes
//! what the walk yields.

use std::collections::BTreeSet;
use std::sync::Mutex;

use atrepo_mst::{Builder, Event, Records, WalkOptions, Walker};
use atrepo_store::{BlockRead, BlockStore, Bytes, MemoryStore, Result};
use cid::Cid;

use crate::common::put;

/// A `MemoryStore` that remembers every CID it was told of ahead and, if
/// `lies`, says every one of them is stored.
#[derive(Default)]
struct Told {
    store: MemoryStore,
    ahead: Mutex<Vec<Cid>>,
    lies: bool,
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
        if self.lies {
            present.clear();
            present.resize(cids.len(), true);
            return Ok(());
        }
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

/// A leaf as the walk yields it: key, record CID, fetched bytes.
type Leaf = (String, Cid, Option<Bytes>);

/// Walks, returning the leaves, the nodes read and the CIDs the store was
/// told of ahead.
fn walk(told: &Told, root: Cid, options: WalkOptions) -> (Vec<Leaf>, u64, Vec<Cid>) {
    told.ahead.lock().unwrap().clear();
    let mut walker = Walker::new(told, root, options);
    let mut leaves = Vec::new();
    while let Some(event) = walker.next_event().unwrap() {
        match event {
            Event::Leaf { key, cid, record } => leaves.push((key.to_owned(), cid, record)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let nodes = walker.stats().nodes;
    assert!(nodes > 10, "a tree of several nodes");
    (leaves, nodes, std::mem::take(&mut *told.ahead.lock().unwrap()))
}

#[test]
fn records_are_told_ahead_when_checked_or_asked_for_and_the_walk_is_the_same() {
    let (told, root, records) = tree();
    let mut first: Option<Vec<Leaf>> = None;
    for mode in [Records::Skip, Records::Check, Records::Fetch] {
        let mut in_mode: Option<Vec<Leaf>> = None;
        for records_ahead in [false, true] {
            let options = WalkOptions::default().records(mode).records_ahead(records_ahead);
            let (leaves, nodes, ahead) = walk(&told, root, options);
            assert_eq!(leaves.len(), records.len());
            // The same leaves with the same bytes, with or without.
            assert_eq!(*in_mode.get_or_insert_with(|| leaves.clone()), leaves, "{mode:?}");
            let keys = |l: &[Leaf]| l.iter().map(|(k, c, _)| (k.clone(), *c)).collect::<Vec<_>>();
            assert_eq!(keys(first.get_or_insert_with(|| leaves.clone())), keys(&leaves));
            for (key, cid, record) in &leaves {
                match mode {
                    Records::Fetch => {
                        let bytes = record.as_ref().unwrap_or_else(|| panic!("{key}: no bytes"));
                        assert_eq!(crate::common::cid_of(0x71, bytes), *cid, "{key}");
                    }
                    _ => assert!(record.is_none(), "{mode:?} {key}"),
                }
            }
            let told_records: Vec<&Cid> = ahead.iter().filter(|c| records.contains(c)).collect();
            let children: BTreeSet<&Cid> = ahead.iter().filter(|c| !records.contains(c)).collect();
            // Every child is told of once: every node but the root.
            assert_eq!(ahead.len() - told_records.len(), children.len(), "{mode:?}");
            assert_eq!(children.len() as u64, nodes - 1, "{mode:?} {records_ahead}");
            assert!(!children.contains(&root));
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

/// A store whose `look_ahead` says every block is stored, while one
/// record is not: only a checking walk may take that for an answer, so
/// with `records_ahead` a fetching walk still finds the record missing and
/// a skipping walk still never asks.
#[test]
fn a_store_saying_stored_ahead_is_believed_only_by_a_checking_walk() {
    let (told, root, records) = tree();
    // The same tree in a store without one of its records.
    let missing = *records.iter().nth(17).unwrap();
    let lying = Told { lies: true, ..Told::default() };
    told.store
        .scan(&mut |cid, bytes| {
            if *cid != missing {
                lying.store.put(*cid, Bytes::copy_from_slice(bytes))?;
            }
            Ok(())
        })
        .unwrap();
    let outcome = |mode: Records, records_ahead: bool| {
        let options = WalkOptions::default().records(mode).records_ahead(records_ahead);
        Walker::new(&lying, root, options)
            .map(|item| item.map(|_| ()))
            .collect::<Result<Vec<_>, _>>()
    };
    for records_ahead in [false, true] {
        // Skipping never asks for records.
        assert_eq!(outcome(Records::Skip, records_ahead).unwrap().len(), records.len());
        // Fetching reads each record, whatever the store said ahead.
        let err = outcome(Records::Fetch, records_ahead).unwrap_err();
        assert!(matches!(err, atrepo_mst::Error::MissingRecord { cid, .. } if cid == missing));
        // Checking takes the store at its word, as the trait allows.
        assert_eq!(outcome(Records::Check, records_ahead).unwrap().len(), records.len());
    }
}

#[test]
fn records_ahead_is_off_by_default() {
    assert!(!WalkOptions::default().records_ahead);
    assert!(WalkOptions::default().records_ahead(true).records_ahead);
}
