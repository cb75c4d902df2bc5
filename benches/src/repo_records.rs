//! Deterministic records of one account's repository, for MST benches:
//! keys as a real repository has them (`collection/TID`, TIDs increasing
//! with creation time over about two and a half years), with real record
//! blocks (DAG-CBOR likes, follows, reposts and posts of about 100 B to
//! 2 KB) under blessed sha2-256 CIDs.
//!
//! Collections follow a typical account: about 45% likes, 20% follows,
//! 10% reposts, 25% posts (the mix of [`crate::repo_car`]).

// Counts here are our own small constants (a few hundred thousand at most).
#![allow(clippy::cast_possible_truncation)]

use std::collections::{BTreeMap, HashSet};

use atrepo_car::{DAG_CBOR, blessed_cid};
use cid::Cid;

use crate::repo_car::{SplitMix64, record};

/// One record: its repository path, CID and block.
#[derive(Debug, Clone)]
pub struct Record {
    /// `collection/rkey`, the rkey a TID.
    pub key: String,
    /// The block's CID: CIDv1, dag-cbor, sha2-256.
    pub cid: Cid,
    /// The record's DAG-CBOR bytes.
    pub block: Vec<u8>,
}

/// 2023-05-01T00:00:00Z in microseconds, when the first record is created.
const START: u64 = 1_682_899_200_000_000;
/// About two and a half years, in microseconds, over which `n` records are
/// spread.
const SPAN: u64 = 79_000_000_000_000;

/// `n` records, sorted by key. The same `seed` always gives the same
/// records.
pub fn repo_records(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = SplitMix64(seed);
    // One PDS clock identifier for the whole repository, as one server
    // process writes it.
    let clock = rng.below(1024);
    let step = (SPAN / n.max(1) as u64).max(1);
    let mut micros = START;
    let mut out = Vec::new();
    for _ in 0..n {
        micros += 1 + rng.below(2 * step);
        let (collection, block) = record(&mut rng);
        let key = format!("{collection}/{}", tid(micros, clock));
        out.push(Record { key, cid: blessed_cid(DAG_CBOR, &block), block });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// What [`changed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Keys given a new CID.
    pub updated: usize,
    /// Keys added.
    pub created: usize,
    /// Keys removed.
    pub deleted: usize,
}

impl Changes {
    /// Every changed key.
    pub fn total(&self) -> usize {
        self.updated + self.created + self.deleted
    }
}

/// The pairs of `records` (sorted by key) with `count` keys changed, in
/// equal thirds updated, created and deleted, scattered over the whole key
/// range (the worst case for a diff, which reads every path to a change).
/// New keys are new TIDs in an existing record's collection, new CIDs
/// those of fresh record blocks.
pub fn changed(records: &[Record], count: usize, seed: u64) -> (Vec<(String, Cid)>, Changes) {
    let mut rng = SplitMix64(seed);
    let mut pairs: BTreeMap<String, Cid> = records.iter().map(|r| (r.key.clone(), r.cid)).collect();
    let mut changes = Changes::default();
    let mut touched = HashSet::new();
    let fresh = |rng: &mut SplitMix64| blessed_cid(DAG_CBOR, &record(rng).1);
    while changes.total() < count {
        let Some(at) = records.get(rng.below(records.len().max(1) as u64) as usize) else {
            break;
        };
        // Each key changes at most once, so the diff sees `count` changes.
        if !touched.insert(at.key.as_str()) {
            continue;
        }
        match changes.total() % 3 {
            0 => {
                if let Some(cid) = pairs.get_mut(&at.key) {
                    *cid = fresh(&mut rng);
                    changes.updated += 1;
                }
            }
            1 => {
                // A record created a little after `at`, in its collection.
                let (collection, rkey) = at.key.split_once('/').unwrap_or_default();
                let micros = tid_micros(rkey) + 1 + rng.below(1 << 30);
                let key = format!("{collection}/{}", tid(micros, rng.below(1024)));
                if let std::collections::btree_map::Entry::Vacant(slot) = pairs.entry(key) {
                    slot.insert(fresh(&mut rng));
                    changes.created += 1;
                }
            }
            _ => {
                if pairs.remove(&at.key).is_some() {
                    changes.deleted += 1;
                }
            }
        }
    }
    (pairs.into_iter().collect(), changes)
}

const TID_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// The 13-character base32-sortable TID of a timestamp (microseconds) and
/// a clock identifier (10 bits).
pub fn tid(micros: u64, clock: u64) -> String {
    let v = ((micros << 10) | (clock & 0x3ff)) & 0x7fff_ffff_ffff_ffff;
    (0..13).rev().map(|i| TID_ALPHABET[((v >> (i * 5)) & 31) as usize] as char).collect()
}

/// The timestamp of a TID made by [`tid`].
fn tid_micros(tid: &str) -> u64 {
    let v = tid.bytes().fold(0u64, |acc, c| {
        let digit = TID_ALPHABET.iter().position(|&a| a == c).unwrap_or(0) as u64;
        (acc << 5) | digit
    });
    v >> 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_round_trip_and_sort_by_time() {
        let a = tid(START, 7);
        let b = tid(START + 1, 0);
        assert_eq!(a.len(), 13);
        assert!(a < b);
        assert_eq!(tid_micros(&a), START);
    }

    #[test]
    fn records_are_deterministic_sorted_and_distinct() {
        let a = repo_records(500, 1);
        let b = repo_records(500, 1);
        assert_eq!(
            a.iter().map(|r| &r.key).collect::<Vec<_>>(),
            b.iter().map(|r| &r.key).collect::<Vec<_>>()
        );
        assert!(a.windows(2).all(|w| w[0].key < w[1].key));
        let (pairs, changes) = changed(&a, 30, 2);
        assert_eq!(changes.total(), 30);
        assert_eq!(pairs.len(), 500 + changes.created - changes.deleted);
    }
}
