//! `atrepo event`: verify firehose `#commit` and `#sync` events as a relay
//! would, one event (`verify`) or a capture of concatenated frames
//! (`verify-stream`), carrying each repository's state from one event to
//! the next.
//!
//! # Output
//!
//! `verify` prints one line for a verified event (`ok #commit seq ... did
//! ... rev ... commit ... data ... ops N`, then any downgraded check as a
//! `warning:` line); a failure is one `error:` line on stderr naming the
//! event and the problem. `verify-stream` prints one line per frame, `ok`,
//! `FAIL`, `skip` (`#identity` and `#account`, checked against their
//! schema, and `#info`) or, with `--ignore-inactive`, `ignore` (a
//! `#commit` or `#sync` of an account an earlier `#account` event said is
//! not active, which relays ignore, with that status), then a summary line (frames, verified, failed,
//! skipped, ignored if any, time, events/s, failures by kind, warnings
//! by code if any, and where
//! reading stopped if a frame's end could not be found: `stopped at offset
//! N, M bytes unread`). An event whose `seq` is not above every earlier
//! one in the capture gets a `  warning:` line (`seq_not_increasing`)
//! after its own; with `--strict-seq` it fails instead, without being
//! applied. With `--no-signature` (no keys) every other check runs; each
//! `ok` line ends `(signature not checked)` and the summary says
//! `(signatures not checked)`.
//!
//! `--json` prints one JSON object per event (JSON Lines), failures
//! included (a failed `verify` also writes its `error:` line on stderr),
//! then for a stream a `{"summary": ...}` object:
//!
//! ```text
//! {"index": 0, "offset": 0, "type": "#commit", "seq": 101, "did": "did:plc:...",
//!  "rev": "3kdg...", "status": "verified", "commit": "bafy...", "data": "bafy...",
//!  "ops": 2, "signature_checked": true, "warnings": []}
//! {"index": 1, "offset": 6120, "type": "#commit", ..., "status": "failed",
//!  "error": {"kind": "verification", "code": "rev_not_increasing", "message": "..."}}
//! {"index": 2, "offset": 9000, "type": "#identity", "seq": 150, "did": "did:plc:...",
//!  "status": "skipped"}
//! {"index": 3, "offset": 9100, "type": "#commit", ..., "status": "ignored",
//!  "reason": "account takendown"}
//! {"summary": {"frames": 4, "verified": 1, "failed": 1, "skipped": 1, "ignored": 1,
//!  "elapsed_secs": 0.002, "events_per_sec": 1000.0,
//!  "failures_by_kind": {"verification": 1}, "failures_by_code": {"rev_not_increasing": 1},
//!  "warnings_by_code": {}, "signatures_checked": true, "unread_bytes": 0}}
//! ```
//!
//! `unread_bytes` is what was left after a frame whose end could not be
//! found (a capture cut short, bytes that are no frame); zero when every
//! frame was read.
//!
//! `index` and `offset` (the frame's byte offset) appear for streams only;
//! `type`, `seq`, `did` and `rev` when the event got far enough to have
//! them; `commit`, `data`, `ops` (`#commit` only) and `warnings` (objects
//! like `error`) when verified, and `warnings` on any other line with a
//! stream warning (a `seq` out of order); `signature_checked` on a
//! verified event (`false` with `--no-signature`; the summary's
//! `signatures_checked` says the same for the run); `signed_by` (the
//! did:key that verified it) when several keys were given for its DID (a
//! line then ends `signed by did:key:...`); `error` when failed. `kind` is one of
//! `malformed`, `verification`, `missing`, `limit`, `environment`,
//! `usage`; `code` names the check (`atrepo::event::EventError::code`, or
//! `car`, `mst`, `commit`, `store`, `no_key`, `did_mismatch`, `did_document`,
//! `key_resolution`, `io`, `other` for errors
//! from elsewhere). Fields are only ever added.
//!
//! # Exit codes
//!
//! As for `atrepo verify`: 0 every event verified (or was skipped); 1 a
//! verification failure or a missing block; 2 malformed input or a limit;
//! 3 usage or I/O. A stream exits with the highest code any frame earned.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use atrepo::event::{
    CheckMode, Event, EventError, Frame, FrameHeader, Frames, MemoryStateStore, RepoState,
    SeqOrder, Verified, Verifier, VerifyOptions,
};
use atrepo::mst::KeyRules;
use atrepo::verify::{PublicKey, Tid};
use atrepo::{Error, ErrorKind};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

