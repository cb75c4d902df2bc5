//! Runs the atproto interop fixtures against atrepo and reports
//! conformance, case by case.
//!
//! The fixtures are never copied into this repository. [`locate`] finds
//! them: `--fixtures DIR`, else `$ATPROTO_INTEROP_TESTS`, else
//! `interop-tests/fixtures` (filled by `cargo xtask fetch-fixtures`).
//! A missing folder is an error, never a silent pass.
//!
//! [`run`] walks *every* file in the folder, so a file added upstream shows
//! up in the report as "not run" until a suite handles it. Suites live in
//! [`suites`], one module per fixture area.
#![warn(missing_docs)]

pub mod report;
pub mod suites;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use report::{Case, Outcome, Report, SuiteReport};

/// The environment variable naming the fixture folder.
pub const ENV_VAR: &str = "ATPROTO_INTEROP_TESTS";

/// Files in the fixture folder that are not fixtures.
const NOT_FIXTURES: &[&str] = &["UPSTREAM_COMMIT", "LICENSE-CC0", "LICENSE", "README.md", ".git"];

/// Finds the fixture folder: `explicit`, else `$ATPROTO_INTEROP_TESTS`, else
/// `interop-tests/fixtures` beside this crate. Fails loudly if none exists.
pub fn locate(explicit: Option<PathBuf>) -> Result<PathBuf> {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let (dir, source) = match (explicit, std::env::var_os(ENV_VAR)) {
        (Some(dir), _) => (dir, "--fixtures"),
        (None, Some(dir)) => (PathBuf::from(dir), ENV_VAR),
        (None, None) => (default, "the default location"),
    };
    if !dir.is_dir() {
        bail!(
            "atproto interop fixtures not found at {} (from {source}).\n\
             Point --fixtures or {ENV_VAR} at a checkout of \
             https://github.com/bluesky-social/atproto-interop-tests, \
             or run `cargo xtask fetch-fixtures`.",
            dir.display()
        );
    }
    Ok(dir)
}

/// Runs every suite against the fixture folder `root`.
pub fn run(root: &Path) -> Result<Report> {
    let mut files = Vec::new();
    list_files(root, root, &mut files)?;
    files.sort();
    if files.is_empty() {
        bail!("the fixture folder {} holds no fixture files", root.display());
    }
    let mut report = Report {
        fixtures: root.display().to_string(),
        upstream_commit: std::fs::read_to_string(root.join("UPSTREAM_COMMIT"))
            .ok()
            .map(|s| s.trim().to_owned()),
        suites: Vec::new(),
    };
    for rel in files {
        let suite = match suites::find(&rel) {
            Some(suite) => match (suite.run)(&root.join(&rel)) {
                Ok(cases) => SuiteReport::ran(&rel, cases),
                Err(e) => SuiteReport::errored(&rel, format!("{e:#}")),
            },
            None => SuiteReport::not_run(&rel, suites::not_run_reason(&rel)),
        };
        report.suites.push(suite);
    }
    for required in suites::REQUIRED {
        if !report.suites.iter().any(|s| s.file == *required) {
            report.suites.push(SuiteReport::errored(
                required,
                "required fixture file is missing from the fixture folder".to_owned(),
            ));
        }
    }
    Ok(report)
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if NOT_FIXTURES.contains(&name.as_str()) {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            list_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}
