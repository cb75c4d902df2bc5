//! [`CarReader`]: reading a CAR from any [`std::io::Read`].

use std::io::{ErrorKind as IoKind, Read};

use crate::buffered::{Block, Buffered, Step};
use crate::error::{Error, Item, Result};
use crate::header::Header;
use crate::options::Options;

/// Reads a CAR from a [`Read`] source, one block at a time.
///
/// Memory is bounded by the largest section the [`Limits`](crate::Limits)
/// allow plus one read chunk. Blocks are [`Block`]s whose bytes share the
/// reader's buffer.
///
/// ```
/// use atrepo_car::{CarReader, CarWriter, Header, blessed_cid, DAG_CBOR};
///
/// let cid = blessed_cid(DAG_CBOR, b"\xa0");
/// let mut w = CarWriter::new(Vec::new(), &Header::new(vec![cid]).unwrap())?;
/// w.write(&cid, b"\xa0")?;
/// let car = w.finish()?;
///
/// let reader = CarReader::new(&car[..])?;
/// let blocks: Vec<_> = reader.collect::<Result<_, _>>()?;
/// assert_eq!(blocks[0].cid, cid);
/// # Ok::<(), atrepo_car::Error>(())
/// ```
#[derive(Debug)]
pub struct CarReader<R> {
    source: R,
    inner: Buffered,
    header: Header,
    done: bool,
}

impl<R: Read> CarReader<R> {
    /// Reads the header with the default [`Options`].
    pub fn new(source: R) -> Result<Self> {
        Self::with_options(source, Options::default())
    }

    /// Reads the header with the given options.
    pub fn with_options(mut source: R, options: Options) -> Result<Self> {
        let mut inner = Buffered::new(options);
        loop {
            match inner.step()? {
                Step::Header(header) => {
                    return Ok(CarReader { source, inner, header, done: false });
                }
                Step::Need(needed) => fill(&mut source, &mut inner, needed)?,
                // The decoder yields the header before anything else.
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
    pub fn next_block(&mut self) -> Result<Option<Block>> {
        if self.done {
            return Ok(None);
        }
        let result = self.advance();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn advance(&mut self) -> Result<Option<Block>> {
        loop {
            match self.inner.step()? {
                Step::Block(block) => return Ok(Some(block)),
                Step::End => return Ok(None),
                Step::Need(needed) => fill(&mut self.source, &mut self.inner, needed)?,
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

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<Block>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

impl<R: Read> std::iter::FusedIterator for CarReader<R> {}

/// Reads from `source` until `inner` holds `needed` bytes or the source ends.
fn fill<R: Read>(source: &mut R, inner: &mut Buffered, needed: usize) -> Result<()> {
    while inner.len() < needed {
        let offset = inner.read_offset();
        let slot = inner.read_slot(needed);
        let room = slot.len();
        match source.read(slot) {
            Ok(0) => {
                inner.set_eof();
                return Ok(());
            }
            // A reader claiming more than it was given is not trusted.
            Ok(n) => inner.filled(n.min(room)),
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return Err(Error::Io { offset, source: e }),
        }
    }
    Ok(())
}
