//! Signature verification per curve: `atrepo_verify::PublicKey::verify`
//! next to the raw `k256` / `p256` verify it wraps, on the unsigned bytes
//! of a real-shaped commit.
//!
//! Both sides take the same inputs (message and 64 signature bytes) and do
//! the same work: parse the signature, SHA-256 the message, verify. Ours
//! adds the atproto checks (length, DER shape, zero and out-of-range
//! scalars, high-S on both curves); the raw p256 side does not refuse
//! high-S, which is the point of the wrapper. Target: our wrapper adds
//! under 5%. After the criterion runs, the bench prints the ratio from its
//! own interleaved timings. It also times a whole commit (strict decode
//! plus verify) and the repository path checks `atrepo-mst` runs per key.
//!
//! Run: `cargo bench -p benches --bench verify -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use atrepo::verify::{Commit, CommitOptions, Curve, PublicKey, SigningKey, Tid, UnsignedCommit};
use criterion::{Criterion, Throughput};

/// A commit shaped like a real one: a did:plc, a TID rev, null prev.
fn commit(signer: &SigningKey) -> Commit {
    let data = "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a".parse().unwrap();
    let rev = Tid::parse("3l3qo2vutsw2b").unwrap();
    UnsignedCommit::new("did:plc:ewvi7nxzyoun6zhxrhs64oiz", data, rev, None)
        .unwrap()
        .sign(signer)
        .unwrap()
}

/// The raw curve-crate verify, from the same bytes as ours.
enum Raw {
    K256(k256::ecdsa::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl Raw {
    fn new(key: &PublicKey) -> Raw {
        let sec1 = key.to_compressed();
        match key.curve() {
            Curve::K256 => Raw::K256(k256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap()),
            Curve::P256 => Raw::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap()),
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Raw::K256(key) => {
                use k256::ecdsa::signature::Verifier;
                k256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
            Raw::P256(key) => {
                use p256::ecdsa::signature::Verifier;
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
        }
    }
}

/// Everything one curve's benchmarks need.
struct Setup {
    curve: Curve,
    public: PublicKey,
    raw: Raw,
    message: Vec<u8>,
    signature: Vec<u8>,
    commit: Vec<u8>,
}

fn setup(curve: Curve) -> Setup {
    let signer = SigningKey::from_seed(curve, b"bench").unwrap();
    let public = signer.public_key();
    let commit = commit(&signer);
    let setup = Setup {
        curve,
        raw: Raw::new(&public),
        message: commit.unsigned_bytes(),
        signature: commit.sig().to_vec(),
        commit: commit.to_cbor(),
        public,
    };
    // Both sides must accept before anything is timed.
    assert!(setup.public.verify(&setup.message, &setup.signature).is_ok());
    assert!(setup.raw.verify(&setup.message, &setup.signature));
    setup
}

fn ours(s: &Setup) -> bool {
    s.public.verify(black_box(&s.message), black_box(&s.signature)).is_ok()
}

fn raw(s: &Setup) -> bool {
    s.raw.verify(black_box(&s.message), black_box(&s.signature))
}

fn decode_and_verify(s: &Setup) -> bool {
    Commit::decode(black_box(&s.commit), &CommitOptions::default())
        .is_ok_and(|c| c.verify(&s.public).is_ok())
}

/// The repository path checks `atrepo-mst` runs on every key it decodes.
fn bench_paths(c: &mut Criterion) {
    use atrepo::verify::syntax;
    let key = "app.bsky.feed.post/3l3qo2vutsw2b";
    let mut g = c.benchmark_group("syntax");
    g.throughput(Throughput::Bytes(key.len() as u64));
    g.bench_function("repo_path", |b| b.iter(|| syntax::repo_path(black_box(key)).is_ok()));
    g.bench_function("repo_path_lax", |b| b.iter(|| syntax::repo_path_lax(black_box(key)).is_ok()));
    g.finish();
}

fn bench(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group(format!("verify/{}", s.curve));
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw", |b| b.iter(|| raw(s)));
    g.bench_function("atrepo", |b| b.iter(|| ours(s)));
    g.bench_function("commit_decode_verify", |b| b.iter(|| decode_and_verify(s)));
    g.finish();
}

/// The median of some timings.
fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// Times batches of `a` and `b` alternately, so both see the same machine
/// state, and returns the (minimum, median) of `b`'s time over `a`'s.
fn alternate(runs: usize, batch: usize, a: impl Fn() -> bool, b: impl Fn() -> bool) -> (f64, f64) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(a());
        }
        ta.push(t.elapsed());
        let t = Instant::now();
        for _ in 0..batch {
            black_box(b());
        }
        tb.push(t.elapsed());
    }
    let min = |v: &[Duration]| v.iter().min().copied().unwrap_or_default().as_secs_f64();
    let ratio_min = min(&tb) / min(&ta);
    let ratio_median = median(&mut tb).as_secs_f64() / median(&mut ta).as_secs_f64();
    (ratio_min, ratio_median)
}

/// Prints our verify's time over the raw verify's, and ops/s of each.
fn ratio(s: &Setup) {
    const RUNS: usize = 40;
    const BATCH: usize = 50;
    let (min, median) = alternate(RUNS, BATCH, || raw(s), || ours(s));
    let time = |f: &dyn Fn() -> bool| {
        let t = Instant::now();
        for _ in 0..BATCH * 4 {
            black_box(f());
        }
        (BATCH * 4) as f64 / t.elapsed().as_secs_f64()
    };
    let (raw_ops, ours_ops) = (time(&|| raw(s)), time(&|| ours(s)));
    println!(
        "verify/{}: atrepo / raw = {min:.3}x (min), {median:.3}x (median of {RUNS} alternating \
         batches of {BATCH}); target < 1.05x; about {ours_ops:.0} vs {raw_ops:.0} verifies/s",
        s.curve
    );
}

fn main() {
    let setups = [setup(Curve::K256), setup(Curve::P256)];
    let mut c = Criterion::default().configure_from_args();
    for s in &setups {
        bench(&mut c, s);
    }
    bench_paths(&mut c);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test` runs each bench once
    // and needs no ratio.
    if std::env::args().any(|a| a == "--bench") {
        for s in &setups {
            ratio(s);
        }
    }
}
