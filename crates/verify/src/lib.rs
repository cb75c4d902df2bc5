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

/// Entry points for fuzzing and out-of-crate tests.
///
/// Not part of the public API: anything here may change in any release.
#[doc(hidden)]
pub mod internal {
    /// Fuzz bodies: each takes arbitrary bytes, must never panic, and
    /// asserts the invariants that must hold for accepted input.
    pub mod fuzzing {
        use crate::{Commit, CommitOptions, Curve, KeyOptions, PublicKey, SigningKey, syntax};

        /// Decodes `data` as a commit (v2 allowed); an accepted commit must
        /// re-encode to exactly `data`.
        pub fn commit_decode(data: &[u8]) {
            if let Ok(commit) = Commit::decode(data, &CommitOptions::default().allow_v2(true)) {
                assert_eq!(commit.to_cbor(), data, "accepted a non-canonical commit");
            }
        }

        /// Decodes `data` as a commit and verifies it against fixed keys on
        /// both curves; the first byte picks how much of the rest is the
        /// commit, the remainder is checked as a bare signature.
        pub fn verify_commit(data: &[u8]) {
            let keys: Vec<PublicKey> = [Curve::K256, Curve::P256]
                .into_iter()
                .filter_map(|c| SigningKey::from_seed(c, b"fuzz").ok())
                .map(|k| k.public_key())
                .collect();
            let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
            let (commit, signature) = data.split_at(split);
            if let Ok(commit) = Commit::decode(commit, &CommitOptions::default()) {
                for key in &keys {
                    let _ = commit.verify(key);
                }
            }
            for key in &keys {
                let _ = key.verify(b"fuzz", signature);
            }
        }

        /// [`verify_commit`] on `data`, then signatures made here over
        /// `data` on both curves: each verifies with its own key only (the
        /// curve comes from the key, never from the signature), its high-S
        /// twin is refused as [`HighS`](crate::Error::HighS), its DER form
        /// as [`DerSignature`](crate::Error::DerSignature), and a key
        /// printed as did:key parses back on the same curve.
        pub fn commit_verify(data: &[u8]) {
            verify_commit(data);
            let signers = signers();
            for signer in signers {
                let Ok(sig) = signer.sign(data) else { continue };
                let key = signer.public_key();
                let curve = signer.curve();
                assert_eq!(key.verify(data, &sig), Ok(()), "own signature refused");
                for other in signers.iter().filter(|o| o.curve() != curve) {
                    assert!(other.public_key().verify(data, &sig).is_err(), "other curve accepted");
                }
                let high = high_s(curve, &sig);
                assert_eq!(key.verify(data, &high), Err(crate::Error::HighS { curve }));
                let der = to_der(&sig);
                if der.len() != 64 {
                    let found = der.len();
                    assert_eq!(key.verify(data, &der), Err(crate::Error::DerSignature { found }));
                }
                let parsed = PublicKey::from_did_key(&key.to_did_key());
                assert_eq!(parsed.map(|k| k.curve()), Ok(curve), "did:key changed curve");
            }
        }

        fn signers() -> &'static [SigningKey] {
            static SIGNERS: std::sync::OnceLock<Vec<SigningKey>> = std::sync::OnceLock::new();
            SIGNERS.get_or_init(|| {
                [Curve::K256, Curve::P256]
                    .into_iter()
                    .filter_map(|c| SigningKey::from_seed(c, b"fuzz signer").ok())
                    .collect()
            })
        }

        /// The same signature with `s` replaced by `n - s`.
        fn high_s(curve: Curve, sig: &[u8; 64]) -> [u8; 64] {
            const K256_N: [u8; 32] = [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c,
                0xd0, 0x36, 0x41, 0x41,
            ];
            const P256_N: [u8; 32] = [
                0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
                0xfc, 0x63, 0x25, 0x51,
            ];
            let n = match curve {
                Curve::K256 => &K256_N,
                Curve::P256 => &P256_N,
            };
            let mut out = *sig;
            let mut borrow = false;
            for (o, (&n, &s)) in
                out.iter_mut().skip(32).zip(n.iter().zip(sig.iter().skip(32))).rev()
            {
                let (d, b1) = n.overflowing_sub(s);
                let (d, b2) = d.overflowing_sub(u8::from(borrow));
                *o = d;
                borrow = b1 || b2;
            }
            out
        }

        /// ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }` of a compact
        /// signature (each scalar is at most 33 bytes, so lengths fit a
        /// byte).
        fn to_der(sig: &[u8; 64]) -> Vec<u8> {
            let int = |x: &[u8]| {
                let x: Vec<u8> = x.iter().copied().skip_while(|&b| b == 0).collect();
                let pad = x.first().is_none_or(|&b| b >= 0x80);
                let len = u8::try_from(x.len()).unwrap_or(u8::MAX).saturating_add(u8::from(pad));
                let mut out = vec![0x02, len];
                if pad {
                    out.push(0);
                }
                out.extend_from_slice(&x);
                out
            };
            let (r, s) = sig.split_at(32);
            let body = [int(r), int(s)].concat();
            let mut der = vec![0x30, u8::try_from(body.len()).unwrap_or(u8::MAX)];
            der.extend_from_slice(&body);
            der
        }

