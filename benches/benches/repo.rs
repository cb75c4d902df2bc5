//! Whole-repository verification (`verify_repo` and `RepoReader`): every
//! check (CIDs, commit, signature, MST rules, records), on a signed 5 MB
//! repository from atrepo's generator (15,000 records).
//!
//! - `streaming/*`: the blocks in the streamable order a PDS exports:
//!   from a slice in memory, from a file (`RepoReader::from_file`: read and
//!   hashed on a second thread) and from a `Read`, both with a 64 MiB
//!   memory limit;
//! - `shuffled/*`: the same repository with its blocks shuffled: in
//!   memory, from a file with a 1 MiB limit (blocks wait in the file lane
//!   and are read back), and from a `Read` with a 1 MiB limit through each
//!   spill backend compiled in (`redb` always, as atrepo's command line
//!   needs it; `sqlite` and `sled` with the benches crate's features of the
//!   same names).
//!
//! Inputs are cached under `target/bench-data/`.
//!
//! Run: `cargo bench -p benches --bench repo --features sqlite,sled --
//! --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::Path;

use atrepo::store::{Bytes, SpillOptions};
use atrepo::verify::PublicKey;
use atrepo::{RepoReader, VerifyOptions, verify_repo, verify_repo_reader};
use benches::generated::{Order, cached_car, key};
use criterion::{Criterion, Throughput};

const RECORDS: u64 = 15_000;
const SEED: u64 = 1;
const MIB: u64 = 1024 * 1024;

fn options(key: &PublicKey, memory_limit: u64) -> VerifyOptions {
    VerifyOptions::default().key(key.clone()).memory_limit(memory_limit)
}

/// Verifies from a slice and returns the record count.
fn slice(car: &Bytes, key: &PublicKey) -> u64 {
    verify_repo(car.clone(), options(key, VerifyOptions::DEFAULT_MEMORY_LIMIT)).unwrap().records
}

/// Verifies a file through `RepoReader::from_file`.
fn file(path: &Path, key: &PublicKey, memory_limit: u64) -> u64 {
    RepoReader::from_file(path, options(key, memory_limit)).unwrap().finish().unwrap().records
}

/// Verifies a file as a plain `Read` stream, spilling with `spill`.
fn reader(path: &Path, key: &PublicKey, memory_limit: u64, spill: Option<&SpillOptions>) -> u64 {
    let file = std::fs::File::open(path).unwrap();
    let mut options = options(key, memory_limit);
    if let Some(spill) = spill {
        options = options.spill(Some(spill.clone().memory_limit(memory_limit)));
    }
    let report = verify_repo_reader(std::io::BufReader::with_capacity(1 << 16, file), options);
    report.unwrap().records
}

/// The spill backends compiled in.
fn spill_backends() -> Vec<(&'static str, SpillOptions)> {
    let mut out = Vec::new();
    for name in ["redb", "sqlite", "sled"] {
        if let Ok(spill) = SpillOptions::default().target_spec(name) {
            out.push((name, spill));
        }
    }
    out
}

fn main() {
    let key = key(SEED);
    let streaming = cached_car(RECORDS, SEED, Order::Streaming);
    let shuffled = cached_car(RECORDS, SEED, Order::Shuffled);
    let streaming_bytes = Bytes::from(std::fs::read(&streaming).unwrap());
    let shuffled_bytes = Bytes::from(std::fs::read(&shuffled).unwrap());
    let len = streaming_bytes.len() as u64;
    assert_eq!(len, shuffled_bytes.len() as u64);

    // Every way in agrees before anything is timed, and the shuffled file
    // really does need the file lane and the spill store.
    assert_eq!(slice(&streaming_bytes, &key), RECORDS);
    assert_eq!(slice(&shuffled_bytes, &key), RECORDS);
    assert_eq!(file(&streaming, &key, 64 * MIB), RECORDS);
    assert_eq!(reader(&streaming, &key, 64 * MIB, None), RECORDS);
    let report = RepoReader::from_file(&shuffled, options(&key, MIB)).unwrap().finish().unwrap();
    assert_eq!(report.records, RECORDS);
    let spills = spill_backends();
    for (name, spill) in &spills {
        let file = std::fs::File::open(&shuffled).unwrap();
        let options = options(&key, MIB).spill(Some(spill.clone().memory_limit(MIB)));
        let report = verify_repo_reader(file, options).unwrap();
        assert!(report.memory.spilled, "{name}: nothing was spilled");
    }

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("repo/streaming");
    g.throughput(Throughput::Bytes(len));
    g.bench_function("slice", |b| b.iter(|| slice(black_box(&streaming_bytes), &key)));
    g.bench_function("file_64MiB", |b| b.iter(|| file(black_box(&streaming), &key, 64 * MIB)));
    g.bench_function("reader_64MiB", |b| {
        b.iter(|| reader(black_box(&streaming), &key, 64 * MIB, None));
    });
    g.finish();

    let mut g = c.benchmark_group("repo/shuffled");
    g.throughput(Throughput::Bytes(len));
    g.bench_function("slice", |b| b.iter(|| slice(black_box(&shuffled_bytes), &key)));
    g.bench_function("file_lane_1MiB", |b| b.iter(|| file(black_box(&shuffled), &key, MIB)));
    for (name, spill) in &spills {
        g.bench_function(format!("reader_spill_{name}_1MiB"), |b| {
            b.iter(|| reader(black_box(&shuffled), &key, MIB, Some(spill)));
        });
    }
    g.finish();
    c.final_summary();
}
