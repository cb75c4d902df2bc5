//! Verify and store atproto repositories.
//!
//! The facade over the atrepo crates, and what only the whole needs:
//!
//! - whole-repository verification: [`verify_repo`], [`verify_repo_file`],
//!   [`verify_repo_reader`], [`verify_repo_with`] and the lazy, in-order
//!   [`RepoReader`] (slices, files, `Read`, a reading thread, and tokio
//!   with the `tokio` feature), with a block buffer that streams in the
//!   sync 1.1 order, buffers otherwise, leaves blocks in an input file or
//!   spills them past the memory limit;
//! - [`event`]: firehose `#commit` and `#sync` verification (sync 1.1);
//! - [`writer`] and [`generate`]: signed repository CARs, for tests,
//!   fixtures, exports and benchmarks;
//! - [`json`]: data model values as JSON;
//! - [`identity`]: the signing key a DID document declares;
//! - [`Error`]: one error over every crate's, keeping their classes.
//!
//! The crates it re-exports do the parsing and the cryptography:
//!
//! - [`car`]: verified CAR v1 framing.
//! - [`mst`]: the Merkle Search Tree.
//! - [`store`]: block storage backends.
//! - [`verify`]: keys, signatures, commits and identifier syntax.
//!
//! It must not re-implement any of them, hold more than its memory limit
//! of waiting blocks (plus the bookkeeping documented on
//! [`VerifyOptions`]), or hand out a record before every block on the path
//! from the signed commit to it has been checked.
#![warn(missing_docs)]

mod error;
pub mod event;
pub mod generate;
pub mod identity;
#[doc(hidden)]
pub mod internal;
pub mod json;
mod repo;
pub mod writer;

pub use atrepo_car as car;
pub use atrepo_mst as mst;
pub use atrepo_store as store;
pub use atrepo_verify as verify;
pub use error::{Error, ErrorKind, Result};
#[cfg(feature = "tokio")]
pub use repo::{AsyncRepoReader, verify_repo_async};
pub use repo::{
    BlockSource, CarReport, FileSource, MemoryReport, MstReport, OwnedRecord, Record, RecordCheck,
    RepoReader, Report, SignatureCheck, SignatureReport, SliceSource, StreamSource,
    THREADED_MIN_BYTES, ThreadedSource, VerifyOptions, load_car, verify_repo, verify_repo_file,
    verify_repo_reader, verify_repo_with,
};
