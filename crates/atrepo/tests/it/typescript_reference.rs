//! Repositories and a firehose capture written by the reference TypeScript
//! implementation (`@atproto/repo`), not by atrepo's own writer: each must
//! verify, give the reference's records, CIDs and JSON, and keep failing
//! when tampered with. See `tests/data/typescript-reference/README.md` for
//! how the files were made.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use atrepo::event::{
    CommitEvent, Event, EventError, Frame, Frames, MemoryStateStore, RepoState, StateStore,
    Verifier,
};
use atrepo::verify::drisl::Value;
use atrepo::verify::{FixedClock, PublicKey, Tid};
use atrepo::{Error, ErrorKind, RepoReader, VerifyOptions, verify_repo};
use cid::Cid;
use serde_json::Value as Json;

/// The repositories, as `(CAR file, manifest)`: two written through many
/// commits (creates, updates, deletes, records shared by several keys),
/// one with one record, one empty, and `k256` again with its blocks in the
/// order the reference PDS's `getRepo` writes them (newest rev first, then
/// by CID, descending): the order of real repositories, far from the
/// tree's.
const REPOSITORIES: [(&str, &str); 5] = [
    ("k256.car", "k256"),
    ("p256.car", "p256"),
    ("one.car", "one"),
    ("empty.car", "empty"),
    (PDS_ORDER, "k256"),
];

/// See [`REPOSITORIES`].
const PDS_ORDER: &str = "k256-pds-order.car";

/// Later than every rev in the files (they were written on 2026-11-22), so
/// the future-rev checks pass whatever the machine's clock says.
const NOW_MICROS: u64 = 1_893_456_000_000_000; // 2030-01-01

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/typescript-reference")
}

fn read(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// What the reference implementation says the repository holds.
struct Manifest {
    did: String,
    key: PublicKey,
    commit: String,
    rev: String,
    data: String,
    /// `(key, record CID, record as atproto JSON)`, in key order.
    records: Vec<(String, String, Json)>,
}

fn manifest(name: &str) -> Manifest {
    let json: Json = serde_json::from_slice(&read(&format!("{name}.json"))).unwrap();
    let text = |field: &str| json[field].as_str().unwrap().to_owned();
    let records = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |field: &str| r[field].as_str().unwrap().to_owned();
            (text("key"), text("cid"), r["record"].clone())
        })
        .collect();
    Manifest {
        did: text("did"),
        key: PublicKey::from_did_key(&text("key")).unwrap(),
        commit: text("commit"),
        rev: text("rev"),
        data: text("data"),
        records,
    }
}

fn options(m: &Manifest) -> VerifyOptions {
    VerifyOptions::default()
        .key(m.key.clone())
        .did(m.did.clone())
        .now(UNIX_EPOCH + Duration::from_micros(NOW_MICROS))
}

/// Every record a reader hands out, as `(key, CID, JSON of its bytes)`.
fn records_of(
    reader: impl Iterator<Item = atrepo::Result<atrepo::OwnedRecord>>,
) -> Vec<(String, String, Json)> {
    reader
        .map(|r| {
            let r = r.unwrap();
            let data = r.data.unwrap_or_else(|| panic!("{} came without its bytes", r.key));
            let value = Value::decode(&data, &Default::default()).unwrap();
            (r.key, r.cid.to_string(), atrepo::json::to_json(&value))
        })
        .collect()
}

