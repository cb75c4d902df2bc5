//! [`MemoryStore`]: blocks in a hash table whose buckets hold everything a
//! lookup needs.
//!
//! A bucket holds the CID in 34 bytes (digest, codec and hash code: every
//! CID of a repository has this shape) and the block's [`Bytes`]: a hit,
//! its confirmation against the whole CID, and the answer of
//! [`has`](BlockRead::has) touch one bucket, where a table keyed by the
//! 96-byte [`Cid`] had buckets of 128 bytes. CIDs of other shapes (CIDv0,
//! other digest lengths, codecs past one byte) go to a plain map beside it.
//! [`read_with`](BlockRead::read_with) lends a block without touching its
//! reference count, which lives in another cache line per block.
//! [`look_ahead`](BlockRead::look_ahead) makes its lookups in one tight
//! loop under one lock, so their cache misses overlap; one call per lookup,
//! with a lock (an atomic read-modify-write) each and the caller's work
//! between them, takes the misses one after another.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use cid::multihash::Multihash;
use cid::{Cid, Version};

use crate::{Batch, BlockRead, BlockStore, CidKey, CidMap, Result, Usage};

/// Estimated heap bytes a [`MemoryStore`] spends per block beyond its payload.
///
/// A table bucket holds the CID's 34 bytes and the block's [`Bytes`]
/// handle, with one control byte; the table keeps about one empty bucket
/// per full one at its worst load factor after growth; the block's own heap
/// allocation carries an allocator header. This is the cost of a block
/// whose CID has a repository's shape; see [`memory_overhead`] for any CID.
pub const MEMORY_OVERHEAD_PER_BLOCK: u64 = {
    let bucket = (size_of::<(ShortCid, Bytes)>() + 1) as u64;
    2 * bucket + 16
};

/// Estimated heap bytes a [`MemoryStore`] spends per block beyond its
/// payload when the block's CID has another shape than a repository's
/// (CIDv0, another digest length, a codec past one byte): such a block
/// takes a bucket of the plain map beside the table, keyed by the 96-byte
/// [`Cid`], counted as [`MEMORY_OVERHEAD_PER_BLOCK`] counts its bucket.
pub const MEMORY_OVERHEAD_PER_OTHER_BLOCK: u64 = {
    let bucket = (size_of::<(Cid, Bytes)>() + 1) as u64;
    2 * bucket + 16
};

/// Estimated heap bytes a [`MemoryStore`] spends on the block named `cid`
/// beyond its payload: [`MEMORY_OVERHEAD_PER_BLOCK`] for a CID of a
/// repository's shape, [`MEMORY_OVERHEAD_PER_OTHER_BLOCK`] for any other.
pub fn memory_overhead(cid: &Cid) -> u64 {
    match ShortCid::of(cid) {
        Some(_) => MEMORY_OVERHEAD_PER_BLOCK,
        None => MEMORY_OVERHEAD_PER_OTHER_BLOCK,
    }
}

/// Blocks in memory, shared as [`Bytes`] so reads copy nothing.
///
/// Reads take a shared lock and writes an exclusive one, so a batch is
/// applied atomically with respect to readers.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

/// A CID with a 32-byte digest and one-byte codec and hash code, version 1:
/// the shape of every CID in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShortCid {
    digest: [u8; 32],
    codec: u8,
    code: u8,
}

impl ShortCid {
    fn of(cid: &Cid) -> Option<ShortCid> {
        if cid.version() != Version::V1 {
            return None;
        }
        let hash = cid.hash();
        Some(ShortCid {
            digest: hash.digest().try_into().ok()?,
            codec: u8::try_from(cid.codec()).ok()?,
            code: u8::try_from(hash.code()).ok()?,
        })
    }

    fn cid(&self) -> Cid {
        // The digest is 32 bytes: it fits a 64-byte multihash.
        let hash = Multihash::wrap(u64::from(self.code), &self.digest).unwrap_or_default();
        Cid::new_v1(u64::from(self.codec), hash)
    }
}

impl Hash for ShortCid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Hashed as its fingerprint is, whose fold keys that hash alike take
        // about 2^32 work a pair to make from hash-checked blocks (see
        // `CidKey::short`): they cost a longer probe at worst, as equality
        // compares everything.
        CidKey::from_parts(&self.digest, self.codec.into(), self.code.into()).hash(state);
    }
}

#[derive(Debug, Default)]
struct Inner {
    blocks: HashMap<ShortCid, Bytes, foldhash::fast::RandomState>,
    /// Blocks whose CIDs have another shape.
    others: CidMap<Bytes>,
    payload_bytes: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores one block without taking a [`Batch`]; the same as
    /// [`BlockStore::put`] but infallible.
    pub fn insert(&self, cid: Cid, bytes: Bytes) {
        let mut inner = self.write_lock();
        inner.insert(&cid, bytes);
    }

