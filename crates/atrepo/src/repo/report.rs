//! [`Record`] and [`Report`]: what a verification hands back.

use std::collections::BTreeMap;

use atrepo_store::Bytes;
use cid::Cid;
use serde::Serialize;

/// One verified record, borrowed from the reader that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub(crate) key: &'a str,
    pub(crate) cid: Cid,
    pub(crate) data: Option<&'a Bytes>,
}

impl<'a> Record<'a> {
    /// The full key, `collection/rkey`.
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The collection (NSID) part of the key.
    pub fn collection(&self) -> &'a str {
        self.key.split_once('/').map_or(self.key, |(c, _)| c)
    }

    /// The record key part of the key.
    pub fn rkey(&self) -> &'a str {
        self.key.split_once('/').map_or("", |(_, r)| r)
    }

    /// The record's CID.
    pub fn cid(&self) -> Cid {
        self.cid
    }

    /// The record's bytes, verified against its CID (and, unless the check
    /// is [`RecordCheck::Opaque`](crate::RecordCheck::Opaque), as strict
    /// DRISL). A record whose CID an earlier key already pointed to
    /// (checked then) has its bytes again when the input is held in memory
    /// or is a file, or is a stream read with
    /// [`VerifyOptions::keep_records`](crate::VerifyOptions::keep_records)
    /// (read back and re-hashed, up to 256 MiB of such reads per
    /// repository); `None` for it past that, when the input is a stream
    /// read without keeping (its bytes were dropped once handed out), or
    /// when keeping stopped (its cap, a record of 16 MiB or more).
    pub fn data(&self) -> Option<&'a Bytes> {
        self.data
    }

    /// An owned copy of this record.
    pub fn to_owned(&self) -> OwnedRecord {
        OwnedRecord { key: self.key.to_owned(), cid: self.cid, data: self.data.cloned() }
    }
}

/// One verified record, owned: what the readers' [`Iterator`] impls yield.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// The full key, `collection/rkey`.
    pub key: String,
    /// The record's CID.
    pub cid: Cid,
    /// The record's bytes; see [`Record::data`].
    pub data: Option<Bytes>,
}

/// The outcome of a complete verification: what was verified and what it
/// cost. Its JSON form (serde) is the `--json` output of `atrepo verify`;
/// fields are only ever added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The repository's DID.
    pub did: String,
    /// The commit's revision (empty for v2 commits, which have none).
    pub rev: String,
    /// The commit's format version.
    pub version: u64,
    /// The commit's CID.
    pub commit: String,
    /// The MST root CID.
    pub data: String,
    /// The signature check.
    pub signature: SignatureReport,
    /// Records in the repository.
    pub records: u64,
    /// Records per collection.
    pub collections: BTreeMap<String, u64>,
    /// Records whose CID an earlier key already pointed to.
    pub repeated_records: u64,
    /// The MST.
    pub mst: MstReport,
    /// The CAR.
    pub car: CarReport,
    /// The block buffer.
    pub memory: MemoryReport,
}

/// The signature check in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureReport {
    /// Whether the signature was checked (and, the report existing, valid).
    pub checked: bool,
    /// The key it was checked with, as `did:key`.
    pub key: Option<String>,
}

/// The MST in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MstReport {
    /// Nodes.
    pub nodes: u64,
    /// Bytes of node blocks.
    pub node_bytes: u64,
    /// Layers: the root's layer plus one (0 for an empty tree).
    pub layers: u8,
}

/// The CAR in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CarReport {
    /// Bytes read, header included.
    pub bytes: u64,
    /// Blocks (sections) read, duplicates included.
    pub blocks: u64,
    /// Blocks that arrived more than once. Exact, but for one case: an
    /// unreferenced block repeated after the walk ended is recognised only
    /// while the memory limit has room to remember the blocks that came
    /// since (64 bytes each); past that, its repeats count as unreferenced.
    pub duplicate_blocks: u64,
    /// Blocks nothing in the repository links to.
    pub unreferenced_blocks: u64,
    /// Their bytes.
    pub unreferenced_bytes: u64,
}

/// The block buffer in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryReport {
    /// The most bytes the buffer held in memory at once.
    pub peak_buffered_bytes: u64,
    /// Whether blocks had to go to disk.
    pub spilled: bool,
}
