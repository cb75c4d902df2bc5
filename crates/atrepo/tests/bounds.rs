//! Resource bounds: the peak live heap while verifying hostile inputs, as
//! counted by a global allocator, stays within the memory limit plus
//! 16 MiB (64 MiB limit, 2 MiB section limit: at most 80 MiB), and each
//! input ends in a typed error or completes within the spill budget.
//!
//! This is its own test binary, the one exception to "one integration
//! binary per crate": a `#[global_allocator]` applies to a whole binary,
//! and the other tests' allocations (on other threads of the same test
//! run) would be counted with the case under test. For the same reason the
//! cases run one after another from a single `#[test]`.
//!
//! Hostile streams are made on the fly by `Read` impls (nothing near a
//! gigabyte is ever held). Cases: (a) a 1 GiB stream of 2 MiB blocks,
//! (b) 5 million tiny blocks, (c) a 2^63 - 1 section length, (d) a record
//! nested 300 deep, (e) shared-child DAG bombs, (f) a node of 8193
//! entries, (g) 10 million tiny blocks that all wait, with room on disk;
//! each through the stream reader and, for the big streams, the threaded
//! reader; (a) and (b) with spilling off and on, (g) with it on.
//!
//! Cases (b) and (g) read 5 and 10 million blocks; in a debug build that
//! takes a while, so the normal run uses 1 and 2 million (still 16 times
//! what fits in the budget, and past what the notes' tables may hold) and
//! `ATREPO_BOUNDS_FULL=1` runs the full count.

// Sizes here are small constants and test counters: narrowing casts on
// them cannot lose anything on the 64-bit machines the tests run on.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use atrepo::car::{DAG_CBOR, Header, RAW, blessed_cid, encode};
use atrepo::store::{Backend, Bytes, OpenOptions, SpillOptions};
use atrepo::verify::{Curve, SigningKey, Tid};
use atrepo::writer::RepoWriter;
use atrepo::{Error, ErrorKind, RepoReader, Report, VerifyOptions};
use cid::Cid;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only read.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: u64 = 1024 * 1024;
const MEMORY_LIMIT: u64 = 64 * MIB;
const SECTION_LIMIT: u64 = 2 * MIB;
/// The bound on the peak live heap of a case, above what was live before.
const HEAP_BOUND: usize = (MEMORY_LIMIT + 16 * MIB) as usize;

/// Runs `case` and returns its result and its peak live heap above what
/// was live when it started. Then waits (up to 5 s) for what the case left
/// to other threads to be freed: a threaded reader's thread stops on its
/// own shortly after its reader is dropped, and must not count in the next
/// case.
fn measure<T>(case: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    let out = case();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(start);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while LIVE.load(Ordering::Relaxed) > start + MIB as usize
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    (out, peak)
}

#[track_caller]
fn check_peak(name: &str, peak: usize) {
    eprintln!("{name}: peak live heap {:.1} MiB", peak as f64 / MIB as f64);
    assert!(
        peak <= HEAP_BOUND,
        "{name}: peak live heap {peak} bytes, bound {HEAP_BOUND} ({:.1} MiB)",
        peak as f64 / MIB as f64
    );
}

/// A small valid repository: its commit CID and its blocks.
struct Repo {
    key: SigningKey,
    did: String,
    commit: Cid,
    sections: Vec<u8>,
}

fn repo() -> Repo {
    let key = SigningKey::from_seed(Curve::K256, b"bounds").unwrap();
    let did = "did:plc:boundstest0000000000000".to_owned();
    let mut writer = RepoWriter::new(&did);
    for i in 0..3 {
        let record = atrepo::verify::drisl::Value::Map(
            [("n".to_owned(), atrepo::verify::drisl::Value::Integer(i))].into(),
        );
        writer.insert_value(&format!("com.example.record/3k{i:011}"), &record).unwrap();
    }
    let built = writer.build(&key, Tid::from_parts(1_700_000_000_000_000, 0).unwrap()).unwrap();
    let header = Header::new(vec![built.commit_cid]).unwrap();
    let with_header = encode(&header, built.blocks.iter().map(|(c, b)| (c, &b[..])));
    let header_len = encode(&header, std::iter::empty::<(&Cid, &[u8])>()).len();
    Repo { key, did, commit: built.commit_cid, sections: with_header[header_len..].to_vec() }
}

