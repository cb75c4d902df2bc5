//! Helpers the disk backends share: CID keys and block counters.

use cid::Cid;

use crate::{BlockStore, Error, Result, Usage};

/// The key a disk backend stores a block under: the CID's binary form.
///
/// The whole CID, not just its digest, so that two CIDs with one digest and
/// different codecs (or versions) are different blocks, as they are in the
/// memory store.
pub(crate) fn key_of(cid: &Cid) -> Vec<u8> {
    cid.to_bytes()
}

/// Parses a key read back from disk.
pub(crate) fn cid_from_key(backend: &'static str, key: &[u8]) -> Result<Cid> {
    Cid::try_from(key).map_err(|_| Error::Corrupt {
        backend,
        what: format!("expected a CID as key, found {} bytes that do not parse", key.len()),
    })
}

/// The size of a blessed CID's binary form, the smallest key a disk
/// backend stores per block.
const KEY_BYTES_PER_BLOCK: u64 = 36;

/// Distinct blocks and payload bytes, kept beside the blocks on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) blocks: u64,
    pub(crate) payload: u64,
}

impl Counters {
    pub(crate) fn add(&mut self, len: usize) {
        self.blocks = self.blocks.saturating_add(1);
        self.payload = self.payload.saturating_add(len as u64);
    }

    /// The [`Usage`] of a store whose files take `disk_bytes`.
    ///
    /// Overhead is the file size beyond the payload, but never less than
    /// [`KEY_BYTES_PER_BLOCK`] per block: every disk backend stores each
    /// block's CID as its key, and a backend that has not yet written its
    /// latest batches out (sled between flushes) would otherwise report
    /// less than it costs.
    pub(crate) fn usage(self, disk_bytes: u64) -> Usage {
        let floor = self.blocks.saturating_mul(KEY_BYTES_PER_BLOCK);
        Usage {
            blocks: self.blocks,
            payload_bytes: self.payload,
            overhead_bytes: disk_bytes.saturating_sub(self.payload).max(floor),
        }
    }
}

/// Scans `store` and checks that its [`Usage`] counters match what it holds.
pub(crate) fn check_counters(backend: &'static str, store: &dyn BlockStore) -> Result<()> {
    let mut found = Counters::default();
    store.scan(&mut |_, bytes| {
        found.add(bytes.len());
        Ok(())
    })?;
    let usage = store.usage()?;
    let counted = Counters { blocks: usage.blocks, payload: usage.payload_bytes };
    if counted != found {
        return Err(Error::Corrupt {
            backend,
            what: format!(
                "expected counters of {} blocks and {} payload bytes, found {} blocks and {} bytes",
                found.blocks, found.payload, counted.blocks, counted.payload
            ),
        });
    }
    Ok(())
}

/// What the disk backends' unit tests share (redb's and sled's).
#[cfg(all(test, any(feature = "redb", feature = "sled")))]
pub(crate) mod tests {
    use std::path::Path;

    use bytes::Bytes;
    use cid::Cid;

    /// The names in `dir`, sorted.
    pub(crate) fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A raw block of `bytes` and its CID.
    pub(crate) fn raw_block(bytes: impl Into<Bytes>) -> (Cid, Bytes) {
        let bytes = bytes.into();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
        (Cid::new_v1(0x55, multihash::Multihash::wrap(0x12, &digest).unwrap()), bytes)
    }

    /// A one-byte raw block, and a batch holding it.
    #[cfg(feature = "redb")]
    pub(crate) fn one_block() -> (Cid, Bytes, crate::Batch) {
        let (cid, bytes) = raw_block(Bytes::from_static(b"x"));
        let mut batch = crate::Batch::new();
        batch.put(cid, bytes.clone());
        (cid, bytes, batch)
    }
}
