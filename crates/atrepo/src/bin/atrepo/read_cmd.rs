//! `atrepo ls | get | stats | diff | export`: reading a repository.
//!
//! Every command verifies what it reads (block hashes, the commit's
//! encoding, every MST rule, record encodings); the signature only with
//! `--key` or `--did-doc` (a DID document, whose DID the repository must
//! also belong to). `ls`, `get`, `stats` and `export` read the whole
//! repository (`get` prints its record once all of it has verified);
//! `diff` verifies both repositories whole, then reads the subtrees that
//! differ. With `--changed-only` it reads only those: it checks both CARs'
//! block hashes and commits (and their signatures with `--key` or
//! `--did-doc`), the MST rules of the nodes it reads, and that every
//! record it lists is present and valid, but not the parts both trees
//! share (a review found `diff` exiting 0 on repositories `verify`
//! refuses when that was the default). It maps regular files
//! (memory holds an index, and each block read is hashed again, since the
//! file may change after it was indexed; a file truncated meanwhile kills
//! the process with SIGBUS, as for every mapped reader) and reads `-` or
//! a pipe whole.
//!
//! `ls` prints each record as soon as the walk has verified the path to
//! it (after the signature, with `--key` or `--did-doc`), so a repository that fails
//! later has had part of its records printed: only exit code 0 says the
//! whole repository verified. `export` writes nothing under `--out`
//! unless it did.
//!
//! # JSON output (`--json`)
//!
//! - `ls`: one line per record, `{"key": "...", "cid": "..."}`.
//! - `get`: the record in DAG-JSON conventions (`{"$link": ...}`,
//!   `{"$bytes": ...}`), always (there is no other form).
//! - `stats`: `{"did", "rev", "commit", "signature_checked", "records",
//!   "collections": {nsid: {"records", "bytes"}}, "record_bytes":
//!   {"min", "max", "total"}, "mst": {"nodes", "node_bytes", "layers"},
//!   "car": {...}}`.
//! - `diff`: `{"created": n, "updated": n, "deleted": n, "changes":
//!   [{"key", "before", "after"}], "signatures_checked": bool,
//!   "verified_whole": bool}` (`before`/`after` null when absent;
//!   `verified_whole` false with `--changed-only`).
//! - `export`: `{"records": n, "out": "..."}`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use atrepo::store::{BlockRead, Bytes, CarFileOptions, CarFileStore, IndexMode, MemoryStore};
use atrepo::verify::{Commit, PublicKey, drisl};
use atrepo::{FileSource, Record, RepoReader, SignatureCheck, StreamSource, VerifyOptions};
use clap::Args;
use serde_json::json;

use crate::input;

/// Arguments every reading command shares.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The key the commit (for `diff`, both commits) must be signed with
    /// (`did:key:z...`); without it, the signature is not checked.
    #[arg(long)]
    key: Option<String>,
    /// A DID document (JSON; `-` for standard input): the commit (for
    /// `diff`, both commits) must be signed with its #atproto key, and the
    /// repository belong to its DID.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    did_doc: Option<PathBuf>,
    /// Memory for blocks waiting to be verified, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    mem_limit: u64,
    #[command(flatten)]
    rules: crate::rules::Rules,
}

/// Whether a command uses the records' bytes, so that a stream has to keep
/// them for a second key pointing to the same record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordBytes {
    Used,
    Unused,
}

impl Common {
    /// Opens `file`: a regular file as a file (a record two keys point to
    /// is read back from it for the second); `-`, a pipe or a device as a
    /// stream whose records are kept in a scratch file when the command
    /// uses their bytes.
    fn open(&self, file: &Path, bytes: RecordBytes) -> Result<Opened> {
        let (options, _) = self.options()?;
        if input::is_regular_file(file)? {
            return Ok(Opened::File(RepoReader::from_file(file, options)?));
        }
        let input = input::open(file)?;
        let (reader, _bar) = input.with_progress();
        let options = options.keep_records(bytes == RecordBytes::Used);
        Ok(Opened::Stream(RepoReader::from_reader(reader, options)?))
    }
}

