//! Shared helpers for the criterion benches.

/// Thread CPU time and alternating runs, for ratios on a busy machine.
pub mod cpu;
/// Signed, valid repositories from atrepo's generator, cached under `target/`.
pub mod generated;
/// A deterministic repository-shaped CAR generator.
pub mod repo_car;
/// Deterministic records of one repository, for MST benches.
pub mod repo_records;
