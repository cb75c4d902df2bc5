//! Verify and store atproto repositories.
//!
//! The facade over the atrepo crates. It re-exports them rather than
//! re-implementing anything:
//!
//! - [`car`]: verified CAR v1 framing.
//! - [`mst`]: the Merkle Search Tree.
//! - [`store`]: block storage backends.
//! - [`verify`]: keys, signatures, commits and identifier syntax.
//! - [`json`]: data model values as JSON.
#![warn(missing_docs)]

mod error;
pub mod event;
pub mod generate;
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
