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

/// The smallest cache sled accepts, in bytes: it panics below this.
pub const SLED_MIN_CACHE_BYTES: u64 = 256;

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
///
/// A process killed at the wrong moment can leave a folder that sled 0.34
/// refuses to open although no acknowledged write is lost in it (see
/// [`cleared_on_open`](Self::cleared_on_open)); `open` clears those
/// leftovers and opens it.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    write_lock: Mutex<()>,
    path: PathBuf,
    durability: Durability,
    cleared: Vec<String>,
}

impl SledStore {
    /// Opens (creating if needed) the database folder at `path` with durable
    /// writes.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if sled cannot open the folder (another process
    /// holds it, or it is not a sled database); [`Error::Corrupt`] if
    /// clearing what a killed process left fails, or sled refuses the
    /// folder even after it (naming what was removed).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens (creating if needed) the database folder at `path`. A
    /// `cache_bytes` under [`SLED_MIN_CACHE_BYTES`] is raised to it.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let mut config = sled::Config::new().path(path);
        if let Some(bytes) = options.cache_bytes {
            // sled panics on a cache under 256 bytes (its LRU splits the
            // capacity into 256 shards); a smaller ask gets that minimum.
            config = config.cache_capacity(bytes.max(SLED_MIN_CACHE_BYTES));
        }
        let mut cleared = Vec::new();
        let db = match open_waiting_for_lock(&config) {
            Err(sled::Error::Corruption { .. }) => {
                open_clearing_kill_leftovers(path, &config, &mut cleared)?
            }
            other => other.map_err(backend)?,
        };
        Ok(SledStore {
            db,
            write_lock: Mutex::new(()),
            path: path.to_owned(),
            durability: options.durability,
            cleared,
        })
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files `open` removed from the folder before it would open: what
    /// a killed sled process left (empty unless sled first refused the
    /// folder as corrupt). A caller that keeps an operations log may want
    /// to record them.
    ///
    /// - `snap.LSN.generating`: a snapshot sled was writing. sled 0.34
    ///   writes one on every open that finds log written since its last
    ///   snapshot (and at no other time), and renames it to `snap.LSN`
    ///   only once whole and synced; but its next open picks a leftover
    ///   `.generating` file over the committed ones and fails (sled issues
    ///   #1387 and #1527). Without it, sled opens from the last committed
    ///   snapshot and replays the log after it.
    /// - `conf`, when the `db` log file is empty: a folder whose making was
    ///   killed between `conf`'s two writes, before sled wrote anything
    ///   else. sled writes `conf` again when it is absent.
    ///
    /// Only on Linux, macOS and Windows, where sled locks its folder (see
    /// `open_clearing_kill_leftovers`); elsewhere such a folder stays an
    /// error. [`open_with`](crate::open_with) hands out the store as a
    /// `dyn BlockStore`, which does not show this list.
    pub fn cleared_on_open(&self) -> &[String] {
        &self.cleared
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
fn open_waiting_for_lock(config: &sled::Config) -> sled::Result<sled::Db> {
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
            other => return other,
        }
    }
}

/// How long [`open_clearing_kill_leftovers`] waits before it opens a
/// refused folder once more: another process making the same folder may
/// have been between its two writes of `conf` (sled writes `conf` before
/// it takes its lock), and is done with them by then.
const SETTLE: Duration = Duration::from_millis(50);

/// Opens sled folder `path` after sled refused it as corrupt: once more
/// after [`SETTLE`], then, if sled still refuses it and the platform is one
/// where sled locks its folder, after [`clear_kill_leftovers`] removed
/// what a killed sled leaves (the names pushed to `cleared`).
///
/// # Errors
///
/// [`Error::Backend`] with sled's error if nothing was removed;
/// [`Error::Corrupt`] if removing failed or sled refuses the folder even
/// so, saying what was removed.
fn open_clearing_kill_leftovers(
    path: &Path,
    config: &sled::Config,
    cleared: &mut Vec<String>,
) -> Result<sled::Db> {
    std::thread::sleep(SETTLE);
    let refused = match open_waiting_for_lock(config) {
        Err(e @ sled::Error::Corruption { .. }) => e,
        other => return other.map_err(backend),
    };
    // sled 0.34 locks its `db` file only on these (its `try_lock`);
    // elsewhere a live sled would hold no lock to respect.
    if !cfg!(any(target_os = "linux", target_os = "macos", windows)) {
        return Err(backend(refused));
    }
    let corrupt = |what: String| Error::Corrupt { backend: NAME, what };
    match clear_kill_leftovers(path, cleared) {
        Ok(false) => Err(backend(refused)),
        Ok(true) => open_waiting_for_lock(config).map_err(|e| {
            corrupt(format!("sled refuses the folder ({e}) even after removing {cleared:?}"))
        }),
        Err(e) => Err(corrupt(format!(
            "sled refuses the folder ({refused}); removing what a killed sled leaves failed \
             ({e}) after removing {cleared:?}"
        ))),
    }
}