fn options(r: &Repo) -> VerifyOptions {
    let car = atrepo::car::Options::default()
        .limits(atrepo::car::Limits::default().max_section_len(SECTION_LIMIT));
    VerifyOptions::default()
        .key(r.key.public_key())
        .did(r.did.clone())
        .car(car)
        .memory_limit(MEMORY_LIMIT)
        .spill(None)
        .now(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// Spilling to redb under `dir`, at most `max_spilled` bytes. The scratch
/// store's page cache is not part of `memory_limit` (it is the store's, set
/// by `SpillOptions::open_options`, 16 MiB by default); at the default it
/// alone would take the whole 16 MiB of slack, so these cases give it
/// 4 MiB.
fn spill_to(dir: &std::path::Path, max_spilled: u64) -> SpillOptions {
    let open = OpenOptions::scratch().cache_bytes(Some(4 * MIB));
    SpillOptions::default()
        .parent(dir)
        .target(Backend::Redb)
        .unwrap()
        .max_spilled(max_spilled)
        .open_options(open)
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A CAR stream made on the fly: the header naming `root`, `count` blocks
/// from `block(i)` (unreferenced by the repository), then `tail` (the
/// sections of a valid repository, or nothing).
struct Stream<F> {
    header: Option<Vec<u8>>,
    block: F,
    next: u64,
    count: u64,
    tail: Option<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

fn stream<F: FnMut(u64) -> (Cid, Vec<u8>)>(
    root: Cid,
    count: u64,
    tail: Vec<u8>,
    block: F,
) -> Stream<F> {
    let header = encode(&Header::new(vec![root]).unwrap(), std::iter::empty::<(&Cid, &[u8])>());
    Stream {
        header: Some(header),
        block,
        next: 0,
        count,
        tail: Some(tail),
        buf: Vec::new(),
        pos: 0,
    }
}

impl<F: FnMut(u64) -> (Cid, Vec<u8>)> Read for Stream<F> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            self.pos = 0;
            self.buf = if let Some(h) = self.header.take() {
                h
            } else if self.next < self.count {
                let (cid, data) = (self.block)(self.next);
                self.next += 1;
                let cid = cid.to_bytes();
                let mut s = varint((cid.len() + data.len()) as u64);
                s.extend_from_slice(&cid);
                s.extend_from_slice(&data);
                s
            } else if let Some(t) = self.tail.take() {
                t
            } else {
                return Ok(0);
            };
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Block `i` of the big-block streams: 2 MiB of section, a distinct raw
/// block.
fn big_block(i: u64) -> (Cid, Vec<u8>) {
    let mut data = vec![(i % 251) as u8; (SECTION_LIMIT - 36) as usize];
    data[..8].copy_from_slice(&i.to_be_bytes());
    (blessed_cid(RAW, &data), data)
}

/// Block `i` of the tiny-block streams: 8 bytes.
fn tiny_block(i: u64) -> (Cid, Vec<u8>) {
    let data = i.to_be_bytes().to_vec();
    (blessed_cid(RAW, &data), data)
}

fn verify_stream(read: impl Read, options: VerifyOptions) -> Result<Report, Error> {
    RepoReader::from_reader(read, options)?.finish()
}

fn verify_threaded(
    read: impl Read + Send + 'static,
    options: VerifyOptions,
) -> Result<Report, Error> {
    RepoReader::from_reader_threaded(read, options)?.finish()
}

#[track_caller]
fn assert_limit(name: &str, result: &Result<Report, Error>, what: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Limit, "{name}: {e:?}");
            let text = e.to_string();
            assert!(text.contains(what), "{name}: expected a {what} limit, found {text}");
        }
        Ok(r) => panic!("{name}: completed ({} blocks) instead of a {what} limit", r.car.blocks),
    }
}

/// 512 blocks of 2 MiB: 1 GiB.
const GIB_OF_BLOCKS: u64 = 512;

fn a_gib_of_2_mib_blocks_ends_at_the_memory_limit() {
    let r = repo();
    let (result, peak) = measure(|| {
        verify_stream(stream(r.commit, GIB_OF_BLOCKS, r.sections.clone(), big_block), options(&r))
    });
    assert_limit("1 GiB, spill off", &result, "memory");
    check_peak("1 GiB of 2 MiB blocks, spill off", peak);

    let (result, peak) = measure(|| {
        let s = stream(r.commit, GIB_OF_BLOCKS, r.sections.clone(), big_block);
        verify_threaded(s, options(&r))
    });
    assert_limit("1 GiB threaded, spill off", &result, "memory");
    check_peak("1 GiB of 2 MiB blocks, threaded reader, spill off", peak);
}

fn a_gib_of_2_mib_blocks_spills_up_to_its_cap() {
    let r = repo();
    let dir = tempfile::tempdir().unwrap();
    let (result, peak) = measure(|| {
        let s = stream(r.commit, GIB_OF_BLOCKS, r.sections.clone(), big_block);
        verify_stream(s, options(&r).spill(Some(spill_to(dir.path(), 128 * MIB))))
    });
    assert_limit("1 GiB, spill cap 128 MiB", &result, "spilled");
    check_peak("1 GiB of 2 MiB blocks, spill capped at 128 MiB", peak);

    // 160 MiB of blocks then the repository: spilled, and verified.
    let (result, peak) = measure(|| {
        let s = stream(r.commit, 80, r.sections.clone(), big_block);
        verify_stream(s, options(&r).spill(Some(spill_to(dir.path(), 256 * MIB))))
    });
    let report = result.unwrap();
    assert!(report.memory.spilled);
    assert_eq!((report.records, report.car.unreferenced_blocks), (3, 80));
    check_peak("160 MiB of 2 MiB blocks, spilled, then verified", peak);
}

fn tiny_count() -> u64 {
    if std::env::var("ATREPO_BOUNDS_FULL").is_ok_and(|v| v == "1") { 5_000_000 } else { 1_000_000 }
}

fn millions_of_tiny_blocks_end_at_the_memory_limit_or_the_spill_cap() {
    let r = repo();
    let n = tiny_count();
    let (result, peak) =
        measure(|| verify_stream(stream(r.commit, n, r.sections.clone(), tiny_block), options(&r)));
    assert_limit("tiny blocks, spill off", &result, "memory");
    check_peak(&format!("{n} tiny blocks, spill off"), peak);

    let dir = tempfile::tempdir().unwrap();
    let (result, peak) = measure(|| {
        let s = stream(r.commit, n, r.sections.clone(), tiny_block);
        verify_stream(s, options(&r).spill(Some(spill_to(dir.path(), 4 * MIB))))
    });
    assert_limit("tiny blocks, spill cap 4 MiB", &result, "spilled");
    check_peak(&format!("{n} tiny blocks, spill capped at 4 MiB"), peak);
}

/// Tiny blocks that all wait, in a stream with room on disk for them:
/// each is appended to the scratch file and noted, until the notes' tables
/// (charged by what they allocate) fill the budget; the rest go to the
/// spill store, and the repository after them verifies. Before the tables
/// were charged by their allocation, two million notes were charged 64 MiB
/// while their table doubled from 35 to 71 MB, both held at once.
fn millions_of_waiting_tiny_blocks_are_noted_within_the_budget() {
    let r = repo();
    let n = 2 * tiny_count();
    let dir = tempfile::tempdir().unwrap();
    let (result, peak) = measure(|| {
        let s = stream(r.commit, n, r.sections.clone(), tiny_block);
        verify_stream(s, options(&r).spill(Some(spill_to(dir.path(), 1024 * MIB))))
    });
    let report = result.unwrap();
    assert!(report.memory.spilled);
    assert_eq!((report.records, report.car.unreferenced_blocks), (3, n));
    check_peak(&format!("{n} tiny blocks waiting, noted, then spilled"), peak);
}

fn a_2_pow_63_section_length_is_refused_before_allocating() {
    let r = repo();
    let mut car =
        encode(&Header::new(vec![r.commit]).unwrap(), std::iter::empty::<(&Cid, &[u8])>());
    car.extend(varint(i64::MAX as u64));
    let (result, peak) = measure(|| verify_stream(&car[..], options(&r)));
    match &result {
        Err(Error::Car(atrepo::car::Error::LimitExceeded { found, .. })) => {
            assert_eq!(*found, i64::MAX as u64);
        }
        other => panic!("expected a section length limit, found {other:?}"),
    }
    check_peak("2^63 - 1 section length", peak);
    assert!(peak < MIB as usize, "{peak} bytes for a refused length");
}

/// A repository whose one record is `record`.
fn repo_with_record(record: Vec<u8>) -> (Repo, Vec<u8>) {
    let key = SigningKey::from_seed(Curve::K256, b"bounds").unwrap();
    let did = "did:plc:boundstest0000000000000".to_owned();
    let mut writer = RepoWriter::new(&did);
    writer.insert_unchecked("com.example.record/3kaaaaaaaaaaa", record).unwrap();
    let rev = Tid::from_parts(1_700_000_000_000_000, 0).unwrap();
    let car = writer.to_car(&key, rev).unwrap();
    let commit = writer.build(&key, rev).unwrap().commit_cid;
    (Repo { key, did, commit, sections: Vec::new() }, car)
}

fn a_record_nested_300_deep_is_refused_without_recursion() {
    let mut record = vec![0xa1, 0x61, b'a'];
    record.extend(std::iter::repeat_n(0x81, 299));
    record.push(0x01);
    let (r, car) = repo_with_record(record);
    let (result, peak) = measure(|| verify_stream(&car[..], options(&r)));
    match &result {
        Err(e @ Error::InvalidRecord { error, .. }) => {
            assert!(
                matches!(error.problem, atrepo::verify::drisl::Problem::TooDeep { limit: 64 }),
                "{e:?}"
            );
        }
        other => panic!("expected a too-deep record, found {other:?}"),
    }
    check_peak("record nested 300 deep", peak);
}

/// The `n`-th key on `layer` (mined with SHA-256).
fn key_on_layer(layer: u32, n: usize) -> String {
    (0u64..)
        .map(|i| format!("com.example.record/k{i:08}"))
        .filter(|k| {
            let cid = blessed_cid(RAW, k.as_bytes());
            let digest = cid.hash().digest();
            let mut zeros = 0;
            for b in digest {
                zeros += b.leading_zeros();
                if *b != 0 {
                    break;
                }
            }
            zeros / 2 == layer
        })
        .nth(n)
        .unwrap()
}

/// A repository whose MST root is `root` among `nodes`, with one record.
fn repo_with_tree(root: Cid, nodes: Vec<(Cid, Bytes)>) -> (Repo, Vec<u8>) {
    let key = SigningKey::from_seed(Curve::K256, b"bounds").unwrap();
    let did = "did:plc:boundstest0000000000000".to_owned();
    let rev = Tid::from_parts(1_700_000_000_000_000, 0).unwrap();
    let commit =
        atrepo::verify::UnsignedCommit::new(&did, root, rev, None).unwrap().sign(&key).unwrap();
    let commit_bytes = commit.to_cbor();
    let commit_cid = blessed_cid(DAG_CBOR, &commit_bytes);
    let record = Bytes::from_static(b"\xa1\x61n\x01");
    let mut blocks = vec![(commit_cid, Bytes::from(commit_bytes))];
    blocks.extend(nodes);
    blocks.push((blessed_cid(DAG_CBOR, &record), record));
    let car =
        encode(&Header::new(vec![commit_cid]).unwrap(), blocks.iter().map(|(c, b)| (c, &b[..])));
    (Repo { key, did, commit: commit_cid, sections: Vec::new() }, car)
}

/// A DAG bomb: `layers` nodes, each with six keys whose every link (left
/// and each right) points at the node below; keys on `key_layer(level)`.
fn bomb(layers: u32, key_layer: impl Fn(u32) -> u32) -> (Repo, Vec<u8>, u64) {
    let record = blessed_cid(DAG_CBOR, b"\xa1\x61n\x01");
    let mut child: Option<Cid> = None;
    let mut nodes = Vec::new();
    for level in 0..layers {
        let keys: Vec<String> = (0..6).map(|i| key_on_layer(key_layer(level), i)).collect();
        let entries: Vec<(&[u8], Cid, Option<Cid>)> =
            keys.iter().map(|k| (k.as_bytes(), record, child)).collect();
        let bytes = Bytes::from(atrepo::mst::internal::encode_node(child.as_ref(), &entries));
        let cid = atrepo::mst::internal::node_cid(&bytes);
        nodes.push((cid, bytes));
        child = Some(cid);
    }
    nodes.reverse();
    let root = child.unwrap();
    let (r, car) = repo_with_tree(root, nodes);
    (r, car, u64::from(layers))
}

fn shared_child_dag_bombs_fail_after_reading_each_node_once() {
    // Real layers 0 to 7 (keys mined for each): a naive walk would visit
    // 7^7 nodes; the walk refuses the second visit of the shared child.
    let (r, car, nodes) = bomb(8, |level| level);
    let (result, peak) = measure(|| verify_stream(&car[..], options(&r)));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mst(
                atrepo::mst::Error::KeyOrder { .. } | atrepo::mst::Error::NodeReachedTwice { .. }
            )
        ),
        "{err:?}"
    );
    check_peak(&format!("DAG bomb of {nodes} real layers"), peak);

    // Thirty levels: keys that deep cannot be mined, so every level holds
    // layer-0 keys; the walk stops at the root, whose keys are on layer 0
    // but which links to subtrees.
    let (r, car, nodes) = bomb(30, |_| 0);
    let (result, peak) = measure(|| verify_stream(&car[..], options(&r)));
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Mst(atrepo::mst::Error::ChildBelowZero { .. })), "{err:?}");
    check_peak(&format!("DAG bomb of {nodes} levels"), peak);
}

