//! `cargo xtask ci`: the one command CI runs and the README promises.

use anyhow::{Result, bail};

use crate::{cargo, run};

/// Optional cargo features, each tested alone, as `(package, feature)`.
///
/// Heavy features that only the bench command needs (peer comparisons) are
/// deliberately not listed: they would add hundreds of crates to CI.
pub(crate) const FEATURES: &[(&str, &str)] = &[
    ("atrepo-car", "tokio"),
    ("atrepo", "tokio"),
    // The facade's crash tests per disk backend (redb is on by default).
    ("atrepo", "sqlite"),
    ("atrepo", "sled"),
    ("atrepo-store", "redb"),
    ("atrepo-store", "sqlite"),
    ("atrepo-store", "sled"),
    ("atrepo-store", "car"),
];

/// Library crates that must build, lint clean and pass their tests
/// without default features too (library users turn them off).
const NO_DEFAULT_FEATURES: &[&str] = &["atrepo"];

/// Runs every check. `--no-interop` skips the fixture run (for machines
/// without fixtures; CI never passes it).
pub(crate) fn run_ci(args: &[String]) -> Result<()> {
    let mut interop = true;
    for a in args {
        match a.as_str() {
            "--no-interop" => interop = false,
            other => bail!("ci: unknown argument {other:?}"),
        }
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if in_ci && !interop {
        bail!("ci: --no-interop is not allowed when CI=true");
    }

    let all_features: Vec<String> = FEATURES.iter().map(|(p, f)| format!("{p}/{f}")).collect();
    let all_features = all_features.join(",");

    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--locked", "--workspace", "--all-targets"]);
    if !all_features.is_empty() {
        clippy.args(["--features", &all_features]);
    }
    run(clippy.args(["--", "-D", "warnings"]))?;

    run(cargo().args(["test", "--locked", "--workspace"]))?;
    for package in NO_DEFAULT_FEATURES {
        let no_default = ["--locked", "-p", package, "--no-default-features"];
        run(cargo().arg("clippy").args(no_default).args([
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        run(cargo().arg("test").args(no_default))?;
    }
    for (package, feature) in FEATURES {
        run(cargo().args(["test", "--locked", "-p", package, "--features", feature]))?;
    }

    let mut doc = cargo();
    doc.args(["doc", "--locked", "--workspace", "--no-deps"]);
    if !all_features.is_empty() {
        doc.args(["--features", &all_features]);
    }
    run(doc.env("RUSTDOCFLAGS", "-D warnings"))?;

    if interop {
        crate::interop(&[])?;
    }
    eprintln!("ci: all checks passed");
    Ok(())
}
