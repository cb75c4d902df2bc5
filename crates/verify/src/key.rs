//! Public keys: [`PublicKey`] on k256 or p256, parsed from and formatted to
//! `did:key`, multikey and legacy multibase strings, and signature
//! verification.
//!
//! Encodings (atproto cryptography spec):
//!
//! - multikey: `z` + base58btc(varint(multicodec) || 33-byte compressed
//!   SEC1 point), multicodec `0xe7` (secp256k1-pub, varint `e7 01`) or
//!   `0x1200` (p256-pub, varint `80 24`);
//! - `did:key`: `did:key:` + multikey;
//! - legacy `publicKeyMultibase` (deprecated DID document form): `z` +
//!   base58btc(key bytes) with no multicodec, the curve given by the
//!   verification method type. atproto wrote it uncompressed; atrepo reads
//!   the compressed form always and the uncompressed one only when
//!   [`KeyOptions::legacy_uncompressed`] is set.

use std::fmt;
use std::str::FromStr;

use cid::multibase::Base;
use k256::elliptic_curve::scalar::IsHigh;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, snippet};

/// The multicodec code of a secp256k1 public key.
pub const MULTICODEC_K256: u64 = 0xe7;
/// The multicodec code of a NIST P-256 public key.
pub const MULTICODEC_P256: u64 = 0x1200;

/// Longest multibase string (after `z`) parsed: a 65-byte uncompressed key
/// with a two-byte multicodec needs 92 base58 characters. Longer input is
/// refused before decoding, whose cost is quadratic in the length.
pub const MAX_MULTIBASE_LEN: usize = 128;

/// An elliptic curve atproto signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Curve {
    /// secp256k1 ("k256", JWT `ES256K`).
    K256,
    /// NIST P-256 / secp256r1 ("p256", JWT `ES256`).
    P256,
}

impl Curve {
    /// The public key multicodec code.
    pub fn multicodec(self) -> u64 {
        match self {
            Curve::K256 => MULTICODEC_K256,
            Curve::P256 => MULTICODEC_P256,
        }
    }

    /// The curve of a public key multicodec code.
    pub fn from_multicodec(code: u64) -> Option<Curve> {
        match code {
            MULTICODEC_K256 => Some(Curve::K256),
            MULTICODEC_P256 => Some(Curve::P256),
            _ => None,
        }
    }

    /// The JWT `alg` name: `ES256K` or `ES256`.
    pub fn jwt_alg(self) -> &'static str {
        match self {
            Curve::K256 => "ES256K",
            Curve::P256 => "ES256",
        }
    }

    /// The legacy DID document verification method type:
    /// `EcdsaSecp256k1VerificationKey2019` or
    /// `EcdsaSecp256r1VerificationKey2019`.
    pub fn legacy_method_type(self) -> &'static str {
        match self {
            Curve::K256 => "EcdsaSecp256k1VerificationKey2019",
            Curve::P256 => "EcdsaSecp256r1VerificationKey2019",
        }
    }

    /// The curve of a legacy verification method type.
    pub fn from_legacy_method_type(method_type: &str) -> Option<Curve> {
        [Curve::K256, Curve::P256].into_iter().find(|c| c.legacy_method_type() == method_type)
    }

    /// The varint bytes of the multicodec code.
    fn multicodec_prefix(self) -> [u8; 2] {
        match self {
            Curve::K256 => [0xe7, 0x01],
            Curve::P256 => [0x80, 0x24],
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Curve::K256 => "k256",
            Curve::P256 => "p256",
        })
    }
}

/// Options for parsing keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyOptions {
    /// Accept 65-byte uncompressed keys in legacy multibase form
    /// ([`PublicKey::from_legacy_multibase`]), as deprecated atproto DID
    /// documents have them. Off by default. `did:key` and multikeys are
    /// always compressed-only.
    pub legacy_uncompressed: bool,
}

impl KeyOptions {
    /// Returns these options with `legacy_uncompressed` set.
    pub fn legacy_uncompressed(mut self, yes: bool) -> Self {
        self.legacy_uncompressed = yes;
        self
    }
}

/// A k256 or p256 public key that atproto signatures are checked against.
///
/// The curve comes from the key's encoding (its multicodec, or the legacy
/// method type), never from the signature: a signature is only ever
/// checked on its key's curve.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(Inner);

