//! [`Engine`]: the sans-IO core of repository verification.
//!
//! A driver feeds the engine blocks as it reads them ([`Engine::push`],
//! [`Engine::push_eof`]) and asks it to make progress ([`Engine::poll`]).
//! The engine answers with a verified record, "I need another block", or
//! "done". It never reads anything itself, so the slice, `std::io::Read`
//! and tokio drivers share every check.

use std::collections::BTreeMap;
use std::sync::Arc;

use atrepo_mst::{Event, Records, WalkOptions, Walker};
use atrepo_store::{Bytes, CidMap};
use atrepo_verify::drisl::DecodeError;
use atrepo_verify::{Commit, FixedClock, PublicKey, SystemClock};
use cid::Cid;

use super::buffer::{Arrived, Buffer, RecordTake};
use super::options::{RecordCheck, SignatureCheck, VerifyOptions};
use super::report::{CarReport, MemoryReport, MstReport, Record, Report, SignatureReport};
use crate::error::{Error, Result};

/// What [`Engine::poll`] reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Poll {
    /// A record is ready: [`Engine::record`].
    Record,
    /// Push another block, or the end of input.
    NeedBlock,
    /// The repository and the CAR are fully verified: [`Engine::report`].
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the commit block.
    Commit,
    /// Commit read; its signature must be checked before records flow.
    AwaitKey,
    /// Walking the MST.
    Walk,
    /// Walk finished; reading the rest of the CAR.
    Drain,
    Done,
}

pub(crate) struct Engine {
    options: VerifyOptions,
    root: Cid,
    buffer: Arc<Buffer>,
    stage: Stage,
    eof: bool,
    commit: Option<Commit>,
    signed_by: Option<String>,
    walker: Option<Walker<Arc<Buffer>>>,
    /// The record of the leaf the walk is on, not taken yet because it has
    /// not arrived: asked for again once more blocks came.
    awaited: Option<Cid>,
    current: Option<(Cid, Option<Bytes>)>,
    records: u64,
    repeated: u64,
    collections: BTreeMap<String, u64>,
    /// The collection of the records just counted, and how many in a row.
    run: (String, u64),
    blocks: u64,
    bytes: u64,
    drained_blocks: u64,
    drained_bytes: u64,
    /// Whether the source checks every dag-cbor block as a record (so only
    /// its failures, in `invalid`, need looking at).
    checked_upstream: bool,
    invalid: CidMap<DecodeError>,
}

/// Whether `data` starts like an MST node: a map of two entries whose
/// first key is `e`. A source that checks records upstream
/// ([`Engine::set_records_checked_upstream`]) skips such blocks, since the
/// walk decodes nodes strictly anyway (about a quarter of a repository's
/// bytes, and checking them as records was wasted work); the engine checks
/// a node-shaped block itself when a key points to it as a record.
pub(crate) fn node_shaped(data: &[u8]) -> bool {
    data.starts_with(&[0xa2, 0x61, b'e'])
}

/// Blocks read on another thread reach this core's cache when first read;
/// a node's first read is its decoding, a chain of dependent loads that
/// waited out each miss. Reading one byte per cache line of the nodes of a
/// pull as they are handed over overlaps those misses instead.
fn touch_node(data: &[u8]) {
    if node_shaped(data) {
        let touched = data.iter().step_by(64).fold(0u8, |a, &b| a ^ b);
        std::hint::black_box(touched);
    }
}

/// Whether a source that checks records upstream checks this block as a
/// record: every dag-cbor block but the [node-shaped](node_shaped) ones.
/// The reading thread's checks and the engine's trust in them both follow
/// this one rule.
pub(crate) fn checked_upstream(cid: &Cid, data: &[u8]) -> bool {
    cid.codec() == atrepo_car::DAG_CBOR && !node_shaped(data)
}

/// Most record check failures held from an upstream checker; past this the
/// engine checks every record itself (a CAR full of broken unreferenced
/// blocks must not grow this map without bound).
const MAX_UPSTREAM_FAILURES: usize = 10_000;

impl Engine {
    /// An engine for a CAR whose first root is `root`.
    pub(crate) fn new(root: Cid, options: VerifyOptions) -> Self {
        let buffer = Arc::new(Buffer::new(options.memory_limit, options.spill.clone()));
        Engine {
            options,
            root,
            buffer,
            stage: Stage::Commit,
            eof: false,
            commit: None,
            signed_by: None,
            walker: None,
            awaited: None,
            current: None,
            records: 0,
            repeated: 0,
            collections: BTreeMap::new(),
            run: (String::new(), 0),
            blocks: 0,
            bytes: 0,
            drained_blocks: 0,
            drained_bytes: 0,
            checked_upstream: false,
            invalid: CidMap::default(),
        }
    }

