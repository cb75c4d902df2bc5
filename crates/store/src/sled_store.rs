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

use crate::creating;
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
/// A folder that does not exist yet is made under a temporary name beside
/// its path (`.NAME.PID.NANOS.N.creating`) and renamed into place once
/// whole, as the redb backend does with its file.
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
        let (dir, name) = creating::dir_and_name(path);
        creating::sweep(dir, &name);
        if !path.exists() {
            create_new(path, dir, &name)?;
        }
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

/// Makes a new, empty database folder at `path`, so that a crash leaves
/// either no folder there or a whole database: sled writes a new folder's
/// `conf` file in two unsynced writes, so a process killed between them
/// (or a power loss before they reach the disk) left a folder every later
/// open refused. The folder is made under a temporary name beside `path`
/// (see `creating.rs`), flushed, its files and itself synced, then renamed
/// into place, which fails if another process made `path` meanwhile (that
/// one is then opened as it is).
///
/// The temporary handle keeps sled's background flusher: its thread holds
/// the folder's lock until the handle is wholly gone, so the open that
/// follows waits for it ([`open_waiting_for_lock`]). Without a flusher
/// the lock came free sooner, and the crash test found the folder corrupt
/// after kills just after it appeared (3 of 10 runs).
fn create_new(path: &Path, dir: &Path, name: &str) -> Result<()> {
    let tmp = creating::temporary_name(dir, name);
    let made = (|| {
        let db = open_waiting_for_lock(&sled::Config::new().path(&tmp))?;
        db.flush().map_err(backend)?;
        drop(db);
        sync_folder(&tmp, 2)?;
        match std::fs::rename(&tmp, path) {
            Ok(()) => creating::sync_dir(dir),
            // Made by another process meanwhile: a folder with files in it
            // is not replaced (an empty one made since the check would be,
            // which loses nothing). Other errors (no permission, say) are
            // errors.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
                ) && path.exists() =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    })();
    creating::remove(&tmp);
    made
}

/// Syncs every file in folder `dir`, down to `depth` folders below (sled
/// keeps large values in `blobs/`), then the folder itself.
fn sync_folder(dir: &Path, depth: u32) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            if depth > 0 {
                sync_folder(&entry.path(), depth - 1)?;
            }
        } else {
            std::fs::File::open(entry.path())?.sync_all()?;
        }
    }
    creating::sync_dir(dir)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creating::tests::{names, one_block};

    #[test]
    fn a_new_database_appears_whole_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        // What crashes while making an earlier one left: a temporary
        // folder with half a `conf`. One whose owner is dead is removed (a
        // pid above Linux's pid_max); one whose owner lives is not, nor
        // another database's.
        let dead = dir.path().join(".blocks.sled.4294967.5.6.creating");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("conf"), b"segment_size: 52").unwrap();
        let ours = format!(".blocks.sled.{}.2.3.creating", std::process::id());
        std::fs::create_dir(dir.path().join(&ours)).unwrap();
        std::fs::create_dir(dir.path().join(".other.sled.4294967.5.6.creating")).unwrap();
        let path = dir.path().join("blocks.sled");
        let store = SledStore::open(&path).unwrap();
        let (cid, bytes, batch) = one_block();
        store.write(batch).unwrap();
        drop(store);
        let mut left =
            vec![ours, ".other.sled.4294967.5.6.creating".to_owned(), "blocks.sled".to_owned()];
        left.sort();
        assert_eq!(names(dir.path()), left);
        // The folder holds sled's files, not a folder of its own.
        assert!(path.join("conf").is_file() && path.join("db").is_file());
        // Made again (another process that raced this one): the folder
        // that is there wins, and the temporary one is gone.
        create_new(&path, dir.path(), "blocks.sled").unwrap();
        assert_eq!(names(dir.path()), left);
        let store = SledStore::open(&path).unwrap();
        store.check_integrity().unwrap();
        assert_eq!(store.get(&cid).unwrap(), Some(bytes));
    }
}
