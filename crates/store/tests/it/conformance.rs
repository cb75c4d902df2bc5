//! The backend conformance suite: every case is written once, against
//! `&dyn BlockStore`, and instantiated per backend by macros.
//!
//! - `conformance_suite!(open)` expands to one `#[test]` per write case and
//!   per read case, each calling `open()` for a fresh, empty store.
//! - `conformance_suite!(open, reopen = open_at)` adds the durable cases,
//!   which close a store and open it again from the same path with
//!   `open_at(dir)`. Only backends that keep data across a reopen opt in.
//! - `read_suite!(open_with)` expands to the read cases alone, for stores
//!   that cannot be written but can be opened over a given set of blocks
//!   (a CAR file). Writable backends run them too, filled by writes.
//!
//! A backend is done when it passes its instantiation unchanged.

// The durable cases have no taker in builds without a disk backend.
#![cfg_attr(
    not(any(feature = "redb", feature = "sqlite", feature = "sled")),
    allow(dead_code, reason = "the durable cases need a disk backend")
)]

use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use atrepo_store::{Batch, BlockStore, Bytes, Error};
use cid::Cid;
use sha2::Digest;

/// Sets its flag when dropped. Readers that loop until the flag is set stop
/// even when the writing side panics, so the test fails instead of hanging.
pub(crate) struct SetOnDrop<'a>(pub(crate) &'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A store together with the temporary folder its files live in.
pub(crate) struct Scratch<S> {
    pub(crate) store: S,
    // Dropped after `store`, so files are closed before the folder goes.
    pub(crate) _dir: Option<tempfile::TempDir>,
}

impl<S> Scratch<S> {
    /// A store with no files.
    #[allow(dead_code, reason = "only the in-memory instantiations use it")]
    pub(crate) fn memory(store: S) -> Self {
        Scratch { store, _dir: None }
    }

    /// A store whose files live in `dir`.
    #[allow(dead_code, reason = "only the disk instantiations use it")]
    pub(crate) fn in_dir(store: S, dir: tempfile::TempDir) -> Self {
        Scratch { store, _dir: Some(dir) }
    }
}

impl<S> Deref for Scratch<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.store
    }
}

/// A real dag-cbor CID for `bytes`.
pub(crate) fn cid_of(bytes: &[u8]) -> Cid {
    cid_with(0x71, bytes)
}

/// A blessed CID with the given codec for `bytes`.
pub(crate) fn cid_with(codec: u64, bytes: &[u8]) -> Cid {
    let digest = sha2::Sha256::digest(bytes);
    let mh = multihash::Multihash::<64>::wrap(0x12, &digest).expect("32-byte digest fits");
    Cid::new_v1(codec, mh)
}

/// A CIDv0 for `bytes` (not blessed by atproto, but a valid CID).
pub(crate) fn cid_v0_of(bytes: &[u8]) -> Cid {
    let digest = sha2::Sha256::digest(bytes);
    let mh = multihash::Multihash::<64>::wrap(0x12, &digest).expect("32-byte digest fits");
    Cid::new_v0(mh).expect("sha2-256 multihash")
}

/// A CIDv1 with a sha2-512 digest of `bytes` (not blessed, but valid).
pub(crate) fn cid_sha512_of(bytes: &[u8]) -> Cid {
    let digest = sha2::Sha512::digest(bytes);
    let mh = multihash::Multihash::<64>::wrap(0x13, &digest).expect("64-byte digest fits");
    Cid::new_v1(0x71, mh)
}

/// A block with its CID.
pub(crate) fn block(content: &[u8]) -> (Cid, Bytes) {
    (cid_of(content), Bytes::copy_from_slice(content))
}

/// `n` distinct blocks whose contents start with `tag`.
pub(crate) fn blocks(tag: &str, n: u32) -> Vec<(Cid, Bytes)> {
    (0..n).map(|i| block(format!("{tag}-{i}").as_bytes())).collect()
}

/// A deterministic pseudo-random block of `len` bytes.
pub(crate) fn sized_block(seed: u32, len: usize) -> (Cid, Bytes) {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let content: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect();
    block(&content)
}

