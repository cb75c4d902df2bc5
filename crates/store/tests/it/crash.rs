//! Crash tests: a child process ingests batches into a disk backend and is
//! killed with SIGKILL at a random moment; the parent then reopens the
//! store and checks that
//!
//! - it opens, and the backend's integrity check passes (redb
//!   `check_integrity`, SQLite `PRAGMA integrity_check`, sled checksum and
//!   scan; each also checks the usage counters against the blocks);
//! - every stored block re-hashes to its CID;
//! - every batch is all there or not there at all, the batches there are a
//!   prefix of the ones written, and every batch the child acknowledged
//!   (after `write` returned, durable) is there.
//!
//! A second test kills children at times swept across their first
//! milliseconds, while they make the store, and checks the same; a third
//! does so while they open a store that already holds batches. A fourth
//! kills a child while it spills to a scratch store and checks that the
//! next spill store under the same parent sweeps the orphaned scratch
//! folder.
//!
//! The child is this test binary, re-run with `ATREPO_STORE_CRASH_CHILD`
//! set, filtered to the `crash::child_ingest` test. Without that variable,
//! `child_ingest` runs the same ingest to completion in-process and checks
//! it (the no-crash baseline).
//!
//! Iterations per backend: `ATREPO_STORE_CRASH_ITERATIONS`, default 20
//! (`cargo xtask crash-test` runs more). Kill times come from a fixed seed
//! (`ATREPO_STORE_CRASH_SEED` to vary it) and are printed on failure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use atrepo_store::{
    Backend, Batch, BlockStore, Bytes, SCRATCH_MAKING_PREFIX, SCRATCH_PREFIX, SpillOptions,
    SpillStore,
};
use cid::Cid;

use crate::conformance::{cid_of, sized_block};

const CHILD_ENV: &str = "ATREPO_STORE_CRASH_CHILD";
const DIR_ENV: &str = "ATREPO_STORE_CRASH_DIR";
/// Batches a child writes before it exits by itself (default: more than it
/// can write before it is killed).
const BATCHES_ENV: &str = "ATREPO_STORE_CRASH_BATCHES";
const BLOCKS_PER_BATCH: u32 = 16;
/// More batches than a child can write before it is killed.
const MAX_BATCHES: u32 = 1_000_000;
/// Batches the in-process baseline writes.
const BASELINE_BATCHES: u32 = 40;
/// Kill times are uniform in `[0, MAX_KILL_MS)` after the child starts.
const MAX_KILL_MS: u64 = 400;

