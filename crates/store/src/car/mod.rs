//! [`CarFileStore`]: a CAR file used as a read-only block store
//! (feature `car`).

mod index;
mod mmap;

pub use mmap::map_file;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use atrepo_car::{CarSlice, Header, Limits, Options};
use bytes::Bytes;
use cid::Cid;

use self::index::{CarIdentity, Index, NAME, slice_at};
use crate::{Batch, BlockRead, BlockStore, Error, Result, Usage};

/// Where a [`CarFileStore`] keeps its index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IndexMode {
    /// Beside the CAR as `<car path>.idx`: reuse it if it fits the CAR,
    /// otherwise build one and try to save it there. Failing to save (a
    /// read-only folder) is not an error; [`CarFileStore::index_status`]
    /// reports it. The default.
    #[default]
    Beside,
    /// At this path: reuse it if it fits, otherwise build and save it;
    /// failing to save is an error.
    At(PathBuf),
    /// Build the index in memory on every open; never read or write a file.
    InMemory,
}

/// How a [`CarFileStore`] was indexed when it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexStatus {
    /// Built in memory ([`IndexMode::InMemory`]).
    InMemory,
    /// Read from the index file; the CAR was not read.
    Loaded,
    /// Built by reading the CAR and saved. `replaced` says why an existing
    /// index file did not fit (stale or corrupt); `None` if there was none.
    Saved {
        /// Why the old index file was not used.
        replaced: Option<&'static str>,
    },
    /// Built by reading the CAR, but saving failed ([`IndexMode::Beside`]
    /// only).
    NotSaved {
        /// Why the old index file was not used, if there was one.
        replaced: Option<&'static str>,
        /// What went wrong saving.
        error: io::ErrorKind,
    },
}

/// How to open a [`CarFileStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CarFileOptions {
    /// How the CAR is read while indexing. The default is the reader's
    /// default (strict CIDs, every block hashed) except that
    /// `max_total_bytes` is lifted: the file is mapped, not loaded, so its
    /// size costs no memory.
    pub car: Options,
    /// Where the index lives.
    pub index: IndexMode,
}

impl Default for CarFileOptions {
    fn default() -> Self {
        CarFileOptions {
            car: Options::default().limits(Limits::default().max_total_bytes(u64::MAX)),
            index: IndexMode::default(),
        }
    }
}

impl CarFileOptions {
    /// Returns these options with the CAR reader options set.
    pub fn car(mut self, car: Options) -> Self {
        self.car = car;
        self
    }

    /// Returns these options with the index mode set.
    pub fn index(mut self, index: IndexMode) -> Self {
        self.index = index;
        self
    }

    /// Returns these options with block hashing turned off while indexing.
    /// Only for CARs the caller wrote or verified itself; see
    /// [`atrepo_car::HashCheck::Unchecked`].
    pub fn unchecked(mut self) -> Self {
        self.car = self.car.unchecked();
        self
    }
}

/// A CAR file as a read-only block store.
///
/// Opening reads the file once through [`atrepo_car`] (hashing every block
/// unless told not to) and builds an index from each distinct CID to where
/// its bytes lie; or it reuses an index file saved beside the CAR by an
/// earlier open, without reading the CAR (see [`IndexMode`] and
/// `docs/formats.md`, "CAR index file"). Reads come from a memory map:
/// [`get`](BlockRead::get) returns a view into it and copies nothing, so a
/// CAR of any size needs memory for the index only (48 bytes per block).
///
/// Lookups are keyed by the CID's digest and codec for atproto's blessed
/// CIDs, and by a SHA-256 of the whole CID for any other CID (when the
/// reader options accept them); every hit is confirmed by comparing the
/// CID's bytes in the file with the one asked for.
///
/// # The file must not change while open
///
/// The file is memory-mapped. Modifying or truncating it while a store has
/// it open is not supported: reads may then return other bytes, and on
/// most systems a read past a truncated end kills the process (`SIGBUS`).
/// Replace CAR files by writing a new file and renaming it.
///
/// Writes fail with [`Error::ReadOnly`].
#[derive(Debug)]
pub struct CarFileStore {
    map: Bytes,
    header: Header,
    index: Index,
    status: IndexStatus,
    options: Options,
    path: PathBuf,
}

