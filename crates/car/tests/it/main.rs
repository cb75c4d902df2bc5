//! Integration tests for atrepo-car: one binary, one module per area.

// Test inputs are small, hand-made and fixed in size: narrowing casts on
// them cannot lose anything.
#![allow(clippy::cast_possible_truncation)]

/// Hand-assembled CAR bytes and the read-through-every-path helper.
mod common;
/// Display text and `kind()` of every error, as snapshots.
mod errors;
/// Stream readers read and buffer no more than the limits allow.
mod limits;
/// The malformed-input table: every case's exact outcome.
mod malformed;
/// Mutated CARs and arbitrary bytes: no panics, every reader agrees.
mod mutations;
/// Writers and readers agree on arbitrary blocks, and truncation is never
/// a clean end.
mod roundtrip;
