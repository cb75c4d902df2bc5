//! Repository verification: a whole repository CAR, checked end to end,
//! its records streamed in key order.
//!
//! Layout: [`Engine`](engine) is the sans-IO core (every check lives
//! there); the drivers here feed it from a byte slice, a
//! `std::io::Read`, or (with the `tokio` feature) a tokio `AsyncRead`.
//! Blocks wait in a [`Buffer`](buffer) from the moment they are read until
//! the walk reaches them, and are dropped once used.

mod buffer;
mod engine;
mod notes;
mod options;
mod report;
mod scratch;
mod segment;
mod taken;

use std::io::Read;

use atrepo_car::{CarReader, Decoder, Header, Status};
use atrepo_store::{Bytes, MemoryStore};
use atrepo_verify::{Commit, KeyResolver, PublicKey};
use cid::Cid;

use self::buffer::Arrived;
use self::engine::{Engine, Poll};
use crate::error::{Error, Result};

pub use self::options::{RecordCheck, SignatureCheck, VerifyOptions};
pub use self::report::{
    CarReport, MemoryReport, MstReport, OwnedRecord, Record, Report, SignatureReport,
};

mod sealed {
    pub trait Sealed {}
}

/// Where a [`RepoReader`] gets its blocks: a byte slice ([`SliceSource`])
/// or a `std::io::Read` ([`StreamSource`]). Sealed.
pub trait BlockSource: sealed::Sealed {
    /// The next block, its CID already checked, how many CAR bytes its
    /// section took, and the absolute offset where the section ends; `None`
    /// at the clean end of the CAR.
    fn next_block(&mut self) -> Result<Option<(Cid, Bytes, u64, u64)>>;

    /// The next blocks as a whole batch, for a source that reads in
    /// batches (the threaded reader): `Ok(None)` if this source hands out
    /// blocks one at a time only, an empty batch at the clean end of the
    /// CAR.
    #[doc(hidden)]
    fn next_batch(&mut self) -> Result<Option<Vec<Arrived>>> {
        Ok(None)
    }

    /// Whether this source checks records itself (see
    /// [`invalid`](Self::invalid)), so the verifier need not: every
    /// dag-cbor block but those shaped like MST nodes, which the verifier
    /// checks if they turn out to be records.
    #[doc(hidden)]
    fn checks_records(&self) -> bool {
        false
    }

    /// The record check failures of the blocks handed out so far, if this
    /// source checks records (each block's failure comes no later than the
    /// block).
    #[doc(hidden)]
    fn invalid(&mut self) -> Vec<(Cid, atrepo_verify::drisl::DecodeError)> {
        Vec::new()
    }
}

/// Blocks from a CAR held in memory, handed out as views of it (no copy).
#[derive(Debug)]
pub struct SliceSource {
    bytes: Bytes,
    pos: usize,
    decoder: Decoder,
}

impl sealed::Sealed for SliceSource {}

impl BlockSource for SliceSource {
    fn next_block(&mut self) -> Result<Option<(Cid, Bytes, u64, u64)>> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        match self.decoder.decode(rest, true)? {
            Status::Frame { frame, consumed } => {
                let end = self.pos.saturating_add(consumed);
                let start = end.saturating_sub(frame.data.len());
                let cid = frame.cid;
                self.pos = end;
                Ok(Some((cid, self.bytes.slice(start..end), consumed as u64, end as u64)))
            }
            // The header was read when the source was made, and with
            // `eof = true` the decoder never asks for more input.
            Status::End | Status::Header { .. } | Status::Partial { .. } => Ok(None),
        }
    }
}

impl SliceSource {
    fn open(bytes: Bytes, options: atrepo_car::Options) -> Result<(Self, Header, u64)> {
        let mut decoder = Decoder::new(options);
        match decoder.decode(&bytes, true)? {
            Status::Header { header, consumed } => {
                Ok((SliceSource { bytes, pos: consumed, decoder }, header, consumed as u64))
            }
            _ => Err(Error::Usage("a CAR decoder starts with the header".to_owned())),
        }
    }
}

/// Blocks from a CAR read from a `std::io::Read`.
#[derive(Debug)]
pub struct StreamSource<R> {
    reader: CarReader<R>,
}

impl<R> sealed::Sealed for StreamSource<R> {}