fn iterations() -> u32 {
    std::env::var("ATREPO_STORE_CRASH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

fn seed() -> u64 {
    std::env::var("ATREPO_STORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_a7e9_0c0a_5171)
}

/// splitmix64: a fixed-seed source of kill times.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Batch `b`'s blocks: sizes like records and MST nodes.
fn batch_blocks(b: u32) -> Vec<(Cid, Bytes)> {
    (0..BLOCKS_PER_BATCH)
        .map(|j| {
            let n = b * BLOCKS_PER_BATCH + j;
            sized_block(n.wrapping_mul(7919), 100 + (n as usize * 131) % 3900)
        })
        .collect()
}

fn store_path(dir: &Path, backend: Backend) -> PathBuf {
    dir.join(format!("blocks.{backend}"))
}

fn open_durable(dir: &Path, backend: Backend) -> Box<dyn BlockStore> {
    let spec = atrepo_store::StoreSpec::at(backend, store_path(dir, backend));
    atrepo_store::open_with(&spec, &atrepo_store::OpenOptions::default()).unwrap()
}

/// What a child does: `durable:BACKEND` writes batches to a durable store,
/// acknowledging each on stdout; `spill:BACKEND` writes into a spill store
/// that hands off to a scratch store early.
fn ingest(mode: &str, dir: &Path, batches: u32, ack: &mut dyn Write) {
    let (kind, backend) = mode.split_once(':').expect("mode is KIND:BACKEND");
    let backend: Backend = backend.parse().unwrap();
    let store: Box<dyn BlockStore> = match kind {
        "durable" => open_durable(dir, backend),
        "spill" => {
            let options = SpillOptions::default()
                .parent(dir)
                .memory_limit(64 * 1024)
                .target(backend)
                .unwrap();
            Box::new(SpillStore::new(options).unwrap())
        }
        other => panic!("unknown child mode {other:?}"),
    };
    for b in 0..batches {
        store.write(batch_blocks(b).into_iter().collect::<Batch>()).unwrap();
        writeln!(ack, "ack {b}").unwrap();
        ack.flush().unwrap();
    }
}

/// Checks a durable store after a crash; returns how many batches it holds.
fn check_after_crash(dir: &Path, backend: Backend, acked: i64, context: &str) -> u32 {
    let path = store_path(dir, backend);
    let store: Box<dyn BlockStore> = match backend {
        #[cfg(feature = "redb")]
        Backend::Redb => {
            let mut store = atrepo_store::RedbStore::open(&path)
                .unwrap_or_else(|e| panic!("{context}: reopen: {e:?}"));
            store.check_integrity().unwrap_or_else(|e| panic!("{context}: integrity: {e:?}"));
            Box::new(store)
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let store = atrepo_store::SqliteStore::open(&path)
                .unwrap_or_else(|e| panic!("{context}: reopen: {e:?}"));
            store.check_integrity().unwrap_or_else(|e| panic!("{context}: integrity: {e:?}"));
            Box::new(store)
        }
        #[cfg(feature = "sled")]
        Backend::Sled => {
            let store = atrepo_store::SledStore::open(&path)
                .unwrap_or_else(|e| panic!("{context}: reopen: {e:?}"));
            store.check_integrity().unwrap_or_else(|e| panic!("{context}: integrity: {e:?}"));
            if !store.cleared_on_open().is_empty() {
                eprintln!("{context}: sled's leftovers cleared: {:?}", store.cleared_on_open());
            }
            Box::new(store)
        }
        other => panic!("{other} is not a crash-tested backend"),
    };
    let mut blocks = 0u64;
    store
        .scan(&mut |cid, bytes| {
            assert_eq!(cid_of(bytes), *cid, "{context}: a stored block does not hash to its CID");
            blocks += 1;
            Ok(())
        })
        .unwrap();
    // Batches present must be a whole prefix.
    let mut present = 0u32;
    loop {
        let found =
            batch_blocks(present).iter().filter(|(cid, _)| store.has(cid).unwrap()).count() as u32;
        match found {
            0 => break,
            BLOCKS_PER_BATCH => present += 1,
            n => panic!("{context}: batch {present} is torn: {n} of {BLOCKS_PER_BATCH} blocks"),
        }
    }
    assert_eq!(
        blocks,
        u64::from(present * BLOCKS_PER_BATCH),
        "{context}: blocks beyond the prefix of whole batches"
    );
    assert!(
        i64::from(present) > acked,
        "{context}: batch {acked} was acknowledged durable but is missing ({present} present)"
    );
    present
}

/// This test binary as a child in `mode`, filtered to `child_ingest`.
fn child_command(mode: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "crash::child_ingest", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .env(DIR_ENV, dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Spawns this test binary as a child in `mode`, kills it after `delay`,
/// and returns the last batch it acknowledged (-1 for none).
fn run_child(mode: &str, dir: &Path, delay: Duration) -> i64 {
    let mut child = child_command(mode, dir).stdout(Stdio::piped()).spawn().unwrap();
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
    // SIGKILL: no destructor, no flush, no atexit.
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    acked.load(Ordering::Acquire)
}

fn crash_durable(backend: Backend) {
    let mut rng = seed() ^ backend.name().len() as u64;
    let (mut mid_ingest, mut total_batches) = (0u32, 0u32);
    for iteration in 0..iterations() {
        let dir = tempfile::tempdir().unwrap();
        let delay = Duration::from_millis(next_random(&mut rng) % MAX_KILL_MS);
        let acked = run_child(&format!("durable:{backend}"), dir.path(), delay);
        let context = format!(
            "{backend} iteration {iteration} (seed {}, killed after {delay:?}, acked {acked})",
            seed()
        );
        let present = check_after_crash(dir.path(), backend, acked, &context);
        if present > 0 {
            mid_ingest += 1;
        }
        total_batches += present;
    }
    eprintln!(
        "crash {backend}: {} iterations, {mid_ingest} killed mid-ingest, {total_batches} batches \
         checked",
        iterations()
    );
}

/// The kill times of a sweep: `steps` steps of 250 µs (40, up to 80 with
/// more `ATREPO_STORE_CRASH_ITERATIONS`), each put at a random point of its
/// step (from the seed) so that runs with other seeds, and timing noise,
/// probe windows narrower than a step; then steps growing from 1 ms by a
/// tenth each up to about 2 s past the sweep (a slow, loaded CI machine),
/// for callers that go on until enough kills came late enough. Returns
/// the sweep's length and the times.
fn sweep_delays(backend: Backend, salt: u64) -> (Duration, impl Iterator<Item = Duration>) {
    const STEP_US: u64 = 250;
    const TAIL_US: u64 = 2_000_000;
    let steps = u64::from((iterations().max(20) * 2).min(80));
    let sweep = Duration::from_micros(steps * STEP_US);
    let name_salt = backend.name().bytes().fold(0u64, |h, b| h.rotate_left(8) ^ u64::from(b));
    let mut rng = seed() ^ salt ^ name_salt;
    let tail = std::iter::successors(Some(1_000u64), |us| Some(us + (us / 10).max(1_000)))
        .take_while(|us| *us <= TAIL_US)
        .map(move |us| sweep + Duration::from_micros(us));
    let delays = (0..steps)
        .map(move |step| Duration::from_micros(step * STEP_US + next_random(&mut rng) % STEP_US))
        .chain(tail);
    (sweep, delays)
}

/// Kills a child at times swept across its first milliseconds, while it
/// starts and makes its store ([`sweep_delays`]): a store killed at any point of its
/// creation must open afterwards. Random kill times almost never land
/// there (a redb file killed mid-header was found once, by the facade's
/// crash test, as "Not a redb database"). On a loaded machine the store
/// may appear only after the sweep: it goes on until a few kills came
/// after the store appeared (up to about 2 s more), and at least one must
/// have, or the test would prove nothing.
fn crash_while_creating(backend: Backend) {
    const AFTER_WANTED: u32 = 3;
    let (sweep, delays) = sweep_delays(backend, 0xc7ea);
    let mut made = 0u32;
    let mut kills = 0u32;
    for delay in delays {
        if delay > sweep && made >= AFTER_WANTED {
            break;
        }
        let dir = tempfile::tempdir().unwrap();
        let acked = run_child(&format!("durable:{backend}"), dir.path(), delay);
        kills += 1;
        let context = format!("{backend} creation (killed after {delay:?})");
        if store_path(dir.path(), backend).exists() {
            made += 1;
            check_after_crash(dir.path(), backend, acked, &context);
        }
    }
    eprintln!("crash {backend} while creating: {kills} kills, {made} after the store appeared");
    assert!(made > 0, "{backend}: no kill came after the store appeared ({kills} kills)");
}

/// Kills a child at times swept across its first milliseconds while it
/// opens a store that already holds `REOPEN_BATCHES` batches (written by
/// a child that exited by itself) and goes on writing; the store must open
/// afterwards with every batch. A restart loop after a crash reopens a
/// store again and again, and opening writes too: sled writes a snapshot
/// whenever its log has grown since the last one, redb repairs after an
/// unclean close (a throwaway sweep like this one, in 25 µs steps, not
/// committed, found an empty sled snapshot left by such a kill that sled
/// then refused; it is what `SledStore::open` clears). The times are [`sweep_delays`], going on
/// until a few kills came after the child acknowledged a batch beyond
/// those already there (so after it had opened the store).
fn crash_while_reopening(backend: Backend) {
    const REOPEN_BATCHES: u32 = 4;
    const AFTER_WANTED: u32 = 3;
    let (sweep, delays) = sweep_delays(backend, 0x0be2);
    let (mut opened, mut kills) = (0u32, 0u32);
    let mode = format!("durable:{backend}");
    for delay in delays {
        if delay > sweep && opened >= AFTER_WANTED {
            break;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = child_command(&mode, dir.path())
            .env(BATCHES_ENV, REOPEN_BATCHES.to_string())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{backend}: the child writing the first batches failed");
        // The child writes batch 0 onwards again (duplicates are skipped)
        // and acknowledges each: an acknowledgement past the batches
        // already there means it had opened the store.
        let acked = run_child(&mode, dir.path(), delay);
        kills += 1;
        if acked >= i64::from(REOPEN_BATCHES) {
            opened += 1;
        }
        let acked = acked.max(i64::from(REOPEN_BATCHES) - 1);
        let context = format!("{backend} reopening (killed after {delay:?}, acked {acked})");
        check_after_crash(dir.path(), backend, acked, &context);
    }
    eprintln!("crash {backend} while reopening: {kills} kills, {opened} after it had opened");
    assert!(opened > 0, "{backend}: no kill came after the child opened the store ({kills} kills)");
}

fn crash_spill(backend: Backend) {
    let mut rng = seed() ^ 0x5b11 ^ backend.name().len() as u64;
    let parent = tempfile::tempdir().unwrap();
    for _ in 0..iterations().div_ceil(4) {
        let delay = Duration::from_millis(50 + next_random(&mut rng) % MAX_KILL_MS);
        run_child(&format!("spill:{backend}"), parent.path(), delay);
        // The next spill store under the same parent sweeps what the
        // killed child left, but for a folder still under its making name
        // (a kill between making and renaming it): the sweep leaves that
        // for a minute, since its owner may be alive in another PID
        // namespace, making it.
        let store = SpillStore::new(SpillOptions::default().parent(parent.path())).unwrap();
        let left = std::fs::read_dir(parent.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name().into_string().unwrap();
                name.starts_with(SCRATCH_PREFIX) && !name.starts_with(SCRATCH_MAKING_PREFIX)
            })
            .count();
        assert_eq!(left, 0, "{backend}: scratch folders left after a crash");
        drop(store);
    }
}

/// In a child: ingest until killed. Otherwise: the no-crash baseline,
/// a complete ingest into each compiled disk backend, checked the same way.
#[test]
fn child_ingest() {
    if let (Ok(mode), Ok(dir)) = (std::env::var(CHILD_ENV), std::env::var(DIR_ENV)) {
        let batches =
            std::env::var(BATCHES_ENV).ok().and_then(|n| n.parse().ok()).unwrap_or(MAX_BATCHES);
        ingest(&mode, Path::new(&dir), batches, &mut std::io::stdout());
        return;
    }
    for backend in [Backend::Redb, Backend::Sqlite, Backend::Sled] {
        if !backend.is_compiled() {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut acks = Vec::new();
        ingest(&format!("durable:{backend}"), dir.path(), BASELINE_BATCHES, &mut acks);
        let acked = String::from_utf8(acks).unwrap().lines().count() as i64 - 1;
        let present = check_after_crash(dir.path(), backend, acked, "baseline");
        assert_eq!(present, BASELINE_BATCHES);
    }
}

#[cfg(feature = "redb")]
#[test]
fn redb_survives_sigkill() {
    crash_durable(Backend::Redb);
}

#[cfg(feature = "redb")]
#[test]
fn redb_survives_sigkill_while_being_created() {
    crash_while_creating(Backend::Redb);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_survives_sigkill_while_being_created() {
    crash_while_creating(Backend::Sqlite);
}

#[cfg(feature = "sled")]
#[test]
fn sled_survives_sigkill_while_being_created() {
    crash_while_creating(Backend::Sled);
}

#[cfg(feature = "redb")]
#[test]
fn redb_survives_sigkill_while_being_reopened() {
    crash_while_reopening(Backend::Redb);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_survives_sigkill_while_being_reopened() {
    crash_while_reopening(Backend::Sqlite);
}

#[cfg(feature = "sled")]
#[test]
fn sled_survives_sigkill_while_being_reopened() {
    crash_while_reopening(Backend::Sled);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_survives_sigkill() {
    crash_durable(Backend::Sqlite);
}

#[cfg(feature = "sled")]
#[test]
fn sled_survives_sigkill() {
    crash_durable(Backend::Sled);
}

#[cfg(feature = "redb")]
#[test]
fn redb_spill_is_swept_after_sigkill() {
    crash_spill(Backend::Redb);
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_spill_is_swept_after_sigkill() {
    crash_spill(Backend::Sqlite);
}

#[cfg(feature = "sled")]
#[test]
fn sled_spill_is_swept_after_sigkill() {
    crash_spill(Backend::Sled);
}
