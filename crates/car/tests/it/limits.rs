//! Limits bound what the stream readers read and buffer: a length that
//! breaks a limit is refused right after its varint is read, before any of
//! the bytes it claims, and a reader never holds more than one section
//! (with its varint) plus one read chunk beyond what it has yielded. A
//! source is not trusted beyond the buffer it was given.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use atrepo_car::{CarReader, Item, Limit, Limits, Options};

use crate::common::*;

/// The readers' read chunk (the crate-private `buffered::READ_CHUNK`).
const READ_CHUNK: u64 = 128 * 1024;
/// The longest varint.
const MAX_VARINT: u64 = 9;
const MAX_SECTION: u64 = Limits::DEFAULT_MAX_SECTION_LEN;

/// What a [`Counting`] source has seen.
#[derive(Debug, Default)]
struct Stats {
    /// Bytes handed out.
    read: Cell<u64>,
    /// The largest buffer a `read` call was given.
    largest_buf: Cell<u64>,
}

/// A source of `prefix` followed by `tail` bytes of `fill` (without
/// materialising them), giving at most `chunk` bytes per read.
#[derive(Debug)]
struct Counting {
    prefix: Vec<u8>,
    pos: u64,
    tail: u64,
    fill: u8,
    chunk: usize,
    stats: Rc<Stats>,
}

impl Counting {
    fn new(prefix: Vec<u8>, tail: u64, chunk: usize) -> (Self, Rc<Stats>) {
        let stats = Rc::new(Stats::default());
        (Counting { prefix, pos: 0, tail, fill: 0, chunk, stats: stats.clone() }, stats)
    }
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s = &self.stats;
        s.largest_buf.set(s.largest_buf.get().max(buf.len() as u64));
        let total = self.prefix.len() as u64 + self.tail;
        let n = (buf.len().min(self.chunk) as u64).min(total - self.pos) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.pos + i as u64;
            *b = self.prefix.get(at as usize).copied().unwrap_or(self.fill);
        }
        self.pos += n as u64;
        s.read.set(s.read.get() + n as u64);
        Ok(n)
    }
}

/// The header then `varint(len)`.
fn claim(len: u64) -> Vec<u8> {
    cat(&[&framed(&header()), &varint(len)])
}

fn header_len() -> u64 {
    framed(&header()).len() as u64
}

#[test]
fn a_2_pow_40_byte_section_is_refused_after_its_varint() {
    // Byte by byte, the reader stops exactly after the varint.
    let (source, stats) = Counting::new(claim(1 << 40), 1 << 41, 1);
    let err = CarReader::new(source).unwrap().next_block().unwrap_err();
    assert_eq!(
        E::from(&err),
        E::LimitExceeded {
            limit: Limit::SectionLength,
            max: MAX_SECTION,
            found: 1 << 40,
            offset: header_len(),
            section: Some(0),
        }
    );
    assert_eq!(stats.read.get(), header_len() + 6);

    // Given everything it asks for, it reads at most one chunk.
    let (source, stats) = Counting::new(claim(1 << 40), 1 << 41, usize::MAX);
    let err = CarReader::new(source).unwrap().next_block().unwrap_err();
    assert!(matches!(E::from(&err), E::LimitExceeded { limit: Limit::SectionLength, .. }));
    assert!(stats.read.get() <= READ_CHUNK + header_len(), "read {}", stats.read.get());
}

#[test]
fn a_3_mib_section_over_a_2_mib_cap_errors_before_its_bytes_are_read() {
    let len = 3 << 20;
    let (source, stats) = Counting::new(claim(len), len, usize::MAX);
    let err = CarReader::new(source).unwrap().next_block().unwrap_err();
    assert_eq!(
        E::from(&err),
        E::LimitExceeded {
            limit: Limit::SectionLength,
            max: MAX_SECTION,
            found: len,
            offset: header_len(),
            section: Some(0),
        }
    );
    assert!(stats.read.get() <= READ_CHUNK + header_len(), "read {}", stats.read.get());
    assert!(stats.largest_buf.get() <= READ_CHUNK + header_len(), "{}", stats.largest_buf.get());
}

