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

    /// Makes room for `needed` buffered bytes, or one read chunk more than
    /// is buffered if that is more, and returns the buffer with how many
    /// bytes the caller may read into it: never past that target.
    ///
    /// The capacity is exactly the target when the buffer has to grow.
    /// `BytesMut::reserve` would round up (it may double the old allocation),
    /// and the readers would then read into all of it: two sections' worth
    /// where the limits promise one.
    // See: limits::read_ahead_is_bounded_by_one_section_and_one_chunk
    // (tests/it/limits.rs), which caught a 3.8 MB read with a 2 MiB cap.
    pub(crate) fn reserve(&mut self, needed: usize) -> (&mut BytesMut, usize) {
        let len = self.buf.len();
        let want = needed.max(len.saturating_add(READ_CHUNK));
        let additional = want.saturating_sub(len);
        if !self.buf.try_reclaim(additional) {
            // `needed` is at most one item and its varint, each checked
            // against `Limits` by the decoder before it asks for them.
            let mut grown = BytesMut::with_capacity(want);
            grown.extend_from_slice(&self.buf);
            self.buf = grown;
        }
        (&mut self.buf, additional)
    }

    pub(crate) fn set_eof(&mut self) {
        self.eof = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cids::{DAG_CBOR, blessed_cid};
    use crate::options::Limits;
    use crate::writer::encode;

    /// Reads `car` through a `Buffered` the way the stream readers do, from
    /// a source that always fills what it is offered, and returns the
    /// largest capacity the buffer had.
    fn largest_capacity(car: &[u8], keep: bool) -> usize {
        let mut inner = Buffered::new(Options::default());
        let mut rest = car;
        let mut kept = Vec::new();
        let mut largest = 0;
        loop {
            match inner.step().unwrap() {
                Step::Header(_) => {}
                Step::Block(block) => {
                    if keep {
                        kept.push(block);
                    }
                }
                Step::End => return largest,
                Step::Need(needed) => {
                    let (buf, room) = inner.reserve(needed);
                    largest = largest.max(buf.capacity());
                    let n = room.min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if n == 0 {
                        inner.set_eof();
                    }
                }
            }
        }
    }

    // See: limits::read_ahead_is_bounded_by_one_section_and_one_chunk
    // (tests/it/limits.rs): `BytesMut::reserve` doubled the buffer.
    #[test]
    #[allow(clippy::cast_possible_truncation)] // Fixed sizes of a few MiB; byte fill wraps on purpose.
    fn capacity_stays_within_one_section_and_one_chunk() {
        let max = Limits::DEFAULT_MAX_SECTION_LEN as usize;
        // Small, full-size, half-size and almost-full sections: a mix that
        // made `BytesMut::reserve` double its allocation.
        let sizes = [100_000, max - 36, 1, max / 2, max - 36, 700_000, max - 37, max - 36, 3];
        let blocks: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![n as u8; n]).collect();
        let cids: Vec<_> = blocks.iter().map(|b| blessed_cid(DAG_CBOR, b)).collect();
        let header = Header::new(vec![cids[0]]).unwrap();
        let car = encode(&header, cids.iter().zip(&blocks).map(|(c, b)| (c, &b[..])));
        let bound = max + crate::varint::MAX_VARINT_LEN + READ_CHUNK;
        for keep in [false, true] {
            let largest = largest_capacity(&car, keep);
            assert!(largest <= bound, "capacity {largest} > {bound} (keep = {keep})");
        }
    }
}
