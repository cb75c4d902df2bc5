//! Block storage for atproto repositories behind one small trait.
//!
//! This crate owns the [`BlockStore`] contract (what every backend promises),
//! the backends behind it, the [`SpillStore`] that moves from memory to disk
//! under a budget, byte accounting ([`Usage`]), and the spec strings that
//! pick a backend at run time ([`StoreSpec`], [`open`]). Every backend passes
//! the same conformance suite (`tests/it/conformance.rs`); how to choose
//! between them, with measurements, is in `docs/choosing-a-backend.md`.
//!
//! # What this crate must not do
//!
//! - It knows nothing about MST nodes, commits or signatures.
//! - It does not hash blocks: a backend stores the `(CID, bytes)` pairs it is
//!   given. Verifying that bytes match their CID is the caller's job (the CAR
//!   reader in `atrepo-car` does it for every block it yields), so that hashing
//!   happens exactly once per block on the ingest path. The one place blocks
//!   are read from a CAR here, `CarFileStore`, reads them through
//!   `atrepo-car` with hashing on.
//! - It never panics on data read back from disk; corruption is an error.
//!
//! # Main types
//!
//! - [`BlockRead`]: `get`, `has`, `read_with`, `scan`. Missing blocks are
//!   `Ok(None)`.
//! - [`BlockStore`]: adds atomic batched writes ([`Batch`]) and [`Usage`].
//! - [`MemoryStore`]: a `HashMap` behind a lock, keyed compactly; blocks
//!   are shared [`Bytes`], so reads copy nothing.
//! - `RedbStore`, `SqliteStore`, `SledStore`: disk backends, each behind
//!   its feature, opened durable or as scratch ([`OpenOptions`],
//!   [`Durability`]).
//! - `CarFileStore`: a CAR file as a read-only store, indexed once and read
//!   through a memory map.
//! - [`SpillStore`]: memory up to a budget, then a scratch disk store, with
//!   a cap on what may be spilled ([`SpillOptions`]).
//! - [`StoreSpec`] and [`open`]: `memory`, `redb:PATH`, `sqlite:PATH`,
//!   `sled:PATH`, `car:PATH`, `spill:BACKEND`.
//!
//! Both traits are object safe, so a backend can be chosen at run time as
//! `Box<dyn BlockStore>`.
//!
//! # Crate features
//!
//! None is on by default; the memory backend and the spill store are always
//! there.
//!
//! - `redb`: `RedbStore` (pure Rust).
//! - `sqlite`: `SqliteStore`, with SQLite compiled in by rusqlite's
//!   `bundled` feature (needs a C compiler to build, nothing to install).
//! - `sled`: `SledStore` (sled 0.34, no longer developed upstream).
//! - `car`: `CarFileStore`; depends on `atrepo-car` and `memmap2`. The
//!   crate's only `unsafe` (mapping the file) is in its `mmap` module.
//!
//! # Untrusted input
//!
//! - Backends store whatever they are given; limits on how much are enforced
//!   by [`SpillStore`] (memory budget counting payload plus
//!   [`memory_overhead`] per block, and a cap on spilled bytes,
//!   both as [`Error::LimitExceeded`]) or by the caller using [`Usage`].
//! - Data read back from disk is checked where it is decoded: keys must
//!   parse as CIDs, counters must have their size, an index must fit its CAR
//!   (a stale or corrupt CAR index is rebuilt, never trusted); failures are
//!   [`Error::Corrupt`].
//! - `CarFileStore` reads CAR files with `atrepo-car`'s limits and hashes
//!   every block while indexing unless the caller explicitly opts out.
//!
//! # Example
//!
//! ```
//! use atrepo_store::{Batch, BlockRead, BlockStore, Bytes, MemoryStore};
//! # use cid::Cid;
//! # let cid: Cid = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm".parse().unwrap();
//! let store = MemoryStore::new();
//! let mut batch = Batch::new();
//! batch.put(cid, Bytes::from_static(b"\xa0"));
//! store.write(batch)?;
//! assert_eq!(store.get(&cid)?.as_deref(), Some(&b"\xa0"[..]));
//! assert_eq!(store.usage()?.blocks, 1);
//!
//! // The same through a spec string, as a command line would pick it.
//! let store = atrepo_store::open("memory")?;
//! assert!(!store.has(&cid)?);
//! # Ok::<(), atrepo_store::Error>(())
//! ```
#![warn(missing_docs)]
// `unsafe` is allowed in exactly one module, `car::mmap`, which maps a
// file into memory; it is denied everywhere else.
#![deny(unsafe_code)]

