//! `#commit` and `#sync` event bodies: strict decoding with the size limits
//! checked from the CBOR heads, and canonical encoding.

use std::fmt;

use cid::Cid;

use super::Limits;
use super::error::{EventError, snippet};
use crate::verify::drisl::{self, DecodeError, Decoder, Encoder, Problem, key_precedes};
use crate::verify::{Tid, syntax};

/// The two event types this module verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `#commit`: a new commit and the diff that leads to it.
    Commit,
    /// `#sync`: the repository's current commit, resetting its state.
    Sync,
}

impl EventType {
    /// The type as frame headers name it: `#commit` or `#sync`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Commit => "#commit",
            EventType::Sync => "#sync",
        }
    }

    /// The type of a bare event body (without its frame header), from its
    /// keys: a `commit` key makes a `#commit`, a `did` key a `#sync`.
    /// `None` if the bytes are neither (or not a DRISL map).
    pub fn detect(body: &[u8]) -> Option<EventType> {
        let mut d = Decoder::new(body);
        let n = d.map().ok()?;
        let mut did = false;
        for _ in 0..n {
            let key = d.text_key().ok()?;
            match key {
                b"commit" => return Some(EventType::Commit),
                b"did" => did = true,
                _ => {}
            }
            d.skip(&drisl::Limits::default()).ok()?;
        }
        did.then_some(EventType::Sync)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an operation did to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// A new record.
    Create,
    /// A changed record.
    Update,
    /// A removed record.
    Delete,
}

impl Action {
    /// The action as the wire names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "create" => Some(Action::Create),
            "update" => Some(Action::Update),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record operation of a `#commit` event (`#repoOp`), as sent: its
/// consistency with the commit is checked by the verifier, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepoOp<'a> {
    /// What happened to the record.
    pub action: Action,
    /// The record's repository path, `collection/rkey` (checked by the
    /// verifier under its key rules).
    pub path: &'a str,
    /// The new record's CID; null for deletes.
    pub cid: Option<Cid>,
    /// The previous record's CID, for updates and deletes (sync 1.1).
    pub prev: Option<Cid>,
}

impl<'a> RepoOp<'a> {
    /// An operation with the given fields.
    pub fn new(action: Action, path: &'a str, cid: Option<Cid>, prev: Option<Cid>) -> Self {
        RepoOp { action, path, cid, prev }
    }
}

/// A `#commit` event body, decoded strictly and borrowing from its bytes.
///
/// Fields are public so that callers (and tests) can inspect and change an
/// event and [`to_cbor`](Self::to_cbor) it again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitEvent<'a> {
    /// The stream sequence number.
    pub seq: i64,
    /// The account's DID.
    pub repo: &'a str,
    /// The commit's rev.
    pub rev: Tid,
    /// The rev of the commit this diff starts from; null for a repository's
    /// first commit.
    pub since: Option<Tid>,
    /// When the event was sent (a datetime; informational).
    pub time: &'a str,
    /// The commit block's CID.
    pub commit: Cid,
    /// The CAR slice: the commit, the MST nodes the operations touch, the
    /// new records.
    pub blocks: &'a [u8],
    /// The record operations.
    pub ops: Vec<RepoOp<'a>>,
    /// The tree root before this commit (sync 1.1).
    pub prev_data: Option<Cid>,
}

/// A `#sync` event body, decoded strictly and borrowing from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncEvent<'a> {
    /// The stream sequence number.
    pub seq: i64,
    /// The account's DID.
    pub did: &'a str,
    /// The commit's rev.
    pub rev: Tid,
    /// When the event was sent (a datetime; informational).
    pub time: &'a str,
    /// The CAR slice holding the commit block.
    pub blocks: &'a [u8],
}

/// An `#identity` event body: the account's identity (DID document or
/// handle) may have changed, and should be resolved again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityEvent<'a> {
    /// The stream sequence number.
    pub seq: i64,
    /// The account's DID.
    pub did: &'a str,
    /// When the event was sent (a datetime; informational).
    pub time: &'a str,
    /// The account's current handle, if the event gives one (a hint only:
    /// it must be verified by resolution).
    pub handle: Option<&'a str>,
}