impl Common {
    /// The verification options these arguments ask for, and the key and
    /// DID they name (`--key`, or the `--did-doc` document's key and DID).
    fn options(&self) -> Result<(VerifyOptions, Signer)> {
        let options = self
            .rules
            .apply(VerifyOptions::default().memory_limit(self.mem_limit.saturating_mul(1 << 20)));
        let document = self.did_doc.as_deref().map(crate::did_doc::read_one).transpose()?;
        Ok(match (&self.key, document) {
            (Some(key), _) => {
                let key = PublicKey::from_did_key(key.trim())?;
                (options.key(key.clone()), Signer { key: Some(key), did: None })
            }
            (None, Some(doc)) => {
                let signer = Signer { key: Some(doc.key.clone()), did: Some(doc.did.clone()) };
                (options.did(doc.did).key(doc.key), signer)
            }
            (None, None) => (options.signature(SignatureCheck::Skip), Signer::default()),
        })
    }
}

/// Who must have signed: the key, and the DID when a document named it.
#[derive(Debug, Default)]
struct Signer {
    key: Option<PublicKey>,
    did: Option<String>,
}

/// A repository opened from a file or from standard input.
enum Opened {
    File(RepoReader<FileSource>),
    Stream(RepoReader<StreamSource<Box<dyn Read + Send>>>),
}

impl Opened {
    fn next_record(&mut self) -> atrepo::Result<Option<Record<'_>>> {
        match self {
            Opened::File(r) => r.next_record(),
            Opened::Stream(r) => r.next_record(),
        }
    }

    fn finish(self) -> atrepo::Result<atrepo::Report> {
        match self {
            Opened::File(r) => r.finish(),
            Opened::Stream(r) => r.finish(),
        }
    }
}

/// A record's bytes. Only a record that a second key points to can come
/// without them: past the budget for reading such records again, or one
/// that could not be kept (see `VerifyOptions::keep_records`). That is a
/// limit (exit 2), named by the record's key and CID.
fn data<'r>(record: &'r Record<'_>) -> Result<&'r Bytes> {
    record.data().ok_or_else(|| {
        let (key, cid) = (record.key().to_owned(), record.cid());
        atrepo::Error::RecordNotKept { key, cid }.into()
    })
}

/// A record's value, to print. With `--opaque-records` the record was not
/// decoded while verifying, and may fail here: that is a malformed record
/// (exit 2), named by its key and CID.
fn decoded(record: &Record<'_>) -> Result<drisl::Value> {
    drisl::Value::decode_record(data(record)?, &drisl::Limits::default()).map_err(|error| {
        let (key, cid) = (record.key().to_owned(), record.cid());
        atrepo::Error::InvalidRecord { key, cid, error }.into()
    })
}

/// `atrepo ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// The CAR file, or `-` for standard input.
    file: PathBuf,
    /// Only records of this collection (NSID).
    #[arg(long)]
    collection: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

