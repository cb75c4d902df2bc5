//! The block buffer between a CAR stream and the MST walk.
//!
//! Blocks wait here from the moment they are read until the walk reaches
//! them; each is handed out once and then dropped, so in streaming order
//! (the commit, then nodes in pre-order with records after their entries)
//! the buffer holds a handful of blocks whatever the repository's size.
//! Out of order, blocks accumulate: up to the memory budget in memory, then
//! in a scratch disk store ([`SpillStore`]), or a limit error if spilling is
//! off.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use atrepo_store::{
    Batch, BlockRead, BlockStore, Bytes, MEMORY_OVERHEAD_PER_BLOCK, SpillOptions, SpillStore,
};
use cid::Cid;

use crate::error::{Error, Result};

/// Bytes of recently handed-out records kept to serve a record CID that a
/// second key points to.
const RECENT_BYTES: usize = 256 * 1024;

/// Estimated bytes per entry of the set of handed-out CIDs (16-byte key,
/// control byte, load factor).
const TAKEN_OVERHEAD: u64 = 24;

/// Blocks bound for the spill store are written in batches of about this
/// many bytes (one transaction each); until then they wait in memory, so
/// a spilling buffer may hold up to this much beyond its budget.
pub(crate) const SPILL_BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// What the buffer has seen, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BufferStats {
    /// Blocks that arrived a second time (ignored).
    pub(crate) duplicates: u64,
    /// Most bytes held at once (payload and bookkeeping, memory only).
    pub(crate) peak_memory: u64,
    /// Whether anything went to disk.
    pub(crate) spilled: bool,
}

/// A block buffer the MST walker reads through [`BlockRead`].
///
/// `get` *takes* a block (nodes are read once: the walk refuses a node
/// reached twice); `has` answers for buffered blocks and for records
/// already handed out, since two keys may point to one record.
#[derive(Debug)]
pub(crate) struct Buffer {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    memory: HashMap<Cid, Bytes>,
    memory_bytes: u64,
    limit: u64,
    spill_options: Option<SpillOptions>,
    spill: Option<SpillStore>,
    /// Blocks on their way to the spill store (one batch).
    pending: HashMap<Cid, Bytes>,
    pending_bytes: u64,
    /// Blocks in the spill store, not yet handed out.
    spilled: HashSet<Key>,
    /// Every block handed out, by a 16-byte fingerprint of its CID (the
    /// first 15 digest bytes and the codec). Finding a collision would take
    /// about 2^60 hashing work.
    taken: HashSet<Key>,
    recent: VecDeque<(Cid, Bytes)>,
    recent_bytes: usize,
    stats: BufferStats,
}

type Key = [u8; 16];

fn key(cid: &Cid) -> Key {
    let mut k = [0u8; 16];
    let digest = cid.hash().digest();
    let n = digest.len().min(15);
    if let (Some(dst), Some(src)) = (k.get_mut(..n), digest.get(..n)) {
        dst.copy_from_slice(src);
    }
    // Codecs and hash codes that matter here (dag-cbor 0x71, raw 0x55,
    // sha2-256 0x12) each fit in a byte.
    k[15] = cid.codec().to_le_bytes()[0] ^ cid.hash().code().to_le_bytes()[0].rotate_left(4);
    k
}

impl Buffer {
    /// A buffer holding at most `limit` bytes in memory, spilling with
    /// `spill` (or refusing more, if `None`).
    pub(crate) fn new(limit: u64, spill: Option<SpillOptions>) -> Self {
        Buffer {
            inner: Mutex::new(Inner {
                memory: HashMap::new(),
                memory_bytes: 0,
                limit,
                spill_options: spill,
                spill: None,
                pending: HashMap::new(),
                pending_bytes: 0,
                spilled: HashSet::new(),
                taken: HashSet::new(),
                recent: VecDeque::new(),
                recent_bytes: 0,
                stats: BufferStats::default(),
            }),
        }
    }

    // A poisoned lock only means a panic elsewhere while holding it; every
    // update keeps the maps and counters consistent before any call that
    // could panic.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a block that just arrived. A block already buffered or already
    /// handed out is counted as a duplicate and dropped.
    pub(crate) fn insert(&self, cid: Cid, bytes: Bytes) -> Result<()> {
        let mut inner = self.lock();
        let k = key(&cid);
        if inner.memory.contains_key(&cid)
            || inner.pending.contains_key(&cid)
            || inner.taken.contains(&k)
            || inner.spilled.contains(&k)
        {
            inner.stats.duplicates = inner.stats.duplicates.saturating_add(1);
            return Ok(());
        }
        let cost = (bytes.len() as u64).saturating_add(MEMORY_OVERHEAD_PER_BLOCK);
        if inner.memory_bytes.saturating_add(cost) <= inner.limit {
            inner.memory_bytes = inner.memory_bytes.saturating_add(cost);
            inner.stats.peak_memory = inner.stats.peak_memory.max(inner.memory_bytes);
            inner.memory.insert(cid, bytes);
            return Ok(());
        }
        inner.spill_block(cid, bytes)
    }