#[test]
fn a_header_over_its_cap_is_refused_after_its_varint() {
    let (source, stats) = Counting::new(varint(1 << 30), 1 << 31, 1);
    let err = CarReader::new(source).unwrap_err();
    assert_eq!(
        E::from(&err),
        E::LimitExceeded {
            limit: Limit::HeaderLength,
            max: 4096,
            found: 1 << 30,
            offset: 0,
            section: None
        }
    );
    assert_eq!(stats.read.get(), 5);
}

#[test]
fn a_car_over_the_total_cap_is_refused_before_the_section_that_crosses_it() {
    let options = Options::default().limits(Limits::default().max_total_bytes(1 << 20));
    let mut prefix = claim(1 << 20);
    let first_section = prefix.len() as u64 - header_len();
    prefix.extend(blessed(b"x"));
    let (source, stats) = Counting::new(prefix, 1 << 21, 1);
    let err = CarReader::with_options(source, options).unwrap().next_block().unwrap_err();
    assert_eq!(
        E::from(&err),
        E::LimitExceeded {
            limit: Limit::TotalBytes,
            max: 1 << 20,
            found: header_len() + first_section + (1 << 20),
            offset: header_len(),
            section: Some(0),
        }
    );
    assert_eq!(stats.read.get(), header_len() + first_section);
}

/// Where `block`'s section ends (blessed CIDs only).
fn section_end(block: &atrepo_car::Block) -> u64 {
    let body = 36 + block.data.len() as u64;
    block.offset + varint(body).len() as u64 + body
}

/// Sections of sizes that grow, shrink and sit at the cap.
fn big_car() -> (Vec<u8>, Vec<u64>) {
    let cid_len = 36;
    let sizes = [
        100_000,
        MAX_SECTION - cid_len,
        1,
        MAX_SECTION / 2,
        MAX_SECTION - cid_len,
        700_000,
        MAX_SECTION - cid_len - 1,
        MAX_SECTION - cid_len,
        3,
    ];
    let blocks: Vec<Vec<u8>> =
        sizes.iter().enumerate().map(|(i, &n)| vec![i as u8; n as usize]).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    (car(&refs), sizes.to_vec())
}

/// Reads `car` in chunks of `chunk` bytes, keeping every block (`keep`) or
/// dropping each at once, and checks after every block that the reader has
/// read at most one section, its varint and one chunk past that block's end.
fn check_read_ahead(car: &[u8], chunk: usize, keep: bool) {
    let bound = MAX_SECTION + MAX_VARINT + READ_CHUNK;
    let (source, stats) = Counting::new(car.to_vec(), 0, chunk);
    let mut reader = CarReader::new(source).unwrap();
    let mut kept = Vec::new();
    let mut n = 0;
    while let Some(block) = reader.next_block().unwrap() {
        let end = section_end(&block);
        let ahead = stats.read.get().saturating_sub(end);
        assert!(ahead <= bound, "block {n}: read {ahead} bytes ahead, bound {bound}");
        n += 1;
        if keep {
            kept.push(block);
        }
    }
    assert_eq!(stats.read.get(), car.len() as u64);
    assert!(
        stats.largest_buf.get() <= bound,
        "a read was given a {} byte buffer, bound {bound}",
        stats.largest_buf.get()
    );
}

#[test]
fn read_ahead_is_bounded_by_one_section_and_one_chunk() {
    let (car, sizes) = big_car();
    for chunk in [usize::MAX, 4096, 1 << 20] {
        for keep in [false, true] {
            check_read_ahead(&car, chunk, keep);
        }
    }
    let read = via_reader(&car[..], Options::default());
    assert_eq!(read.end, Ok(()));
    assert_eq!(read.blocks.iter().map(|b| b.1.len() as u64).collect::<Vec<_>>(), sizes);
}