/// `atrepo event`: firehose events.
#[derive(Debug, Args)]
pub(crate) struct EventArgs {
    #[command(subcommand)]
    command: EventCommand,
}

#[derive(Debug, Subcommand)]
enum EventCommand {
    /// Verify one #commit or #sync event: a body as carried after the frame
    /// header (DAG-CBOR), or a whole frame.
    Verify(VerifyArgs),
    /// Verify a file of concatenated frames (as captured from
    /// com.atproto.sync.subscribeRepos), carrying each repository's state
    /// from one event to the next.
    VerifyStream(StreamArgs),
}

/// Checks both subcommands share.
#[derive(Debug, Args)]
struct CheckArgs {
    /// Report a failed inversion (ops against the tree, prevData, a node
    /// the event left out) as a warning instead of failing the event; a
    /// malformed tree still fails it.
    #[arg(long)]
    lenient_inversion: bool,
    /// Report since/prevData disagreeing with the held state as a warning
    /// (a since not before the event's own rev still fails it).
    #[arg(long)]
    lenient_chain: bool,
    /// Accept historical record paths (one "/", record-key characters)
    /// instead of requiring an NSID collection.
    #[arg(long)]
    lax_paths: bool,
    /// Most entries one MST node may hold, as for `verify`: a node of
    /// random keys reaches the default with odds far below one in 10^20.
    #[arg(
        long,
        value_name = "N",
        default_value_t = atrepo::mst::Limits::DEFAULT_MAX_ENTRIES,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    max_node_entries: u64,
    /// How far an event's rev may be ahead of this machine's clock, in
    /// seconds (the sync specification's "a few minutes"); an event
    /// further ahead fails.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = atrepo::verify::DEFAULT_FUTURE_TOLERANCE.as_secs()
    )]
    max_rev_ahead: u64,
    /// Print JSON Lines instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The event file.
    file: PathBuf,
    /// The repository's signing key, as a did:key.
    #[arg(long, value_name = "DID_KEY")]
    key: Option<String>,
    /// The repository's DID document (JSON; `-` for standard input): its
    /// #atproto key, for events of its DID.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    did_doc: Option<PathBuf>,
    /// Check everything but the commit's signature (when the key is not
    /// known): a forged event passes this.
    #[arg(long, conflicts_with_all = ["key", "did_doc"])]
    no_signature: bool,
    /// The tree root (commit data CID) the relay holds for the repository.
    #[arg(long, value_name = "CID", requires = "prev_rev")]
    prev_data: Option<String>,
    /// The last rev the relay holds for the repository.
    #[arg(long, value_name = "TID", requires = "prev_data")]
    prev_rev: Option<String>,
    #[command(flatten)]
    checks: CheckArgs,
}

#[derive(Debug, Args)]
struct StreamArgs {
    /// The capture file.
    file: PathBuf,
    /// The signing key of every repository in the stream, as a did:key
    /// (tried last for a repository that also has keys of its own).
    #[arg(long, value_name = "DID_KEY")]
    key: Option<String>,
    /// The signing key of one repository; repeat for more repositories,
    /// or for more keys of one (a capture that spans a key rotation: each
    /// is tried in turn).
    #[arg(long = "did-key", value_name = "DID=DID_KEY")]
    did_keys: Vec<String>,
    /// DID documents (JSON: one, an array, or one per line; `-` for
    /// standard input): the #atproto key of each document's DID; repeat
    /// for more files. A document
    /// without a usable key is skipped with a warning. The keys tried for
    /// an event are its DID's --did-key keys, then its documents' keys,
    /// then --key.
    #[arg(long = "did-doc", value_name = "FILE")]
    did_docs: Vec<PathBuf>,
    /// Check everything but the commits' signatures (when the keys are not
    /// known: the structure, chain and inversions of a capture); a forged
    /// event passes this. The summary says so.
    #[arg(long, conflicts_with_all = ["key", "did_keys", "did_docs"])]
    no_signature: bool,
    /// Ignore the `#commit` and `#sync` events of an account while an
    /// `#account` event says it is not active, as relays do. `#account`
    /// frames are not signed: only for captures from a trusted host (one
    /// forged frame would hide every later event of that account).
    #[arg(long)]
    ignore_inactive: bool,
    /// Fail an event whose seq is not above every earlier seq in the
    /// capture (a replay or a reordering), without applying it, instead of
    /// verifying it with a warning. Off by default: seq is not signed, and
    /// a capture joined from several hosts has unrelated numbers.
    #[arg(long)]
    strict_seq: bool,
    #[command(flatten)]
    checks: CheckArgs,
}

