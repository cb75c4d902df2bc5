//! [`SigningKey`]: k256 or p256 secret keys that sign the way atproto
//! requires (RFC 6979 deterministic nonces, compact `r || s`, low-S on both
//! curves), for tests, fixtures and the repository writer.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::key::{Curve, PublicKey};

/// A secret signing key on k256 or p256.
///
/// `Debug` shows the public key only.
#[derive(Clone)]
pub struct SigningKey(Inner);

#[derive(Clone)]
enum Inner {
    K256(k256::ecdsa::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// How many derivation attempts [`SigningKey::from_seed`] makes; each fails
/// with probability below 2^-32 (p256) or 2^-127 (k256).
const SEED_ATTEMPTS: u8 = 16;

impl SigningKey {
    /// A key from its 32-byte big-endian secret scalar, which must be in
    /// `[1, n)`.
    pub fn from_bytes(curve: Curve, secret: &[u8]) -> Result<SigningKey> {
        // The curve crates zero-pad shorter slices; atproto keys are 32 bytes.
        if secret.len() != 32 {
            return Err(Error::SecretKey { curve });
        }
        let inner = match curve {
            Curve::K256 => k256::ecdsa::SigningKey::from_slice(secret).map(Inner::K256),
            Curve::P256 => p256::ecdsa::SigningKey::from_slice(secret).map(Inner::P256),
        };
        inner.map(SigningKey).map_err(|_| Error::SecretKey { curve })
    }

    /// A key derived deterministically from `seed`, for reproducible tests
    /// and fixtures: the secret is SHA-256 of a domain tag, the curve, an
    /// attempt counter and the seed, retried while it is not a valid
    /// scalar. Not a key derivation function for real secrets.
    pub fn from_seed(curve: Curve, seed: &[u8]) -> Result<SigningKey> {
        for attempt in 0..SEED_ATTEMPTS {
            let mut h = Sha256::new();
            h.update(b"atrepo-verify test key\0");
            h.update(curve.to_string().as_bytes());
            h.update([attempt]);
            h.update(seed);
            if let Ok(key) = SigningKey::from_bytes(curve, &h.finalize()) {
                return Ok(key);
            }
        }
        Err(Error::SecretKey { curve })
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self.0 {
            Inner::K256(_) => Curve::K256,
            Inner::P256(_) => Curve::P256,
        }
    }

    /// The 32-byte big-endian secret scalar.
    pub fn to_bytes(&self) -> [u8; 32] {
        match &self.0 {
            Inner::K256(k) => k.to_bytes().into(),
            Inner::P256(k) => k.to_bytes().into(),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match &self.0 {
            Inner::K256(k) => PublicKey::from_k256(*k.verifying_key()),
            Inner::P256(k) => PublicKey::from_p256(*k.verifying_key()),
        }
    }

    /// Signs SHA-256 of `message`: a 64-byte compact `r || s` signature,
    /// low-S, with an RFC 6979 deterministic nonce (the same message and
    /// key always give the same signature).
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64]> {
        let digest: [u8; 32] = Sha256::digest(message).into();
        self.sign_prehash(&digest)
    }

    /// Like [`sign`](Self::sign), given the SHA-256 digest of the message.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> Result<[u8; 64]> {
        let curve = self.curve();
        match &self.0 {
            Inner::K256(k) => {
                use k256::ecdsa::signature::hazmat::PrehashSigner;
                let sig: k256::ecdsa::Signature =
                    k.sign_prehash(digest).map_err(|_| Error::Signing { curve })?;
                // k256 already normalizes; normalizing again is a no-op.
                Ok(sig.normalize_s().to_bytes().into())
            }
            Inner::P256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                let sig: p256::ecdsa::Signature =
                    k.sign_prehash(digest).map_err(|_| Error::Signing { curve })?;
                // p256 does not normalize S itself.
                Ok(sig.normalize_s().to_bytes().into())
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_deterministic() {
        for curve in [Curve::K256, Curve::P256] {
            let a = SigningKey::from_seed(curve, b"alice").unwrap();
            let b = SigningKey::from_seed(curve, b"alice").unwrap();
            let c = SigningKey::from_seed(curve, b"bob").unwrap();
            assert_eq!(a.to_bytes(), b.to_bytes());
            assert_ne!(a.to_bytes(), c.to_bytes());
            assert_eq!(a.sign(b"m").unwrap(), b.sign(b"m").unwrap());
            let again = SigningKey::from_bytes(curve, &a.to_bytes()).unwrap();
            assert_eq!(again.public_key(), a.public_key());
        }
    }

    #[test]
    fn invalid_secrets() {
        for curve in [Curve::K256, Curve::P256] {
            let zero = SigningKey::from_bytes(curve, &[0; 32]).unwrap_err();
            assert_eq!(zero, Error::SecretKey { curve });
            let max = SigningKey::from_bytes(curve, &[0xff; 32]).unwrap_err();
            assert_eq!(max, Error::SecretKey { curve });
            let short = SigningKey::from_bytes(curve, &[1; 31]).unwrap_err();
            assert_eq!(short, Error::SecretKey { curve });
        }
    }
}
