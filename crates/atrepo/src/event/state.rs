//! [`RepoState`]: what a relay remembers per repository between events,
//! and the [`StateStore`]s it can keep it in.
//!
//! # Why not a `BlockStore`
//!
//! The state of a repository changes with every commit, but a
//! [`BlockStore`](crate::store::BlockStore) is content-addressed and
//! append-only by contract: writing a CID that is already stored keeps the
//! first bytes. Keying state by a pseudo-CID derived from the DID would
//! therefore never update it, and keying it by DID and rev would grow by a
//! block per event and need a search to find the latest. So state lives in
//! a small mutable table instead: [`MemoryStateStore`] always, and
//! `RedbStateStore` (feature `redb`) on disk, in a database file of its own
//! (redb locks its file, so it cannot share the block store's). A relay
//! with its own database implements [`StateStore`] over it; the trait is
//! object safe.
//!
//! # Stored form
//!
//! `RedbStateStore` keeps one row per DID in table `atrepo_event_state`:
//! the key is the DID's text, the value the DRISL map
//! `{"rev": <TID text>, "data": <CID link>}` (keys in canonical order). A
//! value that does not decode strictly is reported as corrupt, never
//! trusted.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use cid::Cid;

use crate::Result;
use crate::verify::Tid;
use crate::verify::drisl::{Decoder, Encoder};

/// What a relay holds for one repository: the last verified commit's rev
/// and tree root (`data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RepoState {
    /// The last verified rev.
    pub rev: Tid,
    /// The tree root of the last verified commit.
    pub data: Cid,
}

impl RepoState {
    /// The state's stored form: `{"rev": text, "data": link}` in DRISL.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.map(2).text("rev").text(&self.rev.to_string()).text("data").link(&self.data);
        e.into_bytes()
    }

    /// Reads the stored form back, strictly; `None` if it is not exactly
    /// what [`to_cbor`](Self::to_cbor) writes.
    pub fn from_cbor(bytes: &[u8]) -> Option<RepoState> {
        let mut d = Decoder::new(bytes);
        d.map_of(2, "2").ok()?;
        d.key("rev").ok()?;
        let rev = Tid::parse(d.text().ok()?).ok()?;
        d.key("data").ok()?;
        let data = d.node_link().ok()?;
        d.finish().ok()?;
        Some(RepoState { rev, data })
    }
}

/// Where a relay keeps [`RepoState`] per DID.
///
/// Implementations must be safe to share between threads; each call is
/// atomic on its own. Errors are the environment's (a database failing);
/// a DID with no state is `Ok(None)`.
pub trait StateStore: Send + Sync {
    /// The state held for `did`, if any.
    fn get(&self, did: &str) -> Result<Option<RepoState>>;

    /// Replaces the state held for `did`.
    fn set(&self, did: &str, state: &RepoState) -> Result<()>;

    /// Forgets `did`; says whether there was state to forget.
    fn remove(&self, did: &str) -> Result<bool>;
}

impl<S: StateStore + ?Sized> StateStore for &S {
    fn get(&self, did: &str) -> Result<Option<RepoState>> {
        (**self).get(did)
    }
    fn set(&self, did: &str, state: &RepoState) -> Result<()> {
        (**self).set(did, state)
    }
    fn remove(&self, did: &str) -> Result<bool> {
        (**self).remove(did)
    }
}

impl<S: StateStore + ?Sized> StateStore for Box<S> {
    fn get(&self, did: &str) -> Result<Option<RepoState>> {
        (**self).get(did)
    }
    fn set(&self, did: &str, state: &RepoState) -> Result<()> {
        (**self).set(did, state)
    }
    fn remove(&self, did: &str) -> Result<bool> {
        (**self).remove(did)
    }
}

/// State in a hash map behind a lock.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    states: Mutex<HashMap<String, RepoState>>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of repositories with state.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no repository has state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A poisoned lock only means another thread panicked while holding it;
    // each update is a single map operation, so the map is still sound.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, RepoState>> {
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StateStore for MemoryStateStore {
    fn get(&self, did: &str) -> Result<Option<RepoState>> {
        Ok(self.lock().get(did).copied())
    }

    fn set(&self, did: &str, state: &RepoState) -> Result<()> {
        self.lock().insert(did.to_owned(), *state);
        Ok(())
    }

    fn remove(&self, did: &str) -> Result<bool> {
        Ok(self.lock().remove(did).is_some())
    }
}

#[cfg(feature = "redb")]
pub use redb_state::RedbStateStore;