fn a_node_of_8193_entries_is_refused() {
    let record = blessed_cid(DAG_CBOR, b"\xa1\x61n\x01");
    let keys: Vec<String> = (0..8193).map(|i| format!("com.example.record/k{i:08}")).collect();
    let entries: Vec<(&[u8], Cid, Option<Cid>)> =
        keys.iter().map(|k| (k.as_bytes(), record, None)).collect();
    let bytes = Bytes::from(atrepo::mst::internal::encode_node(None, &entries));
    let root = atrepo::mst::internal::node_cid(&bytes);
    let (r, car) = repo_with_tree(root, vec![(root, bytes)]);
    let (result, peak) = measure(|| verify_stream(&car[..], options(&r)));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Mst(atrepo::mst::Error::TooManyEntries { limit: 200, found: 8193, .. })
        ),
        "{err:?}"
    );
    check_peak("node of 8193 entries", peak);
}

/// One test runs every case in turn: the allocator counts every thread of
/// the binary, so no other test may run beside a measured case.
#[test]
fn hostile_inputs_stay_within_the_heap_bound() {
    a_gib_of_2_mib_blocks_ends_at_the_memory_limit();
    a_gib_of_2_mib_blocks_spills_up_to_its_cap();
    millions_of_tiny_blocks_end_at_the_memory_limit_or_the_spill_cap();
    millions_of_waiting_tiny_blocks_are_noted_within_the_budget();
    a_2_pow_63_section_length_is_refused_before_allocating();
    a_record_nested_300_deep_is_refused_without_recursion();
    shared_child_dag_bombs_fail_after_reading_each_node_once();
    a_node_of_8193_entries_is_refused();
}
