//! Reading CIDs from section bytes, and checking blocks against them.
//!
//! See `docs/formats.md`, section "CIDs".

use cid::Cid;
use cid::multihash::Multihash;
use sha2::Digest;

use crate::cursor::Cursor;
use crate::options::CidMode;
use crate::varint::{self, Varint, VarintError};

/// Multicodec of dag-cbor.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec of raw bytes.
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of sha2-512.
pub const SHA2_512: u64 = 0x13;
/// Multihash code of the identity "hash".
pub const IDENTITY: u64 = 0x00;

/// Length of a blessed atproto CID: version, codec, hash code and length
/// (one byte each) and a 32-byte digest.
const BLESSED_LEN: usize = 36;

/// Why a CID was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CidProblem {
    /// A CIDv0 (a bare sha2-256 multihash), which strict mode refuses.
    V0,
    /// A version other than 1.
    Version {
        /// The version found.
        found: u64,
    },
    /// A codec other than dag-cbor (`0x71`) or raw (`0x55`), in strict mode.
    Codec {
        /// The codec found.
        found: u64,
    },
    /// A hash function other than sha2-256 (strict mode), or one the reader
    /// cannot compute (permissive mode with hashing on).
    HashFunction {
        /// The multihash code found.
        found: u64,
    },
    /// A digest whose length does not fit the hash function.
    DigestLength {
        /// The length the hash function produces.
        expected: u64,
        /// The length found.
        found: u64,
    },
    /// A digest longer than 64 bytes, more than any supported hash.
    DigestTooLong {
        /// The length found.
        found: u64,
    },
    /// The bytes end before the CID does.
    Truncated,
    /// A varint inside the CID is malformed.
    Varint(VarintError),
}

impl std::fmt::Display for CidProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CidProblem::V0 => f.write_str("expected a CIDv1, found a CIDv0"),
            CidProblem::Version { found } => write!(f, "expected CID version 1, found {found}"),
            CidProblem::Codec { found } => {
                write!(f, "expected codec dag-cbor (0x71) or raw (0x55), found {found:#x}")
            }
            CidProblem::HashFunction { found } => {
                write!(f, "unsupported hash function {found:#x}")
            }
            CidProblem::DigestLength { expected, found } => {
                write!(f, "expected a {expected}-byte digest, found {found} bytes")
            }
            CidProblem::DigestTooLong { found } => {
                write!(f, "digest of {found} bytes is longer than 64")
            }
            CidProblem::Truncated => f.write_str("CID is truncated"),
            CidProblem::Varint(e) => write!(f, "{e} inside a CID"),
        }
    }
}

/// The codec, digest and the bytes after a blessed CID at the front of
/// `bytes`, or `None` if it does not start with one.
///
/// The decoder's fast path: it borrows the digest rather than building a
/// [`Cid`], so hashing can be checked against the input bytes and the `Cid`
/// built once, where the frame is.
#[inline(always)]
pub(crate) fn split_blessed(bytes: &[u8]) -> Option<(u64, &[u8; 32], &[u8])> {
    let (prefix, rest) = bytes.split_first_chunk::<4>()?;
    let codec = match prefix {
        [0x01, 0x71, 0x12, 0x20] => DAG_CBOR,
        [0x01, 0x55, 0x12, 0x20] => RAW,
        _ => return None,
    };
    let (digest, data) = rest.split_first_chunk::<32>()?;
    Some((codec, digest, data))
}

/// The blessed CID with this codec and sha2-256 digest.
#[inline(always)]
pub(crate) fn blessed(codec: u64, digest: &[u8; 32]) -> Cid {
    match Multihash::wrap(SHA2_256, digest) {
        Ok(mh) => Cid::new_v1(codec, mh),
        // A 32-byte digest always fits a 64-byte multihash.
        Err(_) => Cid::default(),
    }
}

/// Whether `data` hashes to `digest` with sha2-256.
#[inline(always)]
pub(crate) fn sha256_matches(digest: &[u8; 32], data: &[u8]) -> bool {
    let computed: [u8; 32] = sha2::Sha256::digest(data).into();
    computed == *digest
}

/// Reads one CID from the front of `r` (whose end is the hard end of the
/// CID's container: a section or a byte string).
pub(crate) fn read(r: &mut Cursor<'_>, mode: CidMode) -> Result<Cid, CidProblem> {
    let rest = r.rest();
    // Fast path: the blessed form is four fixed bytes and a digest.
    if let [0x01, codec @ (0x71 | 0x55), 0x12, 0x20, ..] = rest
        && let Some(bytes) = r.take(BLESSED_LEN)
        && let Some(digest) = bytes.get(4..)
    {
        let mh = Multihash::wrap(SHA2_256, digest).map_err(|_| CidProblem::Truncated)?;
        return Ok(Cid::new_v1(u64::from(*codec), mh));
    }
    read_general(r, mode)
}

