//! The crate's error type, sorted by [`ErrorKind`] into malformed input,
//! verification failure and environment.

use std::fmt;
use std::time::Duration;

use crate::drisl::DecodeError;
use crate::key::Curve;
use crate::syntax::SyntaxError;
use crate::tid::Tid;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything parsing keys, checking signatures and decoding commits can
/// fail with.
///
/// [`Error::kind`] separates input that is not well-formed (a bad key, a
/// non-canonical commit, a high-S signature) from well-formed input that
/// does not verify (the signature does not match, the rev is out of
/// order) and from the environment (no key known, signing failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- keys ------------------------------------------------------------
    /// A `did:key` string does not start with `did:key:`.
    #[error("expected a did:key starting with \"did:key:\", found {found:?}")]
    NotDidKey {
        /// The start of the string (at most 32 bytes).
        found: String,
    },

    /// A multibase key is empty or not base58btc (prefix `z`).
    #[error("expected a base58btc multibase key (prefix \"z\"), found {}", prefix(*found))]
    MultibasePrefix {
        /// The prefix character found, if the string was not empty.
        found: Option<char>,
    },

    /// A multibase key has a character outside the base58btc alphabet.
    #[error("expected base58btc characters, found {found:?} at byte {offset}")]
    Base58 {
        /// Byte offset of the character in the multibase string.
        offset: usize,
        /// The character.
        found: char,
    },

    /// A multibase key is longer than any key atrepo accepts; it is refused
    /// before decoding.
    #[error("expected a multibase key of at most {limit} bytes, found {found}")]
    KeyTooLong {
        /// The cap.
        limit: usize,
        /// The length found.
        found: usize,
    },

    /// The multicodec varint before the key bytes is truncated, too long or
    /// not minimally encoded.
    #[error("expected a minimal multicodec varint before the key bytes")]
    Multicodec,

    /// The multicodec names a key type atproto does not use (ed25519,
    /// private keys, ...).
    #[error("expected a secp256k1-pub (0xe7) or p256-pub (0x1200) multicodec, found 0x{codec:x}")]
    UnsupportedKeyType {
        /// The multicodec code found.
        codec: u64,
    },

    /// An uncompressed (65-byte) public key where only the 33-byte
    /// compressed form is allowed: always in `did:key` and multikeys, and
    /// in legacy multibase keys unless
    /// [`KeyOptions::legacy_uncompressed`](crate::KeyOptions::legacy_uncompressed)
    /// is set.
    #[error("expected a 33-byte compressed {curve} key, found a 65-byte uncompressed key")]
    UncompressedKey {
        /// The key's curve.
        curve: Curve,
    },

    /// Public key bytes of the wrong length.
    #[error("expected a 33-byte compressed {curve} key, found {found} bytes")]
    KeyLength {
        /// The key's curve.
        curve: Curve,
        /// The number of key bytes found.
        found: usize,
    },

    /// A legacy (bare) multibase key of the wrong length.
    #[error(
        "expected a 33-byte compressed {}{curve} key, found {found} bytes",
        if *uncompressed { "or 65-byte uncompressed " } else { "" }
    )]
    LegacyKeyLength {
        /// The key's curve.
        curve: Curve,
        /// The number of key bytes found.
        found: usize,
        /// Whether 65-byte uncompressed keys were accepted
        /// ([`KeyOptions::legacy_uncompressed`](crate::KeyOptions::legacy_uncompressed)).
        uncompressed: bool,
    },

    /// A multikey (multicodec prefix, then the key) where a legacy
    /// verification method type needs the bare key: the method's type
    /// should be `Multikey`.
    #[error(
        "expected a bare {curve} key for a legacy verification method type, found a multikey \
         (a multicodec prefix): its type should be Multikey"
    )]
    MultikeyInLegacyMethod {
        /// The curve the method type names.
        curve: Curve,
    },

    /// Public key bytes that are not a point of the curve: off the curve,
    /// the identity, an x coordinate out of range, or a bad SEC1 tag byte.
    #[error("expected a {curve} public key, found bytes that are not a valid curve point")]
    InvalidPoint {
        /// The key's curve.
        curve: Curve,
    },

    /// Secret key bytes that are not 32 bytes encoding a scalar in
    /// `[1, n)`.
    #[error("expected a 32-byte {curve} secret scalar in [1, n), found an invalid one")]
    SecretKey {
        /// The key's curve.
        curve: Curve,
    },

    // ----- signatures ------------------------------------------------------
    /// A signature that is not 64 bytes.
    #[error("expected a 64-byte compact signature, found {found} bytes")]
    SignatureLength {
        /// The length found.
        found: usize,
    },

    /// An ASN.1 DER signature; atproto uses only the compact `r || s` form.
    #[error("expected a 64-byte compact signature, found a {found}-byte der signature")]
    DerSignature {
        /// The length found.
        found: usize,
    },

    /// A signature scalar (`r` or `s`) that is zero.
    #[error("expected a non-zero signature {part}, found zero")]
    ZeroScalar {
        /// `"r"` or `"s"`.
        part: &'static str,
    },

    /// A signature scalar (`r` or `s`) at or above the curve's group order.
    #[error("expected signature {part} below the {curve} group order, found one at or above it")]
    ScalarOutOfRange {
        /// `"r"` or `"s"`.
        part: &'static str,
        /// The key's curve.
        curve: Curve,
    },

    /// A high-S signature: atproto requires the low-S form on both curves,
    /// so that a signature has one encoding only. Classed as malformed:
    /// the signature is refused before any curve arithmetic, and a fresh
    /// key would not change the answer.
    #[error("expected a low-S {curve} signature, found a high-S one")]
    HighS {
        /// The key's curve.
        curve: Curve,
    },

    /// A well-formed signature that does not verify against the key and
    /// message.
    #[error(
        "expected a signature by {key} ({curve}), found one that does not match it and the message"
    )]
    BadSignature {
        /// The key's curve.
        curve: Curve,
        /// The key, as `did:key`.
        key: String,
    },

    /// Signing failed (the RFC 6979 nonce gave a zero `r` or `s`, which
    /// happens with negligible probability).
    #[error("{curve} signing failed")]
    Signing {
        /// The key's curve.
        curve: Curve,
    },

    // ----- commits ---------------------------------------------------------
    /// A commit block that is not strict DRISL of the right shape: not
    /// canonical, a float, trailing bytes, unsorted or duplicate keys, a
    /// field of the wrong type, a `data` or `prev` link that is not a
    /// blessed dag-cbor CID.
    ///
    /// The decoder's error is part of this message, so it is not also
    /// returned as the [`source`](std::error::Error::source) (an error
    /// chain printed in full would repeat it).
    #[error("invalid commit encoding: {error}")]
    Cbor {
        /// What the decoder found, and where.
        error: DecodeError,
    },

    /// A commit field atproto does not define.
    #[error("expected only commit fields did, rev, sig, data, prev and version, found {field:?}")]
    UnknownField {
        /// The field name (at most 64 bytes of it).
        field: String,
    },

    /// A required commit field is absent (`prev` must be present, even if
    /// null).
    #[error("expected commit field {field:?}, found none")]
    MissingField {
        /// The field.
        field: &'static str,
    },

    /// A commit `version` other than 3 (or 2, when
    /// [`CommitOptions::allow_v2`](crate::CommitOptions::allow_v2) is set).
    #[error("expected commit version {expected}, found {found}")]
    UnsupportedVersion {
        /// The accepted versions.
        expected: &'static str,
        /// The version found.
        found: u64,
    },

    /// A commit field that breaks its syntax (`did` not a DID, `rev` not a
    /// TID). The syntax error is part of the message, not a `source`.
    #[error("invalid commit field {field:?}: {error}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// The rule broken.
        error: SyntaxError,
    },

    /// A commit block whose CID is not dag-cbor: the same bytes under a
    /// raw CID hash the same, but the repository specification links
    /// commits as dag-cbor, and firehose events name that CID.
    #[error("commit CID {cid}: expected the dag-cbor codec (0x71), found 0x{codec:x}")]
    CommitCodec {
        /// The CID, in string form.
        cid: String,
        /// Its codec.
        codec: u64,
    },

    /// The block named as a commit (a CAR's first root, a `#sync`'s) has
    /// fields no commit has, or lacks a commit's fields: an MST node or a
    /// record, say, named in the commit's place.
    ///
    /// The field error is part of this message, not a `source`.
    #[error("block {cid}, named as the commit, is not a commit: {error}")]
    NotACommit {
        /// The CID, in string form.
        cid: String,
        /// What decoding it as a commit found
        /// ([`UnknownField`](Error::UnknownField) or
        /// [`MissingField`](Error::MissingField)).
        error: Box<Error>,
    },

    /// A link given to a commit builder that is not a blessed dag-cbor CID.
    #[error("expected a CIDv1 dag-cbor sha2-256 link for commit field {field:?}, found {found}")]
    UnblessedLink {
        /// The field.
        field: &'static str,
        /// The CID given, in string form.
        found: String,
    },

    // ----- revs ------------------------------------------------------------
    /// A rev that does not come after the last one seen.
    #[error("expected a rev after {previous}, found {rev}")]
    RevNotAfter {
        /// The rev checked.
        rev: Tid,
        /// The rev it had to follow.
        previous: Tid,
    },

    /// A rev further in the future than the tolerance allows.
    #[error(
        "expected a rev at most {tolerance:?} ahead of the clock, found {rev} ({ahead:?} ahead)"
    )]
    RevInFuture {
        /// The rev checked.
        rev: Tid,
        /// How far ahead of the clock it is.
        ahead: Duration,
        /// The tolerance.
        tolerance: Duration,
    },

    // ----- key resolution --------------------------------------------------
    /// A [`KeyResolver`](crate::KeyResolver) knows no signing key for the
    /// DID.
    #[error("no signing key known for {did}")]
    KeyNotFound {
        /// The DID asked about.
        did: String,
    },
}

