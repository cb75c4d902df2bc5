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
    /// `buf[..filled]` holds bytes read and not yet decoded. Past that,
    /// `buf[filled..]` holds zeroes for the sync reader to read into (safe
    /// code cannot read into uninitialised memory); they are kept across
    /// short reads, so each byte of the buffer is zeroed once, not once
    /// per `read` call.
    buf: BytesMut,
    filled: usize,
    eof: bool,
}

impl Buffered {
    pub(crate) fn new(options: Options) -> Self {
        Buffered { decoder: Decoder::new(options), buf: BytesMut::new(), filled: 0, eof: false }
    }

    pub(crate) fn step(&mut self) -> Result<Step> {
        let input = self.buf.get(..self.filled).unwrap_or_default();
        match self.decoder.decode(input, self.eof)? {
            Status::Header { header, consumed } => {
                self.buf.advance(consumed);
                self.filled = self.filled.saturating_sub(consumed);
                Ok(Step::Header(header))
            }
            Status::Frame { frame, consumed } => {
                let (cid, offset, index, len) =
                    (frame.cid, frame.offset, frame.index, frame.data.len());
                // Split off the section and drop its varint and CID while it
                // is still a `BytesMut`: no reference count is touched for
                // that, where `Bytes::slice` took and dropped one.
                let mut section = self.buf.split_to(consumed);
                section.advance(consumed.saturating_sub(len));
                self.filled = self.filled.saturating_sub(consumed);
                let data = section.freeze();
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
        self.decoder.offset().saturating_add(self.filled as u64)
    }

    /// Bytes read and not yet decoded.
    pub(crate) fn len(&self) -> usize {
        self.filled
    }

    /// The target size of the filled part: `needed`, or one read chunk
    /// more than is filled if that is more.
    fn target(&self, needed: usize) -> usize {
        needed.max(self.filled.saturating_add(READ_CHUNK))
    }

    /// Makes room up to the target size and returns the buffer, holding
    /// only the filled bytes, with how many bytes the caller may append:
    /// never past the target. For the async reader, which appends to the
    /// buffer's spare capacity and then calls [`appended`](Self::appended).
    ///
    /// The capacity is exactly the target when the buffer has to grow.
    /// `BytesMut::reserve` would round up (it may double the old allocation),
    /// and the readers would then read into all of it: two sections' worth
    /// where the limits promise one.
    // See: limits::read_ahead_is_bounded_by_one_section_and_one_chunk
    // (tests/it/limits.rs), which caught a 3.8 MB read with a 2 MiB cap.
    pub(crate) fn reserve(&mut self, needed: usize) -> (&mut BytesMut, usize) {
        let want = self.target(needed);
        self.buf.truncate(self.filled);
        let additional = want.saturating_sub(self.filled);
        if !self.buf.try_reclaim(additional) {
            // `needed` is at most one item and its varint, each checked
            // against `Limits` by the decoder before it asks for them.
            let mut grown = BytesMut::with_capacity(want);
            grown.extend_from_slice(&self.buf);
            self.buf = grown;
        }
        (&mut self.buf, additional)
    }

    /// Counts what the async reader appended to the buffer as filled.
    #[cfg(feature = "tokio")]
    pub(crate) fn appended(&mut self) {
        self.filled = self.buf.len();
    }

    /// A zeroed slice for the sync reader to read into, up to the target
    /// size; call [`filled`](Self::filled) with how much was read. Zeroes
    /// left over from a short read are handed out again rather than made
    /// anew.
    // See: buffered::tests::short_reads_reuse_the_zeroed_slot. A source
    // that returned small reads (a socket's segments, 1-byte test reads)
    // cost zeroing a whole read chunk per read.
    pub(crate) fn read_slot(&mut self, needed: usize) -> &mut [u8] {
        let want = self.target(needed);
        if self.buf.len() <= self.filled {
            let (buf, room) = self.reserve(needed);
            let len = buf.len();
            buf.resize(len.saturating_add(room), 0);
        }
        let end = want.min(self.buf.len());
        self.buf.get_mut(self.filled..end).unwrap_or_default()
    }

    /// Counts `n` more bytes of the read slot as filled.
    pub(crate) fn filled(&mut self, n: usize) {
        self.filled = self.filled.saturating_add(n).min(self.buf.len());
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
                    let slot = inner.read_slot(needed);
                    let n = slot.len().min(rest.len());
                    slot[..n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    inner.filled(n);
                    largest = largest.max(inner.buf.capacity());
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

    // See: the comment on `Buffered::read_slot`.
    #[test]
    fn short_reads_reuse_the_zeroed_slot() {
        let mut inner = Buffered::new(Options::default());
        let slot = inner.read_slot(1);
        let (start, len) = (slot.as_ptr() as usize, slot.len());
        assert_eq!(len, READ_CHUNK);
        slot[0] = 0x3a;
        inner.filled(1);
        // The decoder wants the rest of a 58-byte header.
        let Ok(Step::Need(needed)) = inner.step() else { panic!() };
        assert_eq!(needed, 59);
        for i in 1..59 {
            let slot = inner.read_slot(needed);
            // The same zeroes, one byte on: nothing was zeroed again.
            assert_eq!(slot.as_ptr() as usize, start + i);
            assert_eq!(slot.len(), len - i);
            assert!(slot.iter().all(|&b| b == 0));
            inner.filled(1);
        }
        assert_eq!(inner.len(), 59);
    }
}