#[cfg(feature = "redb")]
mod redb_state {
    use std::path::Path;

    use redb::{ReadableDatabase, TableDefinition};

    use super::{RepoState, StateStore};
    use crate::Result;
    use crate::store::Error as StoreError;

    const TABLE: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("atrepo_event_state");
    const NAME: &str = "redb";

    fn backend(e: impl Into<redb::Error>) -> crate::Error {
        StoreError::backend(NAME, e.into()).into()
    }

    /// [`RepoState`] in a redb database file (feature `redb`), one row per
    /// DID; see the module docs for the stored form.
    ///
    /// Every `set` and `remove` is one durable write transaction; reads use
    /// MVCC read transactions and never wait for a writer.
    #[derive(Debug)]
    pub struct RedbStateStore {
        db: redb::Database,
    }

    impl RedbStateStore {
        /// Opens (creating if needed) the state database at `path`. It
        /// must not be a file another store has open (redb locks it).
        pub fn open(path: impl AsRef<Path>) -> Result<Self> {
            let db = redb::Database::create(path).map_err(backend)?;
            let txn = db.begin_write().map_err(backend)?;
            txn.open_table(TABLE).map_err(backend)?;
            txn.commit().map_err(backend)?;
            Ok(RedbStateStore { db })
        }
    }

    impl StateStore for RedbStateStore {
        fn get(&self, did: &str) -> Result<Option<RepoState>> {
            let txn = self.db.begin_read().map_err(backend)?;
            let table = txn.open_table(TABLE).map_err(backend)?;
            let Some(value) = table.get(did).map_err(backend)? else {
                return Ok(None);
            };
            match RepoState::from_cbor(value.value()) {
                Some(state) => Ok(Some(state)),
                None => Err(StoreError::Corrupt {
                    backend: NAME,
                    what: format!("expected a repo state for {did}, found undecodable bytes"),
                }
                .into()),
            }
        }

        fn set(&self, did: &str, state: &RepoState) -> Result<()> {
            let txn = self.db.begin_write().map_err(backend)?;
            {
                let mut table = txn.open_table(TABLE).map_err(backend)?;
                table.insert(did, state.to_cbor().as_slice()).map_err(backend)?;
            }
            txn.commit().map_err(backend)
        }

        fn remove(&self, did: &str) -> Result<bool> {
            let txn = self.db.begin_write().map_err(backend)?;
            let removed = {
                let mut table = txn.open_table(TABLE).map_err(backend)?;
                table.remove(did).map_err(backend)?.is_some()
            };
            txn.commit().map_err(backend)?;
            Ok(removed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(n: u8) -> RepoState {
        RepoState {
            rev: Tid::from_parts(1_700_000_000_000_000 + u64::from(n), 0).unwrap(),
            data: crate::car::blessed_cid(crate::car::DAG_CBOR, &[n]),
        }
    }

    fn conformance(store: &dyn StateStore) {
        assert_eq!(store.get("did:plc:a").unwrap(), None);
        store.set("did:plc:a", &state(1)).unwrap();
        store.set("did:plc:b", &state(2)).unwrap();
        assert_eq!(store.get("did:plc:a").unwrap(), Some(state(1)));
        store.set("did:plc:a", &state(3)).unwrap();
        assert_eq!(store.get("did:plc:a").unwrap(), Some(state(3)));
        assert!(store.remove("did:plc:a").unwrap());
        assert!(!store.remove("did:plc:a").unwrap());
        assert_eq!(store.get("did:plc:a").unwrap(), None);
        assert_eq!(store.get("did:plc:b").unwrap(), Some(state(2)));
    }

    #[test]
    fn memory() {
        let store = MemoryStateStore::new();
        conformance(&store);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn stored_form_round_trips_strictly() {
        let s = state(9);
        assert_eq!(RepoState::from_cbor(&s.to_cbor()), Some(s));
        let mut bad = s.to_cbor();
        bad.push(0);
        assert_eq!(RepoState::from_cbor(&bad), None);
        assert_eq!(RepoState::from_cbor(b"\xa0"), None);
    }

    #[cfg(feature = "redb")]
    #[test]
    fn redb() {
        let dir = std::env::temp_dir().join(format!("atrepo-event-state-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        {
            let store = RedbStateStore::open(&dir).unwrap();
            conformance(&store);
        }
        // Durable across reopening.
        let store = RedbStateStore::open(&dir).unwrap();
        assert_eq!(store.get("did:plc:b").unwrap(), Some(state(2)));
        drop(store);
        let _ = std::fs::remove_file(&dir);
    }
}
