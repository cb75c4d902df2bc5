//! [`CarWriter`]: writing CAR v1, and the sans-IO [`Encoder`] it shares with
//! the async writer.

use std::io::Write;

use cid::Cid;

use crate::error::{Error, Result};
use crate::header::Header;
use crate::varint;

/// Produces the framing bytes of a CAR; the caller writes them and the block
/// bytes wherever it likes. Keeps the running offset for error messages.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    scratch: Vec<u8>,
    offset: u64,
}

impl Encoder {
    /// The length varint and DAG-CBOR bytes of `header`.
    pub(crate) fn header(&mut self, header: &Header) -> &[u8] {
        let cbor = header.to_cbor();
        self.scratch.clear();
        varint::encode(cbor.len() as u64, &mut self.scratch);
        self.scratch.extend(cbor);
        &self.scratch
    }

    pub(crate) fn advance_header(&mut self) {
        self.offset = self.offset.saturating_add(self.scratch.len() as u64);
    }

    /// The length varint and CID bytes that precede a block of `data_len`.
    pub(crate) fn section_prefix(&mut self, cid: &Cid, data_len: usize) -> &[u8] {
        self.scratch.clear();
        let cid_len = cid.encoded_len();
        varint::encode(cid_len.saturating_add(data_len) as u64, &mut self.scratch);
        // Writing into a Vec cannot fail.
        let _ = cid.write_bytes(&mut self.scratch);
        &self.scratch
    }

    pub(crate) fn advance_section(&mut self, data_len: usize) {
        let len = self.scratch.len().saturating_add(data_len);
        self.offset = self.offset.saturating_add(len as u64);
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
}

/// Writes a CAR v1 to any [`Write`] sink.
///
/// The output is exactly what the readers accept: a canonical header, then
/// one minimal-varint section per block. The writer does not hash: the
/// caller vouches that each CID matches its block. Wrap unbuffered sinks in
/// a [`std::io::BufWriter`]; each block is two `write_all` calls, and the
/// block bytes are never copied.
#[derive(Debug)]
pub struct CarWriter<W> {
    sink: W,
    encoder: Encoder,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header and returns a writer for the blocks.
    pub fn new(mut sink: W, header: &Header) -> Result<Self> {
        let mut encoder = Encoder::default();
        sink.write_all(encoder.header(header)).map_err(|source| Error::Io { offset: 0, source })?;
        encoder.advance_header();
        Ok(CarWriter { sink, encoder })
    }

    /// Writes one block.
    pub fn write(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        let offset = self.encoder.offset();
        let io = |source| Error::Io { offset, source };
        self.sink.write_all(self.encoder.section_prefix(cid, data.len())).map_err(io)?;
        self.sink.write_all(data).map_err(io)?;
        self.encoder.advance_section(data.len());
        Ok(())
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.encoder.offset()
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        let offset = self.encoder.offset();
        self.sink.flush().map_err(|source| Error::Io { offset, source })?;
        Ok(self.sink)
    }
}

/// Encodes a whole CAR in memory: a convenience over [`CarWriter`].
pub fn encode<'a>(
    header: &Header,
    blocks: impl IntoIterator<Item = (&'a Cid, &'a [u8])>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = Encoder::default();
    out.extend_from_slice(encoder.header(header));
    for (cid, data) in blocks {
        out.extend_from_slice(encoder.section_prefix(cid, data.len()));
        out.extend_from_slice(data);
    }
    out
}