/// An `#account` event body: the account's hosting status changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountEvent<'a> {
    /// The stream sequence number.
    pub seq: i64,
    /// The account's DID.
    pub did: &'a str,
    /// When the event was sent (a datetime; informational).
    pub time: &'a str,
    /// Whether the account's repository is hosted and served. While it is
    /// not, relays ignore its `#commit` and `#sync` events.
    pub active: bool,
    /// Why it is not active (`takendown`, `suspended`, `deleted`,
    /// `deactivated`, `desynchronized`, `throttled`, or a value the lexicon
    /// adds later), if given.
    pub status: Option<&'a str>,
}

const COMMIT: &str = "#commit body";
const SYNC: &str = "#sync body";
const IDENTITY: &str = "#identity body";
const ACCOUNT: &str = "#account body";
const OP: &str = "#commit op";

/// Wraps a DRISL error as an [`EventError::Cbor`] for `part`.
pub(super) fn cbor(part: &'static str) -> impl Fn(DecodeError) -> EventError {
    move |error| EventError::Cbor { part, error }
}

/// The declared length or count in the CBOR head at `at`, if it is a
/// well-formed head of major type `major`. Used only to check limits before
/// the decoder reads (and validates) the item itself.
pub(super) fn peek_len(input: &[u8], at: u64, major: u8) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let rest = input.get(at..)?;
    let (&initial, rest) = rest.split_first()?;
    if initial >> 5 != major {
        return None;
    }
    let n = match initial & 0x1f {
        info @ 0..=23 => return Some(u64::from(info)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let bytes = rest.get(..n)?;
    Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Reads the next key of a map whose keys must be canonical, checking it
/// sorts after `prev`.
fn next_key<'a>(
    d: &mut Decoder<'a>,
    prev: &mut Option<&'a [u8]>,
    part: &'static str,
) -> Result<&'a [u8], EventError> {
    let at = d.offset();
    let key = d.text_key().map_err(cbor(part))?;
    if prev.is_some_and(|p| !key_precedes(p, key)) {
        return Err(EventError::Cbor {
            part,
            error: DecodeError { offset: at, problem: Problem::KeyOrder },
        });
    }
    *prev = Some(key);
    Ok(key)
}

/// Skips the value of a key the schema does not use.
fn skip(d: &mut Decoder<'_>, part: &'static str) -> Result<(), EventError> {
    d.skip(&drisl::Limits::default()).map_err(cbor(part))
}

fn parse_tid(part: &'static str, field: &'static str, s: &str) -> Result<Tid, EventError> {
    Tid::parse(s).map_err(|error| EventError::InvalidField { part, field, error })
}

fn check_did(part: &'static str, field: &'static str, s: &str) -> Result<(), EventError> {
    syntax::did(s).map_err(|error| EventError::InvalidField { part, field, error })
}

fn check_time(part: &'static str, s: &str) -> Result<(), EventError> {
    syntax::datetime(s).map_err(|error| EventError::InvalidField { part, field: "time", error })
}

/// Reads the `blocks` byte string, refusing it from its head if it is over
/// the limit.
fn blocks<'a>(
    d: &mut Decoder<'a>,
    input: &[u8],
    limits: &Limits,
    part: &'static str,
) -> Result<&'a [u8], EventError> {
    if let Some(found) = peek_len(input, d.offset(), 2)
        && found > limits.max_blocks_bytes
    {
        return Err(EventError::BlocksTooLarge { limit: limits.max_blocks_bytes, found });
    }
    d.bytes().map_err(cbor(part))
}

fn required<T>(value: Option<T>, part: &'static str, field: &'static str) -> Result<T, EventError> {
    value.ok_or(EventError::MissingField { part, field })
}

fn check_frame_size(bytes: &[u8], limits: &Limits) -> Result<(), EventError> {
    let found = bytes.len() as u64;
    if found > limits.max_frame_bytes {
        return Err(EventError::FrameTooLarge { limit: limits.max_frame_bytes, found });
    }
    Ok(())
}