    /// Takes a block out of the buffer; `None` if it is not there (or was
    /// already taken).
    pub(crate) fn take(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let mut inner = self.lock();
        inner.take(cid)
    }

    /// Takes a record block. A record that was already handed out (a second
    /// key pointing to the same CID) comes back from a small cache of recent
    /// records if it is still there; otherwise `Ok(None)`, meaning "seen and
    /// verified before, bytes no longer held".
    pub(crate) fn take_record(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let mut inner = self.lock();
        if let Some(bytes) = inner.take(cid)? {
            inner.remember(*cid, bytes.clone());
            return Ok(Some(bytes));
        }
        Ok(inner.recent.iter().find(|(c, _)| c == cid).map(|(_, b)| b.clone()))
    }

    /// Blocks still buffered and their payload bytes: at the end of a walk,
    /// the blocks no part of the repository links to.
    pub(crate) fn leftover(&self) -> Result<(u64, u64)> {
        let inner = self.lock();
        let mut blocks = (inner.memory.len() as u64).saturating_add(inner.pending.len() as u64);
        let mut bytes: u64 =
            inner.memory.values().chain(inner.pending.values()).map(|b| b.len() as u64).sum();
        if let Some(spill) = &inner.spill {
            let mut spilled_blocks = 0u64;
            let mut spilled_bytes = 0u64;
            spill.scan(&mut |cid, data| {
                if inner.spilled.contains(&key(cid)) {
                    spilled_blocks = spilled_blocks.saturating_add(1);
                    spilled_bytes = spilled_bytes.saturating_add(data.len() as u64);
                }
                Ok(())
            })?;
            blocks = blocks.saturating_add(spilled_blocks);
            bytes = bytes.saturating_add(spilled_bytes);
        }
        Ok((blocks, bytes))
    }

    /// Whether a block with this CID is buffered or was handed out.
    pub(crate) fn has_seen(&self, cid: &Cid) -> bool {
        self.lock().has(cid)
    }

    /// Counts a block that arrived again after it was no longer needed.
    pub(crate) fn count_duplicate(&self) {
        let mut inner = self.lock();
        inner.stats.duplicates = inner.stats.duplicates.saturating_add(1);
    }

    /// Counters for the report.
    pub(crate) fn stats(&self) -> BufferStats {
        self.lock().stats
    }
}

impl Inner {
    fn take(&mut self, cid: &Cid) -> Result<Option<Bytes>> {
        let k = key(cid);
        if let Some(bytes) = self.memory.remove(cid) {
            let cost = (bytes.len() as u64).saturating_add(MEMORY_OVERHEAD_PER_BLOCK);
            self.memory_bytes = self.memory_bytes.saturating_sub(cost);
            self.mark_taken(k);
            return Ok(Some(bytes));
        }
        if let Some(bytes) = self.pending.remove(cid) {
            self.pending_bytes = self.pending_bytes.saturating_sub(bytes.len() as u64);
            self.mark_taken(k);
            return Ok(Some(bytes));
        }
        if self.spilled.remove(&k)
            && let Some(spill) = &self.spill
        {
            let bytes = spill.get(cid)?;
            self.mark_taken(k);
            return Ok(bytes);
        }
        Ok(None)
    }

    fn mark_taken(&mut self, k: Key) {
        if self.taken.insert(k) {
            self.memory_bytes = self.memory_bytes.saturating_add(TAKEN_OVERHEAD);
            self.stats.peak_memory = self.stats.peak_memory.max(self.memory_bytes);
        }
    }

    fn remember(&mut self, cid: Cid, bytes: Bytes) {
        if bytes.len() > RECENT_BYTES {
            return;
        }
        self.recent_bytes = self.recent_bytes.saturating_add(bytes.len());
        self.recent.push_back((cid, bytes));
        while self.recent_bytes > RECENT_BYTES {
            match self.recent.pop_front() {
                Some((_, old)) => self.recent_bytes = self.recent_bytes.saturating_sub(old.len()),
                None => break,
            }
        }
    }