impl<R: Read> BlockSource for StreamSource<R> {
    fn next_block(&mut self) -> Result<Option<(Cid, Bytes, u64, u64)>> {
        let before = self.reader.offset();
        Ok(self.reader.next_block()?.map(|block| {
            let end = self.reader.offset();
            (block.cid, block.data, end.saturating_sub(before), end)
        }))
    }
}

/// Blocks read, framed and hashed on a second thread, handed over in
/// batches: the verifying thread then spends its time on the tree while the
/// other reads and hashes.
///
/// With strict record checks, the source checks every dag-cbor block as a
/// record, except blocks shaped like MST nodes (which the walk decodes
/// strictly, and the engine checks itself if a key points to one as a
/// record), and hands the engine only the failures. The checks go to
/// whichever thread has time: the reading thread checks a batch only when
/// the verifying thread has batches waiting (it is the slower one);
/// otherwise the batch goes out unchecked and the verifying thread checks
/// it on arrival. Either way each block is checked once, and its failure
/// arrives no later than the block.
#[derive(Debug)]
pub struct ThreadedSource {
    batches: std::sync::mpsc::Receiver<Result<ThreadBatch>>,
    current: std::vec::IntoIter<Arrived>,
    invalid: Vec<(Cid, atrepo_verify::drisl::DecodeError)>,
    limits: Option<atrepo_verify::drisl::Limits>,
    /// Batches sent and not yet received.
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Default)]
struct ThreadBatch {
    blocks: Vec<Arrived>,
    invalid: Vec<(Cid, atrepo_verify::drisl::DecodeError)>,
    /// Whether the reading thread checked the records of this batch.
    checked: bool,
}

/// Checks the blocks of `blocks` that [`engine::checked_upstream`] names as
/// records, adding failures to `invalid`.
fn check_records(
    blocks: &[Arrived],
    limits: &atrepo_verify::drisl::Limits,
    invalid: &mut Vec<(Cid, atrepo_verify::drisl::DecodeError)>,
) {
    for (cid, data, _, _) in blocks {
        if engine::checked_upstream(cid, data)
            && let Err(e) = atrepo_verify::drisl::validate_record(data, limits)
        {
            invalid.push((*cid, e));
        }
    }
}

impl sealed::Sealed for ThreadedSource {}

impl ThreadedSource {
    /// The next batch that has blocks, its records checked and their
    /// failures noted; `None` once the reading thread has ended.
    fn receive(&mut self) -> Result<Option<Vec<Arrived>>> {
        loop {
            match self.batches.recv() {
                Ok(batch) => {
                    self.waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    let batch = batch?;
                    self.invalid.extend(batch.invalid);
                    if let Some(limits) = &self.limits
                        && !batch.checked
                    {
                        check_records(&batch.blocks, limits, &mut self.invalid);
                    }
                    // An empty batch may still be followed by an error.
                    if !batch.blocks.is_empty() {
                        return Ok(Some(batch.blocks));
                    }
                }
                // The reading thread ends after the last block or an error.
                Err(_) => return Ok(None),
            }
        }
    }
}

impl BlockSource for ThreadedSource {
    fn next_block(&mut self) -> Result<Option<(Cid, Bytes, u64, u64)>> {
        loop {
            if let Some(block) = self.current.next() {
                return Ok(Some(block));
            }
            match self.receive()? {
                Some(blocks) => self.current = blocks.into_iter(),
                None => return Ok(None),
            }
        }
    }

    fn next_batch(&mut self) -> Result<Option<Vec<Arrived>>> {
        // Blocks left over from `next_block` go first.
        if self.current.len() > 0 {
            return Ok(Some(self.current.by_ref().collect()));
        }
        Ok(Some(self.receive()?.unwrap_or_default()))
    }

    fn checks_records(&self) -> bool {
        self.limits.is_some()
    }

    fn invalid(&mut self) -> Vec<(Cid, atrepo_verify::drisl::DecodeError)> {
        std::mem::take(&mut self.invalid)
    }
}

/// Which thread of a [`ThreadedSource`] checks records.
#[derive(Debug, Clone, Copy)]
enum Split {
    /// Whichever has time (see [`ThreadedSource`]).
    Balance,
    /// Always the reading thread (tests).
    #[cfg_attr(not(test), allow(dead_code, reason = "forced in tests"))]
    Reader,
    /// Always the verifying thread (tests).
    #[cfg_attr(not(test), allow(dead_code, reason = "forced in tests"))]
    Verifier,
}