#[derive(Clone, PartialEq, Eq)]
enum Inner {
    K256(k256::ecdsa::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

/// The group orders, big-endian: signature scalars must be below them.
const K256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

impl PublicKey {
    /// Parses a `did:key:z...` string (compressed keys only).
    pub fn from_did_key(s: &str) -> Result<PublicKey> {
        match s.strip_prefix("did:key:") {
            Some(multikey) => PublicKey::from_multikey(multikey),
            None => Err(Error::NotDidKey { found: snippet(s, 32) }),
        }
    }

    /// Parses a multikey: `z` + base58btc(multicodec varint + compressed
    /// key), as in a DID document's `Multikey` verification method.
    pub fn from_multikey(s: &str) -> Result<PublicKey> {
        let bytes = decode_base58btc(s)?;
        let (codec, key) = read_varint(&bytes).ok_or(Error::Multicodec)?;
        let curve = Curve::from_multicodec(codec).ok_or(Error::UnsupportedKeyType { codec })?;
        PublicKey::from_compressed(curve, key)
    }

    /// Parses a legacy `publicKeyMultibase`: `z` + base58btc(key bytes),
    /// no multicodec, the curve taken from the verification method type
    /// ([`Curve::from_legacy_method_type`]). Compressed keys are always
    /// accepted, uncompressed ones only with
    /// [`KeyOptions::legacy_uncompressed`].
    pub fn from_legacy_multibase(curve: Curve, s: &str, options: &KeyOptions) -> Result<PublicKey> {
        let bytes = decode_base58btc(s)?;
        let uncompressed = options.legacy_uncompressed;
        match (bytes.as_slice(), bytes.len()) {
            ([0x04, ..], 65) if uncompressed => PublicKey::from_sec1(curve, &bytes),
            // A multikey (multicodec prefix) in a legacy method: said so,
            // not as a 35-byte key.
            ([0xe7, 0x01, ..] | [0x80, 0x24, ..], 35) => {
                Err(Error::MultikeyInLegacyMethod { curve })
            }
            // Compressed or not a point; uncompressed where not allowed.
            (_, 33) | ([0x04, ..], 65) => PublicKey::from_compressed(curve, &bytes),
            // Another SEC1 tag (hybrid `06`/`07`) on 65 bytes.
            (_, 65) if uncompressed => Err(Error::InvalidPoint { curve }),
            (_, found) => Err(Error::LegacyKeyLength { curve, found, uncompressed }),
        }
    }

    /// A key from its 33-byte compressed SEC1 encoding (`02` or `03`, then
    /// x).
    pub fn from_compressed(curve: Curve, bytes: &[u8]) -> Result<PublicKey> {
        match bytes {
            [0x02 | 0x03, ..] if bytes.len() == 33 => PublicKey::from_sec1(curve, bytes),
            [0x04, ..] if bytes.len() == 65 => Err(Error::UncompressedKey { curve }),
            // The SEC1 encoding of the identity point.
            [0x00] => Err(Error::InvalidPoint { curve }),
            _ if bytes.len() == 33 => Err(Error::InvalidPoint { curve }),
            _ => Err(Error::KeyLength { curve, found: bytes.len() }),
        }
    }

    /// Any SEC1 encoding the curve crates accept (length checked by the
    /// callers).
    fn from_sec1(curve: Curve, bytes: &[u8]) -> Result<PublicKey> {
        let inner = match curve {
            Curve::K256 => k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map(Inner::K256),
            Curve::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map(Inner::P256),
        };
        inner.map(PublicKey).map_err(|_| Error::InvalidPoint { curve })
    }

    pub(crate) fn from_k256(key: k256::ecdsa::VerifyingKey) -> Self {
        PublicKey(Inner::K256(key))
    }

    pub(crate) fn from_p256(key: p256::ecdsa::VerifyingKey) -> Self {
        PublicKey(Inner::P256(key))
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self.0 {
            Inner::K256(_) => Curve::K256,
            Inner::P256(_) => Curve::P256,
        }
    }

    /// The 33-byte compressed SEC1 encoding.
    pub fn to_compressed(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        let mut fill = |point: &[u8]| {
            for (o, b) in out.iter_mut().zip(point) {
                *o = *b;
            }
        };
        match &self.0 {
            Inner::K256(k) => fill(k.to_sec1_point(true).as_bytes()),
            Inner::P256(k) => fill(k.to_sec1_point(true).as_bytes()),
        }
        out
    }

    /// The multikey: `z` + base58btc(multicodec varint + compressed key).
    pub fn to_multikey(&self) -> String {
        let mut bytes = self.curve().multicodec_prefix().to_vec();
        bytes.extend_from_slice(&self.to_compressed());
        cid::multibase::encode(Base::Base58Btc, bytes)
    }

    /// The `did:key` string: `did:key:` + [`to_multikey`](Self::to_multikey).
    pub fn to_did_key(&self) -> String {
        format!("did:key:{}", self.to_multikey())
    }

    /// The legacy `publicKeyMultibase` form, compressed: `z` +
    /// base58btc(compressed key), no multicodec.
    pub fn to_legacy_multibase(&self) -> String {
        cid::multibase::encode(Base::Base58Btc, self.to_compressed())
    }

    /// Verifies a 64-byte compact `r || s` signature over SHA-256 of
    /// `message`.
    ///
    /// Refused as malformed before any curve arithmetic: a length other
    /// than 64 ([`Error::DerSignature`] when it looks like DER),
    /// `r` or `s` zero or not below the group order, and high-S on either
    /// curve ([`Error::HighS`]). A well-formed signature that does not
    /// match is [`Error::BadSignature`]. Signatures are never compared as
    /// bytes.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        let digest: [u8; 32] = Sha256::digest(message).into();
        self.verify_prehash(&digest, signature)
    }

    /// The error for a signature that does not verify against this key.
    fn bad_signature(&self) -> Error {
        Error::BadSignature { curve: self.curve(), key: self.to_did_key() }
    }

    /// Like [`verify`](Self::verify), given the SHA-256 digest of the
    /// message.
    pub fn verify_prehash(&self, digest: &[u8; 32], signature: &[u8]) -> Result<()> {
        let (r, s) = split_compact(signature)?;
        let curve = self.curve();
        check_scalars(curve, r, s)?;
        match &self.0 {
            Inner::K256(key) => {
                use k256::ecdsa::signature::hazmat::PrehashVerifier;
                let sig = k256::ecdsa::Signature::from_scalars(*r, *s)
                    .map_err(|_| Error::ScalarOutOfRange { part: "s", curve })?;
                if bool::from(sig.s().is_high()) {
                    return Err(Error::HighS { curve });
                }
                key.verify_prehash(digest, &sig).map_err(|_| self.bad_signature())
            }
            Inner::P256(key) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                let sig = p256::ecdsa::Signature::from_scalars(*r, *s)
                    .map_err(|_| Error::ScalarOutOfRange { part: "s", curve })?;
                // p256 does not refuse high-S itself (its NORMALIZE_S is
                // false): atproto requires low-S, so check here.
                if bool::from(sig.s().is_high()) {
                    return Err(Error::HighS { curve });
                }
                key.verify_prehash(digest, &sig).map_err(|_| self.bad_signature())
            }
        }
    }
}

