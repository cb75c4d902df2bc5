//! CAR reading throughput on a repository-shaped CAR (about 10 MiB), next
//! to a baseline that only SHA-256-hashes the same block bytes.
//!
//! Verified parsing must hash every block, so SHA-256 is its floor; the
//! framing around it should be nearly free. Target: verified slice parsing
//! within 1.25x of the baseline. After the criterion runs, the bench prints
//! that ratio from its own alternating runs timed in thread CPU time (see
//! `fastest`), which hold up on a busy machine where wall times do not.
//!
//! Run: `cargo bench -p benches --bench car -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::Duration;

use atrepo_car::{CarReader, CarSlice, Options};
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

/// CPU time used by this thread so far. On a busy machine a run is often
/// preempted, and wall time then counts other processes' work; CPU time
/// does not.
#[cfg(target_os = "linux")]
fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `timespec` that outlives the call,
    // and `clock_gettime` writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// Wall time where thread CPU time is not available.
#[cfg(not(target_os = "linux"))]
fn cpu_time() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// Runs `a` and `b` alternately `runs` times and returns each one's
/// fastest run in CPU time: both do a fixed amount of work, so the minimum
/// is the run least disturbed by the rest of the machine.
fn fastest(runs: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let (mut ta, mut tb) = (Duration::MAX, Duration::MAX);
    for _ in 0..runs {
        let t = cpu_time();
        a();
        ta = ta.min(cpu_time() - t);
        let t = cpu_time();
        b();
        tb = tb.min(cpu_time() - t);
    }
    (ta, tb)
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
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test` runs each bench once
    // and needs no ratio.
    if std::env::args().any(|a| a == "--bench") {
        ratio(&repo);
    }
}
