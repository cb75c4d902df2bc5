//! `atrepo verify`: full verification of a repository CAR.
//!
//! # Output
//!
//! Human output is a short report (see the snapshots in
//! `tests/it/cli.rs`). `--json` prints one object:
//!
//! ```text
//! {"status": "verified" | "verified_without_signature",
//!  "file": "...", "elapsed_secs": 0.01, "throughput_mb_s": 120.5,
//!  "report": { atrepo::Report: did, rev, version, commit, data,
//!              signature {checked, key}, records, collections {nsid: n},
//!              repeated_records, mst {nodes, node_bytes, layers},
//!              car {bytes, blocks, duplicate_blocks, unreferenced_blocks,
//!                   unreferenced_bytes},
//!              memory {peak_buffered_bytes, spilled} }}
//! ```
//!
//! or, on failure, `{"status": "failed", "file": "...", "error": {"kind":
//! "malformed" | "verification" | "missing" | "limit" | "environment" |
//! "usage", "message": "..."}}`. Fields are only ever added.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use atrepo::store::SpillOptions;
use atrepo::verify::PublicKey;
use atrepo::{Report, SignatureCheck, VerifyOptions};
use clap::Args;
use serde_json::json;

use crate::input;

/// `atrepo verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The CAR file, or `-` for standard input. Without it, the small
    /// sample repository embedded in atrepo (signed by a key atrepo knows).
    file: Option<PathBuf>,
    /// The DID the repository must belong to.
    #[arg(long)]
    did: Option<String>,
    /// The key the commit must be signed with, as `did:key:z...`.
    #[arg(long)]
    key: Option<String>,
    /// A DID document (JSON, as https://plc.directory/DID serves it): the
    /// commit must be signed with its #atproto key, and the repository
    /// belong to its DID. `-` reads it from standard input
    /// (`curl -s https://plc.directory/DID | atrepo verify repo.car --did-doc -`).
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    did_doc: Option<PathBuf>,
    /// Check everything but the signature (when the key is not known).
    #[arg(long, conflicts_with_all = ["key", "did_doc"])]
    no_signature: bool,
    /// Memory for blocks waiting to be verified, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    mem_limit: u64,
    /// Where a stream's blocks go past the memory limit once their notes in
    /// the scratch file can no longer grow within it: `redb`, `sqlite` or
    /// `sled` (optionally
    /// `BACKEND:DIR` for the parent folder of both), or `memory` to never
    /// write to disk.
    #[arg(long, value_name = "SPEC")]
    store: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    rules: crate::rules::Rules,
}

