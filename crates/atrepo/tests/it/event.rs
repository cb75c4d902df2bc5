//! Firehose `#commit` and `#sync` events: the six
//! `firehose/commit-proof-fixtures.json` cases run as full signed events,
//! every tampered variant failing with its own error, the state a relay
//! keeps between events, and the `atrepo event` command line.
//!
//! The fixtures are read from `$ATPROTO_INTEROP_TESTS` (or
//! `interop-tests/fixtures`), never copied into the repository; missing
//! fixtures fail the tests.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use atrepo::car::{CarSlice, DAG_CBOR, blessed_cid};
use atrepo::event::{
    Action, BuiltCommit, CheckMode, CommitEvent, CommitEventBuilder, Event, EventError, Frame,
    Frames, Limits, MemoryStateStore, RecordCheck, RepoOp, RepoState, StateStore, SyncEvent,
    Verified, VerifiedCommit, Verifier, VerifyOptions, covering_proof, sync_event,
};
use atrepo::mst::{self, Builder, KeyRules, Op, Tree};
use atrepo::store::{BlockStore, MemoryStore};
use atrepo::verify::Error as VerifyError;
use atrepo::verify::drisl::{Encoder, Value};
use atrepo::verify::{
    Curve, FixedClock, KeyResolver, PublicKey, SigningKey, StaticKeyResolver, Tid,
};
use atrepo::{Error, ErrorKind};
use cid::Cid;

// ---------------------------------------------------------------------------
// Helpers

/// The clock every test verifies with: 2023-11-14T22:13:20Z.
const NOW: u64 = 1_700_000_000_000_000;
const DAY: u64 = 86_400_000_000;
const SECOND: u64 = 1_000_000;

fn clock() -> FixedClock {
    FixedClock::from_micros(NOW)
}

fn verifier() -> Verifier<FixedClock> {
    Verifier::new().with_clock(clock())
}

fn tid(micros: u64) -> Tid {
    Tid::from_parts(micros, 0).unwrap()
}

fn signer(curve: Curve) -> SigningKey {
    SigningKey::from_seed(curve, b"event tests").unwrap()
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

/// A post record, shaped like a real one.
fn post(n: u64) -> Vec<u8> {
    map(&[
        ("$type", Value::String("app.bsky.feed.post".into())),
        ("text", Value::String(format!("post number {n}, about nothing in particular"))),
        ("langs", Value::Array(vec![Value::String("en".into())])),
        ("createdAt", Value::String("2023-11-14T22:13:20.000Z".into())),
    ])
    .to_cbor()
}

/// A like record, shaped like a real one.
fn like(n: u64) -> Vec<u8> {
    let target = blessed_cid(DAG_CBOR, &n.to_be_bytes());
    map(&[
        ("$type", Value::String("app.bsky.feed.like".into())),
        (
            "subject",
            map(&[
                ("cid", Value::String(target.to_string())),
                ("uri", Value::String(format!("at://did:plc:someone/app.bsky.feed.post/{n}"))),
            ]),
        ),
        ("createdAt", Value::String("2023-11-14T22:13:20.000Z".into())),
    ])
    .to_cbor()
}

fn post_path(n: u64) -> String {
    format!("app.bsky.feed.post/{}", tid(NOW - 30 * DAY + n * SECOND))
}

fn like_path(n: u64) -> String {
    format!("app.bsky.feed.like/{}", tid(NOW - 20 * DAY + n * SECOND))
}

/// A repository on the PDS side, committing through [`CommitEventBuilder`].
struct Repo {
    store: MemoryStore,
    did: String,
    key: SigningKey,
    root: Cid,
    rev: Tid,
    seq: i64,
}

impl Repo {
    /// A repository of `posts` posts, last committed a day before [`NOW`].
    fn new(curve: Curve, posts: u64) -> Repo {
        let store = MemoryStore::new();
        let mut pairs = Vec::new();
        for n in 0..posts {
            let record = post(n);
            let cid = blessed_cid(DAG_CBOR, &record);
            store.put(cid, record.into()).unwrap();
            pairs.push((post_path(n), cid));
        }
        let root = Builder::new().build(&store, pairs).unwrap();
        Repo {
            store,
            did: "did:plc:ewvi7nxzyoun6zhxrhs64oiz".to_owned(),
            key: signer(curve),
            root,
            rev: tid(NOW - DAY),
            seq: 100,
        }
    }

    fn state(&self) -> RepoState {
        RepoState { rev: self.rev, data: self.root }
    }

    /// Commits the writes `f` adds, one second after the last commit.
    fn commit(
        &mut self,
        f: impl FnOnce(CommitEventBuilder<'_>) -> CommitEventBuilder<'_>,
    ) -> BuiltCommit {
        let rev = tid(self.rev.timestamp_micros() + SECOND);
        self.seq += 1;
        let builder = CommitEventBuilder::new(&self.store, &self.did, self.root, rev)
            .since(Some(self.rev))
            .seq(self.seq);
        let built = f(builder).build(&self.key).unwrap();
        self.root = built.after;
        self.rev = rev;
        built
    }
}

fn decode(body: &[u8]) -> CommitEvent<'_> {
    CommitEvent::decode(body, &Limits::default()).unwrap()
}

fn verify_with(
    v: &Verifier<FixedClock>,
    body: &[u8],
    key: &PublicKey,
    prior: Option<&RepoState>,
) -> atrepo::Result<VerifiedCommit> {
    v.verify_commit(&CommitEvent::decode(body, &v.options().limits)?, key, prior)
}

fn verify(
    body: &[u8],
    key: &PublicKey,
    prior: Option<&RepoState>,
) -> atrepo::Result<VerifiedCommit> {
    verify_with(&verifier(), body, key, prior)
}

/// The event error inside `result`, or a panic naming what came instead.
#[track_caller]
fn event_error<T: std::fmt::Debug>(result: atrepo::Result<T>) -> EventError {
    match result {
        Err(Error::Event(e)) => e,
        other => panic!("expected an event error, found {other:?}"),
    }
}

/// `blocks` without the block `drop`, same header.
fn car_without(blocks: &[u8], drop: &Cid) -> Vec<u8> {
    let slice = CarSlice::new(blocks).unwrap();
    let header = slice.header().clone();
    let kept: Vec<(Cid, Vec<u8>)> = slice
        .map(Result::unwrap)
        .filter(|f| f.cid != *drop)
        .map(|f| (f.cid, f.data.to_vec()))
        .collect();
    atrepo::car::encode(&header, kept.iter().map(|(c, b)| (c, b.as_slice())))
}

/// `blocks` with an extra block.
fn car_with(blocks: &[u8], cid: Cid, data: &[u8]) -> Vec<u8> {
    let slice = CarSlice::new(blocks).unwrap();
    let header = slice.header().clone();
    let mut kept: Vec<(Cid, Vec<u8>)> =
        slice.map(Result::unwrap).map(|f| (f.cid, f.data.to_vec())).collect();
    kept.push((cid, data.to_vec()));
    atrepo::car::encode(&header, kept.iter().map(|(c, b)| (c, b.as_slice())))
}

/// A typical commit on a repository of 10,000 posts: one post, one like,
/// one deleted post.
fn typical(curve: Curve) -> (Repo, RepoState, BuiltCommit) {
    let mut repo = Repo::new(curve, 10_000);
    let prior = repo.state();
    let built = repo.commit(|b| {
        b.put(&post_path(20_000), post(20_000)).put(&like_path(1), like(1)).delete(&post_path(17))
    });
    (repo, prior, built)
}

// ---------------------------------------------------------------------------
// The interop fixtures as full events

fn fixtures() -> PathBuf {
    let dir = match std::env::var_os("ATPROTO_INTEROP_TESTS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop-tests/fixtures"),
    };
    assert!(
        dir.is_dir(),
        "atproto interop fixtures not found at {}: set ATPROTO_INTEROP_TESTS \
         (see DEVELOPERS.md, \"Interop fixtures\")",
        dir.display()
    );
    dir
}

struct Fixture {
    comment: String,
    leaf_value: Cid,
    keys: Vec<String>,
    adds: Vec<String>,
    dels: Vec<String>,
    before: Cid,
    after: Cid,
    proof: BTreeSet<Cid>,
}

fn commit_proof_fixtures() -> Vec<Fixture> {
    let path = fixtures().join("firehose/commit-proof-fixtures.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
    };
    let cid = |v: &serde_json::Value| -> Cid { v.as_str().unwrap().parse().unwrap() };
    json.as_array()
        .unwrap()
        .iter()
        .map(|f| Fixture {
            comment: f["comment"].as_str().unwrap().to_owned(),
            leaf_value: cid(&f["leafValue"]),
            keys: strings(&f["keys"]),
            adds: strings(&f["adds"]),
            dels: strings(&f["dels"]),
            before: cid(&f["rootBeforeCommit"]),
            after: cid(&f["rootAfterCommit"]),
            proof: strings(&f["blocksInProof"]).iter().map(|s| s.parse().unwrap()).collect(),
        })
        .collect()
}

/// What the builder's covering proof gives for a fixture, with the
/// fixture's own leaf value: the nodes the verifier reads, and the nodes the
/// commit creates.
fn fixture_proof(f: &Fixture) -> (BTreeSet<Cid>, BTreeSet<Cid>) {
    let store = MemoryStore::new();
    let before = Builder::new()
        .keys(KeyRules::Lax)
        .build(&store, f.keys.iter().map(|k| (k, f.leaf_value)))
        .unwrap();
    assert_eq!(before, f.before, "{}: root before", f.comment);
    let mut tree = Tree::load_with(&store, before, KeyRules::Lax, mst::Limits::default()).unwrap();
    let mut ops = Vec::new();
    for key in &f.adds {
        tree.insert(key, f.leaf_value).unwrap();
        ops.push(Op::Create { key: key.clone(), cid: f.leaf_value });
    }
    for key in &f.dels {
        tree.remove(key).unwrap();
        ops.push(Op::Delete { key: key.clone(), prev: f.leaf_value });
    }
    let (after, new_blocks) = tree.root_and_new_blocks();
    assert_eq!(after, f.after, "{}: root after", f.comment);
    let new_nodes = new_blocks.iter().map(|(c, _)| *c).collect();
    store.write(new_blocks.into_iter().collect()).unwrap();
    let read = covering_proof(&store, after, &ops, KeyRules::Lax).unwrap();
    (read.into_iter().map(|(c, _)| c).collect(), new_nodes)
}

#[test]
fn fixture_proofs_match_the_builders() {
    let fixtures = commit_proof_fixtures();
    assert_eq!(fixtures.len(), 6);
    for f in &fixtures {
        let (read, new_nodes) = fixture_proof(f);
        // The verifier reads no node outside the fixture's proof; in "add
        // on edge with neighbor two layers down" it reads the removed key's
        // unchanged neighbours too, to check them against the key.
        assert!(read.is_subset(&f.proof), "{}: nodes read", f.comment);
        // The builder's blocks (nodes read, plus every node the commit
        // creates, as a PDS sends its diff) are exactly the fixture's.
        let sent: BTreeSet<Cid> = read.union(&new_nodes).copied().collect();
        assert_eq!(sent, f.proof, "{}: proof blocks", f.comment);
    }
}

