//! [`RedbStore`]: blocks in a redb database file (feature `redb`).
//!
//! Layout: table `blocks` maps the CID's binary form to the block bytes;
//! table `meta` holds the counters `blocks` and `payload`, updated in the
//! same write transaction as the blocks, so [`Usage`] is exact and costs no
//! scan.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use cid::Cid;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::creating;
use crate::util::{Counters, cid_from_key, key_of};
use crate::{Batch, BlockRead, BlockStore, Durability, Error, OpenOptions, Result, Usage};

const BLOCKS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
const NAME: &str = "redb";

fn backend(e: impl Into<redb::Error>) -> Error {
    Error::backend(NAME, e.into())
}

/// Makes a new, empty database at `path`, so that a crash leaves either no
/// file there or a whole database with both tables: redb writes a new
/// file's header in several steps, and a process killed among them left a
/// file every later open refused ("Not a redb database"; the crash test
/// found it). The database is made under a temporary name beside `path`,
/// committed durably and closed, then linked into place, which fails if
/// another process made `path` meanwhile (that one is then opened as it
/// is); where the filesystem has no hard links, it is renamed into place
/// unless the name was taken. A crash before that leaves only the
/// temporary file, `.NAME.PID.NANOS.N.creating`, which the next open of
/// the same name removes (see `creating.rs`). (An empty file someone
/// made at `path` beforehand is set up in place by redb, as before.)
/// Returns whether this call made the database (not another process).
fn create_new(builder: &redb::Builder, path: &Path, dir: &Path, name: &str) -> Result<bool> {
    let tmp = creating::temporary_name(dir, name);
    let made = (|| {
        std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let db = builder.create(&tmp).map_err(backend)?;
        create_tables(&db)?;
        db.close().map_err(backend)?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            // No hard links here (FAT, some network mounts): a rename,
            // unless another process made the file meanwhile (best effort:
            // a rename replaces a file made between the check and it).
            Err(_) if !path.exists() => std::fs::rename(&tmp, path)?,
            Err(e) => return Err(e.into()),
        }
        creating::sync_dir(dir)?;
        Ok(true)
    })();
    // Best effort: the name in place (or the other process's file) is the
    // database; the temporary name is ours alone.
    creating::remove(&tmp);
    made
}

/// Creates both tables in one durable commit (two-phase, as every durable
/// write), so that readers never meet a missing table.
fn create_tables(db: &redb::Database) -> Result<()> {
    let mut txn = db.begin_write().map_err(backend)?;
    txn.set_durability(redb::Durability::Immediate).map_err(backend)?;
    txn.set_two_phase_commit(true);
    txn.open_table(BLOCKS).map_err(backend)?;
    txn.open_table(META).map_err(backend)?;
    txn.commit().map_err(backend)
}

/// Blocks in a [redb](https://docs.rs/redb) database: one file, pure Rust,
/// copy-on-write B-trees with checksummed commits.
///
/// Each [`Batch`] is one write transaction. With [`Durability::Immediate`]
/// (the default) a transaction commits with two-phase commit and `fsync`
/// before `write` returns; with [`Durability::None`] commits are made
/// durable by [`flush`](BlockStore::flush). Readers use MVCC read
/// transactions and never wait for a writer. Reads copy the block out of
/// redb's page cache into a fresh [`Bytes`].
///
/// A database that does not exist yet is made under a temporary name
/// beside its path (`.NAME.PID.NANOS.N.creating`) and linked into place
/// once whole, so a crash while making it never leaves a half-made file
/// under the path (only, at worst, that temporary file, which the next
/// open of the same database removes once its owner is dead).
///
/// [`Usage::overhead_bytes`] is the file size minus the payload.
#[derive(Debug)]
pub struct RedbStore {
    db: redb::Database,
    path: PathBuf,
    durability: Durability,
}

impl RedbStore {
    /// Opens (creating if needed) the database at `path` with durable
    /// writes and redb's default cache.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if redb cannot open or create the file (it is
    /// locked by another process, or is not a redb database);
    /// [`Error::Io`] if a new database cannot be made beside `path` (see
    /// [`RedbStore`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let mut builder = redb::Builder::new();
        if let Some(bytes) = options.cache_bytes {
            builder.set_cache_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        let (dir, name) = creating::dir_and_name(path);
        creating::sweep(dir, &name);
        let made = !path.exists() && create_new(&builder, path, dir, &name)?;
        let db = builder.create(path).map_err(backend)?;
        if !made {
            // A file made elsewhere (another process, an earlier version):
            // its tables may be missing.
            create_tables(&db)?;
        }
        Ok(RedbStore { db, path: path.to_owned(), durability: options.durability })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs redb's own integrity check (every page checksum, the allocator
    /// state), then checks that the counters match the blocks.
    ///
    /// Needs `&mut self` because redb refuses to check while transactions
    /// are open.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if redb had to repair the file or the counters
    /// disagree with the blocks; [`Error::Backend`] if the file cannot be
    /// repaired.
    pub fn check_integrity(&mut self) -> Result<()> {
        if !self.db.check_integrity().map_err(backend)? {
            return Err(Error::Corrupt {
                backend: NAME,
                what: "expected a clean file, found one redb had to repair".into(),
            });
        }
        crate::util::check_counters(NAME, self)
    }

    fn begin_write(&self, durability: Durability) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        match durability {
            Durability::None => txn.set_durability(redb::Durability::None).map_err(backend)?,
            Durability::Immediate => {
                txn.set_durability(redb::Durability::Immediate).map_err(backend)?;
                txn.set_two_phase_commit(true);
            }
        }
        Ok(txn)
    }

