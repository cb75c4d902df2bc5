//! Verified CAR v1 reading and writing for atproto repositories.
//!
//! This crate turns bytes into `(CID, block bytes)` frames and back. It owns
//! CAR v1 framing (length varints, the DAG-CBOR header, sections), CID
//! syntax in sections and header roots, and the check that every block
//! hashes to its CID.
//!
//! # What this crate must not do
//!
//! - It knows nothing about MST nodes, commits, records, signatures or
//!   storage backends: a block is opaque bytes with a CID.
//! - Its core does no I/O. [`Decoder`] works on byte slices; the
//!   [`CarReader`] (`std::io::Read`) and [`AsyncCarReader`] (tokio) adapters
//!   only move bytes into it.
//! - It never allocates from a length read from the input before checking
//!   it against [`Limits`], never panics on any input, and never treats
//!   truncated input as a clean end.
//!
//! # Main types
//!
//! - [`CarSlice`]: a CAR already in memory; yields [`Frame`]s borrowing
//!   from it (zero-copy).
//! - [`CarReader`] / [`AsyncCarReader`]: a CAR from a stream; yields
//!   [`Block`]s whose bytes share the read buffer.
//! - [`Decoder`]: the sans-IO parser under both, for callers that manage
//!   their own buffers (it says how many bytes it needs next).
//! - [`CarWriter`] / [`AsyncCarWriter`] / [`encode`]: writing CARs.
//! - [`Options`]: [`Limits`], [`CidMode`] and [`HashCheck`].
//! - [`Error`]: every failure, with offsets, sorted by [`ErrorKind`].
//!
//! Reader and writer names carry a `Car` prefix because the `atrepo`
//! facade re-exports them next to readers of other things.
//!
//! # Crate features
//!
//! - `tokio`: [`AsyncCarReader`] and [`AsyncCarWriter`].
//!
//! # Untrusted input
//!
//! - Every block is hashed and compared with its CID unless the caller
//!   explicitly asks for [`HashCheck::Unchecked`].
//! - [`CidMode::Strict`] (the default) accepts only atproto's blessed CIDs:
//!   CIDv1, dag-cbor or raw, sha2-256 with 32 bytes.
//! - [`Limits`] caps the header (4 KiB), roots (16), each section (2 MiB),
//!   the whole CAR (4 GiB) and the number of blocks (16 million); a stream
//!   reader's memory is bounded by one section plus one read chunk.
//! - Non-minimal or over-long varints, truncation anywhere, trailing
//!   garbage and non-canonical headers are errors.
//! - Duplicate blocks are yielded as they come: the atproto spec says
//!   readers must tolerate them. Deduplication is the caller's business.
//!
//! # Example
//!
//! ```
//! use atrepo_car::{CarSlice, Error, Header, blessed_cid, encode, DAG_CBOR};
//!
//! let block = b"\xa1\x61a\x01"; // {"a": 1}
//! let cid = blessed_cid(DAG_CBOR, block);
//! let car = encode(&Header::new(vec![cid]).unwrap(), [(&cid, &block[..])]);
//!
//! let frames: Vec<_> = CarSlice::new(&car)?.collect::<Result<_, _>>()?;
//! assert_eq!(frames[0].data, block);
//!
//! // Flip one byte of the block: its hash no longer matches.
//! let mut bad = car.clone();
//! *bad.last_mut().unwrap() ^= 1;
//! let err = CarSlice::new(&bad)?.next().unwrap().unwrap_err();
//! assert!(matches!(err, Error::HashMismatch { section: 0, .. }));
//! # Ok::<(), atrepo_car::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::arithmetic_side_effects
    )
)]

mod buffered;
mod cids;
mod cursor;
mod decoder;
mod error;
mod header;
mod options;
mod slice;
mod stream;
#[cfg(feature = "tokio")]
mod tokio;
mod varint;
mod writer;

pub use buffered::Block;
pub use cids::{
    CidProblem, DAG_CBOR, IDENTITY, RAW, SHA2_256, SHA2_512, blessed_cid, block_matches,
};
pub use decoder::{Decoder, Frame, Status};
pub use error::{Error, ErrorKind, Item, Limit, Result};
pub use header::Header;
pub use options::{CidMode, HashCheck, Limits, Options};
pub use slice::CarSlice;
pub use stream::CarReader;
#[cfg(feature = "tokio")]
pub use tokio::{AsyncCarReader, AsyncCarWriter};
pub use varint::VarintError;
pub use writer::{CarWriter, encode};

/// Entry points for fuzzing and out-of-crate tests.
///
/// Not part of the public API: anything here may change in any release.
#[doc(hidden)]
pub mod internal {
    /// Fuzz bodies: each takes arbitrary bytes and must never panic.
    pub mod fuzzing {
        use crate::{CarReader, CarSlice, Limits, Options};

        /// Reads `data` as a whole CAR through the slice and stream paths
        /// with small limits, and checks that both agree.
        pub fn car_stream(data: &[u8]) {
            let options = Options::default()
                .limits(Limits::default().max_section_len(64 * 1024).max_total_bytes(1 << 20));
            let from_slice: Option<Vec<_>> = CarSlice::with_options(data, options)
                .ok()
                .map(|s| s.map(|f| f.map(|f| (f.cid, f.data.to_vec())).ok()).collect());
            let from_stream: Option<Vec<_>> = CarReader::with_options(data, options)
                .ok()
                .map(|r| r.map(|b| b.map(|b| (b.cid, b.data.to_vec())).ok()).collect());
            assert_eq!(from_slice, from_stream, "slice and stream readers disagree");
        }

        /// Decodes `data` as a bare header (without its length varint).
        pub fn car_header(data: &[u8]) {
            let limits = Limits::default();
            if let Ok(header) = crate::header::decode(
                crate::cursor::Cursor::new(data, 0),
                &limits,
                crate::CidMode::Strict,
            ) {
                // Strict decoding accepts only the canonical form.
                assert_eq!(header.to_cbor(), data, "accepted a non-canonical header");
                // Strict roots are blessed CIDs only.
                for root in header.roots() {
                    assert!(is_blessed(root), "accepted an unblessed root {root}");
                }
            }
        }

        /// Reads one binary CID from the front of `data` in both CID modes.
        /// A strict CID is blessed (v1, dag-cbor or raw, sha2-256, 32
        /// bytes); any accepted CID writes back to exactly the bytes it was
        /// read from.
        pub fn cid_parse(data: &[u8]) {
            for mode in [crate::CidMode::Strict, crate::CidMode::Permissive] {
                let mut r = crate::cursor::Cursor::new(data, 0);
                if let Ok(cid) = crate::cids::read(&mut r, mode) {
                    let used = data.len().saturating_sub(r.rest().len());
                    assert_eq!(
                        Some(&cid.to_bytes()[..]),
                        data.get(..used),
                        "cid does not round-trip"
                    );
                    if mode == crate::CidMode::Strict {
                        assert!(is_blessed(&cid), "strict mode accepted {cid}");
                    }
                }
            }
        }

        fn is_blessed(cid: &cid::Cid) -> bool {
            cid.version() == cid::Version::V1
                && matches!(cid.codec(), crate::DAG_CBOR | crate::RAW)
                && cid.hash().code() == crate::SHA2_256
                && cid.hash().size() == 32
        }
    }
}