impl<'a> CommitEvent<'a> {
    /// Decodes a `#commit` body (the bytes after the frame header).
    ///
    /// Limits come first: the whole body against
    /// [`Limits::max_frame_bytes`], the `ops` array against
    /// [`Limits::max_ops`] and the `blocks` field against
    /// [`Limits::max_blocks_bytes`], each from its CBOR head before any of
    /// its contents is read. Then the schema: strict DRISL, keys in
    /// canonical order, required fields present, `repo` a DID, `rev` and
    /// `since` TIDs, `time` a datetime, `commit` and `prevData` CIDv1
    /// dag-cbor sha2-256 links, each op's `action` known. Unknown and
    /// deprecated fields are skipped.
    pub fn decode(body: &'a [u8], limits: &Limits) -> Result<CommitEvent<'a>, EventError> {
        check_frame_size(body, limits)?;
        let mut d = Decoder::new(body);
        let n = d.map().map_err(cbor(COMMIT))?;
        let mut prev = None;
        let (mut ops, mut rev, mut seq, mut repo, mut time) = (None, None, None, None, None);
        let (mut since, mut blocks_field, mut commit, mut prev_data) = (None, None, None, None);
        for _ in 0..n {
            match next_key(&mut d, &mut prev, COMMIT)? {
                b"ops" => ops = Some(read_ops(&mut d, body, limits)?),
                b"rev" => rev = Some(parse_tid(COMMIT, "rev", d.text().map_err(cbor(COMMIT))?)?),
                b"seq" => seq = Some(d.int().map_err(cbor(COMMIT))?),
                b"repo" => {
                    let s = d.text().map_err(cbor(COMMIT))?;
                    check_did(COMMIT, "repo", s)?;
                    repo = Some(s);
                }
                b"time" => {
                    let s = d.text().map_err(cbor(COMMIT))?;
                    check_time(COMMIT, s)?;
                    time = Some(s);
                }
                b"since" => {
                    since = Some(if d.null().map_err(cbor(COMMIT))? {
                        None
                    } else {
                        Some(parse_tid(COMMIT, "since", d.text().map_err(cbor(COMMIT))?)?)
                    });
                }
                b"blocks" => blocks_field = Some(blocks(&mut d, body, limits, COMMIT)?),
                b"commit" => commit = Some(d.node_link().map_err(cbor(COMMIT))?),
                b"prevData" => prev_data = d.node_link_or_null().map_err(cbor(COMMIT))?,
                // Deprecated (`blobs`, `rebase`, `tooBig`) and unknown fields.
                _ => skip(&mut d, COMMIT)?,
            }
        }
        d.finish().map_err(cbor(COMMIT))?;
        Ok(CommitEvent {
            ops: required(ops, COMMIT, "ops")?,
            rev: required(rev, COMMIT, "rev")?,
            seq: required(seq, COMMIT, "seq")?,
            repo: required(repo, COMMIT, "repo")?,
            time: required(time, COMMIT, "time")?,
            // Required but nullable in the lexicon: absent reads as null,
            // as cbor-gen decoders (indigo) read it.
            since: since.flatten(),
            blocks: required(blocks_field, COMMIT, "blocks")?,
            commit: required(commit, COMMIT, "commit")?,
            prev_data,
        })
    }

    /// The canonical DRISL body, with the deprecated fields as producers
    /// must write them (`blobs: []`, `rebase: false`, `tooBig: false`) and
    /// `prevData` when present.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.map(11u64.saturating_add(u64::from(self.prev_data.is_some())));
        e.text("ops").array(self.ops.len() as u64);
        for op in &self.ops {
            let n = 3u64.saturating_add(u64::from(op.prev.is_some()));
            e.map(n).text("cid").link_or_null(op.cid.as_ref()).text("path").text(op.path);
            if let Some(prev) = &op.prev {
                e.text("prev").link(prev);
            }
            e.text("action").text(op.action.as_str());
        }
        e.text("rev").text(&self.rev.to_string());
        e.text("seq").int(self.seq);
        e.text("repo").text(self.repo);
        e.text("time").text(self.time);
        e.text("blobs").array(0);
        e.text("since");
        match &self.since {
            Some(since) => e.text(&since.to_string()),
            None => e.null(),
        };
        e.text("blocks").bytes(self.blocks);
        e.text("commit").link(&self.commit);
        e.text("rebase").bool(false);
        e.text("tooBig").bool(false);
        if let Some(prev_data) = &self.prev_data {
            e.text("prevData").link(prev_data);
        }
        e.into_bytes()
    }
}

