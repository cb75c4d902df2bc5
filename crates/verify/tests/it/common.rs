//! Helpers shared by the integration tests.

use atrepo_verify::drisl::Encoder;
use atrepo_verify::{Curve, SigningKey, Tid, UnsignedCommit};
use cid::Cid;
use cid::multihash::Multihash;

/// A key from a fixed seed.
pub(crate) fn key(curve: Curve, seed: &str) -> SigningKey {
    SigningKey::from_seed(curve, seed.as_bytes()).unwrap()
}

/// A CIDv1 with the given codec and a sha2-256 digest of `seed`.
pub(crate) fn cid(codec: u64, seed: &[u8]) -> Cid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(seed);
    Cid::new_v1(codec, Multihash::wrap(0x12, &digest).unwrap())
}

/// A dag-cbor CID.
pub(crate) fn node(seed: &[u8]) -> Cid {
    cid(0x71, seed)
}

/// A fixed rev.
pub(crate) fn rev() -> Tid {
    Tid::parse("3jzfcijpj2z2a").unwrap()
}

/// A valid signed v3 commit for `did:plc:abc`.
pub(crate) fn signed_commit(signer: &SigningKey) -> atrepo_verify::Commit {
    UnsignedCommit::new("did:plc:abc", node(b"data"), rev(), None).unwrap().sign(signer).unwrap()
}

/// One value in a hand-built map.
#[derive(Clone)]
pub(crate) enum V<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    Link(Cid),
    Null,
    Uint(u64),
    /// Bytes written as they are (non-canonical or forbidden encodings).
    Raw(&'a [u8]),
}

/// A map with exactly these entries, in this order (so the order can be
/// wrong on purpose).
pub(crate) fn map(entries: &[(&str, V<'_>)]) -> Vec<u8> {
    let mut out = Encoder::new().map(entries.len() as u64).as_bytes().to_vec();
    for (k, v) in entries {
        let mut e = Encoder::new();
        e.text(k);
        match v {
            V::Text(s) => {
                e.text(s);
            }
            V::Bytes(b) => {
                e.bytes(b);
            }
            V::Link(c) => {
                e.link(c);
            }
            V::Null => {
                e.null();
            }
            V::Uint(n) => {
                e.uint(*n);
            }
            V::Raw(_) => {}
        }
        out.extend_from_slice(e.as_bytes());
        if let V::Raw(b) = v {
            out.extend_from_slice(b);
        }
    }
    out
}

/// The fields of a valid v3 commit, in canonical order, with `sig`.
pub(crate) fn fields<'a>(sig: &'a [u8], data: Cid) -> Vec<(&'static str, V<'a>)> {
    vec![
        ("did", V::Text("did:plc:abc")),
        ("rev", V::Text("3jzfcijpj2z2a")),
        ("sig", V::Bytes(sig)),
        ("data", V::Link(data)),
        ("prev", V::Null),
        ("version", V::Uint(3)),
    ]
}

/// The group order of a curve, big-endian.
pub(crate) fn order(curve: Curve) -> [u8; 32] {
    let hex = match curve {
        Curve::K256 => "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        Curve::P256 => "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    };
    hex_bytes(hex).try_into().unwrap()
}

/// `a - b` for 32-byte big-endian numbers with `a >= b`.
pub(crate) fn sub(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = if d < 0 { 1 } else { 0 };
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    out
}

/// The signature with `s` replaced by `n - s` (the other, high or low, S).
pub(crate) fn flip_s(curve: Curve, sig: &[u8; 64]) -> [u8; 64] {
    let s: [u8; 32] = sig[32..].try_into().unwrap();
    let mut out = *sig;
    out[32..].copy_from_slice(&sub(&order(curve), &s));
    out
}

/// A DER encoding of a compact signature.
pub(crate) fn der(sig: &[u8; 64]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let x = &x[x.iter().position(|&b| b != 0).unwrap_or(31)..];
        let mut v = vec![0x02];
        if x[0] & 0x80 != 0 {
            v.push(u8::try_from(x.len() + 1).unwrap());
            v.push(0);
        } else {
            v.push(u8::try_from(x.len()).unwrap());
        }
        v.extend_from_slice(x);
        v
    };
    let body = [int(&sig[..32]), int(&sig[32..])].concat();
    let mut out = vec![0x30, u8::try_from(body.len()).unwrap()];
    out.extend(body);
    out
}

/// Decodes lowercase hex.
pub(crate) fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// `did:key:` + base58btc of `bytes` (which include any multicodec).
pub(crate) fn did_key_of(bytes: &[u8]) -> String {
    format!("did:key:{}", cid::multibase::encode(cid::multibase::Base::Base58Btc, bytes))
}