/// Splits a compact signature into `r` and `s`, refusing other lengths.
fn split_compact(signature: &[u8]) -> Result<(&[u8; 32], &[u8; 32])> {
    let Ok(compact) = <&[u8; 64]>::try_from(signature) else {
        return Err(if looks_like_der(signature) {
            Error::DerSignature { found: signature.len() }
        } else {
            Error::SignatureLength { found: signature.len() }
        });
    };
    let (r, s) = compact.split_at(32);
    match (<&[u8; 32]>::try_from(r), <&[u8; 32]>::try_from(s)) {
        (Ok(r), Ok(s)) => Ok((r, s)),
        _ => Err(Error::SignatureLength { found: signature.len() }),
    }
}

/// Whether `sig` has the outer shape of an ASN.1 DER ECDSA signature:
/// `30 len 02 ...` with `len` covering the rest.
fn looks_like_der(sig: &[u8]) -> bool {
    match sig {
        [0x30, len, 0x02, ..] => usize::from(*len) == sig.len().saturating_sub(2),
        _ => false,
    }
}

/// Checks `r` and `s` are non-zero and below the group order, naming the
/// part at fault.
fn check_scalars(curve: Curve, r: &[u8; 32], s: &[u8; 32]) -> Result<()> {
    let order = match curve {
        Curve::K256 => &K256_ORDER,
        Curve::P256 => &P256_ORDER,
    };
    for (part, bytes) in [("r", r), ("s", s)] {
        if bytes.iter().all(|&b| b == 0) {
            return Err(Error::ZeroScalar { part });
        }
        // Big-endian byte arrays of equal length compare as numbers.
        if bytes >= order {
            return Err(Error::ScalarOutOfRange { part, curve });
        }
    }
    Ok(())
}