mod batch;
#[cfg(feature = "car")]
mod car;
#[cfg(feature = "redb")]
mod creating;
mod error;
#[doc(hidden)]
pub mod internal;
mod memory;
mod open;
#[cfg(feature = "redb")]
mod redb_store;
mod scratch;
#[cfg(feature = "sled")]
mod sled_store;
mod spill;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(feature = "redb", feature = "sqlite", feature = "sled"))]
mod util;

pub use batch::Batch;
pub use bytes::Bytes;
#[cfg(feature = "car")]
pub use car::{CarFileOptions, CarFileStore, IndexMode, IndexStatus, map_file};
pub use error::{Error, ErrorKind, Result};
pub use memory::{
    MEMORY_OVERHEAD_PER_BLOCK, MEMORY_OVERHEAD_PER_OTHER_BLOCK, MemoryStore, memory_overhead,
};

/// A hash map keyed by CIDs, with a fast, randomly seeded hasher
/// (foldhash). Keys are CIDs of blocks whose hashes were checked, so their
/// digests are SHA-256 outputs an attacker cannot aim at buckets without the
/// seed; SipHash, the standard default, costs more than the SHA-256 of a
/// small block.
pub type CidMap<V> = std::collections::HashMap<Cid, V, foldhash::fast::RandomState>;

/// A hash set of CIDs; see [`CidMap`].
pub type CidSet = std::collections::HashSet<Cid, foldhash::fast::RandomState>;
pub use open::{Backend, Durability, OpenOptions, StoreSpec, open, open_with};
#[cfg(feature = "redb")]
pub use redb_store::RedbStore;
pub use scratch::{SCRATCH_LOCK_FILE, SCRATCH_MAKING_PREFIX, SCRATCH_PREFIX, clean_stale};
#[cfg(feature = "sled")]
pub use sled_store::{SLED_MIN_CACHE_BYTES, SledStore};
pub use spill::{SpillOptions, SpillStore};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use cid::Cid;

/// Read access to a set of content-addressed blocks.
///
/// # Contract
///
/// - A block that is not present is `Ok(None)` / `Ok(false)`, never an error.
///   Errors are reserved for the environment (I/O, a broken backend) and for
///   stored data that cannot be read back.
/// - Returned bytes are exactly the bytes that were written for that CID.
///   A backend does not re-hash them; the writer was responsible for checking
///   them against the CID.
/// - Reads may run concurrently with each other and with a write; a read
///   sees either none or all of a concurrent [`Batch`].
pub trait BlockRead: Send + Sync {
    /// Returns the block stored under `cid`, or `None` if there is none.
    ///
    /// [`Bytes`] is reference counted: backends that keep blocks in memory or
    /// in a memory map hand out a view without copying.
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>>;