fn prefix(found: Option<char>) -> String {
    match found {
        Some(c) => format!("prefix {c:?}"),
        None => "an empty string".to_owned(),
    }
}

/// The class of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is not well-formed: a bad key encoding, a signature of
    /// the wrong form (DER, wrong length, out-of-range or high-S scalars),
    /// a commit that is not strict canonical DRISL or breaks the schema.
    Malformed,
    /// Well-formed input that fails a check: the signature does not match,
    /// the rev is out of order or too far in the future.
    Verification,
    /// The environment: the key source knows no key, or signing failed.
    Environment,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Malformed => "malformed input",
            ErrorKind::Verification => "verification failure",
            ErrorKind::Environment => "environment",
        })
    }
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadSignature { .. } | Error::RevNotAfter { .. } | Error::RevInFuture { .. } => {
                ErrorKind::Verification
            }
            Error::Signing { .. } | Error::KeyNotFound { .. } => ErrorKind::Environment,
            Error::NotDidKey { .. }
            | Error::MultibasePrefix { .. }
            | Error::Base58 { .. }
            | Error::KeyTooLong { .. }
            | Error::Multicodec
            | Error::UnsupportedKeyType { .. }
            | Error::UncompressedKey { .. }
            | Error::KeyLength { .. }
            | Error::LegacyKeyLength { .. }
            | Error::MultikeyInLegacyMethod { .. }
            | Error::InvalidPoint { .. }
            | Error::SecretKey { .. }
            | Error::SignatureLength { .. }
            | Error::DerSignature { .. }
            | Error::ZeroScalar { .. }
            | Error::ScalarOutOfRange { .. }
            | Error::HighS { .. }
            | Error::Cbor { .. }
            | Error::UnknownField { .. }
            | Error::MissingField { .. }
            | Error::UnsupportedVersion { .. }
            | Error::InvalidField { .. }
            | Error::CommitCodec { .. }
            | Error::NotACommit { .. }
            | Error::UnblessedLink { .. } => ErrorKind::Malformed,
        }
    }

    /// Whether the input is not well-formed.
    pub fn is_malformed(&self) -> bool {
        self.kind() == ErrorKind::Malformed
    }

    /// Whether well-formed input failed verification.
    pub fn is_verification(&self) -> bool {
        self.kind() == ErrorKind::Verification
    }
}

impl From<DecodeError> for Error {
    fn from(error: DecodeError) -> Self {
        Error::Cbor { error }
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