fn read_general(r: &mut Cursor<'_>, mode: CidMode) -> Result<Cid, CidProblem> {
    // A CIDv0 is a bare multihash: sha2-256 (0x12), length 32 (0x20).
    if r.rest().starts_with(&[0x12, 0x20]) {
        if mode == CidMode::Strict {
            return Err(CidProblem::V0);
        }
        let bytes = r.take(34).ok_or(CidProblem::Truncated)?;
        let digest = bytes.get(2..).ok_or(CidProblem::Truncated)?;
        let mh = Multihash::wrap(SHA2_256, digest).map_err(|_| CidProblem::Truncated)?;
        return Cid::new_v0(mh).map_err(|_| CidProblem::V0);
    }
    let version = read_varint(r)?;
    if version != 1 {
        return Err(CidProblem::Version { found: version });
    }
    let codec = read_varint(r)?;
    let code = read_varint(r)?;
    let len = read_varint(r)?;
    if mode == CidMode::Strict {
        if codec != DAG_CBOR && codec != RAW {
            return Err(CidProblem::Codec { found: codec });
        }
        if code != SHA2_256 {
            return Err(CidProblem::HashFunction { found: code });
        }
    }
    if let Some(expected) = digest_len(code)
        && len != expected
    {
        return Err(CidProblem::DigestLength { expected, found: len });
    }
    if len > 64 {
        return Err(CidProblem::DigestTooLong { found: len });
    }
    let len_usize = usize::try_from(len).map_err(|_| CidProblem::DigestTooLong { found: len })?;
    let digest = r.take(len_usize).ok_or(CidProblem::Truncated)?;
    let mh = Multihash::wrap(code, digest).map_err(|_| CidProblem::DigestTooLong { found: len })?;
    Ok(Cid::new_v1(codec, mh))
}

/// The digest length a hash function produces, for the ones with a fixed one.
fn digest_len(code: u64) -> Option<u64> {
    match code {
        SHA2_256 => Some(32),
        SHA2_512 => Some(64),
        _ => None,
    }
}

fn read_varint(r: &mut Cursor<'_>) -> Result<u64, CidProblem> {
    match varint::decode(r.rest()).map_err(CidProblem::Varint)? {
        Varint::Complete(value, len) => {
            r.take(len);
            Ok(value)
        }
        Varint::Partial => Err(CidProblem::Truncated),
    }
}

/// Whether the reader can compute `cid`'s hash function.
pub(crate) fn can_hash(cid: &Cid) -> bool {
    matches!(cid.hash().code(), SHA2_256 | SHA2_512 | IDENTITY)
}

/// Hashes `data` with `cid`'s hash function and returns `Ok` if it matches,
/// or the CID the data really has.
///
/// Callers check [`can_hash`] first; an unsupported function yields `Ok`.
pub(crate) fn check(cid: &Cid, data: &[u8]) -> Result<(), Box<Cid>> {
    let mh = cid.hash();
    let matches = match mh.code() {
        SHA2_256 => sha2::Sha256::digest(data).as_slice() == mh.digest(),
        SHA2_512 => sha2::Sha512::digest(data).as_slice() == mh.digest(),
        IDENTITY => data == mh.digest(),
        _ => true,
    };
    if matches { Ok(()) } else { Err(Box::new(computed(cid, data))) }
}

/// The CID that `data` really has, with `cid`'s version, codec and hash.
pub(crate) fn computed(cid: &Cid, data: &[u8]) -> Cid {
    let code = cid.hash().code();
    let mh = match code {
        SHA2_256 => Multihash::wrap(code, sha2::Sha256::digest(data).as_slice()),
        SHA2_512 => Multihash::wrap(code, sha2::Sha512::digest(data).as_slice()),
        IDENTITY => Multihash::wrap(code, data),
        _ => Ok(*cid.hash()),
    };
    // An identity "digest" of more than 64 bytes cannot be a CID; keep the
    // claimed one so the error still names something.
    let mh = mh.unwrap_or(*cid.hash());
    Cid::new(cid.version(), cid.codec(), mh).unwrap_or(*cid)
}

/// Whether `data` hashes to `cid`'s digest, for blocks read back from
/// somewhere the reader's check no longer covers (a file that may have
/// changed since). `false` for a hash function this crate cannot compute.
pub fn block_matches(cid: &Cid, data: &[u8]) -> bool {
    can_hash(cid) && check(cid, data).is_ok()
}