#[test]
fn fixtures_as_full_events() {
    for (i, f) in commit_proof_fixtures().iter().enumerate() {
        // The fixture's trees, with a real record block behind every key
        // (the fixtures' leaf value is a bare CID). Layers depend only on
        // the keys, so the trees have the fixtures' shape.
        let curve = if i % 2 == 0 { Curve::K256 } else { Curve::P256 };
        let store = MemoryStore::new();
        let record = post(0);
        let value = blessed_cid(DAG_CBOR, &record);
        store.put(value, record.into()).unwrap();
        let before = Builder::new()
            .keys(KeyRules::Lax)
            .build(&store, f.keys.iter().map(|k| (k, value)))
            .unwrap();
        let key = signer(curve);
        let rev = tid(NOW - 60 * SECOND);
        let mut builder = CommitEventBuilder::new(&store, "did:plc:fixture", before, rev)
            .keys(KeyRules::Lax)
            .since(Some(tid(NOW - DAY)));
        for (n, add) in f.adds.iter().enumerate() {
            builder = builder.put(add, post(1 + n as u64));
        }
        for del in &f.dels {
            builder = builder.delete(del);
        }
        let built = builder.build(&key).unwrap();
        let sent: BTreeSet<Cid> = built.proof.iter().chain(&built.new_nodes).copied().collect();
        assert_eq!(sent.len(), f.proof.len(), "{}: proof size", f.comment);

        let lax = verifier().with_options(VerifyOptions::default().keys(KeyRules::Lax));
        let prior = RepoState { rev: tid(NOW - DAY), data: before };
        let verified = verify_with(&lax, &built.body, &key.public_key(), Some(&prior)).unwrap();
        assert_eq!(verified.state(), RepoState { rev, data: built.after }, "{}", f.comment);
        assert_eq!(verified.prev_data, Some(before));
        assert_eq!(verified.ops, f.adds.len() + f.dels.len());
        assert!(verified.warnings.is_empty());

        // As a whole frame, too.
        let event = Event::decode(&built.frame, &Limits::default()).unwrap();
        let Verified::Commit(c) =
            lax.verify_event(&event, &key.public_key(), Some(&prior)).unwrap()
        else {
            panic!("expected a verified commit")
        };
        assert_eq!(c.commit, built.commit);

        // Strict key rules refuse the fixtures' made-up keys ("A0/374913":
        // the collection is not an NSID); the one case with real paths
        // passes them too.
        let strict = verify(&built.body, &key.public_key(), Some(&prior));
        let valid = |k: &String| atrepo::verify::syntax::repo_path(k).is_ok();
        if f.keys.iter().chain(&f.adds).all(valid) {
            strict.unwrap();
        } else {
            let e = strict.unwrap_err();
            assert!(
                matches!(
                    &e,
                    Error::Event(EventError::InvalidOpPath { .. })
                        | Error::Mst(mst::Error::InvalidKey { .. })
                ),
                "{e:?}"
            );
            assert_eq!(e.kind(), ErrorKind::Malformed);
        }

        // Without any one proof block the tree phase fails with that block
        // missing, except the unchanged neighbours of a removed key, which
        // the verifier reads and checks when they are there (the
        // TypeScript reference's covering proofs carry them; not every
        // implementation does): only the fixture whose created key has
        // neighbours two layers down has such blocks, the two nodes left
        // of it (as the fixture's proof lists them).
        let mut optional = Vec::new();
        for cid in &built.proof {
            let mut event = decode(&built.body);
            let car = car_without(event.blocks, cid);
            event.blocks = &car;
            let body = event.to_cbor();
            match verify_with(&lax, &body, &key.public_key(), Some(&prior)) {
                Ok(_) => optional.push(*cid),
                Err(err) => {
                    assert!(
                        matches!(&err, Error::Mst(mst::Error::MissingNode { cid: c }) if c == cid),
                        "{err:?}"
                    );
                    assert_eq!(err.kind(), ErrorKind::Missing);
                }
            }
        }
        let expected = if f.comment == "add on edge with neighbor two layers down" { 2 } else { 0 };
        assert_eq!(optional.len(), expected, "{}", f.comment);
    }
}

// ---------------------------------------------------------------------------
// Typical commits and tampered variants

#[test]
fn typical_commits_verify_on_both_curves() {
    for curve in [Curve::K256, Curve::P256] {
        let (repo, prior, built) = typical(curve);
        let key = repo.key.public_key();
        let verified = verify(&built.body, &key, Some(&prior)).unwrap();
        assert_eq!(verified.state(), repo.state());
        assert_eq!(verified.did, repo.did);
        assert_eq!(verified.since, Some(prior.rev));
        assert_eq!(verified.prev_data, Some(prior.data));
        assert_eq!(verified.commit, built.commit);
        assert_eq!(verified.ops, 3);
        assert!(verified.warnings.is_empty());
        // Without prior state, prevData alone is the reference.
        verify(&built.body, &key, None).unwrap();
        // The free function uses the system clock, which is past NOW.
        atrepo::event::verify_commit_event(&decode(&built.body), &key, Some(&prior)).unwrap();
    }
}

#[test]
fn empty_commits_verify_without_reading_the_tree() {
    let mut repo = Repo::new(Curve::K256, 10);
    let prior = repo.state();
    let built = repo.commit(|b| b);
    assert_eq!(built.after, prior.data);
    assert!(built.proof.is_empty());
    let verified = verify(&built.body, &repo.key.public_key(), Some(&prior)).unwrap();
    assert_eq!(verified.data, prior.data);
    assert_eq!(verified.ops, 0);
}

/// An empty commit whose tree is an entry-less root pointing to the real
/// one (prevData the same): accepted while its root was not read, though
/// the same root with one op is refused. The root carried is checked.
#[test]
fn an_empty_commit_checks_the_root_it_carries() {
    let mut repo = Repo::new(Curve::K256, 10);
    let prior = repo.state();
    let root = repo.root;
    let root_bytes = atrepo::store::BlockRead::get(&repo.store, &root).unwrap().unwrap();
    let built = repo.commit(|b| b);
    // A valid root carried passes.
    let mut event = decode(&built.body);
    let car = car_with(event.blocks, root, &root_bytes);
    event.blocks = &car;
    verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior)).unwrap();

    // {e: [], l: root}: an entry-less node above the real root, signed as
    // the commit's tree and given as prevData too.
    let mut e = Encoder::new();
    e.map(2).text("e").array(0).text("l").link(&root);
    let wrapper = e.into_bytes();
    let wrapper_cid = blessed_cid(DAG_CBOR, &wrapper);
    let mut event = decode(&built.body);
    let commit = atrepo::verify::UnsignedCommit::new(&repo.did, wrapper_cid, event.rev, None)
        .unwrap()
        .sign(&repo.key)
        .unwrap();
    let commit_bytes = commit.to_cbor();
    let commit_cid = blessed_cid(DAG_CBOR, &commit_bytes);
    let header = atrepo::car::Header::new(vec![commit_cid]).unwrap();
    let without_root: Vec<(Cid, &[u8])> = vec![(commit_cid, &commit_bytes)];
    let with_root: Vec<(Cid, &[u8])> = vec![(commit_cid, &commit_bytes), (wrapper_cid, &wrapper)];
    event.commit = commit_cid;
    event.prev_data = Some(wrapper_cid);
    let prior = RepoState { rev: prior.rev, data: wrapper_cid };
    // Without the root in the blocks there is nothing to read.
    let car = atrepo::car::encode(&header, without_root.iter().map(|(c, b)| (c, *b)));
    event.blocks = &car;
    verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior)).unwrap();
    let car = atrepo::car::encode(&header, with_root.iter().map(|(c, b)| (c, *b)));
    event.blocks = &car;
    let err = verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior)).unwrap_err();
    assert!(matches!(err, Error::Mst(mst::Error::RootOnlyPointer { .. })), "{err:?}");
}

#[test]
fn dropped_proof_block_is_a_missing_block() {
    let (repo, prior, built) = typical(Curve::K256);
    assert!(!built.proof.is_empty());
    for cid in &built.proof {
        let mut event = decode(&built.body);
        let car = car_without(event.blocks, cid);
        event.blocks = &car;
        let err = verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior)).unwrap_err();
        assert!(
            matches!(&err, Error::Mst(mst::Error::MissingNode { cid: c }) if c == cid),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Missing);
    }
    // New nodes the verifier does not read may be dropped.
    for cid in built.new_nodes.iter().filter(|c| !built.proof.contains(c)) {
        let mut event = decode(&built.body);
        let car = car_without(event.blocks, cid);
        event.blocks = &car;
        verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior)).unwrap();
    }
}

#[test]
fn wrong_prev_data() {
    let (repo, prior, built) = typical(Curve::P256);
    let key = repo.key.public_key();
    let wrong = blessed_cid(DAG_CBOR, b"\xa0");
    let mut event = decode(&built.body);
    event.prev_data = Some(wrong);
    let body = event.to_cbor();
    // Without state: inversion gives the real previous root, not prevData.
    match event_error(verify(&body, &key, None)) {
        EventError::InversionMismatch { expected, found } => {
            assert_eq!(*expected, wrong);
            assert_eq!(*found, prior.data);
        }
        e => panic!("{e:?}"),
    }
    // With state: prevData disagrees with it first.
    match event_error(verify(&body, &key, Some(&prior))) {
        EventError::PrevDataMismatch { expected, found } => {
            assert_eq!(*expected, prior.data);
            assert_eq!(*found, wrong);
        }
        e => panic!("{e:?}"),
    }
    // The state the relay holds can be wrong instead: same error.
    let stale = RepoState { rev: prior.rev, data: wrong };
    let e = event_error(verify(&built.body, &key, Some(&stale)));
    assert!(matches!(e, EventError::PrevDataMismatch { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Verification);
}

#[test]
fn incomplete_op_list_fails_inversion() {
    let (repo, prior, built) = typical(Curve::K256);
    let mut event = decode(&built.body);
    event.ops.remove(1);
    let e = event_error(verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior)));
    assert!(matches!(e, EventError::InversionMismatch { .. }), "{e:?}");
}

#[test]
fn op_pointing_at_a_missing_record() {
    let (repo, prior, built) = typical(Curve::K256);
    let mut event = decode(&built.body);
    let absent = blessed_cid(DAG_CBOR, &post(999_999));
    let path = event.ops[0].path;
    event.ops[0].cid = Some(absent);
    match event_error(verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior))) {
        e @ EventError::MissingRecordBlock { .. } => {
            assert_eq!(e.kind(), ErrorKind::Missing);
            let EventError::MissingRecordBlock { path: p, cid } = e else { unreachable!() };
            assert_eq!((p.as_str(), *cid), (path, absent));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn op_that_does_not_match_the_signed_tree() {
    let (repo, prior, built) = typical(Curve::K256);
    let mut event = decode(&built.body);
    // The post's op names the like's record, which is in the blocks.
    let (post_cid, like_cid) = (event.ops[0].cid, event.ops[1].cid);
    event.ops[0].cid = like_cid;
    match event_error(verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior))) {
        EventError::OpCidMismatch { expected, found, .. } => {
            assert_eq!(expected.map(|c| *c), like_cid);
            assert_eq!(found.map(|c| *c), post_cid);
        }
        e => panic!("{e:?}"),
    }
    // A delete of a path the tree still holds.
    let mut event = decode(&built.body);
    let kept = post_path(18);
    let cid = blessed_cid(DAG_CBOR, &post(18));
    event.ops[2] = RepoOp::new(Action::Delete, &kept, None, Some(cid));
    match event_error(verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior))) {
        EventError::OpCidMismatch { expected: None, found: Some(found), .. } => {
            assert_eq!(*found, cid);
        }
        e => panic!("{e:?}"),
    }
    // Without the delete's prev the commit cannot be inverted: the ops are
    // still checked against the tree (both reported as warnings when the
    // inversion check is downgraded).
    let mut event = decode(&built.body);
    event.ops[0].cid = like_cid;
    event.ops[2].prev = None;
    let lenient = verifier().with_options(VerifyOptions::default().inversion(CheckMode::Warn));
    let key = repo.key.public_key();
    let verified = verify_with(&lenient, &event.to_cbor(), &key, Some(&prior)).unwrap();
    match verified.warnings.as_slice() {
        [
            Error::Event(EventError::OpMissingPrev { action: Action::Delete, .. }),
            Error::Event(EventError::OpCidMismatch { expected, found, .. }),
        ] => {
            assert_eq!(
                (expected.as_deref(), found.as_deref()),
                (like_cid.as_ref(), post_cid.as_ref())
            );
        }
        w => panic!("{w:?}"),
    }
}

