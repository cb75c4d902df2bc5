//! `cargo xtask bench [--quick] [--no-peers] [--runs N]`: whole-process
//! measurements of `atrepo verify` next to the physical limit (reading the
//! file and SHA-256-hashing every block once) and to repo-stream, on the
//! same generated repositories in the same run, printed as one Markdown
//! table for `docs/performance.md`.
//!
//! Steps: build `atrepo` and the benches crate's tools in release (the
//! `peers` feature for `peer-repo-stream` unless `--no-peers`); generate
//! the inputs with `atrepo gen` once, cached under `target/bench-data/`;
//! run every tool once untimed (warm page cache, and a check that each
//! walked every record), then N rounds of every tool in turn through the
//! `measure` tool (wall time around spawn and reap, peak RSS from `wait4`),
//! and report medians. Rounds alternate the tools so that a busy spell on
//! the machine hits all of them alike.
//!
//! Shuffled inputs (`atrepo gen --order shuffled`, a seeded uniform
//! shuffle) stand for real exports, which are out of tree order too (the
//! reference PDS's `getRepo` writes blocks newest commit first, by CID
//! within a commit; a repository written in one commit is in CID order,
//! i.e. shuffled): they are also read from standard input with `--mem-limit 64`, a stream that
//! cannot be read again, the case of a relay backfilling over HTTP.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use atrepo::verify::{Curve, SigningKey};

use crate::{cargo, root, run};

/// The seed of every generated repository (its signing key too).
const SEED: u64 = 1;

/// One input of the table.
struct Input {
    /// What the table calls it.
    label: &'static str,
    /// Records to generate (about 350 bytes of CAR each).
    records: u64,
    /// Whether its blocks are shuffled (out of tree order, as real exports
    /// are; see the module docs): the file lane's case, and read from a
    /// stream too.
    shuffled: bool,
    /// Whether `--quick` measures it.
    quick: bool,
    /// Runs instead of the default (the biggest inputs take seconds each).
    runs: Option<usize>,
}

const INPUTS: &[Input] = &[
    Input { label: "3 KiB", records: 8, shuffled: false, quick: true, runs: None },
    Input { label: "300 KiB", records: 870, shuffled: false, quick: true, runs: None },
    Input { label: "5 MiB", records: 15_000, shuffled: false, quick: true, runs: None },
    Input { label: "128 MiB", records: 384_000, shuffled: false, quick: true, runs: None },
    Input { label: "500 MiB", records: 1_500_000, shuffled: false, quick: false, runs: Some(3) },
    Input {
        label: "128 MiB shuffled",
        records: 384_000,
        shuffled: true,
        quick: false,
        runs: Some(3),
    },
    Input {
        label: "500 MiB shuffled",
        records: 1_500_000,
        shuffled: true,
        quick: false,
        runs: Some(3),
    },
];

/// Inputs at least this big also run with `--mem-limit 64`.
const MEM_LIMIT_MIN_BYTES: u64 = 64 << 20;

/// One program measured on one input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    /// `atrepo verify FILE --key K`: every check, default memory limit.
    Atrepo,
    /// The same with `--mem-limit 64`.
    AtrepoLimited,
    /// `atrepo verify - --key K --mem-limit 64` with the file on standard
    /// input: a stream, which cannot be read again (shuffled inputs only:
    /// its blocks that wait go to the scratch file).
    AtrepoStream,
    /// `sha-baseline FILE`: read, frame, SHA-256 every block, one thread.
    Sha1,
    /// `sha-baseline FILE --threads 2`.
    Sha2,
    /// `peer-repo-stream FILE`: repo-stream's walk, summing record sizes.
    RepoStream,
}

/// Wall times and peak RSS of one tool's timed runs.
#[derive(Default)]
struct Runs {
    wall: Vec<f64>,
    rss_kib: Vec<u64>,
}

