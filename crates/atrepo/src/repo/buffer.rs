//! The block buffer between a CAR stream and the MST walk.
//!
//! Blocks wait here from the moment they are read until the walk reaches
//! them; each is handed out once and then dropped.
//!
//! Two lanes keep the common case cheap:
//!
//! - the *fast lane* is a queue in arrival order. In the streamable order
//!   (commit, then nodes in pre-order with records after their entries) the
//!   walk always wants the block at the front, so a lookup is one CID
//!   comparison and no hashing;
//! - the *slow lane* is a map. When the walk wants something else, the
//!   blocks in front of the queue move into the map (each block moves at
//!   most once) and lookups go there.
//!
//! Past the memory budget, new blocks go to a scratch disk store
//! ([`SpillStore`]) in batches, or the buffer refuses them with a limit
//! error if spilling is off.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use atrepo_store::{
    Batch, BlockRead, BlockStore, Bytes, CidKey, CidKeySet, CidMap, MEMORY_OVERHEAD_PER_BLOCK,
    SpillOptions, SpillStore,
};
use cid::Cid;

use crate::error::{Error, Result};

/// Estimated bytes per entry of the set of handed-out CIDs (16-byte key,
/// control byte, load factor).
const TAKEN_OVERHEAD: u64 = 24;

/// Blocks bound for the spill store are written in batches of about this
/// many bytes, per-block overhead included (one transaction each); until
/// then they wait in memory, so a spilling buffer may hold up to this much
/// beyond its budget.
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

type Key = CidKey;
type KeySet = CidKeySet;

fn key(cid: &Cid) -> Key {
    CidKey::of(cid)
}

/// A block buffer the MST walker reads through [`BlockRead`].
///
/// `get` *takes* a block (nodes are read once: the walk refuses a node
/// reached twice); `has` answers for buffered blocks and for blocks already
/// handed out, since two keys may point to one record.
#[derive(Debug)]
pub(crate) struct Buffer {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The fast lane: arrived, not yet looked at, in arrival order.
    queue: VecDeque<(Cid, Bytes)>,
    /// The slow lane.
    memory: CidMap<Bytes>,
    /// Payload and bookkeeping of everything held in memory.
    memory_bytes: u64,
    limit: u64,
    spill_options: Option<SpillOptions>,
    spill: Option<SpillStore>,
    /// Blocks on their way to the spill store (one batch).
    pending: CidMap<Bytes>,
    pending_bytes: u64,
    /// Blocks in the spill store, not yet handed out.
    spilled: KeySet,
    /// Every block handed out.
    taken: KeySet,
    stats: BufferStats,
}

/// CID equality comparing the digest bytes actually used, not the whole
/// 64-byte digest array the `cid` crate stores.
fn same(a: &Cid, b: &Cid) -> bool {
    a.hash().digest() == b.hash().digest()
        && a.codec() == b.codec()
        && a.hash().code() == b.hash().code()
        && a.version() == b.version()
}

/// Bytes of the fast lane per block: a queue slot, counted twice because
/// the queue grows by doubling and keeps its capacity when blocks move on
/// to the slow lane (without it, millions of tiny blocks used half as much
/// again as the limit: `tests/bounds.rs`).
const QUEUE_SLOT: u64 = 2 * size_of::<(Cid, Bytes)>() as u64;

/// What a buffered block costs: its payload, its slow-lane slot and
/// bookkeeping, and its fast-lane slot.
fn cost(bytes: &Bytes) -> u64 {
    (bytes.len() as u64).saturating_add(MEMORY_OVERHEAD_PER_BLOCK).saturating_add(QUEUE_SLOT)
}

