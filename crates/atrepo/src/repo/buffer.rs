//! The block buffer between a CAR stream and the MST walk.
//!
//! Blocks wait here from the moment they are read until the walk reaches
//! them; each is handed out once and then dropped.
//!
//! Two lanes keep the common case cheap:
//!
//! - the *fast lane* is a queue in arrival order. In the streamable order
//!   (commit, then nodes in pre-order with records after their entries) the
//!   walk always wants the block at the front, so a lookup is one CID
//!   comparison and no hashing;
//! - the *slow lane* is a map. When the walk wants something else, the
//!   blocks in front of the queue move into the map (each block moves at
//!   most once) and lookups go there.
//!
//! Past the memory budget, a block that came from a file is not kept at
//! all: the buffer notes where it is in the file (20 to 80 bytes) and reads
//! it back, re-checking its hash, when the walk needs it. A block of an
//! input held whole in memory waits that way from the start, and is viewed
//! again (not copied, not re-hashed) when the walk needs it. A stream
//! cannot be read again: its blocks are appended to a scratch file
//! ([`Scratch`]) and noted and read back the same way. The notes are
//! charged by what their tables allocate ([`Notes`]); once those cannot
//! grow within the budget, blocks go to a scratch disk store
//! ([`SpillStore`]) in batches. With spilling off, the buffer refuses them
//! with a limit error instead.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};

use atrepo_store::{Batch, BlockRead, BlockStore, Bytes, CidKey, CidMap, SpillOptions, SpillStore};
use cid::Cid;

use super::notes::Notes;
use super::scratch::{Part, SCRATCH_BUFFER, SCRATCH_BUFFER_MIN, Scratch, read_at};
use super::segment::SHARDS;
use super::taken::Taken;
use crate::error::{Error, Result};

/// Estimated bytes per entry of the set of handed-out record CIDs (16-byte
/// key and packed position in a run, filter bits, a shard's merge in
/// flight; see [`Taken`]).
pub(super) const TAKEN_OVERHEAD: u64 = 32;

/// What the taken set's entries held in memory must cost before they are
/// moved to disk when the budget is short ([`Inner::freeze_taken`]): an
/// eighth of the limit, and never fewer than 4,096 entries' worth, so that
/// segments are not tiny and a freeze frees a good part of the budget.
fn taken_share(limit: u64) -> u64 {
    (limit / 8).max(4096 * TAKEN_OVERHEAD)
}

/// The packed position of a handed-out record whose place in the input is
/// not known (it came from the spill store, did not fit [`pack`], or came
/// from a stream before it had to wait in the scratch file).
const NO_POSITION: u64 = u64::MAX;

/// The packed position of a handed-out record taken from the spill store,
/// which keeps it: a second key reads it there (see [`Inner::mark_taken`]).
const IN_SPILL: u64 = u64::MAX - 1;

/// The packed position of a block taken from the spill store's batch in
/// flight ([`Inner::pending`]), where it stays, as in the store: a record
/// for a second key (see [`Inner::mark_taken`]); a node only until
/// [`Inner::take_node`] drops it, since nothing reads a node twice.
const IN_BATCH: u64 = u64::MAX - 2;

/// Most bytes read back from the input file for records that a second key
/// points to. Past it such records come without their bytes, so a CAR of
/// many keys pointing to a few large records cannot make the buffer hash
/// without end.
const REPEAT_READ_MAX: u64 = 256 * 1024 * 1024;

/// Blocks bound for the spill store are written in batches of at most about
/// this many bytes, per-block overhead included (one transaction each);
/// smaller under a small limit (see [`SpillShare`]).
const SPILL_BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// Bits of a packed file position that hold the block's length: blocks of
/// up to 16 MiB (sections are capped at 2 MiB by default) in files of up
/// to 1 TiB can stay in the file.
const LEN_BITS: u32 = 24;

/// Offsets a packed position can note: below 2^39 (512 GiB).
const MAX_OFFSET: u64 = 1 << (63 - LEN_BITS);

/// Whether a block of `len` bytes can be noted by position (see [`pack`]).
fn fits_position(len: usize) -> bool {
    len < 1 << LEN_BITS
}

/// Packs a block's offset and length into one `u64`, if they fit.
fn pack(offset: u64, len: usize) -> Option<u64> {
    let len = u64::try_from(len).ok().filter(|_| fits_position(len))?;
    // The top bit stays clear: taken-map values use it for digest tails.
    (offset < MAX_OFFSET).then_some((offset << LEN_BITS) | len)
}

/// Room for a CID's bytes: version, codec, hash code and length varints
/// and a digest of up to 64 bytes.
const CID_MAX: usize = 96;

/// `cid`'s bytes as a CAR section stores them, written into `buf`.
fn cid_bytes<'b>(cid: &Cid, buf: &'b mut [u8; CID_MAX]) -> Option<&'b [u8]> {
    let n = cid.encoded_len();
    cid.write_bytes(buf.get_mut(..n)?).ok()?;
    buf.get(..n)
}

/// Marks a taken-map value that holds more of a CID's digest instead of a
/// position (see [`tail`]).
const TAIL_TAG: u64 = 1 << 63;

/// 63 bits of `cid`'s digest beyond those of its [`CidKey`], tagged: what
/// the taken map keeps when the input cannot be read again, so that a CID
/// sharing a fingerprint with a taken record (easy to write into an MST
/// node: the fingerprint is a digest prefix) is not taken for it.
fn tail(cid: &Cid) -> u64 {
    let mut b = [0u8; 8];
    let digest = cid.hash().digest();
    if let (Some(src), Some(dst)) = (digest.get(15..23), b.get_mut(..)) {
        dst.copy_from_slice(src);
    }
    u64::from_le_bytes(b) | TAIL_TAG
}

/// Appends block `cid` to a stream's scratch file as a CAR section of
/// `part` and returns its packed position, or `None` (appending nothing)
/// for a block too long to note or past the part's cap.
fn append_section(
    scratch: &mut Scratch,
    part: Part,
    cid: &Cid,
    bytes: &[u8],
) -> std::io::Result<Option<u64>> {
    let mut buf = [0u8; CID_MAX];
    let Some(id) = cid_bytes(cid, &mut buf).filter(|_| fits_position(bytes.len())) else {
        return Ok(None);
    };
    Ok(scratch.append(part, id, bytes)?.and_then(|at| pack(at, bytes.len())))
}

/// Whether block `cid` can be noted within `limit`, with `held` bytes
/// charged that no eviction frees ([`Inner::held`]): its table has room, or
/// growing it (see [`Notes::growth`]) leaves the notes and `held` within
/// the limit. Blocks waiting in memory do not count: they make room by
/// becoming notes themselves, or by going to the spill store, when the
/// next block does not fit. Whether the growth fits beside them now is
/// [`NoteRoom`].
fn can_note(in_file: &Notes, held: u64, limit: u64, cid: &Cid) -> bool {
    notes_can_grow(in_file, held, limit, in_file.growth(short(cid)))
}

/// [`can_note`] for a block whose table's growth is known.
fn notes_can_grow(in_file: &Notes, held: u64, limit: u64, growth: u64) -> bool {
    growth == 0 || held.saturating_add(in_file.allocated()).saturating_add(growth) <= limit
}

/// How block `cid`, charged `c`, can become a note with `memory` charged
/// (the blocks still waiting in memory included) and stay within `limit`
/// at the peak: when its table must grow, the bigger table is made while
/// the smaller is held ([`Notes::growth`]). One hash of the block for
/// both questions: whether the notes can grow at all ([`can_note`]), and
/// whether they can beside the blocks waiting in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoteRoom {
    /// The growth fits beside the block's bytes.
    Beside,
    /// The growth fits once the block's bytes are dropped, first (where it
    /// waits, in the input or the scratch file, is all the note needs).
    InPlace,
    /// Not now: perhaps once other blocks waiting in memory are notes.
    Wait,
    /// The notes cannot grow within the limit beside `held` ([`can_note`]):
    /// the block goes to the spill store, or stays.
    Never,
}

impl NoteRoom {
    fn of(in_file: &Notes, held: u64, memory: u64, limit: u64, cid: &Cid, c: u64) -> NoteRoom {
        let growth = in_file.growth(short(cid));
        // A table with room: a note only frees memory, over the limit too.
        if growth == 0 {
            NoteRoom::Beside
        } else if !notes_can_grow(in_file, held, limit, growth) {
            NoteRoom::Never
        } else if memory.saturating_add(growth) <= limit {
            NoteRoom::Beside
        } else if memory.saturating_sub(c).saturating_add(growth) <= limit {
            NoteRoom::InPlace
        } else {
            NoteRoom::Wait
        }
    }
}

/// Whether `cid`'s short fingerprint is noted, for another block (blocks
/// already waiting are dropped as duplicates before they are noted): see
/// [`note`].
fn clashes(in_file: &Notes, cid: &Cid) -> std::io::Result<bool> {
    Ok(in_file.get(short(cid))?.is_some())
}

/// Notes block `cid` at packed position `packed` in `in_file` in place of
/// holding its bytes, which cost `c` in `memory_bytes`: charges what its
/// table grew by, and to `peak` the moment a growing table and the table it
/// replaces are both held, with the block's bytes not yet dropped (or
/// dropped already, [`NoteRoom::InPlace`], and `c` 0).
///
/// Returns `false`, noting nothing, when another waiting block's note holds
/// `cid`'s short fingerprint (two blocks share one with about 2^32 hashing
/// work on purpose; duplicates are dropped before they are noted): the
/// block then goes to the spill store or stays in memory, where it is
/// found by its whole CID, and the other block is not lost.
fn note(
    in_file: &mut Notes,
    memory_bytes: &mut u64,
    peak: &mut u64,
    cid: &Cid,
    packed: u64,
    c: u64,
) -> std::io::Result<bool> {
    let before = in_file.allocated();
    let (noted, replaced) = in_file.insert(short(cid), packed)?;
    let grown = in_file.allocated().saturating_sub(before);
    *peak = (*peak).max(memory_bytes.saturating_add(grown).saturating_add(replaced));
    *memory_bytes = memory_bytes.saturating_add(grown);
    if noted {
        *memory_bytes = memory_bytes.saturating_sub(c);
    }
    Ok(noted)
}

/// What the notes' tables must hold before some are moved to disk when
/// the budget is short ([`freeze_notes`]): a sixteenth of the limit, and
/// never less than about 1,000 notes' worth, so that segments are not
/// tiny. Below it, what fills the budget is not the tables.
fn notes_share(limit: u64) -> u64 {
    (limit / 16).max(32 * 1024)
}

/// Tables of notes a freeze moves to disk first (of 64): the biggest
/// quarter. The rest stay in memory, where a lookup reads nothing.
const FROZEN_TABLES: usize = 16;

/// Moves notes to disk under `dir` until `room(in_file, memory_bytes)`
/// says there is room: the biggest [`FROZEN_TABLES`] of `in_file`'s
/// tables, then all of them, each step only while the tables hold more
/// than [`notes_share`] of `limit` (below it, what fills the budget is not
/// the tables). See [`Notes::freeze_part`]. Charges what stays in memory
/// in their place and, to `peak`, the most the notes held at once on the
/// way.
fn freeze_notes_until(
    in_file: &mut Notes,
    memory_bytes: &mut u64,
    peak: &mut u64,
    limit: u64,
    dir: &std::path::Path,
    room: impl Fn(&Notes, u64) -> bool,
) -> std::io::Result<()> {
    for count in [FROZEN_TABLES, SHARDS] {
        if room(in_file, *memory_bytes) || in_file.in_tables() <= notes_share(limit) {
            break;
        }
        let before = in_file.allocated();
        let held = in_file.freeze_part(dir, count)?;
        let after = in_file.allocated();
        // On the way, the notes held at most `held` bytes in place of
        // `before`: the tables and one of them sorted, then the segments'
        // filters and a merge's buffers (see `Notes::freeze_part`).
        *peak = (*peak).max(memory_bytes.saturating_sub(before).saturating_add(held));
        *memory_bytes = memory_bytes.saturating_sub(before).saturating_add(after);
    }
    Ok(())
}

/// The spill limit error once a stream's scratch file refused a block for
/// its cap ([`SpillOptions::max_spilled`]): the cap holds for the scratch
/// file as for the spill store.
fn scratch_full(scratch: &Scratch) -> Result<()> {
    match scratch.refused() {
        Some((limit, found)) => Err(Error::LimitExceeded { what: "spilled bytes", limit, found }),
        None => Ok(()),
    }
}

/// The offset and length of a packed file position.
fn unpack(packed: u64) -> (u64, u64) {
    (packed >> LEN_BITS, packed & ((1 << LEN_BITS) - 1))
}

/// What the buffer has seen, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BufferStats {
    /// Blocks that arrived a second time (ignored).
    pub(crate) duplicates: u64,
    /// Most bytes held at once (payload and bookkeeping, memory only).
    pub(crate) peak_memory: u64,
    /// Whether anything went to disk.
    pub(crate) spilled: bool,
}

type Key = CidKey;

/// Fingerprints of the blocks that arrived after the walk ended and that
/// nothing links to (see [`Buffer::seen_after_walk`]). Such blocks are
/// hash-checked, so a fingerprint hit needs no confirming.
type DrainedSet = std::collections::HashSet<Key, foldhash::fast::RandomState>;

/// What one [`DrainedSet`] entry is charged: a 16-byte key and its control
/// byte in a table at most 7/8 full that doubles when full, with the old
/// table beside the new one while it grows (at most 408/7, about 58.3
/// bytes an entry, once it holds a few dozen; the first table, of 4
/// buckets, is 84 bytes for its first entry, under the charge of all
/// three it holds).
const DRAINED_ENTRY_COST: u64 = 64;

/// The [`Inner::in_file`] key of `cid`.
fn short(cid: &Cid) -> u64 {
    CidKey::of(cid).short()
}

fn key(cid: &Cid) -> Key {
    CidKey::of(cid)
}