        /// Decodes `data` as open DRISL data (a record body). Accepted input
        /// re-encodes to exactly `data` (so no indefinite length,
        /// non-minimal head or unsorted key got through) and holds no float
        /// head (found by a scan independent of the decoder); the
        /// allocating decoder and the validators agree.
        pub fn dagcbor_roundtrip(data: &[u8]) {
            let limits = crate::drisl::Limits::default();
            let value = crate::drisl::Value::decode(data, &limits);
            let valid = crate::drisl::validate(data, &limits);
            let record = crate::drisl::validate_record(data, &limits);
            match &value {
                Ok(value) => {
                    assert_eq!(value.to_cbor(), data, "accepted non-canonical drisl");
                    assert_eq!(float_heads(data), Some(0), "accepted a float");
                    assert_eq!(valid, Ok(()), "value accepted what validate refused");
                }
                Err(_) => assert!(record.is_err(), "record accepted what value refused"),
            }
        }

        /// Counts float heads (major type 7, additional information 25 to
        /// 27) in one definite-length CBOR item, or `None` if `data` is not
        /// one well-formed definite-length item. Written apart from the
        /// decoder so that it checks the decoder.
        fn float_heads(data: &[u8]) -> Option<u64> {
            let mut pos = 0usize;
            let mut pending = 1u64;
            let mut floats = 0u64;
            while pending > 0 {
                pending = pending.checked_sub(1)?;
                let first = *data.get(pos)?;
                pos = pos.checked_add(1)?;
                let (major, info) = (first >> 5, first & 0x1f);
                let width = match info {
                    0..=23 => 0,
                    24 => 1,
                    25 => 2,
                    26 => 4,
                    27 => 8,
                    _ => return None,
                };
                let mut arg = u64::from(info);
                if width > 0 {
                    arg = 0;
                    for &b in data.get(pos..pos.checked_add(width)?)? {
                        arg = (arg << 8) | u64::from(b);
                    }
                    pos = pos.checked_add(width)?;
                }
                match major {
                    2 | 3 => pos = pos.checked_add(usize::try_from(arg).ok()?)?,
                    4 => pending = pending.checked_add(arg)?,
                    5 => pending = pending.checked_add(arg.checked_mul(2)?)?,
                    6 => pending = pending.checked_add(1)?,
                    7 if width >= 2 => floats = floats.checked_add(1)?,
                    _ => {}
                }
            }
            (pos == data.len()).then_some(floats)
        }

        /// Parses `data` (as UTF-8) as a did:key, a multikey and a legacy
        /// multibase key; an accepted key must print back exactly.
        pub fn did_key(data: &[u8]) {
            let Ok(s) = std::str::from_utf8(data) else { return };
            if let Ok(key) = PublicKey::from_did_key(s) {
                assert_eq!(key.to_did_key(), s, "did:key does not round-trip");
            }
            if let Ok(key) = PublicKey::from_multikey(s) {
                assert_eq!(key.to_multikey(), s, "multikey does not round-trip");
            }
            let options = KeyOptions::default().legacy_uncompressed(true);
            for curve in [Curve::K256, Curve::P256] {
                if let Ok(key) = PublicKey::from_legacy_multibase(curve, s, &KeyOptions::default())
                {
                    assert_eq!(key.to_legacy_multibase(), s, "legacy key does not round-trip");
                }
                let _ = PublicKey::from_legacy_multibase(curve, s, &options);
            }
        }

        /// Runs every identifier validator on `data` (as UTF-8) and checks
        /// that the strict forms imply the lax ones.
        pub fn syntax(data: &[u8]) {
            let Ok(s) = std::str::from_utf8(data) else { return };
            let _ = (syntax::did(s), syntax::handle(s), syntax::record_key(s), syntax::tid(s));
            let _ = (syntax::at_uri(s), syntax::datetime(s), syntax::cid_string(s));
            if syntax::repo_path(s).is_ok() {
                assert!(syntax::repo_path_lax(s).is_ok(), "strict path refused by the lax rules");
            }
            if syntax::nsid_normalized(s).is_ok() {
                assert!(syntax::nsid(s).is_ok(), "normalized nsid refused as an nsid");
            }
            if syntax::at_identifier(s).is_ok() {
                assert!(syntax::did(s).is_ok() || syntax::handle(s).is_ok());
            }
            if syntax::tid(s).is_ok() {
                assert_eq!(crate::Tid::parse(s).map(|t| t.to_string()).ok().as_deref(), Some(s));
            }
        }
    }
}
