//! [`Segments`]: sorted runs of `(key, value)` entries moved out of memory
//! into anonymous temporary files, of which memory keeps a blocked Bloom
//! filter of [`SEGMENT_FILTER_BITS`] bits an entry, the first key of every
//! page, and optionally a bit an entry saying it was removed. Used by the
//! taken set ([`super::taken`], fingerprints of records handed out) and by
//! the notes ([`super::notes`], where blocks that wait outside memory are)
//! when their entries no longer fit the memory budget.
//!
//! Entries are sorted by the shard of their seeded hash, then by key (the
//! order in which the owners write their shards out). Segments merge
//! log-structured into new files: each merge reads and writes
//! sequentially, removed entries are dropped on the way, and a segment is
//! never less than half the one before it, so there are O(log entries) of
//! them; a lookup past a segment's filter reads one page.
//!
//! This module must not decide when to move entries out: the buffer does.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

use atrepo_store::CidKey;

use super::scratch::read_at;

/// Parts the owners split their entries into (by seeded hash).
pub(crate) const SHARDS: usize = 64;

/// The seeded hash the owners place their entries by: random in each
/// instance, so that a repository cannot aim its blocks at one shard or
/// one filter block; tests give a seed ([`seeded_hasher`]) so that a
/// failing case replays.
pub(crate) type HashState = foldhash::fast::SeedableRandomState;

/// A [`HashState`] with a random seed.
pub(crate) fn random_hasher() -> HashState {
    HashState::random()
}

/// A [`HashState`] with the given seed, the same in every run.
#[cfg(test)]
pub(crate) fn seeded_hasher(seed: u64) -> HashState {
    HashState::with_seed(seed, foldhash::SharedSeed::global_fixed())
}

/// The shard of seeded hash `h`: its top bits (the filters use the
/// others).
pub(crate) fn shard_of(h: u64) -> usize {
    // SHARDS is a power of two well below 2^32.
    usize::try_from(h >> 58).unwrap_or(0) % SHARDS
}

/// Bits set per entry in a filter.
const FILTER_HASHES: u32 = 5;

/// The block, of `blocks`, for hash `h`, and the word and bit of each of
/// the [`FILTER_HASHES`] bits within it (nine bits each).
fn bits(blocks: usize, h: u64) -> (usize, impl Iterator<Item = (usize, u64)>) {
    // The block comes from the low 32 bits, scaled to the block count
    // (the shard takes the top bits); the bits within the block from a
    // remix of all of them (splitmix64's finaliser), so they do not
    // follow the block.
    let scaled = ((h & u64::from(u32::MAX)) * (blocks as u64)) >> 32;
    let block = usize::try_from(scaled).unwrap_or(0);
    let g = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let g = g ^ (g >> 27);
    let positions = (0..FILTER_HASHES).map(move |i| {
        let bit = (g >> (i * 9)) & 511;
        (usize::try_from(bit >> 6).unwrap_or(0), 1u64 << (bit & 63))
    });
    (block, positions)
}

/// Sets hash `h`'s bits in a blocked Bloom filter of 512-bit blocks.
pub(crate) fn set(filter: &mut [[u64; 8]], h: u64) {
    let (block, positions) = bits(filter.len(), h);
    if let Some(words) = filter.get_mut(block) {
        for (word, bit) in positions {
            if let Some(w) = words.get_mut(word) {
                *w |= bit;
            }
        }
    }
}

/// Whether hash `h`'s bits are all set in `filter` (`false`: certainly
/// not added).
pub(crate) fn test(filter: &[[u64; 8]], h: u64) -> bool {
    let (block, mut positions) = bits(filter.len(), h);
    match filter.get(block) {
        Some(words) => positions.all(|(word, bit)| words.get(word).is_some_and(|w| w & bit != 0)),
        None => false,
    }
}

/// A key of a segment: fixed-size bytes in the file, ordered as in memory.
pub(crate) trait SegmentKey: Copy + Ord + std::hash::Hash + std::fmt::Debug {
    /// Bytes of the key in a segment's file.
    const BYTES: usize;
    /// Writes the key into `out` (`BYTES` long).
    fn put(&self, out: &mut [u8]);
    /// The key from `b` (`BYTES` long).
    fn take(b: &[u8]) -> Self;
}

