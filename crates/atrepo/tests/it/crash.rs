//! Crash safety of the whole ingest path: a child process verifies a
//! repository and is killed with SIGKILL at a random moment; then
//!
//! - spilling (`verify_repo_reader` with a tiny memory limit, spilling to
//!   each disk backend): the next verification under the same parent
//!   folder sweeps the killed child's scratch folder, succeeds, and leaves
//!   no scratch folder behind;
//! - durable ingest (each verified record written to a durable store in
//!   batches of 16, acknowledged on stdout once `write` returns): the
//!   store reopens, passes its integrity check, every stored block
//!   re-hashes to its CID, every batch is all there or not at all, and
//!   every acknowledged batch is there.
//!
//! The child is this test binary, re-run filtered to `crash::child` with
//! `ATREPO_CRASH_CHILD` set; without it, `child` runs both ingests to
//! completion in-process for each compiled backend (the no-crash
//! baseline). Iterations per backend and scenario:
//! `ATREPO_CRASH_ITERATIONS`, default 20; kill times come from a fixed
//! seed (`ATREPO_CRASH_SEED` to vary it) and are printed on failure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use atrepo::car::blessed_cid;
use atrepo::generate::{GenOptions, generate};
use atrepo::store::{
    Backend, Batch, BlockStore, Bytes, OpenOptions, SCRATCH_MAKING_PREFIX, SCRATCH_PREFIX,
    SpillOptions, StoreSpec,
};
use atrepo::verify::PublicKey;
use atrepo::{RepoReader, VerifyOptions};
use cid::Cid;

const CHILD_ENV: &str = "ATREPO_CRASH_CHILD";
const DIR_ENV: &str = "ATREPO_CRASH_DIR";
/// Records per generated repository: enough for several spill batches
/// (blocks wait in memory until a batch of 4 MiB, overhead included, is
/// written).
const RECORDS: u64 = 8000;
/// Verified records written per durable batch.
const PER_BATCH: usize = 16;
/// Kill times are uniform in `[MIN_KILL_MS, MIN_KILL_MS + SPREAD_MS)`.
const MIN_KILL_MS: u64 = 20;
const SPREAD_MS: u64 = 600;