#[test]
fn every_reference_repository_verifies_to_the_reference_commit() {
    for (name, manifest_name) in REPOSITORIES {
        let m = manifest(manifest_name);
        let report = verify_repo(read(name), options(&m)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.did, m.did, "{name}");
        assert_eq!(report.commit, m.commit, "{name}");
        assert_eq!(report.rev, m.rev, "{name}");
        assert_eq!(report.version, 3, "{name}");
        assert_eq!(report.data, m.data, "{name}");
        assert!(report.signature.checked, "{name}");
        assert_eq!(report.records, m.records.len() as u64, "{name}");
        // The reference writes exactly the reachable blocks, each once.
        assert_eq!(report.car.duplicate_blocks, 0, "{name}");
        assert_eq!(report.car.unreferenced_blocks, 0, "{name}");
    }
    // PDS order: the blocks of `k256.car`, each once, by rev (newest first)
    // then by CID string, descending. Each rev's blocks are one run of
    // descending CIDs, the commit's rev comes first, and a record block,
    // not the commit, leads.
    let cids = |name: &str| -> Vec<String> {
        let bytes = read(name);
        let slice = atrepo::car::CarSlice::new(&bytes).unwrap();
        slice.map(|f| f.unwrap().cid.to_string()).collect()
    };
    let (pds, tree) = (cids(PDS_ORDER), cids("k256.car"));
    let (mut sorted_pds, mut sorted_tree) = (pds.clone(), tree.clone());
    sorted_pds.sort();
    sorted_tree.sort();
    assert_eq!(sorted_pds, sorted_tree, "the same blocks");
    assert_ne!(pds, tree, "in another order");
    let mut runs: Vec<Vec<&String>> = Vec::new();
    for cid in &pds {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|last| *last > cid) => run.push(cid),
            _ => runs.push(vec![cid]),
        }
    }
    let commit = manifest("k256").commit;
    assert!(runs[0].contains(&&commit), "the newest rev's run holds the commit");
    assert_ne!(pds[0], commit, "a record or node leads, not the commit");
    // Many commits wrote the repository: several runs, most of them long.
    assert!(runs.len() >= 3 && runs.len() * 4 <= pds.len(), "{} runs of {}", runs.len(), pds.len());
}

/// `car` with its blocks in reverse order: every node before its parent,
/// records first, the commit last.
fn reversed(car: &[u8]) -> Vec<u8> {
    let slice = atrepo::car::CarSlice::new(car).unwrap();
    let header = slice.header().clone();
    let mut frames: Vec<_> = slice.map(Result::unwrap).collect();
    frames.reverse();
    atrepo::car::encode(&header, frames.iter().map(|f| (&f.cid, f.data)))
}

#[test]
fn every_reference_record_reads_back_with_the_reference_cid_and_json() {
    for (name, manifest_name) in REPOSITORIES {
        let m = manifest(manifest_name);
        let bytes = read(name);
        let path = data_dir().join(name);
        let in_memory = records_of(RepoReader::from_bytes(bytes.clone(), options(&m)).unwrap());
        assert_eq!(in_memory, m.records, "{name}: in memory");
        // A file is read again at the offset of a record a second key
        // points to; a stream keeps each record to hand it out again.
        let from_file = records_of(RepoReader::from_file(&path, options(&m)).unwrap());
        assert_eq!(from_file, m.records, "{name}: from a file");
        let kept = options(&m).keep_records(true);
        let from_stream = records_of(RepoReader::from_reader(&bytes[..], kept).unwrap());
        assert_eq!(from_stream, m.records, "{name}: from a stream");
    }
    // Reversed, and in PDS order, read as a stream past a tight limit:
    // blocks wait in the stream's scratch file, and kept records give every
    // key its bytes.
    let reordered = [
        ("k256 reversed", reversed(&read("k256.car")), "k256"),
        ("p256 reversed", reversed(&read("p256.car")), "p256"),
        ("k256 in PDS order", read(PDS_ORDER), "k256"),
    ];
    for (name, bytes, manifest_name) in reordered {
        let m = manifest(manifest_name);
        let dir = tempfile::tempdir().unwrap();
        let spill = atrepo::store::SpillOptions::default().parent(dir.path()).no_spill();
        let tight = options(&m).memory_limit(48 * 1024).spill(Some(spill)).keep_records(true);
        let mut reader = RepoReader::from_reader(&bytes[..], tight).unwrap();
        let records = records_of(reader.by_ref());
        assert_eq!(records, m.records, "{name}, from a stream");
        assert!(reader.finish().unwrap().memory.spilled, "{name}");
    }
    // The files cover what they are meant to: records shared by keys that
    // are not next to each other, and every curve.
    let shared = |m: &Manifest| {
        let mut cids: Vec<&str> = m.records.iter().map(|(_, cid, _)| cid.as_str()).collect();
        cids.sort_unstable();
        cids.windows(2).filter(|w| w[0] == w[1]).count()
    };
    assert!(shared(&manifest("k256")) >= 5);
    assert!(shared(&manifest("p256")) >= 2);
    assert!(manifest("p256").key.to_did_key().starts_with("did:key:zDn"));
}

