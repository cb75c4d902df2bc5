//! Integration tests for `atrepo-mst`: one binary, one module per area.

// Shared helpers: keys on chosen layers, values, raw node encoding.
mod common;

// Building: order independence, builder vs incremental tree, removal.
mod build;
// The malformed-tree table: every rule, each with its exact error.
mod malformed;
// Work and depth bounds on hostile trees.
mod bounds;
// Diffs between trees.
mod diff;
// Presence and absence proofs.
mod proof;
// Sync 1.1 inversion.
mod invert;
// Resuming a strict walk after a missing block is supplied.
mod resume;
// What a walk tells the store ahead of reading.
mod look_ahead;
// Snapshots of every error message.
mod errors;
