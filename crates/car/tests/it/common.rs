//! Shared helpers: hand-assembled CAR bytes (built from `docs/formats.md`,
//! not from our writer), sources that misbehave on purpose, and one
//! function that reads a CAR through every reader and checks they agree.

use std::io::{self, Read};

use atrepo_car::{
    CarReader, CarSlice, CidProblem, Decoder, Error, Item, Limit, Options, Status, VarintError,
};
use cid::Cid;
use sha2::Digest;

// ---------------------------------------------------------------------------
// Byte builders.

/// The minimal unsigned LEB128 encoding of `n` (docs/formats.md, "Varints").
pub(crate) fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return out;
        }
        out.push(low | 0x80);
    }
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// A binary CIDv1: `varint(1) varint(codec) varint(hash) varint(len) digest`,
/// with the digest length taken from `digest`.
pub(crate) fn cid_v1(codec: u64, hash: u64, digest: &[u8]) -> Vec<u8> {
    let mut out = varint(1);
    out.extend(varint(codec));
    out.extend(varint(hash));
    out.extend(varint(digest.len() as u64));
    out.extend(digest);
    out
}

/// The blessed dag-cbor CID of `data`: `01 71 12 20 <sha256>`.
pub(crate) fn blessed(data: &[u8]) -> Vec<u8> {
    cid_v1(0x71, 0x12, &sha256(data))
}

/// A CIDv0 of `data`: the bare multihash `12 20 <sha256>`.
pub(crate) fn v0(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x12, 0x20];
    out.extend(sha256(data));
    out
}

/// A minimal CBOR head.
pub(crate) fn cbor_head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => {
            let mut v = vec![m | 25];
            v.extend((n as u16).to_be_bytes());
            v
        }
        _ => {
            let mut v = vec![m | 26];
            v.extend((n as u32).to_be_bytes());
            v
        }
    }
}

/// A DAG-CBOR link: `d8 2a` then a byte string of `00` and the CID.
pub(crate) fn link(cid: &[u8]) -> Vec<u8> {
    let mut out = vec![0xd8, 0x2a];
    out.extend(cbor_head(2, cid.len() as u64 + 1));
    out.push(0x00);
    out.extend(cid);
    out
}

/// `"roots"` as a CBOR text string.
pub(crate) const ROOTS_KEY: &[u8] = b"\x65roots";
/// `"version"` as a CBOR text string.
pub(crate) const VERSION_KEY: &[u8] = b"\x67version";

/// The canonical header `{roots: [links...], version}` with the given roots
/// (already encoded as CID bytes).
pub(crate) fn header_with(roots: &[Vec<u8>], version: u8) -> Vec<u8> {
    let mut out = vec![0xa2];
    out.extend(ROOTS_KEY);
    out.extend(cbor_head(4, roots.len() as u64));
    for root in roots {
        out.extend(link(root));
    }
    out.extend(VERSION_KEY);
    out.extend(cbor_head(0, u64::from(version)));
    out
}

/// A valid one-root header's CBOR.
pub(crate) fn header() -> Vec<u8> {
    header_with(&[blessed(b"root")], 1)
}

/// `varint(len) body`: a header or section with its length prefix.
pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = varint(body.len() as u64);
    out.extend(body);
    out
}

/// A section: `varint(len) cid data`.
pub(crate) fn section(cid: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = cid.to_vec();
    body.extend(data);
    framed(&body)
}

/// A section holding `data` under its blessed CID.
pub(crate) fn good(data: &[u8]) -> Vec<u8> {
    section(&blessed(data), data)
}

/// Concatenates parts.
pub(crate) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A valid CAR: the default header then a good section per block.
pub(crate) fn car(blocks: &[&[u8]]) -> Vec<u8> {
    let mut out = framed(&header());
    for b in blocks {
        out.extend(good(b));
    }
    out
}

/// The parsed form of CID bytes built above.
pub(crate) fn cid(bytes: &[u8]) -> Cid {
    Cid::try_from(bytes).unwrap()
}

// ---------------------------------------------------------------------------
// Comparable errors.

/// [`Error`] with every field, in a form that can be compared (`Error`
/// itself holds `io::Error`, which is not `PartialEq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum E {
    Truncated { item: Item, offset: u64, section: Option<u64>, needed: u64 },
    Varint { item: Item, offset: u64, section: Option<u64>, problem: VarintError },
    InvalidCid { offset: u64, section: Option<u64>, problem: CidProblem },
    InvalidHeader { offset: u64, expected: &'static str },
    UnsupportedVersion { offset: u64, found: u64 },
    NoRoots { offset: u64 },
    LimitExceeded { limit: Limit, max: u64, found: u64, offset: u64, section: Option<u64> },
    HashMismatch { offset: u64, section: u64, claimed: Box<Cid>, computed: Box<Cid> },
    Io { offset: u64, kind: io::ErrorKind },
}