impl SegmentKey for CidKey {
    const BYTES: usize = 16;
    fn put(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_bytes());
    }
    fn take(b: &[u8]) -> Self {
        let mut key = [0u8; 16];
        if let Some(b) = b.get(..16) {
            key.copy_from_slice(b);
        }
        CidKey::from_bytes(key)
    }
}

impl SegmentKey for u64 {
    const BYTES: usize = 8;
    fn put(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_le_bytes());
    }
    fn take(b: &[u8]) -> Self {
        let mut key = [0u8; 8];
        if let Some(b) = b.get(..8) {
            key.copy_from_slice(b);
        }
        u64::from_le_bytes(key)
    }
}

/// Bytes a lookup past a segment's filter reads at most: one page.
const PAGE_BYTES: usize = 4080;

/// Bytes of one entry of key `K` in a segment's file: the key, then the
/// value, little-endian.
const fn entry_bytes<K: SegmentKey>() -> usize {
    K::BYTES + 8
}

/// Entries per page of a segment of key `K` (170 of 24 bytes, 255 of 16).
const fn page<K: SegmentKey>() -> usize {
    PAGE_BYTES / entry_bytes::<K>()
}

/// Filter bits per entry of a segment, sized once for its entries: with
/// [`FILTER_HASHES`] bits in one 512-bit block, about 1% false positives.
pub(crate) const SEGMENT_FILTER_BITS: usize = 10;

/// Bytes of each buffer a merge of two segments reads and writes through.
const MERGE_BUFFER: usize = 16 * 1024;

/// What moving entries out holds on the way besides the segments' filters,
/// page keys and removal bits: a merge's two read buffers and its write
/// buffer. (Writing entries from memory holds one page,
/// [`FREEZE_PAGE`], and builds the new segment's filter and page keys
/// once they are written, by reading them back: see
/// [`SegmentWriter::new`].)
pub(crate) const FREEZE_BUFFERS: u64 = 3 * MERGE_BUFFER as u64;

/// The buffer entries moved from memory are written through: one page.
pub(crate) const FREEZE_PAGE: u64 = PAGE_BYTES as u64;

fn encode<K: SegmentKey>(k: K, value: u64, out: &mut [u8]) {
    let (key, rest) = out.split_at_mut(K::BYTES.min(out.len()));
    k.put(key);
    if let Some(v) = rest.get_mut(..8) {
        v.copy_from_slice(&value.to_le_bytes());
    }
}

/// An entry from [`encode`]'s bytes (`b` is one entry's worth).
fn decode<K: SegmentKey>(b: &[u8]) -> (K, u64) {
    let mut value = [0u8; 8];
    if let Some(v) = b.get(K::BYTES..K::BYTES + 8) {
        value.copy_from_slice(v);
    }
    (K::take(b), u64::from_le_bytes(value))
}

/// Entries moved to disk: sorted by shard, then key.
#[derive(Debug)]
pub(crate) struct Segment<K> {
    file: File,
    len: usize,
    filter: Vec<[u64; 8]>,
    /// The first entry's shard and key of every page.
    fences: Vec<(usize, K)>,
    /// A bit an entry, set once it is removed; empty in segments that
    /// take no removals (the taken set's).
    removed: Vec<u64>,
    /// Entries removed.
    removed_count: usize,
}

impl<K: SegmentKey> Segment<K> {
    /// Entries in the segment, removed ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries not removed.
    pub(crate) fn live(&self) -> usize {
        self.len.saturating_sub(self.removed_count)
    }

    /// Memory the segment keeps.
    pub(crate) fn memory(&self) -> u64 {
        let filter = self.filter.len().saturating_mul(64);
        let fences = self.fences.len().saturating_mul(size_of::<(usize, K)>());
        let removed = self.removed.capacity().saturating_mul(8);
        filter.saturating_add(fences).saturating_add(removed) as u64
    }