    /// Returns whether a block is stored under `cid`.
    ///
    /// The default calls [`get`](Self::get); backends override it when they
    /// can answer without reading the block.
    fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.get(cid)?.is_some())
    }

    /// Calls `f` with the block stored under `cid` and returns `true`, or
    /// returns `false` without calling it if there is none.
    ///
    /// For readers that only look at a block (an MST walk decodes each
    /// node and drops it). The default calls [`get`](Self::get);
    /// `MemoryStore` (and `SpillStore` until it spills) lends blocks
    /// instead, without touching the block's reference count, a cache line
    /// of its own. `f` may run under
    /// the store's lock: it must not use the store.
    fn read_with(&self, cid: &Cid, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let block = self.get(cid)?;
        if let Some(block) = &block {
            f(block);
        }
        Ok(block.is_some())
    }

    /// Says that the caller is about to read or check the blocks `cids`,
    /// and learns which of them are certainly stored: `present` is cleared
    /// and filled with one flag per CID, `true` if the block is stored,
    /// `false` if it is not or was not looked up. A caller still asks
    /// [`has`](Self::has) or [`get`](Self::get) for the others, and reads
    /// the blocks it needs as usual.
    ///
    /// A `true` is a promise that the block stays readable: callers skip
    /// their own [`has`](Self::has) on it. A reader whose reads take blocks
    /// out (the verify pipeline's buffer does) says `false` for each, and
    /// may still use the call to start its own lookups early.
    ///
    /// For readers that know several lookups ahead (an MST walk, on
    /// decoding a node, knows its children and its records). `MemoryStore`
    /// (and `SpillStore` until it spills) looks them all up under one
    /// lock, so the cache misses of the lookups overlap instead of coming
    /// one after another, and the buckets are warm when the blocks are
    /// read. The default looks nothing up and says `false` for each.
    fn look_ahead(&self, cids: &[Cid], present: &mut Vec<bool>) -> Result<()> {
        present.clear();
        present.resize(cids.len(), false);
        Ok(())
    }

    /// Calls `f` once for every stored block, in no particular order, and
    /// stops at the first error `f` returns.
    ///
    /// Writes made while a scan runs may or may not be seen by it.
    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()>;
}

/// A block store: [`BlockRead`] plus atomic batched writes.
///
/// # Contract
///
/// - [`write`](Self::write) applies a whole [`Batch`] or nothing: one
///   transaction per batch on disk backends. A batch is durable when `write`
///   returns if the backend was opened durable; see each backend's docs.
/// - Writing a CID that is already stored with equal bytes is a no-op and
///   is not counted twice in [`Usage`]. Writing a stored CID with *different*
///   bytes is the caller's bug (CIDs are hashes); backends keep the first
///   bytes and do not report it, so callers must verify before writing.
/// - [`usage`](Self::usage) counts distinct blocks and their payload bytes.
pub trait BlockStore: BlockRead {
    /// Atomically stores every block of `batch`.
    fn write(&self, batch: Batch) -> Result<()>;

    /// Stores one block; the same as writing a batch of one.
    fn put(&self, cid: Cid, bytes: Bytes) -> Result<()> {
        let mut batch = Batch::new();
        batch.put(cid, bytes);
        self.write(batch)
    }

    /// Returns what the store holds and what it costs to hold it.
    fn usage(&self) -> Result<Usage>;

    /// Makes every completed write durable, for backends opened without
    /// per-write durability. A no-op for memory stores.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// Byte accounting of a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of distinct blocks stored.
    pub blocks: u64,
    /// Sum of the stored blocks' lengths.
    pub payload_bytes: u64,
    /// Bytes the backend spends beyond the payload: per-entry bookkeeping in
    /// memory, or file size minus payload on disk. An estimate where the
    /// backend cannot know exactly, documented per backend.
    pub overhead_bytes: u64,
}

impl Usage {
    /// Payload plus overhead: what the store really costs.
    pub fn total_bytes(&self) -> u64 {
        self.payload_bytes.saturating_add(self.overhead_bytes)
    }
}

impl<S: BlockRead + ?Sized> BlockRead for &S {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        (**self).get(cid)
    }
    fn has(&self, cid: &Cid) -> Result<bool> {
        (**self).has(cid)
    }
    fn read_with(&self, cid: &Cid, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        (**self).read_with(cid, f)
    }
    fn look_ahead(&self, cids: &[Cid], present: &mut Vec<bool>) -> Result<()> {
        (**self).look_ahead(cids, present)
    }
    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        (**self).scan(f)
    }
}

