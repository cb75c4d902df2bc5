//! [`SqliteStore`]: blocks in an SQLite database (feature `sqlite`).
//!
//! Schema: `blocks(cid BLOB PRIMARY KEY, data BLOB NOT NULL)`, keyed by the
//! CID's binary form, and `meta(name TEXT PRIMARY KEY, value INTEGER)` with
//! the counters `blocks` and `payload`, updated in the same transaction as
//! the blocks.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::util::{Counters, cid_from_key, key_of};
use crate::{Batch, BlockRead, BlockStore, Durability, Error, OpenOptions, Result, Usage};

const NAME: &str = "sqlite";

/// Most idle reader connections kept for reuse.
const MAX_IDLE_READERS: usize = 8;

fn backend(e: rusqlite::Error) -> Error {
    Error::backend(NAME, e)
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS blocks (cid BLOB PRIMARY KEY NOT NULL, data BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
    INSERT OR IGNORE INTO meta (name, value) VALUES ('blocks', 0), ('payload', 0);
";

/// Blocks in an [SQLite](https://sqlite.org) database through rusqlite,
/// with SQLite compiled in (nothing to install).
///
/// The database runs in WAL mode. With [`Durability::Immediate`] (the
/// default) it uses `synchronous = FULL`: a batch's transaction is synced to
/// the WAL before `write` returns. With [`Durability::None`] it uses
/// `synchronous = NORMAL`: still crash-safe (a process crash loses nothing,
/// a power loss may lose the last transactions but never tears one), and
/// [`flush`](BlockStore::flush) checkpoints the WAL into the database with
/// a sync.
///
/// One writer connection behind a mutex applies each [`Batch`] in one
/// transaction with cached prepared statements. Readers take a connection
/// from a small pool, so reads run in parallel with each other and with the
/// writer (WAL readers see the last committed transaction).
///
/// [`Usage::overhead_bytes`] is the size of the database and WAL files
/// minus the payload.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    options: OpenOptions,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with durable writes.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if SQLite cannot open the file or it is not an
    /// SQLite database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let writer = connect(&path, options)?;
        writer.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        writer.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            path,
            options: *options,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `PRAGMA integrity_check`, then checks that the counters match
    /// the blocks.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] if SQLite reports a problem or the counters
    /// disagree with the blocks.
    pub fn check_integrity(&self) -> Result<()> {
        let verdict: String = self
            .reader(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(backend))?;
        if verdict != "ok" {
            return Err(Error::Corrupt {
                backend: NAME,
                what: format!("expected integrity_check \"ok\", found {verdict:?}"),
            });
        }
        crate::util::check_counters(NAME, self)
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent: an open
        // transaction is rolled back when its guard drops.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a pooled reader connection.
    fn reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path, &self.options)?,
        };
        let out = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }
}

fn connect(path: &Path, options: &OpenOptions) -> Result<Connection> {
    let conn = Connection::open(path).map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(backend)?;
    let synchronous = match options.durability {
        Durability::Immediate => "FULL",
        Durability::None => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous).map_err(backend)?;
    if let Some(bytes) = options.cache_bytes {
        // A negative cache_size is in KiB.
        let kib = i64::try_from(bytes / 1024).unwrap_or(i64::MAX);
        conn.pragma_update(None, "cache_size", kib.saturating_neg()).map_err(backend)?;
    }
    conn.set_prepared_statement_cache_capacity(8);
    Ok(conn)
}

fn read_counters(conn: &Connection) -> Result<Counters> {
    let get = |name: &str| -> Result<u64> {
        let value: i64 = conn
            .prepare_cached("SELECT value FROM meta WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)))
            .map_err(backend)?;
        u64::try_from(value).map_err(|_| Error::Corrupt {
            backend: NAME,
            what: format!("expected a non-negative {name} counter, found {value}"),
        })
    };
    Ok(Counters { blocks: get("blocks")?, payload: get("payload")? })
}

fn blob<'a>(value: ValueRef<'a>, what: &str) -> Result<&'a [u8]> {
    match value {
        ValueRef::Blob(b) => Ok(b),
        other => Err(Error::Corrupt {
            backend: NAME,
            what: format!("expected a blob for {what}, found {:?}", other.data_type()),
        }),
    }
}

fn file_len(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

impl BlockRead for SqliteStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        self.reader(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT data FROM blocks WHERE cid = ?1").map_err(backend)?;
            let mut rows = stmt.query([key_of(cid)]).map_err(backend)?;
            match rows.next().map_err(backend)? {
                Some(row) => {
                    let data = blob(row.get_ref(0).map_err(backend)?, "block data")?;
                    Ok(Some(Bytes::copy_from_slice(data)))
                }
                None => Ok(None),
            }
        })
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        self.reader(|conn| {
            conn.prepare_cached("SELECT 1 FROM blocks WHERE cid = ?1")
                .and_then(|mut s| s.query_row([key_of(cid)], |_| Ok(())).optional())
                .map(|found| found.is_some())
                .map_err(backend)
        })
    }

    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        self.reader(|conn| {
            let mut stmt = conn.prepare_cached("SELECT cid, data FROM blocks").map_err(backend)?;
            let mut rows = stmt.query([]).map_err(backend)?;
            while let Some(row) = rows.next().map_err(backend)? {
                let key = blob(row.get_ref(0).map_err(backend)?, "a CID")?;
                let cid = cid_from_key(NAME, key)?;
                f(&cid, blob(row.get_ref(1).map_err(backend)?, "block data")?)?;
            }
            Ok(())
        })
    }
}

impl BlockStore for SqliteStore {
    fn write(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer();
        // IMMEDIATE takes the write lock up front, waiting on the busy
        // timeout. A deferred transaction starts as a read (the counters)
        // and upgrades to a write, and SQLite can refuse that upgrade at
        // once with SQLITE_BUSY, without waiting, while readers come and go.
        let txn =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        {
            let mut counters = read_counters(&txn)?;
            let mut insert = txn
                .prepare_cached("INSERT OR IGNORE INTO blocks (cid, data) VALUES (?1, ?2)")
                .map_err(backend)?;
            for (cid, bytes) in batch {
                // The first bytes stored under a CID win (see the trait).
                if insert.execute(params![key_of(&cid), &bytes[..]]).map_err(backend)? == 1 {
                    counters.add(bytes.len());
                }
            }
            let mut update = txn
                .prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")
                .map_err(backend)?;
            for (name, value) in [("blocks", counters.blocks), ("payload", counters.payload)] {
                let value = i64::try_from(value).unwrap_or(i64::MAX);
                update.execute(params![name, value]).map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)
    }

    fn usage(&self) -> Result<Usage> {
        let counters = self.reader(read_counters)?;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let disk = file_len(&self.path)?.saturating_add(file_len(Path::new(&wal))?);
        Ok(counters.usage(disk))
    }

    fn flush(&self) -> Result<()> {
        let conn = self.writer();
        conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(())).map_err(backend)
    }
}
