//! Source hygiene checks, run by `cargo xtask tidy` and as a `#[test]`.
//!
//! Checks, for every Rust file in the workspace (fuzz included):
//! - it starts with a `//!` doc comment saying what it is for;
//! - it has no `#[should_panic]` or `#[ignore]` tests (assert on the error
//!   instead; an ignored test is a test that does not run);
//! - it has no trailing whitespace and no tab characters.
//!
//! And for the workspace:
//! - every `Cargo.toml` opts into the workspace lints;
//! - the parser crates forbid `unsafe`;
//! - no copy of the upstream interop fixtures is tracked.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

/// Folders that hold our sources.
const SOURCE_DIRS: &[&str] = &["crates", "xtask", "interop-tests", "benches", "fuzz"];

/// Crates that parse untrusted input and must forbid `unsafe`.
const FORBID_UNSAFE: &[&str] = &["crates/car", "crates/mst", "crates/verify"];

/// Upstream fixture files that must be read from their folder, never copied.
const UPSTREAM_FIXTURES: &[&str] =
    &["signature-fixtures.json", "commit-proof-fixtures.json", "key_heights.json"];

/// Returns one line per problem found under `root`.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        collect(&root.join(dir), &mut files)?;
    }
    files.sort();
    for path in &files {
        let rel = path.strip_prefix(root).unwrap_or(path).display().to_string();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "Cargo.toml" {
            let text = fs::read_to_string(path)?;
            let is_fuzz_root = rel == "fuzz/Cargo.toml";
            if !text.contains("[lints]\nworkspace = true") && !is_fuzz_root {
                problems.push(format!("{rel}: missing `[lints] workspace = true`"));
            }
            continue;
        }
        if UPSTREAM_FIXTURES.contains(&name) {
            problems.push(format!(
                "{rel}: copy of an upstream interop fixture; read it from --fixtures instead"
            ));
            continue;
        }
        if !name.ends_with(".rs") {
            continue;
        }
        let text = fs::read_to_string(path)?;
        if !text.starts_with("//!") {
            problems.push(format!("{rel}: does not start with a `//!` doc comment"));
        }
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.ends_with(' ') || line.ends_with('\t') {
                problems.push(format!("{rel}:{n}: trailing whitespace"));
            }
            if line.contains('\t') {
                problems.push(format!("{rel}:{n}: tab character"));
            }
            let code = line.trim_start();
            // Split so that this file does not match itself.
            if code.starts_with(concat!("#[should", "_panic")) {
                problems.push(format!("{rel}:{n}: should_panic test: assert on the error instead"));
            }
            if code.starts_with(concat!("#[ig", "nore")) {
                problems.push(format!("{rel}:{n}: ignored test: make it run or delete it"));
            }
        }
    }
    for krate in FORBID_UNSAFE {
        let lib = root.join(krate).join("src/lib.rs");
        let text = fs::read_to_string(&lib).unwrap_or_default();
        if !text.contains("#![forbid(unsafe_code)]") {
            problems.push(format!("{krate}/src/lib.rs: missing #![forbid(unsafe_code)]"));
        }
    }
    Ok(problems)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            // Build output, fuzz artifacts, git-ignored fixture clones and
            // generated corpora are not sources.
            if matches!(name.as_ref(), "target" | "artifacts" | "corpus" | "fixtures" | ".git") {
                continue;
            }
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidy() {
        let problems = super::check(&crate::root()).unwrap();
        assert!(problems.is_empty(), "tidy problems:\n{}", problems.join("\n"));
    }
}