/// Runs `atrepo event ...`.
pub(crate) fn run(args: EventArgs) -> Result<ExitCode> {
    match args.command {
        EventCommand::Verify(args) => verify(&args),
        EventCommand::VerifyStream(args) => verify_stream(&args),
    }
}

/// The `code` of an error in JSON output.
fn code(error: &Error) -> &'static str {
    match error {
        Error::Event(e) => e.code(),
        Error::Car(_) => "car",
        Error::Mst(_) => "mst",
        Error::Verify(_) => "commit",
        Error::Store(_) => "store",
        Error::NoKey { .. } => "no_key",
        Error::DidMismatch { .. } => "did_mismatch",
        Error::DidDocument(_) => "did_document",
        Error::KeyResolution { .. } => "key_resolution",
        Error::Io(_) => "io",
        _ => "other",
    }
}

fn verifier(checks: &CheckArgs) -> Verifier {
    let mode = |lenient: bool| if lenient { CheckMode::Warn } else { CheckMode::Enforce };
    let keys = if checks.lax_paths { KeyRules::Lax } else { KeyRules::Strict };
    Verifier::new().with_options(
        VerifyOptions::default()
            .keys(keys)
            .inversion(mode(checks.lenient_inversion))
            .chain(mode(checks.lenient_chain))
            .mst(atrepo::mst::Limits::default().max_entries(checks.max_node_entries))
            .future_tolerance(Duration::from_secs(checks.max_rev_ahead)),
    )
}

fn parse_key(s: &str) -> Result<PublicKey> {
    PublicKey::from_did_key(s.trim()).with_context(|| format!("invalid key {s:?}"))
}

/// What is known of an event for reporting, as far as it was decoded.
#[derive(Default)]
struct About {
    index: Option<usize>,
    offset: Option<u64>,
    kind: Option<String>,
    seq: Option<i64>,
    did: Option<String>,
    rev: Option<Tid>,
    /// Verified without its signature (`--no-signature`).
    unsigned: bool,
    /// The key that verified it, when several were given for its DID.
    signed_by: Option<String>,
}

impl About {
    /// What a frame that failed to decode says about itself, read
    /// leniently: the header's type and the body's top-level `seq`, `repo`
    /// (or `did`) and `rev`, so that its error names the event as a
    /// decoded one's does (a review found a bad op action, or 201 ops,
    /// reported with no seq or DID). Best effort: a value that does not
    /// read is left out, a DID or rev only if it is one.
    fn peek(&mut self, header: Option<FrameHeader<'_>>, body: &[u8]) {
        use atrepo::verify::drisl::{Decoder, Limits};
        if let Some(FrameHeader::Message { kind }) = header {
            self.kind = Some(kind.chars().take(64).collect());
        }
        let mut d = Decoder::new(body);
        let Ok(n) = d.map() else { return };
        let limits = Limits::default();
        for _ in 0..n {
            let Ok(key) = d.text_key() else { return };
            let read = match key {
                b"seq" => d.int().map(|seq| self.seq = Some(seq)),
                b"repo" | b"did" => d.text().map(|did| {
                    if atrepo::verify::syntax::did(did).is_ok() {
                        self.did = Some(did.to_owned());
                    }
                }),
                b"rev" => d.text().map(|rev| self.rev = Tid::parse(rev).ok()),
                _ => d.skip(&limits),
            };
            if read.is_err() {
                return;
            }
        }
    }