    /// Says whether the block source checks records (the blocks
    /// [`checked_upstream`] names) and reports failures through
    /// [`record_invalid`](Self::record_invalid).
    pub(crate) fn set_records_checked_upstream(&mut self, yes: bool) {
        self.checked_upstream = yes;
    }

    /// Notes that the source found block `cid` not to be a valid record.
    pub(crate) fn record_invalid(&mut self, cid: Cid, error: DecodeError) {
        if self.invalid.len() >= MAX_UPSTREAM_FAILURES {
            self.checked_upstream = false;
            return;
        }
        self.invalid.insert(cid, error);
    }

    /// Hands over a block just read (its CID already checked by the CAR
    /// reader), the CAR bytes its section took, and where the section ends
    /// in the input.
    pub(crate) fn push(
        &mut self,
        cid: Cid,
        data: Bytes,
        section_bytes: u64,
        end: u64,
    ) -> Result<()> {
        self.blocks = self.blocks.saturating_add(1);
        self.bytes = self.bytes.saturating_add(section_bytes);
        if self.stage == Stage::Drain {
            // The walk is over: nothing can need this block any more. The
            // commit and the nodes were taken (the walker knows its nodes).
            let node = cid == self.root || self.walker.as_ref().is_some_and(|w| w.visited(&cid));
            if node || self.buffer.seen_after_walk(&cid)? {
                self.buffer.count_duplicate();
            } else {
                self.drained_blocks = self.drained_blocks.saturating_add(1);
                self.drained_bytes = self.drained_bytes.saturating_add(data.len() as u64);
            }
            return Ok(());
        }
        touch_node(&data);
        let offset = end.saturating_sub(data.len() as u64);
        self.buffer.insert(cid, data, offset)
    }

    /// Hands over blocks just read, in order, as [`push`](Self::push) one
    /// by one would; the batch joins the buffer's queue as it is.
    pub(crate) fn push_batch(&mut self, blocks: Vec<Arrived>) -> Result<()> {
        if self.stage == Stage::Drain {
            for (cid, data, section, end) in blocks {
                self.push(cid, data, section, end)?;
            }
            return Ok(());
        }
        for (_, data, section, _) in &blocks {
            self.blocks = self.blocks.saturating_add(1);
            self.bytes = self.bytes.saturating_add(*section);
            touch_node(data);
        }
        self.buffer.insert_batch(blocks)
    }

    /// Says the blocks are views into `whole`, the input held in memory.
    pub(crate) fn keep_views(&mut self, whole: Bytes) {
        self.buffer.keep_views(whole);
    }

    /// Lets the buffer view waiting blocks in `map`, the input file mapped
    /// into memory (re-hashing each view), instead of keeping them.
    #[cfg(feature = "car")]
    pub(crate) fn view_file(&mut self, map: Bytes) {
        self.buffer.view_file(map);
    }

    /// Lets the buffer read blocks back from `file` (the input itself, at
    /// the offsets blocks were read from) instead of keeping or spilling
    /// them when it is over budget.
    pub(crate) fn set_file(&mut self, file: Arc<std::fs::File>) {
        self.buffer.set_file(file);
    }

    /// For a stream: keeps records handed out in a scratch file when the
    /// options ask for it ([`VerifyOptions::keep_records`]), under the
    /// spill folder (or the system's temporary folder without spilling),
    /// at most the spill cap of them.
    pub(crate) fn keep_records_of_stream(&mut self) -> Result<()> {
        if !self.options.keep_records {
            return Ok(());
        }
        let spill = self.options.spill.clone().unwrap_or_default();
        self.buffer.keep_records(&spill.parent, spill.max_spilled)
    }

