//! [`Decoder`]: the sans-IO CAR v1 parser every reader is built on.
//!
//! The decoder owns no buffer. The caller hands it the unread bytes it has;
//! the decoder either returns the next item, borrowing from those bytes, or
//! says how many bytes it needs before it can. See `docs/formats.md`,
//! section "CAR v1 framing".

use cid::Cid;

use crate::cids;
use crate::cursor::Cursor;
use crate::error::{Error, Item, Limit, Result};
use crate::header::{self, Header};
use crate::options::{CidMode, HashCheck, Options};
use crate::varint::{self, Varint};

/// A block borrowed from the decoder's input: one CAR section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The CID the section declares. Checked against `data` unless hashing
    /// is [`HashCheck::Unchecked`].
    pub cid: Cid,
    /// The block bytes.
    pub data: &'a [u8],
    /// Absolute offset of the section (its length varint) in the CAR.
    pub offset: u64,
    /// Zero-based index of the section.
    pub index: u64,
}

/// What one call to [`Decoder::decode`] produced.
#[derive(Debug)]
#[must_use]
pub enum Status<'a> {
    /// The header, which took the first `consumed` bytes of the input.
    Header {
        /// The decoded header.
        header: Header,
        /// How many input bytes it took.
        consumed: usize,
    },
    /// A block, which took the first `consumed` bytes of the input.
    Frame {
        /// The block.
        frame: Frame<'a>,
        /// How many input bytes it took.
        consumed: usize,
    },
    /// The input holds only part of the next item: call again with at least
    /// `needed` bytes (counted from the start of the input), or with
    /// `eof = true` if there are no more.
    Partial {
        /// Total input length needed to make progress. Never more than the
        /// configured limits allow for one item, plus its length varint.
        needed: usize,
    },
    /// The CAR ended cleanly after a whole section (or after the header of a
    /// CAR with no blocks).
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Sections,
    Done,
}

/// The sans-IO CAR v1 parser.
///
/// Feed it the unread input with [`decode`](Self::decode), drop the
/// `consumed` bytes it reports, and repeat. The first item is always the
/// header. An error leaves the decoder where it was, so the same input gives
/// the same error again.
///
/// ```
/// use atrepo_car::{CarWriter, Decoder, Header, Options, Status, blessed_cid, DAG_CBOR};
///
/// let cid = blessed_cid(DAG_CBOR, b"\xa0");
/// let mut w = CarWriter::new(Vec::new(), &Header::new(vec![cid]).unwrap())?;
/// w.write(&cid, b"\xa0")?;
/// let car = w.finish()?;
///
/// let mut decoder = Decoder::new(Options::default());
/// let mut input = &car[..];
/// let mut blocks = 0;
/// loop {
///     match decoder.decode(input, true)? {
///         Status::Header { consumed, .. } => input = &input[consumed..],
///         Status::Frame { frame, consumed } => {
///             assert_eq!(frame.cid, cid);
///             blocks += 1;
///             input = &input[consumed..];
///         }
///         Status::Partial { .. } => unreachable!("eof = true turns this into an error"),
///         Status::End => break,
///     }
/// }
/// assert_eq!(blocks, 1);
/// # Ok::<(), atrepo_car::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    options: Options,
    state: State,
    offset: u64,
    blocks: u64,
}

impl Decoder {
    /// A decoder at the start of a CAR.
    pub fn new(options: Options) -> Self {
        Decoder { options, state: State::Header, offset: 0, blocks: 0 }
    }

