//! `atrepo gen`: a synthetic signed repository, deterministic from a seed.
//!
//! `--json` prints `{"out", "did", "key", "commit", "rev", "records",
//! "bytes", "order"}`; `key` is the signing key as `did:key`, which
//! `atrepo verify --key` takes.

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use atrepo::generate::{GenOptions, generate, shuffle_blocks};
use atrepo::verify::Curve;
use atrepo::writer::write_blocks;
use clap::{Args, ValueEnum};
use serde_json::json;

/// `atrepo gen`.
#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    /// How many records.
    #[arg(long, default_value_t = 1000)]
    records: u64,
    /// The signing key's curve.
    #[arg(long, value_enum, default_value_t = KeyType::K256)]
    key_type: KeyType,
    /// The seed: the same seed gives the same repository, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the CAR (`-` for standard output).
    #[arg(long)]
    out: PathBuf,
    /// Block order: the streamable order, a seeded shuffle, or reversed.
    #[arg(long, value_enum, default_value_t = Order::Streaming)]
    order: Order,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeyType {
    K256,
    P256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Order {
    Streaming,
    Shuffled,
    Reversed,
}

pub(crate) fn run(args: &GenArgs) -> Result<ExitCode> {
    let curve = match args.key_type {
        KeyType::K256 => Curve::K256,
        KeyType::P256 => Curve::P256,
    };
    let options = GenOptions::default().records(args.records).seed(args.seed).curve(curve);
    let generated = generate(&options)?;
    let mut built = generated.writer.build(&generated.key, generated.rev)?;
    match args.order {
        Order::Streaming => {}
        Order::Reversed => built.blocks.reverse(),
        Order::Shuffled => shuffle_blocks(&mut built.blocks, args.seed),
    }
    let bytes: u64 = built.blocks.iter().map(|(_, b)| b.len() as u64).sum();
    if args.out.as_os_str() == "-" {
        write_blocks(std::io::stdout().lock(), built.commit_cid, &built.blocks)?;
    } else {
        let file = File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        write_blocks(file, built.commit_cid, &built.blocks)?;
    }
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(bytes);
    let key = generated.key.public_key().to_did_key();
    let rev = generated.rev.to_string();
    if args.json {
        let out = json!({
            "out": args.out.display().to_string(),
            "did": generated.did,
            "key": key,
            "commit": built.commit_cid.to_string(),
            "rev": rev,
            "records": args.records,
            "bytes": size,
            "order": format!("{:?}", args.order).to_lowercase(),
        });
        outln!("{:#}", crate::sorted(out))?;
    } else if args.out.as_os_str() != "-" {
        eprintln!("wrote {}: {} records, {size} bytes", args.out.display(), args.records);
        eprintln!("  did     {}", generated.did);
        eprintln!("  key     {key}");
        eprintln!("  commit  {} (rev {rev})", built.commit_cid);
    }
    Ok(ExitCode::SUCCESS)
}
