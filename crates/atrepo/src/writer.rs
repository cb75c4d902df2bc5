//! [`RepoWriter`]: signed repository CARs from records, in the streamable
//! block order.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use atrepo_car::{CarWriter, DAG_CBOR, Header, blessed_cid};
use atrepo_mst::{Builder, KeyRules, Limits, Records, WalkOptions, Walker};
use atrepo_store::{BlockRead, Bytes, MemoryStore};
use atrepo_verify::{Commit, SigningKey, Tid, UnsignedCommit, drisl};
use cid::Cid;

use crate::error::{Error, Result};

/// A repository assembled in memory, ready to write.
#[derive(Debug, Clone)]
pub struct BuiltRepo {
    /// The signed commit.
    pub commit: Commit,
    /// The commit's CID.
    pub commit_cid: Cid,
    /// Every block, the commit first, then MST nodes in pre-order with each
    /// record right after its entry's left subtree: the order in which a
    /// verifier walking the tree needs them.
    pub blocks: Vec<(Cid, Bytes)>,
}

/// Builds signed repositories: records in, a CAR out.
///
/// The output follows the spec exactly (canonical MST, strict commit, low-S
/// signature) and orders blocks for streaming verification, each block
/// once. Records are checked as strict DRISL records on insert unless
/// inserted with [`insert_unchecked`](Self::insert_unchecked) (for tests
/// that need invalid records).
#[derive(Debug, Clone)]
pub struct RepoWriter {
    did: String,
    records: BTreeMap<String, (Cid, Bytes)>,
    keys: KeyRules,
    prev: Option<Cid>,
}

impl RepoWriter {
    /// An empty repository for `did`.
    pub fn new(did: impl Into<String>) -> Self {
        RepoWriter { did: did.into(), records: BTreeMap::new(), keys: KeyRules::Strict, prev: None }
    }

    /// Returns this writer accepting keys under `keys` (the default is
    /// strict repository paths).
    pub fn keys(mut self, keys: KeyRules) -> Self {
        self.keys = keys;
        self
    }

    /// Returns this writer linking its commit to a previous one.
    pub fn prev(mut self, prev: Option<Cid>) -> Self {
        self.prev = prev;
        self
    }

    /// Adds or replaces the record under `key` (DRISL bytes) and returns
    /// its CID.
    pub fn insert(&mut self, key: &str, record: impl Into<Bytes>) -> Result<Cid> {
        let record = record.into();
        drisl::validate_record(&record, &drisl::Limits::default()).map_err(|error| {
            Error::InvalidRecord { key: key.to_owned(), cid: blessed_cid(DAG_CBOR, &record), error }
        })?;
        self.insert_unchecked(key, record)
    }

    /// Adds or replaces a record given as a data model value.
    pub fn insert_value(&mut self, key: &str, value: &drisl::Value) -> Result<Cid> {
        self.insert(key, value.to_cbor())
    }

    /// Adds or replaces a record without checking its encoding.
    pub fn insert_unchecked(&mut self, key: &str, record: impl Into<Bytes>) -> Result<Cid> {
        let record = record.into();
        let cid = blessed_cid(DAG_CBOR, &record);
        self.records.insert(key.to_owned(), (cid, record));
        Ok(cid)
    }

