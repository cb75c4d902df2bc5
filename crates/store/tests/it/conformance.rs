//! The backend conformance suite.
//!
//! `conformance_suite!(open)` expands to one `#[test]` per case, each calling
//! `open()` for a fresh, empty store. Every backend must pass it unchanged.

use atrepo_store::{Batch, BlockStore, Bytes};
use cid::Cid;
use sha2::Digest;

/// A real dag-cbor CID for `bytes`.
pub(crate) fn cid_of(bytes: &[u8]) -> Cid {
    let digest = sha2::Sha256::digest(bytes);
    let mh = multihash::Multihash::<64>::wrap(0x12, &digest).expect("32-byte digest fits");
    Cid::new_v1(0x71, mh)
}

/// A block with its CID.
pub(crate) fn block(content: &[u8]) -> (Cid, Bytes) {
    (cid_of(content), Bytes::copy_from_slice(content))
}

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

pub(crate) fn duplicate_put_is_idempotent(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"twice");
    store.put(cid, bytes.clone()).unwrap();
    store.put(cid, bytes.clone()).unwrap();
    let usage = store.usage().unwrap();
    assert_eq!(usage.blocks, 1);
    assert_eq!(usage.payload_bytes, bytes.len() as u64);
}

pub(crate) fn batch_writes_all(store: &dyn BlockStore) {
    let blocks: Vec<_> = (0..100u32).map(|i| block(&i.to_be_bytes())).collect();
    store.write(blocks.iter().cloned().collect::<Batch>()).unwrap();
    for (cid, bytes) in &blocks {
        assert_eq!(store.get(cid).unwrap().as_ref(), Some(bytes));
    }
    assert_eq!(store.usage().unwrap().blocks, 100);
}

pub(crate) fn duplicates_inside_a_batch_count_once(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"dup");
    let mut batch = Batch::new();
    batch.put(cid, bytes.clone());
    batch.put(cid, bytes);
    store.write(batch).unwrap();
    assert_eq!(store.usage().unwrap().blocks, 1);
}

pub(crate) fn empty_block(store: &dyn BlockStore) {
    let (cid, bytes) = block(b"");
    store.put(cid, bytes).unwrap();
    assert_eq!(store.get(&cid).unwrap().map(|b| b.len()), Some(0));
    assert!(store.has(&cid).unwrap());
}

pub(crate) fn two_mib_block(store: &dyn BlockStore) {
    let content: Vec<u8> = (0..2 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
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
    let mut want: Vec<_> = blocks.iter().map(|(c, _)| *c).collect();
    want.sort();
    assert_eq!(seen, want);
}

pub(crate) fn empty_batch_is_fine(store: &dyn BlockStore) {
    store.write(Batch::new()).unwrap();
    assert_eq!(store.usage().unwrap().blocks, 0);
}

/// Expands to one test per conformance case for the backend that `$open()`
/// returns.
macro_rules! conformance_suite {
    ($open:path) => {
        conformance_suite!(@cases $open;
            put_then_get,
            missing_is_none,
            duplicate_put_is_idempotent,
            batch_writes_all,
            duplicates_inside_a_batch_count_once,
            empty_block,
            two_mib_block,
            scan_sees_every_block,
            empty_batch_is_fine,
        );
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let store = $open();
                $crate::conformance::$case(&store);
            }
        )*
    };
}