fn iterations() -> u32 {
    std::env::var("ATREPO_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

fn seed() -> u64 {
    std::env::var("ATREPO_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0xc4a5_4e11)
}

/// splitmix64: a fixed-seed source of kill times.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The repository every run ingests, its blocks in reverse order (so that
/// verification must buffer, and spill, almost all of them), and its key.
fn repository() -> (Vec<u8>, PublicKey, String) {
    let g = generate(&GenOptions::default().records(RECORDS).seed(42)).unwrap();
    let built = g.writer.build(&g.key, g.rev).unwrap();
    let mut blocks = built.blocks.clone();
    blocks.reverse();
    let header = atrepo::car::Header::new(vec![built.commit_cid]).unwrap();
    let car = atrepo::car::encode(&header, blocks.iter().map(|(c, b)| (c, &b[..])));
    (car, g.key.public_key(), g.did)
}

fn options(key: &PublicKey, did: &str) -> VerifyOptions {
    VerifyOptions::default()
        .key(key.clone())
        .did(did.to_owned())
        .now(SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000))
}

/// Verifies `car` with a 16 KiB memory limit, spilling to `backend` under
/// `parent`.
fn verify_spilling(car: &[u8], key: &PublicKey, did: &str, backend: Backend, parent: &Path) {
    let spill = SpillOptions::default().parent(parent).target(backend).unwrap();
    let options = options(key, did).memory_limit(16 * 1024).spill(Some(spill));
    let report = atrepo::verify_repo_reader(car, options).unwrap();
    assert_eq!(report.records, RECORDS);
    assert!(report.memory.spilled);
}

/// The verified record blocks, in the order verification yields them.
fn verified_blocks(car: &[u8], key: &PublicKey, did: &str) -> Vec<(Cid, Bytes)> {
    let mut reader = RepoReader::from_bytes(car.to_vec(), options(key, did)).unwrap();
    let mut out = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        if let Some(data) = record.data() {
            out.push((record.cid(), data.clone()));
        }
    }
    reader.finish().unwrap();
    out
}

fn store_path(dir: &Path, backend: Backend) -> PathBuf {
    dir.join(format!("records.{backend}"))
}

/// Verifies `car` and writes its records to a durable store in `dir`,
/// acknowledging each batch; `rounds` times (the same blocks again are
/// no-ops for the store, but keep the child busy until it is killed).
fn ingest_durable(
    car: &[u8],
    key: &PublicKey,
    did: &str,
    backend: Backend,
    dir: &Path,
    rounds: u32,
    ack: &mut dyn Write,
) {
    let spec = StoreSpec::at(backend, store_path(dir, backend));
    let store = atrepo::store::open_with(&spec, &OpenOptions::default()).unwrap();
    let mut n = 0u64;
    for _ in 0..rounds {
        let mut reader = RepoReader::from_bytes(car.to_vec(), options(key, did)).unwrap();
        let mut batch = Batch::new();
        let mut in_batch = 0usize;
        while let Some(record) = reader.next_record().unwrap() {
            let Some(data) = record.data() else { continue };
            batch.put(record.cid(), data.clone());
            in_batch += 1;
            if in_batch == PER_BATCH {
                store.write(std::mem::take(&mut batch)).unwrap();
                writeln!(ack, "ack {n}").unwrap();
                ack.flush().unwrap();
                n += 1;
                in_batch = 0;
            }
        }
        reader.finish().unwrap();
        if in_batch > 0 {
            store.write(batch).unwrap();
            writeln!(ack, "ack {n}").unwrap();
            ack.flush().unwrap();
            n += 1;
        }
    }
}

/// Reopens a durable store after a crash and checks it; returns how many
/// blocks it holds.
fn check_durable(
    dir: &Path,
    backend: Backend,
    blocks: &[(Cid, Bytes)],
    acked: i64,
    context: &str,
) -> u64 {
    let path = store_path(dir, backend);
    let store: Box<dyn BlockStore> = match backend {
        #[cfg(feature = "redb")]
        Backend::Redb => {
            let mut s = atrepo::store::RedbStore::open(&path)
                .unwrap_or_else(|e| panic!("{context}: reopen: {e:?}"));
            s.check_integrity().unwrap_or_else(|e| panic!("{context}: integrity: {e:?}"));
            Box::new(s)
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let s = atrepo::store::SqliteStore::open(&path)
                .unwrap_or_else(|e| panic!("{context}: reopen: {e:?}"));
            s.check_integrity().unwrap_or_else(|e| panic!("{context}: integrity: {e:?}"));
            Box::new(s)
        }
        #[cfg(feature = "sled")]
        Backend::Sled => {
            let s = atrepo::store::SledStore::open(&path)
                .unwrap_or_else(|e| panic!("{context}: reopen: {e:?}"));
            s.check_integrity().unwrap_or_else(|e| panic!("{context}: integrity: {e:?}"));
            Box::new(s)
        }
        other => panic!("{other} is not a crash-tested backend"),
    };
    let mut stored = 0u64;
    store
        .scan(&mut |cid, bytes| {
            assert_eq!(
                blessed_cid(cid.codec(), bytes),
                *cid,
                "{context}: a stored block does not hash to its CID"
            );
            stored += 1;
            Ok(())
        })
        .unwrap();
    // Batches (of the first round: later rounds rewrite the same blocks)
    // are whole or absent, and every acknowledged one is there.
    for (i, batch) in blocks.chunks(PER_BATCH).enumerate() {
        let present = batch.iter().filter(|(cid, _)| store.has(cid).unwrap()).count();
        assert!(
            present == 0 || present == batch.len(),
            "{context}: batch {i} is torn: {present} of {} blocks",
            batch.len()
        );
        if i64::try_from(i).unwrap() <= acked {
            assert_eq!(present, batch.len(), "{context}: acknowledged batch {i} is missing");
        }
    }
    stored
}

/// Runs this binary as a child in `mode`, kills it after `delay`, and
/// returns the last batch it acknowledged (-1 for none).
fn run_child(mode: &str, dir: &Path, delay: Duration) -> i64 {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "crash::child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env(DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let acked = Arc::new(AtomicI64::new(-1));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse::<i64>().ok()) {
                    acked.store(n, Ordering::Release);
                }
            }
        })
    };
    std::thread::sleep(delay);
    // SIGKILL: no destructor, no flush.
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    acked.load(Ordering::Acquire)
}

/// Scratch folders under `parent`, not counting one still under its making
/// name: a kill between making a folder and renaming it leaves one, which
/// the sweep leaves for a minute (its owner may be alive in another PID
/// namespace, making it).
fn scratch_folders(parent: &Path) -> usize {
    std::fs::read_dir(parent)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with(SCRATCH_PREFIX) && !name.starts_with(SCRATCH_MAKING_PREFIX)
        })
        .count()
}

/// The repository, written once per test into `dir` for the children.
fn write_repository(dir: &Path) -> (Vec<u8>, PublicKey, String) {
    let (car, key, did) = repository();
    std::fs::write(dir.join("repo.car"), &car).unwrap();
    std::fs::write(dir.join("repo.key"), key.to_did_key()).unwrap();
    std::fs::write(dir.join("repo.did"), &did).unwrap();
    (car, key, did)
}

fn read_repository(dir: &Path) -> (Vec<u8>, PublicKey, String) {
    let car = std::fs::read(dir.join("repo.car")).unwrap();
    let key =
        PublicKey::from_did_key(&std::fs::read_to_string(dir.join("repo.key")).unwrap()).unwrap();
    let did = std::fs::read_to_string(dir.join("repo.did")).unwrap();
    (car, key, did)
}