/// Reads the `ops` array, refusing it from its head if it is over the
/// limit.
fn read_ops<'a>(
    d: &mut Decoder<'a>,
    input: &[u8],
    limits: &Limits,
) -> Result<Vec<RepoOp<'a>>, EventError> {
    if let Some(found) = peek_len(input, d.offset(), 4)
        && found > limits.max_ops
    {
        return Err(EventError::TooManyOps { limit: limits.max_ops, found });
    }
    let n = d.array().map_err(cbor(COMMIT))?;
    let mut ops = Vec::new();
    for _ in 0..n {
        ops.push(read_op(d)?);
    }
    Ok(ops)
}

fn read_op<'a>(d: &mut Decoder<'a>) -> Result<RepoOp<'a>, EventError> {
    let n = d.map().map_err(cbor(OP))?;
    let mut prev_key = None;
    let (mut cid, mut path, mut prev, mut action) = (None, None, None, None);
    for _ in 0..n {
        match next_key(d, &mut prev_key, OP)? {
            b"cid" => cid = Some(link_or_null(d)?),
            b"path" => path = Some(d.text().map_err(cbor(OP))?),
            b"prev" => prev = link_or_null(d)?,
            b"action" => action = Some(d.text().map_err(cbor(OP))?),
            _ => skip(d, OP)?,
        }
    }
    let path = required(path, OP, "path")?;
    let found = required(action, OP, "action")?;
    let action = Action::parse(found).ok_or_else(|| EventError::UnknownAction {
        path: snippet(path, 1024),
        found: snippet(found, 64),
    })?;
    // `cid` is required but nullable (null for a delete): absent reads as
    // null, as cbor-gen decoders (indigo) read it; the action's checks
    // then say whether it may be.
    Ok(RepoOp { action, path, cid: cid.flatten(), prev })
}

/// Reads `null` or a link to a record (any CID: record links keep the CID
/// they were given).
fn link_or_null(d: &mut Decoder<'_>) -> Result<Option<Cid>, EventError> {
    if d.null().map_err(cbor(OP))? { Ok(None) } else { d.link().map(Some).map_err(cbor(OP)) }
}

impl<'a> SyncEvent<'a> {
    /// Decodes a `#sync` body (the bytes after the frame header): the body
    /// against [`Limits::max_frame_bytes`] and `blocks` against
    /// [`Limits::max_blocks_bytes`] from their heads, then the schema
    /// (every field required; `did` a DID, `rev` a TID, `time` a datetime).
    /// Unknown fields are skipped.
    pub fn decode(body: &'a [u8], limits: &Limits) -> Result<SyncEvent<'a>, EventError> {
        check_frame_size(body, limits)?;
        let mut d = Decoder::new(body);
        let n = d.map().map_err(cbor(SYNC))?;
        let mut prev = None;
        let mut head = Head::default();
        let (mut rev, mut blocks_field) = (None, None);
        for _ in 0..n {
            let key = next_key(&mut d, &mut prev, SYNC)?;
            if head.read(&mut d, key, SYNC)? {
                continue;
            }
            match key {
                b"rev" => rev = Some(parse_tid(SYNC, "rev", d.text().map_err(cbor(SYNC))?)?),
                b"blocks" => blocks_field = Some(blocks(&mut d, body, limits, SYNC)?),
                _ => skip(&mut d, SYNC)?,
            }
        }
        d.finish().map_err(cbor(SYNC))?;
        let rev = required(rev, SYNC, "rev")?;
        let (did, seq, time) = head.finish(SYNC)?;
        Ok(SyncEvent { did, rev, seq, time, blocks: required(blocks_field, SYNC, "blocks")? })
    }

    /// The canonical DRISL body.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.map(5).text("did").text(self.did);
        e.text("rev").text(&self.rev.to_string());
        e.text("seq").int(self.seq);
        e.text("time").text(self.time);
        e.text("blocks").bytes(self.blocks);
        e.into_bytes()
    }
}