fn two_mib(seed: u32) -> (Cid, Bytes) {
    sized_block(seed, 2 * 1024 * 1024)
}

/// The largest block a CAR section holds under the reader's default limits:
/// 2 MiB for CID and block together.
fn largest_car_block() -> (Cid, Bytes) {
    sized_block(7, 2 * 1024 * 1024 - 36)
}

fn sorted_cids(blocks: &[(Cid, Bytes)]) -> Vec<Cid> {
    let mut cids: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
    cids.sort();
    cids.dedup();
    cids
}

fn scanned(store: &dyn BlockStore) -> Vec<(Cid, Vec<u8>)> {
    let mut seen = Vec::new();
    store
        .scan(&mut |cid, bytes| {
            seen.push((*cid, bytes.to_vec()));
            Ok(())
        })
        .unwrap();
    seen.sort();
    seen
}

fn payload(blocks: &[(Cid, Bytes)]) -> u64 {
    blocks.iter().map(|(_, b)| b.len() as u64).sum()
}

#[track_caller]
fn assert_holds(store: &dyn BlockStore, blocks: &[(Cid, Bytes)]) {
    for (cid, bytes) in blocks {
        assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes), "get {cid}");
        assert!(store.has(cid).unwrap(), "has {cid}");
    }
}

#[track_caller]
fn assert_usage(store: &dyn BlockStore, blocks: u64, payload: u64) {
    let usage = store.usage().unwrap();
    assert_eq!((usage.blocks, usage.payload_bytes), (blocks, payload));
}

// ---------------------------------------------------------------------------
// Write cases: a fresh, empty, writable store each.

pub(crate) fn put_then_get(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"hello");
    store.put(cid, bytes.clone()).unwrap();
    assert_eq!(store.get(&cid).unwrap(), Some(bytes));
    assert!(store.has(&cid).unwrap());
}

pub(crate) fn missing_is_none(store: &dyn BlockStore) {
    let (cid, _) = block(b"absent");
    assert_eq!(store.get(&cid).unwrap(), None);
    assert!(!store.has(&cid).unwrap());
}

pub(crate) fn missing_stays_none_among_others(store: &dyn BlockStore) {
    store.write(blocks("present", 50).into_iter().collect()).unwrap();
    for (cid, _) in blocks("absent", 50) {
        assert_eq!(store.get(&cid).unwrap(), None);
        assert!(!store.has(&cid).unwrap());
    }
}

pub(crate) fn duplicate_put_is_idempotent(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"twice");
    store.put(cid, bytes.clone()).unwrap();
    store.put(cid, bytes.clone()).unwrap();
    assert_usage(store, 1, bytes.len() as u64);
    assert_eq!(store.get(&cid).unwrap(), Some(bytes));
}

pub(crate) fn conflicting_put_keeps_first_bytes(store: &dyn BlockStore) {
    // The caller's bug (CIDs are hashes), but the trait says what happens.
    let (cid, first) = block(b"first");
    store.put(cid, first.clone()).unwrap();
    store.put(cid, Bytes::from_static(b"second, and longer")).unwrap();
    assert_eq!(store.get(&cid).unwrap(), Some(first.clone()));
    assert_usage(store, 1, first.len() as u64);
}

pub(crate) fn batch_writes_all(store: &dyn BlockStore) {
    let blocks: Vec<_> = (0..100u32).map(|i| block(&i.to_be_bytes())).collect();
    store.write(blocks.iter().cloned().collect::<Batch>()).unwrap();
    assert_holds(store, &blocks);
    assert_usage(store, 100, 400);
}

pub(crate) fn duplicates_inside_a_batch_count_once(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"dup");
    let mut batch = Batch::new();
    batch.put(cid, bytes.clone());
    batch.put(cid, bytes);
    store.write(batch).unwrap();
    assert_usage(store, 1, 3);
}

