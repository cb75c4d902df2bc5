//! Choosing a backend at run time: [`StoreSpec`] strings, [`OpenOptions`]
//! and [`open`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{BlockStore, Error, MemoryStore, Result};

/// When a disk backend's writes become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every [`BlockStore::write`] is on stable storage when it returns
    /// (redb: `Durability::Immediate` with two-phase commit; SQLite:
    /// `synchronous = FULL`; sled: `flush()` after each batch). The default.
    #[default]
    Immediate,
    /// Writes become durable at the next [`BlockStore::flush`] or at the
    /// backend's own pace. After a crash the store still opens consistent,
    /// holding a prefix of the acknowledged batches, each whole or absent
    /// (redb: `Durability::None`; SQLite: `synchronous = NORMAL`; sled: its
    /// background flush). For scratch stores such as spill files.
    None,
}

/// How to open a disk backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// When writes become durable.
    pub durability: Durability,
    /// The backend's own cache in bytes, where it has one (redb's page
    /// cache, SQLite's `cache_size`, sled's `cache_capacity`). `None` keeps
    /// the backend's default (1 GiB for redb and sled, 2 MiB for SQLite).
    pub cache_bytes: Option<u64>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { durability: Durability::Immediate, cache_bytes: None }
    }
}

impl OpenOptions {
    /// Durable writes and the backends' default caches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options for a scratch store: no durability until flushed, and a
    /// small cache (16 MiB) so the backend does not undo the memory saving
    /// that made the caller spill.
    pub fn scratch() -> Self {
        OpenOptions { durability: Durability::None, cache_bytes: Some(16 * 1024 * 1024) }
    }

    /// Returns these options with `durability` set.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Returns these options with `cache_bytes` set.
    pub fn cache_bytes(mut self, bytes: Option<u64>) -> Self {
        self.cache_bytes = bytes;
        self
    }
}

/// A storage backend, by name. The name is also the cargo feature that
/// compiles it in (`memory` is always there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// [`MemoryStore`].
    Memory,
    /// `RedbStore`, feature `redb`.
    Redb,
    /// `SqliteStore`, feature `sqlite`.
    Sqlite,
    /// `SledStore`, feature `sled`.
    Sled,
    /// `CarFileStore`, feature `car` (read-only).
    Car,
}

impl Backend {
    /// Every backend, compiled in or not.
    pub const ALL: [Backend; 5] =
        [Backend::Memory, Backend::Redb, Backend::Sqlite, Backend::Sled, Backend::Car];

    /// The backend's name, as written in a spec string.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redb => "redb",
            Backend::Sqlite => "sqlite",
            Backend::Sled => "sled",
            Backend::Car => "car",
        }
    }

    /// Whether this build includes the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Memory => true,
            Backend::Redb => cfg!(feature = "redb"),
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Sled => cfg!(feature = "sled"),
            Backend::Car => cfg!(feature = "car"),
        }
    }

    /// Whether the backend keeps blocks in a file or folder.
    pub fn is_disk(self) -> bool {
        !matches!(self, Backend::Memory)
    }

    /// Whether the backend accepts writes.
    pub fn is_writable(self) -> bool {
        !matches!(self, Backend::Car)
    }

    fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    /// Parses a bare backend name (`memory`, `redb`, `sqlite`, `sled`,
    /// `car`), as used for a spill target.
    fn from_str(s: &str) -> Result<Self> {
        Backend::from_name(s).ok_or_else(|| Error::InvalidSpec {
            spec: s.to_owned(),
            expected: "a backend name: memory, redb, sqlite, sled or car",
        })
    }
}

/// Where blocks live, as a command line or a config file says it.
///
/// The syntax is `SCHEME` or `SCHEME:PATH`:
///
/// | spec | store |
/// |---|---|
/// | `memory` | [`MemoryStore`] |
/// | `redb:PATH` | `RedbStore`, one database file |
/// | `sqlite:PATH` | `SqliteStore`, one database file (plus `-wal`/`-shm`) |
/// | `sled:PATH` | `SledStore`, a folder |
/// | `car:PATH` | `CarFileStore`, a CAR file, read-only; its index is kept in `PATH.idx` |
/// | `spill:BACKEND` | [`SpillStore`](crate::SpillStore) with default limits, spilling to a scratch `BACKEND` store |
///
/// Everything after the first `:` is the path, so paths may contain `:`.
///
/// ```
/// use atrepo_store::{Backend, StoreSpec};
///
/// let spec: StoreSpec = "redb:/var/cache/atrepo/blocks.redb".parse()?;
/// assert_eq!(spec.backend(), Backend::Redb);
/// assert_eq!(spec.to_string(), "redb:/var/cache/atrepo/blocks.redb");
/// assert!("tape:/dev/st0".parse::<StoreSpec>().is_err());
/// # Ok::<(), atrepo_store::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreSpec {
    /// `memory`.
    Memory,
    /// `redb:PATH`.
    Redb(PathBuf),
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// `sled:PATH`.
    Sled(PathBuf),
    /// `car:PATH`.
    Car(PathBuf),
    /// `spill:BACKEND`.
    Spill(Backend),
}