fn crash_spill(backend: Backend) {
    let mut rng = seed() ^ 0x5b11 ^ backend.name().len() as u64;
    let data = tempfile::tempdir().unwrap();
    let (car, key, did) = write_repository(data.path());
    let parent = tempfile::tempdir().unwrap();
    let mut swept = 0u32;
    for iteration in 0..iterations() {
        let delay = Duration::from_millis(MIN_KILL_MS + next_random(&mut rng) % SPREAD_MS);
        run_child(&format!("spill:{backend}:{}", parent.path().display()), data.path(), delay);
        let context = format!(
            "{backend} spill iteration {iteration} (seed {}, killed after {delay:?})",
            seed()
        );
        let left = scratch_folders(parent.path());
        assert!(left <= 1, "{context}: {left} scratch folders after one killed child");
        swept += u32::try_from(left).unwrap();
        // The next verification under the same parent sweeps the stale
        // folder, succeeds, and removes its own.
        verify_spilling(&car, &key, &did, backend, parent.path());
        assert_eq!(scratch_folders(parent.path()), 0, "{context}: scratch folders left");
    }
    eprintln!(
        "crash spill {backend}: {} iterations, {swept} killed mid-spill and swept",
        iterations()
    );
}

fn crash_durable(backend: Backend) {
    let mut rng = seed() ^ backend.name().len() as u64;
    let data = tempfile::tempdir().unwrap();
    let (car, key, did) = write_repository(data.path());
    let blocks = verified_blocks(&car, &key, &did);
    let (mut mid, mut total) = (0u32, 0u64);
    for iteration in 0..iterations() {
        let dir = tempfile::tempdir().unwrap();
        let delay = Duration::from_millis(MIN_KILL_MS + next_random(&mut rng) % SPREAD_MS);
        let acked =
            run_child(&format!("durable:{backend}:{}", dir.path().display()), data.path(), delay);
        let context = format!(
            "{backend} durable iteration {iteration} (seed {}, killed after {delay:?}, acked {acked})",
            seed()
        );
        let stored = check_durable(dir.path(), backend, &blocks, acked, &context);
        if stored > 0 && stored < blocks.len() as u64 {
            mid += 1;
        }
        total += stored;
    }
    eprintln!(
        "crash durable {backend}: {} iterations, {mid} killed mid-ingest, {total} blocks re-hashed",
        iterations()
    );
}

/// In a child: ingest until killed. Otherwise: the no-crash baseline for
/// each compiled disk backend.
#[test]
fn child() {
    if let (Ok(mode), Ok(data)) = (std::env::var(CHILD_ENV), std::env::var(DIR_ENV)) {
        let (car, key, did) = read_repository(Path::new(&data));
        let mut parts = mode.splitn(3, ':');
        let (kind, backend, dir) =
            (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let backend: Backend = backend.parse().unwrap();
        match kind {
            "spill" => loop {
                verify_spilling(&car, &key, &did, backend, Path::new(dir));
            },
            "durable" => {
                ingest_durable(
                    &car,
                    &key,
                    &did,
                    backend,
                    Path::new(dir),
                    1000,
                    &mut std::io::stdout(),
                );
            }
            other => panic!("unknown child mode {other:?}"),
        }
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let (car, key, did) = write_repository(data.path());
    let blocks = verified_blocks(&car, &key, &did);
    for backend in [Backend::Redb, Backend::Sqlite, Backend::Sled] {
        if !backend.is_compiled() {
            continue;
        }
        let parent = tempfile::tempdir().unwrap();
        verify_spilling(&car, &key, &did, backend, parent.path());
        assert_eq!(scratch_folders(parent.path()), 0);
        let dir = tempfile::tempdir().unwrap();
        let mut acks = Vec::new();
        ingest_durable(&car, &key, &did, backend, dir.path(), 1, &mut acks);
        let acked = i64::try_from(String::from_utf8(acks).unwrap().lines().count()).unwrap() - 1;
        let stored = check_durable(dir.path(), backend, &blocks, acked, "baseline");
        assert_eq!(stored, blocks.len() as u64);
    }
}

#[cfg(feature = "redb")]
#[test]
fn redb_spill_is_swept_after_sigkill() {
    crash_spill(Backend::Redb);
}

#[cfg(feature = "redb")]
#[test]
fn redb_durable_ingest_survives_sigkill() {
    crash_durable(Backend::Redb);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_spill_is_swept_after_sigkill() {
    crash_spill(Backend::Sqlite);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_durable_ingest_survives_sigkill() {
    crash_durable(Backend::Sqlite);
}

#[cfg(feature = "sled")]
#[test]
fn sled_spill_is_swept_after_sigkill() {
    crash_spill(Backend::Sled);
}

#[cfg(feature = "sled")]
#[test]
fn sled_durable_ingest_survives_sigkill() {
    crash_durable(Backend::Sled);
}