    /// The options this decoder was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Absolute offset of the next byte to decode: the bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of blocks decoded so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Decodes the next item from the front of `input`.
    ///
    /// `eof` says that `input` is all there is: a partial item then is an
    /// [`Error::Truncated`], never a clean end.
    // Inlined (with `decode_section`) into the readers' loops, so a frame is
    // built where it is returned instead of copied out through `Status`.
    #[inline]
    pub fn decode<'a>(&mut self, input: &'a [u8], eof: bool) -> Result<Status<'a>> {
        match self.state {
            State::Header => self.decode_header(input, eof),
            State::Sections => self.decode_section(input, eof),
            State::Done => Ok(Status::End),
        }
    }

    // Once per CAR: kept out of the readers' loops.
    #[inline(never)]
    fn decode_header<'a>(&mut self, input: &'a [u8], eof: bool) -> Result<Status<'a>> {
        let limits = &self.options.limits;
        let Some((len, varint_len)) = self.length(input, eof, Item::HeaderLength, None)? else {
            return Ok(partial_after(input));
        };
        if len == 0 {
            return Err(Error::InvalidHeader {
                offset: self.offset.saturating_add(varint_len as u64),
                expected: "a non-empty header",
            });
        }
        if len > limits.max_header_len {
            return Err(Error::LimitExceeded {
                limit: Limit::HeaderLength,
                max: limits.max_header_len,
                found: len,
                offset: self.offset,
                section: None,
            });
        }
        let total = self.item_total(varint_len, len, None)?;
        let Some(item) = self.whole_item(input, total, eof, Item::Header, None)? else {
            return Ok(Status::Partial { needed: total });
        };
        let mut cursor = Cursor::new(item, self.offset);
        cursor.take(varint_len);
        let header = header::decode(cursor, limits, self.options.cid_mode)?;
        self.state = State::Sections;
        self.offset = self.offset.saturating_add(total as u64);
        Ok(Status::Header { header, consumed: total })
    }

    #[inline]
    fn decode_section<'a>(&mut self, input: &'a [u8], eof: bool) -> Result<Status<'a>> {
        if input.is_empty() && eof {
            self.state = State::Done;
            return Ok(Status::End);
        }
        let index = self.blocks;
        let section = Some(index);
        let limits = &self.options.limits;
        let Some((len, varint_len)) = self.length(input, eof, Item::SectionLength, section)? else {
            return Ok(partial_after(input));
        };
        if len > limits.max_section_len {
            return Err(Error::LimitExceeded {
                limit: Limit::SectionLength,
                max: limits.max_section_len,
                found: len,
                offset: self.offset,
                section,
            });
        }
        if index >= limits.max_blocks {
            return Err(Error::LimitExceeded {
                limit: Limit::Blocks,
                max: limits.max_blocks,
                found: index.saturating_add(1),
                offset: self.offset,
                section,
            });
        }
        let total = self.item_total(varint_len, len, section)?;
        let Some(item) = self.whole_item(input, total, eof, Item::Section, section)? else {
            return Ok(Status::Partial { needed: total });
        };
        let mut cursor = Cursor::new(item, self.offset);
        cursor.take(varint_len);
        let verify = self.options.hash_check == HashCheck::Verify;
        // The fast path for atproto's blessed CIDs (in either mode): check
        // the hash against the digest in the input and build the `Cid` only
        // here, in the frame. Building it in `cids::read` and moving it out
        // through `Result`s (copies that stalled on store forwarding) made
        // verified parsing 1.35x the hashing baseline; this path, 1.2x.
        // See: benches/benches/car.rs (slice_verify vs sha256_blocks_baseline).
        let (cid, data) = match cids::split_blessed(cursor.rest()) {
            Some((codec, digest, data)) => {
                if verify && !cids::sha256_matches(digest, data) {
                    return Err(self.mismatch(&cids::blessed(codec, digest), data, index));
                }
                (cids::blessed(codec, digest), data)
            }
            None => {
                let cid_offset = cursor.offset();
                let cid = cids::read(&mut cursor, self.options.cid_mode).map_err(|problem| {
                    Error::InvalidCid { offset: cid_offset, section, problem }
                })?;
                let data = cursor.rest();
                if verify {
                    self.check(&cid, data, cid_offset, index)?;
                }
                (cid, data)
            }
        };
        let frame = Frame { cid, data, offset: self.offset, index };
        self.offset = self.offset.saturating_add(total as u64);
        self.blocks = index.saturating_add(1);
        Ok(Status::Frame { frame, consumed: total })
    }

    /// The error for a block that does not hash to `cid`.
    #[cold]
    fn mismatch(&self, cid: &Cid, data: &[u8], index: u64) -> Error {
        Error::HashMismatch {
            offset: self.offset,
            section: index,
            claimed: Box::new(*cid),
            computed: Box::new(cids::computed(cid, data)),
        }
    }

    fn check(&self, cid: &Cid, data: &[u8], cid_offset: u64, index: u64) -> Result<()> {
        if self.options.cid_mode == CidMode::Permissive && !cids::can_hash(cid) {
            return Err(Error::InvalidCid {
                offset: cid_offset,
                section: Some(index),
                problem: cids::CidProblem::HashFunction { found: cid.hash().code() },
            });
        }
        cids::check(cid, data).map_err(|computed| Error::HashMismatch {
            offset: self.offset,
            section: index,
            claimed: Box::new(*cid),
            computed,
        })
    }

    /// Reads a length varint. `Ok(None)` means more input is needed.
    fn length(
        &self,
        input: &[u8],
        eof: bool,
        item: Item,
        section: Option<u64>,
    ) -> Result<Option<(u64, usize)>> {
        let offset = self.offset;
        match varint::decode(input) {
            Ok(Varint::Complete(len, varint_len)) => Ok(Some((len, varint_len))),
            Ok(Varint::Partial) if eof => {
                Err(Error::Truncated { item, offset, section, needed: 1 })
            }
            Ok(Varint::Partial) => Ok(None),
            Err(problem) => Err(Error::Varint { item, offset, section, problem }),
        }
    }

    /// The size of an item with its varint, checked against the total limit.
    fn item_total(&self, varint_len: usize, len: u64, section: Option<u64>) -> Result<usize> {
        let max = self.options.limits.max_total_bytes;
        let end = self.offset.saturating_add(varint_len as u64).saturating_add(len);
        let total = usize::try_from(len).ok().and_then(|len| len.checked_add(varint_len));
        match total {
            Some(total) if end <= max => Ok(total),
            _ => Err(Error::LimitExceeded {
                limit: Limit::TotalBytes,
                max,
                found: end,
                offset: self.offset,
                section,
            }),
        }
    }

    /// The first `total` bytes of `input`; `Ok(None)` if more are needed.
    fn whole_item<'a>(
        &self,
        input: &'a [u8],
        total: usize,
        eof: bool,
        item: Item,
        section: Option<u64>,
    ) -> Result<Option<&'a [u8]>> {
        match input.get(..total) {
            Some(bytes) => Ok(Some(bytes)),
            None if eof => Err(Error::Truncated {
                item,
                offset: self.offset,
                section,
                needed: total.saturating_sub(input.len()) as u64,
            }),
            None => Ok(None),
        }
    }
}

