//! Store backends compared through one workload.
//!
//! Every backend implements [`BenchStore`]: `ingest` puts a repository's
//! blocks in (for the read-only CAR-file backend: writes the CAR and indexes
//! it), and the measurements go through the `BlockStore` trait. The blocks
//! are repository-shaped and deterministic: records of 100 B to 2 KB and
//! MST-node-like blocks of 300 B to 2 KB, with real SHA-256 CIDs.
//!
//! Two modes:
//!
//! - `cargo bench -p benches --features redb,sqlite,sled,car --bench store`
//!   runs criterion groups `store/ingest`, `store/get` and `store/scan` on
//!   20,000 blocks per backend.
//! - `ATREPO_STORE_TABLE=1 cargo bench -p benches --features redb,sqlite,sled,car --bench store`
//!   prints the table in `docs/choosing-a-backend.md` instead: each backend
//!   runs in a fresh child process (so its peak memory is its own) on
//!   100,000 blocks (`ATREPO_STORE_BLOCKS` to change) and reports ingest
//!   MB/s, random `get` p50/p99, a full scan, on-disk bytes and peak RSS.

// Timings and sizes are converted to floats for the report and back to
// indices for percentiles; none comes near the limits of either type.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "report arithmetic on small, non-negative numbers"
)]

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use atrepo_store::{Batch, BlockStore, Bytes, MemoryStore};
#[cfg(any(feature = "redb", feature = "sqlite", feature = "sled"))]
use atrepo_store::{OpenOptions, SpillOptions, SpillStore};
use cid::Cid;
use criterion::{BatchSize, Criterion, Throughput};
use sha2::Digest;

/// Blocks per write batch, as a backfill would write them.
const BATCH: usize = 1000;
/// Blocks in the criterion runs.
const CRITERION_BLOCKS: usize = 20_000;
/// Blocks in the table, unless `ATREPO_STORE_BLOCKS` says otherwise.
const TABLE_BLOCKS: usize = 100_000;
/// Random gets timed for the table's percentiles.
const TABLE_GETS: usize = 100_000;

/// One backend under the shared workload.
trait BenchStore {
    /// The name in reports.
    fn name(&self) -> &'static str;
    /// Puts `blocks` into a new store kept in `dir` and returns it.
    fn ingest(&self, dir: &Path, blocks: &mut dyn Iterator<Item = Batch>) -> Box<dyn BlockStore>;
}

/// A writable backend, opened from a spec string with given options.
struct Writable {
    name: &'static str,
    open: fn(&Path) -> Box<dyn BlockStore>,
}

impl BenchStore for Writable {
    fn name(&self) -> &'static str {
        self.name
    }
    fn ingest(&self, dir: &Path, blocks: &mut dyn Iterator<Item = Batch>) -> Box<dyn BlockStore> {
        let store = (self.open)(dir);
        for batch in blocks {
            store.write(batch).unwrap();
        }
        store.flush().unwrap();
        store
    }
}

/// The CAR-file backend: ingest writes a CAR and builds its index.
#[cfg(feature = "car")]
struct CarFile;

#[cfg(feature = "car")]
impl BenchStore for CarFile {
    fn name(&self) -> &'static str {
        "car (read-only, index saved)"
    }
    fn ingest(&self, dir: &Path, blocks: &mut dyn Iterator<Item = Batch>) -> Box<dyn BlockStore> {
        let path = dir.join("repo.car");
        let root = atrepo_car::blessed_cid(atrepo_car::DAG_CBOR, b"root");
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let header = atrepo_car::Header::new(vec![root]).unwrap();
        let mut writer = atrepo_car::CarWriter::new(file, &header).unwrap();
        for batch in blocks {
            for (cid, bytes) in batch.iter() {
                writer.write(cid, bytes).unwrap();
            }
        }
        writer.finish().unwrap().into_inner().unwrap().sync_all().unwrap();
        Box::new(atrepo_store::CarFileStore::open(&path).unwrap())
    }
}

#[cfg(any(feature = "redb", feature = "sqlite", feature = "sled"))]
#[allow(clippy::needless_pass_by_value, reason = "called with format! results")]
fn spec_store(spec: String, options: OpenOptions) -> Box<dyn BlockStore> {
    atrepo_store::open_with(&spec.parse().unwrap(), &options).unwrap()
}

