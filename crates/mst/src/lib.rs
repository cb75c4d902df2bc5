//! A strict Merkle Search Tree for atproto repositories.
//!
//! # What this crate must not do
//!
//! - Read blocks any other way than through `atrepo_store::BlockRead`.
//! - Know about CAR framing, storage backends or signatures.
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
