//! [`Encoder`]: canonical DRISL output.

use cid::Cid;

/// The most [`Encoder::with_capacity`] reserves up front; beyond it the
/// output grows as it is written.
const RESERVE_MAX: usize = 64 * 1024;

/// Writes canonical DRISL into a byte vector.
///
/// Heads are always minimal. Fixed schemas write their map keys in
/// canonical order themselves (length-first, then bytewise); [`Value`]
/// sorts open maps.
///
/// [`Value`]: super::Value
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty encoder with room for `bytes` bytes (at most 64 KiB), for
    /// callers that know about how much they will
    /// write (an MST node: about 90 bytes an entry), so the output is not
    /// reallocated as it grows.
    #[allow(
        clippy::reserve_after_initialization,
        reason = "Vec::with_capacity is disallowed project-wide; this size is capped"
    )]
    pub fn with_capacity(bytes: usize) -> Self {
        let mut out = Vec::new();
        out.reserve(bytes.min(RESERVE_MAX));
        Encoder { out }
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// The bytes written so far, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.out
    }

    fn head(&mut self, major: u8, value: u64) {
        let major = major << 5;
        if let Ok(v) = u8::try_from(value) {
            if v < 24 {
                self.out.push(major | v);
            } else {
                self.out.extend_from_slice(&[major | 24, v]);
            }
        } else if let Ok(v) = u16::try_from(value) {
            self.out.push(major | 25);
            self.out.extend_from_slice(&v.to_be_bytes());
        } else if let Ok(v) = u32::try_from(value) {
            self.out.push(major | 26);
            self.out.extend_from_slice(&v.to_be_bytes());
        } else {
            self.out.push(major | 27);
            self.out.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// Writes an unsigned integer.
    pub fn uint(&mut self, n: u64) -> &mut Self {
        self.head(0, n);
        self
    }

    /// Writes a signed integer.
    pub fn int(&mut self, n: i64) -> &mut Self {
        match u64::try_from(n) {
            Ok(n) => self.head(0, n),
            // CBOR stores a negative n as -1 - n, which is |n| - 1 >= 0.
            Err(_) => self.head(1, n.unsigned_abs().wrapping_sub(1)),
        }
        self
    }

    /// Writes `false` or `true`.
    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.out.push(if b { 0xf5 } else { 0xf4 });
        self
    }

    /// Writes `null`.
    pub fn null(&mut self) -> &mut Self {
        self.out.push(0xf6);
        self
    }

    /// Writes a byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.out.extend_from_slice(b);
        self
    }

    /// Writes a text string.
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.head(3, s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
        self
    }

    /// Writes an array head; the caller writes `n` items next.
    pub fn array(&mut self, n: u64) -> &mut Self {
        self.head(4, n);
        self
    }

    /// Writes a map head; the caller writes `n` key-value pairs next, keys
    /// in canonical order.
    pub fn map(&mut self, n: u64) -> &mut Self {
        self.head(5, n);
        self
    }

    /// Writes a CID link: tag 42 around `0x00` and the binary CID.
    pub fn link(&mut self, cid: &Cid) -> &mut Self {
        // Blessed CIDs (v1, dag-cbor or raw, sha2-256), nearly every link
        // written, have one fixed 41-byte form: write it directly.
        let hash = cid.hash();
        if cid.version() == cid::Version::V1
            && hash.code() == 0x12
            && let (Ok(codec @ (0x55 | 0x71)), Ok(digest)) =
                (u8::try_from(cid.codec()), <&[u8; 32]>::try_from(hash.digest()))
        {
            self.out.extend_from_slice(&[0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01, codec, 0x12, 0x20]);
            self.out.extend_from_slice(digest);
            return self;
        }
        self.link_general(cid)
    }

    /// [`link`](Self::link) for any CID, through the `cid` crate's writer.
    fn link_general(&mut self, cid: &Cid) -> &mut Self {
        self.out.extend_from_slice(&[0xd8, 0x2a]);
        let len = cid.encoded_len();
        self.head(2, (len as u64).saturating_add(1));
        self.out.push(0x00);
        // Writing into a Vec cannot fail.
        let _ = cid.write_bytes(&mut self.out);
        self
    }

    /// Writes a link, or `null` for `None`.
    pub fn link_or_null(&mut self, cid: Option<&Cid>) -> &mut Self {
        match cid {
            Some(cid) => self.link(cid),
            None => self.null(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drisl::Decoder;

    #[test]
    fn link_fast_path_writes_what_the_general_path_writes() {
        use cid::multihash::Multihash;
        let digest: Vec<u8> = (0..32).collect();
        let mut cids = Vec::new();
        for codec in [0x55, 0x71, 0x70, 0x0129] {
            for (code, len) in [(0x12, 32), (0x12, 20), (0x13, 32), (0x1e, 32)] {
                let hash = Multihash::<64>::wrap(code, &digest[..len]).unwrap();
                cids.push(Cid::new_v1(codec, hash));
            }
        }
        let v0 = Multihash::<64>::wrap(0x12, &digest).unwrap();
        cids.push(Cid::new_v0(v0).unwrap());
        for cid in &cids {
            let (mut fast, mut general) = (Encoder::new(), Encoder::new());
            fast.link(cid);
            general.link_general(cid);
            assert_eq!(fast.as_bytes(), general.as_bytes(), "{cid}");
        }
    }

    #[test]
    fn integers_round_trip_at_every_width() {
        for n in [
            0,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
            -1,
            -24,
            -25,
            -256,
            -257,
            i64::MIN,
        ] {
            let mut e = Encoder::new();
            e.int(n);
            let bytes = e.into_bytes();
            let mut d = Decoder::new(&bytes);
            assert_eq!(d.int(), Ok(n), "{n}");
            d.finish().unwrap();
        }
    }
}
