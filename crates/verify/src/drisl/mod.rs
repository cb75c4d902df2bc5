//! Strict DRISL (atproto's canonical DAG-CBOR) decoding and encoding.
//!
//! DRISL is the deterministic subset of DAG-CBOR that atproto signs and
//! hashes. This module accepts exactly one encoding of each value, so that
//! a signature over a re-encoding and a CID over the received bytes always
//! describe the same data. [`Decoder`] is a cursor for fixed schemas
//! (commits, MST nodes, firehose events): the schema reads keys in their
//! canonical order, which rules out unsorted, duplicate and unknown keys at
//! no extra cost. [`Value`] and [`validate`] handle open data (records).
//!
//! Rules enforced (see `docs/formats.md`, section "DRISL"):
//!
//! - minimal integer and length encodings; definite lengths only;
//! - map keys are text, sorted length-first then bytewise, unique;
//! - the only tag is 42 (a CID link), encoded `d8 2a`, holding a byte
//!   string of `0x00` followed by a binary CID;
//! - no floats at all (atproto forbids them), no `undefined`, no simple
//!   values but `false`, `true`, `null`;
//! - integers fit in `i64`; strings are valid UTF-8;
//! - no trailing bytes; nesting and sizes within [`Limits`].

mod decode;
mod encode;
mod value;

pub use decode::{DecodeError, Decoder, Kind, Problem};
pub use encode::Encoder;
pub use value::{Value, validate, validate_record};

/// Bounds on open DRISL data (records); fixed schemas bound themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Deepest nesting of arrays and maps; the top-level value is depth 1.
    pub max_depth: usize,
    /// Most entries in one array or map.
    pub max_container_len: u64,
}

impl Limits {
    /// The default nesting cap.
    pub const DEFAULT_MAX_DEPTH: usize = 64;
    /// The default container cap (indigo's `MAX_CBOR_CONTAINER_LEN`).
    pub const DEFAULT_MAX_CONTAINER_LEN: u64 = 128 * 1024;

    /// Returns these limits with `max_depth` set.
    pub fn max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// Returns these limits with `max_container_len` set.
    pub fn max_container_len(mut self, n: u64) -> Self {
        self.max_container_len = n;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_container_len: Self::DEFAULT_MAX_CONTAINER_LEN,
        }
    }
}

/// Whether `a` sorts strictly before `b` as DRISL map keys: shorter first,
/// then bytewise.
#[inline]
pub fn key_precedes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    // Keys are short: a byte loop beats a call to `memcmp` (measured in the
    // record validator, where this ran at 9% of the reading thread).
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// Whether `bytes` is UTF-8, checking for plain ASCII first (most keys and
/// strings in records), which is cheaper than the general check.
#[inline]
pub(crate) fn is_utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte loop orders keys as the definition does: length, then
    /// bytes.
    #[test]
    fn key_precedes_is_length_then_bytes() {
        let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=3 {
            let alphabet = [0x00, b'a', b'b', 0x7f, 0xc3, 0xff];
            let mut next = Vec::new();
            for key in keys.iter().filter(|k| k.len() == len - 1) {
                for &b in &alphabet {
                    let mut k = key.clone();
                    k.push(b);
                    next.push(k);
                }
            }
            keys.extend(next);
        }
        for a in &keys {
            for b in &keys {
                let expected = (a.len(), a) < (b.len(), b);
                assert_eq!(key_precedes(a, b), expected, "{a:02x?} {b:02x?}");
            }
        }
    }

    #[test]
    fn is_utf8_agrees_with_the_standard_check() {
        for bytes in [&b""[..], b"plain", "é".as_bytes(), "😀".as_bytes(), b"\x80", b"a\xc0\xaf"]
        {
            assert_eq!(is_utf8(bytes), std::str::from_utf8(bytes).is_ok(), "{bytes:02x?}");
        }
    }
}