impl Buffer {
    /// A buffer holding at most `limit` bytes in memory, spilling with
    /// `spill` (or refusing more, if `None`).
    pub(crate) fn new(limit: u64, spill: Option<SpillOptions>) -> Self {
        Buffer {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                memory: CidMap::default(),
                memory_bytes: 0,
                limit,
                spill_options: spill,
                spill: None,
                pending: CidMap::default(),
                pending_bytes: 0,
                spilled: KeySet::default(),
                taken: KeySet::default(),
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

    /// Adds a block that just arrived. Duplicates are noticed when the block
    /// leaves the fast lane.
    pub(crate) fn insert(&self, cid: Cid, bytes: Bytes) -> Result<()> {
        let mut inner = self.lock();
        let c = cost(&bytes);
        if inner.memory_bytes.saturating_add(c) <= inner.limit {
            inner.memory_bytes = inner.memory_bytes.saturating_add(c);
            inner.stats.peak_memory = inner.stats.peak_memory.max(inner.memory_bytes);
            inner.queue.push_back((cid, bytes));
            return Ok(());
        }
        // Over budget: sort out what is queued (dropping duplicates), then
        // send the new block to disk unless it is a duplicate too.
        inner.index_queue()?;
        if inner.knows(&cid) {
            inner.stats.duplicates = inner.stats.duplicates.saturating_add(1);
            return Ok(());
        }
        inner.spill_block(cid, bytes)
    }

    /// Takes a block out of the buffer; `None` if it is not there (or was
    /// already taken). Nodes are taken this way: the walk remembers them.
    pub(crate) fn take(&self, cid: &Cid) -> Result<Option<Bytes>> {
        self.lock().take(cid)
    }

    /// Takes a record block and remembers its CID, since a second key may
    /// point to the same record: then it is `Ok(None)`, seen and verified
    /// before, bytes no longer held.
    pub(crate) fn take_record(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let mut inner = self.lock();
        let bytes = inner.take(cid)?;
        if bytes.is_some() {
            inner.mark_taken(key(cid));
        }
        Ok(bytes)
    }

    /// Whether a block with this CID is buffered or was handed out.
    pub(crate) fn has_seen(&self, cid: &Cid) -> Result<bool> {
        let mut inner = self.lock();
        inner.locate(cid)?;
        Ok(inner.knows(cid))
    }

    /// Counts a block that arrived again after it was no longer needed.
    pub(crate) fn count_duplicate(&self) {
        let mut inner = self.lock();
        inner.stats.duplicates = inner.stats.duplicates.saturating_add(1);
    }

    /// Blocks still buffered and their payload bytes: at the end of a walk,
    /// the blocks no part of the repository links to. Blocks for which
    /// `used` says the walk read them (a node that arrived twice) count as
    /// duplicates instead.
    pub(crate) fn leftover(&self, used: &dyn Fn(&Cid) -> bool) -> Result<(u64, u64)> {
        let mut inner = self.lock();
        inner.index_queue()?;
        let (mut blocks, mut bytes, mut dups) = (0u64, 0u64, 0u64);
        let mut count = |cid: &Cid, len: usize| {
            if used(cid) {
                dups = dups.saturating_add(1);
            } else {
                blocks = blocks.saturating_add(1);
                bytes = bytes.saturating_add(len as u64);
            }
        };
        for (cid, data) in inner.memory.iter().chain(&inner.pending) {
            count(cid, data.len());
        }
        if let Some(spill) = &inner.spill {
            spill.scan(&mut |cid, data| {
                if inner.spilled.contains(&key(cid)) {
                    count(cid, data.len());
                }
                Ok(())
            })?;
        }
        inner.stats.duplicates = inner.stats.duplicates.saturating_add(dups);
        Ok((blocks, bytes))
    }

    /// Counters for the report.
    pub(crate) fn stats(&self) -> BufferStats {
        self.lock().stats
    }
}

impl Inner {
    /// Moves blocks from the front of the queue into the slow lane until
    /// `cid` is at the front (`Ok(true)`) or the queue is empty
    /// (`Ok(false)`).
    fn locate(&mut self, cid: &Cid) -> Result<bool> {
        while let Some((front, _)) = self.queue.front() {
            if same(front, cid) {
                return Ok(true);
            }
            if let Some((c, b)) = self.queue.pop_front() {
                self.index(c, b)?;
            }
        }
        Ok(false)
    }

    /// Moves every queued block into the slow lane.
    fn index_queue(&mut self) -> Result<()> {
        while let Some((c, b)) = self.queue.pop_front() {
            self.index(c, b)?;
        }
        Ok(())
    }

    /// Puts a block that left the queue into the slow lane, or drops it as
    /// a duplicate.
    fn index(&mut self, cid: Cid, bytes: Bytes) -> Result<()> {
        if self.knows(&cid) {
            self.memory_bytes = self.memory_bytes.saturating_sub(cost(&bytes));
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
            return Ok(());
        }
        self.memory.insert(cid, bytes);
        Ok(())
    }

    /// Whether the slow lane, the spill store or the taken set knows `cid`
    /// (the queue is not searched).
    fn knows(&self, cid: &Cid) -> bool {
        self.memory.contains_key(cid) || self.pending.contains_key(cid) || {
            let k = key(cid);
            self.taken.contains(&k) || self.spilled.contains(&k)
        }
    }

    fn take(&mut self, cid: &Cid) -> Result<Option<Bytes>> {
        if self.locate(cid)?
            && let Some((_, bytes)) = self.queue.pop_front()
        {
            self.memory_bytes = self.memory_bytes.saturating_sub(cost(&bytes));
            // An earlier copy may have gone to the slow lane already.
            if !self.memory.is_empty()
                && let Some(copy) = self.memory.remove(cid)
            {
                self.memory_bytes = self.memory_bytes.saturating_sub(cost(&copy));
                self.stats.duplicates = self.stats.duplicates.saturating_add(1);
            }
            return Ok(Some(bytes));
        }
        if let Some(bytes) = self.memory.remove(cid) {
            self.memory_bytes = self.memory_bytes.saturating_sub(cost(&bytes));
            return Ok(Some(bytes));
        }
        if let Some(bytes) = self.pending.remove(cid) {
            self.pending_bytes = self.pending_bytes.saturating_sub(cost(&bytes));
            return Ok(Some(bytes));
        }
        let k = key(cid);
        if self.spilled.remove(&k)
            && let Some(spill) = &self.spill
        {
            return Ok(spill.get(cid)?);
        }
        Ok(None)
    }

    fn has(&mut self, cid: &Cid) -> Result<bool> {
        Ok(self.locate(cid)? || self.knows(cid))
    }

    fn mark_taken(&mut self, k: Key) {
        if self.taken.insert(k) {
            self.memory_bytes = self.memory_bytes.saturating_add(TAKEN_OVERHEAD);
            self.stats.peak_memory = self.stats.peak_memory.max(self.memory_bytes);
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
        // Counted with per-block overhead, so that a batch of tiny blocks
        // is bounded in memory too, not only in payload.
        self.pending_bytes = self.pending_bytes.saturating_add(cost(&bytes));
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
}

fn store_error(e: Error) -> atrepo_store::Error {
    match e {
        Error::Store(e) => e,
        other => atrepo_store::Error::Callback(Box::new(other)),
    }
}

impl BlockRead for Buffer {
    fn get(&self, cid: &Cid) -> atrepo_store::Result<Option<Bytes>> {
        self.lock().take(cid).map_err(store_error)
    }

    fn has(&self, cid: &Cid) -> atrepo_store::Result<bool> {
        self.lock().has(cid).map_err(store_error)
    }

    fn scan(
        &self,
        f: &mut dyn FnMut(&Cid, &[u8]) -> atrepo_store::Result<()>,
    ) -> atrepo_store::Result<()> {
        let inner = self.lock();
        for (cid, bytes) in
            inner.queue.iter().map(|(c, b)| (c, b)).chain(&inner.memory).chain(&inner.pending)
        {
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
    fn blocks_are_taken_once_and_remembered_as_seen() {
        let buffer = Buffer::new(1 << 20, None);
        let (cid, bytes) = block(1);
        buffer.insert(cid, bytes.clone()).unwrap();
        assert!(buffer.has(&cid).unwrap());
        assert_eq!(buffer.take_record(&cid).unwrap(), Some(bytes.clone()));
        // Still "present" for a second key, its bytes no longer held.
        assert!(buffer.has(&cid).unwrap());
        assert_eq!(buffer.take_record(&cid).unwrap(), None);
        // Arriving again is a duplicate, noticed once it leaves the queue.
        buffer.insert(cid, bytes).unwrap();
        assert_eq!(buffer.leftover(&|_| false).unwrap(), (0, 0));
        assert_eq!(buffer.stats().duplicates, 1);
    }

    #[test]
    fn out_of_order_blocks_are_found_in_the_slow_lane() {
        let buffer = Buffer::new(1 << 20, None);
        let blocks: Vec<_> = (0..10).map(block).collect();
        for (cid, bytes) in &blocks {
            buffer.insert(*cid, bytes.clone()).unwrap();
        }
        for (cid, bytes) in blocks.iter().rev() {
            assert_eq!(buffer.take(cid).unwrap().as_ref(), Some(bytes));
        }
        assert_eq!(buffer.leftover(&|_| false).unwrap(), (0, 0));
    }

    #[test]
    fn over_budget_without_spill_is_a_limit_error() {
        let buffer = Buffer::new(MEMORY_OVERHEAD_PER_BLOCK + QUEUE_SLOT + 4, None);
        let (a, x) = block(1);
        let (b, y) = block(2);
        buffer.insert(a, x).unwrap();
        let err = buffer.insert(b, y).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { what: "memory", .. }), "{err:?}");
    }

    #[test]
    fn memory_is_released_when_blocks_are_taken() {
        let buffer = Buffer::new(
            2 * (MEMORY_OVERHEAD_PER_BLOCK + QUEUE_SLOT + 4) + TAKEN_OVERHEAD * 4,
            None,
        );
        for n in 0..4 {
            let (cid, bytes) = block(n);
            buffer.insert(cid, bytes).unwrap();
            assert!(buffer.take(&cid).unwrap().is_some());
        }
        assert_eq!(buffer.leftover(&|_| false).unwrap(), (0, 0));
    }
}
