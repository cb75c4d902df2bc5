//! The buffering shared by the sync and async stream readers: a
//! [`Decoder`] over a [`BytesMut`] that hands out blocks as [`Bytes`]
//! without copying them.

use bytes::{Buf, Bytes, BytesMut};
use cid::Cid;

use crate::decoder::{Decoder, Status};
use crate::error::Result;
use crate::header::Header;
use crate::options::Options;

/// How much a stream reader asks its source for at a time, at least.
pub(crate) const READ_CHUNK: usize = 128 * 1024;

/// An owned block read from a stream.
///
/// `data` shares the reader's buffer (reference counted), so reading copies
/// nothing; holding on to a small block keeps its read chunk alive until it
/// is dropped. Use [`Bytes::copy_from_slice`] to detach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's CID, checked against `data` unless hashing is off.
    pub cid: Cid,
    /// The block bytes.
    pub data: Bytes,
    /// Absolute offset of the section in the CAR.
    pub offset: u64,
    /// Zero-based index of the section.
    pub index: u64,
}

/// What the buffered decoder needs next.
pub(crate) enum Step {
    Header(Header),
    Block(Block),
    /// Read until the buffer holds at least this many bytes, or EOF.
    Need(usize),
    End,
}

#[derive(Debug)]
pub(crate) struct Buffered {
    decoder: Decoder,
    buf: BytesMut,
    eof: bool,
}

impl Buffered {
    pub(crate) fn new(options: Options) -> Self {
        Buffered { decoder: Decoder::new(options), buf: BytesMut::new(), eof: false }
    }

    pub(crate) fn step(&mut self) -> Result<Step> {
        match self.decoder.decode(&self.buf, self.eof)? {
            Status::Header { header, consumed } => {
                self.buf.advance(consumed);
                Ok(Step::Header(header))
            }
            Status::Frame { frame, consumed } => {
                let (cid, offset, index, len) =
                    (frame.cid, frame.offset, frame.index, frame.data.len());
                let section = self.buf.split_to(consumed).freeze();
                let data = section.slice(consumed.saturating_sub(len)..);
                Ok(Step::Block(Block { cid, data, offset, index }))
            }
            Status::Partial { needed } => Ok(Step::Need(needed)),
            Status::End => Ok(Step::End),
        }
    }

    /// Offset of the first byte not yet decoded.
    pub(crate) fn offset(&self) -> u64 {
        self.decoder.offset()
    }

    /// Offset of the end of what has been read from the source.
    pub(crate) fn read_offset(&self) -> u64 {
        self.decoder.offset().saturating_add(self.buf.len() as u64)
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Makes room for at least `needed` buffered bytes plus a read chunk and
    /// returns the buffer to read into.
    pub(crate) fn reserve(&mut self, needed: usize) -> &mut BytesMut {
        let want = needed.max(self.buf.len().saturating_add(READ_CHUNK));
        self.buf.reserve(want.saturating_sub(self.buf.len()));
        &mut self.buf
    }

    pub(crate) fn set_eof(&mut self) {
        self.eof = true;
    }
}