pub(crate) fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let mut options = args
        .rules
        .apply(VerifyOptions::default().memory_limit(args.mem_limit.saturating_mul(1 << 20)));
    // Trimmed as --key is (a DID pasted with its newline), and checked:
    // a typo is a usage error, not a repository for another account.
    let did = args.did.as_deref().map(str::trim);
    if let Some(did) = did {
        if let Err(e) = atrepo::verify::syntax::did(did) {
            bail!("expected --did to be a DID, found {did:?}: {e}");
        }
        options = options.did(did.to_owned());
    }
    let document = args.did_doc.as_deref().map(crate::did_doc::read_one).transpose()?;
    // Where the key comes from: --key, a DID document (which names the
    // DID too), nowhere (--no-signature), or, for the embedded sample,
    // the key that signed it.
    options = match (&args.key, document) {
        (Some(key), _) => options.key(PublicKey::from_did_key(key.trim())?),
        (None, Some(doc)) => {
            if let Some(did) = did.filter(|did| *did != doc.did) {
                bail!("--did {did} is not the DID of the --did-doc document, {}", doc.did);
            }
            options.did(doc.did).key(doc.key)
        }
        (None, None) if args.no_signature => options.signature(SignatureCheck::Skip),
        (None, None) if args.file.is_none() => {
            options.key(PublicKey::from_did_key(input::SAMPLE_KEY.trim())?)
        }
        (None, None) => bail!(
            "no signing key: pass --key did:key:... or --did-doc FILE (the DID document), \
             or --no-signature to check everything else"
        ),
    };
    if let Some(spec) = &args.store {
        options = options.spill(spill_options(spec)?);
    }

    let start = Instant::now();
    let (name, result, bar) = match args.file.as_deref() {
        // A file: big ones are read on a second thread, and past the memory
        // limit blocks stay in the file instead of being copied. Pipes and
        // devices cannot be read again: they are streams, as `-` is.
        Some(path) if input::is_regular_file(path)? => {
            let name = path.display().to_string();
            (name, atrepo::verify_repo_file(path, options), None)
        }
        _ => {
            let input = input::open_or_sample(args.file.as_ref())?;
            let name = input.name.clone();
            let threaded = input.size.is_none_or(|n| n >= atrepo::THREADED_MIN_BYTES);
            let (reader, bar) = input.with_progress();
            let result = if threaded {
                atrepo::RepoReader::from_reader_threaded(reader, options)
                    .and_then(atrepo::RepoReader::finish)
            } else {
                atrepo::verify_repo_reader(reader, options)
            };
            (name, result, bar)
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Ok(report) => {
            let mb_s = if elapsed > 0.0 { report.car.bytes as f64 / elapsed / 1e6 } else { 0.0 };
            let status =
                if report.signature.checked { "verified" } else { "verified_without_signature" };
            if args.json {
                let out = json!({
                    "status": status,
                    "file": name,
                    "elapsed_secs": elapsed,
                    "throughput_mb_s": mb_s,
                    "report": report,
                });
                outln!("{:#}", crate::sorted(out))?;
            } else {
                out!("{}", human(&report, elapsed, mb_s))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                let out = json!({
                    "status": "failed",
                    "file": name,
                    "error": {"kind": crate::kind_name(e.kind()), "message": e.to_string()},
                });
                // The verification's error is the outcome, written or not.
                crate::side_line(format_args!("{:#}", crate::sorted(out)));
            }
            Err(e.into())
        }
    }
}

/// Parses `--store`.
fn spill_options(spec: &str) -> Result<Option<SpillOptions>> {
    if spec == "memory" {
        return Ok(None);
    }
    let (backend, parent) = match spec.split_once(':') {
        Some((backend, dir)) => (backend, Some(dir)),
        None => (spec, None),
    };
    if backend == "car" {
        bail!(
            "--store car: a CAR file is read-only and cannot hold spilled blocks; use redb, sqlite or sled"
        );
    }
    let mut options = SpillOptions::default().target_spec(backend)?;
    if let Some(parent) = parent {
        options = options.parent(parent);
    }
    Ok(Some(options))
}

/// The human-readable report.
pub(crate) fn human(report: &Report, elapsed: f64, mb_s: f64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let verdict =
        if report.signature.checked { "verified" } else { "verified (signature NOT checked)" };
    let _ = writeln!(s, "{verdict} {}", report.did);
    let rev = if report.rev.is_empty() { "none" } else { &report.rev };
    let _ = writeln!(s, "  commit     {} (rev {rev}, version {})", report.commit, report.version);
    let _ = writeln!(s, "  data       {}", report.data);
    match &report.signature.key {
        Some(key) => {
            let _ = writeln!(s, "  signature  valid, {key}");
        }
        None => {
            let _ = writeln!(s, "  signature  not checked");
        }
    }
    let _ =
        writeln!(s, "  records    {} in {} collections", report.records, report.collections.len());
    let width = report.collections.keys().map(String::len).max().unwrap_or(0);
    for (collection, n) in &report.collections {
        let _ = writeln!(s, "    {collection:width$}  {n}");
    }
    let _ = writeln!(
        s,
        "  mst        {} nodes, {} layers, {} bytes",
        report.mst.nodes, report.mst.layers, report.mst.node_bytes
    );
    let _ = writeln!(
        s,
        "  blocks     {} ({} duplicate, {} unreferenced)",
        report.car.blocks, report.car.duplicate_blocks, report.car.unreferenced_blocks
    );
    let _ = writeln!(s, "  bytes      {}", report.car.bytes);
    if report.memory.spilled {
        let _ = writeln!(s, "  memory     spilled to disk past the limit");
    }
    let _ = writeln!(s, "  elapsed    {:.1} ms ({mb_s:.1} MB/s)", elapsed * 1e3);
    s
}