pub(crate) fn batch_of_new_and_stored_counts_only_new(store: &dyn BlockStore) {
    let old = blocks("old", 10);
    store.write(old.iter().cloned().collect()).unwrap();
    let new = blocks("new", 5);
    store.write(old.iter().chain(&new).cloned().collect()).unwrap();
    assert_usage(store, 15, payload(&old) + payload(&new));
    assert_holds(store, &new);
}

pub(crate) fn put_is_a_batch_of_one(store: &dyn BlockStore) {
    let (a, ab) = block(b"by put");
    let (b, bb) = block(b"by batch");
    store.put(a, ab.clone()).unwrap();
    store.write([(b, bb.clone())].into_iter().collect()).unwrap();
    assert_holds(store, &[(a, ab.clone()), (b, bb.clone())]);
    assert_usage(store, 2, (ab.len() + bb.len()) as u64);
}

pub(crate) fn empty_block(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"");
    store.put(cid, bytes).unwrap();
    assert_eq!(store.get(&cid).unwrap().map(|b| b.len()), Some(0));
    assert!(store.has(&cid).unwrap());
}

pub(crate) fn empty_block_counts_as_a_block(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"");
    store.put(cid, bytes).unwrap();
    assert_usage(store, 1, 0);
    assert_eq!(scanned(store), vec![(cid, Vec::new())]);
}

pub(crate) fn two_mib_block(store: &dyn BlockStore) {
    let content: Vec<u8> = (0..2 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let (cid, bytes) = block(&content);
    store.put(cid, bytes).unwrap();
    assert_eq!(store.get(&cid).unwrap().as_deref(), Some(&content[..]));
}

pub(crate) fn several_two_mib_blocks_in_one_batch(store: &dyn BlockStore) {
    let big: Vec<_> = (0..4).map(two_mib).collect();
    store.write(big.iter().cloned().collect()).unwrap();
    assert_holds(store, &big);
    assert_usage(store, 4, 8 * 1024 * 1024);
}

pub(crate) fn sizes_round_trip_exactly(store: &dyn BlockStore) {
    let sizes = [1, 2, 31, 32, 33, 127, 128, 255, 256, 1000, 4095, 4096, 4097, 65535, 65536, 65537];
    let blocks: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| sized_block(i as u32, n)).collect();
    store.write(blocks.iter().cloned().collect()).unwrap();
    assert_holds(store, &blocks);
    assert_usage(store, sizes.len() as u64, sizes.iter().map(|&n| n as u64).sum());
}

pub(crate) fn every_byte_value_round_trips(store: &dyn BlockStore) {
    let content: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let (cid, bytes) = block(&content);
    store.put(cid, bytes).unwrap();
    assert_eq!(store.get(&cid).unwrap().as_deref(), Some(&content[..]));
}

pub(crate) fn scan_sees_every_block(store: &dyn BlockStore) {
    let blocks: Vec<_> = (0..50u32).map(|i| block(&i.to_le_bytes())).collect();
    store.write(blocks.iter().cloned().collect()).unwrap();
    let mut seen = Vec::new();
    store
        .scan(&mut |cid, bytes| {
            assert_eq!(cid_of(bytes), *cid);
            seen.push(*cid);
            Ok(())
        })
        .unwrap();
    seen.sort();
    assert_eq!(seen, sorted_cids(&blocks));
}

