//! `cargo xtask`: the project's chores, written in Rust so they run anywhere
//! cargo does.
//!
//! Commands:
//!
//! - `ci`: everything CI checks (fmt, clippy, tests per feature set, docs,
//!   interop fixtures). `.ci/run` calls exactly this.
//! - `tidy`: source hygiene checks (also run as a `#[test]`).
//! - `interop [--fixtures DIR] [--json]`: run the atproto interop fixtures.
//! - `crash-test [--iterations N] [--seed S]`: the store's SIGKILL crash
//!   tests with more iterations than the normal test run.
//! - `fuzz [--seconds N] [TARGET...]`: the cargo-fuzz targets in `fuzz/`
//!   (stable, `--sanitizer none`); `fuzz --corpus` rebuilds their seeds.
//! - `malformed-corpus`: rebuild the malformed-input corpus under
//!   `crates/atrepo/tests/data/malformed`.
//! - `bench [--quick] [--no-peers] [--runs N]`: whole-process
//!   measurements of `atrepo verify` next to the SHA-256 bound and
//!   repo-stream, as the Markdown table of `docs/performance.md`.
//! - `fetch-fixtures`: clone the upstream interop fixtures into
//!   `interop-tests/fixtures` for machines without `../shared`.

mod bench;
mod ci;
mod clash;
mod corpus;
mod crash;
mod fuzz;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The upstream fixture repository and the commit this project is pinned to.
pub(crate) const FIXTURES_REPO: &str = "https://github.com/bluesky-social/atproto-interop-tests";
pub(crate) const FIXTURES_COMMIT: &str = "056e574";

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                 fmt, clippy, tests (each feature set), docs, interop fixtures
  tidy               source hygiene checks
  interop [ARGS]     run the atproto interop fixtures (ARGS go to the runner)
  crash-test [ARGS]  store crash tests, longer (--iterations N, default 100; --seed S)
  fuzz [ARGS]        cargo-fuzz targets (--seconds N, default 60; TARGET...; --corpus rebuilds seeds)
  malformed-corpus   rebuild the malformed-input corpus (crates/atrepo/tests/data/malformed)
  bench [ARGS]       whole-process speed and memory table (--quick, --no-peers, --runs N)
  fetch-fixtures     clone the upstream interop fixtures into interop-tests/fixtures
  clash-pair [SEED]  two records whose CIDs share a short fingerprint (about 30 min in release:
                     cargo run --release -p xtask -- clash-pair)
";

fn main() -> std::process::ExitCode {
    match run_command() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain, without the backtrace anyhow adds under RUST_BACKTRACE.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprint!("{USAGE}");
        bail!("no command given");
    };
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "ci" => ci::run_ci(&rest),
        "tidy" => {
            let problems = tidy::check(&root())?;
            if problems.is_empty() {
                println!("tidy: ok");
                Ok(())
            } else {
                for p in &problems {
                    eprintln!("{p}");
                }
                bail!("tidy: {} problem(s)", problems.len())
            }
        }
        "interop" => interop(&rest),
        "crash-test" => crash::run_crash_test(&rest),
        "fuzz" => fuzz::run_fuzz(&rest),
        "malformed-corpus" => corpus::run_malformed_corpus(&rest),
        "fetch-fixtures" => fetch_fixtures(),
        "bench" => bench::run_bench(&rest),
        "clash-pair" => clash::run_clash_pair(&rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command {other:?}")
        }
    }
}

/// The workspace root, found from this crate's manifest directory.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command in the workspace root, echoing it first, and fails if it
/// fails.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    cmd.current_dir(root());
    eprintln!("$ {}", display(cmd));
    let status = cmd.status().with_context(|| format!("could not start {}", display(cmd)))?;
    if !status.success() {
        bail!("command failed ({status}): {}", display(cmd));
    }
    Ok(())
}

fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs the interop runner with the given arguments.
pub(crate) fn interop(args: &[String]) -> Result<()> {
    // A debug build: the fixtures are small, and CI has just built the
    // workspace in debug for the tests.
    run(cargo().args(["run", "--locked", "-p", "interop-tests", "--"]).args(args))
}

fn fetch_fixtures() -> Result<()> {
    let dest = root().join("interop-tests").join("fixtures");
    if dest.join(".git").exists() {
        run(Command::new("git").arg("-C").arg(&dest).args(["fetch", "--quiet", "origin"]))?;
    } else {
        run(Command::new("git").args(["clone", "--quiet", FIXTURES_REPO]).arg(&dest))?;
    }
    run(Command::new("git").arg("-C").arg(&dest).args([
        "checkout",
        "--quiet",
        "--detach",
        FIXTURES_COMMIT,
    ]))?;
    println!("fixtures at {} (commit {FIXTURES_COMMIT})", dest.display());
    Ok(())
}
