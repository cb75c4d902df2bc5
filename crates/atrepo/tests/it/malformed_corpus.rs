//! The malformed-input corpus (`tests/data/malformed`, rebuilt by `cargo
//! xtask malformed-corpus`): every file goes through the entry point that
//! reads it, and its outcome (`Ok` for the cases the spec says to
//! tolerate, else the error's class, variant and message) is one line of
//! one `insta` snapshot. Each case must not panic and must finish within
//! one second: a bound on the work a hostile input can cause, not a speed
//! target.
//!
//! Entry points by extension: `.car` whole-repository `verify_repo`,
//! `.cbor` a record in strict DRISL (`drisl::validate_record`), `.event` a `#commit`
//! event decoded and verified, `.txt` did:key parsing and signature
//! checks. See `tests/data/malformed/README.md`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use atrepo::event::{CommitEvent, Limits, Verifier};
use atrepo::verify::drisl::{self, Value};
use atrepo::verify::{Curve, FixedClock, KeyOptions, PublicKey};
use atrepo::{VerifyOptions, verify_repo};

/// The corpus's clock: Unix time 1,700,000,000 (see its README).
const NOW_SECS: u64 = 1_700_000_000;
/// No case may take longer.
const MAX_TIME: Duration = Duration::from_secs(1);
/// The cases the repository spec says readers must tolerate.
const TOLERATED: &[&str] = &["block/duplicate-blocks.car", "block/unreferenced-block.car"];
/// Fewest cases per area (the test plan's section 4.2).
const MIN_PER_AREA: &[(&str, usize)] = &[
    ("car", 14),
    ("cid", 9),
    ("block", 4),
    ("drisl", 16),
    ("commit", 10),
    ("mst", 16),
    ("keys", 12),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malformed")
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn read_text(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap().trim().to_owned()
}

fn corpus_key() -> PublicKey {
    PublicKey::from_did_key(&read_text("signing-key.did-key")).unwrap()
}

/// The variant path of an error from its `Debug` form: `Car(HashMismatch
/// { .. })` is `Car::HashMismatch`.
fn variant(debug: &str) -> String {
    let mut path = Vec::new();
    let mut rest = debug;
    loop {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        path.push(&rest[..end]);
        match rest[end..].strip_prefix('(') {
            Some(inner) if inner.starts_with(|c: char| c.is_ascii_uppercase()) => rest = inner,
            _ => break,
        }
    }
    path.join("::")
}

fn error_line(
    kind: impl std::fmt::Display,
    debug: &str,
    message: impl std::fmt::Display,
) -> String {
    format!("Err({kind}) {}: {message}", variant(debug))
}

/// A whole repository CAR.
fn run_car(name: &str, bytes: Vec<u8>) -> String {
    let mut options = VerifyOptions::default()
        .key(corpus_key())
        .did(read_text("repo.did"))
        .now(now())
        .spill(None);
    if name == "mst/deeper-than-cap.car" {
        // A key two layers deep is as deep as honest keys get in a small
        // repository; the cap is lowered to show the limit.
        options = options.mst(atrepo::mst::Limits::default().max_depth(2));
    }
    match verify_repo(bytes, options) {
        Ok(r) => format!(
            "Ok(records {}, blocks {}, duplicates {}, unreferenced {})",
            r.records, r.car.blocks, r.car.duplicate_blocks, r.car.unreferenced_blocks
        ),
        Err(e) => error_line(e.kind(), &format!("{e:?}"), &e),
    }
}

/// A record, as strict DRISL with the data model rules.
fn run_cbor(bytes: &[u8]) -> String {
    let limits = drisl::Limits::default();
    match drisl::validate_record(bytes, &limits).and_then(|()| Value::decode(bytes, &limits)) {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => error_line("malformed input", &format!("{:?}", e.problem), &e),
    }
}

/// A `#commit` event body, verified with the corpus key and clock.
fn run_event(bytes: &[u8]) -> String {
    let event = match CommitEvent::decode(bytes, &Limits::default()) {
        Ok(event) => event,
        Err(e) => return error_line(e.kind(), &format!("Event({e:?})"), &e),
    };
    let verifier = Verifier::new().with_clock(FixedClock(now()));
    match verifier.verify_commit(&event, &corpus_key(), None) {
        Ok(_) => "Ok".to_owned(),
        Err(e) => error_line(e.kind(), &format!("{e:?}"), &e),
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// A key, and a signature over a message if given.
fn run_key(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let key = if let Some(legacy) = first.strip_prefix("legacy ") {
        let (curve, multibase) = legacy.split_once(' ').unwrap();
        let curve = if curve == "k256" { Curve::K256 } else { Curve::P256 };
        PublicKey::from_legacy_multibase(curve, multibase, &KeyOptions::default())
    } else {
        PublicKey::from_did_key(first)
    };
    let key = match key {
        Ok(key) => key,
        Err(e) => return error_line(e.kind(), &format!("{e:?}"), &e),
    };
    let field = |line: Option<&str>, name: &str| line.and_then(|l| l.strip_prefix(name)).map(hex);
    let (Some(message), Some(signature)) =
        (field(lines.next(), "message "), field(lines.next(), "signature "))
    else {
        return format!("Ok(key {})", key.to_did_key());
    };
    match key.verify(&message, &signature) {
        Ok(()) => "Ok(signature verified)".to_owned(),
        Err(e) => error_line(e.kind(), &format!("{e:?}"), &e),
    }
}

fn run(name: &str, bytes: Vec<u8>) -> String {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("car") => run_car(name, bytes),
        Some("cbor") => run_cbor(&bytes),
        Some("event") => run_event(&bytes),
        Some("txt") => run_key(&String::from_utf8(bytes).unwrap()),
        other => panic!("{name}: no entry point for {other:?}"),
    }
}

/// Every case file, as `area/name.ext`.
fn cases() -> Vec<String> {
    let mut out = Vec::new();
    for area in std::fs::read_dir(dir()).unwrap() {
        let area = area.unwrap().path();
        if !area.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&area).unwrap() {
            let file = file.unwrap().path();
            let rel = file.strip_prefix(dir()).unwrap().to_str().unwrap().replace('\\', "/");
            out.push(rel);
        }
    }
    out.sort();
    out
}

#[test]
fn every_malformed_case_fails_with_its_error_without_panicking_within_a_second() {
    let cases = cases();
    let mut per_area: BTreeMap<String, usize> = BTreeMap::new();
    let mut lines = Vec::new();
    let (mut panics, mut slow, mut accepted) = (Vec::new(), Vec::new(), Vec::new());
    for name in &cases {
        let bytes = std::fs::read(dir().join(name)).unwrap();
        *per_area.entry(name.split('/').next().unwrap().to_owned()).or_default() += 1;
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| run(name, bytes)));
        let took = start.elapsed();
        let outcome = match outcome {
            Ok(line) => line,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panics.push(format!("{name}: {message}"));
                format!("PANIC: {message}")
            }
        };
        if took >= MAX_TIME {
            slow.push(format!("{name}: {took:?}"));
        }
        if outcome.starts_with("Ok") != TOLERATED.contains(&name.as_str()) {
            accepted.push(format!("{name}: {outcome}"));
        }
        lines.push(format!("{name}: {outcome}"));
    }
    assert!(panics.is_empty(), "cases panicked:\n{}", panics.join("\n"));
    assert!(slow.is_empty(), "cases took a second or more:\n{}", slow.join("\n"));
    assert!(accepted.is_empty(), "wrong acceptance:\n{}", accepted.join("\n"));
    for (area, min) in MIN_PER_AREA {
        let n = per_area.get(*area).copied().unwrap_or(0);
        assert!(n >= *min, "{area}: {n} cases, the plan asks for at least {min}");
    }
    assert!(cases.len() >= 80, "{} cases, the plan asks for at least 80", cases.len());
    insta::assert_snapshot!("malformed_corpus", lines.join("\n"));
}

#[test]
fn the_corpus_uses_many_distinct_error_variants() {
    // Not one error for everything: each area's cases end in different
    // variants (the snapshot lists which).
    let mut variants = std::collections::BTreeSet::new();
    for name in cases() {
        let bytes = std::fs::read(dir().join(&name)).unwrap();
        let line = run(&name, bytes);
        if let Some(rest) = line.strip_prefix("Err(") {
            let (_, after) = rest.split_once(") ").unwrap();
            variants.insert(after.split(": ").next().unwrap().to_owned());
        }
    }
    assert!(variants.len() >= 60, "only {} distinct variants: {variants:?}", variants.len());
}