#[test]
fn a_reference_repository_with_the_other_key_or_a_flipped_byte_fails() {
    let k256 = manifest("k256");
    let p256 = manifest("p256");
    let bytes = read("k256.car");

    let err = verify_repo(bytes.clone(), options(&k256).key(p256.key.clone())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    assert!(matches!(err, Error::Verify(_)), "{err:?}");

    // The reference writes a record last; any byte of it will do.
    let mut flipped = bytes;
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let err = verify_repo(flipped, options(&k256)).unwrap_err();
    assert!(matches!(err, Error::Car(atrepo::car::Error::HashMismatch { .. })), "{err:?}");
}

/// The capture's events as `(kind, frame bytes)`, and each DID's key.
fn capture() -> (Vec<u8>, Vec<(String, PublicKey)>) {
    let keys = String::from_utf8(read("firehose.keys")).unwrap();
    let keys = keys
        .lines()
        .map(|line| {
            let (did, key) = line.split_once('=').unwrap();
            (did.to_owned(), PublicKey::from_did_key(key).unwrap())
        })
        .collect();
    (read("firehose.frames"), keys)
}

fn key_of<'k>(keys: &'k [(String, PublicKey)], did: &str) -> &'k PublicKey {
    &keys.iter().find(|(d, _)| d == did).unwrap_or_else(|| panic!("no key for {did}")).1
}

fn verifier() -> Verifier<FixedClock> {
    Verifier::new().with_clock(FixedClock::from_micros(NOW_MICROS))
}

#[test]
fn the_reference_firehose_capture_verifies_event_by_event_to_the_final_repositories() {
    let (bytes, keys) = capture();
    let limits = verifier().options().limits;
    let states = MemoryStateStore::new();
    let (mut commits, mut syncs) = (0, 0);
    for frame in Frames::new(&bytes, &limits) {
        let event = Event::from_frame(&frame.unwrap(), &limits).unwrap();
        match &event {
            Event::Commit(_) => commits += 1,
            Event::Sync(_) => syncs += 1,
            other => panic!("unexpected {} event", other.kind()),
        }
        let did = event.did().unwrap();
        verifier()
            .apply(&event, key_of(&keys, did), &states)
            .unwrap_or_else(|e| panic!("seq {:?} ({did}): {e}", event.seq()));
    }
    // Each account starts with a #sync, as the reference PDS sends one on
    // account creation, and then commits with several operations each.
    assert_eq!(syncs, 2);
    assert!(commits >= 70, "{commits} commits");
    // The state carried through the stream is the one each repository's
    // CAR ends at.
    for name in ["k256", "p256"] {
        let m = manifest(name);
        let expected = RepoState {
            rev: Tid::parse(&m.rev).unwrap(),
            data: Cid::try_from(m.data.as_str()).unwrap(),
        };
        assert_eq!(states.get(&m.did).unwrap(), Some(expected), "{name}");
    }
}

#[test]
fn a_reference_commit_missing_an_op_or_an_event_fails() {
    let (bytes, keys) = capture();
    let limits = verifier().options().limits;
    let frames: Vec<Frame<'_>> = Frames::new(&bytes, &limits).map(Result::unwrap).collect();
    let commits: Vec<CommitEvent<'_>> = frames
        .iter()
        .filter_map(|f| match Event::from_frame(f, &limits).unwrap() {
            Event::Commit(c) => Some(c),
            _ => None,
        })
        .collect();

    // One operation dropped from a commit with several: the remaining ones
    // no longer turn the signed tree back into prevData.
    let mut event = commits.iter().find(|c| c.ops.len() >= 3).unwrap().clone();
    event.ops.remove(1);
    let body = event.to_cbor();
    let event = CommitEvent::decode(&body, &limits).unwrap();
    let err = verifier().verify_commit(&event, key_of(&keys, event.repo), None).unwrap_err();
    assert!(matches!(err, Error::Event(EventError::InversionMismatch { .. })), "{err:?}");

    // One of an account's events left out of the stream: the next one
    // starts from a tree the relay never held.
    let states = MemoryStateStore::new();
    let did = commits[0].repo;
    let mut seen = 0;
    let mut failure = None;
    for frame in &frames {
        let event = Event::from_frame(frame, &limits).unwrap();
        if event.did() != Some(did) {
            continue;
        }
        seen += 1;
        if seen == 5 {
            continue;
        }
        if let Err(e) = verifier().apply(&event, key_of(&keys, did), &states) {
            failure = Some((seen, e));
            break;
        }
    }
    let (at, err) = failure.expect("the gap went unnoticed");
    assert_eq!(at, 6);
    assert!(
        matches!(
            err,
            Error::Event(EventError::SinceMismatch { .. } | EventError::PrevDataMismatch { .. })
        ),
        "{err:?}"
    );
}