    /// Counts CAR bytes that are not part of a section (the header).
    pub(crate) fn add_bytes(&mut self, bytes: u64) {
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Says that no more blocks will come.
    pub(crate) fn push_eof(&mut self) {
        self.eof = true;
        self.buffer.set_eof();
    }

    /// The decoded commit, once read.
    pub(crate) fn commit(&self) -> Option<&Commit> {
        self.commit.as_ref()
    }

    /// The CID of the commit.
    pub(crate) fn commit_cid(&self) -> Cid {
        self.root
    }

    /// Checks the commit's signature with `key` (required before records
    /// flow unless the options skip it).
    pub(crate) fn verify_signature(&mut self, key: &PublicKey) -> Result<()> {
        let Some(commit) = &self.commit else {
            return Err(Error::Usage("the commit has not been read yet".to_owned()));
        };
        commit.verify(key)?;
        self.check_rev()?;
        self.signed_by = Some(key.to_did_key());
        if self.stage == Stage::AwaitKey {
            self.stage = Stage::Walk;
        }
        Ok(())
    }

    /// Checks that the commit's rev is not further ahead of the clock
    /// than the options allow (a version 2 commit may have no rev).
    fn check_rev(&self) -> Result<()> {
        if let Some(rev) = self.commit.as_ref().and_then(Commit::rev) {
            let tolerance = self.options.future_tolerance;
            match self.options.now {
                Some(now) => rev.check_not_future(&FixedClock(now), tolerance)?,
                None => rev.check_not_future(&SystemClock, tolerance)?,
            }
        }
        Ok(())
    }

    /// Reads the commit if its block is at hand: `Ok(true)` once the commit
    /// is read and checked (its signature, and then its rev against the
    /// clock, may still be pending).
    pub(crate) fn poll_commit(&mut self) -> Result<bool> {
        if self.stage != Stage::Commit {
            return Ok(true);
        }
        match self.buffer.take(&self.root)? {
            Some(bytes) => {
                self.read_commit(&bytes)?;
                Ok(true)
            }
            None if self.eof => Err(Error::MissingCommit { cid: self.root }),
            None => Ok(false),
        }
    }

    /// Makes as much progress as the blocks at hand allow.
    pub(crate) fn poll(&mut self) -> Result<Poll> {
        self.current = None;
        loop {
            match self.stage {
                Stage::Commit => match self.buffer.take(&self.root)? {
                    Some(bytes) => self.read_commit(&bytes)?,
                    None if self.eof => return Err(Error::MissingCommit { cid: self.root }),
                    None => return Ok(Poll::NeedBlock),
                },
                Stage::AwaitKey => {
                    let did = self.commit.as_ref().map(|c| c.did().to_owned()).unwrap_or_default();
                    return Err(Error::NoKey { did });
                }
                Stage::Walk => return self.walk(),
                Stage::Drain if self.eof => self.stage = Stage::Done,
                Stage::Drain => return Ok(Poll::NeedBlock),
                Stage::Done => return Ok(Poll::Done),
            }
        }
    }

    fn read_commit(&mut self, bytes: &[u8]) -> Result<()> {
        let commit = Commit::decode_block(&self.root, bytes, &self.options.commit)?;
        if let Some(expected) = &self.options.did
            && expected != commit.did()
        {
            return Err(Error::DidMismatch {
                expected: expected.clone(),
                found: commit.did().to_owned(),
            });
        }
        // The walk does not ask the buffer for records: `walk` takes each
        // one, and that is the presence check (one buffer lookup, not two).
        // It tells the buffer of each node's records as it decodes the
        // node, so that the lookups of blocks out of order overlap
        // (`Buffer`'s `look_ahead`).
        let walk = WalkOptions::default()
            .limits(self.options.mst)
            .keys(self.options.keys)
            .records(Records::Skip)
            .records_ahead(true);
        self.walker = Some(Walker::new(Arc::clone(&self.buffer), *commit.data(), walk));
        self.commit = Some(commit);
        // The rev is held to the clock after the signature: a rev changed
        // under the old signature is a bad signature, not a clock problem.
        self.stage = match (self.options.signature, self.options.key.clone()) {
            (SignatureCheck::Skip, _) => {
                self.check_rev()?;
                Stage::Walk
            }
            (SignatureCheck::Required, Some(key)) => {
                self.stage = Stage::AwaitKey;
                self.verify_signature(&key)?;
                Stage::Walk
            }
            (SignatureCheck::Required, None) => Stage::AwaitKey,
        };
        Ok(())
    }

    fn walk(&mut self) -> Result<Poll> {
        let Some(walker) = self.walker.as_mut() else {
            self.stage = Stage::Drain;
            return self.poll();
        };
        let cid = match self.awaited.take() {
            // Still on the leaf whose record had not arrived.
            Some(cid) => cid,
            None => match walker.next_event() {
                Ok(Some(Event::Leaf { cid, .. })) => cid,
                // A strict walk reports missing blocks as errors, never as
                // items (and one that skips records never misses one).
                Ok(Some(Event::MissingNode { cid })) => {
                    return Err(Error::Mst(atrepo_mst::Error::MissingNode { cid }));
                }
                Ok(Some(Event::MissingRecord { key, cid })) => {
                    return Err(Error::Mst(atrepo_mst::Error::MissingRecord {
                        key: key.to_owned(),
                        cid,
                    }));
                }
                Ok(None) => {
                    self.stage = Stage::Drain;
                    return self.poll();
                }
                Err(e) if e.kind() == atrepo_mst::ErrorKind::Missing && !self.eof => {
                    return Ok(Poll::NeedBlock);
                }
                Err(e) => return Err(e.into()),
            },
        };
        let key = walker.current_key();
        let (data, repeated) = match self.buffer.take_record(&cid)? {
            RecordTake::Fresh(bytes) => (Some(bytes), false),
            RecordTake::Repeat(bytes) => (bytes, true),
            RecordTake::Absent if self.eof => {
                return Err(Error::Mst(atrepo_mst::Error::MissingRecord {
                    key: key.to_owned(),
                    cid,
                }));
            }
            RecordTake::Absent => {
                // Not arrived yet: the walk stays on this leaf.
                self.awaited = Some(cid);
                return Ok(Poll::NeedBlock);
            }
        };
        if repeated {
            // Checked when the first key pointing to it took it.
            self.repeated = self.repeated.saturating_add(1);
        }
        match &data {
            Some(bytes) if !repeated => {
                if let RecordCheck::Strict(limits) = &self.options.records {
                    let checked = self.checked_upstream && checked_upstream(&cid, bytes);
                    let result = match self.invalid.get(&cid) {
                        Some(error) => Err(error.clone()),
                        None if checked => Ok(()),
                        None => atrepo_verify::drisl::validate_record(bytes, limits),
                    };
                    result.map_err(|error| Error::InvalidRecord {
                        key: key.to_owned(),
                        cid,
                        error,
                    })?;
                }
            }
            _ => {}
        }
        // Keys come in order, so a collection's records come together: count
        // the current run and fold it into the map when the run ends.
        // The common case, a key of the current run, costs one comparison
        // of the collection (`split_once` ran at 8% of this thread).
        let same_run = key.len() > self.run.0.len()
            && key.as_bytes().get(self.run.0.len()) == Some(&b'/')
            && key.starts_with(self.run.0.as_str());
        if !same_run {
            let collection = key.split_once('/').map_or(key, |(c, _)| c);
            let (name, n) = std::mem::replace(&mut self.run, (collection.to_owned(), 0));
            if n > 0 {
                *self.collections.entry(name).or_default() += n;
            }
        }
        self.run.1 = self.run.1.saturating_add(1);
        self.records = self.records.saturating_add(1);
        self.current = Some((cid, data));
        Ok(Poll::Record)
    }

    /// The record [`poll`](Self::poll) just reached.
    pub(crate) fn record(&self) -> Option<Record<'_>> {
        let (cid, data) = self.current.as_ref()?;
        let key = self.walker.as_ref().map_or("", Walker::current_key);
        Some(Record { key, cid: *cid, data: data.as_ref() })
    }

