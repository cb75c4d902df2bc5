//! Integration tests for `atrepo-store`: one binary, one module per area.

// Test sizes and counts are small and fixed: narrowing casts on them cannot
// lose anything.
#![allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]

// The conformance suite, written once and instantiated for every backend.
#[macro_use]
mod conformance;

// Model-based property tests: every backend against a `BTreeMap`.
mod model;

// The spill store: hand-off, limits, scratch folders.
mod spill;

// Spec strings and `open`.
mod spec;

// Crash tests: a child process killed with SIGKILL mid-ingest.
#[cfg(all(unix, any(feature = "redb", feature = "sqlite", feature = "sled")))]
mod crash;

// The CAR-file backend: index, persistence, staleness.
#[cfg(feature = "car")]
mod car;

use conformance::Scratch;

// The memory backend.
mod memory {
    use super::Scratch;
    fn open() -> Scratch<atrepo_store::MemoryStore> {
        Scratch::memory(atrepo_store::MemoryStore::new())
    }
    conformance_suite!(open);
}

#[cfg(feature = "redb")]
mod redb {
    use super::Scratch;
    use atrepo_store::{OpenOptions, RedbStore};
    use std::path::Path;

    fn open() -> Scratch<RedbStore> {
        let dir = tempfile::tempdir().unwrap();
        Scratch::in_dir(open_at(dir.path()), dir)
    }
    fn open_at(dir: &Path) -> RedbStore {
        RedbStore::open(dir.join("blocks.redb")).unwrap()
    }
    conformance_suite!(open, reopen = open_at);

    // The same backend opened as a spill target would be.
    mod scratch {
        use super::*;
        fn open() -> Scratch<RedbStore> {
            let dir = tempfile::tempdir().unwrap();
            let store =
                RedbStore::open_with(dir.path().join("blocks.redb"), &OpenOptions::scratch())
                    .unwrap();
            Scratch::in_dir(store, dir)
        }
        conformance_suite!(open);
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::Scratch;
    use atrepo_store::{OpenOptions, SqliteStore};
    use std::path::Path;

    fn open() -> Scratch<SqliteStore> {
        let dir = tempfile::tempdir().unwrap();
        Scratch::in_dir(open_at(dir.path()), dir)
    }
    fn open_at(dir: &Path) -> SqliteStore {
        SqliteStore::open(dir.join("blocks.sqlite")).unwrap()
    }
    conformance_suite!(open, reopen = open_at);

    mod scratch {
        use super::*;
        fn open() -> Scratch<SqliteStore> {
            let dir = tempfile::tempdir().unwrap();
            let store =
                SqliteStore::open_with(dir.path().join("blocks.sqlite"), &OpenOptions::scratch())
                    .unwrap();
            Scratch::in_dir(store, dir)
        }
        conformance_suite!(open);
    }
}

#[cfg(feature = "sled")]
mod sled {
    use super::Scratch;
    use atrepo_store::{OpenOptions, SledStore};
    use std::path::Path;

    fn open() -> Scratch<SledStore> {
        let dir = tempfile::tempdir().unwrap();
        Scratch::in_dir(open_at(dir.path()), dir)
    }
    fn open_at(dir: &Path) -> SledStore {
        SledStore::open(dir.join("blocks.sled")).unwrap()
    }
    conformance_suite!(open, reopen = open_at);

    mod scratch {
        use super::*;
        fn open() -> Scratch<SledStore> {
            let dir = tempfile::tempdir().unwrap();
            let store =
                SledStore::open_with(dir.path().join("blocks.sled"), &OpenOptions::scratch())
                    .unwrap();
            Scratch::in_dir(store, dir)
        }
        conformance_suite!(open);
    }
}

// The spill store, instantiated so that most cases hand off from memory to
// disk part-way (a 4 KiB budget), once per disk target.
#[cfg(any(feature = "redb", feature = "sqlite", feature = "sled"))]
macro_rules! spill_suite {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::Scratch;
            use atrepo_store::{SpillOptions, SpillStore};

            fn open() -> Scratch<SpillStore> {
                let dir = tempfile::tempdir().unwrap();
                let options = SpillOptions::default()
                    .memory_limit(4096)
                    .parent(dir.path())
                    .target($backend)
                    .unwrap();
                Scratch::in_dir(SpillStore::new(options).unwrap(), dir)
            }
            conformance_suite!(open);
        }
    };
}

// The spill store that never needs to spill: memory only.
mod spill_in_memory {
    use super::Scratch;
    use atrepo_store::{SpillOptions, SpillStore};

    fn open() -> Scratch<SpillStore> {
        let dir = tempfile::tempdir().unwrap();
        let options = SpillOptions::default().memory_limit(u64::MAX).parent(dir.path());
        Scratch::in_dir(SpillStore::new(options).unwrap(), dir)
    }
    conformance_suite!(open);
}

#[cfg(feature = "redb")]
spill_suite!(spill_to_redb, atrepo_store::Backend::Redb);
#[cfg(feature = "sqlite")]
spill_suite!(spill_to_sqlite, atrepo_store::Backend::Sqlite);
#[cfg(feature = "sled")]
spill_suite!(spill_to_sled, atrepo_store::Backend::Sled);