/// Removes from sled folder `path` what a process killed while sled wrote
/// it can leave and sled then refuses (the files listed at
/// [`SledStore::cleared_on_open`]), pushing their names to `cleared`.
/// Returns whether it removed any.
///
/// It holds the exclusive lock on the folder's `db` file, the one sled
/// takes once it has read (or written) `conf` (`flock` on Linux and macOS,
/// `LockFileEx` on Windows, as std's and sled's `fs2` both take it), while
/// it removes: a folder a live sled holds is left alone, so no file a live
/// process is writing is removed. The `db` file is created if absent, as
/// sled's own open would.
fn clear_kill_leftovers(path: &Path, cleared: &mut Vec<String>) -> Result<bool> {
    let log = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path.join("db"))?;
    match log.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    let before = cleared.len();
    for entry in std::fs::read_dir(path)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(path.join(name))?;
            cleared.push(name.to_owned());
        }
    }
    if log.metadata()?.len() == 0 {
        match std::fs::remove_file(path.join("conf")) {
            Ok(()) => cleared.push("conf".to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(log);
    Ok(cleared.len() > before)
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

    fn block(n: u8) -> (Cid, Bytes) {
        crate::util::tests::raw_block(vec![n; 100])
    }

    fn store_with_blocks(path: &Path) -> Vec<Cid> {
        let store = SledStore::open(path).unwrap();
        let blocks: Vec<_> = (0..8).map(block).collect();
        let cids = blocks.iter().map(|(cid, _)| *cid).collect();
        store.write(blocks.into_iter().collect()).unwrap();
        cids
    }

    /// sled's own open, for showing what it refuses.
    fn raw_open(path: &Path) -> sled::Result<sled::Db> {
        open_waiting_for_lock(&sled::Config::new().path(path))
    }

    /// The committed snapshots in sled folder `path`.
    fn snapshots(path: &Path) -> Vec<String> {
        let mut names = crate::util::tests::names(path);
        names.retain(|n| n.starts_with("snap.") && !n.ends_with(".generating"));
        names
    }

    /// A leftover `.generating` snapshot with `contents` beside a store
    /// with blocks (and, with `committed`, a committed snapshot) is
    /// refused by sled, cleared by `SledStore::open`, and every block is
    /// there afterwards.
    fn check_generating_leftover(contents: &[u8], committed: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.sled");
        let mut cids = store_with_blocks(&path);
        if committed {
            // A second session: its open snapshots the first one's log.
            let store = SledStore::open(&path).unwrap();
            let (cid, bytes) = block(100);
            store.write([(cid, bytes)].into_iter().collect()).unwrap();
            cids.push(cid);
            drop(store);
            drop(SledStore::open(&path).unwrap());
            assert!(!snapshots(&path).is_empty(), "no committed snapshot to open from");
        }
        let committed_before = snapshots(&path);
        // What a kill while sled writes a snapshot leaves.
        let leftover = "snap.FFFFFFFFFFFFFFFF.generating";
        std::fs::write(path.join(leftover), contents).unwrap();
        assert!(matches!(raw_open(&path), Err(sled::Error::Corruption { .. })));

        let store = SledStore::open(&path).unwrap();
        assert_eq!(store.cleared_on_open(), [leftover]);
        assert!(!path.join(leftover).exists());
        assert!(snapshots(&path).len() >= committed_before.len());
        for cid in &cids {
            assert!(store.has(cid).unwrap(), "{cid} lost");
        }
        store.check_integrity().unwrap();
    }

    #[test]
    fn an_empty_snapshot_left_generating_is_cleared_and_the_blocks_are_kept() {
        check_generating_leftover(b"", false);
    }

    #[test]
    fn a_partial_snapshot_left_generating_beside_a_committed_one_is_cleared() {
        check_generating_leftover(&[0x5a; 40], true);
    }

    #[test]
    fn a_conf_cut_before_its_checksum_is_cleared_when_the_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.sled");
        drop(SledStore::open(&whole).unwrap());
        let conf = std::fs::read(whole.join("conf")).unwrap();
        // What a kill between sled's two writes of `conf` leaves: the
        // parameters without their 4-byte checksum, and no `db` file yet.
        let path = dir.path().join("blocks.sled");
        std::fs::create_dir_all(path.join("blobs")).unwrap();
        std::fs::write(path.join("conf"), &conf[..conf.len() - 4]).unwrap();
        assert!(matches!(raw_open(&path), Err(sled::Error::Corruption { .. })));

        let store = SledStore::open(&path).unwrap();
        assert_eq!(store.cleared_on_open(), ["conf"]);
        assert!(path.join("conf").exists(), "sled wrote conf again");
        let (cid, bytes) = block(1);
        store.write([(cid, bytes)].into_iter().collect()).unwrap();
        assert!(store.has(&cid).unwrap());
    }

    #[test]
    fn a_cut_conf_is_kept_when_the_log_holds_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.sled");
        store_with_blocks(&path);
        let conf = std::fs::read(path.join("conf")).unwrap();
        std::fs::write(path.join("conf"), &conf[..conf.len() - 4]).unwrap();

        // Only sled's own refusal: nothing removed, nothing to report.
        let err = SledStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::Backend { .. }), "{err:?}");
        assert!(path.join("conf").exists());
    }

    #[test]
    fn a_folder_a_live_sled_holds_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocks.sled");
        let store = SledStore::open(&path).unwrap();
        let leftover = path.join("snap.FFFFFFFFFFFFFFFF.generating");
        std::fs::write(&leftover, b"").unwrap();

        let mut cleared = Vec::new();
        assert!(!clear_kill_leftovers(&path, &mut cleared).unwrap());
        assert!(cleared.is_empty());
        assert!(leftover.exists());
        drop(store);
    }
}

#[cfg(test)]
mod min_cache_tests {
    use super::*;

    /// sled panics on a cache under 256 bytes; `--mem-limit 0 --store
    /// sled` asked for 0 (a black-box review found the panic).
    #[test]
    fn a_cache_under_sleds_minimum_opens() {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [0, 1, 255] {
            let options = OpenOptions { cache_bytes: Some(bytes), ..OpenOptions::default() };
            let path = dir.path().join(format!("db{bytes}"));
            let store = SledStore::open_with(&path, &options).unwrap();
            drop(store);
        }
    }
}
