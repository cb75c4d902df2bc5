//! The crate's error type.

use std::fmt;

use cid::Cid;

use crate::cids::CidProblem;
use crate::varint::VarintError;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything reading or writing a CAR can fail with.
///
/// Parse errors carry the absolute byte `offset` of the item at fault and,
/// past the header, the zero-based `section` index. [`Error::kind`] sorts
/// them into malformed input, verification failure, limits and I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ends inside an item. A CAR always ends exactly after a
    /// whole section; anything else is truncation, never a clean end.
    #[error(
        "truncated {item} at offset {offset}{}: expected {}, found the end of the input",
        in_section(*section),
        more_bytes(*needed)
    )]
    Truncated {
        /// What was being read.
        item: Item,
        /// Where that item starts.
        offset: u64,
        /// Which section, past the header.
        section: Option<u64>,
        /// How many more bytes the item needed (at least).
        needed: u64,
    },

    /// A length varint is not canonical or too long.
    #[error("invalid {item} at offset {offset}{}: {problem}", in_section(*section))]
    Varint {
        /// Which length was being read.
        item: Item,
        /// Where the varint starts.
        offset: u64,
        /// Which section, past the header.
        section: Option<u64>,
        /// What is wrong with it.
        problem: VarintError,
    },

    /// A CID in a section or in the header roots is malformed, or is not one
    /// the configured [`CidMode`](crate::CidMode) accepts.
    #[error("invalid CID at offset {offset}{}: {problem}", in_section(*section))]
    InvalidCid {
        /// Where the CID starts.
        offset: u64,
        /// Which section; `None` for a header root.
        section: Option<u64>,
        /// What is wrong with it.
        problem: CidProblem,
    },

    /// The header is not the DAG-CBOR map `{roots: [CID, ...], version: 1}`
    /// in canonical form.
    #[error("invalid header at offset {offset}: expected {expected}")]
    InvalidHeader {
        /// Where the offending byte is.
        offset: u64,
        /// What was expected there.
        expected: &'static str,
    },

    /// The header declares a CAR version other than 1 (CARv2 included).
    #[error("unsupported CAR version {found} at offset {offset}: expected 1")]
    UnsupportedVersion {
        /// Where the version value is.
        offset: u64,
        /// The version declared.
        found: u64,
    },

    /// The header has an empty roots array; atproto needs the commit there.
    #[error("header at offset {offset} has no roots: expected at least one")]
    NoRoots {
        /// Where the roots array is.
        offset: u64,
    },

    /// A configured [`Limits`](crate::Limits) value would be exceeded.
    #[error("{limit} limit exceeded at offset {offset}{}: limit {max}, found {found}", in_section(*section))]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// The configured maximum.
        max: u64,
        /// The value the input asked for.
        found: u64,
        /// Where the item starts.
        offset: u64,
        /// Which section, past the header.
        section: Option<u64>,
    },

    /// A block's bytes do not hash to the digest in its CID.
    #[error(
        "block hash mismatch at offset {offset} in section {section}: claimed {claimed}, computed {computed}"
    )]
    HashMismatch {
        /// Where the section starts.
        offset: u64,
        /// Which section.
        section: u64,
        /// The CID the section claims.
        claimed: Box<Cid>,
        /// The CID the block bytes really have.
        computed: Box<Cid>,
    },

    /// Reading from or writing to the underlying stream failed.
    #[error("i/o error at offset {offset}")]
    Io {
        /// How far the stream had got.
        offset: u64,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A part of a CAR, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Item {
    /// The varint before the header.
    HeaderLength,
    /// The header's DAG-CBOR bytes.
    Header,
    /// The varint before a section.
    SectionLength,
    /// A section's CID and block bytes.
    Section,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Item::HeaderLength => "header length",
            Item::Header => "header",
            Item::SectionLength => "section length",
            Item::Section => "section",
        })
    }
}

/// Which of the [`Limits`](crate::Limits) was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// `max_header_len`.
    HeaderLength,
    /// `max_roots`.
    Roots,
    /// `max_section_len`.
    SectionLength,
    /// `max_total_bytes`.
    TotalBytes,
    /// `max_blocks`.
    Blocks,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::HeaderLength => "header length",
            Limit::Roots => "root count",
            Limit::SectionLength => "section length",
            Limit::TotalBytes => "total size",
            Limit::Blocks => "block count",
        })
    }
}

/// The class of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The bytes are not a well-formed CAR of the accepted kind.
    Malformed,
    /// Well-formed, but a block does not match its CID.
    Verification,
    /// Well-formed so far, but bigger than the configured limits allow.
    Limit,
    /// The environment failed (I/O); the input may be fine.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Malformed => "malformed input",
            ErrorKind::Verification => "verification failure",
            ErrorKind::Limit => "limit exceeded",
            ErrorKind::Io => "i/o error",
        })
    }
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Truncated { .. }
            | Error::Varint { .. }
            | Error::InvalidCid { .. }
            | Error::InvalidHeader { .. }
            | Error::UnsupportedVersion { .. }
            | Error::NoRoots { .. } => ErrorKind::Malformed,
            Error::HashMismatch { .. } => ErrorKind::Verification,
            Error::LimitExceeded { .. } => ErrorKind::Limit,
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    /// Whether the input is malformed.
    pub fn is_malformed(&self) -> bool {
        self.kind() == ErrorKind::Malformed
    }

    /// Whether a block failed verification.
    pub fn is_verification(&self) -> bool {
        self.kind() == ErrorKind::Verification
    }

    /// Whether this is an I/O error.
    pub fn is_io(&self) -> bool {
        self.kind() == ErrorKind::Io
    }

    /// The absolute byte offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            Error::Truncated { offset, .. }
            | Error::Varint { offset, .. }
            | Error::InvalidCid { offset, .. }
            | Error::InvalidHeader { offset, .. }
            | Error::UnsupportedVersion { offset, .. }
            | Error::NoRoots { offset }
            | Error::LimitExceeded { offset, .. }
            | Error::HashMismatch { offset, .. }
            | Error::Io { offset, .. } => *offset,
        }
    }

    /// The zero-based section index the error refers to, if any.
    pub fn section(&self) -> Option<u64> {
        match self {
            Error::Truncated { section, .. }
            | Error::Varint { section, .. }
            | Error::InvalidCid { section, .. }
            | Error::LimitExceeded { section, .. } => *section,
            Error::HashMismatch { section, .. } => Some(*section),
            Error::InvalidHeader { .. }
            | Error::UnsupportedVersion { .. }
            | Error::NoRoots { .. }
            | Error::Io { .. } => None,
        }
    }
}

/// Formats a missing byte count: "1 more byte", "2 more bytes".
// See: tests/it/snapshots/it__errors__framing.snap, which read
// "expected 1 more bytes".
fn more_bytes(n: u64) -> String {
    if n == 1 { "1 more byte".to_owned() } else { format!("{n} more bytes") }
}

/// Formats the optional section part of a message.
fn in_section(section: Option<u64>) -> String {
    match section {
        Some(n) => format!(" in section {n}"),
        None => String::new(),
    }
}