    /// Number of distinct blocks stored.
    pub fn len(&self) -> usize {
        self.read_lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every block and returns them, leaving the store empty.
    ///
    /// Used to hand blocks over to another store (spilling to disk).
    pub fn drain(&self) -> Vec<(Cid, Bytes)> {
        let mut inner = self.write_lock();
        inner.payload_bytes = 0;
        let mut blocks: Vec<(Cid, Bytes)> =
            inner.blocks.drain().map(|(key, bytes)| (key.cid(), bytes)).collect();
        blocks.extend(inner.others.drain());
        blocks
    }

    // A poisoned lock only means another thread panicked while holding it;
    // every update below keeps the maps and the counter consistent before
    // any point that could panic, so the data is still sound to use.
    fn read_lock(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn len(&self) -> usize {
        self.blocks.len() + self.others.len()
    }

    fn get(&self, cid: &Cid) -> Option<&Bytes> {
        match ShortCid::of(cid) {
            Some(key) => self.blocks.get(&key),
            None => self.others.get(cid),
        }
    }

    fn insert(&mut self, cid: &Cid, bytes: Bytes) {
        let len = bytes.len() as u64;
        let new = match ShortCid::of(cid) {
            Some(key) => insert_new(&mut self.blocks, key, bytes),
            None => insert_new(&mut self.others, *cid, bytes),
        };
        if new {
            self.payload_bytes = self.payload_bytes.saturating_add(len);
        }
    }
}

/// Inserts `bytes` under `key` unless the key is there; returns whether it
/// was not.
fn insert_new<K: Eq + Hash, S: BuildHasher>(
    map: &mut HashMap<K, Bytes, S>,
    key: K,
    bytes: Bytes,
) -> bool {
    match map.entry(key) {
        Entry::Vacant(slot) => {
            slot.insert(bytes);
            true
        }
        Entry::Occupied(_) => false,
    }
}

impl BlockRead for MemoryStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        Ok(self.read_lock().get(cid).cloned())
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.read_lock().get(cid).is_some())
    }

    /// Runs `f` under the store's shared lock.
    fn read_with(&self, cid: &Cid, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let inner = self.read_lock();
        let block = inner.get(cid);
        if let Some(block) = block {
            f(block);
        }
        Ok(block.is_some())
    }

    /// Every lookup under one shared lock, none depending on another.
    fn look_ahead(&self, cids: &[Cid], present: &mut Vec<bool>) -> Result<()> {
        let inner = self.read_lock();
        present.clear();
        present.extend(cids.iter().map(|cid| inner.get(cid).is_some()));
        Ok(())
    }

    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        let inner = self.read_lock();
        for (key, bytes) in &inner.blocks {
            f(&key.cid(), bytes)?;
        }
        for (cid, bytes) in &inner.others {
            f(cid, bytes)?;
        }
        Ok(())
    }
}

impl BlockStore for MemoryStore {
    fn write(&self, batch: Batch) -> Result<()> {
        let mut inner = self.write_lock();
        inner.blocks.reserve(batch.len());
        for (cid, bytes) in batch {
            inner.insert(&cid, bytes);
        }
        Ok(())
    }

    fn put(&self, cid: Cid, bytes: Bytes) -> Result<()> {
        self.insert(cid, bytes);
        Ok(())
    }