impl<S: BlockRead + ?Sized> BlockRead for Box<S> {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        (**self).get(cid)
    }
    fn has(&self, cid: &Cid) -> Result<bool> {
        (**self).has(cid)
    }
    fn read_with(&self, cid: &Cid, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        (**self).read_with(cid, f)
    }
    fn look_ahead(&self, cids: &[Cid], present: &mut Vec<bool>) -> Result<()> {
        (**self).look_ahead(cids, present)
    }
    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        (**self).scan(f)
    }
}

impl<S: BlockStore + ?Sized> BlockStore for Box<S> {
    fn write(&self, batch: Batch) -> Result<()> {
        (**self).write(batch)
    }
    fn put(&self, cid: Cid, bytes: Bytes) -> Result<()> {
        (**self).put(cid, bytes)
    }
    fn usage(&self) -> Result<Usage> {
        (**self).usage()
    }
    fn flush(&self) -> Result<()> {
        (**self).flush()
    }
}

impl<S: BlockRead + ?Sized> BlockRead for std::sync::Arc<S> {
    fn get(&self, cid: &Cid) -> Result<Option<Bytes>> {
        (**self).get(cid)
    }
    fn has(&self, cid: &Cid) -> Result<bool> {
        (**self).has(cid)
    }
    fn read_with(&self, cid: &Cid, f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        (**self).read_with(cid, f)
    }
    fn look_ahead(&self, cids: &[Cid], present: &mut Vec<bool>) -> Result<()> {
        (**self).look_ahead(cids, present)
    }
    fn scan(&self, f: &mut dyn FnMut(&Cid, &[u8]) -> Result<()>) -> Result<()> {
        (**self).scan(f)
    }
}

impl<S: BlockStore + ?Sized> BlockStore for std::sync::Arc<S> {
    fn write(&self, batch: Batch) -> Result<()> {
        (**self).write(batch)
    }
    fn put(&self, cid: Cid, bytes: Bytes) -> Result<()> {
        (**self).put(cid, bytes)
    }
    fn usage(&self) -> Result<Usage> {
        (**self).usage()
    }
    fn flush(&self) -> Result<()> {
        (**self).flush()
    }
}

/// A 16-byte fingerprint of a CID: 15 digest bytes and one byte mixing the
/// codec and hash function, for sets that must remember many CIDs in little
/// memory (a full [`Cid`] takes 96 bytes).
///
/// Two different CIDs of hash-checked blocks share a fingerprint with
/// negligible odds by chance, and finding two such blocks on purpose takes
/// about 2^60 hashing work. But a bare CID (in a CAR header, an MST entry)
/// needs no block behind it, and one that shares a given block's
/// fingerprint is written in no time: a fingerprint hit for such a CID
/// must be confirmed against the whole CID before it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CidKey(u64, u64);

impl CidKey {
    /// The fingerprint of `cid`.
    pub fn of(cid: &Cid) -> CidKey {
        CidKey::from_parts(cid.hash().digest(), cid.codec(), cid.hash().code())
    }

    /// The fingerprint of the CID with this digest, codec and hash code
    /// (for keys that keep a CID in parts).
    pub(crate) fn from_parts(digest: &[u8], codec: u64, code: u64) -> CidKey {
        // The codecs and hash codes in use (dag-cbor 0x71, raw 0x55,
        // sha2-256 0x12) each fit in a byte.
        let mix = codec.to_le_bytes()[0] ^ code.to_le_bytes()[0].rotate_left(4);
        // Digests of 16 bytes or more (all in use): two fixed-size loads,
        // no copy of a variable length.
        if let Some(&[a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, _]) =
            digest.first_chunk::<16>()
        {
            return CidKey(
                u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
                u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, mix]),
            );
        }
        let mut k = [0u8; 16];
        let n = digest.len().min(15);
        if let (Some(dst), Some(src)) = (k.get_mut(..n), digest.get(..n)) {
            dst.copy_from_slice(src);
        }
        k[15] = mix;
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = k;
        CidKey(
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        )
    }
}