/// A block buffer the MST walker reads through [`BlockRead`].
///
/// `get` *takes* a block (nodes are read once: the walk refuses a node
/// reached twice); `has` answers for buffered blocks and for blocks already
/// handed out, since two keys may point to one record.
#[derive(Debug)]
pub(crate) struct Buffer {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The fast lane: arrived, not yet looked at, in arrival order.
    queue: Queue,
    /// The slow lane.
    memory: CidMap<(Bytes, u64)>,
    /// Payload and bookkeeping of everything held in memory.
    memory_bytes: u64,
    /// What of `memory_bytes` no eviction frees, besides the notes: the
    /// taken set, the scratch file's write buffer, the spill store's
    /// share ([`SpillShare`]).
    held: u64,
    limit: u64,
    /// What spilling takes of `limit`.
    spill_share: SpillShare,
    spill_options: Option<SpillOptions>,
    spill: Option<SpillStore>,
    /// Blocks on their way to the spill store (one batch).
    pending: CidMap<Bytes>,
    pending_bytes: u64,
    /// The input file, for blocks left there (a handle of its own, so
    /// seeking it does not move the reader's position).
    file: Option<Arc<File>>,
    /// Whether blocks that wait are copied out of their read chunk.
    detach: bool,
    /// Blocks left in the input (the file, or the input held whole), or for
    /// a stream in the scratch file: where their bytes start and their
    /// length, packed (see [`pack`]), by short fingerprint
    /// ([`CidKey::short`]; every hit is confirmed against the CID's bytes in
    /// the input), charged by what the tables allocate ([`Notes`]). Out of
    /// order, every block of a file waits here, which is why keys are 8
    /// bytes (with 16, peak RSS of the shuffled 128 MiB repository was
    /// 170.7 MiB instead of 162.9). A block whose
    /// short fingerprint clashes with a waiting block's is not noted (see
    /// [`note`]).
    in_file: Notes,
    /// Every record handed out, with its packed position in the input or
    /// in the scratch file, or more of its digest (see
    /// [`Inner::mark_taken`]), so a second key pointing to it can have its
    /// bytes again.
    taken: Taken,
    /// The whole input, when it is held in memory or mapped (see
    /// [`Buffer::keep_views`] and [`Buffer::view_file`]).
    whole: Option<Bytes>,
    /// Whether views of `whole` are hashed again (a mapped file may change
    /// under the map; bytes held in memory cannot).
    whole_checked: bool,
    /// Bytes read back from the file for repeated records so far.
    repeat_read: u64,
    /// A stream's scratch file: blocks waiting past the budget, and records
    /// kept for a second key (see [`Buffer::keep_records`]). Never made for
    /// an input that can be read again.
    scratch: Option<Scratch>,
    /// Whether records handed out from a stream are appended to the
    /// scratch file for a second key ([`Buffer::keep_records`]).
    keep: bool,
    /// Whether a stream's blocks that wait go straight to the scratch file
    /// (once the budget was first crossed; see [`Inner::index`]).
    waits_in_scratch: bool,
    /// Whether the input has ended (no block will come any more).
    eof: bool,
    /// The record last found missing early (see
    /// [`Inner::first_early_miss`]).
    last_miss: Option<Key>,
    /// Nodes (and the commit) taken from the spill store, where they stay:
    /// at the end, [`Buffer::leftover`] finds them there among the blocks
    /// the walk read, and only those beyond this count arrived twice.
    nodes_from_spill: u64,
    /// Blocks that came after the walk ended, unreferenced, remembered to
    /// tell their repeats (see [`Buffer::seen_after_walk`]).
    drained: DrainedSet,
    stats: BufferStats,
}

/// What [`Buffer::take_record`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordTake {
    /// The record, handed out for the first time.
    Fresh(Bytes),
    /// A record an earlier key took: its bytes viewed again (an input held
    /// in memory), read back and re-hashed from the input file or the
    /// scratch file, or fetched from the spill store; `None` when the
    /// input was a stream whose records are not kept (or past the scratch
    /// file's cap, or 16 MiB and longer), or past [`REPEAT_READ_MAX`].
    Repeat(Option<Bytes>),
    /// Not here: not arrived yet, or (at the end of the input) missing.
    Absent,
}

/// A block as a source hands it over: its CID, its bytes, the CAR bytes
/// its section took, and where the section ends in the input.
pub(crate) type Arrived = (Cid, Bytes, u64, u64);

/// The fast lane: blocks in arrival order, kept in the batches they came
/// in. A batch from the reading thread joins the queue as it is, not block
/// by block: each block (a 96-byte `Cid` among others) is moved once, when
/// it leaves, instead of into a queue slot first.
#[derive(Debug, Default)]
struct Queue {
    /// Each batch, with the index of its first block still queued.
    batches: VecDeque<(Vec<Arrived>, usize)>,
    len: usize,
}

impl Queue {
    fn len(&self) -> usize {
        self.len
    }

    fn front(&self) -> Option<&Arrived> {
        self.batches.front().and_then(|(blocks, head)| blocks.get(*head))
    }

    /// Takes the first block out: its CID, bytes and where its bytes start.
    fn pop_front(&mut self) -> Option<(Cid, Bytes, u64)> {
        let only = self.batches.len() == 1;
        let (blocks, head) = self.batches.front_mut()?;
        let (cid, bytes, _, end) = blocks.get_mut(*head)?;
        let (cid, bytes) = (*cid, std::mem::take(bytes));
        let offset = end.saturating_sub(bytes.len() as u64);
        *head += 1;
        if *head >= blocks.len() {
            if only {
                // Kept, emptied, for the next blocks pushed one at a time
                // (sources without batches): no allocation per pull.
                blocks.clear();
                *head = 0;
            } else {
                self.batches.pop_front();
            }
        }
        self.len = self.len.saturating_sub(1);
        Some((cid, bytes, offset))
    }

    /// Adds one block whose bytes start at `offset`.
    fn push_back(&mut self, cid: Cid, bytes: Bytes, offset: u64) {
        let end = offset.saturating_add(bytes.len() as u64);
        match self.batches.back_mut() {
            Some((blocks, _)) => blocks.push((cid, bytes, 0, end)),
            None => self.batches.push_back((vec![(cid, bytes, 0, end)], 0)),
        }
        self.len = self.len.saturating_add(1);
    }

    /// Adds a batch of blocks as it is. Only the sole batch can be empty
    /// (see [`pop_front`](Self::pop_front)); it gives way, so the front
    /// batch holds the first block whenever there is one.
    fn push_batch(&mut self, blocks: Vec<Arrived>) {
        if blocks.is_empty() {
            return;
        }
        if self.len == 0 {
            self.batches.clear();
        }
        self.len = self.len.saturating_add(blocks.len());
        self.batches.push_back((blocks, 0));
    }

    /// The queued blocks' CIDs and bytes, in order.
    fn iter(&self) -> impl Iterator<Item = (&Cid, &Bytes)> {
        self.batches
            .iter()
            .flat_map(|(blocks, head)| blocks.get(*head..).unwrap_or_default())
            .map(|(cid, bytes, _, _)| (cid, bytes))
    }
}

/// CID equality comparing the digest bytes actually used, not the whole
/// 64-byte digest array the `cid` crate stores.
fn same(a: &Cid, b: &Cid) -> bool {
    let (x, y) = (a.hash().digest(), b.hash().digest());
    // SHA-256 digests (all but exotic CIDs) compare as fixed-size arrays:
    // inline vector compares, not a call to `memcmp`.
    let digests = match (<&[u8; 32]>::try_from(x), <&[u8; 32]>::try_from(y)) {
        (Ok(x), Ok(y)) => x == y,
        _ => x == y,
    };
    digests
        && a.codec() == b.codec()
        && a.hash().code() == b.hash().code()
        && a.version() == b.version()
}

/// Most blocks in the fast lane; beyond that the oldest move on to the slow
/// lane one at a time. In streaming order the queue holds one pull's worth;
/// out of order this keeps a long queue from being moved into the map all
/// at once, which would hold the queue, the old table and the new table
/// together (`tests/bounds.rs`).
const QUEUE_MAX: usize = 1024;

/// What a waiting block costs besides its payload: a slow-lane slot
/// (`Cid`, `Bytes`, offset), counted twice because the map may be at half
/// load after growing, its control byte, and the allocation of its own copy
/// (see [`Inner::index`]).
const SLOT_COST: u64 = 2 * (size_of::<(Cid, (Bytes, u64))>() as u64 + 1) + 32;

/// What a buffered block costs: its payload and its slot.
fn cost(bytes: &Bytes) -> u64 {
    (bytes.len() as u64).saturating_add(SLOT_COST)
}

/// The scratch store's page cache when spilling, at most (redb keeps 1 GiB
/// by default).
const SCRATCH_CACHE: u64 = 4 * 1024 * 1024;

/// The part of the budget spilling takes once it starts, charged whole when
/// the spill store opens and left free by the notes while it may yet open:
/// the batch in flight and the store's page cache, [`SPILL_BATCH_BYTES`]
/// and [`SCRATCH_CACHE`] from a 64 MiB limit up and an eighth of the limit
/// below, so that opening the store does not pass a small limit either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpillShare {
    /// Pending blocks are written once they cost this much.
    batch: u64,
    /// The spill store's page cache.
    cache: u64,
}

impl SpillShare {
    fn of(limit: u64) -> SpillShare {
        let cache = SCRATCH_CACHE.min(limit / 16);
        SpillShare { batch: SPILL_BATCH_BYTES.min(limit / 16), cache }
    }

    /// What the share costs in all.
    fn total(self) -> u64 {
        self.batch + self.cache
    }
}

/// A stream's scratch file write buffer under `limit`: a sixteenth of it
/// at most, so that moving the waiting blocks out frees more than it takes.
fn scratch_buffer_size(limit: u64) -> usize {
    usize::try_from(limit / 16).unwrap_or(SCRATCH_BUFFER).clamp(SCRATCH_BUFFER_MIN, SCRATCH_BUFFER)
}

impl Buffer {
    /// A buffer holding at most `limit` bytes in memory, spilling with
    /// `spill` (or refusing more, if `None`).
    pub(crate) fn new(limit: u64, spill: Option<SpillOptions>) -> Self {
        Buffer {
            inner: Mutex::new(Inner {
                queue: Queue::default(),
                memory: CidMap::default(),
                memory_bytes: 0,
                held: 0,
                limit,
                spill_share: SpillShare::of(limit),
                spill_options: spill,
                spill: None,
                pending: CidMap::default(),
                pending_bytes: 0,
                file: None,
                detach: true,
                in_file: Notes::default(),
                taken: Taken::new(),
                whole: None,
                whole_checked: false,
                repeat_read: 0,
                scratch: None,
                keep: false,
                waits_in_scratch: false,
                eof: false,
                last_miss: None,
                nodes_from_spill: 0,
                drained: DrainedSet::default(),
                stats: BufferStats::default(),
            }),
        }
    }

    // A poisoned lock only means a panic elsewhere while holding it; every
    // update keeps the maps and counters consistent before any call that
    // could panic.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a block that just arrived. Duplicates are noticed when the block
    /// leaves the fast lane.
    /// `offset` is where the block's bytes start in the input.
    pub(crate) fn insert(&self, cid: Cid, bytes: Bytes, offset: u64) -> Result<()> {
        self.lock().insert(cid, bytes, offset)
    }

    /// Adds blocks that just arrived, in order, as [`insert`](Self::insert)
    /// would one by one, under one lock; within the budget the batch joins
    /// the queue as it is.
    pub(crate) fn insert_batch(&self, blocks: Vec<Arrived>) -> Result<()> {
        let mut inner = self.lock();
        let c = blocks.iter().fold(0u64, |sum, (_, bytes, _, _)| sum.saturating_add(cost(bytes)));
        if inner.fits(c) {
            inner.charge(c);
            inner.queue.push_batch(blocks);
            return inner.trim_queue();
        }
        for (cid, bytes, _, end) in blocks {
            let offset = end.saturating_sub(bytes.len() as u64);
            inner.insert(cid, bytes, offset)?;
        }
        Ok(())
    }

    /// Says that blocks are views into `whole`, the input held in memory
    /// (an in-memory CAR), so waiting blocks need not be copied out of it
    /// and a record a second key points to can be viewed again.
    pub(crate) fn keep_views(&self, whole: Bytes) {
        let mut inner = self.lock();
        inner.detach = false;
        inner.whole = Some(whole);
        inner.whole_checked = false;
    }

    /// Lets the buffer view blocks in `map`, the input file mapped into
    /// memory, instead of keeping them: every waiting block costs its
    /// position only, and is hashed again when viewed.
    #[cfg_attr(not(feature = "car"), allow(dead_code, reason = "maps need the car feature"))]
    pub(crate) fn view_file(&self, map: Bytes) {
        let mut inner = self.lock();
        inner.whole = Some(map);
        inner.whole_checked = true;
    }

    /// Lets the buffer leave blocks in `file` (the input) when it is over
    /// budget, reading them back when needed.
    pub(crate) fn set_file(&self, file: Arc<File>) {
        self.lock().file = Some(file);
    }

    /// Keeps every record handed out in the scratch file (made under `dir`
    /// unless spilling made it already; at most `cap` bytes of records),
    /// so a second
    /// key pointing to one gets its bytes: for a stream, whose bytes are
    /// otherwise dropped once handed out. Inputs that can be read again
    /// (held in memory, a file) need not.
    ///
    /// # Errors
    ///
    /// An I/O error if the scratch file cannot be created.
    pub(crate) fn keep_records(&self, dir: &std::path::Path, cap: u64) -> Result<()> {
        let mut inner = self.lock();
        inner.keep = true;
        inner.open_scratch(dir, cap)
    }

    /// Takes a block out of the buffer; `None` if it is not there (or was
    /// already taken). Nodes are taken this way: the walk remembers them.
    pub(crate) fn take(&self, cid: &Cid) -> Result<Option<Bytes>> {
        self.lock().take_node(cid)
    }

    /// Takes a record block and remembers its CID and where it was, since a
    /// second key may point to the same record.
    ///
    /// This is also the walk's presence check for records (one lock and one
    /// queue lookup a record, where asking [`BlockRead::has`] first took
    /// two): [`RecordTake::Absent`] before the end of the input means "not
    /// yet", and the caller asks again after the next blocks. The first
    /// such miss of a record before the end of the input does not ask the
    /// set of taken records (see `Inner::first_early_miss`).
    pub(crate) fn take_record(&self, cid: &Cid) -> Result<RecordTake> {
        let mut inner = self.lock();
        if let Some((bytes, position)) = inner.take(cid)? {
            inner.mark_taken(cid, position, &bytes)?;
            return Ok(RecordTake::Fresh(bytes));
        }
        if !inner.first_early_miss(cid)
            && let Some(value) = inner.taken_before(cid)?
        {
            return Ok(RecordTake::Repeat(inner.again(cid, value)?));
        }
        Ok(RecordTake::Absent)
    }

    /// Says that no more blocks will come.
    pub(crate) fn set_eof(&self) {
        self.lock().eof = true;
    }

    /// Whether block `cid`, arriving after the walk ended and not read by
    /// it, arrived before: it is still buffered (the fast lane included),
    /// was handed out, or came since the walk ended. Remembers it for the
    /// next time while the memory limit has room for
    /// [`DRAINED_ENTRY_COST`] more bytes; past that, a repeat of a block
    /// not remembered is not recognised (it counts as unreferenced).
    pub(crate) fn seen_after_walk(&self, cid: &Cid) -> Result<bool> {
        let mut inner = self.lock();
        if inner.locate(cid)? || inner.knows(cid)? {
            return Ok(true);
        }
        let k = key(cid);
        if inner.drained.contains(&k) {
            return Ok(true);
        }
        if inner.fits(DRAINED_ENTRY_COST) {
            inner.drained.insert(k);
            inner.charge_held(DRAINED_ENTRY_COST);
        }
        Ok(false)
    }

    /// Counts a block that arrived again after it was no longer needed.
    pub(crate) fn count_duplicate(&self) {
        let mut inner = self.lock();
        inner.stats.duplicates = inner.stats.duplicates.saturating_add(1);
    }

