//! [`MemoryStore`]: blocks in a hash map.

use std::collections::hash_map::Entry;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use cid::Cid;

use crate::{Batch, BlockRead, BlockStore, CidMap, Result, Usage};

/// Estimated heap bytes a [`MemoryStore`] spends per block beyond its payload.
///
/// A hash-map slot holds a [`Cid`] (its digest is a fixed 64-byte array) and a
/// [`Bytes`] handle; the table keeps about one empty slot per full one at its
/// worst load factor and one control byte per slot; the block's own heap
/// allocation carries an allocator header. The sum is rounded up.
pub const MEMORY_OVERHEAD_PER_BLOCK: u64 = {
    let slot = (size_of::<Cid>() + size_of::<Bytes>() + 1) as u64;
    // Worst-case load factor 7/8 after growth is ~1/2: count two slots.
    2 * slot + 16
};

/// Blocks in memory, shared as [`Bytes`] so reads copy nothing.
///
/// Reads take a shared lock and writes an exclusive one, so a batch is
/// applied atomically with respect to readers.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    blocks: CidMap<Bytes>,
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
        inner.insert(cid, bytes);
    }

    /// Number of distinct blocks stored.
    pub fn len(&self) -> usize {
        self.read_lock().blocks.len()
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
        inner.blocks.drain().collect()
    }

    // A poisoned lock only means another thread panicked while holding it;
    // every update below keeps the map and the counter consistent before any
    // point that could panic, so the data is still sound to use.
    fn read_lock(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn insert(&mut self, cid: Cid, bytes: Bytes) {
        if let Entry::Vacant(slot) = self.blocks.entry(cid) {
            self.payload_bytes = self.payload_bytes.saturating_add(bytes.len() as u64);
            slot.insert(bytes);
        }
    }
}

impl BlockRead for MemoryStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        Ok(self.read_lock().blocks.get(cid).cloned())
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.read_lock().blocks.contains_key(cid))
    }

    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        let inner = self.read_lock();
        for (cid, bytes) in &inner.blocks {
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
            inner.insert(cid, bytes);
        }
        Ok(())
    }

    fn put(&self, cid: Cid, bytes: Bytes) -> Result<()> {
        self.insert(cid, bytes);
        Ok(())
    }

    fn usage(&self) -> Result<Usage> {
        let inner = self.read_lock();
        let blocks = inner.blocks.len() as u64;
        Ok(Usage {
            blocks,
            payload_bytes: inner.payload_bytes,
            overhead_bytes: blocks.saturating_mul(MEMORY_OVERHEAD_PER_BLOCK),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cid::multihash::Multihash;

    fn cid(n: u8) -> Cid {
        let mh = Multihash::<64>::wrap(0x12, &[n; 32]).unwrap();
        Cid::new_v1(0x71, mh)
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
        drained.sort_by_key(|(c, _)| c.to_bytes());
        assert_eq!(drained.len(), 2);
        assert!(s.is_empty());
        assert_eq!(s.usage().unwrap(), Usage::default());
    }

    #[test]
    fn overhead_constant_is_at_least_the_slot_size() {
        assert!(MEMORY_OVERHEAD_PER_BLOCK >= (size_of::<Cid>() + size_of::<Bytes>()) as u64);
    }
}
