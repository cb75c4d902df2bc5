//! atproto keys, signatures, commit objects and identifier syntax.
//!
//! This crate decides whether a commit was signed by the key a DID claims.
//!
//! # What this crate must not do
//!
//! - No I/O of any kind: no network, no files, no clock unless injected.
//! - No knowledge of storage backends, CAR framing or MST structure.
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

pub mod drisl;