    fn of(event: &Event<'_>) -> About {
        let rev = match event {
            Event::Commit(c) => Some(c.rev),
            Event::Sync(s) => Some(s.rev),
            _ => None,
        };
        About {
            kind: Some(event.kind().to_owned()),
            seq: event.seq(),
            did: event.did().map(str::to_owned),
            rev,
            ..About::default()
        }
    }

    fn json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(index) = self.index {
            m.insert("index".into(), json!(index));
        }
        if let Some(offset) = self.offset {
            m.insert("offset".into(), json!(offset));
        }
        if let Some(kind) = &self.kind {
            m.insert("type".into(), json!(kind));
        }
        if let Some(seq) = self.seq {
            m.insert("seq".into(), json!(seq));
        }
        if let Some(did) = &self.did {
            m.insert("did".into(), json!(did));
        }
        if let Some(rev) = self.rev {
            m.insert("rev".into(), json!(rev.to_string()));
        }
        m
    }

    fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(index) = self.index {
            parts.push(format!("#{index}"));
        }
        if let Some(offset) = self.offset {
            parts.push(format!("@{offset}"));
        }
        if let Some(kind) = &self.kind {
            parts.push(kind.clone());
        }
        if let Some(seq) = self.seq {
            parts.push(format!("seq {seq}"));
        }
        if let Some(did) = &self.did {
            parts.push(did.clone());
        }
        if let Some(rev) = self.rev {
            parts.push(format!("rev {rev}"));
        }
        parts.join(" ")
    }
}

/// The outcome of one frame.
enum Outcome {
    Verified(Box<Verified>),
    Failed(Error),
    Skipped,
    /// Not verified, on purpose: a `#commit` or `#sync` of an account an
    /// `#account` event said is not active (relays ignore those).
    Ignored(String),
}

/// Prints one frame's line. `warnings` are the stream's own (a `seq` out of
/// order without `--strict-seq`), printed after the event's.
fn print(
    about: &About,
    outcome: &Outcome,
    warnings: &[Error],
    as_json: bool,
) -> std::io::Result<()> {
    if as_json {
        let mut m = about.json();
        match outcome {
            Outcome::Verified(v) => {
                m.insert("status".into(), json!("verified"));
                let (commit, data, ops) = match &**v {
                    Verified::Commit(c) => (c.commit, c.data, Some(c.ops)),
                    Verified::Sync(s) => (s.commit, s.data, None),
                    _ => return Ok(()),
                };
                m.insert("commit".into(), json!(commit.to_string()));
                m.insert("data".into(), json!(data.to_string()));
                if let Some(ops) = ops {
                    m.insert("ops".into(), json!(ops));
                }
                let all = v.warnings().iter().chain(warnings).map(error_json).collect();
                m.insert("warnings".into(), Value::Array(all));
                m.insert("signature_checked".into(), json!(!about.unsigned));
                if let Some(key) = &about.signed_by {
                    m.insert("signed_by".into(), json!(key));
                }
            }
            Outcome::Failed(e) => {
                m.insert("status".into(), json!("failed"));
                m.insert("error".into(), error_json(e));
            }
            Outcome::Skipped => {
                m.insert("status".into(), json!("skipped"));
            }
            Outcome::Ignored(reason) => {
                m.insert("status".into(), json!("ignored"));
                m.insert("reason".into(), json!(reason));
            }
        }
        if !matches!(outcome, Outcome::Verified(_)) && !warnings.is_empty() {
            m.insert("warnings".into(), warnings.iter().map(error_json).collect());
        }
        outln!("{}", crate::sorted(Value::Object(m)))?;
        return Ok(());
    }
    let unsigned = match (&about.signed_by, about.unsigned) {
        (_, true) => " (signature not checked)".to_owned(),
        (Some(key), false) => format!(" signed by {key}"),
        (None, false) => String::new(),
    };
    let about = about.text();
    let sep = if about.is_empty() { "" } else { " " };
    match outcome {
        Outcome::Verified(v) => {
            let detail = match &**v {
                Verified::Commit(c) => {
                    format!("commit {} data {} ops {}", c.commit, c.data, c.ops)
                }
                Verified::Sync(s) => format!("commit {} data {}", s.commit, s.data),
                _ => String::new(),
            };
            outln!("ok{sep}{about} {detail}{unsigned}")?;
            for w in v.warnings() {
                outln!("  warning: {}: {w}", w.kind())?;
            }
        }
        Outcome::Failed(e) => outln!("FAIL{sep}{about}: {}: {e}", e.kind())?,
        Outcome::Skipped => outln!("skip{sep}{about}")?,
        Outcome::Ignored(reason) => outln!("ignore{sep}{about}: {reason}")?,
    }
    for w in warnings {
        outln!("  warning: {}: {w}", w.kind())?;
    }
    Ok(())
}

