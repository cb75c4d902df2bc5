//! Integration tests for `atrepo-verify`, one module per area.

/// Shared helpers: keys from seeds, hand-built commit maps, byte tricks.
mod common;
/// Display text of every error variant (insta snapshots).
mod errors;
/// The atproto interop fixtures: crypto vectors and identifier syntax.
mod fixtures;
/// Malformed keys, signatures and commits, each with its exact error.
mod malformed;
/// The static key resolver.
mod resolver;
/// Round-trip property tests: sign/verify, commit encode/decode, did:key.
mod roundtrip;
