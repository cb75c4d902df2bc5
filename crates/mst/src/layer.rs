//! Key layers and common prefixes.
//!
//! See `docs/formats.md`, section "MST layers".

/// The layer of a key: the number of leading zero bits of SHA-256 of the
/// key, divided by two and rounded down (a fanout of 4). At most 128.
pub fn layer(key: &[u8]) -> u8 {
    let hash = sha256(key);
    let mut zeros: u32 = 0;
    for word in hash {
        // At most 8 words of 32 zero bits: the sum stays <= 256.
        zeros = zeros.saturating_add(word.leading_zeros());
        if word != 0 {
            break;
        }
    }
    // zeros <= 256, so zeros / 2 <= 128 fits in a u8.
    u8::try_from(zeros / 2).unwrap_or(u8::MAX)
}

/// SHA-256 of `data` as the eight big-endian words of the digest.
///
/// Every key of every node is hashed, and keys are short (one or two
/// blocks), so this pads on the stack and calls the compression function
/// directly instead of going through the buffered [`sha2::Digest`]
/// machinery, which costs about as much again for a one-block message.
fn sha256(data: &[u8]) -> [u32; 8] {
    const INITIAL: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];
    let mut state = INITIAL;
    let mut blocks = data.chunks_exact(64);
    for block in blocks.by_ref() {
        if let Ok(block) = <&[u8; 64]>::try_from(block) {
            sha2::block_api::compress256(&mut state, std::slice::from_ref(block));
        }
    }
    // The tail, 0x80, zeros and the message length in bits: one block if
    // the tail leaves room for the 9 bytes of padding, else two.
    let tail = blocks.remainder();
    let mut last = [[0u8; 64]; 2];
    let flat = last.as_flattened_mut();
    if let Some(head) = flat.get_mut(..tail.len()) {
        head.copy_from_slice(tail);
    }
    if let Some(marker) = flat.get_mut(tail.len()) {
        *marker = 0x80;
    }
    let (count, length_at) = if tail.len() < 56 { (1, 56..64) } else { (2, 120..128) };
    if let Some(length) = flat.get_mut(length_at) {
        length.copy_from_slice(&(data.len() as u64).wrapping_mul(8).to_be_bytes());
    }
    sha2::block_api::compress256(&mut state, last.get(..count).unwrap_or_default());
    state
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
    fn sha256_matches_the_digest_at_every_padding_boundary() {
        use sha2::Digest;
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for len in 0..data.len() {
            let message = &data[..len];
            let words: Vec<u8> = sha256(message).iter().flat_map(|w| w.to_be_bytes()).collect();
            assert_eq!(words, sha2::Sha256::digest(message).as_slice(), "length {len}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(common_prefix_len(b"abcde", b"abc1"), 3);
        assert_eq!(common_prefix_len(b"abc", b"abc\0"), 3);
        assert_eq!(common_prefix_len(b"", b"abc"), 0);
    }
}