    fn usage(&self) -> Result<Usage> {
        let inner = self.read_lock();
        let (short, others) = (inner.blocks.len() as u64, inner.others.len() as u64);
        Ok(Usage {
            blocks: short.saturating_add(others),
            payload_bytes: inner.payload_bytes,
            overhead_bytes: short
                .saturating_mul(MEMORY_OVERHEAD_PER_BLOCK)
                .saturating_add(others.saturating_mul(MEMORY_OVERHEAD_PER_OTHER_BLOCK)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> Cid {
        digest_cid([n; 32])
    }

    fn digest_cid(digest: [u8; 32]) -> Cid {
        let mh = Multihash::<64>::wrap(0x12, &digest).unwrap();
        Cid::new_v1(0x71, mh)
    }

    fn scanned(s: &MemoryStore) -> Vec<(Cid, Vec<u8>)> {
        let mut seen = Vec::new();
        s.scan(&mut |cid, block| {
            seen.push((*cid, block.to_vec()));
            Ok(())
        })
        .unwrap();
        seen.sort();
        seen
    }

    fn read_with(s: &MemoryStore, cid: &Cid) -> Option<Vec<u8>> {
        let mut lent = None;
        let found = s.read_with(cid, &mut |block| lent = Some(block.to_vec())).unwrap();
        assert_eq!(found, lent.is_some());
        lent
    }

    #[test]
    fn duplicate_put_counts_once() {
        let s = MemoryStore::new();
        s.insert(cid(1), Bytes::from_static(b"abc"));
        s.insert(cid(1), Bytes::from_static(b"abc"));
        let u = s.usage().unwrap();
        assert_eq!((u.blocks, u.payload_bytes), (1, 3));
        assert_eq!(u.overhead_bytes, MEMORY_OVERHEAD_PER_BLOCK);
    }

    #[test]
    fn drain_empties_and_resets_accounting() {
        let s = MemoryStore::new();
        s.insert(cid(1), Bytes::from_static(b"abc"));
        s.insert(cid(2), Bytes::from_static(b"de"));
        let mut drained = s.drain();
        drained.sort();
        assert_eq!(
            drained,
            vec![(cid(1), Bytes::from_static(b"abc")), (cid(2), Bytes::from_static(b"de"))]
        );
        assert!(s.is_empty());
        assert_eq!(s.usage().unwrap(), Usage::default());
    }

    /// Three CIDs that hash alike in the table: their first and ninth digest
    /// bytes differ by the same mask, which the short fingerprint's fold
    /// cancels.
    fn clashing() -> [Cid; 3] {
        [0u8, 0x5a, 0xc3].map(|mask| {
            let mut digest = [7u8; 32];
            digest[0] ^= mask;
            digest[8] ^= mask;
            digest_cid(digest)
        })
    }

    #[test]
    fn cids_hashing_alike_are_told_apart() {
        let [a, b, c] = clashing();
        let hasher = foldhash::fast::RandomState::default();
        let hash = |cid: &Cid| hasher.hash_one(ShortCid::of(cid).unwrap());
        assert!([b, c].iter().all(|x| hash(x) == hash(&a) && *x != a));
        let s = MemoryStore::new();
        s.insert(a, Bytes::from_static(b"first"));
        // Before `b` is stored, it probes `a`'s bucket, which must not
        // answer for it.
        assert_eq!(s.get(&b).unwrap(), None);
        assert!(!s.has(&b).unwrap());
        assert_eq!(read_with(&s, &b), None);
        s.insert(b, Bytes::from_static(b"second"));
        s.insert(c, Bytes::from_static(b"third"));
        assert_eq!(s.len(), 3);
        let want = [(a, "first"), (b, "second"), (c, "third")];
        for (cid, block) in want {
            assert_eq!(s.get(&cid).unwrap().unwrap(), block.as_bytes(), "{cid}");
            assert_eq!(read_with(&s, &cid).unwrap(), block.as_bytes(), "{cid}");
        }
        let mut want = want.map(|(cid, block)| (cid, block.as_bytes().to_vec())).to_vec();
        want.sort();
        assert_eq!(scanned(&s), want);
    }

    #[test]
    fn cids_of_other_shapes_are_kept_apart() {
        // A CIDv0, a CID with a 64-byte digest under a long codec, and the
        // v1 twin of the CIDv0 (the same digest and hash code under
        // dag-pb): only the last has the compact shape, and all three are
        // distinct.
        let v0 = Cid::new_v0(Multihash::<64>::wrap(0x12, &[3; 32]).unwrap()).unwrap();
        let long = Cid::new_v1(u64::MAX, Multihash::<64>::wrap(u64::MAX, &[9; 64]).unwrap());
        let twin = Cid::new_v1(0x70, *v0.hash());
        assert_eq!((ShortCid::of(&v0), ShortCid::of(&long)), (None, None));
        assert_eq!(ShortCid::of(&twin).map(|k| k.cid()), Some(twin));
        let s = MemoryStore::new();
        s.insert(v0, Bytes::from_static(b"zero"));
        s.insert(long, Bytes::from_static(b"long"));
        assert!(!s.has(&twin).unwrap());
        s.insert(twin, Bytes::from_static(b"twin"));
        s.insert(long, Bytes::from_static(b"long"));
        assert_eq!(s.len(), 3);
        assert_eq!(s.usage().unwrap().payload_bytes, 12);
        // Two in the plain map, keyed by the whole `Cid`; the twin in the
        // table.
        let overhead = 2 * MEMORY_OVERHEAD_PER_OTHER_BLOCK + MEMORY_OVERHEAD_PER_BLOCK;
        assert_eq!(s.usage().unwrap().overhead_bytes, overhead);
        let each: u64 = [v0, long, twin].iter().map(memory_overhead).sum();
        assert_eq!(each, overhead);
        for (cid, block) in [(v0, "zero"), (long, "long"), (twin, "twin")] {
            assert_eq!(s.get(&cid).unwrap().unwrap(), block.as_bytes());
            assert_eq!(read_with(&s, &cid).unwrap(), block.as_bytes());
        }
        let mut want =
            vec![(v0, b"zero".to_vec()), (long, b"long".to_vec()), (twin, b"twin".to_vec())];
        want.sort();
        assert_eq!(scanned(&s), want);
        // Looked up ahead: exact answers for both shapes, missing CIDs
        // included.
        let (missing_v0, missing) =
            (Cid::new_v0(digest_cid([4; 32]).hash().to_owned()).unwrap(), cid(5));
        let mut present = Vec::new();
        s.look_ahead(&[missing, v0, long, missing_v0, twin], &mut present).unwrap();
        assert_eq!(present, [false, true, true, false, true]);
        let mut drained: Vec<Cid> = s.drain().into_iter().map(|(cid, _)| cid).collect();
        drained.sort();
        assert_eq!(drained, want.into_iter().map(|(cid, _)| cid).collect::<Vec<_>>());
    }
}