/// More input is needed to finish a varint: one more byte at least.
fn partial_after(input: &[u8]) -> Status<'static> {
    Status::Partial { needed: input.len().saturating_add(1) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cids::{CidProblem, DAG_CBOR, blessed_cid};
    use crate::error::Limit;
    use crate::options::Limits;
    use crate::varint::VarintError;
    use crate::writer::encode;

    /// A CAR of the given blocks, rooted at the first (or at `b"r"`).
    fn car(blocks: &[&[u8]]) -> (Vec<u8>, usize) {
        let cids: Vec<_> = blocks.iter().map(|b| blessed_cid(DAG_CBOR, b)).collect();
        let root = cids.first().copied().unwrap_or_else(|| blessed_cid(DAG_CBOR, b"r"));
        let header = Header::new(vec![root]).unwrap();
        let header_len = 1 + header.to_cbor().len();
        (encode(&header, cids.iter().zip(blocks).map(|(c, b)| (c, *b))), header_len)
    }

    /// Decodes the header of `input` and returns the decoder and the rest.
    fn past_header(input: &[u8], options: Options) -> (Decoder, &[u8]) {
        let mut d = Decoder::new(options);
        match d.decode(input, false).unwrap() {
            Status::Header { consumed, .. } => (d, &input[consumed..]),
            other => panic!("{other:?}"),
        }
    }

    fn needed(status: Result<Status<'_>>) -> usize {
        match status {
            Ok(Status::Partial { needed }) => needed,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_asks_for_what_the_next_item_needs() {
        let (bytes, h) = car(&[b"block"]);
        let mut d = Decoder::new(Options::default());
        // Nothing yet, then half a header: the varint, then the whole header.
        assert_eq!(needed(d.decode(&[], false)), 1);
        assert_eq!(needed(d.decode(&bytes[..1], false)), h);
        assert_eq!(needed(d.decode(&bytes[..h - 1], false)), h);
        let (mut d, rest) = past_header(&bytes, Options::default());
        // A section length split inside a varint, then inside the section.
        assert_eq!(needed(d.decode(&[], false)), 1);
        assert_eq!(needed(d.decode(&rest[..1], false)), rest.len());
        assert_eq!(needed(d.decode(&rest[..rest.len() - 1], false)), rest.len());
        assert!(
            matches!(d.decode(rest, false), Ok(Status::Frame { consumed, .. }) if consumed == rest.len())
        );
        assert_eq!(d.blocks(), 1);
        assert_eq!(d.offset(), bytes.len() as u64);
        // Without eof the decoder cannot know the CAR ended.
        assert_eq!(needed(d.decode(&[], false)), 1);
        assert!(matches!(d.decode(&[], true), Ok(Status::End)));
        assert!(matches!(d.decode(b"more", false), Ok(Status::End)), "End is sticky");
    }

    #[test]
    fn a_multi_byte_section_varint_is_asked_for_a_byte_at_a_time() {
        let big = vec![7; 300];
        let (bytes, _) = car(&[&big]);
        let (mut d, rest) = past_header(&bytes, Options::default());
        assert_eq!(needed(d.decode(&rest[..1], false)), 2);
        assert_eq!(needed(d.decode(&rest[..2], false)), rest.len());
    }

    #[test]
    fn eof_turns_every_partial_into_truncated() {
        let (bytes, h) = car(&[b"block"]);
        let at = |input: &[u8]| Decoder::new(Options::default()).decode(input, true).unwrap_err();
        assert!(matches!(
            at(&[]),
            Error::Truncated { item: Item::HeaderLength, offset: 0, section: None, needed: 1 }
        ));
        assert!(
            matches!(at(&bytes[..5]), Error::Truncated { item: Item::Header, needed, .. } if needed == h as u64 - 5)
        );
        let (mut d, rest) = past_header(&bytes, Options::default());
        let h = h as u64;
        assert!(matches!(
            d.decode(&[0x80], true),
            Err(Error::Truncated { item: Item::SectionLength, offset, section: Some(0), needed: 1 }) if offset == h
        ));
        assert!(matches!(
            d.decode(&rest[..3], true),
            Err(Error::Truncated { item: Item::Section, offset, section: Some(0), needed }) if offset == h && needed == rest.len() as u64 - 3
        ));
    }

    #[test]
    fn an_error_leaves_the_decoder_where_it_was() {
        let (bytes, _) = car(&[b"a", b"b"]);
        let (mut d, rest) = past_header(&bytes, Options::default());
        let mut bad = rest.to_vec();
        *bad.last_mut().unwrap() ^= 1;
        let Ok(Status::Frame { consumed, .. }) = d.decode(&bad, false) else { panic!() };
        let (offset, blocks) = (d.offset(), d.blocks());
        for _ in 0..2 {
            let err = d.decode(&bad[consumed..], true).unwrap_err();
            assert!(matches!(err, Error::HashMismatch { section: 1, .. }));
            assert_eq!((d.offset(), d.blocks()), (offset, blocks));
        }
        // The good bytes still decode from the same state.
        assert!(matches!(d.decode(&rest[consumed..], true), Ok(Status::Frame { .. })));
    }

    #[test]
    fn header_length_errors() {
        let at = |input: &[u8], limits: Limits| {
            Decoder::new(Options::default().limits(limits)).decode(input, false).unwrap_err()
        };
        let l = Limits::default();
        assert!(matches!(
            at(&[0x00], l),
            Error::InvalidHeader { offset: 1, expected: "a non-empty header" }
        ));
        assert!(matches!(
            at(&[0x80, 0x00], l),
            Error::Varint { item: Item::HeaderLength, problem: VarintError::NotMinimal, .. }
        ));
        assert!(matches!(
            at(&[0xff; 9], l),
            Error::Varint { item: Item::HeaderLength, problem: VarintError::TooLong, .. }
        ));
        // Limits are checked on the varint alone, before the bytes arrive.
        assert!(matches!(
            at(&[0x81, 0x20], l),
            Error::LimitExceeded {
                limit: Limit::HeaderLength,
                max: 4096,
                found: 4097,
                offset: 0,
                section: None
            }
        ));
        assert!(matches!(
            at(&[0x3a], l.max_total_bytes(58)),
            Error::LimitExceeded {
                limit: Limit::TotalBytes,
                max: 58,
                found: 59,
                offset: 0,
                section: None
            }
        ));
    }

    #[test]
    fn section_length_errors_come_before_the_section_bytes() {
        let (bytes, h) = car(&[b"a", b"b"]);
        let h = h as u64;
        let at = |input: &[u8], limits: Limits| {
            let (mut d, _) = past_header(&bytes, Options::default().limits(limits));
            d.decode(input, false).unwrap_err()
        };
        let l = Limits::default();
        assert!(matches!(
            at(&[0x80, 0x80, 0x00], l),
            Error::Varint { item: Item::SectionLength, offset, section: Some(0), problem: VarintError::NotMinimal } if offset == h
        ));
        assert!(matches!(
            at(&[0x80, 0x80, 0x80, 0x02], l),
            Error::LimitExceeded {
                limit: Limit::SectionLength,
                found: 0x40_0000,
                section: Some(0),
                ..
            }
        ));
        assert!(matches!(
            at(&[37], l.max_blocks(0)),
            Error::LimitExceeded { limit: Limit::Blocks, max: 0, found: 1, section: Some(0), .. }
        ));
        assert!(matches!(
            at(&[37], l.max_total_bytes(h + 37)),
            Error::LimitExceeded { limit: Limit::TotalBytes, found, section: Some(0), .. } if found == h + 38
        ));
    }

    #[test]
    fn section_content_errors() {
        let (bytes, h) = car(&[b"a"]);
        let h = h as u64;
        let (mut d, rest) = past_header(&bytes, Options::default());
        assert!(matches!(
            d.decode(&[0x01, 0x01], false),
            Err(Error::InvalidCid { offset, section: Some(0), problem: CidProblem::Truncated }) if offset == h + 1
        ));
        let mut bad = rest.to_vec();
        bad[rest.len() - 1] = b'b';
        match d.decode(&bad, true) {
            Err(Error::HashMismatch { offset, section: 0, claimed, computed }) => {
                assert_eq!(offset, h);
                assert_eq!(*claimed, blessed_cid(DAG_CBOR, b"a"));
                assert_eq!(*computed, blessed_cid(DAG_CBOR, b"b"));
            }
            other => panic!("{other:?}"),
        }
        // Unchecked trusts the CID.
        let (mut d, _) = past_header(&bytes, Options::default().unchecked());
        assert!(matches!(d.decode(&bad, true), Ok(Status::Frame { .. })));
    }

    #[test]
    fn permissive_mode_refuses_what_it_cannot_hash_unless_unchecked() {
        let (bytes, h) = car(&[]);
        let mut section = vec![0x01, 0x71, 0x1e, 0x20];
        section.extend([0; 32]);
        section.push(b'x');
        section.insert(0, 37);
        let permissive = Options::default().cid_mode(CidMode::Permissive);
        let (mut d, _) = past_header(&bytes, permissive);
        assert!(matches!(
            d.decode(&section, true),
            Err(Error::InvalidCid { offset, section: Some(0), problem: CidProblem::HashFunction { found: 0x1e } }) if offset == h as u64 + 1
        ));
        let (mut d, _) = past_header(&bytes, permissive.unchecked());
        assert!(
            matches!(d.decode(&section, true), Ok(Status::Frame { frame, .. }) if frame.data == b"x")
        );
    }

    #[test]
    fn frames_carry_their_offset_and_index() {
        let (bytes, h) = car(&[b"a", b"bb"]);
        let (mut d, mut rest) = past_header(&bytes, Options::default());
        let mut seen = Vec::new();
        while let Ok(Status::Frame { frame, consumed }) = d.decode(rest, true) {
            seen.push((frame.offset, frame.index, frame.data.to_vec()));
            rest = &rest[consumed..];
        }
        let h = h as u64;
        assert_eq!(seen, [(h, 0, b"a".to_vec()), (h + 38, 1, b"bb".to_vec())]);
    }
}