pub(crate) fn ls(args: &LsArgs) -> Result<ExitCode> {
    let mut repo = args.common.open(&args.file, RecordBytes::Unused)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    while let Some(record) = repo.next_record()? {
        if args.collection.as_deref().is_some_and(|c| c != record.collection()) {
            continue;
        }
        if args.json {
            writeln!(
                out,
                "{}",
                crate::sorted(json!({"key": record.key(), "cid": record.cid().to_string()}))
            )?;
        } else {
            writeln!(out, "{}\t{}", record.key(), record.cid())?;
        }
    }
    repo.finish()?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `atrepo get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The CAR file, or `-` for standard input.
    file: PathBuf,
    /// The record's key, `collection/rkey`.
    #[arg(value_name = "COLLECTION/RKEY")]
    record: String,
    #[command(flatten)]
    common: Common,
}

pub(crate) fn get(args: &GetArgs) -> Result<ExitCode> {
    let mut repo = args.common.open(&args.file, RecordBytes::Used)?;
    // The whole repository is verified before the record is printed: a
    // review found `get` printing a record, exit 0, from a repository
    // whose later keys broke the tree (or repeated the key with another
    // record), when it stopped at the key.
    // A record that does not decode (with --opaque-records) is said only
    // after the rest has verified, so that a broken repository says so.
    let mut found = None;
    while let Some(record) = repo.next_record()? {
        if found.is_none() && record.key() == args.record {
            found = Some(decoded(&record).map(|value| atrepo::json::to_json(&value)));
        }
    }
    repo.finish()?;
    let Some(value) = found else { bail!("no record {} in {}", args.record, args.file.display()) };
    outln!("{:#}", crate::sorted(value?))?;
    Ok(ExitCode::SUCCESS)
}

/// `atrepo stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// The CAR file, or `-` for standard input.
    file: PathBuf,
    /// Print the statistics as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

pub(crate) fn stats(args: &StatsArgs) -> Result<ExitCode> {
    let mut repo = args.common.open(&args.file, RecordBytes::Used)?;
    let mut bytes_by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let (mut min, mut max, mut total) = (u64::MAX, 0u64, 0u64);
    while let Some(record) = repo.next_record()? {
        let size = data(&record)?.len() as u64;
        let entry = bytes_by.entry(record.collection().to_owned()).or_default();
        entry.0 += 1;
        entry.1 += size;
        min = min.min(size);
        max = max.max(size);
        total += size;
    }
    let report = repo.finish()?;
    if report.records == 0 {
        min = 0;
    }
    if args.json {
        let collections: BTreeMap<_, _> = bytes_by
            .iter()
            .map(|(c, (n, b))| (c.clone(), json!({"records": n, "bytes": b})))
            .collect();
        let out = json!({
            "did": report.did,
            "rev": report.rev,
            "commit": report.commit,
            "signature_checked": report.signature.checked,
            "records": report.records,
            "collections": collections,
            "record_bytes": {"min": min, "max": max, "total": total},
            "mst": report.mst,
            "car": report.car,
        });
        outln!("{:#}", crate::sorted(out))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", report.did)?;
    outln!("  rev        {}", report.rev)?;
    outln!("  commit     {}", report.commit)?;
    outln!("  signature  {}", if report.signature.checked { "valid" } else { "not checked" })?;
    outln!("  records    {} ({total} bytes; smallest {min}, largest {max})", report.records)?;
    let width = bytes_by.keys().map(String::len).max().unwrap_or(0);
    for (collection, (n, b)) in &bytes_by {
        outln!("    {collection:width$}  {n:>8} records  {b:>10} bytes")?;
    }
    outln!(
        "  mst        {} nodes, {} layers, {} bytes",
        report.mst.nodes,
        report.mst.layers,
        report.mst.node_bytes
    )?;
    outln!(
        "  car        {} bytes, {} blocks ({} duplicate, {} unreferenced)",
        report.car.bytes,
        report.car.blocks,
        report.car.duplicate_blocks,
        report.car.unreferenced_blocks
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `atrepo diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The earlier repository CAR, or `-` for standard input. A file is
    /// mapped, not loaded (it must not be truncated or rewritten in place
    /// meanwhile: reading a truncated map kills the process with SIGBUS);
    /// standard input or a pipe is read whole (at most --max-car-mib).
    before: PathBuf,
    /// The later repository CAR, or `-` (standard input can be read once).
    after: PathBuf,
    /// Print the changes as JSON.
    #[arg(long)]
    json: bool,
    /// Check only what the changes rest on: both commits, the subtrees
    /// that differ and the records listed, not the parts both trees share.
    /// Faster on large repositories. Without it, both repositories are
    /// first verified whole, as `verify` does (in --mem-limit each).
    #[arg(long)]
    changed_only: bool,
    #[command(flatten)]
    common: Common,
}

/// One side of a diff: a CAR's blocks, each hashed against its CID when
/// the CAR was first read.
enum Side {
    /// A regular file, mapped and indexed (48 bytes of memory per block,
    /// the blocks stay in the file). Every block read is hashed again,
    /// since the file may have changed since it was indexed.
    Mapped(CarFileStore),
    /// Standard input or a pipe, read whole into memory (at most
    /// `--max-car-mib`): its blocks, and the CAR to verify whole.
    Read(MemoryStore, Bytes),
}

impl Side {
    /// The block `cid`, confirmed to hash to it.
    fn block(&self, cid: &cid::Cid) -> atrepo::store::Result<Option<Bytes>> {
        match self {
            Side::Read(store, _) => store.get(cid),
            Side::Mapped(store) => {
                let block = store.get(cid)?;
                if let Some(bytes) = &block {
                    still_matches(store, cid, bytes)?;
                }
                Ok(block)
            }
        }
    }
}

/// Checks that a block read from the mapped file `store` still hashes to
/// `cid`: the file may have been rewritten since it was indexed.
fn still_matches(store: &CarFileStore, cid: &cid::Cid, bytes: &[u8]) -> atrepo::store::Result<()> {
    if atrepo::car::block_matches(cid, bytes) {
        return Ok(());
    }
    let what = format!(
        "block {cid} no longer hashes to its CID: {} changed while it was read",
        store.path().display()
    );
    Err(atrepo::store::Error::Corrupt { backend: "car file", what })
}

impl BlockRead for Side {
    fn get(&self, cid: &cid::Cid) -> atrepo::store::Result<Option<Bytes>> {
        self.block(cid)
    }

    fn read_with(&self, cid: &cid::Cid, f: &mut dyn FnMut(&[u8])) -> atrepo::store::Result<bool> {
        match self {
            Side::Read(store, _) => store.read_with(cid, f),
            Side::Mapped(_) => {
                let block = self.block(cid)?;
                if let Some(bytes) = &block {
                    f(bytes);
                }
                Ok(block.is_some())
            }
        }
    }

    fn scan(
        &self,
        f: &mut dyn FnMut(&cid::Cid, &[u8]) -> atrepo::store::Result<()>,
    ) -> atrepo::store::Result<()> {
        match self {
            Side::Read(store, _) => store.scan(f),
            // Hashed again, as every read of the mapped file is.
            Side::Mapped(store) => store.scan(&mut |cid, bytes| {
                still_matches(store, cid, bytes)?;
                f(cid, bytes)
            }),
        }
    }
}

/// A CAR's blocks (each hashed against its CID) and its strictly decoded
/// commit: a regular file mapped, `-` or a pipe read whole.
///
/// With `whole` (the options the repository is then verified whole with,
/// by [`verify_whole`], which hashes every block), the CAR is read without
/// hashing, so that no block is hashed twice: only the commit is, here,
/// before it is used, and a commit that does not hash is handed to the
/// whole check to say where.
fn load(
    path: &Path,
    rules: &crate::rules::Rules,
    whole: Option<&VerifyOptions>,
) -> Result<(Side, cid::Cid, Commit)> {
    let mut car = rules.car(Default::default());
    if whole.is_some() {
        car = car.unchecked();
    }
    let (root, side) = if input::is_regular_file(path)? {
        let options = CarFileOptions::default().car(car).index(IndexMode::InMemory);
        let store = CarFileStore::open_with(path, &options).map_err(|e| match e {
            // The CAR's own errors keep their class (a block that does not
            // hash to its CID is a verification failure).
            atrepo::store::Error::Car(e) => atrepo::Error::Car(*e),
            e => atrepo::Error::Store(e),
        })?;
        (store.header().root(), Side::Mapped(store))
    } else {
        let input = input::open(path)?;
        // One byte past the limit, so the reader reports the limit.
        let cap = car.limits.max_total_bytes.saturating_add(1);
        let mut bytes = Vec::new();
        input
            .reader
            .take(cap)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", input.name))?;
        let bytes = Bytes::from(bytes);
        let (header, store) = atrepo::load_car(bytes.clone(), car)?;
        (header.root(), Side::Read(store, bytes))
    };
    let commit_bytes = match &side {
        Side::Mapped(store) => store.get(&root)?,
        Side::Read(store, _) => store.get(&root)?,
    };
    let commit_bytes = commit_bytes.ok_or(atrepo::Error::MissingCommit { cid: root })?;
    if !atrepo::car::block_matches(&root, &commit_bytes) {
        if let Some(options) = whole {
            verify_whole(&side, path, &root, options.clone())?;
        }
        // Hashed when read (or by the whole check just now): the file
        // changed since.
        let what = format!("commit {root} no longer hashes to its CID: {} changed", path.display());
        return Err(atrepo::store::Error::Corrupt { backend: "car file", what }.into());
    }
    let commit =
        Commit::decode_block(&root, &commit_bytes, &rules.commit()).map_err(atrepo::Error::from)?;
    Ok((side, root, commit))
}

/// Checks that the record `cid` that `key` holds in `store` is there and,
/// unless records are opaque, strict DRISL of the data model.
fn check_listed(store: &Side, key: &str, cid: cid::Cid, opaque: bool) -> Result<()> {
    let Some(bytes) = store.get(&cid)? else {
        let missing = atrepo::mst::Error::MissingRecord { key: key.to_owned(), cid };
        return Err(atrepo::Error::from(missing).into());
    };
    if !opaque && let Err(error) = drisl::validate_record(&bytes, &drisl::Limits::default()) {
        return Err(atrepo::Error::InvalidRecord { key: key.to_owned(), cid, error }.into());
    }
    Ok(())
}

/// Verifies `side`'s repository whole with `options`: from the file read
/// again (by the threaded file reader), or from the bytes read. The file
/// must still hold the commit its index found, so that the blocks `diff`
/// reads from the index (each hashed again) belong to the tree verified.
fn verify_whole(side: &Side, path: &Path, root: &cid::Cid, options: VerifyOptions) -> Result<()> {
    let context = || format!("verifying {}", path.display());
    let report = match side {
        Side::Mapped(_) => RepoReader::from_file(path, options).and_then(RepoReader::finish),
        Side::Read(_, bytes) => atrepo::verify_repo(bytes.clone(), options),
    };
    let report = report.with_context(context)?;
    if report.commit != root.to_string() {
        let what = format!(
            "{} changed while it was read: its commit was {root}, then {}",
            path.display(),
            report.commit
        );
        return Err(atrepo::store::Error::Corrupt { backend: "car file", what }.into());
    }
    Ok(())
}

pub(crate) fn diff(args: &DiffArgs) -> Result<ExitCode> {
    let rules = &args.common.rules;
    let (options, Signer { key, did }) = args.common.options()?;
    let whole = (!args.changed_only).then_some(&options);
    let (a, root_a, commit_a) = load(&args.before, rules, whole)?;
    let (b, root_b, commit_b) = load(&args.after, rules, whole)?;
    if commit_a.did() != commit_b.did() {
        eprintln!(
            "warning: the repositories are of different accounts: {} and {}",
            commit_a.did(),
            commit_b.did()
        );
    }
    for (path, commit) in [(&args.before, &commit_a), (&args.after, &commit_b)] {
        let context = || format!("the commit of {}", path.display());
        if let Some(did) = did.as_ref().filter(|did| **did != commit.did()) {
            let found = commit.did().to_owned();
            let mismatch = atrepo::Error::DidMismatch { expected: did.clone(), found };
            return Err(anyhow::Error::new(mismatch).context(context()));
        }
        if let Some(key) = &key {
            commit.verify(key).map_err(atrepo::Error::from).with_context(context)?;
        }
        // As the whole check does, after the signature (`--changed-only`
        // has only this one).
        if let Some(rev) = commit.rev() {
            rev.check_not_future(&atrepo::verify::SystemClock, options.future_tolerance)
                .map_err(atrepo::Error::from)
                .with_context(context)?;
        }
    }
    if let Some(options) = whole {
        for (side, path, root) in [(&a, &args.before, &root_a), (&b, &args.after, &root_b)] {
            verify_whole(side, path, root, options.clone())?;
        }
    }
    let (changes, _) =
        atrepo::mst::diff(&a, *commit_a.data(), &b, *commit_b.data(), rules.keys(), &rules.mst())
            .map_err(atrepo::Error::from)?;
    // The records listed: present in their CAR, and valid.
    let opaque = rules.opaque_records();
    for c in &changes {
        if let Some(before) = c.before {
            check_listed(&a, &c.key, before, opaque)?;
        }
        if let Some(after) = c.after {
            check_listed(&b, &c.key, after, opaque)?;
        }
    }
    let created = changes.iter().filter(|c| c.before.is_none()).count();
    let deleted = changes.iter().filter(|c| c.after.is_none()).count();
    let updated = changes.len() - created - deleted;
    if args.json {
        let list: Vec<_> = changes
            .iter()
            .map(|c| {
                json!({
                    "key": c.key,
                    "before": c.before.map(|c| c.to_string()),
                    "after": c.after.map(|c| c.to_string()),
                })
            })
            .collect();
        let out = json!({
            "created": created,
            "updated": updated,
            "deleted": deleted,
            "changes": list,
            "signatures_checked": key.is_some(),
            "verified_whole": whole.is_some(),
        });
        outln!("{:#}", crate::sorted(out))?;
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for c in &changes {
        match (c.before, c.after) {
            (None, Some(after)) => writeln!(out, "+ {}\t{after}", c.key)?,
            (Some(before), None) => writeln!(out, "- {}\t{before}", c.key)?,
            (Some(before), Some(after)) => writeln!(out, "~ {}\t{before} -> {after}", c.key)?,
            (None, None) => {}
        }
    }
    // What exit code 0 vouches for, as `stats` says of the signature.
    let unchecked = match (key.is_some(), whole.is_some()) {
        (true, true) => "",
        (false, true) => " (signatures not checked)",
        (true, false) => " (only the changes checked)",
        (false, false) => " (only the changes checked, signatures not checked)",
    };
    writeln!(out, "{created} created, {updated} updated, {deleted} deleted{unchecked}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `atrepo export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The CAR file, or `-` for standard input.
    file: PathBuf,
    /// A folder, absent or empty (one `collection/rkey.json` file per
    /// record; a name over 255 bytes, which long record keys can make, is
    /// refused), or a file ending in `.jsonl` (one `{"key", "cid",
    /// "record"}` line per record). Written under a temporary name (beside
    /// it, or inside an existing empty folder) and moved there only once
    /// the whole repository has verified.
    #[arg(long)]
    out: PathBuf,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

/// The longest file name `export` writes, in bytes: what ext4, XFS, btrfs,
/// APFS and NTFS (in UTF-16 units) allow.
const NAME_MAX: usize = 255;

/// Whether `part` is a single ordinary file name on this platform (not
/// empty, `.`, `..`, a root or a drive prefix).
fn plain_name(part: &str) -> bool {
    let mut components = Path::new(part).components();
    matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(name)), None) if name == part
    )
}

/// Where `export` writes until the repository has verified whole, moved to
/// `--out` only then: a repository that fails half-way (a bad block, a
/// broken MST rule, a record key that cannot be a file name) leaves
/// nothing under `--out`, where records of an unverified repository would
/// otherwise pass for an export. What it wrote is removed on the way out
/// (a killed process leaves a hidden temporary name, `.NAME.atrepo-export.*`
/// beside `--out` or `.atrepo-export.*` inside it).
///
/// - A `.jsonl` file: a new file beside it, renamed over it.
/// - A folder that does not exist: a new folder beside it, renamed to it.
/// - An existing empty folder (a mount point, say, which cannot be
///   replaced): a new folder inside it, whose entries move up into it.
///   What a killed export left in it (`.atrepo-export.*`) makes it not
///   empty (it may be an export still running), and the error names it.
///
/// A `.jsonl` file is made as any new file is (mode 0666 less the umask),
/// not with a temporary file's 0600; one that replaces a file keeps that
/// file's permissions.
///
/// Temporary names are random and made with `O_EXCL`, so a link planted
/// at a guessed name is never followed. An existing `--out` that is a
/// symbolic link is resolved first; what it points to is written.
enum Staged {
    File { temp: tempfile::NamedTempFile, out: PathBuf },
    NewFolder { temp: tempfile::TempDir, out: PathBuf },
    Inside { temp: tempfile::TempDir, out: PathBuf },
}

impl Staged {
    /// Makes the temporary file or folder for `out` (a folder unless
    /// `jsonl`), after checking that an existing folder `out` is empty: an
    /// export is never mixed into the files of another one.
    fn new(out: &Path, jsonl: bool) -> Result<Self> {
        let exists = fs::symlink_metadata(out).is_ok();
        // Resolved: `.`, a trailing slash, a link to a folder.
        let out = if exists {
            fs::canonicalize(out).with_context(|| format!("cannot resolve {}", out.display()))?
        } else {
            out.to_owned()
        };
        let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            bail!("--out {} names no file or folder", out.display());
        };
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        if !exists {
            fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let prefix = format!(".{name}.atrepo-export.");
        let mut beside = tempfile::Builder::new();
        beside.prefix(&prefix);
        if jsonl {
            if exists && out.is_dir() {
                bail!("{} is a folder, not a .jsonl file", out.display());
            }
            // Made as any new file is (0666 less the umask), not 0600 as
            // temporary files are: it becomes the export.
            #[cfg(unix)]
            beside.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let temp = beside
                .tempfile_in(&parent)
                .with_context(|| format!("cannot create a file in {}", parent.display()))?;
            if exists {
                let kept = fs::metadata(&out)?.permissions();
                fs::set_permissions(temp.path(), kept).with_context(|| {
                    format!("cannot set permissions on {}", temp.path().display())
                })?;
            }
            return Ok(Staged::File { temp, out });
        }
        if !exists {
            let temp = beside
                .tempdir_in(&parent)
                .with_context(|| format!("cannot create a folder in {}", parent.display()))?;
            return Ok(Staged::NewFolder { temp, out });
        }
        let mut entries =
            fs::read_dir(&out).with_context(|| format!("cannot list {}", out.display()))?;
        if let Some(entry) = entries.next() {
            // What an export that did not finish left inside (or one still
            // running: it works as a lock) is named, with what to do.
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with(".atrepo-export.") {
                bail!(
                    "{} holds {name}, left by an export that did not finish (or one still \
                     running): remove it, then export again",
                    out.display()
                );
            }
            bail!(
                "{} exists and is not empty: export writes a new folder (remove it or name \
                 another)",
                out.display()
            );
        }
        let temp = tempfile::Builder::new()
            .prefix(".atrepo-export.")
            .tempdir_in(&out)
            .with_context(|| format!("cannot create a folder in {}", out.display()))?;
        Ok(Staged::Inside { temp, out })
    }

    /// Where records are written now: the temporary file or folder.
    fn path(&self) -> &Path {
        match self {
            Staged::File { temp, .. } => temp.path(),
            Staged::NewFolder { temp, .. } | Staged::Inside { temp, .. } => temp.path(),
        }
    }

    /// Moves the finished export to `--out`.
    fn finish(self) -> Result<()> {
        match self {
            Staged::File { temp, out } => {
                temp.persist(&out).with_context(|| format!("cannot write {}", out.display()))?;
            }
            Staged::NewFolder { temp, out } => {
                // Kept from here on: it becomes `out`, or stays to be
                // looked at if that fails.
                let temp = temp.keep();
                fs::rename(&temp, &out).with_context(|| {
                    format!("cannot move {} to {}", temp.display(), out.display())
                })?;
            }
            Staged::Inside { temp, out } => {
                // One rename per collection: a failure among them (an I/O
                // error, after the whole verification) leaves the ones
                // moved so far, and says so.
                for entry in fs::read_dir(temp.path())? {
                    let entry = entry?;
                    let to = out.join(entry.file_name());
                    fs::rename(entry.path(), &to)
                        .with_context(|| format!("cannot move a folder to {}", to.display()))?;
                }
                temp.close()?;
            }
        }
        Ok(())
    }
}

pub(crate) fn export(args: &ExportArgs) -> Result<ExitCode> {
    let jsonl = args.out.extension().is_some_and(|e| e == "jsonl");
    let staged = Staged::new(&args.out, jsonl)?;
    let mut repo = args.common.open(&args.file, RecordBytes::Used)?;
    let mut lines = match &staged {
        Staged::File { temp, .. } => Some(BufWriter::new(temp.as_file().try_clone()?)),
        _ => None,
    };
    let mut count = 0u64;
    let mut last: Option<(cid::Cid, serde_json::Value)> = None;
    // The collection whose folder was made last: records come in key
    // order, so each collection's records come together.
    let mut folder_of: Option<String> = None;
    while let Some(record) = repo.next_record()? {
        let json = match &last {
            // The same record as the key before: decoded already.
            Some((cid, json)) if *cid == record.cid() => json.clone(),
            _ => crate::sorted(atrepo::json::to_json(&decoded(&record)?)),
        };
        if let Some(lines) = lines.as_mut() {
            // The record is sorted already; its line's keys are written in
            // order, which both map kinds keep (sorting it again would sort
            // the record again).
            let line =
                json!({"cid": record.cid().to_string(), "key": record.key(), "record": json});
            writeln!(lines, "{line}")?;
        } else {
            // Each part must be one plain file name here: a lax path may
            // be `..` or `.`, and on Windows a part with a drive prefix
            // (`C:x`, which strict record keys allow) would replace the
            // folder instead of joining it.
            let (collection, file) = (record.collection(), format!("{}.json", record.rkey()));
            if !plain_name(collection) || !plain_name(&file) {
                bail!(
                    "record key {:?} cannot be written as a file under {}",
                    record.key(),
                    args.out.display()
                );
            }
            // Record keys may be 512 characters and collections 317, but
            // most file systems cap a name at 255 bytes: say so, and how
            // to export such a repository, rather than "File name too
            // long" from the first file that fails.
            if let Some(long) = [collection, file.as_str()].into_iter().find(|n| n.len() > NAME_MAX)
            {
                let start: String = long.chars().take(40).collect();
                bail!(
                    "record key {:?} cannot be written as a file under {}: the name \
                     {start:?}... is {} bytes, more than the {NAME_MAX} most file systems \
                     allow (export to a .jsonl file instead)",
                    record.key(),
                    args.out.display(),
                    long.len()
                );
            }
            // A folder or file that exists already was made for another
            // collection or record key: the file system does not tell
            // their names apart (case, or Unicode normalization), and
            // writing on would mix or overwrite records.
            let clash = |what: &str, path: &Path| {
                anyhow::anyhow!(
                    "record key {:?}: {what} {} exists already for another key; this file \
                     system does not tell apart names that differ only in case or Unicode \
                     normalization (export to a .jsonl file instead)",
                    record.key(),
                    path.display()
                )
            };
            let dir = staged.path().join(collection);
            if folder_of.as_deref() != Some(collection) {
                match fs::create_dir(&dir) {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(clash("folder", &args.out.join(collection)));
                    }
                    made => made.with_context(|| format!("cannot create {}", dir.display()))?,
                }
                folder_of = Some(collection.to_owned());
            }
            let path = dir.join(&file);
            let mut out = match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(clash("file", &args.out.join(collection).join(&file)));
                }
                opened => opened.with_context(|| format!("cannot create {}", path.display()))?,
            };
            out.write_all(format!("{json:#}").as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        last = Some((record.cid(), json));
        count += 1;
    }
    repo.finish()?;
    if let Some(mut lines) = lines {
        // Flushed and let go of before the file moves.
        lines.flush()?;
    }
    staged.finish()?;
    // The export is in place: a summary that cannot be written does not
    // undo it (a retry would find the folder taken).
    if args.json {
        let summary = json!({"records": count, "out": args.out.display().to_string()});
        crate::side_line(format_args!("{}", crate::sorted(summary)));
    } else {
        crate::side_line(format_args!("exported {count} records to {}", args.out.display()));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{Side, check_listed, load, plain_name};
    use clap::Parser;

    #[derive(Parser)]
    struct WithRules {
        #[command(flatten)]
        rules: crate::rules::Rules,
    }

    /// `diff` maps its files and indexes them once, hashing every block;
    /// a block it reads later is hashed again, so a file rewritten in
    /// between cannot slip other bytes in.
    #[test]
    fn a_mapped_side_rehashes_what_it_reads() {
        use atrepo::generate::{GenOptions, generate};
        use std::io::{Seek, SeekFrom, Write};

        let generated = generate(&GenOptions::default().records(5)).unwrap();
        let car = generated.writer.to_car(&generated.key, generated.rev).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.car");
        std::fs::write(&path, &car).unwrap();
        let rules = WithRules::parse_from(["t"]).rules;
        let (side, _, _) = load(&path, &rules, None).unwrap();
        assert!(matches!(side, Side::Mapped(_)));
        let options = atrepo::VerifyOptions::default().signature(atrepo::SignatureCheck::Skip);
        let mut reader = atrepo::RepoReader::from_bytes(car.clone(), options).unwrap();
        let record = reader.next_record().unwrap().unwrap();
        let (key, cid) = (record.key().to_owned(), record.cid());
        check_listed(&side, &key, cid, false).unwrap();

        // Flip the record's last byte in place: the map sees the new bytes.
        let block = atrepo::store::BlockRead::get(&side, &cid).unwrap().unwrap();
        let at = car.windows(block.len()).position(|w| w == &block[..]).unwrap() + block.len() - 1;
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(at as u64)).unwrap();
        file.write_all(&[car[at] ^ 1]).unwrap();
        file.sync_all().unwrap();
        let error = check_listed(&side, &key, cid, false).unwrap_err().to_string();
        assert!(error.contains("changed while it was read"), "{error}");
        assert!(error.contains(&cid.to_string()), "{error}");
    }

    #[test]
    fn only_plain_names_become_files() {
        for name in ["app.bsky.feed.post", "3jzfcijpj2z2a.json", "...json", "..json"] {
            assert!(plain_name(name), "{name}");
        }
        for name in ["", ".", "..", "a/b", "/a", "../a"] {
            assert!(!plain_name(name), "{name}");
        }
        // Record keys may hold `:`: a plain name on Unix, a drive prefix
        // on Windows.
        #[cfg(unix)]
        assert!(plain_name("C:evil.json"));
        #[cfg(windows)]
        assert!(!plain_name("C:evil.json"));
    }
}