/// Blocks per batch handed from the reading thread.
const THREAD_BATCH_BLOCKS: usize = 512;
/// A batch also ends once its blocks hold this many bytes: with blocks of
/// up to 2 MiB, a count alone let the read-ahead reach gigabytes
/// (`tests/bounds.rs`).
const THREAD_BATCH_BYTES: usize = 1024 * 1024;
/// Batches that may wait between the threads: bounds the read-ahead (with
/// the batch being filled and the one being used, four batches of at most
/// 1 MiB plus one block; four waiting batches of 2 MiB blocks put the
/// threaded reader over the limit + 16 MiB bound of `tests/bounds.rs`).
const THREAD_QUEUE: usize = 2;

impl ThreadedSource {
    fn spawn<R: Read + Send + 'static>(reader: CarReader<R>, records: RecordCheck) -> Result<Self> {
        Self::spawn_with(reader, records, Split::Balance)
    }

    fn spawn_with<R: Read + Send + 'static>(
        mut reader: CarReader<R>,
        records: RecordCheck,
        split: Split,
    ) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(THREAD_QUEUE);
        let limits = match records {
            RecordCheck::Strict(limits) => Some(limits),
            RecordCheck::Opaque => None,
        };
        let waiting = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let queued = std::sync::Arc::clone(&waiting);
        std::thread::Builder::new().name("atrepo-car-reader".to_owned()).spawn(move || {
            loop {
                let mut batch = ThreadBatch::default();
                // A constant, not from input: growing by doubling copied
                // each batch's entries (100+ bytes each) several times.
                batch.blocks.reserve_exact(THREAD_BATCH_BLOCKS);
                let mut end = false;
                let mut batch_bytes = 0usize;
                let mut error = None;
                while batch.blocks.len() < THREAD_BATCH_BLOCKS && batch_bytes < THREAD_BATCH_BYTES {
                    let before = reader.offset();
                    match reader.next_block() {
                        Ok(Some(block)) => {
                            let end = reader.offset();
                            let section = end.saturating_sub(before);
                            batch_bytes = batch_bytes.saturating_add(block.data.len());
                            batch.blocks.push((block.cid, block.data, section, end));
                        }
                        Ok(None) => {
                            end = true;
                            break;
                        }
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                // Check here only if the verifying thread is behind (it has
                // a batch waiting); else leave it the work.
                let here = match split {
                    Split::Balance => queued.load(std::sync::atomic::Ordering::Relaxed) > 0,
                    Split::Reader => true,
                    Split::Verifier => false,
                };
                if let Some(limits) = &limits
                    && here
                {
                    check_records(&batch.blocks, limits, &mut batch.invalid);
                    batch.checked = true;
                }
                queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // A closed channel means the reader was dropped: stop.
                if tx.send(Ok(batch)).is_err() || end {
                    return;
                }
                if let Some(e) = error {
                    queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = tx.send(Err(e.into()));
                    return;
                }
            }
        })?;
        Ok(ThreadedSource {
            batches: rx,
            current: Vec::new().into_iter(),
            invalid: Vec::new(),
            limits,
            waiting,
        })
    }
}

/// Verifies a repository CAR and streams its records, in key order.
///
/// Opening reads up to the commit block and checks it (strict encoding,
/// DID; if a key was given, the signature and then the rev against the
/// clock; the rev alone if the signature check is skipped). With a key
/// given later, [`verify_signature`](Self::verify_signature) checks the
/// signature and then the rev. Records then come one
/// at a time from [`next_record`](Self::next_record), each one verified
/// before it is returned: the block hashes, the MST rules on the path to
/// it, the record's encoding. [`finish`](Self::finish) reads the rest of
/// the CAR and returns the [`Report`]; only then is the whole repository
/// known to be complete and the CAR well-formed.
///
/// Blocks in the streamable order (the commit, then MST nodes in pre-order
/// with each record after its entry) pass through a buffer of a few blocks;
/// in any other order they wait in the buffer until needed, up to the
/// memory limit, then on disk (see [`VerifyOptions::spill`]).
///
/// ```
/// use atrepo::{RepoReader, VerifyOptions, writer::RepoWriter};
/// use atrepo::verify::{Curve, SigningKey, Tid, drisl::Value};
///
/// let key = SigningKey::from_seed(Curve::K256, b"example")?;
/// let mut writer = RepoWriter::new("did:plc:ewvi7nxzyoun6zhxrhs64oiz");
/// let like = Value::Map([("$type".to_owned(), Value::String("app.bsky.feed.like".into()))].into());
/// writer.insert_value("app.bsky.feed.like/3jzfcijpj2z2a", &like)?;
/// let car = writer.to_car(&key, Tid::from_parts(1_700_000_000_000_000, 0).unwrap())?;
///
/// let options = VerifyOptions::default().key(key.public_key());
/// let mut reader = RepoReader::from_bytes(car, options)?;
/// assert_eq!(reader.commit().did(), "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
/// while let Some(record) = reader.next_record()? {
///     assert_eq!(record.collection(), "app.bsky.feed.like");
/// }
/// let report = reader.finish()?;
/// assert_eq!(report.records, 1);
/// assert!(report.signature.checked);
/// # Ok::<(), atrepo::Error>(())
/// ```
pub struct RepoReader<S> {
    source: S,
    engine: Engine,
    commit: Commit,
    failed: bool,
}

