//! atproto keys, signatures, commit objects and identifier syntax.
//!
//! This crate decides whether a commit was signed by the key a DID claims,
//! exactly as the atproto cryptography and repository specifications
//! require, with no leniency they forbid.
//!
//! # What this crate owns
//!
//! - Public keys on k256 and p256 ([`PublicKey`]): `did:key`, multikey and
//!   legacy multibase parsing and formatting, compressed points only
//!   unless the deprecated legacy form is asked for ([`KeyOptions`]).
//! - ECDSA signatures: 64-byte compact `r || s` over SHA-256, low-S only on
//!   both curves, checked through the curve libraries and never compared as
//!   bytes ([`PublicKey::verify`]); signing with low-S normalisation and
//!   keys from seeds for tests ([`SigningKey`]).
//! - Commit objects ([`Commit`]): strict decoding, the unsigned bytes,
//!   verification, building and signing ([`UnsignedCommit`]); rev checks
//!   on [`Tid`] with an injected [`Clock`].
//! - Identifier syntax ([`syntax`]): DID, NSID, record key, TID, repository
//!   path (shared with `atrepo-mst`), handle, AT URI, AT identifier,
//!   datetime, CID string.
//! - Strict DRISL, atproto's canonical DAG-CBOR ([`drisl`]), used by this
//!   crate and `atrepo-mst`.
//! - The [`KeyResolver`] trait (DID to current signing key) and a static
//!   implementation ([`StaticKeyResolver`]).
//!
//! # What this crate must not do
//!
//! - No I/O of any kind: no network, no files, no clock unless injected
//!   ([`Clock`]). Network key resolvers live elsewhere.
//! - No knowledge of storage backends, CAR framing or MST structure.
//! - No "try both curves": a signature is checked only on its key's curve,
//!   which comes from the key's encoding.
//!
//! # Main types
//!
//! [`PublicKey`], [`SigningKey`], [`Curve`], [`Commit`], [`UnsignedCommit`],
//! [`CommitOptions`], [`Tid`], [`KeyResolver`], [`Error`] with
//! [`ErrorKind`] (malformed input, verification failure, environment) and
//! [`syntax::SyntaxError`].
//!
//! # Crate features
//!
//! None.
//!
//! # Untrusted input
//!
//! Keys, signatures, commit blocks and identifiers are all treated as
//! hostile. Parsers read through cursors, never index, never panic, and
//! never allocate from a length the input declares: multibase keys are
//! refused above [`MAX_MULTIBASE_LEN`] before decoding; commits are read by
//! the [`drisl::Decoder`], whose container counts are bounded by the bytes
//! present; identifier validators are linear byte loops with fixed caps
//! ([`syntax::DID_MAX_LEN`], [`syntax::NSID_MAX_LEN`], ...). Every failure
//! is a typed [`Error`] naming what was expected and what was found.
//!
//! # Example
//!
//! ```
//! use atrepo_verify::{Commit, CommitOptions, Curve, ErrorKind, PublicKey, SigningKey, Tid,
//!     UnsignedCommit};
//!
//! # fn main() -> atrepo_verify::Result<()> {
//! // A key, as a DID document would publish it.
//! let signer = SigningKey::from_seed(Curve::P256, b"example seed")?;
//! let did_key = signer.public_key().to_did_key();
//! let key = PublicKey::from_did_key(&did_key)?;
//!
//! // Build, sign and encode a commit, then decode and verify it.
//! let data = "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a".parse().unwrap();
//! let rev = Tid::parse("3jzfcijpj2z2a").unwrap();
//! let bytes = UnsignedCommit::new("did:plc:abc123", data, rev, None)?.sign(&signer)?.to_cbor();
//! let commit = Commit::decode(&bytes, &CommitOptions::default())?;
//! commit.verify(&key)?;
//! assert_eq!(commit.did(), "did:plc:abc123");
//!
//! // Another key does not verify it.
//! let other = SigningKey::from_seed(Curve::P256, b"someone else")?.public_key();
//! assert_eq!(commit.verify(&other).unwrap_err().kind(), ErrorKind::Verification);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::arithmetic_side_effects
    )
)]

mod commit;
pub mod drisl;
mod error;
mod key;
mod resolver;
mod signing;
pub mod syntax;
mod tid;

pub use commit::{COMMIT_VERSION, Commit, CommitOptions, UnsignedCommit};
pub use error::{Error, ErrorKind, Result};
pub use key::{Curve, KeyOptions, MAX_MULTIBASE_LEN, MULTICODEC_K256, MULTICODEC_P256, PublicKey};
pub use resolver::{KeyResolver, StaticKeyResolver};
pub use signing::SigningKey;
pub use syntax::SyntaxError;
pub use tid::{Clock, DEFAULT_FUTURE_TOLERANCE, FixedClock, SystemClock, Tid};
