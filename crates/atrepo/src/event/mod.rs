//! Relay ingestion: decode and verify firehose `#commit` and `#sync`
//! events (sync 1.1), one event at a time, with the per-repository state a
//! relay keeps between them.
//!
//! # What this module owns
//!
//! - Event bodies and frames as `com.atproto.sync.subscribeRepos` sends
//!   them ([`CommitEvent`], [`SyncEvent`], [`Frame`], [`Frames`],
//!   [`Event`]): strict DRISL, size limits checked from the CBOR heads
//!   before the contents are read ([`Limits`]); the order of a stream's
//!   sequence numbers ([`SeqOrder`]).
//! - The checks a relay runs on each event ([`Verifier`],
//!   [`verify_commit_event`]): the CAR slice's blocks and CIDs, the commit
//!   (strict decode, signature, DID and rev against the event; every
//!   check but the signature with [`Verifier::verify_event_unsigned`]
//!   when the key is not known), the rev
//!   order and future tolerance, `since` and `prevData` against the state
//!   the relay holds, every operation's path and record block, and the
//!   operations checked forwards against the signed tree and inverted on
//!   the partial tree to reproduce `prevData`.
//! - Per-repository state ([`RepoState`]) and where a relay keeps it
//!   ([`StateStore`], [`MemoryStateStore`], and `RedbStateStore` behind the
//!   `redb` feature).
//! - A writer for test, fixture and benchmark events
//!   ([`CommitEventBuilder`], [`sync_event`]): the commit, its covering
//!   proof blocks and the encoded event, exactly as a PDS would send them.
//!
//! # What this module must not do
//!
//! - No network access: keys come from the caller, or from a
//!   [`KeyResolver`](crate::verify::KeyResolver) the caller supplies.
//! - No clock unless injected: [`Verifier::with_clock`] (tests use
//!   [`FixedClock`](crate::verify::FixedClock)).
//! - No panics on untrusted input, and no allocation sized from a length
//!   the input declares.
//!
//! # Wire fields
//!
//! `#commit` bodies carry, in canonical key order: `ops`, `rev`, `seq`,
//! `repo`, `time`, `blobs`, `since`, `blocks`, `commit`, `rebase`,
//! `tooBig`, `prevData`. Required: `ops`, `rev`, `seq`, `repo`, `time`,
//! `blocks`, `commit`. `since` is required and nullable in the lexicon;
//! absent, it reads as null (as indigo's decoders read it). Optional and
//! nullable: `prevData`, which a repository's first commit (no `since`)
//! leaves out: its ops are then inverted against the empty tree. The
//! deprecated `blobs`, `rebase` and `tooBig` are accepted, checked to be
//! valid DRISL, and ignored, whether present or not. Each op is `{cid,
//! path, prev?, action}` with `cid` nullable (absent reads as null); an
//! update may leave the record as it was (`cid` equal to `prev`). A
//! `#sync` of the state already held may repeat the last known rev.
//! `#sync` bodies carry `did`, `rev`, `seq`, `time`, `blocks`, all
//! required. `#identity` bodies ([`IdentityEvent`]) carry `did`, `seq`,
//! `time` and an optional `handle`; `#account` bodies ([`AccountEvent`])
//! `did`, `seq`, `time`, `active` and an optional `status`; they are
//! decoded against that schema, and have nothing to verify. Unknown keys
//! anywhere are skipped (the lexicon may grow), but keys must still be in
//! canonical order and unique, and the skipped values must be valid DRISL.
//!
//! # Errors
//!
//! Every check has its own [`EventError`] variant, sorted by
//! [`EventError::kind`] into the facade's [`ErrorKind`](crate::ErrorKind)s.
//! Verification returns the facade's [`Error`](crate::Error): CAR problems
//! stay [`Error::Car`](crate::Error::Car), a malformed commit or a bad
//! signature stays [`Error::Verify`](crate::Error::Verify), a missing or
//! malformed proof node stays [`Error::Mst`](crate::Error::Mst), and
//! everything this module checks itself is
//! [`Error::Event`](crate::Error::Event).
//!
//! # Example
//!
//! ```
//! use atrepo::event::{CommitEventBuilder, CommitEvent, Limits, RepoState, Verifier};
//! use atrepo::mst::Builder;
//! use atrepo::store::MemoryStore;
//! use atrepo::verify::{Curve, FixedClock, SigningKey, Tid, drisl::Value};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A PDS side: an empty repository, one post, a signed #commit event.
//! let store = MemoryStore::new();
//! let empty = Builder::new().build(&store, Vec::<(String, cid::Cid)>::new())?;
//! let key = SigningKey::from_seed(Curve::K256, b"example")?;
//! let rev = Tid::from_parts(1_700_000_000_000_000, 0).unwrap();
//! let post = Value::Map([("text".to_owned(), Value::String("hi".into()))].into());
//! let built = CommitEventBuilder::new(&store, "did:plc:example", empty, rev)
//!     .put("app.bsky.feed.post/3kdgeqpfkj22a", post.to_cbor())
//!     .build(&key)?;
//!
//! // The relay side: decode, verify, keep the new state.
//! let event = CommitEvent::decode(&built.body, &Limits::default())?;
//! let verifier = Verifier::new().with_clock(FixedClock::from_micros(1_700_000_000_000_000));
//! let verified = verifier.verify_commit(&event, &key.public_key(), None)?;
//! assert_eq!(verified.state(), RepoState { rev, data: built.after });
//! # Ok(())
//! # }
//! ```

mod build;
mod decode;
mod error;
mod frame;
mod state;
mod verify;

use std::time::Duration;