const EXPECTED_SPEC: &str = "memory, redb:PATH, sqlite:PATH, sled:PATH, car:PATH or spill:BACKEND";

impl StoreSpec {
    /// The backend that holds the blocks (for `spill:`, the spill target).
    pub fn backend(&self) -> Backend {
        match self {
            StoreSpec::Memory => Backend::Memory,
            StoreSpec::Redb(_) => Backend::Redb,
            StoreSpec::Sqlite(_) => Backend::Sqlite,
            StoreSpec::Sled(_) => Backend::Sled,
            StoreSpec::Car(_) => Backend::Car,
            StoreSpec::Spill(b) => *b,
        }
    }

    /// The path, for specs that have one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreSpec::Redb(p) | StoreSpec::Sqlite(p) | StoreSpec::Sled(p) | StoreSpec::Car(p) => {
                Some(p)
            }
            StoreSpec::Memory | StoreSpec::Spill(_) => None,
        }
    }

    /// The spec for `backend` at `path` (ignored for memory).
    pub fn at(backend: Backend, path: impl Into<PathBuf>) -> StoreSpec {
        let path = path.into();
        match backend {
            Backend::Memory => StoreSpec::Memory,
            Backend::Redb => StoreSpec::Redb(path),
            Backend::Sqlite => StoreSpec::Sqlite(path),
            Backend::Sled => StoreSpec::Sled(path),
            Backend::Car => StoreSpec::Car(path),
        }
    }
}

impl FromStr for StoreSpec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let invalid = |expected| Error::InvalidSpec { spec: spec.to_owned(), expected };
        let (scheme, rest) = match spec.split_once(':') {
            Some((scheme, rest)) => (scheme, Some(rest)),
            None => (spec, None),
        };
        let backend_or_spill = if scheme == "spill" { None } else { Some(scheme) };
        match (backend_or_spill.map(Backend::from_name), rest) {
            (Some(Some(Backend::Memory)), None) => Ok(StoreSpec::Memory),
            (Some(Some(Backend::Memory)), Some(_)) => Err(invalid("memory without a path")),
            (Some(Some(_)), None | Some("")) => Err(invalid("a path after the scheme")),
            (Some(Some(backend)), Some(path)) => Ok(StoreSpec::at(backend, path)),
            (None, Some(target)) => match Backend::from_name(target) {
                Some(b) if b.is_writable() && b.is_disk() => Ok(StoreSpec::Spill(b)),
                _ => Err(invalid("spill:redb, spill:sqlite or spill:sled")),
            },
            (None, None) => Err(invalid("spill:redb, spill:sqlite or spill:sled")),
            (Some(None), _) => Err(invalid(EXPECTED_SPEC)),
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("memory"),
            StoreSpec::Spill(b) => write!(f, "spill:{b}"),
            other => {
                let path = other.path().map(Path::display);
                match path {
                    Some(p) => write!(f, "{}:{p}", other.backend()),
                    None => write!(f, "{}", other.backend()),
                }
            }
        }
    }
}

/// Opens the store a spec string names, with durable [`OpenOptions`].
///
/// ```
/// let store = atrepo_store::open("memory")?;
/// assert_eq!(store.usage()?.blocks, 0);
/// let err = atrepo_store::open("floppy:/dev/fd0").map(|_| ()).unwrap_err();
/// assert_eq!(err.kind(), atrepo_store::ErrorKind::Usage);
/// # Ok::<(), atrepo_store::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidSpec`] for a spec that does not parse,
/// [`Error::NotCompiled`] for a backend this build leaves out, and the
/// backend's own errors when opening fails.
pub fn open(spec: &str) -> Result<Box<dyn BlockStore>> {
    open_with(&spec.parse()?, &OpenOptions::default())
}

