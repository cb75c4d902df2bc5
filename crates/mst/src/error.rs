//! The crate's error type.

use std::fmt;

use atrepo_verify::drisl::DecodeError;
use atrepo_verify::syntax::SyntaxError;
use cid::Cid;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything reading, walking or changing an MST can fail with.
///
/// Errors about a node name its CID; errors about a key name the key (at
/// most 1024 bytes, as the decoder caps keys). [`Error::kind`] sorts them
/// into malformed nodes, broken tree rules, missing blocks, limits and the
/// environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A node block is not strict DRISL of the node schema
    /// `{e: [{k, p, t, v}], l}`.
    #[error("mst node {cid} is malformed: {error}")]
    Decode {
        /// The node.
        cid: Cid,
        /// What the decoder found.
        error: DecodeError,
    },

    /// A node has more entries than the configured cap.
    #[error("mst node {cid} has {found} entries: limit {limit}")]
    TooManyEntries {
        /// The node.
        cid: Cid,
        /// The cap.
        limit: u64,
        /// The number of entries declared.
        found: u64,
    },

    /// The first entry of a node has a non-zero prefix length.
    #[error("mst node {cid}: first entry has prefix length {found}, expected 0")]
    FirstPrefixNotZero {
        /// The node.
        cid: Cid,
        /// The prefix length found.
        found: u64,
    },

    /// An entry's prefix length is longer than the previous key.
    #[error(
        "mst node {cid} entry {index}: prefix length {prefix} exceeds the previous key's length {previous_len}"
    )]
    PrefixTooLong {
        /// The node.
        cid: Cid,
        /// The entry's index in the node.
        index: usize,
        /// The prefix length found.
        prefix: u64,
        /// The previous key's length.
        previous_len: usize,
    },

    /// An entry's prefix length is not the longest common prefix with the
    /// previous key: the compression is not canonical.
    #[error(
        "mst node {cid} entry {index}: prefix length {prefix}, expected the longest common prefix {longest}"
    )]
    PrefixNotLongest {
        /// The node.
        cid: Cid,
        /// The entry's index in the node.
        index: usize,
        /// The prefix length found.
        prefix: u64,
        /// The longest common prefix with the previous key.
        longest: usize,
    },

    /// A key is empty.
    #[error("mst node {cid} entry {index}: empty key")]
    EmptyKey {
        /// The node.
        cid: Cid,
        /// The entry's index in the node.
        index: usize,
    },

    /// A key is longer than the 1024-byte cap.
    #[error("mst node {cid} entry {index}: key of {len} bytes exceeds {limit}")]
    KeyTooLong {
        /// The node.
        cid: Cid,
        /// The entry's index in the node.
        index: usize,
        /// The key's length.
        len: usize,
        /// The cap.
        limit: usize,
    },

    /// A key is not a valid repository path under the configured rules.
    #[error("mst node {cid}: invalid key {key:?}: {error}")]
    InvalidKey {
        /// The node.
        cid: Cid,
        /// The key, lossily decoded.
        key: String,
        /// Which rule it breaks.
        error: SyntaxError,
    },

    /// A key is not UTF-8 (repository paths are ASCII).
    #[error("mst node {cid}: key {key:?} is not utf-8")]
    KeyNotUtf8 {
        /// The node.
        cid: Cid,
        /// The key, lossily decoded.
        key: String,
    },

    /// A key sits on the wrong layer: its hash says one layer, its node (or
    /// the node's place under its parent) says another.
    #[error(
        "mst node {cid}: key {key:?} belongs on layer {key_layer}, found on layer {node_layer}"
    )]
    WrongLayer {
        /// The node.
        cid: Cid,
        /// The key.
        key: String,
        /// The layer its hash gives.
        key_layer: u8,
        /// The layer of the node it is in.
        node_layer: u8,
    },

    /// One node holds keys of two layers. Where the node's place in the
    /// tree gives its layer, the walk reports the key off that layer as
    /// [`Error::WrongLayer`] instead; this is for a node read on its own
    /// (or a root), where either key could be the misplaced one.
    #[error(
        "mst node {cid}: expected the keys of one layer, found {first:?} on layer \
         {first_layer} and {key:?} on layer {key_layer}"
    )]
    MixedLayers {
        /// The node.
        cid: Cid,
        /// Its first key.
        first: String,
        /// The first key's layer.
        first_layer: u8,
        /// The first key of another layer.
        key: String,
        /// That key's layer.
        key_layer: u8,
    },

    /// A key is not greater than the key before it in the walk: unsorted
    /// within a node, or outside its subtree's range.
    #[error("mst node {cid}: key {key:?} is out of order after {previous:?}")]
    KeyOrder {
        /// The node holding the key.
        cid: Cid,
        /// The key.
        key: String,
        /// The key before it.
        previous: String,
    },

    /// The same key appears twice.
    #[error("mst node {cid}: duplicate key {key:?}")]
    DuplicateKey {
        /// The node holding the second copy.
        cid: Cid,
        /// The key.
        key: String,
    },

    /// A node is linked from more than one place (a shared subtree).
    #[error("mst node {cid} is reached twice")]
    NodeReachedTwice {
        /// The node.
        cid: Cid,
    },

    /// A node other than the root of an empty tree has no entries and no
    /// subtree.
    #[error("mst node {cid} is empty: only the root of an empty repository may be")]
    EmptyNode {
        /// The node.
        cid: Cid,
    },

    /// The root has no entries and only points to a subtree.
    #[error("mst root {cid} has no entries and only points to a subtree")]
    RootOnlyPointer {
        /// The root.
        cid: Cid,
    },

    /// A node on layer 0 links to a subtree, which would be below layer 0.
    #[error("mst node {cid} on layer 0 links to a subtree")]
    ChildBelowZero {
        /// The node.
        cid: Cid,
    },

    /// The tree is deeper than the configured cap.
    #[error("mst deeper than {limit} layers at node {cid}")]
    TooDeep {
        /// The node that would exceed the cap.
        cid: Cid,
        /// The cap.
        limit: usize,
    },

    /// A node the tree links to is not in the block store.
    #[error("mst node {cid} is missing")]
    MissingNode {
        /// The missing node.
        cid: Cid,
    },

    /// A record the tree links to is not in the block store.
    #[error("record {cid} for key {key:?} is missing")]
    MissingRecord {
        /// The key.
        key: String,
        /// The missing record's CID.
        cid: Cid,
    },

    /// A key handed to a tree operation is not acceptable (empty, too long,
    /// or invalid under the configured rules).
    #[error("invalid key {key:?}: expected {expected}")]
    BadKey {
        /// The key, lossily decoded.
        key: String,
        /// What was expected.
        expected: &'static str,
    },

    /// A value handed to a tree operation or the builder is not a record
    /// link a node may hold (CIDv1, dag-cbor, sha2-256): the node written
    /// would be one that decoding refuses.
    #[error("invalid record link {value} for key {key:?}: expected a CIDv1 dag-cbor sha2-256 CID")]
    BadValue {
        /// The key, lossily decoded.
        key: String,
        /// The value.
        value: Cid,
    },

    /// An operation being inverted does not match the tree: the key's value
    /// is not what the operation says it became.
    #[error("operation on {key:?} does not match the tree: expected {expected}, found {found}")]
    OpMismatch {
        /// The key.
        key: String,
        /// What the operation implies the tree holds.
        expected: String,
        /// What the tree holds.
        found: String,
    },

    /// The block store failed.
    #[error(transparent)]
    Store(#[from] atrepo_store::Error),
}

