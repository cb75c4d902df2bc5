//! Firehose `#commit` verification throughput on one core: typical commits
//! (1 to 3 operations: posts, likes, a delete) on a repository of 10,000
//! records, on both curves, next to the bare signature check of the same
//! commits.
//!
//! A relay verifies every event: decode the body, read and hash the CAR
//! slice, decode the commit, check the signature, check each op and its
//! record, then check the ops against the tree and invert them. The
//! signature should dominate; the target is a full verification within
//! 1.5x of the bare `PublicKey::verify` (which hashes the unsigned commit
//! and checks the signature). After the criterion runs, the bench prints
//! that ratio and events/s from its own alternating runs timed in thread
//! CPU time, which hold up on a busy machine where wall times do not.
//!
//! Run: `cargo bench -p benches --bench event -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::Duration;

use atrepo::car::{DAG_CBOR, blessed_cid};
use atrepo::event::{CommitEvent, CommitEventBuilder, Limits, RepoState, Verifier};
use atrepo::mst::Builder;
use atrepo::store::{BlockStore, MemoryStore};
use atrepo::verify::drisl::Value;
use atrepo::verify::{Commit, CommitOptions, Curve, FixedClock, PublicKey, SigningKey, Tid};
use benches::cpu::fastest_and_median;
use criterion::{Criterion, Throughput};

/// The verifier's clock: 2023-11-14T22:13:20Z.
const NOW: u64 = 1_700_000_000_000_000;
const SECOND: u64 = 1_000_000;
const DAY: u64 = 86_400 * SECOND;
/// Records in the repository before the commits.
const RECORDS: u64 = 10_000;
/// Commits per curve; the benches cycle through them.
const COMMITS: u64 = 30;

fn tid(micros: u64) -> Tid {
    Tid::from_parts(micros, 0).unwrap()
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn record(pairs: Vec<(&str, Value)>) -> Vec<u8> {
    Value::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_cbor()
}

fn post(n: u64) -> Vec<u8> {
    record(vec![
        ("$type", text("app.bsky.feed.post")),
        ("text", text(&format!("post {n}: a short post about something, as most posts are"))),
        ("langs", Value::Array(vec![text("en")])),
        ("createdAt", text("2023-11-14T22:13:20.000Z")),
    ])
}

fn like(n: u64) -> Vec<u8> {
    let cid = blessed_cid(DAG_CBOR, &n.to_be_bytes());
    let subject = Value::Map(
        [
            ("cid".to_owned(), text(&cid.to_string())),
            ("uri".to_owned(), text(&format!("at://did:plc:someone/app.bsky.feed.post/{n}"))),
        ]
        .into(),
    );
    record(vec![
        ("$type", text("app.bsky.feed.like")),
        ("subject", subject),
        ("createdAt", text("2023-11-14T22:13:20.000Z")),
    ])
}

fn post_path(n: u64) -> String {
    format!("app.bsky.feed.post/{}", tid(NOW - 30 * DAY + n * SECOND))
}

fn like_path(n: u64) -> String {
    format!("app.bsky.feed.like/{}", tid(NOW - 20 * DAY + n * SECOND))
}

/// One event to verify, with the state before it and what the bare
/// signature check needs.
struct Case {
    body: Vec<u8>,
    prior: RepoState,
    unsigned: Vec<u8>,
    sig: Vec<u8>,
}

/// Everything one curve's benchmarks need.
struct Setup {
    curve: Curve,
    key: PublicKey,
    cases: Vec<Case>,
    ops: usize,
    blocks_bytes: usize,
}

fn setup(curve: Curve) -> Setup {
    let store = MemoryStore::new();
    let mut pairs = Vec::new();
    for n in 0..RECORDS {
        let bytes = post(n);
        let cid = blessed_cid(DAG_CBOR, &bytes);
        store.put(cid, bytes.into()).unwrap();
        pairs.push((post_path(n), cid));
    }
    let mut root = Builder::new().build(&store, pairs).unwrap();
    let signer = SigningKey::from_seed(curve, b"event bench").unwrap();
    let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
    let mut rev = tid(NOW - DAY);
    let (mut cases, mut ops, mut blocks_bytes) = (Vec::new(), 0, 0);
    for n in 0..COMMITS {
        let prior = RepoState { rev, data: root };
        let next = tid(rev.timestamp_micros() + SECOND);
        let b = CommitEventBuilder::new(&store, did, root, next).since(Some(rev));
        // One, two or three operations, as typical commits have.
        let b = match n % 3 {
            0 => b.put(&like_path(n), like(n)),
            1 => b.put(&post_path(RECORDS + n), post(RECORDS + n)).put(&like_path(n), like(n)),
            _ => b
                .put(&post_path(RECORDS + n), post(RECORDS + n))
                .put(&like_path(n), like(n))
                .delete(&post_path(n)),
        };
        let built = b.build(&signer).unwrap();
        let event = CommitEvent::decode(&built.body, &Limits::default()).unwrap();
        let commit_bytes = atrepo::car::CarSlice::new(event.blocks)
            .unwrap()
            .map(Result::unwrap)
            .find(|f| f.cid == built.commit)
            .unwrap()
            .data
            .to_vec();
        let commit = Commit::decode(&commit_bytes, &CommitOptions::default()).unwrap();
        ops += event.ops.len();
        blocks_bytes += event.blocks.len();
        cases.push(Case {
            prior,
            unsigned: commit.unsigned_bytes(),
            sig: commit.sig().to_vec(),
            body: built.body,
        });
        root = built.after;
        rev = next;
    }
    let setup = Setup { curve, key: signer.public_key(), cases, ops, blocks_bytes };
    // Both sides must accept every case before anything is timed.
    let v = verifier();
    for case in &setup.cases {
        assert!(full(&v, &setup.key, case));
        assert!(bare(&setup.key, case));
    }
    setup
}

fn verifier() -> Verifier<FixedClock> {
    Verifier::new().with_clock(FixedClock::from_micros(NOW))
}

/// What a relay does per event: decode and verify everything.
fn full(v: &Verifier<FixedClock>, key: &PublicKey, case: &Case) -> bool {
    CommitEvent::decode(black_box(&case.body), &Limits::default())
        .is_ok_and(|e| v.verify_commit(&e, key, Some(&case.prior)).is_ok())
}

/// The floor: the signature check alone, on the same commit.
fn bare(key: &PublicKey, case: &Case) -> bool {
    key.verify(black_box(&case.unsigned), black_box(&case.sig)).is_ok()
}

fn bench(c: &mut Criterion, s: &Setup) {
    let v = verifier();
    let n = s.cases.len();
    let mut g = c.benchmark_group(format!("event/{}", s.curve));
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("signature_only", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            bare(&s.key, &s.cases[i])
        });
    });
    g.bench_function("verify_commit_event", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            full(&v, &s.key, &s.cases[i])
        });
    });
    g.finish();
}

