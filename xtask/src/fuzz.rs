//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/` on the
//! stable toolchain (`--sanitizer none`), and rebuilds their seed corpora.
//!
//! - `cargo xtask fuzz [--seconds N] [TARGET...]` runs every target (or
//!   the ones named) for N seconds each (default 60), starting from the
//!   committed seeds in `fuzz/corpus/TARGET` and keeping what it finds in
//!   `fuzz/target/corpus/TARGET` (git-ignored). It prints the executions
//!   per target and fails on any crash, leak, timeout or out-of-memory
//!   (the input is left in `fuzz/artifacts/TARGET/`).
//! - `cargo xtask fuzz --corpus` rebuilds `fuzz/corpus/` from the interop
//!   fixtures, generated repositories and the malformed-input corpus.
//!
//! cargo-fuzz is installed (`cargo install cargo-fuzz --locked`) if it is
//! missing. The same bodies run in `cargo test` as bounded property tests
//! (`crates/atrepo/tests/it/fuzz_bodies.rs`), so CI needs none of this.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, root, run};

/// Seconds per target unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// libFuzzer options for every run: an input taking over 10 s is a hang;
/// 512 MiB resident or a single 64 MiB allocation is a failure (the
/// allocation cap needs a sanitizer's malloc hooks; without one libFuzzer
/// ignores it, and the bounds test binary measures the heap instead).
const LIBFUZZER_FLAGS: &[&str] = &["-timeout=10", "-rss_limit_mb=512", "-malloc_limit_mb=64"];