fn error_json(e: &Error) -> Value {
    json!({"kind": crate::kind_name(e.kind()), "code": code(e), "message": e.to_string()})
}

fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let key = args.key.as_deref().map(parse_key).transpose()?;
    let document = args.did_doc.as_deref().map(crate::did_doc::read_one).transpose()?;
    let prior = match (&args.prev_rev, &args.prev_data) {
        (Some(rev), Some(data)) => Some(RepoState {
            rev: Tid::parse(rev).with_context(|| format!("invalid --prev-rev {rev:?}"))?,
            data: data.parse().with_context(|| format!("invalid --prev-data {data:?}"))?,
        }),
        _ => None,
    };
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let v = verifier(&args.checks);
    let limits = v.options().limits;
    let (about, result) = match Event::decode(&bytes, &limits) {
        Err(e) => {
            // A whole frame: its header's type and its body; else a body.
            let mut about = About::default();
            match Frame::decode(&bytes, &limits) {
                Ok(frame) if Frame::looks_like_frame(&bytes) => {
                    about.peek(Some(frame.header), frame.body);
                }
                _ => about.peek(None, &bytes),
            }
            (about, Err(e.into()))
        }
        Ok(event) => {
            let about = About { unsigned: args.no_signature, ..About::of(&event) };
            let result = match (&key, &document, event.did()) {
                _ if args.no_signature => v.verify_event_unsigned(&event, prior.as_ref()),
                (Some(key), _, _) => v.verify_event(&event, key, prior.as_ref()),
                // The document is for one DID: an event of another is not
                // its account's. Said once the event is known to hold a
                // commit for its own repo (a review found an event whose
                // commit was the document's DID reported as "commit is for"
                // the event's repo); anything else wrong with it first.
                (None, Some(doc), Some(did))
                    if doc.did != did && matches!(event, Event::Commit(_) | Event::Sync(_)) =>
                {
                    v.verify_event_unsigned(&event, prior.as_ref()).and_then(|_| {
                        Err(Error::DidMismatch { expected: doc.did.clone(), found: did.to_owned() })
                    })
                }
                (None, Some(doc), _) => v.verify_event(&event, &doc.key, prior.as_ref()),
                (None, None, Some(did)) => Err(Error::NoKey { did: did.to_owned() }),
                (None, None, None) => {
                    Err(event.unsupported().unwrap_or(EventError::UnrecognizedBody).into())
                }
            };
            (about, result)
        }
    };
    match result {
        Ok(verified) => {
            print(&about, &Outcome::Verified(Box::new(verified)), &[], args.checks.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.checks.json {
                let mut m = about.json();
                m.insert("status".into(), json!("failed"));
                m.insert("error".into(), error_json(&e));
                // The event's error is the outcome, written or not.
                crate::side_line(format_args!("{}", crate::sorted(Value::Object(m))));
            }
            let what = about.text();
            if what.is_empty() { Err(e.into()) } else { Err(anyhow::Error::new(e).context(what)) }
        }
    }
}