pub(crate) fn scan_of_empty_store_calls_nothing(store: &dyn BlockStore) {
    let mut calls = 0;
    store
        .scan(&mut |_, _| {
            calls += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(calls, 0);
}

pub(crate) fn scan_yields_each_block_once(store: &dyn BlockStore) {
    let blocks = blocks("once", 20);
    store.write(blocks.iter().cloned().collect()).unwrap();
    store.write(blocks.iter().cloned().collect()).unwrap();
    let seen: Vec<Cid> = scanned(store).into_iter().map(|(c, _)| c).collect();
    assert_eq!(seen, sorted_cids(&blocks));
}

pub(crate) fn scan_bytes_equal_get(store: &dyn BlockStore) {
    let blocks: Vec<_> = (0..30).map(|i| sized_block(i, 100 + i as usize * 37)).collect();
    store.write(blocks.iter().cloned().collect()).unwrap();
    for (cid, bytes) in scanned(store) {
        assert_eq!(store.get(&cid).unwrap().as_deref(), Some(&bytes[..]));
    }
}

pub(crate) fn scan_stops_at_the_first_callback_error(store: &dyn BlockStore) {
    store.write(blocks("stop", 10).into_iter().collect()).unwrap();
    let mut calls = 0;
    let err = store
        .scan(&mut |_, _| {
            calls += 1;
            Err(Error::Callback("stop here".into()))
        })
        .unwrap_err();
    assert_eq!(calls, 1);
    match err {
        Error::Callback(source) => assert_eq!(source.to_string(), "stop here"),
        other => panic!("expected the callback's error, found {other:?}"),
    }
}

pub(crate) fn scan_count_matches_usage(store: &dyn BlockStore) {
    store.write(blocks("count", 123).into_iter().collect()).unwrap();
    store.write(blocks("count", 7).into_iter().collect()).unwrap();
    let seen = scanned(store);
    let usage = store.usage().unwrap();
    assert_eq!(seen.len() as u64, usage.blocks);
    assert_eq!(seen.iter().map(|(_, b)| b.len() as u64).sum::<u64>(), usage.payload_bytes);
}

pub(crate) fn empty_batch_is_fine(store: &dyn BlockStore) {
    store.write(Batch::new()).unwrap();
    assert_usage(store, 0, 0);
}

pub(crate) fn usage_of_empty_store_is_zero(store: &dyn BlockStore) {
    assert_usage(store, 0, 0);
}

pub(crate) fn usage_counts_payload_exactly(store: &dyn BlockStore) {
    let blocks: Vec<_> = (0..40).map(|i| sized_block(i, 10 * i as usize)).collect();
    store.write(blocks.iter().cloned().collect()).unwrap();
    assert_usage(store, 40, payload(&blocks));
}

pub(crate) fn usage_reports_overhead(store: &dyn BlockStore) {
    store.write(blocks("overhead", 100).into_iter().collect()).unwrap();
    let usage = store.usage().unwrap();
    assert!(usage.overhead_bytes > 0, "{usage:?}");
    assert_eq!(usage.total_bytes(), usage.payload_bytes + usage.overhead_bytes);
}

pub(crate) fn usage_grows_with_writes(store: &dyn BlockStore) {
    let mut last = store.usage().unwrap();
    for i in 0..5 {
        store.write(blocks(&format!("grow{i}"), 20).into_iter().collect()).unwrap();
        let now = store.usage().unwrap();
        assert_eq!(now.blocks, last.blocks + 20);
        assert!(now.payload_bytes > last.payload_bytes);
        last = now;
    }
}

pub(crate) fn many_small_batches(store: &dyn BlockStore) {
    let all = blocks("small", 1000);
    for chunk in all.chunks(10) {
        store.write(chunk.iter().cloned().collect()).unwrap();
    }
    assert_holds(store, &all);
    assert_usage(store, 1000, payload(&all));
}

pub(crate) fn one_large_batch(store: &dyn BlockStore) {
    let all: Vec<_> = (0..10_000).map(|i| sized_block(i, 64 + (i as usize % 512))).collect();
    store.write(all.iter().cloned().collect()).unwrap();
    assert_usage(store, 10_000, payload(&all));
    for (cid, bytes) in all.iter().step_by(97) {
        assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes));
    }
}

pub(crate) fn codecs_are_distinct_blocks(store: &dyn BlockStore) {
    // Same digest, different codec: different CIDs, so different blocks.
    let content = b"same bytes";
    let cbor = cid_with(0x71, content);
    let raw = cid_with(0x55, content);
    store.put(cbor, Bytes::from_static(content)).unwrap();
    assert!(!store.has(&raw).unwrap());
    assert_eq!(store.get(&raw).unwrap(), None);
    store.put(raw, Bytes::from_static(content)).unwrap();
    assert_usage(store, 2, 2 * content.len() as u64);
}

