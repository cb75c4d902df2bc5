//! `atrepo`: verify, inspect and generate atproto repositories from a shell.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |---|---|
//! | 0 | verified (or the command did what was asked) |
//! | 1 | verification failed: bad signature, CID mismatch, a broken MST rule, a missing block |
//! | 2 | malformed input, or a limit exceeded |
//! | 3 | usage or I/O error |
//!
//! Errors are one line on stderr naming the problem and where it is
//! (offset, CID or key); with `--json`, `verify` and `event` also print
//! them as a JSON object on stdout (see each command's module for the
//! shapes). The other commands' JSON is their output only: a failure is
//! the exit code and the stderr line.

/// `println!` that returns the write's error instead of panicking: a
/// reader that went away (`atrepo get ... | head -c1`, which `main` treats
/// as success) or a full disk under a redirected stdout (an error, exit 3).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` that returns the write's error; see `outln!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod did_doc;
mod event;
mod gen_cmd;
mod input;
mod read_cmd;
mod rules;
mod verify_cmd;

use std::process::ExitCode;

use atrepo::ErrorKind;
use clap::{Parser, Subcommand};

/// Verify and inspect atproto repositories.
#[derive(Debug, Parser)]
#[command(name = "atrepo", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify a repository CAR end to end (the sample repository if no file
    /// is given).
    Verify(verify_cmd::VerifyArgs),
    /// List a repository's records, each as soon as it verifies (only
    /// exit code 0 says the whole repository did).
    Ls(read_cmd::LsArgs),
    /// Print one record as JSON, once the whole repository has verified.
    Get(read_cmd::GetArgs),
    /// Summarize a repository.
    Stats(read_cmd::StatsArgs),
    /// List the records created, updated and deleted between two
    /// repositories.
    Diff(read_cmd::DiffArgs),
    /// Write every record as JSON, to a folder or a JSON Lines file.
    Export(read_cmd::ExportArgs),
    /// Generate a synthetic signed repository.
    Gen(gen_cmd::GenArgs),
    /// Verify firehose events.
    Event(event::EventArgs),
}

/// Exit code for a class of error.
pub(crate) const VERIFICATION_FAILED: u8 = 1;
/// Exit code for malformed input or a limit.
pub(crate) const MALFORMED: u8 = 2;
/// Exit code for usage and I/O errors.
pub(crate) const USAGE: u8 = 3;

/// The exit code for an error of class `kind`.
pub(crate) fn code_for(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Verification | ErrorKind::Missing => VERIFICATION_FAILED,
        ErrorKind::Malformed | ErrorKind::Limit => MALFORMED,
        _ => USAGE,
    }
}

/// A stable name for a class of error, used in JSON output.
pub(crate) fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Malformed => "malformed",
        ErrorKind::Verification => "verification",
        ErrorKind::Missing => "missing",
        ErrorKind::Limit => "limit",
        ErrorKind::Environment => "environment",
        _ => "usage",
    }
}

/// `value` with every object's keys sorted, as the command line prints
/// JSON (`{}` on one line, `{:#}` pretty).
///
/// serde_json keeps maps sorted unless its `preserve_order` feature is on;
/// a build that unifies that feature in (the benches' `peers` feature
/// does) would otherwise print keys in insertion order, and the output
/// would depend on how the binary was built.
pub(crate) fn sorted(mut value: serde_json::Value) -> serde_json::Value {
    value.sort_all_objects();
    value
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Verify(args) => verify_cmd::run(&args),
        Command::Ls(args) => read_cmd::ls(&args),
        Command::Get(args) => read_cmd::get(&args),
        Command::Stats(args) => read_cmd::stats(&args),
        Command::Diff(args) => read_cmd::diff(&args),
        Command::Export(args) => read_cmd::export(&args),
        Command::Gen(args) => gen_cmd::run(&args),
        Command::Event(args) => event::run(args),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`atrepo ls repo.car | head`): not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, without a backtrace.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !line.contains(&cause) {
                    line.push_str(": ");
                    line.push_str(&cause);
                }
            }
            eprintln!("error: {line}");
            let code = e.downcast_ref::<atrepo::Error>().map_or(USAGE, |e| code_for(e.kind()));
            ExitCode::from(code)
        }
    }
}

/// Writes a line to stdout whose failure must not hide the command's
/// outcome: a `--json` line before the command's own error, or a summary
/// after its work is done. A reader that went away is ignored; any other
/// failure is said on stderr, and the outcome stands.
pub(crate) fn side_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("warning: could not write to stdout: {e}");
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
