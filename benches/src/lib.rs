//! Shared helpers for the criterion benches.

/// A deterministic repository-shaped CAR generator.
pub mod repo_car;