pub use build::{
    BuiltCommit, BuiltSync, CommitEventBuilder, covering_proof, covering_proof_with, sync_event,
};
pub use decode::{AccountEvent, Action, CommitEvent, EventType, IdentityEvent, RepoOp, SyncEvent};
pub use error::EventError;
pub use frame::{Event, Frame, FrameHeader, Frames, SeqOrder};
#[cfg(feature = "redb")]
pub use state::RedbStateStore;
pub use state::{MemoryStateStore, RepoState, StateStore};
pub use verify::{Verified, VerifiedCommit, VerifiedSync, Verifier, verify_commit_event};

use crate::mst::KeyRules;
use crate::verify::DEFAULT_FUTURE_TOLERANCE;

/// Size limits on events, checked before the parts they bound are read.
///
/// The defaults are the sync specification's hard limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest frame (header and body), in bytes: 5,000,000.
    pub max_frame_bytes: u64,
    /// Largest `blocks` field, in bytes: 2,000,000.
    pub max_blocks_bytes: u64,
    /// Most operations in one commit: 200.
    pub max_ops: u64,
    /// Largest block in `blocks` (records are the big ones), in bytes:
    /// 1,000,000.
    pub max_record_bytes: u64,
}

impl Limits {
    /// The default frame cap.
    pub const DEFAULT_MAX_FRAME_BYTES: u64 = 5_000_000;
    /// The default `blocks` cap.
    pub const DEFAULT_MAX_BLOCKS_BYTES: u64 = 2_000_000;
    /// The default operation cap.
    pub const DEFAULT_MAX_OPS: u64 = 200;
    /// The default block (record) cap.
    pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1_000_000;

    /// Returns these limits with `max_frame_bytes` set.
    pub fn max_frame_bytes(mut self, n: u64) -> Self {
        self.max_frame_bytes = n;
        self
    }

    /// Returns these limits with `max_blocks_bytes` set.
    pub fn max_blocks_bytes(mut self, n: u64) -> Self {
        self.max_blocks_bytes = n;
        self
    }

    /// Returns these limits with `max_ops` set.
    pub fn max_ops(mut self, n: u64) -> Self {
        self.max_ops = n;
        self
    }

    /// Returns these limits with `max_record_bytes` set.
    pub fn max_record_bytes(mut self, n: u64) -> Self {
        self.max_record_bytes = n;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES,
            max_blocks_bytes: Self::DEFAULT_MAX_BLOCKS_BYTES,
            max_ops: Self::DEFAULT_MAX_OPS,
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// What a failed check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CheckMode {
    /// The event is refused with the check's error. The default.
    #[default]
    Enforce,
    /// The event passes; the error is kept in the result's `warnings`.
    Warn,
}

/// Whether the record blocks that operations create or update are checked
/// as atproto records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum RecordCheck {
    /// Each record must be strict DRISL, a map, and follow the data model
    /// rules (`drisl::validate_record`). The default.
    #[default]
    Validate,
    /// Records are opaque bytes: only their presence and size are checked.
    Skip,
}

/// How [`Verifier`] checks events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Size limits.
    pub limits: Limits,
    /// Which repository paths operations may name: [`KeyRules::Strict`] (a
    /// normalized NSID, `/`, a record key) unless verifying historical or
    /// test data.
    pub keys: KeyRules,
    /// How far a rev may be ahead of the clock: five minutes by default.
    pub future_tolerance: Duration,
    /// The operations against the tree: forward check, inversion, a
    /// missing `prevData` or op `prev`, a tree node the event left out.
    /// Some relays downgrade this to a warning while the network migrates
    /// to sync 1.1. A malformed tree (a node that breaks an MST rule, a
    /// limit) fails the event in either mode.
    pub inversion: CheckMode,
    /// `since` and `prevData` against the state the caller holds. The sync
    /// specification asks relays to mark a repository out of sync on a
    /// mismatch; [`CheckMode::Warn`] lets the event through for that. A
    /// `since` not before the event's own rev fails it in either mode
    /// ([`EventError::SinceNotBeforeRev`]).
    pub chain: CheckMode,
    /// Whether created and updated records are validated.
    pub records: RecordCheck,
    /// Limits on the tree nodes an event carries (entries per node,
    /// depth), as for a whole repository.
    pub mst: crate::mst::Limits,
}

impl VerifyOptions {
    /// Returns these options with `limits` set.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Returns these options with `keys` set.
    pub fn keys(mut self, keys: KeyRules) -> Self {
        self.keys = keys;
        self
    }

    /// Returns these options with `future_tolerance` set.
    pub fn future_tolerance(mut self, tolerance: Duration) -> Self {
        self.future_tolerance = tolerance;
        self
    }

    /// Returns these options with `inversion` set.
    pub fn inversion(mut self, mode: CheckMode) -> Self {
        self.inversion = mode;
        self
    }

    /// Returns these options with `chain` set.
    pub fn chain(mut self, mode: CheckMode) -> Self {
        self.chain = mode;
        self
    }

    /// Returns these options with `records` set.
    pub fn records(mut self, check: RecordCheck) -> Self {
        self.records = check;
        self
    }

    /// Returns these options with the MST limits set.
    pub fn mst(mut self, limits: crate::mst::Limits) -> Self {
        self.mst = limits;
        self
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            limits: Limits::default(),
            keys: KeyRules::Strict,
            future_tolerance: DEFAULT_FUTURE_TOLERANCE,
            inversion: CheckMode::Enforce,
            chain: CheckMode::Enforce,
            records: RecordCheck::Validate,
            mst: crate::mst::Limits::default(),
        }
    }
}