    fn spill_block(&mut self, cid: Cid, bytes: Bytes) -> Result<()> {
        let Some(options) = &self.spill_options else {
            let found = self.memory_bytes.saturating_add(bytes.len() as u64);
            return Err(Error::LimitExceeded { what: "memory", limit: self.limit, found });
        };
        if self.spill.is_none() {
            // Everything beyond the budget goes straight to disk.
            self.spill = Some(SpillStore::new(options.clone().memory_limit(0))?);
            self.stats.spilled = true;
        }
        self.pending_bytes = self.pending_bytes.saturating_add(bytes.len() as u64);
        self.pending.insert(cid, bytes);
        if self.pending_bytes >= SPILL_BATCH_BYTES {
            self.flush_pending()?;
        }
        Ok(())
    }

    /// Writes the waiting blocks to the spill store in one transaction.
    fn flush_pending(&mut self) -> Result<()> {
        let Some(spill) = &self.spill else { return Ok(()) };
        let batch: Batch = self.pending.drain().collect();
        for (cid, _) in batch.iter() {
            self.spilled.insert(key(cid));
        }
        self.pending_bytes = 0;
        spill.write(batch)?;
        Ok(())
    }

    fn has(&self, cid: &Cid) -> bool {
        let k = key(cid);
        self.memory.contains_key(cid)
            || self.pending.contains_key(cid)
            || self.spilled.contains(&k)
            || self.taken.contains(&k)
    }
}

impl BlockRead for Buffer {
    fn get(&self, cid: &Cid) -> atrepo_store::Result<Option<Bytes>> {
        let mut inner = self.lock();
        inner.take(cid).map_err(|e| match e {
            Error::Store(e) => e,
            other => atrepo_store::Error::Callback(Box::new(other)),
        })
    }

    fn has(&self, cid: &Cid) -> atrepo_store::Result<bool> {
        Ok(self.lock().has(cid))
    }

    fn scan(
        &self,
        f: &mut dyn FnMut(&Cid, &[u8]) -> atrepo_store::Result<()>,
    ) -> atrepo_store::Result<()> {
        let inner = self.lock();
        for (cid, bytes) in inner.memory.iter().chain(&inner.pending) {
            f(cid, bytes)?;
        }
        if let Some(spill) = &inner.spill {
            spill.scan(&mut |cid, bytes| {
                if inner.spilled.contains(&key(cid)) { f(cid, bytes) } else { Ok(()) }
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atrepo_car::{DAG_CBOR, blessed_cid};

    fn block(n: u32) -> (Cid, Bytes) {
        let bytes = Bytes::from(n.to_be_bytes().to_vec());
        (blessed_cid(DAG_CBOR, &bytes), bytes)
    }

    #[test]
    fn blocks_are_taken_once_and_records_remembered() {
        let buffer = Buffer::new(1 << 20, None);
        let (cid, bytes) = block(1);
        buffer.insert(cid, bytes.clone()).unwrap();
        assert!(buffer.has(&cid).unwrap());
        assert_eq!(buffer.take_record(&cid).unwrap(), Some(bytes.clone()));
        // Still "present" for a second key, and served from the cache.
        assert!(buffer.has(&cid).unwrap());
        assert_eq!(buffer.take_record(&cid).unwrap(), Some(bytes.clone()));
        // Arriving again is a duplicate, not a new block.
        buffer.insert(cid, bytes).unwrap();
        assert_eq!(buffer.stats().duplicates, 1);
        assert_eq!(buffer.leftover().unwrap(), (0, 0));
    }

    #[test]
    fn over_budget_without_spill_is_a_limit_error() {
        let buffer = Buffer::new(MEMORY_OVERHEAD_PER_BLOCK + 4, None);
        let (a, x) = block(1);
        let (b, y) = block(2);
        buffer.insert(a, x).unwrap();
        let err = buffer.insert(b, y).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { what: "memory", .. }), "{err:?}");
    }

    #[test]
    fn memory_is_released_when_blocks_are_taken() {
        let buffer = Buffer::new(2 * (MEMORY_OVERHEAD_PER_BLOCK + 4) + TAKEN_OVERHEAD * 4, None);
        for n in 0..4 {
            let (cid, bytes) = block(n);
            buffer.insert(cid, bytes).unwrap();
            assert!(buffer.take(&cid).unwrap().is_some());
        }
        assert_eq!(buffer.leftover().unwrap(), (0, 0));
    }
}