pub(crate) fn non_blessed_cids_are_stored(store: &dyn BlockStore) {
    let v0 = cid_v0_of(b"v0 block");
    let v1 = cid_of(b"v0 block");
    let long = cid_sha512_of(b"sha512 block");
    store.put(v0, Bytes::from_static(b"v0 block")).unwrap();
    store.put(long, Bytes::from_static(b"sha512 block")).unwrap();
    assert_eq!(store.get(&v0).unwrap().as_deref(), Some(&b"v0 block"[..]));
    assert_eq!(store.get(&long).unwrap().as_deref(), Some(&b"sha512 block"[..]));
    // A CIDv1 with the same digest as the CIDv0 is another CID.
    assert!(!store.has(&v1).unwrap());
    let seen: Vec<Cid> = scanned(store).into_iter().map(|(c, _)| c).collect();
    assert_eq!(seen, sorted_cids(&[(v0, Bytes::new()), (long, Bytes::new())]));
}

pub(crate) fn returned_bytes_outlive_later_writes(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"kept");
    store.put(cid, bytes.clone()).unwrap();
    let held = store.get(&cid).unwrap().unwrap();
    store.write(blocks("after", 500).into_iter().collect()).unwrap();
    store.flush().unwrap();
    assert_eq!(held, bytes);
}

pub(crate) fn flush_keeps_everything(store: &dyn BlockStore) {
    let blocks = blocks("flush", 100);
    store.write(blocks.iter().cloned().collect()).unwrap();
    store.flush().unwrap();
    store.flush().unwrap();
    assert_holds(store, &blocks);
    assert_usage(store, 100, payload(&blocks));
}

pub(crate) fn works_through_a_box(store: &dyn BlockStore) {
    let boxed: Box<&dyn BlockStore> = Box::new(store);
    let (cid, bytes) = block(b"boxed");
    boxed.put(cid, bytes.clone()).unwrap();
    assert_eq!(store.get(&cid).unwrap(), Some(bytes));
}

pub(crate) fn readers_see_whole_batches_or_nothing(store: &dyn BlockStore) {
    let batches: Vec<Vec<(Cid, Bytes)>> =
        (0..20).map(|i| blocks(&format!("atomic{i}"), 50)).collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut checks = 0u32;
            while !done.load(Ordering::Acquire) || checks == 0 {
                for batch in &batches {
                    // Read the last block first: if it is there, the whole
                    // batch must be.
                    let (last, _) = batch.last().unwrap();
                    if store.has(last).unwrap() {
                        for (cid, bytes) in batch {
                            assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes));
                        }
                    }
                }
                checks += 1;
            }
        });
        let stop = SetOnDrop(&done);
        for batch in &batches {
            store.write(batch.iter().cloned().collect()).unwrap();
        }
        drop(stop);
        reader.join().unwrap();
    });
    assert_usage(store, 1000, batches.iter().map(|b| payload(b)).sum());
}

pub(crate) fn concurrent_readers_during_a_write(store: &dyn BlockStore) {
    let old = blocks("old", 200);
    store.write(old.iter().cloned().collect()).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut rounds = 0u32;
                    while !done.load(Ordering::Acquire) || rounds == 0 {
                        assert_holds(store, &old);
                        rounds += 1;
                    }
                })
            })
            .collect();
        let stop = SetOnDrop(&done);
        for i in 0..10 {
            store.write(blocks(&format!("new{i}"), 100).into_iter().collect()).unwrap();
        }
        drop(stop);
        for r in readers {
            r.join().unwrap();
        }
    });
    assert_usage(store, 1200, store.usage().unwrap().payload_bytes);
    assert_eq!(store.usage().unwrap().blocks, 1200);
}

pub(crate) fn concurrent_writers_of_distinct_blocks(store: &dyn BlockStore) {
    let sets: Vec<_> = (0..4).map(|i| blocks(&format!("writer{i}"), 100)).collect();
    std::thread::scope(|s| {
        for set in &sets {
            s.spawn(|| {
                for chunk in set.chunks(10) {
                    store.write(chunk.iter().cloned().collect()).unwrap();
                }
            });
        }
    });
    for set in &sets {
        assert_holds(store, set);
    }
    assert_usage(store, 400, sets.iter().map(|s| payload(s)).sum());
}

