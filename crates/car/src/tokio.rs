//! [`AsyncCarReader`] and [`AsyncCarWriter`]: the stream adapters over
//! tokio's `AsyncRead` and `AsyncWrite`.

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::buffered::{Block, Buffered, Step};
use crate::error::{Error, Item, Result};
use crate::header::Header;
use crate::options::Options;
use crate::writer::Encoder;
use cid::Cid;

/// Reads a CAR from a tokio [`AsyncRead`] source, one block at a time.
///
/// The same decoder and limits as [`CarReader`](crate::CarReader).
#[derive(Debug)]
pub struct AsyncCarReader<R> {
    source: R,
    inner: Buffered,
    header: Header,
    done: bool,
}

impl<R: AsyncRead + Unpin> AsyncCarReader<R> {
    /// Reads the header with the default [`Options`].
    pub async fn new(source: R) -> Result<Self> {
        Self::with_options(source, Options::default()).await
    }

    /// Reads the header with the given options.
    pub async fn with_options(mut source: R, options: Options) -> Result<Self> {
        let mut inner = Buffered::new(options);
        loop {
            match inner.step()? {
                Step::Header(header) => {
                    return Ok(AsyncCarReader { source, inner, header, done: false });
                }
                Step::Need(needed) => fill(&mut source, &mut inner, needed).await?,
                Step::Block(_) | Step::End => {
                    return Err(Error::Truncated {
                        item: Item::Header,
                        offset: 0,
                        section: None,
                        needed: 1,
                    });
                }
            }
        }
    }

    /// The CAR's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Absolute offset of the next section.
    pub fn offset(&self) -> u64 {
        self.inner.offset()
    }

    /// Reads the next block; `Ok(None)` at the clean end of the CAR.
    pub async fn next_block(&mut self) -> Result<Option<Block>> {
        if self.done {
            return Ok(None);
        }
        let result = self.advance().await;
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    async fn advance(&mut self) -> Result<Option<Block>> {
        loop {
            match self.inner.step()? {
                Step::Block(block) => return Ok(Some(block)),
                Step::End => return Ok(None),
                Step::Need(needed) => fill(&mut self.source, &mut self.inner, needed).await?,
                Step::Header(_) => {
                    return Err(Error::InvalidHeader {
                        offset: self.inner.offset(),
                        expected: "a single header",
                    });
                }
            }
        }
    }

    /// Returns the source, dropping anything buffered.
    pub fn into_inner(self) -> R {
        self.source
    }
}

async fn fill<R: AsyncRead + Unpin>(
    source: &mut R,
    inner: &mut Buffered,
    needed: usize,
) -> Result<()> {
    while inner.len() < needed {
        let offset = inner.read_offset();
        let (buf, room) = inner.reserve(needed);
        // Read at most `room` bytes, not into all spare capacity: the reader
        // must not read ahead more than the limits say.
        match source.read_buf(&mut buf.limit(room)).await {
            Ok(0) => {
                inner.set_eof();
                return Ok(());
            }
            Ok(_) => inner.appended(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io { offset, source: e }),
        }
    }
    Ok(())
}

/// Writes a CAR to a tokio [`AsyncWrite`] sink; the async twin of
/// [`CarWriter`](crate::CarWriter), producing the same bytes.
#[derive(Debug)]
pub struct AsyncCarWriter<W> {
    sink: W,
    encoder: Encoder,
}

impl<W: AsyncWrite + Unpin> AsyncCarWriter<W> {
    /// Writes the header and returns a writer for the blocks.
    pub async fn new(mut sink: W, header: &Header) -> Result<Self> {
        let mut encoder = Encoder::default();
        let bytes = encoder.header(header);
        sink.write_all(bytes).await.map_err(|source| Error::Io { offset: 0, source })?;
        encoder.advance_header();
        Ok(AsyncCarWriter { sink, encoder })
    }

    /// Writes one block.
    pub async fn write(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        let offset = self.encoder.offset();
        let prefix = self.encoder.section_prefix(cid, data.len());
        let io = |source| Error::Io { offset, source };
        self.sink.write_all(prefix).await.map_err(io)?;
        self.sink.write_all(data).await.map_err(io)?;
        self.encoder.advance_section(data.len());
        Ok(())
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.encoder.offset()
    }

    /// Flushes and returns the sink.
    pub async fn finish(mut self) -> Result<W> {
        let offset = self.encoder.offset();
        self.sink.flush().await.map_err(|source| Error::Io { offset, source })?;
        Ok(self.sink)
    }
}
