//! [`SpillStore`]: memory up to a budget, then a scratch disk store.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use bytes::Bytes;
use cid::Cid;

use crate::open::open_disk;
use crate::scratch::{ScratchDir, clean_stale};
use crate::{
    Backend, Batch, BlockRead, BlockStore, Error, MemoryStore, OpenOptions, Result, Usage,
    memory_overhead,
};

/// Blocks copied to disk per transaction when a spill store hands over.
const HAND_OFF_CHUNK_BYTES: u64 = 8 * 1024 * 1024;

/// How a [`SpillStore`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpillOptions {
    /// Memory budget in bytes, counting each block's payload plus its
    /// [`memory_overhead`](crate::memory_overhead). Default 64 MiB.
    pub memory_limit: u64,
    /// Cap on the payload bytes the scratch store may hold; crossing it is
    /// [`Error::LimitExceeded`] with `what: "spilled bytes"`. Default 64 GiB.
    pub max_spilled: u64,
    /// The backend to spill to, or `None` to never spill (crossing the
    /// memory budget is then [`Error::LimitExceeded`] with
    /// `what: "memory"`). Default: the first of redb, SQLite and sled that
    /// is compiled in.
    pub target: Option<Backend>,
    /// The folder under which scratch folders are made. Default
    /// [`std::env::temp_dir`].
    pub parent: PathBuf,
    /// How the scratch store is opened. Default [`OpenOptions::scratch`]:
    /// no durability (the files are deleted anyway) and a 16 MiB cache.
    pub open: OpenOptions,
}

impl SpillOptions {
    /// The default memory budget, 64 MiB.
    pub const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
    /// The default cap on spilled payload, 64 GiB: far more than any atproto
    /// repository, far less than a filled disk.
    pub const DEFAULT_MAX_SPILLED: u64 = 64 * 1024 * 1024 * 1024;

    /// Returns these options with `memory_limit` set.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Returns these options with `max_spilled` set.
    pub fn max_spilled(mut self, bytes: u64) -> Self {
        self.max_spilled = bytes;
        self
    }

    /// Returns these options spilling to `backend`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSpec`] unless `backend` is a writable disk backend,
    /// and [`Error::NotCompiled`] if this build leaves it out.
    pub fn target(mut self, backend: Backend) -> Result<Self> {
        if !backend.is_disk() || !backend.is_writable() {
            return Err(Error::InvalidSpec {
                spec: backend.name().to_owned(),
                expected: "a writable disk backend: redb, sqlite or sled",
            });
        }
        if !backend.is_compiled() {
            return Err(Error::NotCompiled { backend: backend.name() });
        }
        self.target = Some(backend);
        Ok(self)
    }

    /// Returns these options spilling to the backend named by `spec`
    /// (`redb`, `sqlite` or `sled`).
    ///
    /// # Errors
    ///
    /// As [`target`](Self::target), and [`Error::InvalidSpec`] for a name
    /// that is no backend.
    pub fn target_spec(self, spec: &str) -> Result<Self> {
        self.target(spec.parse()?)
    }

    /// Returns these options never spilling.
    pub fn no_spill(mut self) -> Self {
        self.target = None;
        self
    }

    /// Returns these options with scratch folders made under `parent`.
    pub fn parent(mut self, parent: impl Into<PathBuf>) -> Self {
        self.parent = parent.into();
        self
    }

    /// Returns these options with the scratch store opened with `open`.
    pub fn open_options(mut self, open: OpenOptions) -> Self {
        self.open = open;
        self
    }
}

impl Default for SpillOptions {
    fn default() -> Self {
        let target =
            [Backend::Redb, Backend::Sqlite, Backend::Sled].into_iter().find(|b| b.is_compiled());
        SpillOptions {
            memory_limit: Self::DEFAULT_MEMORY_LIMIT,
            max_spilled: Self::DEFAULT_MAX_SPILLED,
            target,
            parent: std::env::temp_dir(),
            open: OpenOptions::scratch(),
        }
    }
}

/// Blocks in memory up to a budget, then in a scratch disk store.
///
/// Starts as a [`MemoryStore`]. The first write that would take memory use
/// (payload plus [`memory_overhead`] per block) past
/// [`SpillOptions::memory_limit`] creates a scratch folder
/// `atrepo-spill-<pid>-<n>` under [`SpillOptions::parent`], opens the
/// target backend in it, copies every block there, writes the batch, and
/// from then on serves everything from disk. Readers see every block
/// throughout: they keep reading memory until the disk store is complete.
///
/// The scratch folder is removed when the store is dropped. Folders left by
/// a process that crashed are removed by the next [`SpillStore::new`] under
/// the same parent (see [`clean_stale`](crate::clean_stale)).
///
/// A write that would take the spilled payload past
/// [`SpillOptions::max_spilled`] fails with [`Error::LimitExceeded`] and
/// changes nothing, which turns a hostile CAR that would fill the disk into
/// a typed error.
#[derive(Debug)]
pub struct SpillStore {
    options: SpillOptions,
    memory: MemoryStore,
    disk: RwLock<Option<Spilled>>,
    write_lock: Mutex<()>,
}

struct Spilled {
    // Dropped before `dir`, so the store's files are closed before the
    // folder is removed.
    store: Box<dyn BlockStore>,
    dir: ScratchDir,
}