/// Every backend this build includes.
fn backends() -> Vec<Box<dyn BenchStore>> {
    #[cfg_attr(
        not(any(feature = "redb", feature = "sqlite", feature = "sled", feature = "car")),
        allow(unused_mut, reason = "only the memory backend without features")
    )]
    let mut all: Vec<Box<dyn BenchStore>> =
        vec![Box::new(Writable { name: "memory", open: |_| Box::new(MemoryStore::new()) })];
    #[cfg(feature = "redb")]
    all.extend([
        Box::new(Writable {
            name: "redb (durable)",
            open: |d| {
                spec_store(format!("redb:{}", d.join("b.redb").display()), OpenOptions::new())
            },
        }) as Box<dyn BenchStore>,
        Box::new(Writable {
            name: "redb (scratch)",
            open: |d| {
                spec_store(format!("redb:{}", d.join("b.redb").display()), OpenOptions::scratch())
            },
        }),
    ]);
    #[cfg(feature = "sqlite")]
    all.extend([
        Box::new(Writable {
            name: "sqlite (durable)",
            open: |d| {
                spec_store(format!("sqlite:{}", d.join("b.db").display()), OpenOptions::new())
            },
        }) as Box<dyn BenchStore>,
        Box::new(Writable {
            name: "sqlite (scratch)",
            open: |d| {
                spec_store(format!("sqlite:{}", d.join("b.db").display()), OpenOptions::scratch())
            },
        }),
    ]);
    #[cfg(feature = "sled")]
    all.extend([
        Box::new(Writable {
            name: "sled (durable)",
            open: |d| {
                spec_store(format!("sled:{}", d.join("b.sled").display()), OpenOptions::new())
            },
        }) as Box<dyn BenchStore>,
        Box::new(Writable {
            name: "sled (scratch)",
            open: |d| {
                spec_store(format!("sled:{}", d.join("b.sled").display()), OpenOptions::scratch())
            },
        }),
    ]);
    #[cfg(any(feature = "redb", feature = "sqlite", feature = "sled"))]
    all.push(Box::new(Writable {
        name: "spill (64 MiB, then default target)",
        open: |d| Box::new(SpillStore::new(SpillOptions::default().parent(d)).unwrap()),
    }));
    #[cfg(feature = "car")]
    all.push(Box::new(CarFile));
    all
}

/// splitmix64, for deterministic sizes and contents.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Block `i` of the repository: 70% records (100 B to 2 KB), 30% MST-node
/// sized (300 B to 2 KB), random bytes under a real dag-cbor CID.
fn repo_block(i: u64) -> (Cid, Bytes) {
    let mut state = i.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5703_e000;
    let len = if next(&mut state) % 10 < 7 {
        100 + next(&mut state) % 1900
    } else {
        300 + next(&mut state) % 1700
    };
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < len {
        bytes.extend_from_slice(&next(&mut state).to_le_bytes());
    }
    bytes.truncate(usize::try_from(len).unwrap_or(0));
    let digest = sha2::Sha256::digest(&bytes);
    let cid = Cid::new_v1(0x71, cid::multihash::Multihash::wrap(0x12, &digest).unwrap());
    (cid, Bytes::from(bytes))
}

/// The repository as batches, generated as they are consumed.
fn batches(n: usize) -> impl Iterator<Item = Batch> {
    (0..n)
        .step_by(BATCH)
        .map(move |start| (start..(start + BATCH).min(n)).map(|i| repo_block(i as u64)).collect())
}

/// Bytes of every file under `path`.
fn disk_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.is_dir() {
        std::fs::read_dir(path).unwrap().map(|e| disk_bytes(&e.unwrap().path())).sum()
    } else {
        meta.len()
    }
}

