//! Writing events: [`CommitEventBuilder`] makes a signed `#commit` event
//! from a repository and a set of record writes, exactly as a PDS sends it
//! (the commit, its covering proof blocks, the new records, the ops), and
//! [`sync_event`] a `#sync` event. For tests, fixtures and benchmarks, and
//! for anyone who needs to produce events the verifier accepts.

use std::sync::Mutex;

use cid::Cid;

use super::RepoState;
use super::decode::{Action, CommitEvent, RepoOp, SyncEvent};
use super::frame::Frame;
use crate::car::{DAG_CBOR, Header, blessed_cid, encode};
use crate::mst::{self, KeyRules, Op, Tree};
use crate::store::{Batch, BlockRead, BlockStore, Bytes};
use crate::verify::{SigningKey, Tid, UnsignedCommit};
use crate::{Error, Result};

/// A [`BlockRead`] that remembers every block it hands out, in the order
/// first read.
struct Recording<'s> {
    inner: &'s dyn BlockRead,
    seen: Mutex<Vec<(Cid, Bytes)>>,
}

impl BlockRead for Recording<'_> {
    fn get(&self, cid: &Cid) -> crate::store::Result<Option<Bytes>> {
        let found = self.inner.get(cid)?;
        if let Some(bytes) = &found {
            let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !seen.iter().any(|(c, _)| c == cid) {
                seen.push((*cid, bytes.clone()));
            }
        }
        Ok(found)
    }

    fn scan(
        &self,
        f: &mut dyn FnMut(&Cid, &[u8]) -> crate::store::Result<()>,
    ) -> crate::store::Result<()> {
        self.inner.scan(f)
    }
}

/// The MST nodes a verifier needs to check `ops` against the tree rooted
/// at `after` and invert them: every node the [`Verifier`]'s tree phase
/// reads (the root, each op's search path, the neighbours that
/// re-inserting or removing a key splits or merges, and the edges of the
/// subtrees next to a removed key), in the order first read. `store` must
/// hold the whole tree after the commit.
///
/// Each block returned is needed (without it the verifier fails with a
/// missing node) except those edges: the verifier checks them against the
/// removed key when they are there, and skips the check when not.
///
/// [`Verifier`]: super::Verifier
pub fn covering_proof(
    store: &dyn BlockRead,
    after: Cid,
    ops: &[Op],
    keys: KeyRules,
) -> Result<Vec<(Cid, Bytes)>> {
    covering_proof_with(store, after, ops, keys, mst::Limits::default())
}

/// [`covering_proof`] for a tree read within `limits` (a node wider than
/// the default entry cap, say).
pub fn covering_proof_with(
    store: &dyn BlockRead,
    after: Cid,
    ops: &[Op],
    keys: KeyRules,
    limits: mst::Limits,
) -> Result<Vec<(Cid, Bytes)>> {
    if ops.is_empty() {
        return Ok(Vec::new());
    }
    let recording = Recording { inner: store, seen: Mutex::new(Vec::new()) };
    {
        let mut tree = Tree::load_with(&recording, after, keys, limits)?;
        // The same reads, in the same order, as the verifier's tree phase.
        for op in ops {
            tree.get(op.key())?;
        }
        for op in ops {
            match op {
                Op::Create { key, .. } => tree.remove(key)?,
                Op::Update { key, prev, .. } | Op::Delete { key, prev } => {
                    tree.insert(key, *prev)?
                }
            };
        }
    }
    Ok(recording.seen.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// What [`CommitEventBuilder::build`] made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuiltCommit {
    /// The `#commit` body, as carried after the frame header.
    pub body: Vec<u8>,
    /// The whole frame: header and body.
    pub frame: Vec<u8>,
    /// The event's `blocks`: a CAR of the commit, the proof and new nodes,
    /// and the new records.
    pub blocks: Vec<u8>,
    /// The commit block's CID.
    pub commit: Cid,
    /// The tree root before the commit (the event's `prevData`).
    pub before: Cid,
    /// The tree root after the commit (the commit's `data`).
    pub after: Cid,
    /// The operations, in the order the writes were given.
    pub ops: Vec<Op>,
    /// The nodes the verifier reads ([`covering_proof`]), in `blocks`.
    pub proof: Vec<Cid>,
    /// Every node the commit created, in `blocks` too (a PDS sends its
    /// whole diff); most are also in `proof`.
    pub new_nodes: Vec<Cid>,
}

impl BuiltCommit {
    /// The repository's state after the commit.
    pub fn state(&self, rev: Tid) -> RepoState {
        RepoState { rev, data: self.after }
    }
}

/// Builds a signed `#commit` event from a repository in a [`BlockStore`]
/// and a list of record writes, and adds the new nodes and records to the
/// store, so that the next commit can follow.
///
/// ```
/// use atrepo::event::CommitEventBuilder;
/// use atrepo::mst::Builder;
/// use atrepo::store::MemoryStore;
/// use atrepo::verify::{Curve, SigningKey, Tid, drisl::Value};
///
/// # fn main() -> atrepo::Result<()> {
/// let store = MemoryStore::new();
/// let empty = Builder::new().build(&store, Vec::<(String, cid::Cid)>::new())?;
/// let key = SigningKey::from_seed(Curve::P256, b"example")?;
/// let record = Value::Map([("text".to_owned(), Value::String("hi".into()))].into()).to_cbor();
/// let rev = Tid::from_parts(1_700_000_000_000_000, 0).unwrap();
/// let built = CommitEventBuilder::new(&store, "did:plc:example", empty, rev)
///     .put("app.bsky.feed.post/3kdgeqpfkj22a", record)
///     .build(&key)?;
/// assert_eq!(built.ops.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CommitEventBuilder<'s> {
    store: &'s dyn BlockStore,
    did: String,
    before: Cid,
    rev: Tid,
    since: Option<Tid>,
    seq: i64,
    time: Option<String>,
    keys: KeyRules,
    limits: mst::Limits,
    prev_data: bool,
    writes: Vec<(String, Option<Vec<u8>>)>,
}

