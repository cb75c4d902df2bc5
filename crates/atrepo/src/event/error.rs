//! [`EventError`]: every check the event module makes itself, one variant
//! each, sorted into the facade's [`ErrorKind`]s.

use std::time::Duration;

use cid::Cid;

use super::decode::Action;
use crate::ErrorKind;
use crate::verify::Tid;
use crate::verify::drisl::DecodeError;
use crate::verify::syntax::SyntaxError;

/// A firehose event that fails a check of this module.
///
/// Checks made by the other crates keep their own errors in the facade's
/// [`Error`](crate::Error) (CAR framing, the commit and its signature, MST
/// nodes); this enum holds the rest. [`EventError::kind`] sorts each
/// variant into malformed input, verification failure, missing block,
/// limit, environment or usage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    // ----- limits ----------------------------------------------------------
    /// A frame (header and body) larger than [`Limits::max_frame_bytes`].
    ///
    /// [`Limits::max_frame_bytes`]: super::Limits::max_frame_bytes
    #[error("expected a frame of at most {limit} bytes, found {found}")]
    FrameTooLarge {
        /// The cap.
        limit: u64,
        /// The frame's size (or a lower bound of it).
        found: u64,
    },

    /// A `blocks` field larger than [`Limits::max_blocks_bytes`], refused
    /// from its CBOR head before the CAR is read.
    ///
    /// [`Limits::max_blocks_bytes`]: super::Limits::max_blocks_bytes
    #[error("expected a blocks field of at most {limit} bytes, found {found}")]
    BlocksTooLarge {
        /// The cap.
        limit: u64,
        /// The size the field declares.
        found: u64,
    },

    /// More operations than [`Limits::max_ops`], refused from the array's
    /// CBOR head before any operation is read.
    ///
    /// [`Limits::max_ops`]: super::Limits::max_ops
    #[error("expected at most {limit} ops, found {found}")]
    TooManyOps {
        /// The cap.
        limit: u64,
        /// The number of operations declared.
        found: u64,
    },

    /// A block in `blocks` larger than [`Limits::max_record_bytes`].
    ///
    /// [`Limits::max_record_bytes`]: super::Limits::max_record_bytes
    #[error("expected blocks of at most {limit} bytes, found {found} bytes in block {cid}")]
    RecordTooLarge {
        /// The block.
        cid: Box<Cid>,
        /// The cap.
        limit: u64,
        /// The block's size.
        found: u64,
    },

    // ----- malformed -------------------------------------------------------
    /// A frame header or event body that is not strict DRISL of its schema:
    /// not canonical, a float, unsorted or duplicate keys, a field of the
    /// wrong type, trailing bytes. The decoder's error is part of the
    /// message, so it is not also the source.
    #[error("invalid {part} encoding: {error}")]
    Cbor {
        /// What was being decoded (`"#commit body"`, `"frame header"`, ...).
        part: &'static str,
        /// What the decoder found, and where.
        error: DecodeError,
    },

    /// A required field is absent.
    #[error("expected field {field:?} in the {part}, found none")]
    MissingField {
        /// What was being decoded.
        part: &'static str,
        /// The field.
        field: &'static str,
    },

    /// A field that breaks its syntax (`repo` not a DID, `rev` not a TID,
    /// `time` not a datetime). The syntax error is part of the message.
    #[error("invalid field {field:?} in the {part}: {error}")]
    InvalidField {
        /// What was being decoded.
        part: &'static str,
        /// The field.
        field: &'static str,
        /// The rule broken.
        error: SyntaxError,
    },

    /// A frame header whose `op` is neither 1 (message) nor -1 (error).
    #[error("expected frame header op 1 or -1, found {found}")]
    UnknownFrameOp {
        /// The `op` found.
        found: i64,
    },

    /// Bytes that are neither a frame nor a `#commit` or `#sync` body.
    #[error("expected a firehose frame or a #commit or #sync event body, found neither")]
    UnrecognizedBody,

    /// An operation whose `action` is not `create`, `update` or `delete`.
    #[error("op {path:?}: expected action create, update or delete, found {found:?}")]
    UnknownAction {
        /// The operation's path.
        path: String,
        /// The action found (at most 64 bytes of it).
        found: String,
    },

    /// An operation path that is not a valid repository path under the
    /// configured key rules.
    #[error("op {path:?}: {error}")]
    InvalidOpPath {
        /// The path (at most 1024 bytes of it).
        path: String,
        /// The rule broken.
        error: SyntaxError,
    },

    /// Two operations on the same path.
    #[error("expected each op path once, found {path:?} twice")]
    DuplicateOpPath {
        /// The path.
        path: String,
    },

    /// A create or update whose `cid` is null.
    #[error("op {path:?}: expected a cid for action {action}, found null")]
    OpMissingCid {
        /// The operation's path.
        path: String,
        /// Its action.
        action: Action,
    },

    /// A delete with a non-null `cid`.
    #[error("op {path:?}: expected a null cid for a delete, found {cid}")]
    DeleteWithCid {
        /// The operation's path.
        path: String,
        /// The CID found.
        cid: Box<Cid>,
    },

    /// A create with a `prev` (the lexicon says it must not be defined).
    #[error("op {path:?}: expected no prev for a create, found {prev}")]
    CreateWithPrev {
        /// The operation's path.
        path: String,
        /// The `prev` found.
        prev: Box<Cid>,
    },

    /// An update or delete without `prev`: it cannot be inverted (a
    /// pre-sync-1.1 operation).
    #[error("op {path:?}: expected a prev for action {action}, found none")]
    OpMissingPrev {
        /// The operation's path.
        path: String,
        /// Its action.
        action: Action,
    },

    /// A `#commit` with `since` (not the repository's first commit) but
    /// without `prevData`, which inversion needs.
    #[error("expected a prevData field in the #commit event, found none")]
    MissingPrevData,

    /// A created or updated record that is not a valid atproto record
    /// (strict DRISL, a map, the data model rules).
    #[error("op {path:?}: record {cid} is invalid: {error}")]
    InvalidRecord {
        /// The operation's path.
        path: String,
        /// The record's CID.
        cid: Box<Cid>,
        /// What is wrong with it.
        error: DecodeError,
    },

    // ----- verification ----------------------------------------------------
    /// The CAR slice's first root is not the event's `commit`.
    #[error("expected the blocks' first root to be the event's commit {expected}, found {found}")]
    CommitCidMismatch {
        /// The event's `commit` field.
        expected: Box<Cid>,
        /// The CAR's first root.
        found: Box<Cid>,
    },

    /// The commit's DID is not the event's `repo` (or `did`).
    #[error("expected a commit for {expected} (the event's repo), found one for {found}")]
    DidMismatch {
        /// The event's DID.
        expected: String,
        /// The commit's DID.
        found: String,
    },

    /// The commit's rev is not the event's `rev`.
    #[error("expected commit rev {expected} (the event's rev), found {found}")]
    RevMismatch {
        /// The event's rev.
        expected: Tid,
        /// The commit's rev.
        found: Tid,
    },

    /// A rev not after the last rev the caller processed for the
    /// repository (the sync specification says to ignore such events).
    #[error("expected a rev after the last known rev {previous}, found {rev}")]
    RevNotIncreasing {
        /// The event's rev.
        rev: Tid,
        /// The last known rev.
        previous: Tid,
    },

    /// The commit's signature matches none of the several keys given for
    /// its account ([`Verifier::apply_any_key`](super::Verifier::apply_any_key)).
    #[error(
        "expected a signature by one of the {tried} keys given for the account, found none matches"
    )]
    NoKeyMatched {
        /// How many keys were tried.
        tried: usize,
    },

    /// A stream sequence number not above the highest one seen before on
    /// the same stream ([`SeqOrder`](super::SeqOrder)): a replayed or
    /// reordered event.
    #[error("expected a seq above {previous} (the highest seen on this stream), found {seq}")]
    SeqNotIncreasing {
        /// The event's seq.
        seq: i64,
        /// The highest seq seen before on the stream.
        previous: i64,
    },

    /// A rev further ahead of the clock than the tolerance.
    #[error(
        "expected a rev at most {tolerance:?} ahead of the clock, found {rev} ({ahead:?} ahead)"
    )]
    RevInFuture {
        /// The event's rev.
        rev: Tid,
        /// How far ahead of the clock it is.
        ahead: Duration,
        /// The tolerance.
        tolerance: Duration,
    },

    /// An op's `cid` or `prev` that cannot be a record link in the tree
    /// (CIDv1, dag-cbor, sha2-256, as MST nodes hold them).
    #[error("op {path:?}: expected a CIDv1 dag-cbor sha2-256 record link for {field}, found {cid}")]
    OpLinkNotRecord {
        /// The op's path.
        path: String,
        /// `"cid"` or `"prev"`.
        field: &'static str,
        /// The link found.
        cid: Box<Cid>,
    },

    /// `since` (the rev of the commit before) is not before the event's own
    /// rev: revs always increase (sync specification), so the event
    /// contradicts itself, whatever state the caller holds.
    #[error("expected since before the event's rev {rev}, found since {since}")]
    SinceNotBeforeRev {
        /// The event's `since`.
        since: Tid,
        /// The event's rev.
        rev: Tid,
    },

    /// `since` is not the last rev the caller holds for the repository.
    #[error("expected since {expected} (the last known rev), found {}", show_tid(*found))]
    SinceMismatch {
        /// The last known rev.
        expected: Tid,
        /// The event's `since`.
        found: Option<Tid>,
    },

    /// `prevData` is not the tree root the caller holds for the repository.
    #[error("expected prevData {expected} (the last known data), found {found}")]
    PrevDataMismatch {
        /// The last known tree root.
        expected: Box<Cid>,
        /// The event's `prevData`.
        found: Box<Cid>,
    },

    /// Inverting the operations on the commit's tree does not give the
    /// previous tree root: `prevData`, or the caller's last known data
    /// when the event has none.
    #[error("expected the inverted ops to give the previous tree {expected}, found {found}")]
    InversionMismatch {
        /// The previous tree root.
        expected: Box<Cid>,
        /// The root inversion gave.
        found: Box<Cid>,
    },

    /// An operation that does not match the signed tree: a created or
    /// updated path does not hold the op's `cid`, or a deleted path is
    /// still there.
    #[error("op {path:?}: expected the commit's tree to hold {}, found {}", show_cid(expected.as_deref()), show_cid(found.as_deref()))]
    OpCidMismatch {
        /// The operation's path.
        path: String,
        /// What the operation says the tree holds.
        expected: Option<Box<Cid>>,
        /// What the tree holds.
        found: Option<Box<Cid>>,
    },

    // ----- missing ---------------------------------------------------------
    /// The commit block is not in `blocks`.
    #[error("expected the commit block {cid} in the event's blocks, found none")]
    CommitNotInBlocks {
        /// The commit's CID.
        cid: Box<Cid>,
    },

    /// A created or updated record's block is not in `blocks`.
    #[error("op {path:?}: expected record block {cid} in the event's blocks, found none")]
    MissingRecordBlock {
        /// The operation's path.
        path: String,
        /// The record's CID.
        cid: Box<Cid>,
    },

    // ----- usage and environment -------------------------------------------
    /// A frame of a type this module does not verify (`#identity`,
    /// `#account`, `#info`, or unknown).
    #[error("expected a #commit or #sync event, found {found:?}")]
    UnsupportedEventType {
        /// The frame's type (at most 64 bytes of it).
        found: String,
    },

    /// An error frame (`op: -1`): the upstream reported an error and will
    /// close the stream.
    #[error("expected an event, found an error frame: {error}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    ErrorFrame {
        /// The error name (at most 256 bytes of it).
        error: String,
        /// The error message, if any (at most 256 bytes of it).
        message: Option<String>,
    },
}