#[test]
fn rev_not_increasing() {
    let (repo, _, built) = typical(Curve::K256);
    let key = repo.key.public_key();
    for previous in [repo.rev, tid(repo.rev.timestamp_micros() + 1)] {
        let prior = RepoState { rev: previous, data: repo.root };
        match event_error(verify(&built.body, &key, Some(&prior))) {
            EventError::RevNotIncreasing { rev, previous: p } => {
                assert_eq!((rev, p), (repo.rev, previous));
            }
            e => panic!("{e:?}"),
        }
    }
}

/// An op's `cid` and `prev` name records as the tree holds them: a raw or
/// CIDv0 link is malformed in every mode (a review found a raw `prev`
/// failing the inversion as a malformed tree value, which the downgraded
/// mode then did not let through while a raw `cid` passed as a warning).
#[test]
fn op_links_that_cannot_be_record_links() {
    let (repo, prior, built) = typical(Curve::K256);
    let key = repo.key.public_key();
    let raw = blessed_cid(atrepo::car::RAW, b"not a record");
    let v0 = Cid::new_v0(*blessed_cid(DAG_CBOR, b"not a record").hash()).unwrap();
    let lenient = verifier().with_options(VerifyOptions::default().inversion(CheckMode::Warn));
    for (op, field, bad) in [(0, "cid", raw), (0, "cid", v0), (2, "prev", raw), (2, "prev", v0)] {
        let mut event = decode(&built.body);
        if field == "cid" {
            event.ops[op].cid = Some(bad);
        } else {
            event.ops[op].prev = Some(bad);
        }
        for v in [verifier(), lenient.clone()] {
            let e = event_error(verify_with(&v, &event.to_cbor(), &key, Some(&prior)));
            assert!(
                matches!(&e, EventError::OpLinkNotRecord { field: f, cid, .. } if *f == field && **cid == bad),
                "{e:?}"
            );
        }
    }
}

/// `since` names the commit before this one, so it must be before the
/// event's own rev, even when no state is held to compare it with.
#[test]
fn since_not_before_the_events_rev() {
    let (repo, _, built) = typical(Curve::K256);
    let key = repo.key.public_key();
    for since in [repo.rev, tid(repo.rev.timestamp_micros() + SECOND)] {
        let mut event = decode(&built.body);
        event.since = Some(since);
        let e = event_error(verify(&event.to_cbor(), &key, None));
        assert!(
            matches!(e, EventError::SinceNotBeforeRev { since: s, rev } if (s, rev) == (since, repo.rev)),
            "{e:?}"
        );
        assert_eq!(Error::from(e).kind(), ErrorKind::Malformed);
        // Not a chain check: a lenient chain does not let it through.
        let lenient = verifier().with_options(VerifyOptions::default().chain(CheckMode::Warn));
        assert!(verify_with(&lenient, &event.to_cbor(), &key, None).is_err());
    }
}

#[test]
fn rev_in_the_future() {
    let mut repo = Repo::new(Curve::P256, 100);
    let key = repo.key.clone();
    for (ahead, ok) in [(4 * 60, true), (6 * 60, false)] {
        let rev = tid(NOW + ahead * SECOND);
        let built = CommitEventBuilder::new(&repo.store, &repo.did, repo.root, rev)
            .since(Some(repo.rev))
            .put(&post_path(500 + ahead), post(ahead))
            .build(&key)
            .unwrap();
        let result = verify(&built.body, &key.public_key(), Some(&repo.state()));
        if ok {
            result.unwrap();
        } else {
            match event_error(result) {
                EventError::RevInFuture { rev: r, ahead: a, tolerance } => {
                    assert_eq!(r, rev);
                    assert_eq!(a, Duration::from_secs(ahead));
                    assert_eq!(tolerance, Duration::from_secs(300));
                }
                e => panic!("{e:?}"),
            }
        }
    }
    // A wider tolerance lets it through.
    let rev = tid(NOW + 6 * 60 * SECOND);
    let built = CommitEventBuilder::new(&repo.store, &repo.did, repo.root, rev)
        .put(&post_path(9_000), post(9_000))
        .build(&key)
        .unwrap();
    let wide = verifier()
        .with_options(VerifyOptions::default().future_tolerance(Duration::from_secs(600)));
    verify_with(&wide, &built.body, &key.public_key(), None).unwrap();
    repo.rev = rev;
}