impl std::fmt::Debug for Spilled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spilled").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl SpillStore {
    /// A store with the given options, in memory until it spills. Removes
    /// stale scratch folders under the options' parent first.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a stale scratch folder cannot be removed.
    pub fn new(options: SpillOptions) -> Result<Self> {
        clean_stale(&options.parent)?;
        Ok(SpillStore {
            options,
            memory: MemoryStore::new(),
            disk: RwLock::new(None),
            write_lock: Mutex::new(()),
        })
    }

    /// The options the store was made with.
    pub fn options(&self) -> &SpillOptions {
        &self.options
    }

    /// Whether the store has moved to disk.
    pub fn is_spilled(&self) -> bool {
        self.disk_lock().is_some()
    }

    /// The scratch folder, once the store has spilled.
    pub fn scratch_dir(&self) -> Option<PathBuf> {
        self.disk_lock().as_ref().map(|s| s.dir.path().to_owned())
    }

    fn disk_lock(&self) -> RwLockReadGuard<'_, Option<Spilled>> {
        // The guarded value is only ever replaced whole, so a poisoned lock
        // still holds a consistent value.
        self.disk.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Payload and memory cost of the blocks of `batch` not yet in `has`.
    fn new_cost(batch: &Batch, mut has: impl FnMut(&Cid) -> Result<bool>) -> Result<(u64, u64)> {
        let mut seen = HashSet::new();
        let (mut payload, mut overhead) = (0u64, 0u64);
        for (cid, bytes) in batch.iter() {
            if !seen.contains(cid) && !has(cid)? {
                seen.insert(*cid);
                payload = payload.saturating_add(bytes.len() as u64);
                overhead = overhead.saturating_add(memory_overhead(cid));
            }
        }
        Ok((payload, payload.saturating_add(overhead)))
    }

    fn check_spill_cap(&self, stored: u64, adding: u64) -> Result<()> {
        let needed = stored.saturating_add(adding);
        if needed > self.options.max_spilled {
            return Err(Error::LimitExceeded {
                what: "spilled bytes",
                limit: self.options.max_spilled,
                actual: needed,
            });
        }
        Ok(())
    }

    /// Moves everything to a new scratch store, with `batch` on top.
    fn spill(&self, target: Backend, batch: Batch) -> Result<()> {
        let dir = ScratchDir::create(&self.options.parent)?;
        let store = open_disk(target, &dir.path().join("blocks"), &self.options.open)?;
        let mut chunk = Batch::new();
        self.memory.scan(&mut |cid, bytes| {
            chunk.put(*cid, Bytes::copy_from_slice(bytes));
            if chunk.payload_bytes() >= HAND_OFF_CHUNK_BYTES {
                store.write(std::mem::take(&mut chunk))?;
            }
            Ok(())
        })?;
        store.write(chunk)?;
        store.write(batch)?;
        let mut disk = self.disk.write().unwrap_or_else(PoisonError::into_inner);
        *disk = Some(Spilled { store, dir });
        drop(disk);
        // Readers now go to disk; free the memory copy.
        drop(self.memory.drain());
        Ok(())
    }
}

impl SpillStore {
    /// Runs `f` on the store that holds the blocks now: the scratch store
    /// once spilled, the memory store before.
    fn reading<T>(&self, f: impl FnOnce(&dyn BlockRead) -> T) -> T {
        match &*self.disk_lock() {
            Some(spilled) => f(&*spilled.store),
            None => f(&self.memory),
        }
    }
}

/// Every read goes to the store that holds the blocks now, so the memory
/// store's lending `read_with` and `look_ahead` serve a store that has not
/// spilled.
impl BlockRead for SpillStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        self.reading(|s| s.get(cid))
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        self.reading(|s| s.has(cid))
    }

    fn read_with(&self, cid: &Cid, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.reading(|s| s.read_with(cid, f))
    }

    fn look_ahead(&self, cids: &[Cid], present: &mut Vec<bool>) -> Result<()> {
        self.reading(|s| s.look_ahead(cids, present))
    }

    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        self.reading(|s| s.scan(f))
    }
}

impl BlockStore for SpillStore {
    fn write(&self, batch: Batch) -> Result<()> {
        let _writer = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
        {
            let disk = self.disk_lock();
            if let Some(spilled) = &*disk {
                let (payload, _) = Self::new_cost(&batch, |c| spilled.store.has(c))?;
                let stored = spilled.store.usage()?.payload_bytes;
                self.check_spill_cap(stored, payload)?;
                return spilled.store.write(batch);
            }
        }
        let (payload, cost) = Self::new_cost(&batch, |c| self.memory.has(c))?;
        let usage = self.memory.usage()?;
        let needed = usage.total_bytes().saturating_add(cost);
        if needed <= self.options.memory_limit {
            return self.memory.write(batch);
        }
        let Some(target) = self.options.target else {
            return Err(Error::LimitExceeded {
                what: "memory",
                limit: self.options.memory_limit,
                actual: needed,
            });
        };
        self.check_spill_cap(usage.payload_bytes, payload)?;
        self.spill(target, batch)
    }

    fn usage(&self) -> Result<Usage> {
        match &*self.disk_lock() {
            Some(spilled) => spilled.store.usage(),
            None => self.memory.usage(),
        }
    }

    fn flush(&self) -> Result<()> {
        match &*self.disk_lock() {
            Some(spilled) => spilled.store.flush(),
            None => Ok(()),
        }
    }
}