impl<'a> IdentityEvent<'a> {
    /// Decodes an `#identity` body: `did` a DID, `seq`, `time` a datetime,
    /// all required; `handle` optional, a handle when present. Unknown
    /// fields are skipped.
    pub fn decode(body: &'a [u8], limits: &Limits) -> Result<IdentityEvent<'a>, EventError> {
        check_frame_size(body, limits)?;
        let mut d = Decoder::new(body);
        let n = d.map().map_err(cbor(IDENTITY))?;
        let mut prev = None;
        let mut head = Head::default();
        let mut handle = None;
        for _ in 0..n {
            let key = next_key(&mut d, &mut prev, IDENTITY)?;
            if head.read(&mut d, key, IDENTITY)? {
                continue;
            }
            match key {
                // Optional; null reads as absent.
                b"handle" => {
                    if !d.null().map_err(cbor(IDENTITY))? {
                        let s = d.text().map_err(cbor(IDENTITY))?;
                        syntax::handle(s).map_err(|error| EventError::InvalidField {
                            part: IDENTITY,
                            field: "handle",
                            error,
                        })?;
                        handle = Some(s);
                    }
                }
                _ => skip(&mut d, IDENTITY)?,
            }
        }
        d.finish().map_err(cbor(IDENTITY))?;
        let (did, seq, time) = head.finish(IDENTITY)?;
        Ok(IdentityEvent { did, seq, time, handle })
    }
}

impl<'a> AccountEvent<'a> {
    /// Decodes an `#account` body: `did` a DID, `seq`, `time` a datetime
    /// and `active` a boolean, all required; `status` optional, a string
    /// (its known values are open-ended). Unknown fields are skipped.
    pub fn decode(body: &'a [u8], limits: &Limits) -> Result<AccountEvent<'a>, EventError> {
        check_frame_size(body, limits)?;
        let mut d = Decoder::new(body);
        let n = d.map().map_err(cbor(ACCOUNT))?;
        let mut prev = None;
        let mut head = Head::default();
        let (mut active, mut status) = (None, None);
        for _ in 0..n {
            let key = next_key(&mut d, &mut prev, ACCOUNT)?;
            if head.read(&mut d, key, ACCOUNT)? {
                continue;
            }
            match key {
                b"active" => active = Some(d.bool().map_err(cbor(ACCOUNT))?),
                // Optional; null reads as absent.
                b"status" => {
                    if !d.null().map_err(cbor(ACCOUNT))? {
                        status = Some(d.text().map_err(cbor(ACCOUNT))?);
                    }
                }
                _ => skip(&mut d, ACCOUNT)?,
            }
        }
        d.finish().map_err(cbor(ACCOUNT))?;
        let (did, seq, time) = head.finish(ACCOUNT)?;
        Ok(AccountEvent { did, seq, time, active: required(active, ACCOUNT, "active")?, status })
    }
}

/// `did`, `seq` and `time`, which `#sync`, `#identity` and `#account`
/// bodies all carry, as they are read.
#[derive(Default)]
struct Head<'a> {
    did: Option<&'a str>,
    seq: Option<i64>,
    time: Option<&'a str>,
}

impl<'a> Head<'a> {
    /// Reads the value of `key` if it is one of the three (a DID, an
    /// integer, a datetime); `false`, reading nothing, if it is not.
    fn read(
        &mut self,
        d: &mut Decoder<'a>,
        key: &[u8],
        part: &'static str,
    ) -> Result<bool, EventError> {
        match key {
            b"did" => {
                let s = d.text().map_err(cbor(part))?;
                check_did(part, "did", s)?;
                self.did = Some(s);
            }
            b"seq" => self.seq = Some(d.int().map_err(cbor(part))?),
            b"time" => {
                let s = d.text().map_err(cbor(part))?;
                check_time(part, s)?;
                self.time = Some(s);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The three, each required.
    fn finish(self, part: &'static str) -> Result<(&'a str, i64, &'a str), EventError> {
        Ok((
            required(self.did, part, "did")?,
            required(self.seq, part, "seq")?,
            required(self.time, part, "time")?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> Cid {
        crate::car::blessed_cid(crate::car::DAG_CBOR, &[n])
    }

    fn event() -> CommitEvent<'static> {
        CommitEvent {
            seq: 7,
            repo: "did:plc:abc",
            rev: Tid::parse("3kdgeqpfkj22a").unwrap(),
            since: None,
            time: "2024-01-02T03:04:05.678Z",
            commit: cid(1),
            blocks: b"car",
            ops: vec![
                RepoOp::new(Action::Create, "app.bsky.feed.post/3kdgeqpfkj22a", Some(cid(2)), None),
                RepoOp::new(Action::Delete, "app.bsky.feed.like/3kdgeqpfkj22b", None, Some(cid(3))),
            ],
            prev_data: Some(cid(4)),
        }
    }

    #[test]
    fn round_trips() {
        let e = event();
        let bytes = e.to_cbor();
        assert_eq!(CommitEvent::decode(&bytes, &Limits::default()).unwrap(), e);
        assert_eq!(EventType::detect(&bytes), Some(EventType::Commit));
        // Canonical: the generic validator accepts it too.
        drisl::validate(&bytes, &drisl::Limits::default()).unwrap();

        let s = SyncEvent { seq: 1, did: "did:plc:abc", rev: e.rev, time: e.time, blocks: b"car" };
        let bytes = s.to_cbor();
        assert_eq!(SyncEvent::decode(&bytes, &Limits::default()).unwrap(), s);
        assert_eq!(EventType::detect(&bytes), Some(EventType::Sync));
        assert_eq!(EventType::detect(b"\xa0"), None);
    }

    #[test]
    fn limits_come_from_heads() {
        let mut e = event();
        let op = e.ops[0].clone();
        e.ops = vec![op; 3];
        let bytes = e.to_cbor();
        let limits = Limits::default().max_ops(2);
        assert!(matches!(
            CommitEvent::decode(&bytes, &limits),
            Err(EventError::TooManyOps { limit: 2, found: 3 })
        ));
        let limits = Limits::default().max_blocks_bytes(2);
        assert!(matches!(
            CommitEvent::decode(&bytes, &limits),
            Err(EventError::BlocksTooLarge { limit: 2, found: 3 })
        ));
        let limits = Limits::default().max_frame_bytes(10);
        assert!(matches!(
            CommitEvent::decode(&bytes, &limits),
            Err(EventError::FrameTooLarge { limit: 10, .. })
        ));
        // A head claiming more bytes than there are is still refused by the
        // limit first.
        assert_eq!(peek_len(&[0x5a, 0xff, 0, 0, 0], 0, 2), Some(0xff00_0000));
        assert_eq!(peek_len(&[0x5a, 0xff], 0, 2), None);
        assert_eq!(peek_len(&[0x9f], 0, 4), None);
    }

    #[test]
    fn unknown_and_deprecated_fields_are_skipped() {
        // {"a": 1, ...the event..., "zzzzzzzzzz": [1]} keeps canonical
        // order: "a" first (shortest), the long key last.
        let bytes = event().to_cbor();
        let mut d = Decoder::new(&bytes);
        let n = d.map().unwrap();
        let rest = bytes.get(1..).unwrap();
        let mut patched = vec![0xa0 | u8::try_from(n + 2).unwrap(), 0x61, b'a', 0x01];
        patched.extend_from_slice(rest);
        patched.extend_from_slice(&[0x6a]);
        patched.extend_from_slice(b"zzzzzzzzzz");
        patched.extend_from_slice(&[0x81, 0x01]);
        assert_eq!(CommitEvent::decode(&patched, &Limits::default()).unwrap(), event());

        // The same key out of order is refused.
        let mut unsorted = vec![0xa0 | u8::try_from(n + 1).unwrap()];
        unsorted.extend_from_slice(rest);
        unsorted.extend_from_slice(&[0x61, b'a', 0x01]);
        let err = CommitEvent::decode(&unsorted, &Limits::default()).unwrap_err();
        assert!(matches!(
            err,
            EventError::Cbor { error: DecodeError { problem: Problem::KeyOrder, .. }, .. }
        ));
    }

    #[test]
    fn required_fields() {
        let mut e = Encoder::new();
        e.map(1).text("did").text("did:plc:abc");
        let err = SyncEvent::decode(&e.into_bytes(), &Limits::default()).unwrap_err();
        assert!(matches!(err, EventError::MissingField { field: "rev", .. }));
    }
}
