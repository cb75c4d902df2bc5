//! `interop-tests`: run the atproto interop fixtures and print the report.
//!
//! Usage: `interop-tests [--fixtures DIR] [--json]`. Exits non-zero if any
//! case fails or the fixtures cannot be found.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let mut fixtures = None;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--fixtures" => {
                let dir =
                    args.next().ok_or_else(|| anyhow::anyhow!("--fixtures needs a folder"))?;
                fixtures = Some(PathBuf::from(dir));
            }
            "--json" => json = true,
            "-h" | "--help" => {
                println!("usage: interop-tests [--fixtures DIR] [--json]");
                return Ok(true);
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let root = interop_tests::locate(fixtures)?;
    let report = interop_tests::run(&root)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(!report.has_failures())
}