pub(crate) fn concurrent_writers_of_the_same_blocks_count_once(store: &dyn BlockStore) {
    let shared = blocks("shared", 100);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for chunk in shared.chunks(7) {
                    store.write(chunk.iter().cloned().collect()).unwrap();
                }
            });
        }
    });
    assert_usage(store, 100, payload(&shared));
    assert_eq!(scanned(store).len(), 100);
}

pub(crate) fn get_and_has_agree(store: &dyn BlockStore) {
    let present = blocks("agree", 30);
    store.write(present.iter().cloned().collect()).unwrap();
    for (cid, _) in present.iter().chain(&blocks("disagree", 30)) {
        assert_eq!(store.get(cid).unwrap().is_some(), store.has(cid).unwrap());
    }
}

/// `read_with` lends exactly what `get` returns, and `look_ahead` answers
/// one flag per CID, `true` only for a stored block, whatever the mix.
pub(crate) fn lent_and_looked_ahead_blocks_agree_with_get(store: &dyn BlockStore) {
    let present = blocks("lend", 30);
    store.write(present.iter().cloned().collect()).unwrap();
    let absent = blocks("do not lend", 30);
    // Interleaved, with a repeat and a CID of another shape.
    let mut cids: Vec<Cid> =
        present.iter().zip(&absent).flat_map(|((p, _), (a, _))| [*p, *a]).collect();
    cids.push(present[0].0);
    cids.push(cid_v0_of(b"lend"));
    for cid in &cids {
        let mut lent = None;
        let found = store.read_with(cid, &mut |bytes| lent = Some(bytes.to_vec())).unwrap();
        let got = store.get(cid).unwrap();
        assert_eq!(found, got.is_some(), "read_with {cid}");
        assert_eq!(lent.as_deref(), got.as_deref(), "read_with {cid}");
    }
    // Filled afresh: what was in the vector before does not count.
    let mut flags = vec![true; 3];
    store.look_ahead(&cids, &mut flags).unwrap();
    assert_eq!(flags.len(), cids.len());
    for (cid, flag) in cids.iter().zip(&flags) {
        assert!(!flag || store.has(cid).unwrap(), "look_ahead says {cid} is stored");
    }
    store.look_ahead(&[], &mut flags).unwrap();
    assert!(flags.is_empty());
}

// ---------------------------------------------------------------------------
// Read cases: a store opened over `read_blocks()`, written or not.

/// The blocks every read case's store holds, in order, duplicates included
/// (a CAR may repeat a block; a writer may write it twice).
pub(crate) fn read_blocks() -> Vec<(Cid, Bytes)> {
    let mut all = vec![block(b"")];
    all.extend((0..300).map(|i| sized_block(1000 + i, 100 + (i as usize * 7) % 1900)));
    all.push(largest_car_block());
    let content = b"codec twin";
    all.push((cid_with(0x71, content), Bytes::from_static(content)));
    all.push((cid_with(0x55, content), Bytes::from_static(content)));
    // Duplicates of earlier blocks.
    all.push(all[5].clone());
    all.push(all[0].clone());
    all
}

fn distinct_read_blocks() -> Vec<(Cid, Bytes)> {
    let mut seen = std::collections::HashSet::new();
    read_blocks().into_iter().filter(|(c, _)| seen.insert(*c)).collect()
}

pub(crate) fn read_get_each(store: &dyn BlockStore) {
    assert_holds(store, &read_blocks());
}

pub(crate) fn read_missing_is_none(store: &dyn BlockStore) {
    for (cid, _) in blocks("not in the store", 50) {
        assert_eq!(store.get(&cid).unwrap(), None);
        assert!(!store.has(&cid).unwrap());
    }
    assert!(!store.has(&cid_v0_of(b"")).unwrap());
}

pub(crate) fn read_usage_counts_distinct(store: &dyn BlockStore) {
    let distinct = distinct_read_blocks();
    assert_usage(store, distinct.len() as u64, payload(&distinct));
}

