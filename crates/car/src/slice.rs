//! [`CarSlice`]: zero-copy reading of a CAR held in memory.

use crate::decoder::{Decoder, Frame, Status};
use crate::error::{Error, Item, Result};
use crate::header::Header;
use crate::options::Options;

/// Reads a CAR from a byte slice, yielding blocks that borrow from it.
///
/// The header is decoded by the constructor; iteration yields one
/// `Result<Frame>` per section and stops after the first error.
///
/// ```
/// use atrepo_car::{CarSlice, CarWriter, Header, blessed_cid, DAG_CBOR};
///
/// let cid = blessed_cid(DAG_CBOR, b"\xa0");
/// let mut w = CarWriter::new(Vec::new(), &Header::new(vec![cid]).unwrap())?;
/// w.write(&cid, b"\xa0")?;
/// let car = w.finish()?;
///
/// let slice = CarSlice::new(&car)?;
/// assert_eq!(slice.header().root(), cid);
/// for frame in slice {
///     let frame = frame?;
///     assert_eq!(frame.data, b"\xa0");
/// }
/// # Ok::<(), atrepo_car::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CarSlice<'a> {
    rest: &'a [u8],
    decoder: Decoder,
    header: Header,
    done: bool,
}

impl<'a> CarSlice<'a> {
    /// Reads the header of `input` with the default [`Options`].
    pub fn new(input: &'a [u8]) -> Result<Self> {
        Self::with_options(input, Options::default())
    }

    /// Reads the header of `input` with the given options.
    pub fn with_options(input: &'a [u8], options: Options) -> Result<Self> {
        let mut decoder = Decoder::new(options);
        match decoder.decode(input, true)? {
            Status::Header { header, consumed } => Ok(CarSlice {
                rest: input.get(consumed..).unwrap_or_default(),
                decoder,
                header,
                done: false,
            }),
            // A fresh decoder always starts with the header, and with
            // `eof = true` it never asks for more input.
            _ => Err(Error::Truncated { item: Item::Header, offset: 0, section: None, needed: 1 }),
        }
    }

    /// The CAR's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Absolute offset of the next section.
    pub fn offset(&self) -> u64 {
        self.decoder.offset()
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for CarSlice<'a> {
    type Item = Result<Frame<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.decoder.decode(self.rest, true) {
            Ok(Status::Frame { frame, consumed }) => {
                self.rest = self.rest.get(consumed..).unwrap_or_default();
                Some(Ok(frame))
            }
            Ok(_) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for CarSlice<'_> {}