/// A repository whose only node holds 230 keys (chosen to share layer
/// 0, past the default entry cap of 200), and a commit creating a 231st,
/// built within a cap of 300.
fn wide_commit() -> (Repo, RepoState, BuiltCommit) {
    let mut repo = Repo::new(Curve::K256, 0);
    let flat: Vec<u64> =
        (0..).filter(|n| mst::layer(post_path(*n).as_bytes()) == 0).take(230).collect();
    let pairs = flat.iter().map(|n| {
        let record = post(*n);
        let cid = blessed_cid(DAG_CBOR, &record);
        repo.store.put(cid, record.into()).unwrap();
        (post_path(*n), cid)
    });
    repo.root = Builder::new().build(&repo.store, pairs.collect::<Vec<_>>()).unwrap();
    let prior = repo.state();
    let next = flat[229] + 1;
    let added = (next..).find(|n| mst::layer(post_path(*n).as_bytes()) == 0).unwrap();
    fn put(b: CommitEventBuilder<'_>, n: u64) -> CommitEventBuilder<'_> {
        b.put(&post_path(n), post(n))
    }
    // The builder reads the tree within its limits too.
    let rev = tid(repo.rev.timestamp_micros() + SECOND);
    let e = put(CommitEventBuilder::new(&repo.store, &repo.did, repo.root, rev), added)
        .build(&repo.key)
        .unwrap_err();
    assert!(matches!(e, Error::Mst(mst::Error::TooManyEntries { .. })), "{e:?}");
    let built = repo.commit(|b| put(b.mst_limits(mst::Limits::default().max_entries(300)), added));
    (repo, prior, built)
}

/// A node wider than the default entry cap: its events are refused with
/// the cap named until the verifier is given a higher one.
#[test]
fn a_node_wider_than_the_entry_cap_needs_a_higher_cap() {
    let (repo, prior, built) = wide_commit();
    let key = repo.key.public_key();
    let e = verify(&built.body, &key, Some(&prior)).unwrap_err();
    match &e {
        Error::Mst(mst::Error::TooManyEntries { limit: 200, found: 231, .. }) => {}
        _ => panic!("{e:?}"),
    }
    assert_eq!(e.kind(), ErrorKind::Limit);
    let wide = mst::Limits::default().max_entries(300);
    let v = verifier().with_options(VerifyOptions::default().mst(wide));
    let verified = verify_with(&v, &built.body, &key, Some(&prior)).unwrap();
    assert_eq!(verified.data, built.after);
    // One entry short of the node's width is still a limit.
    let v = verifier().with_options(VerifyOptions::default().mst(wide.max_entries(230)));
    let e = verify_with(&v, &built.body, &key, Some(&prior)).unwrap_err();
    assert!(matches!(e, Error::Mst(mst::Error::TooManyEntries { found: 231, .. })), "{e:?}");
}

#[test]
fn two_hundred_and_one_ops() {
    let (repo, prior, built) = typical(Curve::K256);
    let paths: Vec<String> = (0..201).map(|n| post_path(50_000 + n)).collect();
    let mut event = decode(&built.body);
    let cid = event.ops[0].cid;
    event.ops = paths.iter().map(|p| RepoOp::new(Action::Create, p, cid, None)).collect();
    let body = event.to_cbor();
    // Refused from the array head when decoding...
    let e = CommitEvent::decode(&body, &Limits::default()).unwrap_err();
    assert!(matches!(e, EventError::TooManyOps { limit: 200, found: 201 }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Limit);
    // ...and by the verifier, for events decoded with looser limits.
    let loose = CommitEvent::decode(&body, &Limits::default().max_ops(1000)).unwrap();
    let e = event_error(verifier().verify_commit(&loose, &repo.key.public_key(), Some(&prior)));
    assert!(matches!(e, EventError::TooManyOps { limit: 200, found: 201 }), "{e:?}");
    // 200 is fine as far as the limit goes (the ops are wrong otherwise).
    event.ops.truncate(200);
    CommitEvent::decode(&event.to_cbor(), &Limits::default()).unwrap();
}

#[test]
fn oversized_blocks_are_refused_before_the_car_is_read() {
    let (repo, prior, built) = typical(Curve::K256);
    // Not a CAR at all: only the size can be the problem.
    let garbage = vec![0u8; 2_000_001];
    let mut event = decode(&built.body);
    event.blocks = &garbage;
    let body = event.to_cbor();
    let e = CommitEvent::decode(&body, &Limits::default()).unwrap_err();
    assert!(
        matches!(e, EventError::BlocksTooLarge { limit: 2_000_000, found: 2_000_001 }),
        "{e:?}"
    );
    let loose = CommitEvent::decode(&body, &Limits::default().max_blocks_bytes(3_000_000)).unwrap();
    let e = event_error(verifier().verify_commit(&loose, &repo.key.public_key(), Some(&prior)));
    assert!(
        matches!(e, EventError::BlocksTooLarge { limit: 2_000_000, found: 2_000_001 }),
        "{e:?}"
    );
    // At the limit, the CAR reader gets to say what is wrong.
    let garbage = vec![0u8; 2_000_000];
    event.blocks = &garbage;
    let err = verify(&event.to_cbor(), &repo.key.public_key(), Some(&prior)).unwrap_err();
    assert!(matches!(err, Error::Car(_)), "{err:?}");
}

#[test]
fn record_over_a_million_bytes() {
    let mut repo = Repo::new(Curve::K256, 10);
    let prior = repo.state();
    let big = map(&[("text", Value::String("x".repeat(1_000_000)))]).to_cbor();
    let built = repo.commit(|b| b.put(&post_path(100), big.clone()));
    match event_error(verify(&built.body, &repo.key.public_key(), Some(&prior))) {
        EventError::RecordTooLarge { cid, limit, found } => {
            assert_eq!(*cid, blessed_cid(DAG_CBOR, &big));
            assert_eq!((limit, found), (1_000_000, big.len() as u64));
        }
        e => panic!("{e:?}"),
    }
    let roomy = verifier().with_options(
        VerifyOptions::default().limits(Limits::default().max_record_bytes(2_000_000)),
    );
    verify_with(&roomy, &built.body, &repo.key.public_key(), Some(&prior)).unwrap();
}

#[test]
fn signature_by_another_key() {
    let (repo, prior, built) = typical(Curve::K256);
    verify(&built.body, &repo.key.public_key(), Some(&prior)).unwrap();
    let other = SigningKey::from_seed(Curve::K256, b"someone else").unwrap().public_key();
    let err = verify(&built.body, &other, Some(&prior)).unwrap_err();
    assert!(matches!(err, Error::Verify(atrepo::verify::Error::BadSignature { .. })), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Verification);
    // A key on the other curve does not verify it either.
    let p256 = signer(Curve::P256).public_key();
    let err = verify(&built.body, &p256, Some(&prior)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification);
}

/// Without the signature check every other check still runs: a commit
/// passes whoever signed it (here checked against another key, it fails
/// signed), and an event that breaks another rule still fails.
#[test]
fn unsigned_verification_checks_the_rest() {
    let (_, prior, built) = typical(Curve::K256);
    let v = verifier();
    let event = Event::Commit(decode(&built.body));
    let other = SigningKey::from_seed(Curve::K256, b"someone else").unwrap().public_key();
    let err = v.verify_event(&event, &other, Some(&prior)).unwrap_err();
    assert!(matches!(err, Error::Verify(VerifyError::BadSignature { .. })), "{err:?}");
    let verified = v.verify_event_unsigned(&event, Some(&prior)).unwrap();
    assert_eq!(verified.state().data, built.after);
    let states = MemoryStateStore::new();
    states.set(decode(&built.body).repo, &prior).unwrap();
    let applied = v.apply_unsigned(&event, &states).unwrap();
    assert_eq!(states.get(event.did().unwrap()).unwrap(), Some(applied.state()));
    // Another rule broken: prevData not the held data.
    let mut wrong = decode(&built.body);
    wrong.prev_data = Some(built.after);
    let err = v.verify_event_unsigned(&Event::Commit(wrong), Some(&prior)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
}

/// Several keys for one account (a key rotation): the event is checked
/// once, its signature against each key in turn; the state moves only on
/// success.
#[test]
fn the_first_key_that_signed_it_counts() {
    let (repo, prior, built) = typical(Curve::K256);
    let v = verifier();
    let event = Event::Commit(decode(&built.body));
    let did = event.did().unwrap();
    let right = repo.key.public_key();
    let wrong = SigningKey::from_seed(Curve::P256, b"rotated away").unwrap().public_key();
    let states = MemoryStateStore::new();
    states.set(did, &prior).unwrap();
    let err = v.apply_any_key(&event, std::slice::from_ref(&wrong), &states).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
    let err = v.apply_any_key(&event, &[], &states).unwrap_err();
    assert!(matches!(err, Error::NoKey { .. }), "{err:?}");
    assert_eq!(states.get(did).unwrap(), Some(prior));
    let (verified, index) = v.apply_any_key(&event, &[wrong, right.clone()], &states).unwrap();
    assert_eq!(index, 1);
    assert_eq!(states.get(did).unwrap(), Some(verified.state()));
    // A #sync too.
    let sync = sync_event(did, built.after, verified.state().rev, 300, &repo.key).unwrap();
    let sync = Event::decode(&sync.frame, &Limits::default()).unwrap();
    assert_eq!(v.apply_any_key(&sync, &[right], &states).unwrap().1, 0);
}

#[test]
fn event_fields_against_the_commit() {
    let (repo, prior, built) = typical(Curve::K256);
    let key = repo.key.public_key();

    let mut event = decode(&built.body);
    event.repo = "did:plc:someoneelse";
    match event_error(verify(&event.to_cbor(), &key, Some(&prior))) {
        EventError::DidMismatch { expected, found } => {
            assert_eq!(
                (expected.as_str(), found.as_str()),
                ("did:plc:someoneelse", repo.did.as_str())
            );
        }
        e => panic!("{e:?}"),
    }

    let mut event = decode(&built.body);
    event.rev = tid(repo.rev.timestamp_micros() + 1);
    let e = event_error(verify(&event.to_cbor(), &key, Some(&prior)));
    assert!(matches!(e, EventError::RevMismatch { found, .. } if found == repo.rev), "{e:?}");

    let mut event = decode(&built.body);
    let other = blessed_cid(DAG_CBOR, b"\xa0");
    event.commit = other;
    let e = event_error(verify(&event.to_cbor(), &key, Some(&prior)));
    assert!(
        matches!(&e, EventError::CommitCidMismatch { expected, found } if **expected == other && **found == built.commit),
        "{e:?}"
    );

    let mut event = decode(&built.body);
    let car = car_without(event.blocks, &built.commit);
    event.blocks = &car;
    let e = event_error(verify(&event.to_cbor(), &key, Some(&prior)));
    assert!(matches!(&e, EventError::CommitNotInBlocks { cid } if **cid == built.commit), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Missing);
}

#[test]
fn since_mismatch() {
    let (repo, prior, built) = typical(Curve::K256);
    let key = repo.key.public_key();
    // The relay holds an older rev than the one the diff starts from.
    let older = RepoState { rev: tid(prior.rev.timestamp_micros() - SECOND), data: prior.data };
    match event_error(verify(&built.body, &key, Some(&older))) {
        EventError::SinceMismatch { expected, found } => {
            assert_eq!((expected, found), (older.rev, Some(prior.rev)));
        }
        e => panic!("{e:?}"),
    }
    let mut event = decode(&built.body);
    event.since = None;
    let e = event_error(verify(&event.to_cbor(), &key, Some(&prior)));
    assert!(matches!(e, EventError::SinceMismatch { found: None, .. }), "{e:?}");
    // Without state nothing is known to compare with.
    verify(&event.to_cbor(), &key, None).unwrap();
    // Downgraded, the event passes and says why it might not have.
    let lenient = verifier().with_options(VerifyOptions::default().chain(CheckMode::Warn));
    let verified = verify_with(&lenient, &built.body, &key, Some(&older)).unwrap();
    assert_eq!(verified.warnings.len(), 1);
    assert!(matches!(verified.warnings[0], Error::Event(EventError::SinceMismatch { .. })));
}

#[test]
fn op_shapes() {
    let (repo, prior, built) = typical(Curve::K256);
    let key = repo.key.public_key();
    let check = |f: &dyn Fn(&mut CommitEvent<'_>)| -> EventError {
        let mut event = decode(&built.body);
        f(&mut event);
        event_error(verify(&event.to_cbor(), &key, Some(&prior)))
    };
    let e = check(&|e| {
        let op = e.ops[0].clone();
        e.ops.push(op);
    });
    assert!(
        matches!(&e, EventError::DuplicateOpPath { path } if *path == post_path(20_000)),
        "{e:?}"
    );
    let some = blessed_cid(DAG_CBOR, b"\xa0");
    let e = check(&|e| e.ops[2].cid = Some(some));
    assert!(matches!(&e, EventError::DeleteWithCid { cid, .. } if **cid == some), "{e:?}");
    let e = check(&|e| e.ops[0].prev = Some(some));
    assert!(matches!(e, EventError::CreateWithPrev { .. }), "{e:?}");
    let e = check(&|e| e.ops[0].cid = None);
    assert!(matches!(e, EventError::OpMissingCid { action: Action::Create, .. }), "{e:?}");
    // A create passed off as an update that changes nothing: undoing it
    // leaves the record, so the tree before is not `prevData`.
    let e = check(&|e| {
        e.ops[1].action = Action::Update;
        e.ops[1].prev = e.ops[1].cid;
    });
    assert!(matches!(e, EventError::InversionMismatch { .. }), "{e:?}");
    let e = check(&|e| e.ops[2].prev = None);
    assert!(matches!(e, EventError::OpMissingPrev { action: Action::Delete, .. }), "{e:?}");
    let e = check(&|e| e.ops[1].path = "app.bsky.feed.like/has space");
    assert!(matches!(e, EventError::InvalidOpPath { .. }), "{e:?}");
    let e = check(&|e| e.ops[1].path = "App.Bsky.feed.like/3kdgeqpfkj22a");
    assert!(matches!(e, EventError::InvalidOpPath { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Malformed);

    // An action the lexicon does not know is refused while decoding.
    let body = decode(&built.body).to_cbor();
    let at = body.windows(7).position(|w| w == b"\x66create").unwrap();
    let mut bad = body.clone();
    bad[at + 4] = b'@';
    let e = CommitEvent::decode(&bad, &Limits::default()).unwrap_err();
    assert!(matches!(&e, EventError::UnknownAction { found, .. } if found == "cre@te"), "{e:?}");
}

#[test]
fn missing_prev_data_and_lenient_inversion() {
    let mut repo = Repo::new(Curve::K256, 100);
    let prior = repo.state();
    let built = repo.commit(|b| b.put(&post_path(1_000), post(1_000)).prev_data(false));
    let key = repo.key.public_key();
    let e = event_error(verify(&built.body, &key, Some(&prior)));
    assert!(matches!(e, EventError::MissingPrevData), "{e:?}");
    // Downgraded: the inversion is still checked, against the state.
    let lenient = verifier().with_options(VerifyOptions::default().inversion(CheckMode::Warn));
    let verified = verify_with(&lenient, &built.body, &key, Some(&prior)).unwrap();
    assert!(matches!(verified.warnings.as_slice(), [Error::Event(EventError::MissingPrevData)]));
    let wrong = RepoState { rev: prior.rev, data: blessed_cid(DAG_CBOR, b"\xa0") };
    let verified = verify_with(&lenient, &built.body, &key, Some(&wrong)).unwrap();
    assert!(matches!(
        verified.warnings.as_slice(),
        [
            Error::Event(EventError::MissingPrevData),
            Error::Event(EventError::InversionMismatch { .. })
        ]
    ));
    // A dropped proof block, downgraded, is a warning too; the signature
    // is not downgradable.
    let (repo, prior, built) = typical(Curve::P256);
    let mut event = decode(&built.body);
    let car = car_without(event.blocks, &built.proof[0]);
    event.blocks = &car;
    let body = event.to_cbor();
    let verified = verify_with(&lenient, &body, &repo.key.public_key(), Some(&prior)).unwrap();
    assert!(matches!(verified.warnings.as_slice(), [Error::Mst(mst::Error::MissingNode { .. })]));
    assert_eq!(verified.state(), repo.state());
    let other = signer(Curve::K256).public_key();
    assert!(verify_with(&lenient, &body, &other, Some(&prior)).is_err());
}

/// A downgraded inversion lets through what the inversion finds (see
/// above), never a malformed signed tree: here a key strict rules refuse
/// (its collection is not an NSID) in a node the commit's op passes.
#[test]
fn a_malformed_tree_fails_with_the_inversion_downgraded() {
    let mut repo = Repo::new(Curve::K256, 0);
    let record = post(0);
    let cid = blessed_cid(DAG_CBOR, &record);
    repo.store.put(cid, record.into()).unwrap();
    let keys = ["A0/374913", "A1/374913"].map(|k| (k.to_owned(), cid));
    repo.root = Builder::new().keys(KeyRules::Lax).build(&repo.store, keys).unwrap();
    let prior = repo.state();
    let built = repo.commit(|b| b.keys(KeyRules::Lax).put(&post_path(1), post(1)));
    let key = repo.key.public_key();
    let lax = verifier().with_options(VerifyOptions::default().keys(KeyRules::Lax));
    assert!(verify_with(&lax, &built.body, &key, Some(&prior)).unwrap().warnings.is_empty());
    for mode in [CheckMode::Enforce, CheckMode::Warn] {
        let strict = verifier().with_options(VerifyOptions::default().inversion(mode));
        let e = verify_with(&strict, &built.body, &key, Some(&prior)).unwrap_err();
        assert!(matches!(e, Error::Mst(mst::Error::InvalidKey { .. })), "{mode:?}: {e:?}");
        assert_eq!(e.kind(), ErrorKind::Verification);
    }
}

#[test]
fn records_must_be_records() {
    let mut repo = Repo::new(Curve::K256, 10);
    let prior = repo.state();
    // Valid CBOR, but a float: not atproto data.
    let float = b"\xa1\x61a\xfb\x3f\xf8\x00\x00\x00\x00\x00\x00".to_vec();
    let built = repo.commit(|b| b.put(&post_path(100), float));
    let e = event_error(verify(&built.body, &repo.key.public_key(), Some(&prior)));
    assert!(matches!(e, EventError::InvalidRecord { .. }), "{e:?}");
    let opaque = verifier().with_options(VerifyOptions::default().records(RecordCheck::Skip));
    verify_with(&opaque, &built.body, &repo.key.public_key(), Some(&prior)).unwrap();
    // Extra, unrelated blocks are tolerated.
    let mut event = decode(&built.body);
    let car = car_with(event.blocks, blessed_cid(DAG_CBOR, b"\xa0"), b"\xa0");
    event.blocks = &car;
    verify_with(&opaque, &event.to_cbor(), &repo.key.public_key(), Some(&prior)).unwrap();
}

#[test]
fn frames_over_five_megabytes() {
    let mut e = Encoder::new();
    e.map(1).text("did").bytes(&vec![7u8; 5_000_000]);
    let frame = Frame::encode("#sync", &e.into_bytes());
    let e = Event::decode(&frame, &Limits::default()).unwrap_err();
    assert!(
        matches!(e, EventError::FrameTooLarge { limit: 5_000_000, found } if found == frame.len() as u64),
        "{e:?}"
    );
    let e = Frame::decode(&frame, &Limits::default()).unwrap_err();
    assert!(matches!(e, EventError::FrameTooLarge { .. }), "{e:?}");
    // In a stream, the big frame is reported and skipped.
    let (repo, prior, built) = typical(Curve::K256);
    let mut stream = frame.clone();
    stream.extend(&built.frame);
    let items: Vec<_> = Frames::new(&stream, &Limits::default()).collect();
    assert_eq!(items.len(), 2);
    assert!(matches!(&items[0], Err(EventError::FrameTooLarge { .. })));
    let frame = items[1].as_ref().unwrap();
    assert_eq!(frame.offset, stream.len() as u64 - built.frame.len() as u64);
    let event = Event::from_frame(frame, &Limits::default()).unwrap();
    verifier().verify_event(&event, &repo.key.public_key(), Some(&prior)).unwrap();
}

/// Every single-byte change and every truncation of an event frame is
/// refused without a panic, or accepted where no check covers the byte.
#[test]
fn mutated_events_never_panic() {
    let mut repo = Repo::new(Curve::K256, 20);
    let prior = repo.state();
    let built = repo.commit(|b| b.put(&like_path(7), like(7)).delete(&post_path(3)));
    let key = repo.key.public_key();
    let v = verifier();
    let check = |bytes: &[u8]| {
        if let Ok(event) = Event::decode(bytes, &Limits::default()) {
            let _ = v.verify_event(&event, &key, Some(&prior));
        }
        for frame in Frames::new(bytes, &Limits::default()).flatten() {
            if let Ok(event) = Event::from_frame(&frame, &Limits::default()) {
                let _ = v.verify_event(&event, &key, None);
            }
        }
    };
    let mut accepted = 0;
    for i in 0..built.frame.len() {
        let mut bytes = built.frame.clone();
        bytes[i] ^= 0x5a;
        check(&bytes);
        check(&built.frame[..i]);
        if let Ok(Event::Commit(e)) = Event::decode(&bytes, &Limits::default())
            && v.verify_commit(&e, &key, Some(&prior)).is_ok()
        {
            accepted += 1;
        }
    }
    // Only bytes no check covers can change: `seq` (neither signed nor
    // compared with anything), the names of the deprecated `blobs`,
    // `rebase` and `tooBig`, which renamed are unknown fields, skipped,
    // and the name of the delete's `cid: null`, which absent reads as
    // null.
    assert_eq!(accepted, 1 + 5 + 5 + 5 + 3, "mutated events verified");
}

/// An update whose record is unchanged (`cid` equal to `prev`), as the
/// TypeScript PDS writes for an `applyWrites` update with an identical
/// record, verifies: the tree is the same before and after.
#[test]
fn an_update_that_leaves_the_record_as_it_was_verifies() {
    let mut repo = Repo::new(Curve::K256, 100);
    let prior = repo.state();
    let built = repo.commit(|b| b.put(&post_path(5), post(5)).put(&like_path(1), like(1)));
    let event = decode(&built.body);
    let op = event.ops.iter().find(|op| op.path == post_path(5)).unwrap();
    assert_eq!((op.action, op.cid.is_some()), (Action::Update, true));
    assert_eq!(op.cid, op.prev);
    let verified = verify(&built.body, &repo.key.public_key(), Some(&prior)).unwrap();
    assert_eq!(verified.state(), repo.state());
}

/// A repository's first commit: no `since`, and no `prevData` (the
/// TypeScript PDS leaves it out). Its ops are inverted against the empty
/// tree, so a later commit passed off as a first one is still refused.
#[test]
fn a_first_commit_without_prev_data_inverts_to_the_empty_tree() {
    let first = |posts: u64| {
        let repo = Repo::new(Curve::P256, posts);
        let rev = tid(NOW - SECOND);
        let built = CommitEventBuilder::new(&repo.store, &repo.did, repo.root, rev)
            .prev_data(false)
            .put(&post_path(1_000), post(1_000))
            .put(&like_path(1), like(1))
            .build(&repo.key)
            .unwrap();
        (repo, built)
    };
    let (repo, built) = first(0);
    let event = decode(&built.body);
    assert_eq!((event.since, event.prev_data), (None, None));
    let key = repo.key.public_key();
    let verified = verify(&built.body, &key, None).unwrap();
    assert!(verified.warnings.is_empty());
    assert_eq!(verified.data, built.after);
    // With a state held, no `since` is a chain break, not a first commit.
    let held = RepoState { rev: tid(NOW - DAY), data: repo.root };
    let e = event_error(verify(&built.body, &key, Some(&held)));
    assert!(matches!(e, EventError::SinceMismatch { found: None, .. }), "{e:?}");
    // Not a first commit: the tree before held 10 posts.
    let (repo, built) = first(10);
    let e = event_error(verify(&built.body, &repo.key.public_key(), None));
    assert!(matches!(e, EventError::InversionMismatch { .. }), "{e:?}");
    // With `since`, `prevData` is still required.
    let mut event = decode(&built.body);
    event.since = Some(tid(NOW - DAY));
    let e = event_error(verify(&event.to_cbor(), &repo.key.public_key(), None));
    assert!(matches!(e, EventError::MissingPrevData), "{e:?}");
}

/// `since` and an op's `cid` are required but nullable in the lexicon;
/// absent, they read as null (as indigo's decoders read them).
#[test]
fn absent_nullable_fields_read_as_null() {
    let (repo, prior, built) = typical(Curve::K256);
    let key = repo.key.public_key();
    // The delete's `cid: null` left out, the map one entry shorter.
    let body = decode(&built.body).to_cbor();
    let null_cid = b"\x63cid\xf6";
    let at = body.windows(5).position(|w| w == null_cid).unwrap();
    // `cid` sorts first: the op's map head is just before it.
    let op_head = at - 1;
    assert!((0xa3..=0xa4).contains(&body[op_head]));
    let mut without = body.clone();
    without.drain(at..at + 5);
    without[op_head] -= 1;
    let event = decode(&without);
    assert!(event.ops.iter().any(|op| op.action == Action::Delete && op.cid.is_none()));
    verify(&without, &key, Some(&prior)).unwrap();
    // `since` left out: none, which the state then refuses.
    let mut event = decode(&built.body);
    event.since = None;
    let body = event.to_cbor();
    let null_since = b"\x65since\xf6";
    let at = body.windows(7).position(|w| w == null_since).unwrap();
    let mut without = body.clone();
    without.drain(at..at + 7);
    without[0] -= 1;
    assert_eq!(decode(&without).since, None);
    let e = event_error(verify(&without, &key, Some(&prior)));
    assert!(matches!(e, EventError::SinceMismatch { found: None, .. }), "{e:?}");
}

/// `#identity` and `#account` bodies are decoded against their schema:
/// required fields, a DID, a datetime, a handle when given.
#[test]
fn identity_and_account_bodies() {
    let limits = Limits::default();
    let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
    let time = "2023-11-14T22:13:20.000Z";
    let identity = |did: &str, handle: Option<&str>| {
        let mut e = Encoder::new();
        e.map(if handle.is_some() { 4 } else { 3 }).text("did").text(did);
        e.text("seq").int(9).text("time").text(time);
        if let Some(handle) = handle {
            e.text("handle").text(handle);
        }
        Frame::encode("#identity", &e.into_bytes())
    };
    match Event::decode(&identity(did, Some("alice.example.com")), &limits).unwrap() {
        Event::Identity(e) => {
            assert_eq!((e.did, e.seq, e.time, e.handle), (did, 9, time, Some("alice.example.com")));
        }
        other => panic!("{other:?}"),
    }
    let frame = identity(did, None);
    let event = Event::decode(&frame, &limits).unwrap();
    assert_eq!((event.did(), event.seq(), event.kind()), (Some(did), Some(9), "#identity"));
    // An optional field written as null reads as absent.
    let mut e = Encoder::new();
    e.map(4).text("did").text(did).text("seq").int(9).text("time").text(time);
    e.text("handle").null();
    let frame = Frame::encode("#identity", &e.into_bytes());
    assert!(
        matches!(Event::decode(&frame, &limits).unwrap(), Event::Identity(e) if e.handle.is_none())
    );
    let e = Event::decode(&identity("did:plc", None), &limits).unwrap_err();
    assert!(matches!(e, EventError::InvalidField { field: "did", .. }), "{e:?}");
    let e = Event::decode(&identity(did, Some("not a handle")), &limits).unwrap_err();
    assert!(matches!(e, EventError::InvalidField { field: "handle", .. }), "{e:?}");

    let account = |active: Option<bool>, status: Option<&str>| {
        let n = 3 + u64::from(active.is_some()) + u64::from(status.is_some());
        let mut e = Encoder::new();
        e.map(n).text("did").text(did).text("seq").int(10).text("time").text(time);
        if let Some(active) = active {
            e.text("active").bool(active);
        }
        if let Some(status) = status {
            e.text("status").text(status);
        }
        Frame::encode("#account", &e.into_bytes())
    };
    match Event::decode(&account(Some(false), Some("takendown")), &limits).unwrap() {
        Event::Account(e) => {
            assert_eq!((e.did, e.active, e.status), (did, false, Some("takendown")));
        }
        other => panic!("{other:?}"),
    }
    // Status values are open-ended.
    assert!(matches!(
        Event::decode(&account(Some(false), Some("throttled")), &limits).unwrap(),
        Event::Account(e) if e.status == Some("throttled")
    ));
    let e = Event::decode(&account(None, None), &limits).unwrap_err();
    assert!(matches!(e, EventError::MissingField { field: "active", .. }), "{e:?}");
    // Verifying one is refused as unsupported, not misread.
    let frame = account(Some(true), None);
    let event = Event::decode(&frame, &limits).unwrap();
    let e = event_error(verifier().verify_event(&event, &signer(Curve::K256).public_key(), None));
    assert!(matches!(&e, EventError::UnsupportedEventType { found } if found == "#account"));
}

// ---------------------------------------------------------------------------
// #sync, key resolution, state

#[test]
fn sync_events() {
    let repo = Repo::new(Curve::P256, 100);
    let rev = tid(NOW - 10 * SECOND);
    let built = sync_event(&repo.did, repo.root, rev, 7, &repo.key).unwrap();
    let key = repo.key.public_key();
    let event = SyncEvent::decode(&built.body, &Limits::default()).unwrap();
    let verified = verifier().verify_sync(&event, &key, None).unwrap();
    assert_eq!(verified.state(), RepoState { rev, data: repo.root });
    assert_eq!(verified.commit, built.commit);
    // The state it replaces need not chain to it, but its rev must be older.
    let unrelated = RepoState { rev: tid(NOW - DAY), data: blessed_cid(DAG_CBOR, b"\xa0") };
    verifier().verify_sync(&event, &key, Some(&unrelated)).unwrap();
    // The state already held, again (the TypeScript PDS sends one after
    // an account's first commit): its rev may equal the last known one.
    let same = RepoState { rev, data: repo.root };
    assert_eq!(verifier().verify_sync(&event, &key, Some(&same)).unwrap().state(), same);
    // Another tree at that rev, or an older rev, is refused.
    let other_tree = RepoState { rev, data: blessed_cid(DAG_CBOR, b"\xa0") };
    let e = event_error(verifier().verify_sync(&event, &key, Some(&other_tree)));
    assert!(matches!(e, EventError::RevNotIncreasing { .. }), "{e:?}");
    let newer = RepoState { rev: tid(NOW - SECOND), data: repo.root };
    let e = event_error(verifier().verify_sync(&event, &key, Some(&newer)));
    assert!(matches!(e, EventError::RevNotIncreasing { .. }), "{e:?}");
    let other = signer(Curve::K256).public_key();
    let err = verifier().verify_sync(&event, &other, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification);
    let mut wrong = event.clone();
    wrong.did = "did:plc:someoneelse";
    let e = event_error(verifier().verify_sync(&wrong, &key, None));
    assert!(matches!(e, EventError::DidMismatch { .. }), "{e:?}");
    // The commit's bytes under a raw CID: the same hash, not the commit's
    // CID.
    let slice = CarSlice::new(event.blocks).unwrap();
    let commit = slice.map(Result::unwrap).find(|f| f.cid == built.commit).unwrap();
    let raw = blessed_cid(atrepo::car::RAW, commit.data);
    let header = atrepo::car::Header::new(vec![raw]).unwrap();
    let raw_car = atrepo::car::encode(&header, [(&raw, commit.data)]);
    let mut raw_root = event.clone();
    raw_root.blocks = &raw_car;
    let e = verifier().verify_sync(&raw_root, &key, None).unwrap_err();
    let raw_text = raw.to_string();
    assert!(
        matches!(&e, Error::Verify(VerifyError::CommitCodec { cid, codec: 0x55 }) if *cid == raw_text),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Malformed);
    let future = sync_event(&repo.did, repo.root, tid(NOW + DAY), 8, &repo.key).unwrap();
    let event = Event::decode(&future.frame, &Limits::default()).unwrap();
    let e = event_error(verifier().verify_event(&event, &key, None));
    assert!(matches!(e, EventError::RevInFuture { .. }), "{e:?}");
}

/// A resolver whose cached key is stale until refreshed.
struct Rotating {
    cached: PublicKey,
    current: PublicKey,
    refreshes: std::sync::atomic::AtomicUsize,
}

impl KeyResolver for Rotating {
    type Error = atrepo::verify::Error;

    fn resolve_key(
        &self,
        _did: &str,
    ) -> impl Future<Output = Result<PublicKey, Self::Error>> + Send {
        std::future::ready(Ok(self.cached.clone()))
    }

    fn refresh_key(
        &self,
        _did: &str,
    ) -> impl Future<Output = Result<PublicKey, Self::Error>> + Send {
        self.refreshes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::future::ready(Ok(self.current.clone()))
    }
}

use crate::block_on;

#[test]
fn key_refresh_once_on_a_bad_signature() {
    let (repo, prior, built) = typical(Curve::K256);
    let event = decode(&built.body);
    let stale = signer(Curve::P256).public_key();
    let resolver = |cached: &PublicKey, current: &PublicKey| Rotating {
        cached: cached.clone(),
        current: current.clone(),
        refreshes: Default::default(),
    };
    let refreshes = |r: &Rotating| r.refreshes.load(std::sync::atomic::Ordering::SeqCst);
    let key = repo.key.public_key();

    let fresh = resolver(&key, &key);
    let verified =
        block_on(verifier().verify_commit_resolving(&event, &fresh, Some(&prior))).unwrap();
    assert!(!verified.key_refreshed);
    assert_eq!(refreshes(&fresh), 0);

    let rotated = resolver(&stale, &key);
    let verified =
        block_on(verifier().verify_commit_resolving(&event, &rotated, Some(&prior))).unwrap();
    assert!(verified.key_refreshed);
    assert_eq!(refreshes(&rotated), 1);

    // Still wrong after one refresh: refused, and no second refresh.
    let wrong = resolver(&stale, &signer(Curve::K256).public_key());
    let other = SigningKey::from_seed(Curve::K256, b"other").unwrap().public_key();
    let wrong = Rotating { current: other, ..wrong };
    let err =
        block_on(verifier().verify_commit_resolving(&event, &wrong, Some(&prior))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Verification);
    assert_eq!(refreshes(&wrong), 1);

    // A resolver that knows no key: an environment error naming the DID.
    let empty = StaticKeyResolver::new();
    let e = block_on(verifier().verify_commit_resolving(&event, &empty, Some(&prior))).unwrap_err();
    assert!(matches!(&e, Error::KeyResolution { did, .. } if *did == repo.did), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Environment);

    // #sync, through a static resolver.
    let mut keys = StaticKeyResolver::new();
    keys.insert(repo.did.clone(), key);
    let sync = sync_event(&repo.did, repo.root, tid(NOW - SECOND), 9, &repo.key).unwrap();
    let event = SyncEvent::decode(&sync.body, &Limits::default()).unwrap();
    block_on(verifier().verify_sync_resolving(&event, &keys, None)).unwrap();
}

#[test]
fn state_carried_from_event_to_event() {
    let mut repo = Repo::new(Curve::K256, 1_000);
    let states = MemoryStateStore::new();
    states.set(&repo.did, &repo.state()).unwrap();
    let key = repo.key.public_key();
    let v = verifier();
    let mut frames = Vec::new();
    for n in 0..5 {
        let built = repo.commit(|b| b.put(&like_path(n), like(n)));
        frames.push(built.frame);
    }
    for frame in &frames {
        let event = Event::decode(frame, &Limits::default()).unwrap();
        v.apply(&event, &key, &states).unwrap();
    }
    assert_eq!(states.get(&repo.did).unwrap(), Some(repo.state()));
    // Replaying an old event fails and leaves the state alone.
    let event = Event::decode(&frames[2], &Limits::default()).unwrap();
    let e = event_error(v.apply(&event, &key, &states));
    assert!(matches!(e, EventError::RevNotIncreasing { .. }), "{e:?}");
    assert_eq!(states.get(&repo.did).unwrap(), Some(repo.state()));
    // A #sync resets the state to whatever it declares.
    let elsewhere = blessed_cid(DAG_CBOR, b"\xa0");
    let sync = sync_event(&repo.did, elsewhere, tid(NOW - SECOND), 99, &repo.key).unwrap();
    let event = Event::decode(&sync.frame, &Limits::default()).unwrap();
    v.apply(&event, &key, &states).unwrap();
    assert_eq!(
        states.get(&repo.did).unwrap(),
        Some(RepoState { rev: tid(NOW - SECOND), data: elsewhere })
    );
}

#[cfg(feature = "redb")]
#[test]
fn redb_state_store() {
    use atrepo::event::RedbStateStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let (repo, prior, built) = typical(Curve::K256);
    {
        let states = RedbStateStore::open(&path).unwrap();
        states.set(&repo.did, &prior).unwrap();
        let event = Event::decode(&built.frame, &Limits::default()).unwrap();
        verifier().apply(&event, &repo.key.public_key(), &states).unwrap();
    }
    let states: Box<dyn StateStore> = Box::new(RedbStateStore::open(&path).unwrap());
    assert_eq!(states.get(&repo.did).unwrap(), Some(repo.state()));
}

// ---------------------------------------------------------------------------
// Error messages

#[test]
fn event_error_display() {
    let cid = || Box::new(blessed_cid(DAG_CBOR, b"\xa0"));
    let other = || Box::new(blessed_cid(DAG_CBOR, b"\xf6"));
    let path = || "app.bsky.feed.post/3kdgeqpfkj22a".to_owned();
    let rev = tid(NOW);
    let syntax = atrepo::verify::syntax::repo_path("app.bsky.feed.post/has space").unwrap_err();
    let decode = atrepo::verify::drisl::validate(b"\xa1\x61a", &Default::default()).unwrap_err();
    let errors = [
        EventError::FrameTooLarge { limit: 5_000_000, found: 5_000_001 },
        EventError::BlocksTooLarge { limit: 2_000_000, found: 2_000_001 },
        EventError::TooManyOps { limit: 200, found: 201 },
        EventError::RecordTooLarge { cid: cid(), limit: 1_000_000, found: 1_000_001 },
        EventError::Cbor { part: "#commit body", error: decode.clone() },
        EventError::MissingField { part: "#commit body", field: "since" },
        EventError::InvalidField {
            part: "#commit body",
            field: "rev",
            error: Tid::parse("x").unwrap_err(),
        },
        EventError::UnknownFrameOp { found: 2 },
        EventError::UnrecognizedBody,
        EventError::UnknownAction { path: path(), found: "upsert".to_owned() },
        EventError::InvalidOpPath {
            path: "app.bsky.feed.post/has space".to_owned(),
            error: syntax,
        },
        EventError::DuplicateOpPath { path: path() },
        EventError::OpMissingCid { path: path(), action: Action::Update },
        EventError::DeleteWithCid { path: path(), cid: cid() },
        EventError::CreateWithPrev { path: path(), prev: cid() },
        EventError::OpMissingPrev { path: path(), action: Action::Delete },
        EventError::MissingPrevData,
        EventError::InvalidRecord { path: path(), cid: cid(), error: decode },
        EventError::CommitCidMismatch { expected: cid(), found: other() },
        EventError::DidMismatch { expected: "did:plc:a".to_owned(), found: "did:plc:b".to_owned() },
        EventError::RevMismatch { expected: rev, found: tid(NOW + 1) },
        EventError::RevNotIncreasing { rev, previous: tid(NOW + 1) },
        EventError::RevInFuture {
            rev,
            ahead: Duration::from_secs(360),
            tolerance: Duration::from_secs(300),
        },
        EventError::SinceNotBeforeRev { since: tid(NOW + 1), rev },
        EventError::OpLinkNotRecord {
            path: path(),
            field: "prev",
            cid: Box::new(blessed_cid(atrepo::car::RAW, b"x")),
        },
        EventError::SinceMismatch { expected: rev, found: Some(tid(NOW - 1)) },
        EventError::SinceMismatch { expected: rev, found: None },
        EventError::PrevDataMismatch { expected: cid(), found: other() },
        EventError::InversionMismatch { expected: cid(), found: other() },
        EventError::OpCidMismatch { path: path(), expected: Some(cid()), found: None },
        EventError::OpCidMismatch { path: path(), expected: None, found: Some(other()) },
        EventError::CommitNotInBlocks { cid: cid() },
        EventError::MissingRecordBlock { path: path(), cid: cid() },
        EventError::UnsupportedEventType { found: "#identity".to_owned() },
        EventError::ErrorFrame {
            error: "FutureCursor".to_owned(),
            message: Some("cursor in the future".to_owned()),
        },
        EventError::ErrorFrame { error: "ConsumerTooSlow".to_owned(), message: None },
    ];
    let text: String =
        errors.iter().map(|e| format!("{} [{}, {}]\n", e, e.code(), e.kind())).collect();
    insta::assert_snapshot!("event_error_display", text);
}

// ---------------------------------------------------------------------------
// The command line: `atrepo event verify` and `atrepo event verify-stream`
// (the binary needs the `cli` feature).

#[cfg(feature = "cli")]
mod cli {
    use std::path::Path;
    use std::process::Command;

    use super::*;

    /// Runs `atrepo` with `args`; returns the exit code, stdout and stderr.
    fn atrepo(args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_atrepo")).args(args).output().unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
    }

    /// The run as a snapshot: exit code, stderr, then stdout with the
    /// timing of the summary redacted.
    fn shown((code, stdout, stderr): (i32, String, String)) -> String {
        let mut text = format!("exit {code}\n");
        for line in stderr.lines() {
            text.push_str(&format!("stderr: {line}\n"));
        }
        for line in stdout.lines() {
            if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(summary) = json.get_mut("summary")
            {
                summary["elapsed_secs"] = serde_json::json!("[elapsed]");
                summary["events_per_sec"] = serde_json::json!("[rate]");
                text.push_str(&json.to_string());
            } else if let (Some(start), Some(end)) = (line.find(" in "), line.find(" events/s)")) {
                text.push_str(&line[..start]);
                text.push_str(" in [elapsed] ([rate]");
                text.push_str(&line[end..]);
            } else {
                text.push_str(line);
            }
            text.push('\n');
        }
        text
    }

    struct Scene {
        dir: tempfile::TempDir,
        key: String,
        prior: RepoState,
    }

    impl Scene {
        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).to_string_lossy().into_owned()
        }
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    /// Event files: `commit.cbor` (a bare body), `commit.frame`, and
    /// `stream.bin`: two commits, an #identity frame, a replay, a commit
    /// whose prevData is not the held state, and a #sync.
    fn scene() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = Repo::new(Curve::K256, 100);
        let prior = repo.state();
        let first = repo.commit(|b| b.put(&post_path(1_000), post(1_000)));
        // The #identity frame's seq, between the first and second commits'.
        repo.seq += 1;
        let identity_seq = repo.seq;
        let second = repo.commit(|b| b.put(&like_path(1), like(1)).delete(&post_path(3)));
        let third = repo.commit(|b| b.put(&like_path(2), like(2)));
        let mut event = decode(&third.body);
        event.prev_data = Some(prior.data);
        let mut wrong = Frame::encode("#commit", &event.to_cbor());
        let sync =
            sync_event(&repo.did, repo.root, tid(NOW - 10 * SECOND), 200, &repo.key).unwrap();
        let mut identity = Encoder::new();
        identity.map(3).text("did").text(&repo.did).text("seq").int(identity_seq).text("time");
        identity.text("2023-11-14T22:13:20.000Z");
        let identity = Frame::encode("#identity", &identity.into_bytes());

        write(dir.path(), "commit.cbor", &first.body);
        write(dir.path(), "commit.frame", &first.frame);
        let mut stream = first.frame.clone();
        stream.extend(&identity);
        stream.extend(&second.frame);
        stream.extend(&first.frame);
        stream.append(&mut wrong);
        stream.extend(&sync.frame);
        write(dir.path(), "stream.bin", &stream);
        let mut ended = first.frame.clone();
        ended.extend(Frame::encode_error("ConsumerTooSlow", Some("stream left behind")));
        write(dir.path(), "ended.bin", &ended);
        // A frame breaking a strict rule (keys out of order), skipped; then
        // the start of a frame cut short, where reading stops.
        let mut cut = first.frame.clone();
        cut.extend(Frame::encode("#identity", b"\xa2\x61b\x01\x61a\x02"));
        cut.extend(&identity);
        cut.extend(&second.frame[..10]);
        write(dir.path(), "cut.bin", &cut);
        write(dir.path(), "garbage.cbor", b"\xa1\x63ops\xff");
        Scene { dir, key: repo.key.public_key().to_did_key(), prior }
    }

    #[test]
    fn verify_one_event() {
        let s = scene();
        let (body, frame) = (s.path("commit.cbor"), s.path("commit.frame"));
        let (rev, data) = (s.prior.rev.to_string(), s.prior.data.to_string());
        let wrong_rev = tid(s.prior.rev.timestamp_micros() - SECOND).to_string();
        let mut text = String::new();
        for args in [
            vec!["event", "verify", &body, "--key", &s.key],
            vec![
                "event",
                "verify",
                &frame,
                "--key",
                &s.key,
                "--prev-rev",
                &rev,
                "--prev-data",
                &data,
            ],
            vec![
                "event",
                "verify",
                &frame,
                "--key",
                &s.key,
                "--prev-rev",
                &wrong_rev,
                "--prev-data",
                &data,
            ],
            vec![
                "event",
                "verify",
                &frame,
                "--key",
                &s.key,
                "--prev-rev",
                &wrong_rev,
                "--prev-data",
                &data,
                "--lenient-chain",
            ],
            vec!["event", "verify", &body],
            vec!["event", "verify", &s.path("garbage.cbor"), "--key", &s.key],
        ] {
            let shown_args: Vec<&str> =
                args.iter().skip(3).map(|a| if a.contains('/') { "FILE" } else { a }).collect();
            text.push_str(
                format!("$ atrepo event verify FILE {}", shown_args.join(" ")).trim_end(),
            );
            text.push('\n');
            text.push_str(&shown(atrepo(&args)));
            let mut json = args.clone();
            json.push("--json");
            text.push_str(&shown(atrepo(&json)));
            text.push('\n');
        }
        insta::assert_snapshot!("cli_verify", text.replace(&s.key, "DID_KEY"));
        // A missing file is a usage/I/O error, reported on stderr.
        let (code, stdout, stderr) =
            atrepo(&["event", "verify", &s.path("absent"), "--key", &s.key]);
        assert_eq!((code, stdout.as_str()), (3, ""));
        assert!(stderr.starts_with("error: cannot read "), "{stderr}");
        // So is a bad key.
        let (code, _, stderr) =
            atrepo(&["event", "verify", &s.path("commit.cbor"), "--key", "did:key:x"]);
        assert_eq!(code, 3);
        assert!(stderr.starts_with("error: invalid key \"did:key:x\""), "{stderr}");
    }

    /// `#account` events, with `--ignore-inactive`: while an account is
    /// not active its `#commit` and `#sync` events are ignored (not
    /// verified, not failed), and after it is active again a `#sync` picks
    /// its state up. Without the switch (`#account` frames are not
    /// signed) every event is verified.
    #[test]
    fn a_stream_ignores_inactive_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = Repo::new(Curve::K256, 100);
        // Seqs 101 to 106 in stream order: the commits take 101, 103 and
        // 106, the `#account` events 102 and 104, the `#sync` 105.
        let first = repo.commit(|b| b.put(&post_path(1_000), post(1_000)));
        repo.seq += 1;
        let hidden = repo.commit(|b| b.put(&like_path(1), like(1)));
        // The state after the hidden commit, as the PDS announces it on
        // reactivation.
        let sync = sync_event(&repo.did, repo.root, repo.rev, 105, &repo.key).unwrap();
        repo.seq += 2;
        let after = repo.commit(|b| b.put(&like_path(2), like(2)));
        let account = |seq: i64, status: Option<&str>| {
            let mut e = Encoder::new();
            e.map(if status.is_some() { 5 } else { 4 }).text("did").text(&repo.did);
            e.text("seq").int(seq).text("time").text("2023-11-14T22:13:20.000Z");
            e.text("active").bool(status.is_none());
            if let Some(status) = status {
                e.text("status").text(status);
            }
            Frame::encode("#account", &e.into_bytes())
        };
        let mut stream = first.frame.clone();
        stream.extend(account(102, Some("takendown")));
        stream.extend(&hidden.frame);
        stream.extend(account(104, None));
        stream.extend(&sync.frame);
        stream.extend(&after.frame);
        let path = dir.path().join("takedown.bin");
        std::fs::write(&path, &stream).unwrap();
        let key = repo.key.public_key().to_did_key();
        let path = path.to_str().unwrap();
        let (code, stdout, stderr) =
            atrepo(&["event", "verify-stream", path, "--key", &key, "--ignore-inactive"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let status: Vec<&str> =
            stdout.lines().map(|l| l.split_whitespace().next().unwrap_or_default()).collect();
        assert_eq!(status, ["ok", "skip", "ignore", "skip", "ok", "ok", "summary:"], "{stdout}");
        assert!(stdout.contains("#commit seq 103"), "{stdout}");
        assert!(stdout.lines().nth(2).unwrap().ends_with(": account takendown"), "{stdout}");
        assert!(
            stdout.contains("6 frames: 3 verified, 0 failed, 2 skipped, 1 ignored"),
            "{stdout}"
        );
        let args = ["event", "verify-stream", path, "--key", &key, "--ignore-inactive", "--json"];
        let (_, json, _) = atrepo(&args);
        let ignored: serde_json::Value =
            serde_json::from_str(json.lines().nth(2).unwrap()).unwrap();
        assert_eq!(ignored["status"], "ignored");
        assert_eq!(ignored["reason"], "account takendown");
        // Without the switch the hidden commit is verified too.
        let (code, stdout, stderr) = atrepo(&["event", "verify-stream", path, "--key", &key]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("6 frames: 4 verified, 0 failed, 2 skipped in"), "{stdout}");
    }

    #[test]
    fn verify_a_stream() {
        let s = scene();
        let stream = s.path("stream.bin");
        let text = [
            shown(atrepo(&["event", "verify-stream", &stream, "--key", &s.key])),
            shown(atrepo(&["event", "verify-stream", &stream, "--key", &s.key, "--json"])),
            shown(atrepo(&["event", "verify-stream", &s.path("ended.bin"), "--key", &s.key])),
            shown(atrepo(&["event", "verify-stream", &stream])),
            shown(atrepo(&["event", "verify-stream", &s.path("cut.bin"), "--key", &s.key])),
            shown(atrepo(&["event", "verify-stream", &s.path("cut.bin"), "--json"])),
        ]
        .join("\n");
        insta::assert_snapshot!("cli_verify_stream", text);
        // Keys per repository.
        let did_key = format!("did:plc:ewvi7nxzyoun6zhxrhs64oiz={}", s.key);
        let (code, _, _) = atrepo(&["event", "verify-stream", &stream, "--did-key", &did_key]);
        assert_eq!(code, 1);
        // Or from DID documents (one per line): the same outcome as --key.
        let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
        let document = |did: &str| {
            serde_json::json!({"id": did, "verificationMethod": [{
                "id": "#atproto", "type": "Multikey", "controller": did,
                "publicKeyMultibase": s.key.trim_start_matches("did:key:")}]})
        };
        // Without keys: everything but the signatures, and says so.
        let (code, stdout, stderr) = atrepo(&["event", "verify-stream", &stream, "--no-signature"]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        let oks = stdout.lines().filter(|l| l.starts_with("ok ")).collect::<Vec<_>>();
        assert_eq!(oks.len(), 3, "{stdout}");
        assert!(oks.iter().all(|l| l.ends_with(" (signature not checked)")), "{stdout}");
        assert!(stdout.contains("1 skipped (signatures not checked) in"), "{stdout}");
        let args = ["event", "verify-stream", &stream, "--no-signature", "--json"];
        let (_, stdout, _) = atrepo(&args);
        assert!(stdout.contains("\"signatures_checked\":false"), "{stdout}");
        assert!(stdout.contains("\"signature_checked\":false"), "{stdout}");
        let (code, _, stderr) =
            atrepo(&["event", "verify-stream", &stream, "--no-signature", "--key", &s.key]);
        assert_eq!(code, 3, "{stderr}");
        let docs = s.path("docs.jsonl");
        std::fs::write(&docs, format!("{}\n{}\n", document("did:plc:someoneelse"), document(did)))
            .unwrap();
        let with_key = shown(atrepo(&["event", "verify-stream", &stream, "--key", &s.key]));
        let with_docs = shown(atrepo(&["event", "verify-stream", &stream, "--did-doc", &docs]));
        assert_eq!(with_docs, with_key);
        let one = s.path("one.json");
        std::fs::write(&one, document(did).to_string()).unwrap();
        let commit = s.path("commit.frame");
        let (code, stdout, stderr) = atrepo(&["event", "verify", &commit, "--did-doc", &one]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        std::fs::write(&one, document("did:plc:someoneelse").to_string()).unwrap();
        let (code, _, stderr) = atrepo(&["event", "verify", &commit, "--did-doc", &one]);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("expected did:plc:someoneelse"), "{stderr}");
        let (_, stdout, _) = atrepo(&["event", "verify", &commit, "--did-doc", &one, "--json"]);
        assert!(stdout.contains("\"code\":\"did_mismatch\""), "{stdout}");
        // A frame that does not decode (an op action that is none of the
        // three) is still named by what its body says: a review found such
        // errors with no seq or DID.
        let bytes = std::fs::read(&commit).unwrap();
        let at = bytes.windows(6).position(|w| w == b"create").unwrap();
        let mut upsert = bytes.clone();
        upsert[at..at + 6].copy_from_slice(b"upsert");
        let upsert_path = s.path("upsert.frame");
        std::fs::write(&upsert_path, &upsert).unwrap();
        for args in [["event", "verify"], ["event", "verify-stream"]] {
            let (code, stdout, stderr) =
                atrepo(&[&args[..], &[upsert_path.as_str(), "--no-signature"]].concat());
            assert_ne!(code, 0);
            let said = format!("{stdout}{stderr}");
            assert!(said.contains(&format!("#commit seq 101 {did} rev ")), "{said}");
            assert!(said.contains("upsert"), "{said}");
        }
        // The event's repo changed (same length; it is the first copy of
        // the DID in the frame, before the blocks), its commit still the
        // document's DID: the event is at fault, not the commit.
        let other = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
        assert_eq!(other.len(), did.len());
        let bytes = std::fs::read(&commit).unwrap();
        let at = bytes.windows(did.len()).position(|w| w == did.as_bytes()).unwrap();
        let mut moved = bytes.clone();
        moved[at..at + did.len()].copy_from_slice(other.as_bytes());
        let moved_path = s.path("moved.frame");
        std::fs::write(&moved_path, &moved).unwrap();
        std::fs::write(&one, document(did).to_string()).unwrap();
        let (code, _, stderr) = atrepo(&["event", "verify", &moved_path, "--did-doc", &one]);
        assert_eq!(code, 1, "{stderr}");
        let expected =
            format!("expected a commit for {other} (the event's repo), found one for {did}");
        assert!(stderr.contains(&expected), "{stderr}");
        // Several keys for one DID (a capture across a key rotation): each
        // is tried. A document without a usable key is skipped, named.
        let other = SigningKey::from_seed(Curve::P256, b"rotated").unwrap();
        let old = format!("{did}={}", other.public_key().to_did_key());
        let both = ["event", "verify-stream", &stream, "--did-key", &old, "--did-key", &did_key];
        let with_both = shown(atrepo(&both));
        let marked = format!(" signed by {}", s.key);
        assert_eq!(with_both.matches(&marked).count(), 3, "{with_both}");
        assert_eq!(with_both.replace(&marked, ""), with_key);
        // Keys that all fail: none matched (not the first key's curve).
        let other2 = SigningKey::from_seed(Curve::K256, b"rotated too").unwrap();
        let old2 = format!("{did}={}", other2.public_key().to_did_key());
        let wrong =
            ["event", "verify-stream", &stream, "--did-key", &old, "--did-key", &old2, "--json"];
        let (_, stdout, _) = atrepo(&wrong);
        assert!(stdout.contains("\"code\":\"no_key_matched\""), "{stdout}");
        // A --did-key whose DID is not one, or too many keys for one DID.
        let (code, _, stderr) = atrepo(&[
            "event",
            "verify-stream",
            &stream,
            "--did-key",
            &format!("notadid={}", s.key),
        ]);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains("with a DID, found \"notadid\""), "{stderr}");
        let many: Vec<String> = (0..17u8)
            .map(|n| {
                let k = SigningKey::from_seed(Curve::K256, &[n]).unwrap().public_key();
                format!("{did}={}", k.to_did_key())
            })
            .collect();
        let mut args = vec!["event", "verify-stream", &stream];
        for pair in &many {
            args.extend(["--did-key", pair.as_str()]);
        }
        let (code, _, stderr) = atrepo(&args);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains("at most 16 keys for one DID"), "{stderr}");
        // An empty file of documents says so.
        let empty = s.path("empty.json");
        std::fs::write(&empty, "").unwrap();
        let (_, _, stderr) =
            atrepo(&["event", "verify-stream", &stream, "--key", &s.key, "--did-doc", &empty]);
        assert!(stderr.contains("empty.json: no DID documents"), "{stderr}");
        std::fs::write(&docs, format!("{{\"id\": 5}}\n{}\n", document(did))).unwrap();
        let (code, stdout, stderr) =
            atrepo(&["event", "verify-stream", &stream, "--did-doc", &docs]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stderr.contains("docs.jsonl: document 1 skipped: expected a DID"), "{stderr}");
    }

    /// A seq at or below one seen before (seq is not signed: a relay, a
    /// capture tool or an attacker on the path can reorder or replay
    /// events) is a warning by default, and with `--strict-seq` fails the
    /// event without applying it, so the next commit of the repository
    /// then fails the chain checks.
    #[test]
    fn a_seq_out_of_order_warns_or_with_strict_seq_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = Repo::new(Curve::K256, 100);
        let first = repo.commit(|b| b.put(&post_path(1_000), post(1_000)));
        let second = repo.commit(|b| b.put(&like_path(1), like(1)));
        let third = repo.commit(|b| b.put(&like_path(2), like(2)));
        let mut stale = decode(&second.body);
        stale.seq = 50;
        // A frame that fails (its repo is not the commit's DID) with a huge
        // seq: refused, it must not put the later events out of order.
        let mut poison = decode(&second.body);
        poison.seq = 1_000_000;
        poison.repo = "did:plc:notthecommitsdid22222222";
        let mut stream = first.frame.clone();
        stream.extend(Frame::encode("#commit", &poison.to_cbor()));
        stream.extend(Frame::encode("#commit", &stale.to_cbor()));
        stream.extend(&third.frame);
        let path = dir.path().join("stale.bin");
        std::fs::write(&path, &stream).unwrap();
        let (path, key) = (path.to_str().unwrap(), repo.key.public_key().to_did_key());

        let (code, stdout, stderr) = atrepo(&["event", "verify-stream", path, "--key", &key]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        assert!(lines[1].starts_with("FAIL #1 @"), "{stdout}");
        assert!(lines[2].starts_with("ok #2 @"), "{stdout}");
        assert_eq!(
            lines[3],
            "  warning: verification failure: expected a seq above 101 (the highest seen on \
             this stream), found 50",
        );
        assert!(lines[4].starts_with("ok #3 @"), "{stdout}");
        assert!(lines[5].starts_with("summary: 4 frames: 3 verified, 1 failed"), "{stdout}");
        assert!(lines[5].contains("; warnings: seq_not_increasing 1"), "{stdout}");

        let args = ["event", "verify-stream", path, "--key", &key, "--strict-seq", "--json"];
        let (code, stdout, stderr) = atrepo(&args);
        assert_eq!(code, 1, "{stdout}{stderr}");
        let events: Vec<serde_json::Value> =
            stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let status: Vec<&str> =
            events.iter().take(4).map(|e| e["status"].as_str().unwrap()).collect();
        assert_eq!(status, ["verified", "failed", "failed", "failed"], "{stdout}");
        assert_eq!(events[2]["error"]["code"], "seq_not_increasing");
        assert_eq!(events[2]["seq"], 50);
        // The refused commit was not applied: the third one's since is the
        // second's rev, which the held state never reached.
        assert_eq!(events[3]["error"]["code"], "since_mismatch", "{stdout}");
        assert_eq!(events[4]["summary"]["warnings_by_code"], serde_json::json!({}));
    }

    /// A reader that goes away stops the capture, with the failures found
    /// so far as the exit code (here the first frame's: no key, 3), not
    /// the success a closed pipe means for the other commands.
    #[test]
    fn a_closed_pipe_keeps_the_failures_found() {
        use std::process::Stdio;
        let s = scene();
        let mut child = Command::new(env!("CARGO_BIN_EXE_atrepo"))
            .args(["event", "verify-stream", &s.path("stream.bin")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        assert_eq!(child.wait_with_output().unwrap().status.code(), Some(3));
    }

    /// `--max-node-entries` lets through an event whose tree has a node
    /// wider than the default cap, which is refused as a limit (exit 2)
    /// without it.
    #[test]
    fn max_node_entries_raises_the_entry_cap() {
        let (repo, _, built) = wide_commit();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "wide.cbor", &built.body);
        let path = dir.path().join("wide.cbor");
        let path = path.to_str().unwrap();
        let key = repo.key.public_key().to_did_key();
        let (code, stdout, stderr) = atrepo(&["event", "verify", path, "--key", &key]);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(stderr.contains("has 231 entries: limit 200"), "{stdout}{stderr}");
        let args = ["event", "verify", path, "--key", &key, "--max-node-entries", "300"];
        let (code, stdout, stderr) = atrepo(&args);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let args = ["event", "verify", path, "--key", &key, "--max-node-entries", "0"];
        assert_eq!(atrepo(&args).0, 3);
    }

    /// `--max-rev-ahead` widens the clock check: an event an hour ahead of
    /// this machine's clock fails (exit 1) by default and passes with it.
    #[test]
    fn max_rev_ahead_widens_the_clock_check() {
        let repo = Repo::new(Curve::K256, 10);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let rev = tid(u64::try_from(now.as_micros()).unwrap() + 3_600 * SECOND);
        let built = CommitEventBuilder::new(&repo.store, &repo.did, repo.root, rev)
            .put(&post_path(500), post(500))
            .build(&repo.key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ahead.cbor", &built.body);
        let path = dir.path().join("ahead.cbor");
        let path = path.to_str().unwrap();
        let key = repo.key.public_key().to_did_key();
        let (code, stdout, stderr) = atrepo(&["event", "verify", path, "--key", &key]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stderr.contains("ahead of the clock"), "{stdout}{stderr}");
        let args = ["event", "verify", path, "--key", &key, "--max-rev-ahead", "7200"];
        let (code, stdout, stderr) = atrepo(&args);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }
}