/// Decodes `z` + base58btc, refusing other prefixes, over-long input and
/// characters outside the alphabet.
fn decode_base58btc(s: &str) -> Result<Vec<u8>> {
    let mut chars = s.chars();
    match chars.next() {
        Some('z') => {}
        found => return Err(Error::MultibasePrefix { found }),
    }
    let body = chars.as_str();
    if body.len() > MAX_MULTIBASE_LEN {
        return Err(Error::KeyTooLong { limit: MAX_MULTIBASE_LEN, found: body.len() });
    }
    if let Some((i, found)) = body.char_indices().find(|&(_, c)| !is_base58(c)) {
        return Err(Error::Base58 { offset: i.saturating_add(1), found });
    }
    // Every character is in the alphabet, so decoding cannot fail; should
    // it, the error names the first character.
    Base::Base58Btc
        .decode(body)
        .map_err(|_| Error::Base58 { offset: 1, found: body.chars().next().unwrap_or('z') })
}

fn is_base58(c: char) -> bool {
    c.is_ascii_alphanumeric() && !matches!(c, '0' | 'O' | 'I' | 'l')
}

/// Reads a minimal unsigned varint of at most 9 bytes from the front of
/// `bytes`, returning the value and the rest.
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        let shift = u32::try_from(i).ok()?.checked_mul(7)?;
        value |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            // A last byte of zero after others is a non-minimal encoding.
            if b == 0 && i > 0 {
                return None;
            }
            return Some((value, bytes.get(i.checked_add(1)?..)?));
        }
    }
    None
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_did_key())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_did_key())
    }
}

impl FromStr for PublicKey {
    type Err = Error;

    /// Parses a `did:key`.
    fn from_str(s: &str) -> Result<PublicKey> {
        PublicKey::from_did_key(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_match_the_curve_crates() {
        let one = {
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        };
        let minus_one = |order: &[u8; 32]| {
            let mut b = *order;
            b[31] -= 1;
            b
        };
        assert!(k256::ecdsa::Signature::from_scalars(one, K256_ORDER).is_err());
        assert!(k256::ecdsa::Signature::from_scalars(one, minus_one(&K256_ORDER)).is_ok());
        assert!(p256::ecdsa::Signature::from_scalars(one, P256_ORDER).is_err());
        assert!(p256::ecdsa::Signature::from_scalars(one, minus_one(&P256_ORDER)).is_ok());
    }

    #[test]
    fn varints() {
        assert_eq!(read_varint(&[0xe7, 0x01, 9]), Some((0xe7, &[9u8][..])));
        assert_eq!(read_varint(&[0x80, 0x24]), Some((0x1200, &[][..])));
        assert_eq!(read_varint(&[0xed, 0x01]), Some((0xed, &[][..])));
        assert_eq!(read_varint(&[0x05]), Some((5, &[][..])));
        // Non-minimal, truncated, too long.
        assert_eq!(read_varint(&[0xe7, 0x81, 0x00]), None);
        assert_eq!(read_varint(&[0xe7]), None);
        assert_eq!(read_varint(&[0xff; 12]), None);
    }

    #[test]
    fn der_shape() {
        let mut der = vec![0x30, 0x44, 0x02, 0x20];
        der.resize(0x46, 1);
        assert!(looks_like_der(&der));
        assert!(!looks_like_der(&[0x30, 0x44, 0x02]));
        assert!(!looks_like_der(&[1; 65]));
    }

    #[test]
    fn legacy_method_types() {
        for curve in [Curve::K256, Curve::P256] {
            assert_eq!(Curve::from_legacy_method_type(curve.legacy_method_type()), Some(curve));
            assert_eq!(Curve::from_multicodec(curve.multicodec()), Some(curve));
        }
        assert_eq!(Curve::from_legacy_method_type("Multikey"), None);
    }
}
