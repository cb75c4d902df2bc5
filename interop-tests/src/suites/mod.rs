//! One module per fixture area. Each suite maps a fixture file to cases.

use std::path::Path;

use anyhow::Result;

use crate::Case;

/// A runner for one fixture file.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    /// The fixture file, relative to the fixture folder.
    pub file: &'static str,
    /// Runs every case in the file.
    pub run: fn(&Path) -> Result<Vec<Case>>,
}

/// Every suite atrepo runs.
pub const SUITES: &[Suite] = &[];

/// Fixture files that must be present and must run; CI fails otherwise.
pub const REQUIRED: &[&str] = &[];

/// The suite for a fixture file, if there is one.
pub fn find(file: &str) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.file == file)
}

/// Why a file without a suite is not run.
pub fn not_run_reason(file: &str) -> String {
    if file.starts_with("lexicon/") {
        "lexicon validation is out of scope for atrepo".to_owned()
    } else {
        "no atrepo suite handles this file yet".to_owned()
    }
}