fn show_tid(tid: Option<Tid>) -> String {
    tid.map_or_else(|| "null".to_owned(), |t| t.to_string())
}

fn show_cid(cid: Option<&Cid>) -> String {
    cid.map_or_else(|| "no record".to_owned(), ToString::to_string)
}

impl EventError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EventError::FrameTooLarge { .. }
            | EventError::BlocksTooLarge { .. }
            | EventError::TooManyOps { .. }
            | EventError::RecordTooLarge { .. } => ErrorKind::Limit,
            EventError::Cbor { .. }
            | EventError::MissingField { .. }
            | EventError::InvalidField { .. }
            | EventError::UnknownFrameOp { .. }
            | EventError::UnrecognizedBody
            | EventError::UnknownAction { .. }
            | EventError::InvalidOpPath { .. }
            | EventError::DuplicateOpPath { .. }
            | EventError::OpMissingCid { .. }
            | EventError::DeleteWithCid { .. }
            | EventError::CreateWithPrev { .. }
            | EventError::OpMissingPrev { .. }
            | EventError::MissingPrevData
            | EventError::SinceNotBeforeRev { .. }
            | EventError::OpLinkNotRecord { .. }
            | EventError::InvalidRecord { .. } => ErrorKind::Malformed,
            EventError::CommitCidMismatch { .. }
            | EventError::DidMismatch { .. }
            | EventError::RevMismatch { .. }
            | EventError::RevNotIncreasing { .. }
            | EventError::SeqNotIncreasing { .. }
            | EventError::NoKeyMatched { .. }
            | EventError::RevInFuture { .. }
            | EventError::SinceMismatch { .. }
            | EventError::PrevDataMismatch { .. }
            | EventError::InversionMismatch { .. }
            | EventError::OpCidMismatch { .. } => ErrorKind::Verification,
            EventError::CommitNotInBlocks { .. } | EventError::MissingRecordBlock { .. } => {
                ErrorKind::Missing
            }
            EventError::UnsupportedEventType { .. } => ErrorKind::Usage,
            EventError::ErrorFrame { .. } => ErrorKind::Environment,
        }
    }

    /// A short, stable name for this error's check, for logs, metrics and
    /// the command line's JSON output (`"rev_not_increasing"`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            EventError::FrameTooLarge { .. } => "frame_too_large",
            EventError::BlocksTooLarge { .. } => "blocks_too_large",
            EventError::TooManyOps { .. } => "too_many_ops",
            EventError::RecordTooLarge { .. } => "record_too_large",
            EventError::Cbor { .. } => "cbor",
            EventError::MissingField { .. } => "missing_field",
            EventError::InvalidField { .. } => "invalid_field",
            EventError::UnknownFrameOp { .. } => "unknown_frame_op",
            EventError::UnrecognizedBody => "unrecognized_body",
            EventError::UnknownAction { .. } => "unknown_action",
            EventError::InvalidOpPath { .. } => "invalid_op_path",
            EventError::DuplicateOpPath { .. } => "duplicate_op_path",
            EventError::OpMissingCid { .. } => "op_missing_cid",
            EventError::DeleteWithCid { .. } => "delete_with_cid",
            EventError::CreateWithPrev { .. } => "create_with_prev",
            EventError::OpMissingPrev { .. } => "op_missing_prev",
            EventError::MissingPrevData => "missing_prev_data",
            EventError::InvalidRecord { .. } => "invalid_record",
            EventError::CommitCidMismatch { .. } => "commit_cid_mismatch",
            EventError::DidMismatch { .. } => "did_mismatch",
            EventError::RevMismatch { .. } => "rev_mismatch",
            EventError::RevNotIncreasing { .. } => "rev_not_increasing",
            EventError::SeqNotIncreasing { .. } => "seq_not_increasing",
            EventError::NoKeyMatched { .. } => "no_key_matched",
            EventError::RevInFuture { .. } => "rev_in_future",
            EventError::SinceNotBeforeRev { .. } => "since_not_before_rev",
            EventError::OpLinkNotRecord { .. } => "op_link_not_record",
            EventError::SinceMismatch { .. } => "since_mismatch",
            EventError::PrevDataMismatch { .. } => "prev_data_mismatch",
            EventError::InversionMismatch { .. } => "inversion_mismatch",
            EventError::OpCidMismatch { .. } => "op_cid_mismatch",
            EventError::CommitNotInBlocks { .. } => "commit_not_in_blocks",
            EventError::MissingRecordBlock { .. } => "missing_record_block",
            EventError::UnsupportedEventType { .. } => "unsupported_event_type",
            EventError::ErrorFrame { .. } => "error_frame",
        }
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn snippet(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or_default().to_owned()
}