impl From<&Error> for E {
    fn from(e: &Error) -> E {
        match e {
            Error::Truncated { item, offset, section, needed } => {
                E::Truncated { item: *item, offset: *offset, section: *section, needed: *needed }
            }
            Error::Varint { item, offset, section, problem } => {
                E::Varint { item: *item, offset: *offset, section: *section, problem: *problem }
            }
            Error::InvalidCid { offset, section, problem } => {
                E::InvalidCid { offset: *offset, section: *section, problem: *problem }
            }
            Error::InvalidHeader { offset, expected } => {
                E::InvalidHeader { offset: *offset, expected }
            }
            Error::UnsupportedVersion { offset, found } => {
                E::UnsupportedVersion { offset: *offset, found: *found }
            }
            Error::NoRoots { offset } => E::NoRoots { offset: *offset },
            Error::LimitExceeded { limit, max, found, offset, section } => E::LimitExceeded {
                limit: *limit,
                max: *max,
                found: *found,
                offset: *offset,
                section: *section,
            },
            Error::HashMismatch { offset, section, claimed, computed } => E::HashMismatch {
                offset: *offset,
                section: *section,
                claimed: claimed.clone(),
                computed: computed.clone(),
            },
            Error::Io { offset, source } => E::Io { offset: *offset, kind: source.kind() },
            other => panic!("an Error variant the tests do not know: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Reading through every path.

/// What reading a whole CAR produced: the roots (if the header was read),
/// the blocks yielded, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) roots: Option<Vec<Cid>>,
    /// `(cid, data, offset, index)` of each block, in order.
    pub(crate) blocks: Vec<(Cid, Vec<u8>, u64, u64)>,
    pub(crate) end: Result<(), E>,
}

impl Outcome {
    fn new() -> Self {
        Outcome { roots: None, blocks: Vec::new(), end: Ok(()) }
    }

    fn fail(mut self, e: &Error) -> Self {
        self.end = Err(E::from(e));
        self
    }
}

/// Reads `input` through [`CarSlice`].
pub(crate) fn via_slice(input: &[u8], options: Options) -> Outcome {
    let mut out = Outcome::new();
    let slice = match CarSlice::with_options(input, options) {
        Ok(s) => s,
        Err(e) => return out.fail(&e),
    };
    out.roots = Some(slice.header().roots().to_vec());
    for frame in slice {
        match frame {
            Ok(f) => out.blocks.push((f.cid, f.data.to_vec(), f.offset, f.index)),
            Err(e) => return out.fail(&e),
        }
    }
    out
}

/// Reads `input` through [`CarReader`] over `source`.
pub(crate) fn via_reader<R: Read>(source: R, options: Options) -> Outcome {
    let mut out = Outcome::new();
    let mut reader = match CarReader::with_options(source, options) {
        Ok(r) => r,
        Err(e) => return out.fail(&e),
    };
    out.roots = Some(reader.header().roots().to_vec());
    loop {
        match reader.next_block() {
            Ok(Some(b)) => out.blocks.push((b.cid, b.data.to_vec(), b.offset, b.index)),
            Ok(None) => break,
            Err(e) => return out.fail(&e),
        }
    }
    // A finished reader stays finished.
    assert!(matches!(reader.next_block(), Ok(None)), "reader not fused");
    out
}

/// Drives a [`Decoder`] by hand, feeding `input` in pieces whose lengths
/// come from `cuts` (cycled; 0 means "call again without new bytes"), and
/// checks the `Partial` contract on the way.
pub(crate) fn via_decoder(input: &[u8], options: Options, cuts: &[usize]) -> Outcome {
    let mut out = Outcome::new();
    let mut decoder = Decoder::new(options);
    // `buf` holds fed but unconsumed bytes; `fed` counts bytes fed in total.
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut cut = cuts.iter().copied().cycle();
    let mut stalls = 0;
    loop {
        let eof = fed == input.len();
        let status = decoder.decode(&buf, eof);
        match status {
            Err(e) => {
                // An error leaves the decoder as it was: same input, same error.
                let again = decoder.decode(&buf, eof).map(|_| ()).unwrap_err();
                assert_eq!(E::from(&again), E::from(&e), "decoder error not repeatable");
                return out.fail(&e);
            }
            Ok(Status::Header { header, consumed }) => {
                assert!(out.roots.is_none(), "two headers");
                out.roots = Some(header.roots().to_vec());
                buf.drain(..consumed);
                stalls = 0;
            }
            Ok(Status::Frame { frame, consumed }) => {
                assert!(out.roots.is_some(), "frame before header");
                out.blocks.push((frame.cid, frame.data.to_vec(), frame.offset, frame.index));
                buf.drain(..consumed);
                stalls = 0;
            }
            Ok(Status::Partial { needed }) => {
                assert!(!eof, "Partial at eof: must be an error or End");
                assert!(needed > buf.len(), "Partial asks for {needed} but has {}", buf.len());
                // Feed the next piece (at least one byte after a stall so the
                // test always terminates).
                let mut n = cut.next().unwrap_or(1);
                if n == 0 {
                    stalls += 1;
                    if stalls > 2 {
                        n = 1;
                    }
                }
                let n = n.min(input.len() - fed);
                buf.extend(&input[fed..fed + n]);
                fed += n;
            }
            Ok(Status::End) => {
                assert!(eof, "End before eof");
                assert!(buf.is_empty(), "End with unread bytes");
                // End is sticky.
                assert!(matches!(decoder.decode(&[], true), Ok(Status::End)));
                break;
            }
        }
    }
    out
}

/// A [`Read`] source that returns at most the next length from `sizes`
/// (cycled) per call, and an `Interrupted` error where `sizes` says 0.
pub(crate) struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl<'a> Chunked<'a> {
    pub(crate) fn new(data: &'a [u8], sizes: &[usize]) -> Self {
        assert!(sizes.iter().any(|&s| s > 0), "a source that never gives bytes");
        Chunked { data, sizes: sizes.to_vec(), next: 0 }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        if size == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Reads `input` through [`AsyncCarReader`](atrepo_car::AsyncCarReader)
/// over `source`, on a current-thread runtime.
#[cfg(feature = "tokio")]
pub(crate) fn via_async<R: tokio::io::AsyncRead + Unpin>(source: R, options: Options) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async move {
        let mut out = Outcome::new();
        let mut reader = match atrepo_car::AsyncCarReader::with_options(source, options).await {
            Ok(r) => r,
            Err(e) => return out.fail(&e),
        };
        out.roots = Some(reader.header().roots().to_vec());
        loop {
            match reader.next_block().await {
                Ok(Some(b)) => out.blocks.push((b.cid, b.data.to_vec(), b.offset, b.index)),
                Ok(None) => break,
                Err(e) => return out.fail(&e),
            }
        }
        assert!(matches!(reader.next_block().await, Ok(None)), "async reader not fused");
        out
    })
}

/// An [`AsyncRead`](tokio::io::AsyncRead) that yields at most the next length
/// from `sizes` per poll, and `Poll::Pending` (after waking itself) where
/// `sizes` says 0.
#[cfg(feature = "tokio")]
pub(crate) struct AsyncChunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

#[cfg(feature = "tokio")]
impl<'a> AsyncChunked<'a> {
    pub(crate) fn new(data: &'a [u8], sizes: &[usize]) -> Self {
        assert!(sizes.iter().any(|&s| s > 0), "a source that never gives bytes");
        AsyncChunked { data, sizes: sizes.to_vec(), next: 0 }
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncRead for AsyncChunked<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = &mut *self;
        let size = this.sizes[this.next % this.sizes.len()];
        this.next += 1;
        if size == 0 {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        let n = size.min(buf.remaining()).min(this.data.len());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        std::task::Poll::Ready(Ok(()))
    }
}

/// Reads `input` through every reader (slice; stream over the whole slice,
/// over 1-byte reads with interruptions; decoder at once and byte by byte;
/// async over the slice and over 1-byte polls with `Pending`), asserts that
/// all of them agree, and returns what they found.
#[track_caller]
pub(crate) fn read_all(input: &[u8], options: Options) -> Outcome {
    let slice = via_slice(input, options);
    let paths = [
        ("reader", via_reader(input, options)),
        ("reader, 1-byte reads", via_reader(Chunked::new(input, &[1, 0, 1, 3]), options)),
        ("decoder, all at once", via_decoder(input, options, &[usize::MAX])),
        ("decoder, byte by byte", via_decoder(input, options, &[1, 0])),
        #[cfg(feature = "tokio")]
        ("async", via_async(input, options)),
        #[cfg(feature = "tokio")]
        ("async, 1-byte polls", via_async(AsyncChunked::new(input, &[1, 0, 2]), options)),
    ];
    for (name, outcome) in paths {
        assert_eq!(outcome, slice, "{name} disagrees with the slice reader");
    }
    slice
}