    /// Blocks still buffered and their payload bytes: at the end of a walk,
    /// the blocks no part of the repository links to. Blocks for which
    /// `used` says the walk read them (a node, or the commit, that arrived
    /// twice; by fingerprint, or by short fingerprint for blocks left in
    /// the input) count as duplicates instead; `used` must say so for every
    /// block taken with [`Buffer::take`], the ones the spill store keeps
    /// included.
    pub(crate) fn leftover(
        &self,
        used: &dyn Fn(&Key) -> bool,
        used_short: &dyn Fn(u64) -> bool,
    ) -> Result<(u64, u64)> {
        let mut guard = self.lock();
        // Fields borrowed apart: the spill store's scan below asks the
        // taken set, which a lookup changes.
        let inner = &mut *guard;
        inner.index_queue()?;
        let (mut blocks, mut bytes, mut dups) = (0u64, 0u64, 0u64);
        let mut count = |used: bool, len: u64| {
            if used {
                dups = dups.saturating_add(1);
            } else {
                blocks = blocks.saturating_add(1);
                bytes = bytes.saturating_add(len);
            }
        };
        for (cid, (data, _)) in &inner.memory {
            count(used(&key(cid)), data.len() as u64);
        }
        for (cid, data) in &inner.pending {
            // Records taken from the batch stay in it, as in the store.
            if !inner.taken.contains_key(&key(cid))? {
                count(used(&key(cid)), data.len() as u64);
            }
        }
        let mut read_in_spill = 0u64;
        if let Some(spill) = &inner.spill {
            spill.scan(&mut |cid, data| {
                // Blocks taken from the spill store stay in it: records (in
                // the taken set), and nodes, which the walk read.
                let k = key(cid);
                if inner.taken.contains_key(&k)? {
                    return Ok(());
                }
                if used(&k) {
                    read_in_spill = read_in_spill.saturating_add(1);
                } else {
                    count(false, data.len() as u64);
                }
                Ok(())
            })?;
        }
        // Blocks left in the input: not referenced (the walk is over), or a
        // node that arrived twice.
        inner.in_file.for_each(|k, packed| count(used_short(k), unpack(packed).1))?;
        // Of the blocks in the spill store the walk read (nodes, and the
        // commit: `used` says so for both), those beyond the ones it took
        // from there are second copies of blocks taken elsewhere.
        let dups = dups.saturating_add(read_in_spill.saturating_sub(inner.nodes_from_spill));
        inner.stats.duplicates = inner.stats.duplicates.saturating_add(dups);
        Ok((blocks, bytes))
    }

    /// Counters for the report.
    pub(crate) fn stats(&self) -> BufferStats {
        self.lock().stats
    }
}

impl Inner {
    /// Takes a node out (see [`Buffer::take`]): drops it from the spill
    /// batch, and counts those taken from the spill store, where they stay.
    fn take_node(&mut self, cid: &Cid) -> Result<Option<Bytes>> {
        let taken = self.take(cid)?;
        match &taken {
            Some((bytes, IN_BATCH)) => {
                self.pending.remove(cid);
                self.pending_bytes = self.pending_bytes.saturating_sub(cost(bytes));
            }
            Some((_, IN_SPILL)) => {
                self.nodes_from_spill = self.nodes_from_spill.saturating_add(1);
            }
            _ => {}
        }
        Ok(taken.map(|(bytes, _)| bytes))
    }

    /// See [`Buffer::insert`].
    fn insert(&mut self, cid: Cid, bytes: Bytes, offset: u64) -> Result<()> {
        let c = cost(&bytes);
        if !self.fits(c) {
            // The fingerprints of records handed out go to disk first.
            self.freeze_taken()?;
        }
        if self.fits(c) {
            self.charge(c);
            self.queue.push_back(cid, bytes, offset);
            return self.trim_queue();
        }
        // Over budget with nowhere to put blocks: the limit is the answer.
        if self.file.is_none() && self.spill_options.is_none() {
            let found = self.memory_bytes.saturating_add(c);
            return Err(Error::LimitExceeded { what: "memory", limit: self.limit, found });
        }
        // Sort out what is queued (dropping duplicates), then make room,
        // unless the new block is a duplicate too.
        self.index_queue()?;
        if self.knows(&cid)? {
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
            return Ok(());
        }
        // Everything waiting in memory came from the input held whole or
        // its file, or from a stream (then it goes to the scratch file
        // first): keep where it is instead of its bytes (while that
        // bookkeeping fits the budget), then try again.
        self.evict_to_positions()?;
        if self.fits(c) || self.freeze_notes_for(c)? {
            self.charge(c);
            self.queue.push_back(cid, bytes, offset);
            return Ok(());
        }
        self.spill_block(cid, &bytes)
    }

    /// Makes room for `c` more bytes by moving notes to disk when the
    /// notes' tables are what fills the budget ([`freeze_notes_until`]).
    /// Returns whether `c` fits now.
    fn freeze_notes_for(&mut self, c: u64) -> Result<bool> {
        let Some(dir) = self.spill_options.as_ref().map(|o| o.parent.clone()) else {
            return Ok(false);
        };
        // What `fits` counts besides `memory_bytes`, fixed while freezing.
        let extra = self.fits_extra();
        let (limit, peak) = (self.limit, &mut self.stats.peak_memory);
        let room = |_: &Notes, memory: u64| memory.saturating_add(c).saturating_add(extra) <= limit;
        freeze_notes_until(&mut self.in_file, &mut self.memory_bytes, peak, limit, &dir, room)?;
        Ok(self.fits(c))
    }

    /// Whether `c` more bytes fit the budget, beside room for a stream's
    /// scratch file write buffer while it may yet be made: it is charged
    /// before the blocks it lets out leave memory.
    fn fits(&self, c: u64) -> bool {
        self.memory_bytes.saturating_add(c).saturating_add(self.fits_extra()) <= self.limit
    }

    /// The room [`Inner::fits`] keeps for a stream's scratch file write
    /// buffer while it may yet be made.
    fn fits_extra(&self) -> u64 {
        if self.scratch.is_none() && self.spill_options.is_some() && self.is_stream() {
            scratch_buffer_size(self.limit) as u64
        } else {
            0
        }
    }

    /// Counts `c` more bytes held, and the peak.
    fn charge(&mut self, c: u64) {
        self.memory_bytes = self.memory_bytes.saturating_add(c);
        self.stats.peak_memory = self.stats.peak_memory.max(self.memory_bytes);
    }

    /// What [`can_note`] counts as held: [`Inner::held`], and room for the
    /// spill store while it may yet be opened.
    fn held_for_notes(&self) -> u64 {
        let room =
            if self.spill.is_none() && self.may_spill() { self.spill_share.total() } else { 0 };
        self.held.saturating_add(room)
    }

    /// Whether blocks may go to a spill store: spill options naming one
    /// (`no_spill` options only let a stream's blocks wait in the scratch
    /// file).
    fn may_spill(&self) -> bool {
        self.spill_options.as_ref().is_some_and(|o| o.target.is_some())
    }

    /// Counts `c` more bytes held that no eviction frees (see
    /// [`Inner::held`]).
    fn charge_held(&mut self, c: u64) {
        self.held = self.held.saturating_add(c);
        self.charge(c);
    }

    /// Moves the oldest queued blocks on to the slow lane while the queue
    /// holds more than [`QUEUE_MAX`].
    fn trim_queue(&mut self) -> Result<()> {
        while self.queue.len() > QUEUE_MAX {
            if let Some((c, b, o)) = self.queue.pop_front() {
                self.index(c, b, o)?;
            }
        }
        Ok(())
    }

    /// Moves blocks from the front of the queue into the slow lane until
    /// `cid` is at the front (`Ok(true)`) or the queue is empty
    /// (`Ok(false)`).
    fn locate(&mut self, cid: &Cid) -> Result<bool> {
        while let Some((front, _, _, _)) = self.queue.front() {
            if same(front, cid) {
                return Ok(true);
            }
            if let Some((c, b, o)) = self.queue.pop_front() {
                self.index(c, b, o)?;
            }
        }
        Ok(false)
    }

    /// Moves every queued block into the slow lane.
    fn index_queue(&mut self) -> Result<()> {
        while let Some((c, b, o)) = self.queue.pop_front() {
            self.index(c, b, o)?;
        }
        Ok(())
    }

    /// Puts a block that left the queue into the slow lane, or drops it as
    /// a duplicate.
    fn index(&mut self, cid: Cid, bytes: Bytes, offset: u64) -> Result<()> {
        if self.knows(&cid)? {
            self.memory_bytes = self.memory_bytes.saturating_sub(cost(&bytes));
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
            return Ok(());
        }
        // A view of an input held whole waits as its position only (its
        // bytes are viewed again when taken): a note instead of a
        // slow-lane slot.
        //
        // Once a stream has crossed its budget, a block that waits goes to
        // the scratch file at once: the slow lane would only fill up to the
        // budget again, its table growing (the old and the new table held
        // together) on the way, to be written out anyway. Either way, once
        // the notes' tables cannot grow within the budget, the block goes
        // to the spill store instead (checked before it is appended).
        //
        // A block whose short fingerprint is noted for another block (see
        // [`note`]) waits in memory, where it is charged already, and
        // `evict_to_positions` sends it to the spill store past the budget
        // (without one, it stays until taken). A stream's block is checked
        // before it is appended. A block whose table cannot grow beside the
        // blocks waiting in memory ([`NoteRoom::Wait`]) waits in memory too,
        // for `evict_to_positions` to note it once they are notes.
        let whole = self.whole.is_some().then(|| pack(offset, bytes.len())).flatten();
        let clash = self.waits_in_scratch && clashes(&self.in_file, &cid)?;
        if (whole.is_some() || self.waits_in_scratch) && !clash {
            let c = cost(&bytes);
            let room_now = |inner: &Self| {
                let (held, memory) = (inner.held_for_notes(), inner.memory_bytes);
                NoteRoom::of(&inner.in_file, held, memory, inner.limit, &cid, c)
            };
            let mut room = room_now(self);
            if room == NoteRoom::Never {
                // Room for notes, made by moving the taken set to disk,
                // then the notes themselves.
                self.freeze_taken()?;
                if let Some(dir) = self.spill_options.as_ref().map(|o| o.parent.clone()) {
                    let (held, limit) = (self.held_for_notes(), self.limit);
                    let (in_file, memory_bytes) = (&mut self.in_file, &mut self.memory_bytes);
                    let peak = &mut self.stats.peak_memory;
                    let room = |notes: &Notes, _| can_note(notes, held, limit, &cid);
                    freeze_notes_until(in_file, memory_bytes, peak, limit, &dir, room)?;
                }
                room = room_now(self);
            }
            if room == NoteRoom::Never {
                if self.may_spill() {
                    return self.spill_instead(cid, &bytes);
                }
            } else if room != NoteRoom::Wait {
                // Dropping the bytes first is only safe for a block sure to
                // be noted (a stream's was checked above).
                let in_place = room == NoteRoom::InPlace;
                let clash = in_place && !self.waits_in_scratch && clashes(&self.in_file, &cid)?;
                if !clash && let Some(packed) = self.waiting_position(whole, &cid, &bytes)? {
                    let peak = &mut self.stats.peak_memory;
                    if in_place {
                        drop(bytes);
                        self.memory_bytes = self.memory_bytes.saturating_sub(c);
                        // Nothing held its fingerprint: noted.
                        note(&mut self.in_file, &mut self.memory_bytes, peak, &cid, packed, 0)?;
                        return Ok(());
                    }
                    if note(&mut self.in_file, &mut self.memory_bytes, peak, &cid, packed, c)? {
                        return Ok(());
                    }
                }
            }
        }
        // A block read from a stream is a view into its read chunk (128 KiB);
        // one kept for long would keep the whole chunk alive. Blocks that
        // wait get their own allocation (not those viewing a buffer the
        // caller holds whole anyway).
        let bytes = if self.detach { Bytes::copy_from_slice(&bytes) } else { bytes };
        self.memory.insert(cid, (bytes, offset));
        Ok(())
    }

    /// Where block `cid` can wait outside memory: at `whole` (its position
    /// in an input held whole), or appended to a stream's scratch file;
    /// `None` if neither (too long to note, or past the file's cap).
    fn waiting_position(
        &mut self,
        whole: Option<u64>,
        cid: &Cid,
        bytes: &Bytes,
    ) -> Result<Option<u64>> {
        if whole.is_some() {
            return Ok(whole);
        }
        let Some(scratch) = &mut self.scratch else { return Ok(None) };
        let appended = append_section(scratch, Part::Waiting, cid, bytes)?;
        scratch_full(scratch)?;
        Ok(appended)
    }

    /// Touches, for each of `cids` noted as left in the input, its note's
    /// table bucket and the start of its CAR section in the input held
    /// whole or mapped, in one tight loop: the cache and TLB misses of
    /// blocks out of order overlap here, where taking each block at its
    /// turn, among the walk's other work, took them one after another
    /// (the shuffled 128 MiB file, whole process: 0.66 to 0.71 s before,
    /// 0.58 to 0.62 s after; `docs/performance.md`). Changes nothing and
    /// reads no segment or scratch file ([`Notes::peek`]); touching the map
    /// may fault a page of the input in, as the take would. Costs one
    /// check when no block waits in the input (streaming order), and a
    /// hash and a probe of small tables per CID when a few do.
    fn warm(&self, cids: &[Cid]) {
        if self.in_file.is_empty() {
            return;
        }
        let mut touched = 0u8;
        for cid in cids {
            let Some(packed) = self.in_file.peek(short(cid)) else { continue };
            let Some(whole) = &self.whole else { continue };
            let (offset, _) = unpack(packed);
            let Ok(data) = usize::try_from(offset) else { continue };
            // The section starts with the CID, which `fetch` compares
            // first, then the data.
            let start = data.saturating_sub(cid.encoded_len());
            touched ^= whole.get(start).copied().unwrap_or(0);
            touched ^= whole.get(data).copied().unwrap_or(0);
        }
        std::hint::black_box(touched);
    }