pub(crate) fn run_fuzz(args: &[String]) -> Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut corpus = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                seconds = value.parse().with_context(|| format!("bad --seconds {value:?}"))?;
            }
            "--corpus" => corpus = true,
            other if other.starts_with('-') => bail!("fuzz: unknown argument {other:?}"),
            other => targets.push(other.to_owned()),
        }
    }
    if corpus {
        return build_corpus();
    }
    let all = list_targets()?;
    if targets.is_empty() {
        targets = all.clone();
    }
    for t in &targets {
        if !all.contains(t) {
            bail!("fuzz: no target {t:?} (targets: {})", all.join(", "));
        }
    }
    ensure_cargo_fuzz()?;
    let fuzz_dir = root().join("fuzz");
    run(fuzz_command(&fuzz_dir).args(["fuzz", "build", "--sanitizer", "none"]))?;

    let mut results = Vec::new();
    for target in &targets {
        let work = fuzz_dir.join("target").join("corpus").join(target);
        let seeds = fuzz_dir.join("corpus").join(target);
        let artifacts = fuzz_dir.join("artifacts").join(target);
        std::fs::create_dir_all(&work)?;
        std::fs::create_dir_all(&seeds)?;
        std::fs::create_dir_all(&artifacts)?;
        let mut cmd = fuzz_command(&fuzz_dir);
        cmd.args(["fuzz", "run", "--sanitizer", "none", target])
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            .args(LIBFUZZER_FLAGS)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        eprintln!("fuzz: {target} for {seconds} s");
        let output = cmd.output().with_context(|| format!("running cargo fuzz run {target}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let execs = stat(&log, "stat::number_of_executed_units").unwrap_or(0);
        let ok = output.status.success();
        if !ok {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
        }
        results.push((target.clone(), execs, ok));
    }
    println!("{:<22} {:>14}  result", "target", "executions");
    for (target, execs, ok) in &results {
        println!("{target:<22} {execs:>14}  {}", if *ok { "ok" } else { "FAILED" });
    }
    let total: u64 = results.iter().map(|(_, e, _)| e).sum();
    println!("{:<22} {total:>14}", format!("{} targets", results.len()));
    let failed: Vec<&str> =
        results.iter().filter(|(_, _, ok)| !ok).map(|(t, _, _)| t.as_str()).collect();
    if !failed.is_empty() {
        bail!("fuzz: {} failed; inputs in fuzz/artifacts/", failed.join(", "));
    }
    Ok(())
}

/// A `stat::name: N` line from libFuzzer's final statistics.
fn stat(log: &str, name: &str) -> Option<u64> {
    log.lines().find_map(|l| l.strip_prefix(name)?.trim_start_matches(':').trim().parse().ok())
}

/// `cargo` in `fuzz/`, building into `fuzz/target` whatever
/// `CARGO_TARGET_DIR` says: fuzz builds use other compiler flags, and
/// sharing a target folder with normal builds would rebuild both.
fn fuzz_command(fuzz_dir: &Path) -> Command {
    let mut cmd = Command::new(cargo_path());
    cmd.current_dir(fuzz_dir).env_remove("CARGO_TARGET_DIR");
    cmd
}

fn cargo_path() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The targets: one file per target in `fuzz/fuzz_targets`.
fn list_targets() -> Result<Vec<String>> {
    let dir = root().join("fuzz").join("fuzz_targets");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            out.push(stem.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Installs cargo-fuzz if `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<()> {
    let found = Command::new(cargo_path())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!(
            "fuzz: cargo-fuzz is not installed; installing it (cargo install cargo-fuzz --locked)"
        );
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Seed corpora.

/// Seeds per target, name to bytes.
type Seeds = BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>;

fn add(
    seeds: &mut Seeds,
    target: &'static str,
    name: impl Into<String>,
    bytes: impl Into<Vec<u8>>,
) {
    seeds.entry(target).or_default().insert(name.into(), bytes.into());
}

/// Rebuilds `fuzz/corpus/` (every file replaced).
fn build_corpus() -> Result<()> {
    let fixtures = fixtures_dir()?;
    let mut seeds = Seeds::new();
    generated_seeds(&mut seeds)?;
    fixture_seeds(&mut seeds, &fixtures)?;
    malformed_seeds(&mut seeds)?;
    structured_seeds(&mut seeds);

    let dir = root().join("fuzz").join("corpus");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let mut total = 0usize;
    for (target, files) in &seeds {
        let tdir = dir.join(target);
        std::fs::create_dir_all(&tdir)?;
        let bytes: usize = files.values().map(Vec::len).sum();
        total += bytes;
        for (name, data) in files {
            std::fs::write(tdir.join(name), data)?;
        }
        println!("{target:<22} {:>4} seeds {:>8} bytes", files.len(), bytes);
    }
    println!("fuzz/corpus: {total} bytes");
    Ok(())
}

/// Generated repositories (small ones), their blocks and a firehose event.
fn generated_seeds(seeds: &mut Seeds) -> Result<()> {
    use atrepo::car::{CarSlice, DAG_CBOR};
    use atrepo::generate::{GenOptions, generate};
    use atrepo::verify::{Curve, Tid};

    for (records, curve) in [(1u64, Curve::K256), (4, Curve::P256), (24, Curve::K256)] {
        let g = generate(&GenOptions::default().records(records).seed(records).curve(curve))?;
        let car = g.writer.to_car(&g.key, g.rev)?;
        add(seeds, "car_stream", format!("generated-{records}.car"), car.clone());
        add(seeds, "repo_full", format!("generated-{records}.car"), car.clone());
        let slice = CarSlice::new(&car)?;
        let header = slice.header().to_cbor();
        add(seeds, "car_header", format!("generated-{records}"), header);
        add(seeds, "didkey_parse", format!("generated-{records}"), g.key.public_key().to_did_key());
        for (i, frame) in slice.enumerate() {
            let frame = frame?;
            add(seeds, "cid_parse", format!("generated-{records}-{i}"), frame.cid.to_bytes());
            if i == 0 {
                add(seeds, "commit_verify", format!("commit-{records}"), frame.data.to_vec());
            } else if frame.cid.codec() == DAG_CBOR {
                // Nodes start with `a2 61 65` ({"e": ...); records do not.
                let target = if frame.data.starts_with(&[0xa2, 0x61, 0x65]) {
                    "mst_node_decode"
                } else {
                    "dagcbor_roundtrip"
                };
                if seeds.get(target).is_none_or(|s| s.len() < 24) {
                    add(seeds, target, format!("generated-{records}-{i}"), frame.data.to_vec());
                }
            }
        }
        if records == 4 {
            use atrepo::event::{CommitEventBuilder, Frame, sync_event};
            let store = atrepo::store::MemoryStore::new();
            let built = g.writer.build(&g.key, g.rev)?;
            for (cid, bytes) in &built.blocks {
                atrepo::store::BlockStore::put(&store, *cid, bytes.clone())?;
            }
            let rev = Tid::from_u64(g.rev.as_u64() + 1);
            let post = atrepo::verify::drisl::Value::Map(
                [("text".to_owned(), atrepo::verify::drisl::Value::String("hi".into()))].into(),
            );
            let event = CommitEventBuilder::new(&store, &g.did, *built.commit.data(), rev)
                .since(Some(g.rev))
                .put("app.bsky.feed.post/3kdgeqpfkj22a", post.to_cbor())
                .build(&g.key)?;
            add(seeds, "event_decode", "commit-body", event.body.clone());
            add(seeds, "event_decode", "commit-frame", Frame::encode("#commit", &event.body));
            let sync = sync_event(&g.did, *built.commit.data(), g.rev, 7, &g.key)?;
            add(seeds, "event_decode", "sync-frame", Frame::encode("#sync", &sync.body));
            add(
                seeds,
                "event_decode",
                "error-frame",
                Frame::encode_error("FutureCursor", Some("x")),
            );
        }
    }
    Ok(())
}

/// The interop fixtures: `$ATPROTO_INTEROP_TESTS`, else
/// `interop-tests/fixtures`, else `../shared/atproto-interop-tests`.
fn fixtures_dir() -> Result<PathBuf> {
    let candidates = [
        std::env::var_os("ATPROTO_INTEROP_TESTS").map(PathBuf::from),
        Some(root().join("interop-tests").join("fixtures")),
        root().parent().map(|p| p.join("shared").join("atproto-interop-tests")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("crypto").is_dir())
        .context("no interop fixtures: set ATPROTO_INTEROP_TESTS or run cargo xtask fetch-fixtures")
}

/// Strings and vectors from the interop fixtures.
fn fixture_seeds(seeds: &mut Seeds, fixtures: &Path) -> Result<()> {
    let read = |rel: &str| -> Result<String> {
        let p = fixtures.join(rel);
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    // did:keys, wherever they appear in the crypto fixtures.
    for rel in [
        "crypto/w3c_didkey_K256.json",
        "crypto/w3c_didkey_P256.json",
        "crypto/signature-fixtures.json",
    ] {
        let text = read(rel)?;
        for (i, key) in text.split('"').filter(|s| s.starts_with("did:key:z")).enumerate() {
            let stem = rel.trim_start_matches("crypto/").trim_end_matches(".json");
            add(seeds, "didkey_parse", format!("{stem}-{i}"), key);
        }
    }
    // Syntax: a few valid and invalid lines of every kind.
    let dir = fixtures.join("syntax");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for file in files {
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("x").to_owned();
        let text = std::fs::read_to_string(&file)?;
        let lines = text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        for (i, line) in lines.take(4).enumerate() {
            add(seeds, "syntax_parse", format!("{stem}-{i}"), line);
        }
    }
    // DRISL: the CBOR of the data-model fixtures.
    let text = read("data-model/data-model-fixtures.json")?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    for (i, case) in json.as_array().into_iter().flatten().enumerate() {
        if let Some(b64) = case.get("cbor_base64").and_then(|v| v.as_str()) {
            add(seeds, "dagcbor_roundtrip", format!("data-model-{i}"), base64(b64)?);
        }
    }
    Ok(())
}

/// The malformed-input corpus as seeds for the entry point that reads
/// each file.
fn malformed_seeds(seeds: &mut Seeds) -> Result<()> {
    let dir = root().join(crate::corpus::DIR);
    for area in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let area = area?.path();
        if !area.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&area)? {
            let file = file?.path();
            let name = format!(
                "malformed-{}-{}",
                area.file_name().and_then(|s| s.to_str()).unwrap_or(""),
                file.file_name().and_then(|s| s.to_str()).unwrap_or("")
            );
            let bytes = std::fs::read(&file)?;
            let target = match file.extension().and_then(|e| e.to_str()) {
                Some("car") if bytes.len() <= 64 * 1024 => "repo_full",
                Some("cbor") => "dagcbor_roundtrip",
                Some("event") => "event_decode",
                Some("txt") => "didkey_parse",
                _ => continue,
            };
            add(seeds, target, name.clone(), bytes.clone());
            if target == "repo_full" {
                add(seeds, "car_stream", name, bytes);
            }
        }
    }
    Ok(())
}

/// Byte strings for the structured and model targets (a fixed-seed
/// generator: their inputs are choices, not formats).
fn structured_seeds(seeds: &mut Seeds) {
    let mut state = 0x5eed_f022_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).to_le_bytes()[0]
    };
    for (i, keys) in [0u8, 1, 3, 8, 20, 40, 63].into_iter().enumerate() {
        for mutation in 0..7u8 {
            let mut bytes = vec![keys];
            bytes.extend((0..usize::from(keys) * 13).map(|_| next()));
            bytes.extend((0..usize::from(keys)).map(|_| next()));
            bytes.push(mutation);
            bytes.extend((0..4).map(|_| next()));
            add(seeds, "mst_walk_structured", format!("keys-{i}-{mutation}"), bytes);
        }
    }
    for i in 0..16u8 {
        let mut bytes = vec![i];
        bytes.extend((0..64).map(|_| next()));
        add(seeds, "blockstore_model", format!("ops-{i}"), bytes);
    }
    let cids: [&[u8]; 4] = [
        &[0x12, 0x20],
        &[0x01, 0x55, 0x00, 0x04, b'a', b'b', b'c', b'd'],
        &[0x01, 0x70, 0x12, 0x20],
        &[0x01, 0x71, 0x13, 0x40],
    ];
    for (i, prefix) in cids.iter().enumerate() {
        let mut bytes = prefix.to_vec();
        bytes.extend((0..64).map(|_| next()));
        add(seeds, "cid_parse", format!("odd-{i}"), bytes);
    }
}

/// Standard base64 (with or without padding).
fn base64(s: &str) -> Result<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = u32::try_from(ALPHABET.iter().position(|&a| a == c).context("not base64")?)?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits).to_le_bytes()[0]);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