    /// Makes room for removals: a bit an entry, allocated now, so that
    /// removing allocates nothing.
    fn allow_removals(&mut self) {
        if self.removed.is_empty() {
            // Sized from the segment's own length, known since it was
            // written (not from input).
            self.removed.reserve_exact(self.len.div_ceil(64));
            self.removed.resize(self.len.div_ceil(64), 0);
        }
    }

    fn is_removed(&self, i: usize) -> bool {
        self.removed.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Whether `h` may be here (its filter bits are all set).
    #[cfg(test)]
    pub(crate) fn may_hold(&self, h: u64) -> bool {
        test(&self.filter, h)
    }

    /// The index and value of `k` (hashed to `h`) here, if it is here and
    /// not removed, reading at most one page.
    fn find(&self, k: &K, h: u64) -> io::Result<Option<(usize, u64)>> {
        if !test(&self.filter, h) {
            return Ok(None);
        }
        let target = (shard_of(h), *k);
        // Equal entries are contiguous, so the last page starting at or
        // before `target` holds one if there is any.
        let Some(page_index) = self.fences.partition_point(|f| *f <= target).checked_sub(1) else {
            return Ok(None);
        };
        let per_page = page::<K>();
        let start = page_index.saturating_mul(per_page);
        let count = self.len.saturating_sub(start).min(per_page);
        let mut buf = [0u8; PAGE_BYTES];
        let bytes = buf.get_mut(..count * entry_bytes::<K>()).unwrap_or_default();
        read_at(&self.file, bytes, (start * entry_bytes::<K>()) as u64)?;
        Ok(bytes
            .chunks_exact(entry_bytes::<K>())
            .map(decode::<K>)
            .enumerate()
            .find(|&(i, (key, _))| key == *k && !self.is_removed(start.saturating_add(i)))
            .map(|(i, (_, value))| (start.saturating_add(i), value)))
    }

    /// Marks entry `i` removed (in segments that take removals, see
    /// [`Segments::removable`]); `false` if it was already, or cannot be.
    fn remove_at(&mut self, i: usize) -> bool {
        match self.removed.get_mut(i / 64) {
            Some(w) if *w & (1 << (i % 64)) == 0 => {
                *w |= 1 << (i % 64);
                self.removed_count = self.removed_count.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// Its entries not removed, in order, read from the start of its file
    /// (through the handle's own position: only a merge or a full listing
    /// reads a segment in order, and lookups read pages by offset).
    pub(crate) fn entries(&self) -> io::Result<impl Iterator<Item = io::Result<(K, u64)>> + '_> {
        let mut file = &self.file;
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(MERGE_BUFFER, file);
        Ok((0..self.len)
            .map(move |i| {
                let mut b = [0u8; 32];
                let b = b.get_mut(..entry_bytes::<K>()).unwrap_or_default();
                reader.read_exact(b)?;
                Ok((i, decode::<K>(b)))
            })
            .filter(|e| !matches!(e, Ok((i, _)) if self.is_removed(*i)))
            .map(|e| e.map(|(_, entry)| entry)))
    }
}

/// A new anonymous file under `dir` (made if need be) for a segment.
fn segment_file(dir: &Path) -> io::Result<File> {
    std::fs::create_dir_all(dir)?;
    tempfile::tempfile_in(dir)
}

/// Blocks of 512 bits in the filter of a segment of `entries`.
fn filter_blocks(entries: usize) -> usize {
    entries.saturating_mul(SEGMENT_FILTER_BITS).div_ceil(512).max(1)
}

/// Bytes of the filter and page keys of a segment of `entries`.
fn index_bytes<K: SegmentKey>(entries: usize) -> u64 {
    let filter = filter_blocks(entries).saturating_mul(64);
    let fences = entries.div_ceil(page::<K>()).saturating_mul(size_of::<(usize, K)>());
    filter.saturating_add(fences) as u64
}

/// A segment's filter and the first shard and key of every page.
type Index<K> = (Vec<[u64; 8]>, Vec<(usize, K)>);

/// Writes a segment's entries in order, building its filter and page keys
/// as they come (a merge) or once they are all written (entries moved
/// from memory).
pub(crate) struct SegmentWriter<K> {
    out: BufWriter<File>,
    len: usize,
    /// The filter and page keys, when built as entries come.
    index: Option<Index<K>>,
}

impl<K: SegmentKey> SegmentWriter<K> {
    /// A writer of entries moved from memory to a new anonymous file under
    /// `dir`, through a buffer of one page ([`FREEZE_PAGE`]). The filter
    /// and page keys are built by [`SegmentWriter::finish`], from the file:
    /// by then the owner has freed the entries, so the two are never held
    /// together.
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        let file = segment_file(dir)?;
        Ok(SegmentWriter { out: BufWriter::with_capacity(PAGE_BYTES, file), len: 0, index: None })
    }

    /// A writer of at most `expected` entries merged from two segments,
    /// whose filter and page keys are built as they come (the merge has
    /// each entry's hash, and has freed the two segments' filters and page
    /// keys first): through a buffer of [`MERGE_BUFFER`].
    fn for_merge(dir: &Path, expected: usize) -> io::Result<Self> {
        let file = segment_file(dir)?;
        // Sized from two segments' lengths (not from input).
        let mut fences = Vec::new();
        fences.reserve_exact(expected.div_ceil(page::<K>()));
        Ok(SegmentWriter {
            out: BufWriter::with_capacity(MERGE_BUFFER, file),
            len: 0,
            index: Some((vec![[0u64; 8]; filter_blocks(expected)], fences)),
        })
    }

    /// Appends `k` with `value`; entries come in (shard, key) order.
    pub(crate) fn push(&mut self, k: K, value: u64) -> io::Result<()> {
        let mut b = [0u8; 32];
        let b = b.get_mut(..entry_bytes::<K>()).unwrap_or_default();
        encode(k, value, b);
        self.out.write_all(b)?;
        self.len = self.len.saturating_add(1);
        Ok(())
    }

    /// [`SegmentWriter::push`] for a writer that builds its filter and page
    /// keys as entries come: `h` is `k`'s seeded hash.
    fn push_hashed(&mut self, k: K, value: u64, h: u64) -> io::Result<()> {
        if let Some((filter, fences)) = &mut self.index {
            if self.len.is_multiple_of(page::<K>()) {
                fences.push((shard_of(h), k));
            }
            set(filter, h);
        }
        self.push(k, value)
    }

    /// The segment, its file written out. A writer from
    /// [`SegmentWriter::new`] builds the filter and page keys now, reading
    /// the file back a page at a time (each key hashed with `hasher`, as
    /// its owner hashed it).
    pub(crate) fn finish(self, hasher: &HashState) -> io::Result<Segment<K>> {
        use std::hash::BuildHasher as _;
        let len = self.len;
        let file = self.out.into_inner().map_err(io::IntoInnerError::into_error)?;
        let (filter, fences) = match self.index {
            Some(index) => index,
            None => {
                let per_page = page::<K>();
                // Sized from the count of entries written (not from input).
                let mut filter = vec![[0u64; 8]; filter_blocks(len)];
                let mut fences = Vec::new();
                fences.reserve_exact(len.div_ceil(per_page));
                let mut page_buf = [0u8; PAGE_BYTES];
                let mut start = 0;
                while start < len {
                    let count = len.saturating_sub(start).min(per_page);
                    let bytes = page_buf.get_mut(..count * entry_bytes::<K>()).unwrap_or_default();
                    read_at(&file, bytes, (start * entry_bytes::<K>()) as u64)?;
                    for (i, entry) in bytes.chunks_exact(entry_bytes::<K>()).enumerate() {
                        let (k, _) = decode::<K>(entry);
                        let h = hasher.hash_one(k);
                        if i == 0 {
                            fences.push((shard_of(h), k));
                        }
                        set(&mut filter, h);
                    }
                    start = start.saturating_add(per_page);
                }
                (filter, fences)
            }
        };
        Ok(Segment { file, len, filter, fences, removed: Vec::new(), removed_count: 0 })
    }
}

/// Two segments as one, in a new file under `dir`, without their removed
/// entries. Their filters and page keys are freed first (a merge reads
/// them in order, which needs neither), and the new segment's, no bigger,
/// are built in their place: memory holds no more than before, besides
/// the buffers ([`FREEZE_BUFFERS`]).
fn merge_segments<K: SegmentKey>(
    mut a: Segment<K>,
    mut b: Segment<K>,
    dir: &Path,
    hasher: &HashState,
) -> io::Result<Segment<K>> {
    use std::hash::BuildHasher as _;
    for s in [&mut a, &mut b] {
        s.filter = Vec::new();
        s.fences = Vec::new();
    }
    let mut out = SegmentWriter::for_merge(dir, a.live().saturating_add(b.live()))?;
    {
        // Each entry hashed once as it is read: its order is (shard, key),
        // and the new filter takes the same hash.
        let hashed = |e: io::Result<(K, u64)>| e.map(|(k, value)| (hasher.hash_one(k), k, value));
        let (mut xs, mut ys) =
            (a.entries()?.map(hashed).peekable(), b.entries()?.map(hashed).peekable());
        loop {
            let take_x = match (xs.peek(), ys.peek()) {
                (Some(Ok(x)), Some(Ok(y))) => (shard_of(x.0), x.1) <= (shard_of(y.0), y.1),
                (Some(_), None) | (Some(Err(_)), _) => true,
                (None, Some(_)) | (Some(Ok(_)), Some(Err(_))) => false,
                (None, None) => break,
            };
            let next = if take_x { xs.next() } else { ys.next() };
            if let Some(entry) = next {
                let (h, k, value) = entry?;
                out.push_hashed(k, value, h)?;
            }
        }
    }
    drop((a, b));
    out.finish(hasher)
}

/// Segments, oldest (and biggest) first.
pub(crate) struct Segments<K> {
    list: Vec<Segment<K>>,
    /// Whether entries can be removed (each segment then keeps a bit an
    /// entry).
    removable: bool,
    /// The entry the last lookup found: key, segment, index, value. The
    /// notes look a block up, then take it, then drop its note, all for
    /// the same key: one page read instead of three.
    last: std::cell::Cell<Option<(K, usize, usize, u64)>>,
}

impl<K: std::fmt::Debug> std::fmt::Debug for Segments<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments")
            .field("list", &self.list)
            .field("removable", &self.removable)
            .finish_non_exhaustive()
    }
}