impl std::fmt::Debug for CommitEventBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitEventBuilder")
            .field("did", &self.did)
            .field("before", &self.before)
            .field("rev", &self.rev)
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

impl<'s> CommitEventBuilder<'s> {
    /// A commit for `did` with rev `rev` on the tree rooted at `before` in
    /// `store`. `since` is unset (null), `seq` is 1, `time` is the rev's
    /// timestamp.
    pub fn new(store: &'s dyn BlockStore, did: &str, before: Cid, rev: Tid) -> Self {
        CommitEventBuilder {
            store,
            did: did.to_owned(),
            before,
            rev,
            since: None,
            seq: 1,
            time: None,
            keys: KeyRules::Strict,
            limits: mst::Limits::default(),
            prev_data: true,
            writes: Vec::new(),
        }
    }

    /// Sets the event's `since` (the previous commit's rev).
    pub fn since(mut self, since: Option<Tid>) -> Self {
        self.since = since;
        self
    }

    /// Sets the event's sequence number.
    pub fn seq(mut self, seq: i64) -> Self {
        self.seq = seq;
        self
    }

    /// Sets the event's `time`.
    pub fn time(mut self, time: &str) -> Self {
        self.time = Some(time.to_owned());
        self
    }

    /// Sets the key rules for the paths written.
    pub fn keys(mut self, keys: KeyRules) -> Self {
        self.keys = keys;
        self
    }

