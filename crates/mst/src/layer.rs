//! Key layers and common prefixes.
//!
//! See `docs/formats.md`, section "MST layers".

use sha2::{Digest, Sha256};

/// The layer of a key: the number of leading zero bits of SHA-256 of the
/// key, divided by two and rounded down (a fanout of 4). At most 128.
pub fn layer(key: &[u8]) -> u8 {
    let hash = Sha256::digest(key);
    let mut zeros: u32 = 0;
    for &byte in hash.iter() {
        // At most 32 bytes of 8 zero bits: the sum stays <= 256.
        zeros = zeros.saturating_add(byte.leading_zeros());
        if byte != 0 {
            break;
        }
    }
    // zeros <= 256, so zeros / 2 <= 128 fits in a u8.
    u8::try_from(zeros / 2).unwrap_or(u8::MAX)
}

/// The length of the longest common prefix of `a` and `b`, in bytes.
pub fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_layers() {
        // From the atproto interop fixtures (mst/key_heights.json).
        assert_eq!(layer(b""), 0);
        assert_eq!(layer(b"asdf"), 0);
        assert_eq!(layer(b"blue"), 1);
        assert_eq!(layer(b"2653ae71"), 0);
        assert_eq!(layer(b"88bfafc7"), 2);
        assert_eq!(layer(b"2a92d355"), 4);
        assert_eq!(layer(b"884976f5"), 6);
        assert_eq!(layer(b"app.bsky.feed.post/454397e440ec"), 4);
        assert_eq!(layer(b"app.bsky.feed.post/9adeb165882c"), 8);
    }

    #[test]
    fn prefixes() {
        assert_eq!(common_prefix_len(b"abcde", b"abc1"), 3);
        assert_eq!(common_prefix_len(b"abc", b"abc\0"), 3);
        assert_eq!(common_prefix_len(b"", b"abc"), 0);
    }
}