fn verify_stream(args: &StreamArgs) -> Result<ExitCode> {
    let default_key = args.key.as_deref().map(parse_key).transpose()?;
    let mut keys = crate::did_doc::KeyRing::default();
    for pair in &args.did_keys {
        let Some((did, key)) = pair.split_once('=') else {
            bail!("expected --did-key DID=DID_KEY, found {pair:?}");
        };
        if atrepo::verify::syntax::did(did).is_err() {
            bail!("expected --did-key DID=DID_KEY with a DID, found {did:?}");
        }
        keys.add(did.to_owned(), parse_key(key)?).with_context(|| format!("--did-key {did}"))?;
    }
    for path in &args.did_docs {
        keys.add_documents(path)?;
    }
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let v = verifier(&args.checks);
    let limits = v.options().limits;
    let states = MemoryStateStore::new();
    let (mut verified, mut failed, mut skipped, mut ignored) = (0u64, 0u64, 0u64, 0u64);
    // Accounts an `#account` event said are not active, with the status
    // it gave: with `--ignore-inactive`, their `#commit` and `#sync` events
    // are ignored until an `#account` event says they are active again
    // (sync specification).
    let mut inactive: BTreeMap<String, String> = BTreeMap::new();
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_code: BTreeMap<&'static str, u64> = BTreeMap::new();
    // Warnings by code: the events' own (downgraded checks) and the
    // stream's (seq out of order).
    let mut warned: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut exit = 0u8;
    let started = Instant::now();
    let mut frames = Frames::new(&bytes, &limits);
    // Hosts number their events in increasing order: an event at or below
    // the highest number seen is a replay or a reordering. A warning, as
    // indigo's consumer only logs it; with --strict-seq the event fails
    // without being applied.
    let mut order = SeqOrder::new();
    let mut index = 0usize;
    loop {
        let offset = frames.offset();
        let Some(item) = frames.next() else { break };
        let mut about = About { index: Some(index), offset: Some(offset), ..About::default() };
        index = index.saturating_add(1);
        let decoded = item.and_then(|frame| {
            Event::from_frame(&frame, &limits)
                .inspect_err(|_| about.peek(Some(frame.header), frame.body))
        });
        let seq = decoded.as_ref().ok().and_then(Event::seq);
        let mut out_of_order = seq.and_then(|seq| order.check(seq).err());
        // With --strict-seq an event out of order fails; otherwise it is
        // verified with a warning.
        let refused = if args.strict_seq { out_of_order.take() } else { None };
        let warnings: Vec<Error> = out_of_order.into_iter().map(Error::from).collect();
        let outcome = match (decoded, refused) {
            (Ok(event), Some(e)) => {
                about = About { index: about.index, offset: about.offset, ..About::of(&event) };
                Outcome::Failed(e.into())
            }
            (Err(e), _) => Outcome::Failed(e.into()),
            (Ok(event @ (Event::Commit(_) | Event::Sync(_))), None) => {
                about = About {
                    index: about.index,
                    offset: about.offset,
                    unsigned: args.no_signature,
                    ..About::of(&event)
                };
                let did = event.did().unwrap_or_default();
                if let Some(status) = inactive.get(did) {
                    Outcome::Ignored(format!("account {status}"))
                } else if args.no_signature {
                    match v.apply_unsigned(&event, &states) {
                        Ok(ok) => Outcome::Verified(Box::new(ok)),
                        Err(e) => Outcome::Failed(e),
                    }
                } else {
                    // The keys given for this DID, then --key.
                    let candidates = keys.candidates(did, default_key.as_ref());
                    let applied = (!candidates.is_empty())
                        .then(|| v.apply_any_key(&event, &candidates, &states));
                    match applied {
                        None => Outcome::Failed(Error::NoKey { did: did.to_owned() }),
                        Some(Ok((ok, index))) => {
                            // Which key, when there was a choice.
                            if candidates.len() > 1 {
                                about.signed_by = candidates.get(index).map(PublicKey::to_did_key);
                            }
                            Outcome::Verified(Box::new(ok))
                        }
                        Some(Err(e)) => Outcome::Failed(e),
                    }
                }
            }
            (Ok(event @ (Event::Identity(_) | Event::Account(_))), None) => {
                // Checked against their schema; nothing to verify.
                about = About { index: about.index, offset: about.offset, ..About::of(&event) };
                if let Event::Account(account) = &event
                    && args.ignore_inactive
                {
                    if account.active {
                        inactive.remove(account.did);
                    } else {
                        let status = account.status.unwrap_or("inactive").to_owned();
                        inactive.insert(account.did.to_owned(), status);
                    }
                }
                Outcome::Skipped
            }
            (Ok(Event::Error { error, message }), None) => {
                about.kind = Some("error".to_owned());
                let (error, message) = (error.to_owned(), message.map(str::to_owned));
                Outcome::Failed(EventError::ErrorFrame { error, message }.into())
            }
            (Ok(other), None) => {
                about.kind = Some(other.kind().to_owned());
                Outcome::Skipped
            }
        };
        // An event refused for what it holds (malformed, failing a check,
        // missing blocks, over a limit) does not raise the highest seq:
        // no signature covers seq, and such a frame must not put every
        // later event out of order. Every other frame with a seq does
        // (verified, skipped, ignored, or failed for want of a key).
        let refused = matches!(
            &outcome,
            Outcome::Failed(e) if !matches!(e.kind(), ErrorKind::Usage | ErrorKind::Environment)
        );
        if let Some(seq) = seq
            && !refused
        {
            order.advance(seq);
        }
        let event_warnings = match &outcome {
            Outcome::Verified(v) => v.warnings(),
            _ => &[],
        };
        for w in event_warnings.iter().chain(&warnings) {
            *warned.entry(code(w)).or_default() += 1;
        }
        match &outcome {
            Outcome::Verified(_) => verified = verified.saturating_add(1),
            Outcome::Skipped => skipped = skipped.saturating_add(1),
            Outcome::Ignored(_) => ignored = ignored.saturating_add(1),
            Outcome::Failed(e) => {
                failed = failed.saturating_add(1);
                *by_kind.entry(crate::kind_name(e.kind())).or_default() += 1;
                *by_code.entry(code(e)).or_default() += 1;
                exit = exit.max(crate::code_for(e.kind()));
            }
        }
        match print(&about, &outcome, &warnings, args.checks.json) {
            Ok(()) => {}
            // The reader went away: stop reading, with what was found so
            // far (failures included) as the exit code.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(ExitCode::from(exit));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Past a frame whose end could not be found, the rest is unread.
    let (unread, stopped_at) = (frames.unread(), frames.offset());
    let elapsed = started.elapsed().as_secs_f64();
    let events = verified.saturating_add(failed);
    let rate = if elapsed > 0.0 { events as f64 / elapsed } else { 0.0 };
    let frames_seen = events.saturating_add(skipped).saturating_add(ignored);
    if args.checks.json {
        let summary = crate::sorted(json!({"summary": {
            "frames": frames_seen,
            "verified": verified,
            "failed": failed,
            "skipped": skipped,
            "ignored": ignored,
            "elapsed_secs": elapsed,
            "events_per_sec": rate,
            "failures_by_kind": by_kind,
            "failures_by_code": by_code,
            "warnings_by_code": warned,
            "signatures_checked": !args.no_signature,
            "unread_bytes": unread,
        }}));
        // The summary comes after the work: its exit code stands whether
        // or not it could be written.
        crate::side_line(format_args!("{summary}"));
    } else {
        let failures = if by_kind.is_empty() {
            "none".to_owned()
        } else {
            by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
        };
        let ignored = if ignored > 0 {
            format!(", {ignored} ignored (inactive accounts)")
        } else {
            String::new()
        };
        let unread = if unread > 0 {
            format!("; stopped at offset {stopped_at}, {unread} bytes unread")
        } else {
            String::new()
        };
        let unsigned = if args.no_signature { " (signatures not checked)" } else { "" };
        let warned = if warned.is_empty() {
            String::new()
        } else {
            let each: Vec<String> = warned.iter().map(|(k, n)| format!("{k} {n}")).collect();
            format!("; warnings: {}", each.join(", "))
        };
        crate::side_line(format_args!(
            "summary: {frames_seen} frames: {verified} verified, {failed} failed, {skipped} skipped\
             {ignored}{unsigned} in {elapsed:.3} s ({rate:.0} events/s); failures: {failures}{warned}\
             {unread}"
        ));
    }
    Ok(ExitCode::from(exit))
}