/// Opens the store `spec` names with the given options.
///
/// # Errors
///
/// As [`open`].
#[cfg_attr(
    not(any(feature = "redb", feature = "sqlite", feature = "sled")),
    allow(unused_variables, reason = "only the database backends take options")
)]
pub fn open_with(spec: &StoreSpec, options: &OpenOptions) -> Result<Box<dyn BlockStore>> {
    let backend = spec.backend();
    if !backend.is_compiled() {
        return Err(Error::NotCompiled { backend: backend.name() });
    }
    // Each arm is compiled only with its feature; the check above makes the
    // fallback arm unreachable for compiled-out backends at run time.
    #[allow(unreachable_patterns, reason = "which arms exist depends on the features")]
    match spec {
        StoreSpec::Memory => Ok(Box::new(MemoryStore::new())),
        #[cfg(feature = "redb")]
        StoreSpec::Redb(path) => Ok(Box::new(crate::RedbStore::open_with(path, options)?)),
        #[cfg(feature = "sqlite")]
        StoreSpec::Sqlite(path) => Ok(Box::new(crate::SqliteStore::open_with(path, options)?)),
        #[cfg(feature = "sled")]
        StoreSpec::Sled(path) => Ok(Box::new(crate::SledStore::open_with(path, options)?)),
        #[cfg(feature = "car")]
        StoreSpec::Car(path) => Ok(Box::new(crate::CarFileStore::open(path)?)),
        StoreSpec::Spill(target) => {
            Ok(Box::new(crate::SpillStore::new(crate::SpillOptions::default().target(*target)?)?))
        }
        _ => Err(Error::NotCompiled { backend: backend.name() }),
    }
}

/// Opens a writable disk backend at `path` for callers that pick the
/// backend themselves (the spill store). `Backend::Car` and
/// `Backend::Memory` are refused.
pub(crate) fn open_disk(
    backend: Backend,
    path: &Path,
    options: &OpenOptions,
) -> Result<Box<dyn BlockStore>> {
    if !backend.is_writable() || !backend.is_disk() {
        return Err(Error::InvalidSpec {
            spec: backend.name().to_owned(),
            expected: "a writable disk backend: redb, sqlite or sled",
        });
    }
    open_with(&StoreSpec::at(backend, path), options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!("memory".parse::<StoreSpec>().unwrap(), StoreSpec::Memory);
        assert_eq!("redb:a/b".parse::<StoreSpec>().unwrap(), StoreSpec::Redb("a/b".into()));
        assert_eq!("sqlite:x.db".parse::<StoreSpec>().unwrap(), StoreSpec::Sqlite("x.db".into()));
        assert_eq!("sled:/d".parse::<StoreSpec>().unwrap(), StoreSpec::Sled("/d".into()));
        assert_eq!("car:r.car".parse::<StoreSpec>().unwrap(), StoreSpec::Car("r.car".into()));
        assert_eq!("spill:redb".parse::<StoreSpec>().unwrap(), StoreSpec::Spill(Backend::Redb));
        assert_eq!("redb:c:\\x".parse::<StoreSpec>().unwrap(), StoreSpec::Redb("c:\\x".into()));
    }

    #[test]
    fn display_round_trips() {
        for s in ["memory", "redb:a/b", "sqlite:x.db", "sled:/d", "car:r.car", "spill:sled"] {
            assert_eq!(s.parse::<StoreSpec>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn refuses_bad_specs_with_what_was_expected() {
        for (spec, expected) in [
            ("", EXPECTED_SPEC),
            ("tape:/dev/st0", EXPECTED_SPEC),
            ("REDB:x", EXPECTED_SPEC),
            ("redb", "a path after the scheme"),
            ("redb:", "a path after the scheme"),
            ("memory:x", "memory without a path"),
            ("spill", "spill:redb, spill:sqlite or spill:sled"),
            ("spill:car", "spill:redb, spill:sqlite or spill:sled"),
            ("spill:memory", "spill:redb, spill:sqlite or spill:sled"),
        ] {
            match spec.parse::<StoreSpec>() {
                Err(Error::InvalidSpec { spec: s, expected: e }) => {
                    assert_eq!((s.as_str(), e), (spec, expected));
                }
                other => panic!("{spec:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn backend_names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().unwrap(), b);
        }
        assert!(matches!("fjall".parse::<Backend>(), Err(Error::InvalidSpec { .. })));
    }

    #[test]
    fn compiled_out_backends_are_a_usage_error() {
        for b in Backend::ALL.into_iter().filter(|b| !b.is_compiled()) {
            let spec = StoreSpec::at(b, "/nonexistent/x");
            match open_with(&spec, &OpenOptions::default()) {
                Err(Error::NotCompiled { backend }) => assert_eq!(backend, b.name()),
                Err(e) => panic!("{b}: {e:?}"),
                Ok(_) => panic!("{b}: opened"),
            }
        }
    }
}