impl<S> std::fmt::Debug for RepoReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoReader").field("commit", &self.engine.commit_cid()).finish()
    }
}

impl RepoReader<SliceSource> {
    /// Opens a repository CAR held in memory. Records are views of `bytes`.
    pub fn from_bytes(bytes: impl Into<Bytes>, options: VerifyOptions) -> Result<Self> {
        let bytes: Bytes = bytes.into();
        let whole = bytes.clone();
        let (source, header, header_len) = SliceSource::open(bytes, options.car)?;
        // Views are in place before the first block arrives (the commit
        // may come last).
        Self::open_with(source, &header, header_len, options, Input::Whole(whole))
    }
}

impl<R: Read> RepoReader<StreamSource<R>> {
    /// Opens a repository CAR read from `reader`.
    pub fn from_reader(reader: R, options: VerifyOptions) -> Result<Self> {
        let reader = CarReader::with_options(reader, options.car)?;
        let header_len = reader.offset();
        let header = reader.header().clone();
        Self::open(StreamSource { reader }, &header, header_len, options)
    }
}

/// Either of the file sources [`RepoReader::from_file`] picks.
#[derive(Debug)]
pub enum FileSource {
    /// A small file, read on this thread.
    Direct(StreamSource<std::fs::File>),
    /// A big file, read and hashed on a second thread.
    Threaded(ThreadedSource),
}

impl sealed::Sealed for FileSource {}

impl BlockSource for FileSource {
    fn next_block(&mut self) -> Result<Option<(Cid, Bytes, u64, u64)>> {
        match self {
            FileSource::Direct(s) => s.next_block(),
            FileSource::Threaded(s) => s.next_block(),
        }
    }
    fn next_batch(&mut self) -> Result<Option<Vec<Arrived>>> {
        match self {
            FileSource::Direct(s) => s.next_batch(),
            FileSource::Threaded(s) => s.next_batch(),
        }
    }
    fn checks_records(&self) -> bool {
        match self {
            FileSource::Direct(s) => s.checks_records(),
            FileSource::Threaded(s) => s.checks_records(),
        }
    }
    fn invalid(&mut self) -> Vec<(Cid, atrepo_verify::drisl::DecodeError)> {
        match self {
            FileSource::Direct(s) => s.invalid(),
            FileSource::Threaded(s) => s.invalid(),
        }
    }
}

