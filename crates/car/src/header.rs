//! The CAR v1 header: a DAG-CBOR map `{roots: [CID, ...], version: 1}`.
//!
//! Decoding is strict: canonical CBOR heads, keys in canonical order, no
//! other keys, no trailing bytes. See `docs/formats.md`, section "Header".

use cid::Cid;

use crate::cids;
use crate::cursor::Cursor;
use crate::error::{Error, Limit, Result};
use crate::options::{CidMode, Limits};

/// A decoded CAR header. It always has at least one root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    roots: Vec<Cid>,
}

impl Header {
    /// A header with the given roots, or `None` if `roots` is empty (a CAR
    /// without roots is not a valid atproto CAR, and the reader refuses it).
    pub fn new(roots: Vec<Cid>) -> Option<Self> {
        if roots.is_empty() { None } else { Some(Header { roots }) }
    }

    /// All roots, in order. Never empty.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The first root: in an atproto repository CAR, the commit.
    pub fn root(&self) -> Cid {
        // `roots` is never empty: both constructors check it.
        self.roots.first().copied().unwrap_or_default()
    }

    /// The canonical DAG-CBOR encoding of this header (without the length
    /// varint that precedes it in a CAR).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(0xa2); // map(2)
        write_text(&mut out, "roots");
        write_head(&mut out, 4, self.roots.len() as u64);
        for root in &self.roots {
            out.extend([0xd8, 0x2a]); // tag(42)
            let bytes = root.to_bytes();
            write_head(&mut out, 2, (bytes.len() as u64).saturating_add(1));
            out.push(0x00); // The multibase identity prefix DAG-CBOR requires.
            out.extend(bytes);
        }
        write_text(&mut out, "version");
        out.push(0x01);
        out
    }
}

/// Decodes a header from exactly the bytes of `r`.
pub(crate) fn decode(mut r: Cursor<'_>, limits: &Limits, mode: CidMode) -> Result<Header> {
    let start = r.offset();
    let (major, entries) = head(&mut r)?;
    if major != 5 || entries == 0 || entries > 2 {
        return Err(invalid(start, "a map with keys roots and version"));
    }
    let mut roots: Option<(u64, Vec<Cid>)> = None;
    let mut version: Option<(u64, u64)> = None;
    for _ in 0..entries {
        let key_at = r.offset();
        match text(&mut r)? {
            // Canonical order is length-first: "roots" before "version".
            b"roots" if roots.is_none() && version.is_none() => {
                let at = r.offset();
                roots = Some((at, decode_roots(&mut r, limits, mode)?));
            }
            b"version" if version.is_none() => {
                let at = r.offset();
                let (major, value) = head(&mut r)?;
                if major != 0 {
                    return Err(invalid(at, "an unsigned integer version"));
                }
                version = Some((at, value));
            }
            _ => return Err(invalid(key_at, "keys roots then version, once each")),
        }
    }
    if !r.is_empty() {
        return Err(invalid(r.offset(), "the end of the header"));
    }
    let Some((at, version)) = version else {
        return Err(invalid(start, "a version key"));
    };
    if version != 1 {
        return Err(Error::UnsupportedVersion { offset: at, found: version });
    }
    let Some((at, roots)) = roots else {
        return Err(invalid(start, "a roots key"));
    };
    Header::new(roots).ok_or(Error::NoRoots { offset: at })
}

fn decode_roots(r: &mut Cursor<'_>, limits: &Limits, mode: CidMode) -> Result<Vec<Cid>> {
    let at = r.offset();
    let (major, count) = head(r)?;
    if major != 4 {
        return Err(invalid(at, "an array of roots"));
    }
    if count > limits.max_roots as u64 {
        return Err(Error::LimitExceeded {
            limit: Limit::Roots,
            max: limits.max_roots as u64,
            found: count,
            offset: at,
            section: None,
        });
    }
    let mut roots = Vec::new();
    for _ in 0..count {
        let at = r.offset();
        if r.take(2) != Some(&[0xd8, 0x2a][..]) {
            return Err(invalid(at, "a CID link (tag 42 as 0xd8 0x2a)"));
        }
        let at = r.offset();
        let (major, len) = head(r)?;
        if major != 2 {
            return Err(invalid(at, "a byte string holding a CID"));
        }
        let Some(mut bytes) = usize::try_from(len).ok().and_then(|n| r.sub(n)) else {
            return Err(invalid(at, "a CID byte string within the header"));
        };
        if bytes.byte() != Some(0x00) {
            return Err(invalid(at, "a CID byte string starting with 0x00"));
        }
        let cid_at = bytes.offset();
        let cid = cids::read(&mut bytes, mode).map_err(|problem| Error::InvalidCid {
            offset: cid_at,
            section: None,
            problem,
        })?;
        if !bytes.is_empty() {
            return Err(invalid(bytes.offset(), "the end of the CID byte string"));
        }
        roots.push(cid);
    }
    Ok(roots)
}

