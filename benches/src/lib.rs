//! Shared helpers for the criterion benches.

/// Thread CPU time and alternating runs, for ratios on a busy machine.
pub mod cpu;
/// A deterministic repository-shaped CAR generator.
pub mod repo_car;