    /// Records per collection, the current run included.
    fn collection_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = self.collections.clone();
        if self.run.1 > 0 {
            *counts.entry(self.run.0.clone()).or_default() += self.run.1;
        }
        counts
    }

    /// The final report, once [`poll`](Self::poll) has returned `Done`.
    pub(crate) fn report(&self) -> Result<Report> {
        let Some(commit) = &self.commit else {
            return Err(Error::MissingCommit { cid: self.root });
        };
        let walk = self.walker.as_ref().map(Walker::stats).unwrap_or_default();
        // Leftovers first: sorting them out finds the last duplicates.
        let walker = self.walker.as_ref();
        let shorts: std::cell::OnceCell<std::collections::HashSet<u64>> =
            std::cell::OnceCell::new();
        // The blocks read: the commit and the walk's nodes.
        let root = atrepo_store::CidKey::of(&self.root);
        let (left_blocks, left_bytes) = self.buffer.leftover(
            &|k| *k == root || walker.is_some_and(|w| w.visited_key(k)),
            &|short| {
                // Blocks left in the input are known by short fingerprint:
                // the walk's nodes folded the same way, gathered only if
                // such a block is left.
                short == root.short()
                    || walker.is_some_and(|w| {
                        shorts
                            .get_or_init(|| {
                                w.visited_keys().map(atrepo_store::CidKey::short).collect()
                            })
                            .contains(&short)
                    })
            },
        )?;
        let buffer = self.buffer.stats();
        Ok(Report {
            did: commit.did().to_owned(),
            rev: commit.rev().map(|r| r.to_string()).unwrap_or_default(),
            version: commit.version(),
            commit: self.root.to_string(),
            data: commit.data().to_string(),
            signature: SignatureReport {
                checked: self.signed_by.is_some(),
                key: self.signed_by.clone(),
            },
            records: self.records,
            collections: self.collection_counts(),
            repeated_records: self.repeated,
            mst: MstReport { nodes: walk.nodes, node_bytes: walk.node_bytes, layers: walk.layers },
            car: CarReport {
                bytes: self.bytes,
                blocks: self.blocks,
                duplicate_blocks: buffer.duplicates,
                unreferenced_blocks: left_blocks.saturating_add(self.drained_blocks),
                unreferenced_bytes: left_bytes.saturating_add(self.drained_bytes),
            },
            memory: MemoryReport {
                peak_buffered_bytes: buffer.peak_memory,
                spilled: buffer.spilled,
            },
        })
    }
}