impl RepoReader<FileSource> {
    /// Opens a repository CAR file.
    ///
    /// Files of at least [`THREADED_MIN_BYTES`] are read and hashed on a
    /// second thread. Past the memory limit, blocks are not copied anywhere:
    /// the reader notes where they are in the file and reads them back (and
    /// re-checks their hashes) when the walk needs them, so a file in any
    /// block order verifies in memory bounded by 20 to 80 bytes per block
    /// waiting (and, past the memory limit, in the spill store).
    ///
    /// With the `car` feature (on in the command line) the file is also
    /// mapped into memory, and every block that waits is kept as its
    /// position only and viewed in the map (hashed again) when needed: no
    /// copies, whatever the order. As with every memory-mapping reader, the
    /// file must not be truncated while it is being verified (the kernel
    /// then stops the process with SIGBUS); other changes are caught by
    /// the hash checks.
    ///
    /// A path that is not a regular file (a named pipe, `/dev/stdin`, a
    /// device) cannot be mapped or read again at an offset: it is read as
    /// a stream, as [`from_reader`](RepoReader::from_reader) reads one.
    pub fn from_file(path: impl AsRef<std::path::Path>, options: VerifyOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        let reader = CarReader::with_options(file, options.car)?;
        let header_len = reader.offset();
        let header = reader.header().clone();
        if !meta.is_file() {
            let source = FileSource::Direct(StreamSource { reader });
            return Self::open_with(source, &header, header_len, options, Input::Stream);
        }
        // A second handle with its own position, for reading blocks back.
        let random = std::sync::Arc::new(std::fs::File::open(path)?);
        let size = meta.len();
        let source = if size >= THREADED_MIN_BYTES {
            FileSource::Threaded(ThreadedSource::spawn(reader, options.records)?)
        } else {
            FileSource::Direct(StreamSource { reader })
        };
        // With the `car` feature, blocks that wait are viewed in a map of
        // the file (positions only, re-hashed when viewed) instead of copied
        // into memory; without it, or if the file cannot be mapped, they
        // are copied, and read back past the memory limit.
        #[cfg(feature = "car")]
        let map = atrepo_store::map_file(&random).ok();
        #[cfg(not(feature = "car"))]
        let map = None;
        Self::open_with(source, &header, header_len, options, Input::File(random, map))
    }
}

impl RepoReader<ThreadedSource> {
    /// Opens a repository CAR read from `reader` on a second thread, which
    /// reads, frames and hashes blocks while this one verifies the tree and
    /// the records. Worth it for inputs of a few MiB and more.
    pub fn from_reader_threaded<R: Read + Send + 'static>(
        reader: R,
        options: VerifyOptions,
    ) -> Result<Self> {
        let reader = CarReader::with_options(reader, options.car)?;
        let header_len = reader.offset();
        let header = reader.header().clone();
        let source = ThreadedSource::spawn(reader, options.records)?;
        Self::open(source, &header, header_len, options)
    }
}

/// What the buffer may go back to for a block it did not keep.
enum Input {
    /// The whole input, held in memory.
    Whole(Bytes),
    /// The input file, through a handle of its own, and its map if it
    /// could be mapped.
    File(std::sync::Arc<std::fs::File>, Option<Bytes>),
    /// Nothing: a stream.
    Stream,
}

impl<S: BlockSource> RepoReader<S> {
    fn open(source: S, header: &Header, header_len: u64, options: VerifyOptions) -> Result<Self> {
        Self::open_with(source, header, header_len, options, Input::Stream)
    }

    fn open_with(
        source: S,
        header: &Header,
        header_len: u64,
        options: VerifyOptions,
        input: Input,
    ) -> Result<Self> {
        let mut engine = Engine::new(header.root(), options);
        match input {
            Input::Whole(whole) => engine.keep_views(whole),
            Input::File(file, map) => {
                engine.set_file(file);
                #[cfg(feature = "car")]
                if let Some(map) = map {
                    engine.view_file(map);
                }
                #[cfg(not(feature = "car"))]
                let _: Option<Bytes> = map;
            }
            Input::Stream => engine.keep_records_of_stream()?,
        }
        engine.add_bytes(header_len);
        engine.set_records_checked_upstream(source.checks_records());
        let mut source = source;
        while !engine.poll_commit()? {
            pull(&mut source, &mut engine)?;
        }
        let commit = engine.commit().cloned().ok_or(Error::MissingCommit { cid: header.root() })?;
        Ok(RepoReader { source, engine, commit, failed: false })
    }

    fn pull(&mut self) -> Result<()> {
        pull(&mut self.source, &mut self.engine)
    }

    /// The commit, decoded and checked (its signature, and its rev against
    /// the clock, only once a key was given).
    pub fn commit(&self) -> &Commit {
        &self.commit
    }

    /// The commit's CID (the CAR's first root).
    pub fn commit_cid(&self) -> Cid {
        self.engine.commit_cid()
    }

    /// Checks the commit's signature with `key`, then its rev against the
    /// clock ([`VerifyOptions::future_tolerance`]; a rev too far ahead is
    /// `RevInFuture`). Needed before the first record unless
    /// [`VerifyOptions::key`] was set or the signature check is
    /// [`SignatureCheck::Skip`].
    pub fn verify_signature(&mut self, key: &PublicKey) -> Result<()> {
        self.engine.verify_signature(key)
    }