impl CarFileStore {
    /// Opens the CAR at `path` with default options (blocks hashed, index
    /// saved beside the file).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be opened or mapped, and
    /// [`Error::Car`] if it is not a valid CAR (malformed, a block that does
    /// not hash to its CID, a limit crossed).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &CarFileOptions::default())
    }

    /// Opens the CAR at `path`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), and [`Error::Io`] if the index cannot be
    /// saved to an [`IndexMode::At`] path.
    pub fn open_with(path: impl AsRef<Path>, options: &CarFileOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let file = File::open(&path)?;
        let map = map_file(&file)?;
        let car = options.car;
        let slice = CarSlice::with_options(&map, car)?;
        let header = slice.header().clone();
        let identity = CarIdentity::of(&file, &map, slice.offset())?;
        let index_path = match &options.index {
            IndexMode::Beside => {
                let mut name = path.clone().into_os_string();
                name.push(".idx");
                Some(PathBuf::from(name))
            }
            IndexMode::At(p) => Some(p.clone()),
            IndexMode::InMemory => None,
        };
        let (index, status) = match index_path {
            None => (Index::build(&map, car)?, IndexStatus::InMemory),
            Some(index_path) => {
                let replaced = match File::open(&index_path).and_then(|f| map_file(&f)) {
                    Ok(bytes) => match Index::load(&bytes, &identity, &car) {
                        Ok(index) => {
                            return Ok(CarFileStore {
                                map,
                                header,
                                index,
                                status: IndexStatus::Loaded,
                                options: car,
                                path,
                            });
                        }
                        Err(reason) => Some(reason),
                    },
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    // Unreadable (a folder, no permission): build and
                    // try to replace it.
                    Err(_) => Some("index file unreadable"),
                };
                let index = Index::build(&map, car)?;
                let status = match index.save(&index_path, &identity) {
                    Ok(()) => IndexStatus::Saved { replaced },
                    Err(e) if options.index == IndexMode::Beside => {
                        IndexStatus::NotSaved { replaced, error: e.kind() }
                    }
                    Err(e) => return Err(e.into()),
                };
                (index, status)
            }
        };
        Ok(CarFileStore { map, header, index, status, options: car, path })
    }

    /// The CAR's header (its roots).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The CAR file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the index was obtained.
    pub fn index_status(&self) -> IndexStatus {
        self.status
    }

    /// Number of distinct blocks in the CAR.
    pub fn len(&self) -> u64 {
        self.index.count()
    }

    /// Whether the CAR holds no block.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block for `cid`, confirmed against the CID bytes in the file.
    fn lookup(&self, cid: &Cid) -> Result<Option<Bytes>> {
        let Some(entry) = self.index.find(cid) else { return Ok(None) };
        let corrupt = |what: &str| Error::Corrupt {
            backend: NAME,
            what: format!("expected {what} at offset {}, found other bytes", entry.cid_offset),
        };
        let stored = slice_at(&self.map, entry.cid_offset, u64::from(entry.cid_len))
            .ok_or_else(|| corrupt("an indexed CID"))?;
        let mut wanted = [0u8; 128];
        let n = cid.write_bytes(&mut wanted[..]).map_err(|_| corrupt("a CID that fits"))?;
        if wanted.get(..n) != Some(stored) {
            // Same sort key, different CID: only possible for a key
            // collision or an index that does not fit the file.
            return Ok(None);
        }
        let start = usize::try_from(entry.data_offset()).map_err(|_| corrupt("a block"))?;
        let end = usize::try_from(entry.end()).map_err(|_| corrupt("a block"))?;
        if end > self.map.len() || start > end {
            return Err(corrupt("a block"));
        }
        Ok(Some(self.map.slice(start..end)))
    }
}

impl BlockRead for CarFileStore {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        self.lookup(cid)
    }

    fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.lookup(cid)?.is_some())
    }

    /// Walks the file in order (sequential reads, kind to the page cache)
    /// and calls `f` for the first occurrence of each CID.
    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        // Every block was checked (or deliberately not) when indexing.
        let mut slice = CarSlice::with_options(&self.map, self.options.unchecked())?;
        while let Some(frame) = slice.next() {
            let frame = frame?;
            let data_offset = slice.offset().saturating_sub(frame.data.len() as u64);
            let first = self.index.find(&frame.cid).is_some_and(|e| e.data_offset() == data_offset);
            if first {
                f(&frame.cid, frame.data)?;
            }
        }
        Ok(())
    }
}

impl BlockStore for CarFileStore {
    /// Always [`Error::ReadOnly`].
    fn write(&self, _batch: Batch) -> Result<()> {
        Err(Error::ReadOnly { backend: NAME })
    }

    /// Payload is the distinct blocks' bytes; overhead is the rest of the
    /// file (framing, CIDs, duplicates) plus the index.
    fn usage(&self) -> Result<Usage> {
        let payload = self.index.payload();
        Ok(Usage {
            blocks: self.index.count(),
            payload_bytes: payload,
            overhead_bytes: (self.map.len() as u64)
                .saturating_sub(payload)
                .saturating_add(self.index.size()),
        })
    }
}