/// Reads a text string and returns its bytes.
fn text<'a>(r: &mut Cursor<'a>) -> Result<&'a [u8]> {
    let at = r.offset();
    let (major, len) = head(r)?;
    if major != 3 {
        return Err(invalid(at, "a text key"));
    }
    usize::try_from(len)
        .ok()
        .and_then(|n| r.take(n))
        .ok_or_else(|| invalid(at, "a text key within the header"))
}

/// Reads a CBOR head: major type and argument, refusing non-minimal and
/// indefinite-length encodings.
fn head(r: &mut Cursor<'_>) -> Result<(u8, u64)> {
    let at = r.offset();
    let Some(initial) = r.byte() else {
        return Err(invalid(at, "more header bytes"));
    };
    let major = initial >> 5;
    let info = initial & 0x1f;
    let (value, min) = match info {
        0..=23 => return Ok((major, u64::from(info))),
        24 => (r.take(1).map(be), 24),
        25 => (r.take(2).map(be), 0x100),
        26 => (r.take(4).map(be), 0x1_0000),
        27 => (r.take(8).map(be), 0x1_0000_0000),
        _ => return Err(invalid(at, "a definite-length CBOR item")),
    };
    match value {
        None => Err(invalid(at, "more header bytes")),
        Some(v) if v < min => Err(invalid(at, "a minimally encoded CBOR length")),
        Some(v) => Ok((major, v)),
    }
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn invalid(offset: u64, expected: &'static str) -> Error {
    Error::InvalidHeader { offset, expected }
}

fn write_text(out: &mut Vec<u8>, s: &str) {
    write_head(out, 3, s.len() as u64);
    out.extend(s.as_bytes());
}

/// Writes a minimal CBOR head.
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    match value {
        #[allow(clippy::cast_possible_truncation)] // Range-checked by the match arm.
        0..=23 => out.push(major | value as u8),
        #[allow(clippy::cast_possible_truncation)]
        24..=0xff => out.extend([major | 24, value as u8]),
        #[allow(clippy::cast_possible_truncation)]
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend((value as u16).to_be_bytes());
        }
        #[allow(clippy::cast_possible_truncation)]
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend((value as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend(value.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cids::{DAG_CBOR, blessed_cid};

    fn dec(bytes: &[u8]) -> Result<Header> {
        decode(Cursor::new(bytes, 0), &Limits::default(), CidMode::Strict)
    }

    #[test]
    fn round_trip() {
        let h =
            Header::new(vec![blessed_cid(DAG_CBOR, b"a"), blessed_cid(DAG_CBOR, b"b")]).unwrap();
        assert_eq!(dec(&h.to_cbor()).unwrap(), h);
    }

    #[test]
    fn matches_a_known_encoding() {
        // {roots: [bafyrei...], version: 1} as written by the reference
        // implementation: a2 65 "roots" 81 d8 2a 58 25 00 <36 bytes> 67 "version" 01.
        let cid = blessed_cid(DAG_CBOR, b"x");
        let mut want = vec![0xa2, 0x65];
        want.extend(b"roots");
        want.extend([0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00]);
        want.extend(cid.to_bytes());
        want.push(0x67);
        want.extend(b"version");
        want.push(0x01);
        assert_eq!(Header::new(vec![cid]).unwrap().to_cbor(), want);
    }

    #[test]
    fn carv2_pragma_is_an_unsupported_version() {
        let pragma = [0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02];
        assert!(matches!(dec(&pragma), Err(Error::UnsupportedVersion { found: 2, offset: 9 })));
    }

    #[test]
    fn keys_out_of_order_are_refused() {
        let cid = blessed_cid(DAG_CBOR, b"x");
        let mut bytes = vec![0xa2, 0x67];
        bytes.extend(b"version");
        bytes.push(0x01);
        bytes.push(0x65);
        bytes.extend(b"roots");
        bytes.extend([0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00]);
        bytes.extend(cid.to_bytes());
        assert!(matches!(dec(&bytes), Err(Error::InvalidHeader { offset: 10, .. })));
    }

    #[test]
    fn empty_roots_and_non_minimal_heads() {
        let mut bytes = vec![0xa2, 0x65];
        bytes.extend(b"roots");
        bytes.push(0x80);
        bytes.push(0x67);
        bytes.extend(b"version");
        bytes.push(0x01);
        assert!(matches!(dec(&bytes), Err(Error::NoRoots { offset: 7 })));
        // map(2) written as 0xb8 0x02.
        assert!(matches!(dec(&[0xb8, 0x02]), Err(Error::InvalidHeader { offset: 0, .. })));
        // Indefinite-length map.
        assert!(matches!(dec(&[0xbf]), Err(Error::InvalidHeader { offset: 0, .. })));
    }

    #[test]
    fn too_many_roots_is_refused_before_reading_them() {
        let mut bytes = vec![0xa2, 0x65];
        bytes.extend(b"roots");
        bytes.extend([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            dec(&bytes),
            Err(Error::LimitExceeded { limit: Limit::Roots, found: u64::MAX, .. })
        ));
    }
}