impl<K> Default for Segments<K> {
    /// Segments that take no removals.
    fn default() -> Self {
        Segments { list: Vec::new(), removable: false, last: std::cell::Cell::new(None) }
    }
}

impl<K: SegmentKey> Segments<K> {
    /// Segments whose entries can be removed ([`Segments::remove`]).
    pub(crate) fn removable() -> Self {
        Segments { list: Vec::new(), removable: true, last: std::cell::Cell::new(None) }
    }

    /// The segments, oldest first.
    pub(crate) fn list(&self) -> &[Segment<K>] {
        &self.list
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Entries not removed, in all segments.
    pub(crate) fn live(&self) -> usize {
        self.list.iter().map(Segment::live).sum()
    }

    /// Memory the segments keep: filters, page keys, removal bits.
    pub(crate) fn memory(&self) -> u64 {
        self.list.iter().map(Segment::memory).sum()
    }

    /// The segment, index and value of `k` (hashed to `h`), newest
    /// segment first, not removed.
    fn find(&self, k: &K, h: u64) -> io::Result<Option<(usize, usize, u64)>> {
        if let Some((key, s, i, value)) = self.last.get()
            && key == *k
        {
            return Ok(Some((s, i, value)));
        }
        for (s, segment) in self.list.iter().enumerate().rev() {
            if let Some((i, value)) = segment.find(k, h)? {
                self.last.set(Some((*k, s, i, value)));
                return Ok(Some((s, i, value)));
            }
        }
        Ok(None)
    }

    /// The value kept for `k` (hashed to `h`), newest segment first.
    pub(crate) fn get(&self, k: &K, h: u64) -> io::Result<Option<u64>> {
        Ok(self.find(k, h)?.map(|(_, _, value)| value))
    }

    /// Adds `segment` as the newest, then merges the newest two while the
    /// one before is no more than twice the newest (counting entries not
    /// removed), in new files under `dir`. Returns the most bytes the
    /// segments held at once on the way ([`Segments::memory`], and a
    /// merge's buffers): a merge frees the two segments' filters and
    /// page keys before it builds the new ones, so this is what they hold
    /// with `segment` added, or at most [`FREEZE_BUFFERS`] more.
    ///
    /// # Errors
    ///
    /// If a merge cannot write its file. The two segments it was merging
    /// are lost then: callers treat the error as fatal for the whole input.
    pub(crate) fn push(
        &mut self,
        segment: Segment<K>,
        dir: &Path,
        hasher: &HashState,
    ) -> io::Result<u64> {
        if segment.len == 0 {
            return Ok(self.memory());
        }
        let mut segment = segment;
        if self.removable {
            segment.allow_removals();
        }
        // Merges move entries: what the last lookup found is stale.
        self.last.set(None);
        self.list.push(segment);
        let mut peak = self.memory();
        while let [.., before, last] = self.list.as_slice() {
            if before.live() > last.live().saturating_mul(2) {
                break;
            }
            let (Some(last), Some(before)) = (self.list.pop(), self.list.pop()) else {
                break;
            };
            // While merging: the others, the two's removal bits (their
            // filters and page keys are freed), the new filter and page
            // keys, the buffers.
            let removal_bits = |s: &Segment<K>| s.removed.capacity().saturating_mul(8) as u64;
            let merging = self
                .memory()
                .saturating_add(removal_bits(&before))
                .saturating_add(removal_bits(&last))
                .saturating_add(index_bytes::<K>(before.live().saturating_add(last.live())))
                .saturating_add(FREEZE_BUFFERS);
            peak = peak.max(merging);
            let mut merged = merge_segments(before, last, dir, hasher)?;
            if merged.len > 0 {
                if self.removable {
                    merged.allow_removals();
                }
                self.list.push(merged);
            }
            peak = peak.max(self.memory());
        }
        Ok(peak)
    }

    /// Removes `k` (hashed to `h`) from the newest segment that holds it,
    /// returning its value (nothing is removed from segments that take no
    /// removals).
    pub(crate) fn remove(&mut self, k: &K, h: u64) -> io::Result<Option<u64>> {
        if !self.removable {
            return Ok(None);
        }
        let Some((s, i, value)) = self.find(k, h)? else { return Ok(None) };
        self.last.set(None);
        let removed = self.list.get_mut(s).is_some_and(|segment| segment.remove_at(i));
        // A segment whose every entry is removed goes, with its filter and
        // its file: out of order, the notes drain as the walk catches up.
        if self.list.get(s).is_some_and(|segment| segment.live() == 0) {
            self.list.remove(s);
        }
        Ok(removed.then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::hash::BuildHasher as _;

    use proptest::prelude::*;

    use super::*;

    /// A segment of `keys` (any order), valued by `value`.
    fn segment_of(
        dir: &Path,
        keys: &[u64],
        value: impl Fn(u64) -> u64,
        hasher: &HashState,
    ) -> Segment<u64> {
        let mut sorted: Vec<(usize, u64, u64)> =
            keys.iter().map(|&k| (shard_of(hasher.hash_one(k)), k, hasher.hash_one(k))).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = SegmentWriter::new(dir).unwrap();
        for (_, k, _) in sorted {
            out.push(k, value(k)).unwrap();
        }
        out.finish(hasher).unwrap()
    }

    proptest! {
        // Model-based: segments answer as a map from key to value through
        // removals and merges (which drop removed entries).
        #[test]
        fn removals_and_merges_behave_as_a_map(
            batches in proptest::collection::vec(
                (proptest::collection::vec(0u64..5000, 0..400),
                 proptest::collection::vec(0u64..5000, 0..100)),
                1..8,
            ),
            // Last, so that the cases saved before it was drawn still draw
            // the same batches.
            seed in any::<u64>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let hasher = seeded_hasher(seed);
            let mut segments = Segments::<u64>::removable();
            let mut model: HashMap<u64, u64> = HashMap::new();
            for (generation, (adds, removes)) in batches.into_iter().enumerate() {
                // Keys are added once while live (the notes' rule), with a
                // value of their generation: an old entry cannot pass for
                // a new one.
                let value = |k: u64| k * 64 + generation as u64;
                let fresh: Vec<u64> =
                    adds.into_iter().filter(|k| !model.contains_key(k)).collect();
                for &k in &fresh {
                    model.insert(k, value(k));
                }
                // A merge frees the old filters before it builds the new
                // one: at most the buffers more than before (with the new
                // segment's removal bits, made as it is added).
                let segment = segment_of(dir.path(), &fresh, value, &hasher);
                let added = if fresh.is_empty() {
                    0
                } else {
                    segment.memory() + segment.len().div_ceil(64) as u64 * 8
                };
                let before = segments.memory() + added;
                let held = segments.push(segment, dir.path(), &hasher).unwrap();
                prop_assert!(held >= segments.memory());
                prop_assert!(held <= before + FREEZE_BUFFERS, "{} > {} + buffers", held, before);
                // The merge rule holds for the newest pair once a segment
                // is added (removals since an older pair's last merge may
                // have thinned it; adding nothing merges nothing).
                if !fresh.is_empty()
                    && let [.., before, last] = segments.list()
                {
                    prop_assert!(before.live() > 2 * last.live());
                }
                for k in removes {
                    let found = segments.remove(&k, hasher.hash_one(k)).unwrap();
                    prop_assert_eq!(found, model.remove(&k));
                }
                for k in 0..5000u64 {
                    prop_assert_eq!(
                        segments.get(&k, hasher.hash_one(k)).unwrap(),
                        model.get(&k).copied()
                    );
                }
                prop_assert_eq!(segments.live(), model.len());
                let listed: usize = segments
                    .list()
                    .iter()
                    .map(|s| s.entries().unwrap().count())
                    .sum();
                prop_assert_eq!(listed, model.len());
                // Drained segments go.
                prop_assert!(segments.list().iter().all(|s| s.live() > 0));
            }
        }
    }

    /// The last lookup's entry is forgotten when a push merges segments
    /// (its segment and index change) and when it is removed.
    #[test]
    fn the_cached_lookup_never_outlives_a_merge_or_a_removal() {
        let dir = tempfile::tempdir().unwrap();
        let hasher = random_hasher();
        let mut segments = Segments::<u64>::removable();
        let first: Vec<u64> = (0..1000).collect();
        let same = |k| k;
        segments.push(segment_of(dir.path(), &first, same, &hasher), dir.path(), &hasher).unwrap();
        let h = hasher.hash_one(500u64);
        assert_eq!(segments.get(&500, h).unwrap(), Some(500));
        // As big as the first: the two merge into one, where 500 has
        // another index.
        let second: Vec<u64> = (1000..2000).collect();
        segments.push(segment_of(dir.path(), &second, same, &hasher), dir.path(), &hasher).unwrap();
        assert_eq!(segments.list().len(), 1);
        assert_eq!(segments.remove(&500, h).unwrap(), Some(500));
        assert_eq!(segments.get(&500, h).unwrap(), None);
        assert_eq!(segments.remove(&500, h).unwrap(), None);
        assert_eq!(segments.live(), 1999);
        // Each other entry is still there, and removable once.
        for k in (0..2000u64).filter(|&k| k != 500) {
            let h = hasher.hash_one(k);
            assert_eq!(segments.get(&k, h).unwrap(), Some(k), "{k}");
            assert_eq!(segments.remove(&k, h).unwrap(), Some(k), "{k}");
        }
        // Drained: the segment, its filter and its file are gone.
        assert!(segments.is_empty());
        assert_eq!(segments.memory(), 0);
    }

    #[test]
    fn pages_hold_whole_entries_for_both_key_sizes() {
        assert_eq!(page::<CidKey>(), 170);
        assert_eq!(page::<u64>(), 255);
        assert!(page::<CidKey>() * entry_bytes::<CidKey>() <= PAGE_BYTES);
        assert!(page::<u64>() * entry_bytes::<u64>() <= PAGE_BYTES);
    }
}