/// Prints full verification's time over the bare signature check's, and
/// events/s.
fn ratio(s: &Setup) {
    const RUNS: usize = 40;
    let v = verifier();
    let ((bare_min, bare_med), (full_min, full_med)) = fastest_and_median(
        RUNS,
        || {
            for case in &s.cases {
                black_box(bare(&s.key, case));
            }
        },
        || {
            for case in &s.cases {
                black_box(full(&v, &s.key, case));
            }
        },
    );
    let per_sec = |d: Duration| s.cases.len() as f64 / d.as_secs_f64();
    println!(
        "event/{}: {} commits of 1-3 ops ({} ops, {} blocks bytes on average) on a {RECORDS}-record repository",
        s.curve,
        s.cases.len(),
        s.ops,
        s.blocks_bytes / s.cases.len()
    );
    println!(
        "event/{}: verify_commit_event {:.0} events/s, signature_only {:.0} verifies/s \
         (fastest of {RUNS} alternating runs, thread CPU time)",
        s.curve,
        per_sec(full_min),
        per_sec(bare_min)
    );
    println!(
        "event/{}: verify_commit_event / signature_only = {:.3}x (fastest), {:.3}x (median); \
         target < 1.5x",
        s.curve,
        full_min.as_secs_f64() / bare_min.as_secs_f64(),
        full_med.as_secs_f64() / bare_med.as_secs_f64()
    );
}

fn main() {
    let setups = [setup(Curve::K256), setup(Curve::P256)];
    let mut c = Criterion::default().configure_from_args();
    for s in &setups {
        bench(&mut c, s);
    }
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test` runs each bench once
    // and needs no ratio.
    if std::env::args().any(|a| a == "--bench") {
        for s in &setups {
            ratio(s);
        }
    }
}
