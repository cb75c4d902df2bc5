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
    pub fn decode<'a>(&mut self, input: &'a [u8], eof: bool) -> Result<Status<'a>> {
        match self.state {
            State::Header => self.decode_header(input, eof),
            State::Sections => self.decode_section(input, eof),
            State::Done => Ok(Status::End),
        }
    }

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
        let cid_offset = cursor.offset();
        let cid = cids::read(&mut cursor, self.options.cid_mode)
            .map_err(|problem| Error::InvalidCid { offset: cid_offset, section, problem })?;
        let data = cursor.rest();
        if self.options.hash_check == HashCheck::Verify {
            self.check(&cid, data, cid_offset, index)?;
        }
        let frame = Frame { cid, data, offset: self.offset, index };
        self.offset = self.offset.saturating_add(total as u64);
        self.blocks = index.saturating_add(1);
        Ok(Status::Frame { frame, consumed: total })
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
