//! [`Batch`]: a group of blocks written in one transaction.

use bytes::Bytes;
use cid::Cid;

/// Blocks to be written atomically by [`BlockStore::write`](crate::BlockStore::write).
///
/// A batch owns its blocks as [`Bytes`], so a memory backend keeps them
/// without copying. Duplicate CIDs inside one batch are allowed; the store
/// keeps one copy.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    blocks: Vec<(Cid, Bytes)>,
    payload_bytes: u64,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a block to the batch.
    pub fn put(&mut self, cid: Cid, bytes: Bytes) {
        self.payload_bytes = self.payload_bytes.saturating_add(bytes.len() as u64);
        self.blocks.push((cid, bytes));
    }

    /// Number of blocks in the batch, counting duplicates.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the batch holds no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Sum of the block lengths, counting duplicates.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// The blocks, in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Cid, &Bytes)> {
        self.blocks.iter().map(|(c, b)| (c, b))
    }

    /// Removes every block, keeping the allocation for reuse.
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.payload_bytes = 0;
    }
}

impl IntoIterator for Batch {
    type Item = (Cid, Bytes);
    type IntoIter = std::vec::IntoIter<(Cid, Bytes)>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.into_iter()
    }
}

impl FromIterator<(Cid, Bytes)> for Batch {
    fn from_iter<I: IntoIterator<Item = (Cid, Bytes)>>(iter: I) -> Self {
        let mut batch = Batch::new();
        for (cid, bytes) in iter {
            batch.put(cid, bytes);
        }
        batch
    }
}

impl Extend<(Cid, Bytes)> for Batch {
    fn extend<I: IntoIterator<Item = (Cid, Bytes)>>(&mut self, iter: I) {
        for (cid, bytes) in iter {
            self.put(cid, bytes);
        }
    }
}
