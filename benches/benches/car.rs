//! CAR reading throughput on a repository-shaped CAR (about 10 MiB), next
//! to a baseline that only SHA-256-hashes the same block bytes.
//!
//! Verified parsing must hash every block, so SHA-256 is its floor; the
//! framing around it should be nearly free. Target: verified slice parsing
//! within 1.25x of the baseline. After the criterion runs, the bench prints
//! that ratio from its own alternating runs timed in thread CPU time (see
//! `benches::cpu::fastest`), which hold up on a busy machine where wall
//! times do not.
//!
//! The `car/gen-5MB` and `car/gen-100MB` groups do the same on signed
//! repositories from atrepo's own generator (`atrepo gen`, 15,000 and
//! 290,000 records, cached under `target/bench-data/`), with the other
//! baseline next to them: `slice_unchecked` reads every frame without
//! hashing, so verified parsing sits between the two.
//!
//! Run: `cargo bench -p benches --bench car -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::ops::Range;
use std::time::Duration;

use atrepo_car::{CarReader, CarSlice, Options};
use benches::cpu::fastest;
use benches::generated::{Order, cached_car_bytes};
use benches::repo_car::{RepoCar, repo_car};
use criterion::{Criterion, Throughput};
use sha2::Digest;

/// At least this many bytes of CAR.
const SIZE: usize = 10 << 20;
const SEED: u64 = 0x0a7e_9000;

/// (a) The floor: SHA-256 of every block's bytes, nothing else.
fn sha256_blocks(repo: &RepoCar) -> u8 {
    let mut acc = 0;
    for block in repo.block_bytes() {
        acc ^= sha2::Sha256::digest(block)[0];
    }
    acc
}

/// (b), (c) Parse the whole CAR through `CarSlice`.
fn slice(car: &[u8], options: Options) -> usize {
    let mut n = 0;
    for frame in CarSlice::with_options(car, options).unwrap() {
        n += frame.unwrap().data.len();
    }
    n
}

/// (d) Parse the whole CAR through `CarReader` over `&[u8]`.
fn reader(car: &[u8]) -> usize {
    let mut n = 0;
    for block in CarReader::new(car).unwrap() {
        n += block.unwrap().data.len();
    }
    n
}

fn bench(c: &mut Criterion, repo: &RepoCar) {
    let mut g = c.benchmark_group("car");
    // Every line is measured in CAR bytes, so the throughputs compare.
    g.throughput(Throughput::Bytes(repo.car.len() as u64));
    g.bench_function("sha256_blocks_baseline", |b| b.iter(|| sha256_blocks(black_box(repo))));
    g.bench_function("slice_verify", |b| {
        b.iter(|| slice(black_box(&repo.car), Options::default()));
    });
    g.bench_function("slice_unchecked", |b| {
        b.iter(|| slice(black_box(&repo.car), Options::default().unchecked()));
    });
    g.bench_function("reader_verify", |b| b.iter(|| reader(black_box(&repo.car))));
    g.finish();
}

/// Prints verified parsing's time over the hashing baseline's.
fn ratio(repo: &RepoCar) {
    const RUNS: usize = 60;
    let base = || {
        black_box(sha256_blocks(black_box(repo)));
    };
    let (base_s, slice_t) = fastest(RUNS, base, || {
        black_box(slice(black_box(&repo.car), Options::default()));
    });
    let (base_r, reader_t) = fastest(RUNS, base, || {
        black_box(reader(black_box(&repo.car)));
    });
    let base_t = base_s.min(base_r);
    let mib_s = |d: Duration| repo.car.len() as f64 / d.as_secs_f64() / f64::from(1 << 20);
    println!(
        "car: {} bytes, {} blocks ({} records, {} tree nodes, 1 commit)",
        repo.car.len(),
        repo.blocks.len(),
        repo.records,
        repo.nodes
    );
    println!(
        "car: fastest of {RUNS} alternating runs, in thread CPU time: \
         sha256_blocks_baseline {:.0} MiB/s, slice_verify {:.0} MiB/s, reader_verify {:.0} MiB/s",
        mib_s(base_t),
        mib_s(slice_t),
        mib_s(reader_t)
    );
    println!(
        "car: slice_verify / sha256_blocks_baseline = {:.3}x (target <= 1.25x); \
         reader_verify / sha256_blocks_baseline = {:.3}x",
        slice_t.as_secs_f64() / base_s.as_secs_f64(),
        reader_t.as_secs_f64() / base_r.as_secs_f64()
    );
}

/// Where each block's bytes are in `car`.
fn block_ranges(car: &[u8]) -> Vec<Range<usize>> {
    let start = car.as_ptr() as usize;
    CarSlice::with_options(car, Options::default().unchecked())
        .unwrap()
        .map(|frame| {
            let data = frame.unwrap().data;
            let at = data.as_ptr() as usize - start;
            at..at + data.len()
        })
        .collect()
}

/// The baseline on a generated repository: SHA-256 of every block's bytes.
fn sha256_ranges(car: &[u8], blocks: &[Range<usize>]) -> u8 {
    let mut acc = 0;
    for r in blocks {
        acc ^= sha2::Sha256::digest(&car[r.clone()])[0];
    }
    acc
}

/// Signed repositories from `atrepo gen`: 5 MB and 100 MB.
fn bench_generated(c: &mut Criterion) {
    for (name, records) in [("gen-5MB", 15_000), ("gen-100MB", 290_000)] {
        let car = cached_car_bytes(records, 1, Order::Streaming);
        let blocks = block_ranges(&car);
        assert_eq!(
            slice(&car, Options::default()),
            blocks.iter().map(ExactSizeIterator::len).sum::<usize>()
        );
        let mut g = c.benchmark_group(format!("car/{name}"));
        if car.len() > 50_000_000 {
            g.sample_size(10);
        }
        g.throughput(Throughput::Bytes(car.len() as u64));
        g.bench_function("sha256_blocks_baseline", |b| {
            b.iter(|| sha256_ranges(black_box(&car), &blocks));
        });
        g.bench_function("slice_unchecked", |b| {
            b.iter(|| slice(black_box(&car), Options::default().unchecked()));
        });
        g.bench_function("slice_verify", |b| {
            b.iter(|| slice(black_box(&car), Options::default()));
        });
        g.bench_function("reader_verify", |b| b.iter(|| reader(black_box(&car))));
        g.finish();
    }
}

fn main() {
    let repo = repo_car(SIZE, SEED);
    // The readers must agree with the generator before anything is timed.
    assert_eq!(
        slice(&repo.car, Options::default()),
        repo.block_bytes().map(<[u8]>::len).sum::<usize>()
    );
    assert_eq!(reader(&repo.car), slice(&repo.car, Options::default()));

    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &repo);
    bench_generated(&mut c);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test` runs each bench once
    // and needs no ratio.
    if std::env::args().any(|a| a == "--bench") {
        ratio(&repo);
    }
}
