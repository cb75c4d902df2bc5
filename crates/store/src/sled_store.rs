//! [`SledStore`]: blocks in a sled database (feature `sled`).
//!
//! Layout: the default tree maps the CID's binary form to the block bytes.
//! The key `[0x00]`, which no CID's binary form starts with (CIDv1 starts
//! with `0x01`, CIDv0 with `0x12`), holds the counters: blocks then payload
//! bytes, each a big-endian `u64`. They are written in the same atomic
//! sled batch as the blocks.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;

use crate::util::{Counters, cid_from_key, key_of};
use crate::{Batch, BlockRead, BlockStore, Durability, Error, OpenOptions, Result, Usage};

const NAME: &str = "sled";
const COUNTERS_KEY: &[u8] = &[0x00];

fn backend(e: sled::Error) -> Error {
    Error::backend(NAME, e)
}

/// Blocks in a [sled](https://docs.rs/sled/0.34) database: a folder, pure
/// Rust, a lock-free log-structured tree.
///
/// sled 0.34 is the last released line and is no longer developed (its
/// author is writing a successor); see `docs/choosing-a-backend.md` before
/// choosing it for new deployments.
///
/// Each [`Batch`] is applied with one atomic `apply_batch`. With
/// [`Durability::Immediate`] (the default) `write` calls `flush()` before
/// returning; with [`Durability::None`] sled flushes in the background every
/// 500 ms and on [`flush`](BlockStore::flush). Writes are serialised by a
/// mutex so that the duplicate check and the counters stay exact; reads are
/// lock-free and hand out sled's own buffer without copying.
///
/// [`Usage::overhead_bytes`] is sled's `size_on_disk` minus the payload.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    write_lock: Mutex<()>,
    path: PathBuf,
    durability: Durability,
}

impl SledStore {
    /// Opens (creating if needed) the database folder at `path` with durable
    /// writes.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if sled cannot open the folder (another process
    /// holds it, or it is not a sled database).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens (creating if needed) the database folder at `path`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let mut config = sled::Config::new().path(path);
        if let Some(bytes) = options.cache_bytes {
            config = config.cache_capacity(bytes);
        }
        let db = open_waiting_for_lock(&config)?;
        Ok(SledStore {
            db,
            write_lock: Mutex::new(()),
            path: path.to_owned(),
            durability: options.durability,
        })
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every page (sled's `checksum`), then checks that every key is a
    /// CID and the counters match the blocks.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if a key does not parse or the counters disagree;
    /// [`Error::Backend`] if sled cannot read its pages.
    pub fn check_integrity(&self) -> Result<()> {
        self.db.checksum().map_err(backend)?;
        crate::util::check_counters(NAME, self)
    }

    fn counters(&self) -> Result<Counters> {
        let Some(raw) = self.db.get(COUNTERS_KEY).map_err(backend)? else {
            return Ok(Counters::default());
        };
        let corrupt = || Error::Corrupt {
            backend: NAME,
            what: format!("expected 16 bytes of counters, found {}", raw.len()),
        };
        let (blocks, payload) = raw.split_at_checked(8).ok_or_else(corrupt)?;
        let blocks = <[u8; 8]>::try_from(blocks).map_err(|_| corrupt())?;
        let payload = <[u8; 8]>::try_from(payload).map_err(|_| corrupt())?;
        Ok(Counters { blocks: u64::from_be_bytes(blocks), payload: u64::from_be_bytes(payload) })
    }
}

/// How long [`SledStore::open`] waits for a previous handle's lock.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Opens `config`, waiting a little while the folder's lock is held.
///
/// sled 0.34 releases its file lock only when its background flusher thread
/// exits, which `Db`'s `drop` does not wait for (sled issue #1234): an open
/// right after a close in the same process can find the lock still held.
/// That is retried with backoff for up to [`LOCK_WAIT`]; a lock held by a
/// live process for longer is reported.
fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match config.open() {
            // sled reports the failed `try_lock_exclusive` as `Other` with
            // this message, not as `WouldBlock`.
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && start.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other.map_err(backend),
        }
    }
}

impl BlockRead for SledStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        Ok(self.db.get(key_of(cid)).map_err(backend)?.map(Bytes::from_owner))
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        self.db.contains_key(key_of(cid)).map_err(backend)
    }

    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        for entry in self.db.iter() {
            let (key, value) = entry.map_err(backend)?;
            if &*key == COUNTERS_KEY {
                continue;
            }
            let cid = cid_from_key(NAME, &key)?;
            f(&cid, &value)?;
        }
        Ok(())
    }
}

impl BlockStore for SledStore {
    fn write(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let _writer = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counters = self.counters()?;
        let mut seen = std::collections::HashSet::new();
        let mut sled_batch = sled::Batch::default();
        for (cid, bytes) in batch {
            let key = key_of(&cid);
            // The first bytes stored under a CID win (see the trait).
            if !seen.contains(&key) && !self.db.contains_key(&key).map_err(backend)? {
                counters.add(bytes.len());
                sled_batch.insert(key.as_slice(), &bytes[..]);
                seen.insert(key);
            }
        }
        let mut raw = [0u8; 16];
        let (b, p) = raw.split_at_mut(8);
        b.copy_from_slice(&counters.blocks.to_be_bytes());
        p.copy_from_slice(&counters.payload.to_be_bytes());
        sled_batch.insert(COUNTERS_KEY, &raw[..]);
        self.db.apply_batch(sled_batch).map_err(backend)?;
        if self.durability == Durability::Immediate {
            self.db.flush().map_err(backend)?;
        }
        Ok(())
    }

    fn usage(&self) -> Result<Usage> {
        let counters = self.counters()?;
        Ok(counters.usage(self.db.size_on_disk().map_err(backend)?))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(backend).map(drop)
    }
}