    /// Checks the signature with the key `resolver` gives for the commit's
    /// DID; if that key does not verify, asks once more bypassing caches (the
    /// key may have been rotated) and tries again.
    pub async fn verify_signature_with<K: KeyResolver>(&mut self, resolver: &K) -> Result<()> {
        verify_with(&mut self.engine, resolver).await
    }

    /// The next record, verified, or `None` when the walk is done.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        if self.failed {
            return Ok(None);
        }
        loop {
            match self.engine.poll() {
                Ok(Poll::Record) => return Ok(self.engine.record()),
                Ok(Poll::NeedBlock) => {
                    if let Err(e) = self.pull() {
                        self.failed = true;
                        return Err(e);
                    }
                }
                Ok(Poll::Done) => return Ok(None),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
    }

    /// Verifies the rest of the repository and the CAR, and returns the
    /// report.
    pub fn finish(mut self) -> Result<Report> {
        while self.next_record()?.is_some() {}
        if self.failed {
            return Err(Error::Usage("finish called after an error".to_owned()));
        }
        self.engine.report()
    }
}

impl<S: BlockSource> Iterator for RepoReader<S> {
    type Item = Result<OwnedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().map(|r| r.map(|r| r.to_owned())).transpose()
    }
}

/// Blocks read per request for more: in streaming order the walk then finds
/// the next blocks already there instead of asking once per block.
pub(crate) const PULL_BATCH: usize = 32;

/// Feeds the engine the next few blocks, or the end of the input.
fn pull<S: BlockSource>(source: &mut S, engine: &mut Engine) -> Result<()> {
    match source.next_batch()? {
        Some(blocks) if blocks.is_empty() => engine.push_eof(),
        Some(blocks) => engine.push_batch(blocks)?,
        None => {
            for _ in 0..PULL_BATCH {
                match source.next_block()? {
                    Some((cid, data, section, end)) => engine.push(cid, data, section, end)?,
                    None => {
                        engine.push_eof();
                        break;
                    }
                }
            }
        }
    }
    for (cid, error) in source.invalid() {
        engine.record_invalid(cid, error);
    }
    Ok(())
}

async fn verify_with<K: KeyResolver>(engine: &mut Engine, resolver: &K) -> Result<()> {
    let did = engine.commit().map(|c| c.did().to_owned()).unwrap_or_default();
    let resolve = |e: K::Error| Error::KeyResolution { did: did.clone(), source: Box::new(e) };
    let key = resolver.resolve_key(&did).await.map_err(resolve)?;
    match engine.verify_signature(&key) {
        // A signature that does not verify: the key may have rotated. (A
        // rev ahead of the clock, checked once the signature is good, is
        // not the key's fault.)
        Err(Error::Verify(e @ atrepo_verify::Error::BadSignature { .. })) => {
            let fresh = resolver.refresh_key(&did).await.map_err(resolve)?;
            if fresh == key {
                return Err(Error::Verify(e));
            }
            engine.verify_signature(&fresh)
        }
        other => other,
    }
}

/// Reads every block of a CAR held in memory into a [`MemoryStore`],
/// checking each block's hash (unless `options` say otherwise), and returns
/// the CAR's header and the store. Blocks share `bytes` (no copy).
///
/// This is for random access to a CAR (diffs, lookups, proofs): it does not
/// verify the repository; [`verify_repo`] does.
pub fn load_car(
    bytes: impl Into<Bytes>,
    options: atrepo_car::Options,
) -> Result<(Header, MemoryStore)> {
    let (mut source, header, _) = SliceSource::open(bytes.into(), options)?;
    let store = MemoryStore::new();
    while let Some((cid, data, _, _)) = source.next_block()? {
        store.insert(cid, data);
    }
    Ok((header, store))
}

/// Verifies a whole repository CAR held in memory and returns its report.
///
/// Every check of [`RepoReader`] runs; records are verified and dropped.
pub fn verify_repo(bytes: impl Into<Bytes>, options: VerifyOptions) -> Result<Report> {
    RepoReader::from_bytes(bytes, options)?.finish()
}

/// Verifies a whole repository CAR read from `reader` and returns its
/// report, in memory bounded by [`VerifyOptions::memory_limit`].
pub fn verify_repo_reader(reader: impl Read, options: VerifyOptions) -> Result<Report> {
    RepoReader::from_reader(reader, options)?.finish()
}