/// The CID of `data` as a blessed atproto CID with the given codec.
pub fn blessed_cid(codec: u64, data: &[u8]) -> Cid {
    let digest = sha2::Sha256::digest(data);
    match Multihash::wrap(SHA2_256, digest.as_slice()) {
        Ok(mh) => Cid::new_v1(codec, mh),
        // A 32-byte digest always fits a 64-byte multihash.
        Err(_) => Cid::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8], mode: CidMode) -> Result<(Cid, usize), CidProblem> {
        let mut r = Cursor::new(bytes, 0);
        let cid = read(&mut r, mode)?;
        Ok((cid, bytes.len() - r.rest().len()))
    }

    #[test]
    fn blessed_fast_path_matches_the_cid_crate() {
        let cid = blessed_cid(DAG_CBOR, b"x");
        let bytes = cid.to_bytes();
        assert_eq!(parse(&bytes, CidMode::Strict), Ok((cid, 36)));
        let raw = blessed_cid(RAW, b"x");
        assert_eq!(parse(&raw.to_bytes(), CidMode::Strict), Ok((raw, 36)));
    }

    #[test]
    fn split_blessed_agrees_with_read() {
        for codec in [DAG_CBOR, RAW] {
            let cid = blessed_cid(codec, b"x");
            let mut bytes = cid.to_bytes();
            bytes.extend(b"data");
            let (c, digest, data) = split_blessed(&bytes).unwrap();
            assert_eq!(blessed(c, digest), cid);
            assert_eq!(data, b"data");
            assert!(sha256_matches(digest, b"x"));
            assert!(!sha256_matches(digest, b"y"));
        }
        // Anything but the blessed prefix and a whole digest goes the
        // general way.
        let v0 = Cid::new_v0(*blessed_cid(DAG_CBOR, b"x").hash()).unwrap().to_bytes();
        assert_eq!(split_blessed(&v0), None);
        let bytes = blessed_cid(DAG_CBOR, b"x").to_bytes();
        assert_eq!(split_blessed(&bytes[..35]), None);
        assert_eq!(split_blessed(&[0x01, 0x70, 0x12, 0x20]), None);
    }

    #[test]
    fn strict_refuses_what_atproto_does_not_bless() {
        let v0 = Cid::new_v0(*blessed_cid(DAG_CBOR, b"x").hash()).unwrap();
        assert_eq!(parse(&v0.to_bytes(), CidMode::Strict), Err(CidProblem::V0));
        assert_eq!(parse(&v0.to_bytes(), CidMode::Permissive), Ok((v0, 34)));

        let pb = Cid::new_v1(0x70, *blessed_cid(DAG_CBOR, b"x").hash());
        assert_eq!(parse(&pb.to_bytes(), CidMode::Strict), Err(CidProblem::Codec { found: 0x70 }));
        assert_eq!(parse(&pb.to_bytes(), CidMode::Permissive), Ok((pb, 36)));

        let id = Cid::new_v1(DAG_CBOR, Multihash::wrap(IDENTITY, b"abc").unwrap());
        assert_eq!(
            parse(&id.to_bytes(), CidMode::Strict),
            Err(CidProblem::HashFunction { found: 0 })
        );
    }

    #[test]
    fn digest_length_must_fit_the_hash() {
        // sha2-256 claiming 31 bytes.
        let mut bytes = vec![0x01, 0x71, 0x12, 31];
        bytes.extend([7; 31]);
        assert_eq!(
            parse(&bytes, CidMode::Strict),
            Err(CidProblem::DigestLength { expected: 32, found: 31 })
        );
        // A digest length beyond what any supported hash makes.
        let bytes = [0x01, 0x71, 0x1e, 0x80, 0x01];
        assert_eq!(
            parse(&bytes, CidMode::Permissive),
            Err(CidProblem::DigestTooLong { found: 128 })
        );
    }

    #[test]
    fn truncation_and_bad_varints() {
        let cid = blessed_cid(DAG_CBOR, b"x").to_bytes();
        for cut in 0..cid.len() {
            assert!(parse(&cid[..cut], CidMode::Strict).is_err(), "cut at {cut}");
        }
        assert_eq!(
            parse(&[0x01, 0xf1, 0x00], CidMode::Strict),
            Err(CidProblem::Varint(VarintError::NotMinimal))
        );
        assert_eq!(parse(&[0x02, 0x71], CidMode::Strict), Err(CidProblem::Version { found: 2 }));
    }

    #[test]
    fn check_detects_mismatch_and_names_the_real_cid() {
        let cid = blessed_cid(DAG_CBOR, b"right");
        assert_eq!(check(&cid, b"right"), Ok(()));
        assert_eq!(check(&cid, b"wrong"), Err(Box::new(blessed_cid(DAG_CBOR, b"wrong"))));
        let id = Cid::new_v1(RAW, Multihash::wrap(IDENTITY, b"abc").unwrap());
        assert_eq!(check(&id, b"abc"), Ok(()));
        assert!(check(&id, b"abd").is_err());
    }
}