impl CidKey {
    /// The fingerprint folded to 8 bytes, for maps with very many entries
    /// whose hits are confirmed against the whole CID anyway (such as
    /// positions of blocks in a file, where the CID's bytes can be read
    /// back). Two hash-checked blocks share it by chance with negligible
    /// odds, but on purpose with about 2^32 hashing work: a map keyed by it
    /// must treat a clash as "not here" at worst, never as a hit.
    pub fn short(&self) -> u64 {
        self.0 ^ self.1
    }

    /// The fingerprint's 16 bytes, for keeping it outside memory;
    /// [`CidKey::from_bytes`] gives it back.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let (a, b) = out.split_at_mut(8);
        a.copy_from_slice(&self.0.to_le_bytes());
        b.copy_from_slice(&self.1.to_le_bytes());
        out
    }

    /// The fingerprint whose [`CidKey::to_bytes`] gave `bytes`.
    pub fn from_bytes(bytes: [u8; 16]) -> CidKey {
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = bytes;
        CidKey(
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        )
    }
}

impl std::hash::Hash for CidKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The crate's one fold of a fingerprint; the seeded hasher mixes it.
        state.write_u64(self.short());
    }
}

/// A set of [`CidKey`]s with the same fast, seeded hasher as [`CidMap`]:
/// about 17 bytes per entry.
pub type CidKeySet = std::collections::HashSet<CidKey, foldhash::fast::RandomState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_bytes_give_the_fingerprint_back() {
        for n in 0..256u32 {
            let k = CidKey::of(&blessed_cid_for_test(&n.to_le_bytes()));
            assert_eq!(CidKey::from_bytes(k.to_bytes()), k);
        }
    }

    #[test]
    fn short_fingerprints_keep_the_codec_apart_and_spread() {
        let mut shorts = std::collections::HashSet::new();
        for n in 0..4096u32 {
            let cid = blessed_cid_for_test(&n.to_le_bytes());
            let raw = Cid::new_v1(0x55, *cid.hash());
            // The same digest under another codec is another block.
            assert_ne!(CidKey::of(&cid).short(), CidKey::of(&raw).short());
            shorts.insert(CidKey::of(&cid).short());
            shorts.insert(CidKey::of(&raw).short());
        }
        assert_eq!(shorts.len(), 8192);
    }

    #[test]
    fn fingerprints_take_fifteen_digest_bytes_and_the_codec_on_either_path() {
        let digest: Vec<u8> = (1..=32).collect();
        let key = CidKey::from_parts(&digest, 0x71, 0x12);
        let mix = 0x71 ^ 0x12u8.rotate_left(4);
        let mut expected = [0u8; 16];
        expected[..15].copy_from_slice(&digest[..15]);
        expected[15] = mix;
        let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = expected;
        let expected = CidKey(
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
        );
        assert_eq!(key, expected);
        // A digest of 15 bytes (the slow path) gives the same key.
        assert_eq!(CidKey::from_parts(&digest[..15], 0x71, 0x12), expected);
        // A shorter one is padded with zeros.
        let short = CidKey::from_parts(&digest[..2], 0x71, 0x12);
        assert_eq!(
            short,
            CidKey(u64::from_le_bytes([1, 2, 0, 0, 0, 0, 0, 0]), u64::from(mix) << 56)
        );
    }

    fn blessed_cid_for_test(data: &[u8]) -> Cid {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(data);
        Cid::new_v1(0x71, multihash::Multihash::wrap(0x12, &digest).unwrap())
    }
}