    /// Block `cid` at packed `position` of the input, if the CAR section
    /// there is `cid`'s (`None` otherwise): viewed in the input held whole,
    /// which was hashed when read and cannot change; or viewed in the map of
    /// the file, or read from the file with its CID in one read, and hashed
    /// again, since a file may have changed.
    fn fetch(&self, cid: &Cid, position: u64) -> Result<Option<Bytes>> {
        let (offset, len) = unpack(position);
        let mut buf = [0u8; CID_MAX];
        let Some(id) = cid_bytes(cid, &mut buf) else { return Ok(None) };
        let Some(start) = offset.checked_sub(id.len() as u64) else { return Ok(None) };
        let (Ok(start), Ok(len)) = (usize::try_from(start), usize::try_from(len)) else {
            return Ok(None);
        };
        let Some(end) = start.checked_add(id.len()).and_then(|e| e.checked_add(len)) else {
            return Ok(None);
        };
        let section = if let Some(whole) = &self.whole {
            // Shorter than the section: the file shrank under its map.
            let Some(section) = whole.get(start..end) else { return Ok(None) };
            if !section.starts_with(id) {
                return Ok(None);
            }
            let bytes = whole.slice(start.saturating_add(id.len())..end);
            if !self.whole_checked {
                return Ok(Some(bytes));
            }
            bytes
        } else {
            let mut section = vec![0u8; end.saturating_sub(start)];
            if !self.read_back(start as u64, &mut section)? || !section.starts_with(id) {
                return Ok(None);
            }
            Bytes::from(section).slice(id.len()..)
        };
        if !atrepo_car::block_matches(cid, &section) {
            if self.scratch.is_some() {
                // Our own scratch file, not the input: a disk fault.
                let what = format!("block {cid} changed on disk in the scratch file");
                return Err(Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, what)));
            }
            let computed = atrepo_car::blessed_cid(cid.codec(), &section);
            return Err(Error::Car(atrepo_car::Error::HashMismatch {
                offset,
                section: 0,
                claimed: Box::new(*cid),
                computed: Box::new(computed),
            }));
        }
        Ok(Some(section))
    }

    /// Whether the taken-map value `value` (a position or a digest tail)
    /// belongs to `cid`, not just to its fingerprint.
    fn taken_is(&self, cid: &Cid, value: u64) -> Result<bool> {
        if value & TAIL_TAG != 0 {
            return Ok(value == tail(cid));
        }
        self.confirm(cid, value)
    }

    /// Whether the section whose data starts at packed `position` of the
    /// input has `cid` as its CID (the CID's bytes come right before the
    /// data in a CAR section, and were checked against the data when the
    /// block was read).
    fn confirm(&self, cid: &Cid, position: u64) -> Result<bool> {
        let (offset, _) = unpack(position);
        let mut buf = [0u8; CID_MAX];
        let Some(expected) = cid_bytes(cid, &mut buf) else { return Ok(false) };
        let Some(start) = offset.checked_sub(expected.len() as u64) else { return Ok(false) };
        if let Some(whole) = &self.whole {
            let found = usize::try_from(start)
                .ok()
                .and_then(|s| whole.get(s..s.checked_add(expected.len())?));
            return Ok(found == Some(expected));
        }
        let mut found = [0u8; CID_MAX];
        let Some(found) = found.get_mut(..expected.len()) else { return Ok(false) };
        Ok(self.read_back(start, found)? && found == expected)
    }

    /// Reads `out.len()` bytes at `start` of what can be read again at an
    /// offset: the input file, or for a stream the scratch file (never
    /// both: see [`Inner::open_scratch`]). `false` if neither.
    fn read_back(&self, start: u64, out: &mut [u8]) -> Result<bool> {
        if let Some(file) = &self.file {
            read_at(file, out, start)?;
        } else if let Some(scratch) = &self.scratch {
            scratch.read(start, out)?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// For a stream: makes the scratch file under `dir` (at most `cap`
    /// bytes of each [`Part`]) unless it exists, and charges its write
    /// buffer to the budget. Never for an input that can be read again, whose positions
    /// the file lane's notes and the taken set hold instead.
    fn open_scratch(&mut self, dir: &std::path::Path, cap: u64) -> Result<()> {
        if self.is_stream() && self.scratch.is_none() {
            // Past the offsets a position can note, a block could not be
            // found again: the file (both parts) stops there.
            // Its write buffer comes out of the budget (room for it is
            // kept, see `fits`), and is made when the budget is reached.
            let size = scratch_buffer_size(self.limit);
            let scratch = Scratch::create(dir, cap.min(MAX_OFFSET / 2), size).map_err(|e| {
                let what = format!("cannot create a scratch file in {}: {e}", dir.display());
                std::io::Error::new(e.kind(), what)
            })?;
            self.scratch = Some(scratch);
            self.charge_held(size as u64);
        }
        Ok(())
    }

    /// Drops the note of short fingerprint `k`, giving back what its table
    /// shrank by (see [`Notes::remove`]; a table shrinks only while the
    /// smaller one, held beside it for a moment, fits the budget).
    fn unnote(&mut self, k: u64) -> Result<()> {
        let before = self.in_file.allocated();
        let room = self.limit.saturating_sub(self.memory_bytes);
        if let Some((_, smaller)) = self.in_file.remove(k, room)? {
            // The smaller table and the one it replaces, both held.
            let peak = self.memory_bytes.saturating_add(smaller);
            self.stats.peak_memory = self.stats.peak_memory.max(peak);
            let freed = before.saturating_sub(self.in_file.allocated());
            self.memory_bytes = self.memory_bytes.saturating_sub(freed);
        }
        Ok(())
    }

    /// Moves a block that was to be noted, and is charged as waiting in
    /// memory, to the spill store: the notes' tables cannot grow within the
    /// budget. (With spilling off it would wait in memory instead.)
    fn spill_instead(&mut self, cid: Cid, bytes: &Bytes) -> Result<()> {
        self.memory_bytes = self.memory_bytes.saturating_sub(cost(bytes));
        self.spill_block(cid, bytes)
    }

    /// Replaces every block waiting in the slow lane by a note of where it
    /// is: in the input held whole or mapped, in the input file, or for a
    /// stream in the scratch file, to which it is appended now (the file is made on first use). A note costs
    /// less than the block it replaces, so this frees memory, until the
    /// notes' tables cannot grow within the budget: blocks go to the spill
    /// store from then on (here, in [`Inner::index`] and in
    /// [`Inner::insert`]), so that the slow lane does not fill up with
    /// blocks that every later call would look at again. Blocks too long
    /// to note, or past the scratch file's cap, stay; so do blocks whose
    /// table cannot grow beside the blocks still waiting even on a second
    /// pass ([`NoteRoom::Wait`]), when there is no spill store.
    fn evict_to_positions(&mut self) -> Result<()> {
        let stream = self.is_stream();
        if stream {
            let Some(options) = &self.spill_options else { return Ok(()) };
            let (parent, cap) = (options.parent.clone(), options.max_spilled);
            self.open_scratch(&parent, cap)?;
        }
        let before = self.memory.len();
        let (limit, held, spill_ok) = (self.limit, self.held_for_notes(), self.may_spill());
        let dir = self.spill_options.as_ref().map(|o| o.parent.clone());
        let (in_file, memory_bytes) = (&mut self.in_file, &mut self.memory_bytes);
        let peak = &mut self.stats.peak_memory;
        let mut scratch = self.scratch.as_mut().filter(|_| stream);
        let mut failed = None;
        let mut refused = None;
        let mut to_spill = Vec::new();
        // Two passes: a block whose table cannot grow beside the blocks not
        // yet noted ([`NoteRoom::Wait`]) is looked at again once the first
        // pass has made them notes, rather than spilled for want of a
        // moment's room. In the second it goes to the spill store, or
        // stays: a slow lane of blocks left to wait would be looked at
        // again by every later eviction.
        for last in [false, true] {
            let mut deferred = false;
            self.memory.retain(|cid, (bytes, offset)| {
                let c = cost(bytes);
                let full = scratch.as_ref().is_some_and(|s| s.refused().is_some());
                if failed.is_some() || refused.is_some() || full {
                    return true;
                }
                // A fingerprint noted for another block (see [`note`]): a
                // stream's block is not appended to the scratch file again on
                // every pass.
                let clash = match scratch.is_some().then(|| clashes(in_file, cid)).transpose() {
                    Ok(clash) => clash.unwrap_or(false),
                    Err(e) => {
                        failed = Some(e);
                        return true;
                    }
                };
                // Room for notes, made by moving them to disk.
                let room = |notes: &Notes, _| can_note(notes, held, limit, cid);
                if !clash
                    && let Some(dir) = &dir
                    && let Err(e) =
                        freeze_notes_until(in_file, memory_bytes, peak, limit, dir, room)
                {
                    failed = Some(e);
                    return true;
                }
                let room = NoteRoom::of(in_file, held, *memory_bytes, limit, cid, c);
                let noted = match room {
                    _ if clash => false,
                    NoteRoom::Never => {
                        if !spill_ok {
                            refused = Some(in_file.growth(short(cid)));
                        }
                        false
                    }
                    // Its table cannot grow while the other blocks wait in
                    // memory: it waits for the second pass, by when they are
                    // notes; there, to the spill store, or it stays.
                    NoteRoom::Wait if !last => {
                        deferred = true;
                        return true;
                    }
                    NoteRoom::Wait => false,
                    NoteRoom::Beside | NoteRoom::InPlace => {
                        // Dropping the bytes first is only safe for a block
                        // sure to be noted: not one whose short fingerprint
                        // another block's note holds (checked above for a
                        // stream).
                        let in_place = room == NoteRoom::InPlace;
                        let clash =
                            match (in_place && scratch.is_none()).then(|| clashes(in_file, cid)) {
                                None => false,
                                Some(Ok(clash)) => clash,
                                Some(Err(e)) => {
                                    failed = Some(e);
                                    return true;
                                }
                            };
                        if clash {
                            false
                        } else {
                            let packed = match scratch.as_deref_mut() {
                                None => pack(*offset, bytes.len()),
                                Some(scratch) => append_section(scratch, Part::Waiting, cid, bytes)
                                    .unwrap_or_else(|e| {
                                        failed = Some(e);
                                        None
                                    }),
                            };
                            // Too long to note, or past the scratch file's
                            // cap: stays.
                            let Some(packed) = packed else { return true };
                            let c = if in_place {
                                drop(std::mem::take(bytes));
                                *memory_bytes = memory_bytes.saturating_sub(c);
                                0
                            } else {
                                c
                            };
                            match note(in_file, memory_bytes, peak, cid, packed, c) {
                                // Dropped in place, it was noted: nothing held
                                // the fingerprint.
                                Ok(noted) => noted || in_place,
                                Err(e) => {
                                    failed = Some(e);
                                    // Its bytes are gone: not left to be found
                                    // empty (the error ends the input anyway).
                                    return !in_place;
                                }
                            }
                        }
                    }
                };
                if noted {
                    return false;
                }
                // Not noted: to the spill store (still charged until it is
                // there), or left in memory.
                if !spill_ok {
                    return true;
                }
                to_spill.push((*cid, std::mem::take(bytes), c));
                false
            });
            if failed.is_some() || refused.is_some() || !deferred {
                break;
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        if let Some(growth) = refused {
            // Nowhere to go: the notes cannot grow, and there is no spill
            // store. Said now, not after every later block looked at the
            // same slow lane again.
            let found = self.held_for_notes().saturating_add(self.in_file.allocated());
            let found = found.saturating_add(growth);
            return Err(Error::LimitExceeded { what: "memory", limit: self.limit, found });
        }
        if let Some(scratch) = self.scratch.as_ref().filter(|_| stream) {
            scratch_full(scratch)?;
        }
        for (cid, bytes, c) in to_spill {
            self.memory_bytes = self.memory_bytes.saturating_sub(c);
            self.spill_block(cid, &bytes)?;
        }
        if self.memory.len() < before {
            // Left in the file or the scratch file (positions in an input
            // held whole or mapped are not on disk for the walk).
            self.stats.spilled |= self.whole.is_none();
            self.waits_in_scratch = stream;
            self.memory.shrink_to_fit();
        }
        Ok(())
    }

    /// Whether the slow lane, the file lane, the taken set or the spill
    /// store knows `cid` (the queue is not searched).
    fn knows(&mut self, cid: &Cid) -> Result<bool> {
        if self.waits(cid)? {
            return Ok(true);
        }
        Ok(self.taken_before(cid)?.is_some())
    }

    /// If `cid` is a record handed out before, the value the taken set
    /// keeps for it (see [`Inner::mark_taken`]). Fingerprints are digest
    /// prefixes, which a hostile repository can match at will with CIDs of
    /// blocks it does not have: a hit counts only once the whole CID is
    /// confirmed.
    fn taken_before(&mut self, cid: &Cid) -> Result<Option<u64>> {
        match self.taken.get(&key(cid))? {
            Some(value) if self.taken_is(cid, value)? => Ok(Some(value)),
            _ => Ok(None),
        }
    }

    /// Whether this is the first time in a row `cid` is asked for and
    /// missing before the end of the input (and notes it). In streaming
    /// order a record is asked for before it arrives about once per pull
    /// (it comes with the next one). Such a first miss does not ask the set
    /// of taken records: it could only say "a second key points to it",
    /// which the next ask (after the next pull) finds as well. This spares
    /// that set a lookup per pull, and so its sorting (see `taken.rs`).
    fn first_early_miss(&mut self, cid: &Cid) -> bool {
        let k = key(cid);
        if self.eof || self.last_miss == Some(k) {
            return false;
        }
        self.last_miss = Some(k);
        true
    }

    /// Whether `cid` waits in the slow lane, the file lane or the spill
    /// store (the queue is not searched).
    fn waits(&self, cid: &Cid) -> Result<bool> {
        if self.memory.contains_key(cid) || self.pending.contains_key(cid) {
            return Ok(true);
        }
        if let Some(packed) = self.in_file.get(short(cid))?
            && self.confirm(cid, packed)?
        {
            return Ok(true);
        }
        // The spill store is asked directly: a set of what went there would
        // grow with the input, out of the memory budget.
        match &self.spill {
            Some(spill) => Ok(spill.has(cid)?),
            None => Ok(false),
        }
    }

    /// Whether the input is a stream: neither held whole nor a file, so it
    /// cannot be read again (its blocks that wait go to the scratch file).
    fn is_stream(&self) -> bool {
        self.whole.is_none() && self.file.is_none()
    }

    /// The packed position of a block whose bytes start at `offset` of the
    /// input, if the input can be read there again (not a stream).
    fn input_position(&self, offset: u64, bytes: &Bytes) -> u64 {
        if self.is_stream() {
            return NO_POSITION;
        }
        pack(offset, bytes.len()).unwrap_or(NO_POSITION)
    }

    /// Takes a block out: its bytes and its packed position in the input
    /// or the scratch file, or where it came from ([`IN_SPILL`] and
    /// [`IN_BATCH`], where it stays; [`NO_POSITION`] if not known).
    fn take(&mut self, cid: &Cid) -> Result<Option<(Bytes, u64)>> {
        if self.locate(cid)?
            && let Some((_, bytes, offset)) = self.queue.pop_front()
        {
            self.memory_bytes = self.memory_bytes.saturating_sub(cost(&bytes));
            self.drop_earlier_copy(cid, bytes.len())?;
            let position = self.input_position(offset, &bytes);
            return Ok(Some((bytes, position)));
        }
        if let Some((bytes, offset)) = self.memory.remove(cid) {
            self.memory_bytes = self.memory_bytes.saturating_sub(cost(&bytes));
            let position = self.input_position(offset, &bytes);
            return Ok(Some((bytes, position)));
        }
        if !self.pending.is_empty() && self.pending.contains_key(cid) {
            // A record taken before stays in the batch for a second key: it
            // is never handed out afresh.
            if self.taken_before(cid)?.is_some() {
                return Ok(None);
            }
            if let Some(bytes) = self.pending.get(cid) {
                return Ok(Some((bytes.clone(), IN_BATCH)));
            }
        }
        let k = short(cid);
        if let Some(packed) = self.in_file.get(k)?
            && let Some(bytes) = self.fetch(cid, packed)?
        {
            self.unnote(k)?;
            return Ok(Some((bytes, packed)));
        }
        // A block taken from the spill store stays there (scratch stores
        // are write-once), as may an earlier copy of a record taken from
        // elsewhere: a record handed out before is never handed out afresh
        // (the walk remembers nodes itself).
        if self.spill.is_none() || self.taken_before(cid)?.is_some() {
            return Ok(None);
        }
        match &self.spill {
            Some(spill) => Ok(spill.get(cid)?.map(|bytes| (bytes, IN_SPILL))),
            None => Ok(None),
        }
    }

    /// After a block of `len` bytes was taken from the front of the queue:
    /// drops a copy of it that arrived earlier and waits elsewhere (the
    /// slow lane, the spill batch, or noted in the input or the scratch
    /// file), so that copy is not taken again as a block never handed out.
    /// A note must have the same length and CID bytes to be its copy. A
    /// record taken before from the spill batch stays there, for a second
    /// key.
    fn drop_earlier_copy(&mut self, cid: &Cid, len: usize) -> Result<()> {
        let mut dropped = false;
        if !self.memory.is_empty()
            && let Some((copy, _)) = self.memory.remove(cid)
        {
            self.memory_bytes = self.memory_bytes.saturating_sub(cost(&copy));
            dropped = true;
        }
        if !self.pending.is_empty()
            && self.pending.contains_key(cid)
            && self.taken_before(cid)?.is_none()
            && let Some(copy) = self.pending.remove(cid)
        {
            self.pending_bytes = self.pending_bytes.saturating_sub(cost(&copy));
            dropped = true;
        }
        if !self.in_file.is_empty() {
            let k = short(cid);
            if let Some(packed) = self.in_file.get(k)?
                && unpack(packed).1 == len as u64
                && self.confirm(cid, packed)?
            {
                self.unnote(k)?;
                dropped = true;
            }
        }
        if dropped {
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
        }
        Ok(())
    }

    /// The bytes of a record handed out before, for a second key that
    /// points to it (see [`Buffer::take_record`]); `value` is what the
    /// taken set keeps for it ([`Inner::taken_before`]).
    fn again(&mut self, cid: &Cid, value: u64) -> Result<Option<Bytes>> {
        if value & TAIL_TAG != 0 {
            // Only more of the digest was kept: the spill store (or its batch
            // in flight) may have it.
            if value != tail(cid) {
                return Ok(None);
            }
            if let Some(bytes) = self.pending.get(cid) {
                return Ok(Some(bytes.clone()));
            }
            return match &self.spill {
                Some(spill) => Ok(spill.get(cid)?),
                None => Ok(None),
            };
        }
        if self.whole_checked || self.whole.is_none() {
            // Hashed again (a map, or a read from the file): within a budget.
            let read = self.repeat_read.saturating_add(unpack(value).1);
            if read > REPEAT_READ_MAX {
                return Ok(None);
            }
            self.repeat_read = read;
        }
        self.fetch(cid, value)
    }

    fn has(&mut self, cid: &Cid) -> Result<bool> {
        if self.locate(cid)? {
            return Ok(true);
        }
        if self.first_early_miss(cid) {
            return self.waits(cid);
        }
        self.knows(cid)
    }

    fn mark_taken(&mut self, cid: &Cid, position: u64, bytes: &Bytes) -> Result<()> {
        // A position only where the input (or a stream's scratch file) can
        // be read again to confirm the CID and give the bytes to a second
        // key, which is every position `take` gives; else more of the
        // digest. A record taken from the spill store or its batch stays
        // there: `take` and `again` find it by its tail.
        let value = if position & TAIL_TAG == 0 {
            position
        } else if self.keep
            && let Some(scratch) = &mut self.scratch
            && position != IN_SPILL
            && position != IN_BATCH
        {
            append_section(scratch, Part::Kept, cid, bytes)?.unwrap_or_else(|| tail(cid))
        } else {
            tail(cid)
        };
        // The set's own entries go to disk first, before this one is in
        // it; then the entry goes in before anything leaves the queue, so
        // that a later copy of this record queued behind it is known as a
        // repeat; then the rest of the room is made, and the entry charged.
        if !self.fits(TAKEN_OVERHEAD) {
            self.freeze_taken()?;
        }
        self.taken.insert(key(cid), value);
        self.make_room(TAKEN_OVERHEAD)?;
        self.charge_held(TAKEN_OVERHEAD);
        Ok(())
    }

    /// Makes room for `c` more bytes that are not a block (an entry of the
    /// taken set), as [`Inner::insert`] makes room for a block: by noting
    /// the blocks waiting in memory and moving notes to disk. Best effort:
    /// where nothing can be made room for (no file or spill folder to
    /// leave blocks in, or the notes cannot grow and there is no spill
    /// store), `c` is charged over the limit, which the report's peak
    /// shows, rather than failing a record already taken. (A freeze of the
    /// taken set on the way, from [`Inner::index`], counts the entry just
    /// added, not yet charged: the peak is 32 bytes low then.)
    fn make_room(&mut self, c: u64) -> Result<()> {
        if self.fits(c) || (self.file.is_none() && self.spill_options.is_none()) {
            return Ok(());
        }
        self.index_queue()?;
        match self.evict_to_positions() {
            Err(Error::LimitExceeded { .. }) => return Ok(()),
            other => other?,
        }
        self.freeze_notes_for(c)?;
        Ok(())
    }

    /// Moves the taken set's entries to disk (see [`Taken::freeze`]) if
    /// they cost more than [`taken_share`] of the budget and files may be
    /// made beside the input (spill options given; otherwise the set stays
    /// in memory, and past the limit the report's peak shows it): memory
    /// then keeps about 1.4 bytes a record instead of [`TAKEN_OVERHEAD`],
    /// so millions of records stay within a small limit. Called only when
    /// the budget is short (a block or an entry does not fit, or the notes
    /// cannot grow): within it, entries stay in memory, where they cost
    /// nothing more.
    fn freeze_taken(&mut self) -> Result<()> {
        let in_memory = (self.taken.in_memory() as u64).saturating_mul(TAKEN_OVERHEAD);
        if in_memory <= taken_share(self.limit) {
            return Ok(());
        }
        let Some(dir) = self.spill_options.as_ref().map(|o| o.parent.clone()) else {
            return Ok(());
        };
        let before = in_memory.saturating_add(self.taken.frozen_bytes());
        let held = self.taken.freeze(&dir)?;
        let after = self.taken.frozen_bytes();
        // On the way, the set held at most `held` bytes (as its vectors
        // allocate; see `Taken::freeze`) in place of the `before` charged:
        // within it, but for a few thousand entries, whose chunks' unused
        // room can pass what they are charged.
        let peak = self.memory_bytes.saturating_sub(before).saturating_add(held);
        self.stats.peak_memory = self.stats.peak_memory.max(peak);
        self.held = self.held.saturating_sub(before).saturating_add(after);
        self.memory_bytes = self.memory_bytes.saturating_sub(before).saturating_add(after);
        Ok(())
    }

    fn spill_block(&mut self, cid: Cid, bytes: &Bytes) -> Result<()> {
        let Some(options) = self.spill_options.as_ref().filter(|o| o.target.is_some()) else {
            // Nowhere to spill: the buffer's own limit is the answer (not a
            // spill store's, opened only to refuse).
            let found = self.memory_bytes.saturating_add(cost(bytes));
            return Err(Error::LimitExceeded { what: "memory", limit: self.limit, found });
        };
        if self.spill.is_none() {
            // Everything beyond the budget goes straight to disk, through a
            // store with a small cache; room for the cache and the batch in
            // flight is made by moving waiting blocks there too.
            let share = self.spill_share;
            let open = atrepo_store::OpenOptions::scratch().cache_bytes(Some(share.cache));
            let options = options.clone().memory_limit(0).open_options(open);
            self.spill = Some(SpillStore::new(options)?);
            self.stats.spilled = true;
            self.evict_to_spill(share.total())?;
            self.charge_held(share.total());
        }
        // Counted with per-block overhead, so that a batch of tiny blocks
        // is bounded in memory too, not only in payload.
        self.pending_bytes = self.pending_bytes.saturating_add(cost(bytes));
        self.pending.insert(cid, Bytes::copy_from_slice(bytes));
        if self.pending_bytes >= self.spill_share.batch {
            self.flush_pending()?;
        }
        Ok(())
    }

    /// Moves blocks from the slow lane to the spill store until the budget
    /// holds `room` more bytes (or the slow lane is empty).
    fn evict_to_spill(&mut self, room: u64) -> Result<()> {
        let mut freed = 0u64;
        let over = self.memory_bytes.saturating_add(room).saturating_sub(self.limit);
        let mut moved = Vec::new();
        self.memory.retain(|cid, (bytes, _)| {
            if freed >= over {
                return true;
            }
            freed = freed.saturating_add(cost(bytes));
            moved.push((*cid, bytes.clone()));
            false
        });
        self.memory_bytes = self.memory_bytes.saturating_sub(freed);
        let Some(spill) = &self.spill else { return Ok(()) };
        let mut batch = Batch::new();
        for (cid, bytes) in moved {
            batch.put(cid, bytes);
            if batch.payload_bytes() >= self.spill_share.batch {
                spill.write(std::mem::take(&mut batch))?;
            }
        }
        spill.write(batch)?;
        self.memory.shrink_to_fit();
        Ok(())
    }

    /// Writes the waiting blocks to the spill store in one transaction.
    fn flush_pending(&mut self) -> Result<()> {
        let Some(spill) = &self.spill else { return Ok(()) };
        let batch: Batch = self.pending.drain().collect();
        self.pending_bytes = 0;
        spill.write(batch)?;
        Ok(())
    }
}

fn store_error(e: Error) -> atrepo_store::Error {
    match e {
        Error::Store(e) => e,
        other => atrepo_store::Error::Callback(Box::new(other)),
    }
}

impl BlockRead for Buffer {
    fn get(&self, cid: &Cid) -> atrepo_store::Result<Option<Bytes>> {
        self.lock().take_node(cid).map_err(store_error)
    }

    fn has(&self, cid: &Cid) -> atrepo_store::Result<bool> {
        self.lock().has(cid).map_err(store_error)
    }

    /// Says `false` for every block (taking a block takes it out, so
    /// nothing can be promised; see [`BlockRead::look_ahead`]), but starts
    /// the cache misses of blocks left in the input: see [`Inner::warm`].
    fn look_ahead(&self, cids: &[Cid], present: &mut Vec<bool>) -> atrepo_store::Result<()> {
        present.clear();
        present.resize(cids.len(), false);
        if !cids.is_empty() {
            self.lock().warm(cids);
        }
        Ok(())
    }

    fn scan(
        &self,
        f: &mut dyn FnMut(&Cid, &[u8]) -> atrepo_store::Result<()>,
    ) -> atrepo_store::Result<()> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let queued = inner.queue.iter();
        let indexed = inner.memory.iter().map(|(c, (b, _))| (c, b));
        for (cid, bytes) in queued.chain(indexed).chain(&inner.pending) {
            f(cid, bytes)?;
        }
        if let Some(spill) = &inner.spill {
            spill.scan(&mut |cid, bytes| {
                if inner.taken.contains_key(&key(cid))? { Ok(()) } else { f(cid, bytes) }
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::notes::FIRST_TABLE;
    use atrepo_car::{DAG_CBOR, blessed_cid};

    fn block(n: u32) -> (Cid, Bytes) {
        let bytes = Bytes::from(n.to_be_bytes().to_vec());
        (blessed_cid(DAG_CBOR, &bytes), bytes)
    }

    /// `before`, then a CAR section's CID and data: the input and where the
    /// data starts.
    fn laid_out(before: &[u8], cid: &Cid, data: &[u8]) -> (Vec<u8>, u64) {
        let mut input = before.to_vec();
        input.extend(cid.to_bytes());
        let at = input.len() as u64;
        input.extend_from_slice(data);
        (input, at)
    }

    /// CAR sections of blocks made of `n`'s big-endian bytes repeated
    /// `repeat` times, for each `n` in `ns`: the input and each block's
    /// CID, bytes and where its data starts.
    fn sections(ns: std::ops::Range<u32>, repeat: usize) -> (Vec<u8>, Vec<(Cid, Bytes, u64)>) {
        let mut input = Vec::new();
        let mut blocks = Vec::new();
        for n in ns {
            let bytes = Bytes::from(n.to_be_bytes().repeat(repeat));
            let cid = blessed_cid(DAG_CBOR, &bytes);
            input.extend(cid.to_bytes());
            let at = input.len() as u64;
            input.extend_from_slice(&bytes);
            blocks.push((cid, bytes, at));
        }
        (input, blocks)
    }

    fn file_of(input: &[u8]) -> Arc<File> {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(input).unwrap();
        Arc::new(file)
    }

    #[test]
    fn a_repeated_record_is_viewed_again_from_an_input_held_whole() {
        let (cid, bytes) = block(7);
        let (mut input, at) = laid_out(b"head", &cid, &bytes);
        input.extend_from_slice(b"tail");
        let whole = Bytes::from(input);
        let buffer = Buffer::new(1 << 20, None);
        buffer.keep_views(whole.clone());
        let start = usize::try_from(at).unwrap();
        buffer.insert(cid, whole.slice(start..start + 4), at).unwrap();
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(bytes.clone()));
        // Before the end of the input, the first miss is "not yet".
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Absent);
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Repeat(Some(bytes)));
    }

    #[test]
    fn a_repeated_record_is_read_back_from_the_file_within_a_budget() {
        let (cid, bytes) = block(9);
        let (input, at) = laid_out(b"0123456789", &cid, &bytes);
        let buffer = Buffer::new(1 << 20, None);
        buffer.set_file(file_of(&input));
        buffer.insert(cid, bytes.clone(), at).unwrap();
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(bytes.clone()));
        // At the end of the input, the first ask finds it taken.
        buffer.set_eof();
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Repeat(Some(bytes.clone())));
        // Past the re-reading budget the bytes are not read again.
        buffer.lock().repeat_read = REPEAT_READ_MAX;
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Repeat(None));
    }

    #[test]
    fn a_view_of_a_mapped_file_is_hashed_again() {
        let (cid, bytes) = block(13);
        let (other, _) = block(14);
        // The map shows other bytes than the ones read (the file changed).
        let (changed, at) = laid_out(b"", &cid, b"\0\0\0\0");
        let buffer = Buffer::new(1 << 20, None);
        buffer.view_file(Bytes::from(changed));
        buffer.insert(cid, bytes.clone(), at).unwrap();
        // Looking for another block moves this one out of the queue: it
        // waits as its position in the map.
        assert_eq!(buffer.take(&other).unwrap(), None);
        let err = buffer.take(&cid).unwrap_err();
        assert!(matches!(err, Error::Car(atrepo_car::Error::HashMismatch { .. })), "{err}");
        // Unchanged bytes are viewed, not copied.
        let buffer = Buffer::new(1 << 20, None);
        let (input, at) = laid_out(b"xx", &cid, &bytes);
        let map = Bytes::from(input);
        buffer.view_file(map.clone());
        buffer.insert(cid, bytes.clone(), at).unwrap();
        assert_eq!(buffer.take(&other).unwrap(), None);
        let viewed = buffer.take(&cid).unwrap().unwrap();
        assert_eq!(viewed, bytes);
        assert_eq!(viewed.as_ptr(), map[usize::try_from(at).unwrap()..].as_ptr());
    }

    /// `look_ahead` promises nothing and changes nothing: blocks noted in
    /// the map are taken afterwards exactly as without it, a changed block
    /// is still caught, and notes past the end of a map that shrank are
    /// skipped without a panic.
    #[test]
    fn looking_ahead_says_false_and_leaves_every_block_as_it_was() {
        let (a, x) = block(21);
        let (b, y) = block(22);
        let (changed, _) = block(23);
        let (other, _) = block(24);
        let mut input = b"xx".to_vec();
        let mut at = Vec::new();
        for (cid, data) in [(a, &x[..]), (b, &y[..]), (changed, b"\0\0\0\0")] {
            input.extend(cid.to_bytes());
            at.push(input.len() as u64);
            input.extend_from_slice(data);
        }
        let buffer = Buffer::new(1 << 20, None);
        buffer.view_file(Bytes::from(input));
        buffer.insert(a, x.clone(), at[0]).unwrap();
        buffer.insert(b, y.clone(), at[1]).unwrap();
        buffer.insert(changed, block(23).1, at[2]).unwrap();
        // Looking for another block moves these out of the queue: they
        // wait as positions in the map.
        assert_eq!(buffer.take(&other).unwrap(), None);
        assert_eq!(buffer.lock().in_file.len(), 3);
        {
            // What `warm` touches is what a take finds.
            let inner = buffer.lock();
            for cid in [a, b, changed] {
                let noted = inner.in_file.peek(short(&cid));
                assert!(noted.is_some());
                assert_eq!(noted, inner.in_file.get(short(&cid)).unwrap());
            }
            assert_eq!(inner.in_file.peek(short(&other)), None);
        }
        // One lock at a time: each guard lives to the end of its statement.
        let state = |buffer: &Buffer| {
            let stats = buffer.stats();
            let inner = buffer.lock();
            (stats, inner.memory_bytes, inner.in_file.len())
        };
        let before = state(&buffer);
        let mut present = vec![true; 9];
        let asked = [a, other, b, changed, a];
        buffer.look_ahead(&asked, &mut present).unwrap();
        assert_eq!(present, [false; 5]);
        assert_eq!(state(&buffer), before);
        assert_eq!(buffer.take(&b).unwrap(), Some(y));
        assert_eq!(buffer.take(&a).unwrap(), Some(x));
        let err = buffer.take(&changed).unwrap_err();
        assert!(matches!(err, Error::Car(atrepo_car::Error::HashMismatch { .. })), "{err}");
        buffer.look_ahead(&[], &mut present).unwrap();
        assert!(present.is_empty());

        // A map shorter than the positions noted (the file shrank).
        let (c, z) = block(25);
        let (short_map, at) = laid_out(b"xx", &c, &z);
        let buffer = Buffer::new(1 << 20, None);
        buffer.view_file(Bytes::from(short_map[..3].to_vec()));
        buffer.insert(c, z, at).unwrap();
        assert_eq!(buffer.take(&other).unwrap(), None);
        buffer.look_ahead(&[c], &mut present).unwrap();
        assert_eq!(present, [false]);
        assert_eq!(buffer.take(&c).unwrap(), None);
    }

    #[test]
    fn a_fingerprint_hit_counts_only_for_the_whole_cid() {
        let (cid, bytes) = block(15);
        // Same fingerprint (a digest prefix), another digest.
        let mut digest = cid.hash().digest().to_vec();
        digest[20] ^= 1;
        let twin =
            Cid::new_v1(cid.codec(), cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap());
        assert_eq!(key(&twin), key(&cid));
        for readable in ["stream", "whole", "file"] {
            let (input, at) = laid_out(b"", &cid, &bytes);
            let buffer = Buffer::new(1 << 20, None);
            match readable {
                "whole" => buffer.keep_views(Bytes::from(input)),
                "file" => buffer.set_file(file_of(&input)),
                _ => {}
            }
            buffer.insert(cid, bytes.clone(), at).unwrap();
            // Waiting (as a position when the input is held whole): the twin
            // is not there.
            assert!(!buffer.has(&twin).unwrap(), "readable: {readable}");
            assert_eq!(buffer.take(&twin).unwrap(), None);
            // Taken: the twin is neither seen nor handed the bytes.
            assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(bytes.clone()));
            assert!(!buffer.has(&twin).unwrap(), "readable: {readable}");
            assert!(buffer.has(&cid).unwrap());
            // Nor is the twin taken as a repeat of the record.
            buffer.set_eof();
            assert_eq!(buffer.take_record(&twin).unwrap(), RecordTake::Absent, "{readable}");
            assert!(matches!(buffer.take_record(&cid).unwrap(), RecordTake::Repeat(_)));
        }
    }

    #[test]
    fn a_repeated_record_read_back_is_hashed_again() {
        let (cid, bytes) = block(11);
        // Not the bytes the CID names, where the block claims to be.
        let (input, at) = laid_out(b"", &cid, b"\0\0\0\0");
        let buffer = Buffer::new(1 << 20, None);
        buffer.set_file(file_of(&input));
        buffer.insert(cid, bytes.clone(), at).unwrap();
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(bytes));
        buffer.set_eof();
        let err = buffer.take_record(&cid).unwrap_err();
        assert!(matches!(err, Error::Car(atrepo_car::Error::HashMismatch { .. })), "{err}");
    }

    #[test]
    fn a_batch_joins_the_queue_as_it_is_and_leaves_in_order() {
        let blocks: Vec<(Cid, Bytes)> = (20..25).map(block).collect();
        let arrived = |i: usize| (blocks[i].0, blocks[i].1.clone(), 40, 1000 + i as u64);
        let buffer = Buffer::new(1 << 20, None);
        buffer.insert(blocks[0].0, blocks[0].1.clone(), 0).unwrap();
        buffer.insert_batch((1..4).map(arrived).collect()).unwrap();
        buffer.insert(blocks[4].0, blocks[4].1.clone(), 0).unwrap();
        assert_eq!(buffer.lock().queue.len(), 5);
        let queued: Vec<Cid> = buffer.lock().queue.iter().map(|(c, _)| *c).collect();
        assert_eq!(queued, blocks.iter().map(|(c, _)| *c).collect::<Vec<_>>());
        // Out of order: the ones in front move to the slow lane on the way.
        assert_eq!(buffer.take(&blocks[2].0).unwrap(), Some(blocks[2].1.clone()));
        for i in [0, 1, 3, 4] {
            assert_eq!(buffer.take(&blocks[i].0).unwrap(), Some(blocks[i].1.clone()), "{i}");
        }
        assert_eq!(buffer.lock().queue.len(), 0);
        // The emptied batch is kept for single blocks; a batch pushed now
        // takes its place at the front.
        buffer.insert_batch((1..3).map(arrived).collect()).unwrap();
        buffer.insert(blocks[4].0, blocks[4].1.clone(), 0).unwrap();
        for i in [1, 2, 4] {
            assert_eq!(buffer.lock().queue.pop_front().map(|(c, _, _)| c), Some(blocks[i].0));
        }
        // Where a batch block's bytes start: its section's end less its length.
        let buffer = Buffer::new(1 << 20, None);
        buffer.insert_batch(vec![arrived(1)]).unwrap();
        let (_, bytes, offset) = buffer.lock().queue.pop_front().unwrap();
        assert_eq!(offset, 1001 - bytes.len() as u64);
        // Over the budget with nowhere to go, a batch is refused as single
        // blocks are.
        let small = Buffer::new(8, None);
        let err = small.insert_batch(vec![arrived(1)]).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { what: "memory", .. }), "{err}");
    }

    #[test]
    fn blocks_are_taken_once_and_remembered_as_seen() {
        let buffer = Buffer::new(1 << 20, None);
        let (cid, bytes) = block(1);
        buffer.insert(cid, bytes.clone(), 0).unwrap();
        assert!(buffer.has(&cid).unwrap());
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(bytes.clone()));
        // Still "present" for a second key, once asked again (the first ask
        // before the end of the input leaves the taken set out; see
        // `Inner::has`); from a stream, its bytes are no longer held.
        assert!(!buffer.has(&cid).unwrap());
        assert!(buffer.has(&cid).unwrap());
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Repeat(None));
        // At the end of the input, the first ask says so.
        let (other, other_bytes) = block(2);
        buffer.insert(other, other_bytes.clone(), 0).unwrap();
        assert_eq!(buffer.take_record(&other).unwrap(), RecordTake::Fresh(other_bytes));
        buffer.set_eof();
        assert!(buffer.has(&other).unwrap());
        // Arriving again is a duplicate, noticed once it leaves the queue.
        buffer.insert(cid, bytes, 0).unwrap();
        assert_eq!(buffer.leftover(&|_| false, &|_| false).unwrap(), (0, 0));
        assert_eq!(buffer.stats().duplicates, 1);
    }

    #[test]
    fn out_of_order_blocks_are_found_in_the_slow_lane() {
        let buffer = Buffer::new(1 << 20, None);
        let blocks: Vec<_> = (0..10).map(block).collect();
        for (cid, bytes) in &blocks {
            buffer.insert(*cid, bytes.clone(), 0).unwrap();
        }
        for (cid, bytes) in blocks.iter().rev() {
            assert_eq!(buffer.take(cid).unwrap().as_ref(), Some(bytes));
        }
        assert_eq!(buffer.leftover(&|_| false, &|_| false).unwrap(), (0, 0));
    }

    #[test]
    fn a_block_changed_in_the_file_is_caught_on_read_back() {
        let (cid, bytes) = block(7);
        // Not the bytes the CID names.
        let (input, at) = laid_out(b"", &cid, b"\0\0\0\x08");
        // Room for one block and the first table of notes.
        let buffer = Buffer::new(SLOT_COST + 4 + FIRST_TABLE, None);
        buffer.set_file(file_of(&input));
        // Two blocks: the second pushes the first out of memory, into the file.
        buffer.insert(cid, bytes, at).unwrap();
        let (other, more) = block(8);
        buffer.insert(other, more, 100).unwrap();
        let err = buffer.take(&cid).unwrap_err();
        assert!(matches!(err, Error::Car(atrepo_car::Error::HashMismatch { .. })), "{err:?}");
    }

    /// Blocks waiting in memory become notes of their positions once the
    /// budget is reached: all of them for a file that cannot be viewed
    /// whole, those a growing table had no room for when they left the
    /// queue for an input held whole. A notes' table that grows there is
    /// made while the blocks not yet noted are still held: the peak must
    /// count them and stay within the limit. Which block's table grows when
    /// depends on the notes' random hashing, so a few limits are tried.
    /// (Before, with a file, the peak passed the limit by up to 500 bytes
    /// in over half the runs at each limit, and in 40% of the runs of
    /// `a_file_in_any_order_verifies_with_blocks_left_in_the_file`.)
    #[test]
    fn blocks_left_in_the_input_stay_within_the_limit_while_notes_grow() {
        let (input, sections) = sections(0..1000, 16);
        let blocks: Vec<(Cid, usize)> =
            sections.iter().map(|(cid, _, at)| (*cid, usize::try_from(*at).unwrap())).collect();
        let (file, whole) = (file_of(&input), Bytes::from(input));
        let dir = tempfile::tempdir().unwrap();
        for readable in ["file", "whole"] {
            for limit in (36..72).step_by(4).map(|k| k * 1024) {
                // An input held whole with no spill options at all is
                // refused at the budget (`over_budget_without_spill_is_a_limit_error`):
                // options that spill nothing let its blocks become notes.
                let buffer = match readable {
                    "file" => Buffer::new(limit, None),
                    _ => Buffer::new(
                        limit,
                        Some(SpillOptions::default().parent(dir.path()).no_spill()),
                    ),
                };
                match readable {
                    "file" => buffer.set_file(Arc::clone(&file)),
                    _ => buffer.keep_views(whole.clone()),
                }
                for &(cid, at) in &blocks {
                    buffer.insert(cid, whole.slice(at..at + 64), at as u64).unwrap();
                }
                let stats = buffer.stats();
                let peak = stats.peak_memory;
                assert!(peak <= limit, "{readable}: {peak} > {limit}");
                if readable == "file" {
                    assert!(stats.spilled, "{limit}: blocks should have been left in the file");
                }
                for &(cid, at) in blocks.iter().rev() {
                    let found = buffer.take(&cid).unwrap();
                    assert_eq!(found, Some(whole.slice(at..at + 64)), "{readable}: {cid}");
                }
                let peak = buffer.stats().peak_memory;
                assert!(peak <= limit, "{readable}, after taking: {peak} > {limit}");
                // Every block given back, nothing charged twice or left
                // behind: what remains is the notes' (shrunk) tables.
                let inner = buffer.lock();
                assert_eq!(inner.memory.len(), 0, "{readable}");
                assert_eq!(inner.memory_bytes, inner.in_file.allocated(), "{readable}");
            }
        }
    }

    /// A block's table grows beside what is charged, in place of the
    /// block's bytes, or not now; never when the notes cannot grow beside
    /// what is held (room kept for the spill store included, which memory
    /// does not count); a table with room never waits, even over the limit.
    #[test]
    fn a_note_grows_its_table_beside_or_in_place_of_the_block() {
        let mut notes = Notes::default();
        let (cid, _) = block(1);
        let growth = notes.growth(short(&cid));
        assert_eq!(growth, FIRST_TABLE);
        let (limit, c) = (10_000, 300);
        let at = |held, memory| NoteRoom::of(&notes, held, memory, limit, &cid, c);
        assert_eq!(at(0, limit - growth), NoteRoom::Beside);
        assert_eq!(at(0, limit - growth + 1), NoteRoom::InPlace);
        assert_eq!(at(0, limit - growth + c), NoteRoom::InPlace);
        assert_eq!(at(0, limit - growth + c + 1), NoteRoom::Wait);
        // Held past what the notes may grow into: never, whatever memory.
        assert_eq!(at(limit - growth, 0), NoteRoom::Beside);
        assert_eq!(at(limit - growth + 1, 0), NoteRoom::Never);
        notes.insert(short(&cid), 1).unwrap();
        assert_eq!(notes.growth(short(&cid)), 0);
        assert_eq!(NoteRoom::of(&notes, limit, limit + c + 1, limit, &cid, c), NoteRoom::Beside);
    }

    #[test]
    fn over_budget_without_spill_is_a_limit_error() {
        let buffer = Buffer::new(SLOT_COST + 4, None);
        let (a, x) = block(1);
        let (b, y) = block(2);
        buffer.insert(a, x, 0).unwrap();
        let err = buffer.insert(b, y, 4).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { what: "memory", .. }), "{err:?}");
    }

    /// The room a spill sets aside (the scratch store's cache and the batch
    /// in flight) counts in the budget and in the peak the report gives.
    #[cfg(feature = "redb")]
    #[test]
    fn a_spill_charges_its_share_to_the_peak() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path());
        let buffer = Buffer::new(SLOT_COST + 4, Some(spill));
        for n in 0..3 {
            let (cid, bytes) = block(n);
            buffer.insert(cid, bytes, 0).unwrap();
        }
        let stats = buffer.stats();
        assert!(stats.spilled);
        let share = SpillShare::of(SLOT_COST + 4).total();
        assert!(stats.peak_memory >= share, "{} < {share}", stats.peak_memory);
    }

    /// Under a small limit the spill store's share (its batch and cache)
    /// shrinks with the limit and is made room for before it is charged,
    /// so opening the store does not pass the limit; every block comes
    /// back.
    #[cfg(feature = "redb")]
    #[test]
    fn a_spill_under_a_small_limit_stays_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path());
        let limit = 1024 * 1024;
        let buffer = Buffer::new(limit, Some(spill));
        let blocks: Vec<_> = (0..4000u32)
            .map(|n| {
                let bytes = Bytes::from(n.to_be_bytes().repeat(256));
                (blessed_cid(DAG_CBOR, &bytes), bytes)
            })
            .collect();
        for (cid, bytes) in &blocks {
            buffer.insert(*cid, bytes.clone(), 0).unwrap();
        }
        let stats = buffer.stats();
        assert!(stats.spilled);
        // Within the limit, a notes table's growth included (see
        // `NoteRoom`): it was 8 MiB over once, then a few KiB.
        let bound = limit;
        assert!(stats.peak_memory <= bound, "{} > {bound}", stats.peak_memory);
        assert!(stats.peak_memory >= SpillShare::of(limit).total());
        for (cid, bytes) in blocks.iter().rev() {
            assert_eq!(buffer.take(cid).unwrap(), Some(bytes.clone()), "{cid}");
        }
    }

    /// A stream past its budget: every block that waits goes to the
    /// scratch file and is noted (a 16-byte entry in a table) instead of
    /// held; the spill store is never made (`no_spill` would make reaching
    /// for it a limit error); each block comes back whole, in any order.
    #[test]
    fn a_stream_past_its_budget_waits_in_the_scratch_file() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path()).no_spill();
        // Room for 64 blocks: the scratch file's smallest write buffer and
        // 400 notes fit in it.
        let limit = 64 * (SLOT_COST + 4);
        let buffer = Buffer::new(limit, Some(spill));
        let blocks: Vec<_> = (0..400).map(block).collect();
        for (i, (cid, bytes)) in blocks.iter().enumerate() {
            buffer.insert(*cid, bytes.clone(), i as u64 * 100).unwrap();
        }
        {
            let inner = buffer.lock();
            assert!(inner.spill.is_none());
            assert!(inner.waits_in_scratch);
            assert!(inner.memory.is_empty());
            assert!(inner.in_file.len() > 300, "{} noted", inner.in_file.len());
            assert!(inner.memory_bytes <= limit, "{} > {limit}", inner.memory_bytes);
        }
        assert!(buffer.stats().spilled);
        for (cid, bytes) in blocks.iter().rev() {
            assert_eq!(buffer.take(cid).unwrap(), Some(bytes.clone()), "{cid}");
        }
        let inner = buffer.lock();
        assert!(inner.in_file.is_empty());
        // Only the scratch file's write buffer and the notes' tables (shrunk
        // as they emptied, not freed) are left: the charge is what they hold.
        assert!(inner.in_file.allocated() > 0);
        assert_eq!(inner.memory_bytes, SCRATCH_BUFFER_MIN as u64 + inner.in_file.allocated());
    }

    /// A stream of many records in streaming order, each taken as it
    /// arrives: the taken set's entries move to disk past their share of
    /// the budget (they cost 32 bytes a record in memory, which alone
    /// passed the limit here fourfold), and a second key still gets an
    /// early record's bytes.
    #[test]
    fn the_taken_set_of_many_records_moves_to_disk_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path()).no_spill();
        let limit = 256 * 1024;
        let buffer = Buffer::new(limit, Some(spill));
        buffer.keep_records(dir.path(), u64::MAX).unwrap();
        let n = 30_000u32;
        for i in 0..n {
            let (cid, bytes) = block(i);
            buffer.insert(cid, bytes.clone(), u64::from(i) * 100).unwrap();
            assert!(
                matches!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(b) if b == bytes)
            );
        }
        let frozen = {
            let inner = buffer.lock();
            let in_memory = inner.taken.in_memory() as u64 * TAKEN_OVERHEAD;
            assert!(in_memory <= limit, "{in_memory} bytes of entries in memory");
            let frozen = inner.taken.frozen_bytes();
            assert!(frozen > 0 && frozen < 2 * u64::from(n), "{frozen} bytes frozen");
            frozen
        };
        // Every record is still known, with its bytes (kept in the
        // scratch file), wherever its entry is. (Before the end of the
        // input a first miss would be "not yet".)
        buffer.set_eof();
        for i in (0..n).step_by(1_009) {
            let (cid, bytes) = block(i);
            match buffer.take_record(&cid).unwrap() {
                RecordTake::Repeat(Some(b)) => assert_eq!(b, bytes, "record {i}"),
                other => panic!("record {i}: {other:?}"),
            }
        }
        // Freezing stays within the limit too: the new segment's filter is
        // built once the entries it replaces are freed, and a merge frees
        // the old filters before it builds the new one.
        let peak = buffer.stats().peak_memory;
        assert!(peak <= limit, "peak {peak} over {limit} ({frozen} bytes frozen)");
    }

    /// Records taken while the budget is full: each adds an entry to the
    /// taken set, charged 32 bytes, and a record read back from the input
    /// file frees no block's bytes (the blocks queued before it move to
    /// the slow lane, still in memory). Here each record taken is followed
    /// by a new block, which fills the budget again to within a block of
    /// the limit. The entry's room is made before it is charged (the
    /// blocks waiting in memory become notes), with and without a spill
    /// folder. Where the budget is left depends on the limit, so limits 8
    /// bytes apart are tried. (Before, the entry was charged first, and
    /// the peak passed the limit by up to 32 bytes.)
    #[test]
    fn records_taken_while_the_budget_is_full_stay_within_it() {
        let (input, blocks) = sections(0..4_000, 250);
        let file = file_of(&input);
        let (first, later) = blocks.split_at(2_000);
        let dir = tempfile::tempdir().unwrap();
        let spills = [None, Some(SpillOptions::default().parent(dir.path()).no_spill())];
        for (limit, spill) in (0..6).map(|k| 512 * 1024 + k * 8).zip(spills.iter().cycle()) {
            let buffer = Buffer::new(limit, spill.clone());
            buffer.set_file(Arc::clone(&file));
            let insert = |(cid, bytes, at): &(Cid, Bytes, u64)| {
                buffer.insert(*cid, bytes.clone(), *at).unwrap();
            };
            first.iter().for_each(insert);
            for (taken, new) in first.iter().zip(later) {
                let found = buffer.take_record(&taken.0).unwrap();
                assert!(matches!(found, RecordTake::Fresh(b) if b == taken.1), "{limit}");
                insert(new);
            }
            let stats = buffer.stats();
            assert!(stats.spilled, "{limit}: blocks should have been left in the file");
            assert!(stats.peak_memory <= limit, "{limit}: peak {}", stats.peak_memory);
            assert_eq!(buffer.lock().taken.in_memory(), later.len());
        }
    }

    /// Notes dropped while the budget is full: a table left under a
    /// quarter full shrinks, and the smaller table is made while the old
    /// one is still held, so it shrinks only when that fits; later, with
    /// room, it does. (Before, it shrank anyway and the peak passed the
    /// limit by the smaller table.) Memory is set near the limit by hand,
    /// as blocks waiting in memory would hold it.
    #[test]
    fn notes_dropped_while_the_budget_is_full_stay_within_it() {
        let (input, blocks) = sections(0..32_000, 4);
        let limit = 2 * 1024 * 1024;
        let buffer = Buffer::new(limit, None);
        buffer.set_file(file_of(&input));
        for (cid, bytes, at) in &blocks {
            buffer.insert(*cid, bytes.clone(), *at).unwrap();
        }
        let mut inner = buffer.lock();
        let noted: Vec<u64> = blocks
            .iter()
            .map(|(cid, _, _)| short(cid))
            .filter(|&k| inner.in_file.get(k).unwrap().is_some())
            .collect();
        assert!(noted.len() > 20_000, "{} noted", noted.len());
        let (first, rest) = noted.split_at(noted.len() * 7 / 8);
        // Near the limit: the tables empty to an eighth and do not shrink.
        let tables = inner.in_file.in_tables();
        inner.memory_bytes = limit - 64;
        for &k in first {
            inner.unnote(k).unwrap();
        }
        assert_eq!(inner.in_file.in_tables(), tables);
        let peak = inner.stats.peak_memory;
        assert!(peak <= limit, "peak {peak}");
        // With room, the next removals shrink them.
        inner.memory_bytes = tables;
        for &k in rest {
            inner.unnote(k).unwrap();
        }
        assert!(inner.in_file.in_tables() < tables / 2, "{}", inner.in_file.in_tables());
        assert!(inner.in_file.is_empty());
    }

    /// A block whose short fingerprint clashes with a waiting block's
    /// note is not noted over it (which lost the other block, and failed a
    /// valid repository): it stays in memory. Every block comes back. The
    /// pairs here flip one bit in each half of the digest that the short
    /// fingerprint folds together (views of an input held in memory are
    /// not hashed again, so the CIDs need no blocks); `tests/it/repo.rs`
    /// has a real pair, through every driver.
    #[test]
    fn clashing_short_fingerprints_lose_no_block() {
        let mut blocks = Vec::new();
        // Past the queue's length, so that views are noted.
        for n in 0..1000 {
            let (a, bytes) = block(n);
            let mut digest = a.hash().digest().to_vec();
            digest[0] ^= 1;
            digest[8] ^= 1;
            let b = Cid::new_v1(DAG_CBOR, cid::multihash::Multihash::wrap(0x12, &digest).unwrap());
            assert_eq!(short(&a), short(&b));
            blocks.push((a, bytes));
            blocks.push((b, Bytes::from((n + 1_000_000).to_be_bytes().to_vec())));
        }
        let mut input = Vec::new();
        let mut offsets = Vec::new();
        for (cid, bytes) in &blocks {
            let (laid, at) = laid_out(&input, cid, bytes);
            offsets.push(usize::try_from(at).unwrap());
            input = laid;
        }
        let whole = Bytes::from(input);
        let buffer = Buffer::new(1 << 22, None);
        buffer.keep_views(whole.clone());
        for ((cid, bytes), &at) in blocks.iter().zip(&offsets) {
            buffer.insert(*cid, whole.slice(at..at + bytes.len()), at as u64).unwrap();
        }
        {
            let inner = buffer.lock();
            // Of the blocks past the queue, one of each pair is noted and
            // the other waits in memory.
            let (noted, held) = (inner.in_file.len(), inner.memory.len());
            assert_eq!(noted + held + inner.queue.len(), 2000);
            assert!(noted >= 400 && held >= 400, "{noted} noted, {held} held");
        }
        for (cid, bytes) in blocks.iter().rev() {
            assert_eq!(buffer.take(cid).unwrap(), Some(bytes.clone()), "{cid}");
        }
        assert!(buffer.lock().in_file.is_empty());
    }

    /// A stream's block whose short fingerprint is noted for another
    /// block waits in memory (no spill store here), and is not appended to
    /// the scratch file again on every later pass; both come back. The
    /// pair `tests/it/repo.rs` uses (`cargo xtask clash-pair 1`): streams
    /// re-hash what they read back, so made-up CIDs would not do.
    #[test]
    fn a_clashing_block_of_a_stream_is_appended_once_at_most() {
        use atrepo_verify::drisl::Value;
        let record = |x: u64| -> Bytes {
            let map = [
                ("$type".to_owned(), Value::String("com.example.clash".into())),
                ("nonce".to_owned(), Value::String(format!("{x:016x}"))),
            ];
            Value::Map(map.into_iter().collect()).to_cbor().into()
        };
        let mut blocks: Vec<(Cid, Bytes)> = [0x9b67_c9bb_c6f7_42ff, 0xc7e5_1e09_784f_4cf8]
            .map(|x| (blessed_cid(DAG_CBOR, &record(x)), record(x)))
            .into();
        assert_eq!(short(&blocks[0].0), short(&blocks[1].0));
        // Enough blocks for many passes over the slow lane.
        blocks.extend((0..3000).map(block));
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path()).no_spill();
        let buffer = Buffer::new(64 * (SLOT_COST + 4) + 128 * 1024, Some(spill));
        for (i, (cid, bytes)) in blocks.iter().enumerate() {
            buffer.insert(*cid, bytes.clone(), i as u64 * 100).unwrap();
        }
        {
            let inner = buffer.lock();
            // One of the pair is noted, the other waits in memory.
            let held = blocks[..2].iter().filter(|(c, _)| inner.memory.contains_key(c)).count();
            assert_eq!(held, 1, "{} noted", inner.in_file.len());
            // Exactly the noted blocks were appended, each once (its CID's
            // bytes and its own): none for the one waiting in memory.
            let section = |(c, b): &(Cid, Bytes)| (c.to_bytes().len() + b.len()) as u64;
            let noted = blocks.iter().filter(|(c, _)| {
                inner.in_file.get(short(c)).unwrap().is_some() && !inner.memory.contains_key(c)
            });
            let expected: u64 = noted.map(section).sum();
            assert_eq!(inner.scratch.as_ref().unwrap().len(), expected);
        }
        for (cid, bytes) in blocks.iter().rev() {
            assert_eq!(buffer.take(cid).unwrap(), Some(bytes.clone()), "{cid}");
        }
    }

    /// A stream whose notes' tables cannot grow within the budget: the
    /// blocks past them go to the spill store, the charge stays what the
    /// tables hold (within the limit, the spill store's share set aside
    /// from the start), and every block comes back whole.
    #[cfg(feature = "redb")]
    #[test]
    fn notes_that_cannot_grow_send_blocks_to_the_spill_store() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path());
        // The scratch file's write buffer, room for the spill store and a
        // few hundred notes.
        let limit = 20 * 1024;
        let buffer = Buffer::new(limit, Some(spill));
        let blocks: Vec<_> = (0..3000).map(block).collect();
        let mut noted_max = 0;
        for (i, (cid, bytes)) in blocks.iter().enumerate() {
            buffer.insert(*cid, bytes.clone(), i as u64 * 100).unwrap();
            let inner = buffer.lock();
            noted_max = noted_max.max(inner.in_file.len());
            if inner.spill.is_none() {
                // Before the spill store opens, its room is kept free.
                let held = inner.held + SpillShare::of(limit).total() + inner.in_file.allocated();
                assert!(held <= limit, "block {i}: {held} > {limit}");
            }
        }
        {
            let inner = buffer.lock();
            assert!(inner.spill.is_some());
            assert!((100..3000).contains(&noted_max), "{noted_max} noted at most");
            assert!(inner.memory.is_empty());
            let notes = inner.in_file.allocated();
            assert!(inner.held + notes <= limit, "{} + {notes}", inner.held);
        }
        for (cid, bytes) in blocks.iter().rev() {
            assert_eq!(buffer.take(cid).unwrap(), Some(bytes.clone()), "{cid}");
        }
        let inner = buffer.lock();
        assert!(inner.in_file.is_empty());
        // What is charged is what is held: the write buffer, the spill
        // store's share and the notes' (shrunk) tables.
        assert_eq!(inner.memory_bytes, inner.held + inner.in_file.allocated());
    }

    /// A file whose notes' tables cannot grow within the budget, with
    /// nowhere to spill: a memory limit error as soon as a note is refused.
    #[test]
    fn a_file_past_what_its_notes_may_hold_without_spill_is_a_limit_error() {
        let buffer = Buffer::new(16 * 1024, None);
        buffer.set_file(file_of(b""));
        let mut result = Ok(());
        let mut n = 0;
        while result.is_ok() && n < 100_000 {
            let (cid, bytes) = block(n);
            result = buffer.insert(cid, bytes, u64::from(n) * 100);
            n += 1;
        }
        let err = result.unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { what: "memory", .. }), "{err:?}");
        let inner = buffer.lock();
        // Up to the limit in notes (hundreds of blocks), not thousands.
        assert!(
            inner.in_file.len() > 100 && n < 5_000,
            "{} noted, {n} inserted",
            inner.in_file.len()
        );
        assert!(inner.held + inner.in_file.allocated() <= 16 * 1024);
    }

    /// A record that arrived twice, the first copy noted in the scratch
    /// file and the second taken from the queue, is handed out once: the
    /// second key gets it as a repeat, and the note is dropped.
    #[test]
    fn a_record_arriving_twice_is_fresh_once_with_its_first_copy_in_the_scratch_file() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path()).no_spill();
        let buffer = Buffer::new(64 * (SLOT_COST + 4), Some(spill));
        let (record, bytes) = block(1_000_000);
        buffer.insert(record, bytes.clone(), 0).unwrap();
        let mut n = 0;
        while !buffer.lock().waits_in_scratch {
            let (cid, filler) = block(n);
            buffer.insert(cid, filler, 100 + u64::from(n) * 100).unwrap();
            n += 1;
        }
        assert!(buffer.lock().in_file.get(short(&record)).unwrap().is_some());
        buffer.insert(record, bytes.clone(), 1_000_000).unwrap();
        assert_eq!(buffer.take_record(&record).unwrap(), RecordTake::Fresh(bytes.clone()));
        assert!(buffer.lock().in_file.get(short(&record)).unwrap().is_none());
        // (Before the end of the input, a first miss is "not yet".)
        buffer.set_eof();
        assert!(matches!(buffer.take_record(&record).unwrap(), RecordTake::Repeat(_)));
        assert_eq!(buffer.stats().duplicates, 1);
    }

    /// A buffer spilling to redb under `dir` past a 20 KiB budget (a file
    /// input if `file`), fed blocks `0..n` until `done` says so; returns it
    /// and `n`.
    #[cfg(feature = "redb")]
    fn spilling_until(
        dir: &std::path::Path,
        file: bool,
        done: fn(&Inner) -> bool,
    ) -> (Buffer, u32) {
        let buffer = Buffer::new(20 * 1024, Some(SpillOptions::default().parent(dir)));
        if file {
            buffer.set_file(file_of(b""));
        }
        let mut n = 0;
        while !done(&buffer.lock()) {
            let (cid, bytes) = block(n);
            buffer.insert(cid, bytes, u64::from(n) * 100).unwrap();
            n += 1;
        }
        (buffer, n)
    }

    /// A block in the spill batch, among the first `n` of [`block`] (which
    /// one depends on the notes' random sharding: the batch may have
    /// started with a block the notes had no room for, or the last one).
    #[cfg(feature = "redb")]
    fn in_batch(buffer: &Buffer, n: u32) -> (Cid, Bytes) {
        let cid = *buffer.lock().pending.keys().next().unwrap();
        (cid, block_bytes(&cid, n))
    }

    /// A record taken from the spill store's batch in flight (not yet
    /// written) stays there, as records taken from the spill store do: a
    /// second key gets its bytes, from the batch or, once written, from
    /// the store; it is never handed out afresh; and it is not counted as
    /// left over at the end.
    #[cfg(feature = "redb")]
    #[test]
    fn a_record_taken_from_the_spill_batch_comes_again_to_a_second_key() {
        for stream in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (buffer, n) = spilling_until(dir.path(), !stream, |i| !i.pending.is_empty());
            let (record, bytes) = in_batch(&buffer, n);
            assert_eq!(buffer.take_record(&record).unwrap(), RecordTake::Fresh(bytes.clone()));
            buffer.set_eof();
            let again = buffer.take_record(&record).unwrap();
            assert_eq!(again, RecordTake::Repeat(Some(bytes.clone())), "stream {stream}");
            assert_eq!(buffer.take(&record).unwrap(), None, "stream {stream}");
            // Written to the store with its batch: still there for a key.
            buffer.lock().flush_pending().unwrap();
            let again = buffer.take_record(&record).unwrap();
            assert_eq!(again, RecordTake::Repeat(Some(bytes)), "stream {stream}");
            let (left, _) = buffer.leftover(&|_| false, &|_| false).unwrap();
            assert_eq!(left, u64::from(n) - 1, "stream {stream}");
        }
    }

    /// A record taken from the spill batch stays there when a second copy
    /// of it arrives and is taken from the queue: a third key still gets
    /// its bytes.
    #[cfg(feature = "redb")]
    #[test]
    fn a_record_taken_from_the_spill_batch_outlives_a_second_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, n) = spilling_until(dir.path(), false, |i| !i.pending.is_empty());
        let (record, bytes) = in_batch(&buffer, n);
        assert_eq!(buffer.take_record(&record).unwrap(), RecordTake::Fresh(bytes.clone()));
        assert!(buffer.lock().pending.contains_key(&record));
        // A second copy, at the front of the queue, taken by a second key.
        buffer.lock().index_queue().unwrap();
        buffer.lock().queue.push_back(record, bytes.clone(), 1_000_000);
        assert!(matches!(buffer.take_record(&record).unwrap(), RecordTake::Fresh(_)));
        assert!(buffer.lock().pending.contains_key(&record));
        buffer.set_eof();
        assert_eq!(buffer.take_record(&record).unwrap(), RecordTake::Repeat(Some(bytes)));
    }

    /// Nodes taken from the spill store stay there: at the end they are
    /// neither left over nor duplicates; a node's second copy left in the
    /// store after its first was taken elsewhere is a duplicate.
    #[cfg(feature = "redb")]
    #[test]
    fn nodes_taken_from_the_spill_store_are_not_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        // Two blocks in the batch at least (how many the store's opening
        // moved there depends on the notes' random sharding).
        let (buffer, n) = spilling_until(dir.path(), false, |i| i.pending.len() >= 2);
        buffer.lock().flush_pending().unwrap();
        let in_store: Vec<Cid> = {
            let inner = buffer.lock();
            let spill = inner.spill.as_ref().unwrap();
            (0..n).map(|i| block(i).0).filter(|c| spill.has(c).unwrap()).collect()
        };
        assert!(in_store.len() >= 2, "{} in the store", in_store.len());
        let (node, bytes) = (in_store[0], block_bytes(&in_store[0], n));
        assert_eq!(buffer.take(&node).unwrap(), Some(bytes));
        buffer.set_eof();
        // The walk read `node` (from the store) and `other` (say, its first
        // copy came from elsewhere): only `other` is a duplicate.
        let other = in_store[1];
        let used = |k: &Key| *k == key(&node) || *k == key(&other);
        let (left, _) = buffer.leftover(&used, &|_| false).unwrap();
        assert_eq!(left, u64::from(n) - 2);
        assert_eq!(buffer.stats().duplicates, 1);
    }

    /// The bytes of block `cid` among the first `n` of [`block`].
    #[cfg(feature = "redb")]
    fn block_bytes(cid: &Cid, n: u32) -> Bytes {
        (0..n).map(block).find(|(c, _)| c == cid).unwrap().1
    }

    /// `no_spill` options name no spill store: a stream whose notes' tables
    /// cannot grow fails at once with the buffer's own memory limit, not
    /// after a batch piled up for a store that refuses it.
    #[test]
    fn a_stream_with_no_spill_store_past_its_notes_is_a_limit_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 20 * 1024;
        let buffer =
            Buffer::new(limit, Some(SpillOptions::default().parent(dir.path()).no_spill()));
        let mut n = 0;
        let err = loop {
            let (cid, bytes) = block(n);
            if let Err(e) = buffer.insert(cid, bytes, u64::from(n) * 100) {
                break e;
            }
            n += 1;
            assert!(n < 5_000, "no limit error after {n} blocks");
        };
        assert!(
            matches!(err, Error::LimitExceeded { what: "memory", limit: l, .. } if l == limit),
            "{err:?}"
        );
        let inner = buffer.lock();
        assert!(inner.spill.is_none() && inner.pending.is_empty());
        // Within the limit, a table's growth in flight included (see
        // `NoteRoom`): it was a few KiB over before.
        let peak = inner.stats.peak_memory;
        assert!(peak <= limit, "{peak}");
    }

    /// A kept record refused for the scratch file's cap only comes without
    /// bytes to a second key: it does not make the stream's waiting blocks
    /// hit the spill limit (each part of the file has its own cap).
    #[test]
    fn a_kept_record_past_the_cap_does_not_stop_blocks_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path()).no_spill();
        let buffer = Buffer::new(64 * (SLOT_COST + 4), Some(spill));
        // Room for 100 sections of 40 bytes (CID and data) in each part.
        buffer.keep_records(dir.path(), 4000).unwrap();
        for n in 0..110 {
            let (cid, bytes) = block(n);
            buffer.insert(cid, bytes.clone(), u64::from(n) * 100).unwrap();
            assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(bytes));
        }
        assert!(buffer.lock().scratch.as_ref().is_some_and(|s| s.refused().is_none()));
        // 80 blocks, past the budget: those that wait go to the file.
        for n in 1000..1080 {
            let (cid, bytes) = block(n);
            buffer.insert(cid, bytes, u64::from(n) * 100).unwrap();
        }
        {
            let inner = buffer.lock();
            assert!(inner.waits_in_scratch);
            assert!(inner.in_file.len() > 20, "{} waiting in the file", inner.in_file.len());
        }
        for n in 1000..1080 {
            let (cid, bytes) = block(n);
            assert_eq!(buffer.take(&cid).unwrap(), Some(bytes));
        }
    }

    /// A block that waited in the scratch file and changed there is an
    /// I/O error (a disk fault), not a hash mismatch of the input.
    #[test]
    fn a_block_changed_in_the_scratch_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path()).no_spill();
        let buffer = Buffer::new(64 * (SLOT_COST + 4), Some(spill));
        let blocks: Vec<_> = (0..400).map(block).collect();
        for (i, (cid, bytes)) in blocks.iter().enumerate() {
            buffer.insert(*cid, bytes.clone(), i as u64 * 100).unwrap();
        }
        if let Some(scratch) = buffer.lock().scratch.as_mut() {
            scratch.damage_last_byte();
        }
        let errors: Vec<_> = blocks.iter().filter_map(|(cid, _)| buffer.take(cid).err()).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(matches!(errors[0], Error::Io(_)), "{errors:?}");
    }

    /// A buffer keeping the records it hands out under `dir`, with room
    /// for `blocks` blocks of 4 bytes beyond the scratch file's buffer.
    fn keeping(dir: &std::path::Path, blocks: u64, spill: Option<SpillOptions>) -> Buffer {
        // Below 64 KiB the write buffer is its smallest size.
        let buffer = Buffer::new(SCRATCH_BUFFER_MIN as u64 + blocks * (SLOT_COST + 4), spill);
        buffer.keep_records(dir, u64::MAX).unwrap();
        buffer
    }

    /// A record taken from the spill store stays there: the scratch file does
    /// not take it again, and a second key gets it as a repeat, never as a
    /// fresh record (which would count it, keep it and check it again).
    #[cfg(feature = "redb")]
    #[test]
    fn a_kept_stream_repeats_records_taken_from_the_spill_store() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillOptions::default().parent(dir.path());
        let buffer = keeping(dir.path(), 1, Some(spill));
        let blocks: Vec<_> = (0..64).map(block).collect();
        for (i, (cid, bytes)) in blocks.iter().enumerate() {
            buffer.insert(*cid, bytes.clone(), i as u64 * 100).unwrap();
        }
        // The first block waits in the scratch file; the others, past the
        // room its note leaves, in the spill store's batch, written now.
        buffer.lock().flush_pending().unwrap();
        let spilled = buffer.lock().spill.as_ref().map(|s| s.usage().unwrap().blocks);
        assert!(spilled.is_some_and(|n| n > 0), "{spilled:?}");
        for (cid, bytes) in &blocks {
            assert_eq!(buffer.take_record(cid).unwrap(), RecordTake::Fresh(bytes.clone()));
        }
        let kept = buffer.lock().scratch.as_ref().map(Scratch::len);
        buffer.set_eof();
        for (cid, bytes) in &blocks {
            let again = buffer.take_record(cid).unwrap();
            assert_eq!(again, RecordTake::Repeat(Some(bytes.clone())), "{cid}");
        }
        // Nothing more was written for the repeats.
        assert_eq!(buffer.lock().scratch.as_ref().map(Scratch::len), kept);
        // Fewer than all were kept: the spilled ones were not.
        assert!(kept.is_some_and(|n| n < 64 * (36 + 4)), "{kept:?}");
    }

    /// A CID with a record's fingerprint but a longer digest is confirmed
    /// against more bytes than the record's own CID: in the scratch file that
    /// range can start in the file and end in the buffer, and must read as
    /// "not this record", not fail as an I/O error.
    #[test]
    fn a_longer_twin_of_a_kept_record_is_absent_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = keeping(dir.path(), 2 * 70_000 / (SLOT_COST + 4) + 4, None);
        let big = Bytes::from(vec![1u8; 70_000]);
        let big_cid = blessed_cid(DAG_CBOR, &big);
        let (cid, bytes) = block(3);
        buffer.insert(big_cid, big.clone(), 0).unwrap();
        buffer.insert(cid, bytes.clone(), 80_000).unwrap();
        // The big one goes straight to the file; the small one waits in the
        // buffer, right after it.
        assert_eq!(buffer.take_record(&big_cid).unwrap(), RecordTake::Fresh(big));
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(bytes.clone()));
        let mut digest = cid.hash().digest().to_vec();
        digest.extend_from_slice(&[9u8; 32]);
        let twin =
            Cid::new_v1(cid.codec(), cid::multihash::Multihash::<64>::wrap(0x12, &digest).unwrap());
        assert_eq!(key(&twin), key(&cid));
        buffer.set_eof();
        assert_eq!(buffer.take_record(&twin).unwrap(), RecordTake::Absent);
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Repeat(Some(bytes)));
    }

    /// A kept record read back with other bytes than it was kept with is
    /// a fault of our own scratch file: an environment error, not a hash
    /// mismatch in the input.
    #[test]
    fn a_kept_record_that_changed_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = keeping(dir.path(), 2, None);
        let (cid, bytes) = block(5);
        buffer.insert(cid, bytes.clone(), 0).unwrap();
        assert_eq!(buffer.take_record(&cid).unwrap(), RecordTake::Fresh(bytes));
        if let Some(scratch) = buffer.lock().scratch.as_mut() {
            scratch.damage_last_byte();
        }
        buffer.set_eof();
        let err = buffer.take_record(&cid).unwrap_err();
        assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData));
        assert_eq!(err.kind(), crate::ErrorKind::Environment, "{err:?}");
    }

    #[test]
    fn memory_is_released_when_blocks_are_taken() {
        let buffer = Buffer::new(2 * (SLOT_COST + 4) + TAKEN_OVERHEAD * 4, None);
        for n in 0..4 {
            let (cid, bytes) = block(n);
            buffer.insert(cid, bytes, 0).unwrap();
            assert!(buffer.take(&cid).unwrap().is_some());
        }
        assert_eq!(buffer.leftover(&|_| false, &|_| false).unwrap(), (0, 0));
    }
}

#[cfg(test)]
mod pack_tests {
    use super::{TAIL_TAG, pack, unpack};

    #[test]
    fn positions_pack_and_unpack() {
        assert_eq!(pack(12_345, 678).map(unpack), Some((12_345, 678)));
        assert_eq!(
            pack((1 << 39) - 1, (1 << 24) - 1).map(unpack),
            Some(((1 << 39) - 1, (1 << 24) - 1))
        );
        // The top bit stays clear for digest tails.
        assert_eq!(pack((1 << 39) - 1, (1 << 24) - 1).map(|p| p & TAIL_TAG), Some(0));
        assert_eq!(pack(1 << 39, 1), None);
        assert_eq!(pack(0, 1 << 24), None);
    }
}
