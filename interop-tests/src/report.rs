//! The conformance report: per fixture file, per case.

use std::fmt::Write as _;

use serde::Serialize;

/// The outcome of one fixture case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// atrepo did what the fixture expects.
    Passed,
    /// atrepo did something else; `produced` says what.
    Failed {
        /// What atrepo produced instead.
        produced: String,
    },
}

/// One fixture case and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    /// A short name: the input, or the fixture's own name.
    pub name: String,
    /// What the fixture expects (its comment, or the expected result).
    pub expected: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Case {
    /// A case that passed when `ok`, else failed with `produced`.
    pub fn check(
        name: impl Into<String>,
        expected: impl Into<String>,
        ok: bool,
        produced: impl FnOnce() -> String,
    ) -> Self {
        let outcome = if ok { Outcome::Passed } else { Outcome::Failed { produced: produced() } };
        Case { name: name.into(), expected: expected.into(), outcome }
    }
}

/// What happened to one fixture file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuiteReport {
    /// The file, relative to the fixture folder.
    pub file: String,
    /// `ran`, `not_run` or `error`.
    pub status: &'static str,
    /// Why the file was not run, or why its suite could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Number of cases that passed.
    pub passed: usize,
    /// Number of cases that failed.
    pub failed: usize,
    /// Every case.
    pub cases: Vec<Case>,
}

impl SuiteReport {
    /// A file whose cases all ran.
    pub fn ran(file: &str, cases: Vec<Case>) -> Self {
        let passed = cases.iter().filter(|c| c.outcome == Outcome::Passed).count();
        let failed = cases.len() - passed;
        SuiteReport { file: file.to_owned(), status: "ran", reason: None, passed, failed, cases }
    }

    /// A file no suite handles (yet).
    pub fn not_run(file: &str, reason: String) -> Self {
        SuiteReport {
            file: file.to_owned(),
            status: "not_run",
            reason: Some(reason),
            passed: 0,
            failed: 0,
            cases: Vec::new(),
        }
    }

    /// A file whose suite failed before producing cases.
    pub fn errored(file: &str, reason: String) -> Self {
        SuiteReport {
            file: file.to_owned(),
            status: "error",
            reason: Some(reason),
            passed: 0,
            failed: 0,
            cases: Vec::new(),
        }
    }

    /// Whether this file counts against conformance.
    pub fn is_failure(&self) -> bool {
        self.failed > 0 || self.status == "error"
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The fixture folder.
    pub fixtures: String,
    /// The upstream commit, from the folder's `UPSTREAM_COMMIT` if present.
    pub upstream_commit: Option<String>,
    /// One entry per fixture file.
    pub suites: Vec<SuiteReport>,
}

impl Report {
    /// Whether anything failed.
    pub fn has_failures(&self) -> bool {
        self.suites.iter().any(SuiteReport::is_failure)
    }

    /// The human-readable table, failing cases listed under it.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let commit = self.upstream_commit.as_deref().unwrap_or("unknown commit");
        let _ = writeln!(out, "atproto interop fixtures: {} ({commit})\n", self.fixtures);
        let width = self.suites.iter().map(|s| s.file.len()).max().unwrap_or(4).max(4);
        let _ = writeln!(out, "{:width$}  {:>7}  {:>6}  status", "file", "passed", "failed");
        let (mut passed, mut failed, mut not_run) = (0, 0, 0);
        for s in &self.suites {
            let status = match s.status {
                "ran" if s.failed == 0 => "ok".to_owned(),
                "ran" => "FAILED".to_owned(),
                "error" => format!("ERROR: {}", s.reason.as_deref().unwrap_or("")),
                _ => format!("not run: {}", s.reason.as_deref().unwrap_or("")),
            };
            let counts = if s.status == "ran" {
                (format!("{}/{}", s.passed, s.passed + s.failed), s.failed.to_string())
            } else {
                ("-".to_owned(), "-".to_owned())
            };
            let _ = writeln!(out, "{:width$}  {:>7}  {:>6}  {status}", s.file, counts.0, counts.1);
            passed += s.passed;
            failed += s.failed;
            if s.status == "not_run" {
                not_run += 1;
            }
        }
        let _ =
            writeln!(out, "\ncases: {passed} passed, {failed} failed; files not run: {not_run}");
        for s in self.suites.iter().filter(|s| s.failed > 0) {
            let _ = writeln!(out, "\nfailures in {}:", s.file);
            for c in &s.cases {
                if let Outcome::Failed { produced } = &c.outcome {
                    let _ = writeln!(
                        out,
                        "  {}\n    expected: {}\n    produced: {produced}",
                        c.name, c.expected
                    );
                }
            }
        }
        out
    }
}
