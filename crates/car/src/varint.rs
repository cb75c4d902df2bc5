//! Unsigned LEB128 varints as the multiformats `unsigned-varint` spec
//! defines them: at most 9 bytes (63 bits) and minimally encoded.
//!
//! See `docs/formats.md`, section "Varints".

/// The longest varint accepted, in bytes.
pub(crate) const MAX_VARINT_LEN: usize = 9;

/// Why a varint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VarintError {
    /// A multi-byte varint whose last byte is zero: the same number has a
    /// shorter encoding, so this one is not canonical.
    NotMinimal,
    /// More than nine bytes, or a ninth byte with its continuation bit set.
    TooLong,
}

impl std::fmt::Display for VarintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VarintError::NotMinimal => "varint is not minimally encoded",
            VarintError::TooLong => "varint is longer than 9 bytes",
        })
    }
}

/// The outcome of decoding a varint from the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Varint {
    /// The value and how many bytes it took.
    Complete(u64, usize),
    /// The buffer ends inside the varint.
    Partial,
}

/// Decodes a varint from the start of `input`.
pub(crate) fn decode(input: &[u8]) -> Result<Varint, VarintError> {
    let mut value: u64 = 0;
    let mut shift: u32 = 0;
    let mut len: usize = 0;
    for &byte in input.iter().take(MAX_VARINT_LEN) {
        // At most nine iterations: the shift stays <= 56, the length <= 9,
        // and a 7-bit payload shifted by 56 still fits in 64 bits.
        len = len.wrapping_add(1);
        value |= u64::from(byte & 0x7f) << shift;
        shift = shift.wrapping_add(7);
        if byte & 0x80 == 0 {
            if byte == 0 && len > 1 {
                return Err(VarintError::NotMinimal);
            }
            return Ok(Varint::Complete(value, len));
        }
    }
    if input.len() >= MAX_VARINT_LEN { Err(VarintError::TooLong) } else { Ok(Varint::Partial) }
}

/// Appends the minimal encoding of `value` to `out`.
pub(crate) fn encode(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        // Truncation keeps exactly the low seven bits, as intended.
        #[allow(clippy::cast_possible_truncation)] // Masked to 7 bits first.
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)] // value < 0x80 here.
    out.push(value as u8);
}

/// The encoded length of `value`.
#[cfg(test)]
pub(crate) fn encoded_len(value: u64) -> usize {
    // leading_zeros() <= 64, so the subtraction cannot wrap.
    let bits = 64u32.wrapping_sub(value.leading_zeros());
    bits.max(1).div_ceil(7) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_boundaries() {
        for v in [0, 1, 127, 128, 255, 300, 16383, 16384, u64::from(u32::MAX), (1 << 63) - 1] {
            let mut buf = Vec::new();
            encode(v, &mut buf);
            assert_eq!(buf.len(), encoded_len(v), "{v}");
            assert_eq!(decode(&buf), Ok(Varint::Complete(v, buf.len())), "{v}");
        }
    }

    #[test]
    fn partial_inside_a_varint() {
        assert_eq!(decode(&[]), Ok(Varint::Partial));
        assert_eq!(decode(&[0x80]), Ok(Varint::Partial));
        assert_eq!(decode(&[0xff; 8]), Ok(Varint::Partial));
    }

    #[test]
    fn rejects_non_minimal() {
        assert_eq!(decode(&[0x80, 0x00]), Err(VarintError::NotMinimal));
        assert_eq!(decode(&[0x81, 0x80, 0x00]), Err(VarintError::NotMinimal));
        // A lone zero byte is the minimal encoding of zero.
        assert_eq!(decode(&[0x00]), Ok(Varint::Complete(0, 1)));
    }

    #[test]
    fn rejects_more_than_nine_bytes() {
        assert_eq!(decode(&[0xff; 9]), Err(VarintError::TooLong));
        assert_eq!(decode(&[0xff; 12]), Err(VarintError::TooLong));
        // Nine bytes ending the varint is the longest allowed: 63 bits.
        let mut max = vec![0xff; 8];
        max.push(0x7f);
        assert_eq!(decode(&max), Ok(Varint::Complete(u64::MAX >> 1, 9)));
    }
}