/// The class of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A node block is not the node schema in strict DRISL.
    Malformed,
    /// Well-formed nodes that break a tree rule (order, layers, prefix
    /// compression, empty nodes, sharing), or operations that do not match.
    Verification,
    /// A block the tree needs is not available. Retryable with more blocks.
    Missing,
    /// A configured limit was exceeded.
    Limit,
    /// The block store failed.
    Environment,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Malformed => "malformed input",
            ErrorKind::Verification => "verification failure",
            ErrorKind::Missing => "missing block",
            ErrorKind::Limit => "limit exceeded",
            ErrorKind::Environment => "environment error",
        })
    }
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Decode { .. } | Error::BadKey { .. } | Error::BadValue { .. } => {
                ErrorKind::Malformed
            }
            Error::FirstPrefixNotZero { .. }
            | Error::PrefixTooLong { .. }
            | Error::PrefixNotLongest { .. }
            | Error::EmptyKey { .. }
            | Error::InvalidKey { .. }
            | Error::KeyNotUtf8 { .. }
            | Error::WrongLayer { .. }
            | Error::MixedLayers { .. }
            | Error::KeyOrder { .. }
            | Error::DuplicateKey { .. }
            | Error::NodeReachedTwice { .. }
            | Error::EmptyNode { .. }
            | Error::RootOnlyPointer { .. }
            | Error::ChildBelowZero { .. }
            | Error::OpMismatch { .. } => ErrorKind::Verification,
            Error::MissingNode { .. } | Error::MissingRecord { .. } => ErrorKind::Missing,
            Error::TooManyEntries { .. } | Error::KeyTooLong { .. } | Error::TooDeep { .. } => {
                ErrorKind::Limit
            }
            Error::Store(_) => ErrorKind::Environment,
        }
    }
}

/// A key for an error message: lossily decoded.
pub(crate) fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}