/// A field of `/proc/self/status`, in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// In a child process: run the whole workload on one backend and print one
/// table row.
fn table_row(backend: &dyn BenchStore, n: usize) {
    let cids: Vec<Cid> = (0..n as u64).map(|i| repo_block(i).0).collect();
    let payload: u64 = (0..n as u64).map(|i| repo_block(i).1.len() as u64).sum();
    let base_rss = proc_status_kib("VmRSS:");
    let dir = tempfile::tempdir().unwrap();

    let start = Instant::now();
    let store = backend.ingest(dir.path(), &mut batches(n));
    let ingest = start.elapsed();

    let mut state = 0x6e7_u64;
    let mut gets = Vec::new();
    for _ in 0..TABLE_GETS {
        let cid = &cids[(next(&mut state) % n as u64) as usize];
        let t = Instant::now();
        let block = store.get(cid).unwrap();
        gets.push(t.elapsed());
        assert!(black_box(block).is_some());
    }
    gets.sort();

    let start = Instant::now();
    let mut scanned = 0u64;
    store
        .scan(&mut |_, bytes| {
            scanned += bytes.len() as u64;
            Ok(())
        })
        .unwrap();
    let scan = start.elapsed();
    assert_eq!(scanned, payload);

    let peak_rss = proc_status_kib("VmHWM:").saturating_sub(base_rss);
    let on_disk = disk_bytes(dir.path());
    let mb = payload as f64 / 1e6;
    println!(
        "| {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.0} |",
        backend.name(),
        mb / ingest.as_secs_f64(),
        percentile(&gets, 0.50).as_nanos() as f64 / 1000.0,
        percentile(&gets, 0.99).as_nanos() as f64 / 1000.0,
        scan.as_secs_f64() * 1000.0,
        on_disk as f64 / 1e6,
        peak_rss as f64 / 1024.0,
    );
    drop(store);
}

/// Prints the comparison table, one child process per backend.
fn table() {
    let n = std::env::var("ATREPO_STORE_BLOCKS").ok().and_then(|v| v.parse().ok());
    let n: usize = n.unwrap_or(TABLE_BLOCKS);
    let payload: u64 = (0..n as u64).map(|i| repo_block(i).1.len() as u64).sum();
    println!(
        "{n} blocks, {:.1} MB of payload, batches of {BATCH}; {TABLE_GETS} random gets",
        payload as f64 / 1e6
    );
    println!();
    println!(
        "| backend | ingest MB/s | get p50 µs | get p99 µs | full scan ms | on disk MB | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().unwrap();
    for backend in backends() {
        let out = Command::new(&exe)
            .env("ATREPO_STORE_BENCH_CHILD", backend.name())
            .env("ATREPO_STORE_BLOCKS", n.to_string())
            .env_remove("ATREPO_STORE_TABLE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            backend.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn criterion_benches(c: &mut Criterion) {
    let n = CRITERION_BLOCKS;
    let payload: u64 = (0..n as u64).map(|i| repo_block(i).1.len() as u64).sum();
    let all: Vec<Batch> = batches(n).collect();
    let cids: Vec<Cid> = (0..n as u64).map(|i| repo_block(i).0).collect();

    let mut ingest = c.benchmark_group("store/ingest");
    ingest.throughput(Throughput::Bytes(payload)).sample_size(10);
    for backend in backends() {
        ingest.bench_function(backend.name(), |b| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |dir| {
                    let store = backend.ingest(dir.path(), &mut all.iter().cloned());
                    drop(store);
                    dir
                },
                BatchSize::PerIteration,
            );
        });
    }
    ingest.finish();

    let mut get = c.benchmark_group("store/get");
    get.throughput(Throughput::Elements(1));
    let mut scan = Vec::new();
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.ingest(dir.path(), &mut all.iter().cloned());
        let mut state = 0x6e7_u64;
        get.bench_function(backend.name(), |b| {
            b.iter(|| {
                let cid = &cids[(next(&mut state) % n as u64) as usize];
                black_box(store.get(cid).unwrap())
            });
        });
        scan.push((backend, store, dir));
    }
    get.finish();

    let mut group = c.benchmark_group("store/scan");
    group.throughput(Throughput::Bytes(payload)).sample_size(10);
    for (backend, store, _dir) in &scan {
        group.bench_function(backend.name(), |b| {
            b.iter(|| {
                let mut total = 0u64;
                store
                    .scan(&mut |_, bytes| {
                        total += bytes.len() as u64;
                        Ok(())
                    })
                    .unwrap();
                black_box(total)
            });
        });
    }
    group.finish();
}

fn main() {
    if let Ok(name) = std::env::var("ATREPO_STORE_BENCH_CHILD") {
        let n = std::env::var("ATREPO_STORE_BLOCKS").ok().and_then(|v| v.parse().ok());
        let backend = backends().into_iter().find(|b| b.name() == name).unwrap();
        table_row(&*backend, n.unwrap_or(TABLE_BLOCKS));
        return;
    }
    if std::env::var_os("ATREPO_STORE_TABLE").is_some() {
        table();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
}