impl Runs {
    fn median(&self) -> f64 {
        let mut v = self.wall.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
    fn peak_rss(&self) -> u64 {
        self.rss_kib.iter().copied().max().unwrap_or(0)
    }
}

/// Runs the whole-process benchmark and prints the table.
pub(crate) fn run_bench(args: &[String]) -> Result<()> {
    let mut quick = false;
    let mut peers = true;
    let mut runs = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--no-peers" => peers = false,
            "--runs" => {
                let value = args.next().context("--runs needs a number")?;
                runs =
                    Some(value.parse::<usize>().with_context(|| format!("bad --runs {value:?}"))?);
            }
            other => bail!("bench: unknown argument {other:?}"),
        }
    }
    let default_runs = runs.unwrap_or(if quick { 3 } else { 5 });

    // The workspace's own target folder, so inputs stay cached for users.
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let mut build = cargo();
    build.args(["build", "--release", "-p", "atrepo", "-p", "benches", "--bins"]);
    if peers {
        build.args(["--features", "benches/peers"]);
    }
    run(&mut build)?;
    let bin = |name: &str| target.join("release").join(name);
    let data = target.join("bench-data");
    std::fs::create_dir_all(&data).with_context(|| format!("{}", data.display()))?;
    let key = SigningKey::from_seed(Curve::K256, &SEED.to_le_bytes())?.public_key().to_did_key();

    let load_before = load_average();
    let mut table = Vec::new();
    for input in INPUTS.iter().filter(|i| !quick || i.quick) {
        let file = generate(&bin("atrepo"), &data, input, &key)?;
        let size = std::fs::metadata(&file)?.len();
        let mut tools = vec![Tool::Atrepo];
        if size >= MEM_LIMIT_MIN_BYTES {
            tools.push(Tool::AtrepoLimited);
        }
        if input.shuffled {
            tools.push(Tool::AtrepoStream);
        } else {
            tools.extend([Tool::Sha1, Tool::Sha2]);
            if peers {
                tools.push(Tool::RepoStream);
            }
        }
        let command = |tool: Tool| -> Command {
            let mut c;
            match tool {
                Tool::Atrepo | Tool::AtrepoLimited => {
                    c = Command::new(bin("atrepo"));
                    c.arg("verify").arg(&file).args(["--key", &key]);
                    if tool == Tool::AtrepoLimited {
                        c.args(["--mem-limit", "64"]);
                    }
                }
                Tool::AtrepoStream => {
                    c = Command::new(bin("atrepo"));
                    c.args(["verify", "-", "--key", &key, "--mem-limit", "64"]);
                }
                Tool::Sha1 | Tool::Sha2 => {
                    c = Command::new(bin("sha-baseline"));
                    c.arg(&file);
                    if tool == Tool::Sha2 {
                        c.args(["--threads", "2"]);
                    }
                }
                Tool::RepoStream => {
                    c = Command::new(bin("peer-repo-stream"));
                    c.arg(&file);
                }
            }
            c
        };

        // Untimed: warms the page cache, and checks that each tool walked
        // every record.
        eprintln!("bench: {} ({size} bytes, {} records): warm-up", input.label, input.records);
        let atrepo_or_peer = |t: Tool| {
            matches!(t, Tool::Atrepo | Tool::AtrepoLimited | Tool::AtrepoStream | Tool::RepoStream)
        };
        for &tool in &tools {
            let mut c = command(tool);
            if atrepo_or_peer(tool) {
                c.arg("--json");
            }
            if tool == Tool::AtrepoStream {
                c.stdin(open(&file)?);
            }
            let out =
                c.output().with_context(|| format!("could not start {:?}", c.get_program()))?;
            if !out.status.success() {
                bail!(
                    "{:?} failed on {}: {}",
                    c.get_program(),
                    file.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            if atrepo_or_peer(tool) {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .with_context(|| format!("{:?}: output is not JSON", c.get_program()))?;
                let records = v.pointer("/report/records").or_else(|| v.get("records"));
                if records.and_then(serde_json::Value::as_u64) != Some(input.records) {
                    bail!(
                        "{:?} on {}: expected {} records, found {records:?}",
                        c.get_program(),
                        file.display(),
                        input.records
                    );
                }
            }
        }

        let n = input.runs.map_or(default_runs, |r| r.min(default_runs));
        let mut results: Vec<Runs> = tools.iter().map(|_| Runs::default()).collect();
        for round in 0..n {
            eprintln!("bench: {}: round {}/{n}", input.label, round + 1);
            for (&tool, runs) in tools.iter().zip(&mut results) {
                let stdin = (tool == Tool::AtrepoStream).then_some(file.as_path());
                let (wall, rss) = measure(&bin("measure"), &command(tool), stdin)?;
                runs.wall.push(wall);
                runs.rss_kib.push(rss);
            }
        }
        let get = |tool: Tool| tools.iter().position(|&t| t == tool).and_then(|i| results.get(i));
        table.push(Row {
            label: input.label,
            records: input.records,
            size,
            atrepo: get(Tool::Atrepo).map(|r| (r.median(), r.peak_rss())),
            limited: get(Tool::AtrepoLimited).map(|r| (r.median(), r.peak_rss())),
            stream: get(Tool::AtrepoStream).map(|r| (r.median(), r.peak_rss())),
            sha1: get(Tool::Sha1).map(|r| (r.median(), r.peak_rss())),
            sha2: get(Tool::Sha2).map(|r| (r.median(), r.peak_rss())),
            repo_stream: get(Tool::RepoStream).map(|r| (r.median(), r.peak_rss())),
            runs: n,
        });
    }
    let load_after = load_average();

    let report = render(&table, &load_before, &load_after);
    print!("{report}");
    let out = data.join("results.md");
    std::fs::write(&out, &report).with_context(|| format!("{}", out.display()))?;
    eprintln!("bench: table written to {}", out.display());
    Ok(())
}

/// Generates `input` with `atrepo gen` unless it is cached, and returns its
/// path. The name matches `benches::generated::cached_car`, so the
/// criterion benches and this command share the files.
fn generate(atrepo: &Path, data: &Path, input: &Input, key: &str) -> Result<PathBuf> {
    let order = if input.shuffled { "shuffled" } else { "streaming" };
    let file = data.join(format!("repo-{}-seed{SEED}-{order}.car", input.records));
    if file.exists() {
        return Ok(file);
    }
    eprintln!("bench: generating {} ({} records, {order})", file.display(), input.records);
    let part = file.with_extension("car.part");
    let out = Command::new(atrepo)
        .args(["gen", "--records", &input.records.to_string(), "--seed", &SEED.to_string()])
        .args(["--order", order, "--json", "--out"])
        .arg(&part)
        .output()
        .context("could not start atrepo gen")?;
    if !out.status.success() {
        bail!("atrepo gen failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("atrepo gen --json")?;
    if v.get("key").and_then(serde_json::Value::as_str) != Some(key) {
        bail!("atrepo gen signed with {:?}, expected {key}", v.get("key"));
    }
    std::fs::rename(&part, &file)?;
    Ok(file)
}

/// Opens `file` to be a child's standard input.
fn open(file: &Path) -> Result<std::fs::File> {
    std::fs::File::open(file).with_context(|| format!("{}", file.display()))
}

/// Runs `cmd` once under the `measure` tool, with `stdin` (if any) as its
/// standard input: (wall seconds, peak RSS KiB).
fn measure(measure: &Path, cmd: &Command, stdin: Option<&Path>) -> Result<(f64, u64)> {
    let mut m = Command::new(measure);
    m.arg("--").arg(cmd.get_program()).args(cmd.get_args());
    if let Some(file) = stdin {
        // `measure` passes its standard input on to the command.
        m.stdin(open(file)?);
    }
    let out = m.output().context("could not start measure")?;
    if !out.status.success() {
        bail!("measure {:?} failed: {}", cmd.get_program(), String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("measure output")?;
    let wall = v.get("wall_secs").and_then(serde_json::Value::as_f64).context("wall_secs")?;
    let rss = v.get("max_rss_kib").and_then(serde_json::Value::as_u64).context("max_rss_kib")?;
    Ok((wall, rss))
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` has them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// One line of the table: (median seconds, peak RSS KiB) per tool.
struct Row {
    label: &'static str,
    records: u64,
    size: u64,
    atrepo: Option<(f64, u64)>,
    limited: Option<(f64, u64)>,
    stream: Option<(f64, u64)>,
    sha1: Option<(f64, u64)>,
    sha2: Option<(f64, u64)>,
    repo_stream: Option<(f64, u64)>,
    runs: usize,
}

fn render(rows: &[Row], load_before: &str, load_after: &str) -> String {
    let mbs = |size: u64, t: Option<(f64, u64)>| {
        t.map_or_else(|| "–".to_owned(), |(s, _)| format!("{:.0}", size as f64 / s / 1e6))
    };
    let ratio = |a: Option<(f64, u64)>, b: Option<(f64, u64)>| match (a, b) {
        (Some((a, _)), Some((b, _))) => format!("{:.2}x", a / b),
        _ => "–".to_owned(),
    };
    let rss_ratio = |size: u64, t: Option<(f64, u64)>| {
        t.map_or_else(
            || "–".to_owned(),
            |(_, kib)| format!("{:.2}", kib as f64 * 1024.0 / size as f64),
        )
    };
    let ms = |t: Option<(f64, u64)>| {
        t.map_or_else(|| "–".to_owned(), |(s, _)| format!("{:.1}", s * 1e3))
    };
    let mib = |t: Option<(f64, u64)>| {
        t.map_or_else(|| "–".to_owned(), |(_, k)| format!("{:.1}", k as f64 / 1024.0))
    };

    let mut s = String::new();
    let _ = writeln!(s, "Load average (1, 5, 15 min): {load_before} before, {load_after} after.\n");
    let _ = writeln!(
        s,
        "| repo | records | atrepo MB/s | SHA-256 MB/s (1 thread) | SHA-256 MB/s (2 threads) | atrepo time ÷ SHA-256 (1 thread) | repo-stream MB/s | repo-stream time ÷ atrepo | atrepo peak RSS ÷ file | atrepo `--mem-limit 64` MB/s | `--mem-limit 64` peak RSS MiB | stream `--mem-limit 64` MB/s | stream peak RSS MiB |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.records,
            mbs(r.size, r.atrepo),
            mbs(r.size, r.sha1),
            mbs(r.size, r.sha2),
            ratio(r.atrepo, r.sha1),
            mbs(r.size, r.repo_stream),
            ratio(r.repo_stream, r.atrepo),
            rss_ratio(r.size, r.atrepo),
            mbs(r.size, r.limited),
            mib(r.limited),
            mbs(r.size, r.stream),
            mib(r.stream),
        );
    }
    let _ = writeln!(s, "\nMedian wall time in ms (peak RSS in MiB), whole process:\n");
    let _ = writeln!(
        s,
        "| repo | bytes | runs | atrepo | atrepo `--mem-limit 64` | atrepo `--mem-limit 64`, stream | SHA-256 (1 thread) | SHA-256 (2 threads) | repo-stream |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows {
        let cell = |t: Option<(f64, u64)>| {
            if t.is_some() { format!("{} ({})", ms(t), mib(t)) } else { "–".to_owned() }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.size,
            r.runs,
            cell(r.atrepo),
            cell(r.limited),
            cell(r.stream),
            cell(r.sha1),
            cell(r.sha2),
            cell(r.repo_stream),
        );
    }
    s
}