/// Inputs at least this big are read on a second thread by
/// [`verify_repo_file`].
pub const THREADED_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// Verifies a repository CAR file (see [`RepoReader::from_file`]).
pub fn verify_repo_file(
    path: impl AsRef<std::path::Path>,
    options: VerifyOptions,
) -> Result<Report> {
    RepoReader::from_file(path, options)?.finish()
}

/// Like [`verify_repo_reader`], handing each verified record to `process`
/// as it is verified (the record's bytes are not kept afterwards, so a
/// caller that needs only a projection of each record never holds them
/// all).
pub fn verify_repo_with(
    reader: impl Read,
    options: VerifyOptions,
    mut process: impl FnMut(Record<'_>) -> Result<()>,
) -> Result<Report> {
    let mut repo = RepoReader::from_reader(reader, options)?;
    while let Some(record) = repo.next_record()? {
        process(record)?;
    }
    repo.finish()
}

#[cfg(feature = "tokio")]
mod tokio;
#[cfg(feature = "tokio")]
pub use self::tokio::{AsyncRepoReader, verify_repo_async};

#[cfg(test)]
mod tests {
    use super::*;

    /// A small valid record.
    const GOOD: &[u8] = b"\xa1\x65$type\x61x";

    /// Both threads' record checks report the same failures, before the
    /// blocks they concern.
    #[test]
    fn records_are_checked_on_either_thread() {
        let good = GOOD.to_vec();
        // A float: not DRISL.
        let bad = b"\xa1\x61a\xf9\x3c\x00".to_vec();
        // Not DRISL either, but shaped like an MST node: left to the engine.
        let node_shaped = b"\xa2\x61e\xf9\x3c\x00\x61l\xf6".to_vec();
        let cids: Vec<Cid> = [&good, &bad, &node_shaped]
            .iter()
            .map(|b| atrepo_car::blessed_cid(atrepo_car::DAG_CBOR, b))
            .collect();
        let header = Header::new(vec![cids[0]]).unwrap();
        let blocks = (0..2000).map(|i| match i {
            1500 => (&cids[1], &bad[..]),
            1700 => (&cids[2], &node_shaped[..]),
            _ => (&cids[0], &good[..]),
        });
        let car = atrepo_car::encode(&header, blocks);
        for split in [Split::Reader, Split::Verifier, Split::Balance] {
            let reader =
                CarReader::with_options(std::io::Cursor::new(car.clone()), Default::default())
                    .unwrap();
            let mut source =
                ThreadedSource::spawn_with(reader, RecordCheck::default(), split).unwrap();
            assert!(source.checks_records());
            // Whole batches, as `pull` takes them.
            let mut seen = 0;
            loop {
                let batch = source.next_batch().unwrap().unwrap();
                if batch.is_empty() {
                    break;
                }
                seen += batch.len();
                if batch.iter().any(|(cid, _, _, _)| *cid == cids[1]) {
                    let invalid = source.invalid();
                    assert_eq!(invalid.len(), 1, "{split:?}");
                    assert_eq!(invalid[0].0, cids[1]);
                }
            }
            assert_eq!(seen, 2000, "{split:?}");
            assert!(source.invalid().is_empty(), "{split:?}: node-shaped blocks are not checked");
        }
    }

    /// A read error right after a full batch reaches the reader as an
    /// error, not as the end of the CAR (the reading thread sends an empty
    /// batch before it).
    #[test]
    fn an_error_after_a_full_batch_is_not_the_end() {
        let good = GOOD.to_vec();
        let cid = atrepo_car::blessed_cid(atrepo_car::DAG_CBOR, &good);
        let header = Header::new(vec![cid]).unwrap();
        let mut car =
            atrepo_car::encode(&header, (0..THREAD_BATCH_BLOCKS).map(|_| (&cid, &good[..])));
        // A section that says 40 bytes and ends after 3.
        car.extend_from_slice(&[40, 0x01, 0x71, 0x12]);
        for split in [Split::Reader, Split::Verifier] {
            let reader =
                CarReader::with_options(std::io::Cursor::new(car.clone()), Default::default())
                    .unwrap();
            let mut source =
                ThreadedSource::spawn_with(reader, RecordCheck::default(), split).unwrap();
            let first = source.next_batch().unwrap().unwrap();
            assert_eq!(first.len(), THREAD_BATCH_BLOCKS);
            let err = source.next_batch().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Malformed, "{err}");
        }
    }
}