pub(crate) fn read_scan_each_once(store: &dyn BlockStore) {
    let want: Vec<(Cid, Vec<u8>)> = {
        let mut v: Vec<_> =
            distinct_read_blocks().into_iter().map(|(c, b)| (c, b.to_vec())).collect();
        v.sort();
        v
    };
    assert_eq!(scanned(store), want);
}

pub(crate) fn read_empty_and_huge(store: &dyn BlockStore) {
    let all = read_blocks();
    assert_eq!(store.get(&all[0].0).unwrap().map(|b| b.len()), Some(0));
    let big = largest_car_block();
    assert_eq!(store.get(&big.0).unwrap(), Some(big.1));
}

pub(crate) fn read_codec_twins_are_distinct(store: &dyn BlockStore) {
    let content = b"codec twin";
    assert!(store.has(&cid_with(0x71, content)).unwrap());
    assert!(store.has(&cid_with(0x55, content)).unwrap());
    // Same digest again, codec neither of the stored ones.
    assert!(!store.has(&cid_with(0x70, content)).unwrap());
}

pub(crate) fn read_concurrent_readers(store: &dyn BlockStore) {
    let all = read_blocks();
    std::thread::scope(|s| {
        for t in 0..4 {
            let all = &all;
            s.spawn(move || {
                for (cid, bytes) in all.iter().skip(t).step_by(2) {
                    assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes));
                }
            });
        }
    });
}

