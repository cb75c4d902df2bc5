//! `cargo xtask crash-test`: the `atrepo-store` SIGKILL crash tests with
//! more iterations than the normal test run (which does 20 per backend).
//!
//! Each iteration starts a child that ingests into a disk backend, kills it
//! with SIGKILL at a random moment, and checks the reopened store (see
//! `crates/store/tests/it/crash.rs`).

use anyhow::{Context, Result, bail};

use crate::{cargo, run};

/// Iterations per backend unless `--iterations` says otherwise.
const DEFAULT_ITERATIONS: u32 = 100;

/// Runs the crash tests for every disk backend.
pub(crate) fn run_crash_test(args: &[String]) -> Result<()> {
    let mut iterations = DEFAULT_ITERATIONS;
    let mut seed = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                let value = args.next().context("--iterations needs a number")?;
                iterations =
                    value.parse().with_context(|| format!("bad --iterations {value:?}"))?;
            }
            "--seed" => {
                let value = args.next().context("--seed needs a number")?;
                seed = Some(value.parse::<u64>().with_context(|| format!("bad --seed {value:?}"))?);
            }
            other => bail!("crash-test: unknown argument {other:?}"),
        }
    }
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--locked",
        "-p",
        "atrepo-store",
        "--features",
        "redb,sqlite,sled",
        "--test",
        "it",
        "--",
        "crash::",
        "--nocapture",
    ]);
    cmd.env("ATREPO_STORE_CRASH_ITERATIONS", iterations.to_string());
    if let Some(seed) = seed {
        cmd.env("ATREPO_STORE_CRASH_SEED", seed.to_string());
    }
    run(&mut cmd)
}