    /// Removes the record under `key`, returning its CID.
    pub fn remove(&mut self, key: &str) -> Option<Cid> {
        self.records.remove(key).map(|(cid, _)| cid)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Builds the tree, signs a commit at `rev`, and returns every block in
    /// streaming order.
    pub fn build(&self, key: &SigningKey, rev: Tid) -> Result<BuiltRepo> {
        let builder = Builder::new().keys(self.keys);
        let (root, nodes) =
            builder.build_nodes(self.records.iter().map(|(k, (cid, _))| (k.as_bytes(), *cid)))?;
        let commit = UnsignedCommit::new(&self.did, root, rev, self.prev)?.sign(key)?;
        let commit_bytes = Bytes::from(commit.to_cbor());
        let commit_cid = blessed_cid(DAG_CBOR, &commit_bytes);

        let store = MemoryStore::new();
        for (cid, bytes) in nodes {
            store.insert(cid, bytes);
        }
        for (cid, bytes) in self.records.values() {
            store.insert(*cid, bytes.clone());
        }
        let order = streaming_order(&store, root, self.keys)?;
        let mut blocks = Vec::new();
        blocks.push((commit_cid, commit_bytes));
        for cid in order {
            if let Some(bytes) = store.get(&cid)? {
                blocks.push((cid, bytes));
            }
        }
        Ok(BuiltRepo { commit, commit_cid, blocks })
    }

    /// Writes the repository as a CAR to `out`.
    pub fn write_car(&self, out: impl Write, key: &SigningKey, rev: Tid) -> Result<BuiltRepo> {
        let built = self.build(key, rev)?;
        write_blocks(out, built.commit_cid, &built.blocks)?;
        Ok(built)
    }

    /// The repository as a CAR in memory.
    pub fn to_car(&self, key: &SigningKey, rev: Tid) -> Result<Vec<u8>> {
        let built = self.build(key, rev)?;
        let header = Header::new(vec![built.commit_cid]).ok_or_else(no_root)?;
        Ok(atrepo_car::encode(&header, built.blocks.iter().map(|(c, b)| (c, &b[..]))))
    }
}

/// Writes `blocks` as a CAR whose only root is `root`.
pub fn write_blocks(out: impl Write, root: Cid, blocks: &[(Cid, Bytes)]) -> Result<()> {
    let header = Header::new(vec![root]).ok_or_else(no_root)?;
    let mut car = CarWriter::new(std::io::BufWriter::new(out), &header)?;
    for (cid, bytes) in blocks {
        car.write(cid, bytes)?;
    }
    let mut buffered = car.finish()?;
    buffered.flush()?;
    Ok(())
}

fn no_root() -> Error {
    Error::Usage("a CAR needs a root".to_owned())
}

/// The order in which a validated walk of the tree at `root` asks for
/// blocks: nodes in pre-order, each record right after its entry's left
/// subtree. Each CID once.
///
/// Nodes of any width are walked: the entry cap is a verifier's policy
/// for untrusted input (a reader of the CAR sets its own), and a writer
/// given keys that share a layer writes the one tree they make. Depth is
/// capped as for a verifier.
pub fn streaming_order(store: &dyn BlockRead, root: Cid, keys: KeyRules) -> Result<Vec<Cid>> {
    let recorder = Recorder { inner: store, order: Mutex::new(Vec::new()) };
    let limits = Limits::default().max_entries(u64::MAX);
    let options = WalkOptions::default().keys(keys).records(Records::Check).limits(limits);
    Walker::new(&recorder, root, options).for_each_leaf(|_, _, _| Ok(()))?;
    let mut order = recorder.order.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut seen = std::collections::HashSet::new();
    order.retain(|cid| seen.insert(*cid));
    Ok(order)
}

/// A store that notes which blocks are asked for, in order.
struct Recorder<'a> {
    inner: &'a dyn BlockRead,
    order: Mutex<Vec<Cid>>,
}

impl Recorder<'_> {
    fn note(&self, cid: &Cid) {
        self.order.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(*cid);
    }
}

impl BlockRead for Recorder<'_> {
    fn get(&self, cid: &Cid) -> atrepo_store::Result<Option<Bytes>> {
        self.note(cid);
        self.inner.get(cid)
    }
    fn has(&self, cid: &Cid) -> atrepo_store::Result<bool> {
        self.note(cid);
        self.inner.has(cid)
    }
    fn scan(
        &self,
        f: &mut dyn FnMut(&Cid, &[u8]) -> atrepo_store::Result<()>,
    ) -> atrepo_store::Result<()> {
        self.inner.scan(f)
    }
}