pub(crate) fn read_scan_callback_error_passes_through(store: &dyn BlockStore) {
    let err = store.scan(&mut |_, _| Err(Error::Callback("enough".into()))).unwrap_err();
    assert!(matches!(err, Error::Callback(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// Durable cases: close, reopen from the same folder, look again.

/// Opens the backend's store inside a folder.
pub(crate) type OpenAt<'a> = &'a dyn Fn(&Path) -> Box<dyn BlockStore>;

pub(crate) fn reopen_keeps_blocks(open: OpenAt<'_>, dir: &Path) {
    let blocks = blocks("durable", 200);
    {
        let store = open(dir);
        store.write(blocks.iter().cloned().collect()).unwrap();
    }
    let store = open(dir);
    assert_holds(&*store, &blocks);
}

pub(crate) fn reopen_keeps_usage(open: OpenAt<'_>, dir: &Path) {
    let blocks = blocks("usage", 50);
    {
        let store = open(dir);
        store.write(blocks.iter().cloned().collect()).unwrap();
    }
    assert_usage(&*open(dir), 50, payload(&blocks));
}

pub(crate) fn reopen_empty_store(open: OpenAt<'_>, dir: &Path) {
    drop(open(dir));
    let store = open(dir);
    assert_usage(&*store, 0, 0);
    assert!(scanned(&*store).is_empty());
}

pub(crate) fn reopen_then_write_more(open: OpenAt<'_>, dir: &Path) {
    let first = blocks("first", 30);
    let second = blocks("second", 30);
    open(dir).write(first.iter().cloned().collect()).unwrap();
    open(dir).write(second.iter().cloned().collect()).unwrap();
    let store = open(dir);
    assert_holds(&*store, &first);
    assert_holds(&*store, &second);
    assert_usage(&*store, 60, payload(&first) + payload(&second));
}

pub(crate) fn reopen_then_duplicate_counts_once(open: OpenAt<'_>, dir: &Path) {
    let blocks = blocks("again", 10);
    open(dir).write(blocks.iter().cloned().collect()).unwrap();
    let store = open(dir);
    store.write(blocks.iter().cloned().collect()).unwrap();
    assert_usage(&*store, 10, payload(&blocks));
}

pub(crate) fn reopen_keeps_big_and_empty_blocks(open: OpenAt<'_>, dir: &Path) {
    let blocks = vec![two_mib(3), block(b"")];
    open(dir).write(blocks.iter().cloned().collect()).unwrap();
    let store = open(dir);
    assert_holds(&*store, &blocks);
    assert_usage(&*store, 2, 2 * 1024 * 1024);
}

pub(crate) fn reopen_scan_sees_everything(open: OpenAt<'_>, dir: &Path) {
    let blocks = blocks("scan", 100);
    open(dir).write(blocks.iter().cloned().collect()).unwrap();
    let seen: Vec<Cid> = scanned(&*open(dir)).into_iter().map(|(c, _)| c).collect();
    assert_eq!(seen, sorted_cids(&blocks));
}

/// Expands to one test per conformance case for the backend that `$open()`
/// returns (a `Scratch<S>`), and, with `reopen = $open_at`, the durable
/// cases, where `$open_at(dir: &Path)` opens the store kept in `dir`.
macro_rules! conformance_suite {
    ($open:ident) => {
        conformance_suite!(@cases $open;
            put_then_get,
            missing_is_none,
            missing_stays_none_among_others,
            duplicate_put_is_idempotent,
            conflicting_put_keeps_first_bytes,
            batch_writes_all,
            duplicates_inside_a_batch_count_once,
            batch_of_new_and_stored_counts_only_new,
            put_is_a_batch_of_one,
            empty_block,
            empty_block_counts_as_a_block,
            two_mib_block,
            several_two_mib_blocks_in_one_batch,
            sizes_round_trip_exactly,
            every_byte_value_round_trips,
            scan_sees_every_block,
            scan_of_empty_store_calls_nothing,
            scan_yields_each_block_once,
            scan_bytes_equal_get,
            scan_stops_at_the_first_callback_error,
            scan_count_matches_usage,
            empty_batch_is_fine,
            usage_of_empty_store_is_zero,
            usage_counts_payload_exactly,
            usage_reports_overhead,
            usage_grows_with_writes,
            many_small_batches,
            one_large_batch,
            codecs_are_distinct_blocks,
            non_blessed_cids_are_stored,
            returned_bytes_outlive_later_writes,
            flush_keeps_everything,
            works_through_a_box,
            readers_see_whole_batches_or_nothing,
            concurrent_readers_during_a_write,
            concurrent_writers_of_distinct_blocks,
            concurrent_writers_of_the_same_blocks_count_once,
            get_and_has_agree,
            lent_and_looked_ahead_blocks_agree_with_get,
        );
        mod read {
            fn open_with(
                blocks: &[(::cid::Cid, ::atrepo_store::Bytes)],
            ) -> impl ::std::ops::Deref<Target = impl ::atrepo_store::BlockStore> {
                let store = super::$open();
                ::atrepo_store::BlockStore::write(&*store, blocks.iter().cloned().collect())
                    .unwrap();
                store
            }
            read_suite!(open_with);
        }
    };
    ($open:ident, reopen = $open_at:ident) => {
        conformance_suite!($open);
        mod durable {
            conformance_suite!(@durable super::$open_at;
                reopen_keeps_blocks,
                reopen_keeps_usage,
                reopen_empty_store,
                reopen_then_write_more,
                reopen_then_duplicate_counts_once,
                reopen_keeps_big_and_empty_blocks,
                reopen_scan_sees_everything,
            );
        }
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let store = $open();
                $crate::conformance::$case(&*store);
            }
        )*
    };
    (@durable $open_at:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let dir = ::tempfile::tempdir().unwrap();
                let open = |d: &::std::path::Path| {
                    Box::new($open_at(d)) as Box<dyn ::atrepo_store::BlockStore>
                };
                $crate::conformance::$case(&open, dir.path());
            }
        )*
    };
}

/// Expands to one test per read case for a store that `$open_with(blocks)`
/// opens over `conformance::read_blocks()`.
macro_rules! read_suite {
    ($open_with:path) => {
        read_suite!(@cases $open_with;
            read_get_each,
            read_missing_is_none,
            read_usage_counts_distinct,
            read_scan_each_once,
            read_empty_and_huge,
            read_codec_twins_are_distinct,
            read_concurrent_readers,
            read_scan_callback_error_passes_through,
        );
    };
    (@cases $open_with:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let blocks = $crate::conformance::read_blocks();
                let store = $open_with(&blocks);
                $crate::conformance::$case(&*store);
            }
        )*
    };
}
