//! The facade's umbrella error: every crate's error, with its class kept
//! visible, plus what only the facade can find wrong.

use std::fmt;

use cid::Cid;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything verifying, reading or writing a repository can fail with.
///
/// [`Error::kind`] sorts every error (including the wrapped ones) into the
/// classes a caller acts on: malformed input, verification failure,
/// missing blocks (retryable with more data), limits, environment, usage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// CAR framing or block hashing failed.
    #[error(transparent)]
    Car(#[from] atrepo_car::Error),

    /// The MST failed a rule, or a block it needs is missing.
    #[error(transparent)]
    Mst(#[from] atrepo_mst::Error),

    /// A key, signature or commit failed.
    #[error(transparent)]
    Verify(#[from] atrepo_verify::Error),

    /// A block store failed.
    #[error(transparent)]
    Store(#[from] atrepo_store::Error),

    /// A firehose event failed a check of [`event`](crate::event).
    #[error(transparent)]
    Event(#[from] crate::event::EventError),

    /// The commit block named by the CAR's first root is not in the CAR.
    #[error("commit block {cid} (the CAR's first root) is missing")]
    MissingCommit {
        /// The commit's CID.
        cid: Cid,
    },

    /// The commit belongs to another DID than the one expected.
    #[error("commit is for {found}, expected {expected}")]
    DidMismatch {
        /// The DID the caller expected.
        expected: String,
        /// The DID in the commit.
        found: String,
    },

    /// A record block is not a valid atproto record (strict DRISL and the
    /// data model rules).
    #[error("record {key:?} ({cid}) is invalid: {error}")]
    InvalidRecord {
        /// The record's key.
        key: String,
        /// The record's CID.
        cid: Cid,
        /// What is wrong with it.
        error: atrepo_verify::drisl::DecodeError,
    },

    /// A record's bytes were asked for (to print or measure it) but not
    /// kept: a record whose CID an earlier key already pointed to, past
    /// the budget for reading such records again (256 MiB per repository),
    /// the keeping cap, or 16 MiB long or more. See
    /// [`Record::data`](crate::Record::data). The repository may still have
    /// verified: this is a limit of the reader, not a fault of the input.
    #[error(
        "expected the bytes of record {key:?} ({cid}), which an earlier key also points to, \
         found them not kept: past the 256 MiB budget for reading shared records again, \
         the keeping cap, or a record of 16 MiB or more"
    )]
    RecordNotKept {
        /// The record's key.
        key: String,
        /// The record's CID.
        cid: Cid,
    },

    /// A DID document the caller gave yields no signing key
    /// ([`identity`](crate::identity)).
    #[error(transparent)]
    DidDocument(#[from] crate::identity::DidDocumentError),

    /// No key was given to check the commit's signature with.
    #[error("no signing key to verify {did}'s commit with (none was given for this DID)")]
    NoKey {
        /// The commit's DID.
        did: String,
    },

    /// The key resolver could not give a key for the DID.
    #[error("could not resolve the signing key of {did}")]
    KeyResolution {
        /// The DID.
        did: String,
        /// The resolver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// A resource limit of the facade (memory, spilled bytes) was reached.
    #[error("{what} limit exceeded: limit {limit}, needed {found}")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The configured limit.
        limit: u64,
        /// What the input needed.
        found: u64,
    },

    /// An I/O error outside CAR reading (opening files, writing output).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The caller asked for something that cannot be done (bad option
    /// combination, unknown argument).
    #[error("{0}")]
    Usage(String),
}

/// The class of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is not well-formed.
    Malformed,
    /// Well-formed, but not what was signed: bad signature, CID mismatch,
    /// broken MST rule, wrong DID.
    Verification,
    /// A block the repository needs is not in the input. Retryable with more
    /// data (a truncated download ending on a block boundary looks like
    /// this).
    Missing,
    /// A configured limit was reached.
    Limit,
    /// The environment failed: I/O, a storage backend.
    Environment,
    /// The caller asked for something impossible.
    Usage,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Malformed => "malformed input",
            ErrorKind::Verification => "verification failure",
            ErrorKind::Missing => "missing block",
            ErrorKind::Limit => "limit exceeded",
            ErrorKind::Environment => "environment error",
            ErrorKind::Usage => "usage error",
        })
    }
}

impl Error {
    /// The class of this error, looking through wrapped crate errors.
    pub fn kind(&self) -> ErrorKind {
        use atrepo_car::ErrorKind as C;
        use atrepo_mst::ErrorKind as M;
        use atrepo_store::ErrorKind as S;
        use atrepo_verify::ErrorKind as V;
        match self {
            Error::Car(e) => match e.kind() {
                C::Malformed => ErrorKind::Malformed,
                C::Verification => ErrorKind::Verification,
                C::Limit => ErrorKind::Limit,
                _ => ErrorKind::Environment,
            },
            Error::Mst(e) => match e.kind() {
                M::Malformed => ErrorKind::Malformed,
                M::Verification => ErrorKind::Verification,
                M::Missing => ErrorKind::Missing,
                M::Limit => ErrorKind::Limit,
                _ => ErrorKind::Environment,
            },
            Error::Verify(e) => match e.kind() {
                V::Malformed => ErrorKind::Malformed,
                V::Verification => ErrorKind::Verification,
                _ => ErrorKind::Environment,
            },
            Error::Store(e) => match e.kind() {
                S::Input => ErrorKind::Malformed,
                S::Limit => ErrorKind::Limit,
                S::Usage => ErrorKind::Usage,
                _ => ErrorKind::Environment,
            },
            Error::Event(e) => e.kind(),
            Error::MissingCommit { .. } => ErrorKind::Missing,
            Error::DidMismatch { .. } => ErrorKind::Verification,
            Error::InvalidRecord { .. } => ErrorKind::Malformed,
            Error::NoKey { .. } | Error::Usage(_) | Error::DidDocument(_) => ErrorKind::Usage,
            Error::LimitExceeded { .. } | Error::RecordNotKept { .. } => ErrorKind::Limit,
            Error::Io(_) | Error::KeyResolution { .. } => ErrorKind::Environment,
        }
    }
}