    /// Sets the limits the tree is read within (a repository with a node
    /// wider than the default entry cap needs a higher one).
    pub fn mst_limits(mut self, limits: mst::Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether the event carries `prevData` (on by default; off makes a
    /// pre-sync-1.1 event).
    pub fn prev_data(mut self, yes: bool) -> Self {
        self.prev_data = yes;
        self
    }

    /// Creates or updates the record at `path` with `record`, a DRISL
    /// record block.
    pub fn put(mut self, path: &str, record: Vec<u8>) -> Self {
        self.writes.push((path.to_owned(), Some(record)));
        self
    }

    /// Deletes the record at `path`.
    pub fn delete(mut self, path: &str) -> Self {
        self.writes.push((path.to_owned(), None));
        self
    }

    /// Applies the writes, signs the commit with `key` and encodes the
    /// event.
    ///
    /// Fails with [`Error::Usage`] if a path is written twice, a delete
    /// names an absent record, or an update does not change its record;
    /// with the MST's error if the tree cannot be read or a path is not a
    /// valid key.
    pub fn build(self, key: &SigningKey) -> Result<BuiltCommit> {
        let mut ops = Vec::new();
        let mut records: Vec<(Cid, Vec<u8>)> = Vec::new();
        let (after, new_blocks) = {
            let mut tree = Tree::load_with(self.store, self.before, self.keys, self.limits)?;
            for (path, record) in self.writes {
                if ops.iter().any(|op: &Op| op.key() == path) {
                    return Err(Error::Usage(format!("path {path:?} is written twice")));
                }
                match record {
                    Some(bytes) => {
                        let cid = blessed_cid(DAG_CBOR, &bytes);
                        match tree.insert(&path, cid)? {
                            None => ops.push(Op::Create { key: path, cid }),
                            // Unchanged records are updates too (`cid` equal to
                            // `prev`), as the TypeScript PDS writes them.
                            Some(prev) => ops.push(Op::Update { key: path, cid, prev }),
                        }
                        records.push((cid, bytes));
                    }
                    None => match tree.remove(&path)? {
                        Some(prev) => ops.push(Op::Delete { key: path, prev }),
                        None => {
                            return Err(Error::Usage(format!("delete of absent record {path:?}")));
                        }
                    },
                }
            }
            tree.root_and_new_blocks()
        };
        let new_nodes: Vec<Cid> = new_blocks.iter().map(|(cid, _)| *cid).collect();
        let mut batch: Batch = new_blocks.iter().cloned().collect();
        batch.extend(records.iter().map(|(cid, bytes)| (*cid, Bytes::copy_from_slice(bytes))));
        self.store.write(batch)?;

        let proof = covering_proof_with(self.store, after, &ops, self.keys, self.limits)?;
        let commit = UnsignedCommit::new(&self.did, after, self.rev, None)?.sign(key)?;
        let commit_bytes = commit.to_cbor();
        let commit_cid = commit.cid();

        let mut car_blocks: Vec<(Cid, &[u8])> = vec![(commit_cid, &commit_bytes)];
        for (cid, bytes) in &proof {
            car_blocks.push((*cid, bytes));
        }
        for (cid, bytes) in &new_blocks {
            if !proof.iter().any(|(c, _)| c == cid) {
                car_blocks.push((*cid, bytes));
            }
        }
        for (cid, bytes) in &records {
            if !car_blocks.iter().any(|(c, _)| c == cid) {
                car_blocks.push((*cid, bytes));
            }
        }
        let header = Header::new(vec![commit_cid])
            .ok_or_else(|| Error::Usage("a CAR header needs a root".to_owned()))?;
        let blocks = encode(&header, car_blocks.iter().map(|(c, b)| (c, *b)));

        let time = self.time.unwrap_or_else(|| datetime(self.rev.timestamp_micros()));
        let event = CommitEvent {
            seq: self.seq,
            repo: &self.did,
            rev: self.rev,
            since: self.since,
            time: &time,
            commit: commit_cid,
            blocks: &blocks,
            ops: ops.iter().map(repo_op).collect(),
            prev_data: self.prev_data.then_some(self.before),
        };
        let body = event.to_cbor();
        let frame = Frame::encode("#commit", &body);
        Ok(BuiltCommit {
            body,
            frame,
            blocks,
            commit: commit_cid,
            before: self.before,
            after,
            ops,
            proof: proof.into_iter().map(|(cid, _)| cid).collect(),
            new_nodes,
        })
    }
}

fn repo_op(op: &Op) -> RepoOp<'_> {
    match op {
        Op::Create { key, cid } => RepoOp::new(Action::Create, key, Some(*cid), None),
        Op::Update { key, cid, prev } => RepoOp::new(Action::Update, key, Some(*cid), Some(*prev)),
        Op::Delete { key, prev } => RepoOp::new(Action::Delete, key, None, Some(*prev)),
    }
}

/// What [`sync_event`] made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuiltSync {
    /// The `#sync` body, as carried after the frame header.
    pub body: Vec<u8>,
    /// The whole frame: header and body.
    pub frame: Vec<u8>,
    /// The commit block's CID.
    pub commit: Cid,
}

/// A signed `#sync` event for `did` declaring the tree rooted at `data` at
/// rev `rev`; `time` is the rev's timestamp.
pub fn sync_event(did: &str, data: Cid, rev: Tid, seq: i64, key: &SigningKey) -> Result<BuiltSync> {
    let commit = UnsignedCommit::new(did, data, rev, None)?.sign(key)?;
    let bytes = commit.to_cbor();
    let cid = commit.cid();
    let header = Header::new(vec![cid])
        .ok_or_else(|| Error::Usage("a CAR header needs a root".to_owned()))?;
    let blocks = encode(&header, [(&cid, bytes.as_slice())]);
    let time = datetime(rev.timestamp_micros());
    let event = SyncEvent { seq, did, rev, time: &time, blocks: &blocks };
    let body = event.to_cbor();
    let frame = Frame::encode("#sync", &body);
    Ok(BuiltSync { body, frame, commit: cid })
}

/// `micros` since the UNIX epoch as an atproto datetime with milliseconds
/// (`2023-11-14T22:13:20.000Z`); years past 9999 are written as the last
/// instant of 9999.
fn datetime(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let millis = micros / 1000 % 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    if year > 9999 {
        return "9999-12-31T23:59:59.999Z".to_owned();
    }
    let s = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, on unsigned numbers since `days` is never negative).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(datetime(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(datetime(1_700_000_000_123_456), "2023-11-14T22:13:20.123Z");
        assert_eq!(datetime(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        // The largest TID timestamp, and beyond.
        assert_eq!(datetime((1 << 53) - 1), "2255-06-05T23:47:34.740Z");
        assert_eq!(datetime(u64::MAX), "9999-12-31T23:59:59.999Z");
        crate::verify::syntax::datetime(&datetime(1_700_000_000_123_456)).unwrap();
    }
}