#[cfg(feature = "tokio")]
mod with_tokio {
    //! The same bounds for the async reader.

    use super::*;

    /// An `AsyncRead` over `data` that records the largest buffer it is
    /// given and how much it has handed out.
    struct AsyncCounting {
        data: Vec<u8>,
        pos: usize,
        stats: Rc<Stats>,
    }

    impl tokio::io::AsyncRead for AsyncCounting {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            let this = &mut *self;
            let s = &this.stats;
            s.largest_buf.set(s.largest_buf.get().max(buf.remaining() as u64));
            let n = buf.remaining().min(this.data.len() - this.pos);
            buf.put_slice(&this.data[this.pos..this.pos + n]);
            this.pos += n;
            s.read.set(s.read.get() + n as u64);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn async_read_ahead_is_bounded_by_one_section_and_one_chunk() {
        let (car, _) = big_car();
        let bound = MAX_SECTION + MAX_VARINT + READ_CHUNK;
        for keep in [false, true] {
            let stats = Rc::new(Stats::default());
            let source = AsyncCounting { data: car.clone(), pos: 0, stats: stats.clone() };
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let mut reader = atrepo_car::AsyncCarReader::new(source).await.unwrap();
                let mut kept = Vec::new();
                while let Some(block) = reader.next_block().await.unwrap() {
                    let end = section_end(&block);
                    let ahead = stats.read.get().saturating_sub(end);
                    assert!(ahead <= bound, "read {ahead} bytes ahead, bound {bound}");
                    if keep {
                        kept.push(block);
                    }
                }
            });
            assert!(stats.largest_buf.get() <= bound, "buffer of {}", stats.largest_buf.get());
        }
    }

    #[test]
    fn async_a_3_mib_section_errors_before_its_bytes_are_read() {
        let len = 3 << 20;
        let mut data = claim(len);
        data.resize(data.len() + len as usize, 0);
        let stats = Rc::new(Stats::default());
        let source = AsyncCounting { data, pos: 0, stats: stats.clone() };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let err = rt.block_on(async {
            let mut reader = atrepo_car::AsyncCarReader::new(source).await.unwrap();
            reader.next_block().await.unwrap_err()
        });
        assert!(matches!(
            E::from(&err),
            E::LimitExceeded { limit: Limit::SectionLength, found, .. } if found == len
        ));
        assert!(stats.read.get() <= READ_CHUNK + header_len(), "read {}", stats.read.get());
    }
}

/// A truncated stream is an error even when the source ends in the middle
/// of a huge (but allowed) section: no clean end, no waiting for bytes
/// that never come.
#[test]
fn a_stream_ending_inside_a_section_is_truncated() {
    let (source, _) = Counting::new(claim(MAX_SECTION), 1000, 333);
    let err = CarReader::new(source).unwrap().next_block().unwrap_err();
    assert_eq!(
        E::from(&err),
        E::Truncated {
            item: Item::Section,
            offset: header_len(),
            section: Some(0),
            needed: MAX_SECTION + 4 - 4 - 1000,
        }
    );
}

/// A source that fills every buffer it is given to the end, then claims
/// 7 bytes more than the buffer holds: it breaks `Read`'s contract.
struct Liar<'a>(&'a [u8]);

impl Read for Liar<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(if n == buf.len() { n + 7 } else { n })
    }
}

/// Bytes past the buffer a source was given are never counted: the reader
/// reads what was really there, without panicking.
// See: the clamp in `stream::fill` (crates/car/src/stream.rs).
#[test]
fn a_source_claiming_more_than_its_buffer_is_clamped() {
    let blocks: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 9000]).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    let car = car(&refs);
    assert!(car.len() as u64 > 2 * READ_CHUNK, "several full reads");
    let got = via_reader(Liar(&car), Options::default());
    assert_eq!(got, via_slice(&car, Options::default()));
    assert_eq!(got.blocks.len(), 40);
}