    fn counters(&self) -> Result<Counters> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        read_counters(&meta)
    }
}

fn read_counters(meta: &impl ReadableTable<&'static str, u64>) -> Result<Counters> {
    let get = |name| -> Result<u64> {
        Ok(meta.get(name).map_err(backend)?.map(|g| g.value()).unwrap_or(0))
    };
    Ok(Counters { blocks: get("blocks")?, payload: get("payload")? })
}

impl BlockRead for RedbStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(BLOCKS).map_err(backend)?;
        let value = table.get(key_of(cid).as_slice()).map_err(backend)?;
        Ok(value.map(|v| Bytes::copy_from_slice(v.value())))
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(BLOCKS).map_err(backend)?;
        Ok(table.get(key_of(cid).as_slice()).map_err(backend)?.is_some())
    }

    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(BLOCKS).map_err(backend)?;
        for entry in table.iter().map_err(backend)? {
            let (key, value) = entry.map_err(backend)?;
            let cid = cid_from_key(NAME, key.value())?;
            f(&cid, value.value())?;
        }
        Ok(())
    }
}

impl BlockStore for RedbStore {
    fn write(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let txn = self.begin_write(self.durability)?;
        {
            let mut blocks = txn.open_table(BLOCKS).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let mut counters = read_counters(&meta)?;
            for (cid, bytes) in batch {
                let key = key_of(&cid);
                // The first bytes stored under a CID win (see the trait).
                if blocks.get(key.as_slice()).map_err(backend)?.is_none() {
                    blocks.insert(key.as_slice(), &bytes[..]).map_err(backend)?;
                    counters.add(bytes.len());
                }
            }
            meta.insert("blocks", counters.blocks).map_err(backend)?;
            meta.insert("payload", counters.payload).map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn usage(&self) -> Result<Usage> {
        let counters = self.counters()?;
        let file = std::fs::metadata(&self.path)?.len();
        Ok(counters.usage(file))
    }

    fn flush(&self) -> Result<()> {
        // An empty durable commit makes every earlier non-durable one durable.
        self.begin_write(Durability::Immediate)?.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::tests::{names, one_block};

    #[test]
    fn a_new_database_appears_whole_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        // What crashes while making an earlier one left: only temporary
        // files, which do not stand in the way. One whose owner is dead is
        // removed (a pid above Linux's pid_max); one whose owner lives
        // (perhaps being made right now) is not, nor another database's.
        let ours = format!(".blocks.redb.{}.2.3.creating", std::process::id());
        std::fs::write(dir.path().join(&ours), b"half a header").unwrap();
        std::fs::write(dir.path().join(".blocks.redb.4294967.5.6.creating"), b"").unwrap();
        std::fs::write(dir.path().join(".other.redb.4294967.5.6.creating"), b"").unwrap();
        std::fs::write(dir.path().join(".blocks.redb.1.4294967.5.6.creating"), b"").unwrap();
        let path = dir.path().join("blocks.redb");
        let store = RedbStore::open(&path).unwrap();
        let (cid, bytes, batch) = one_block();
        store.write(batch).unwrap();
        drop(store);
        // No temporary file of its own is left. (`.blocks.redb.1.…` is a
        // temporary file of a database named `blocks.redb.1`.)
        let mut left = vec![
            ours,
            ".blocks.redb.1.4294967.5.6.creating".to_owned(),
            ".other.redb.4294967.5.6.creating".to_owned(),
            "blocks.redb".to_owned(),
        ];
        left.sort();
        assert_eq!(names(dir.path()), left);
        // Made again (another process that raced this one): the file that
        // is there wins.
        let made = create_new(&redb::Builder::new(), &path, dir.path(), "blocks.redb").unwrap();
        assert!(!made);
        let mut store = RedbStore::open(&path).unwrap();
        store.check_integrity().unwrap();
        assert_eq!(store.get(&cid).unwrap(), Some(bytes));
        assert_eq!(names(dir.path()), left);
    }
}
