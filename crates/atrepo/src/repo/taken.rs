//! [`Taken`]: the fingerprints of every record handed out, with where each
//! was in the input, so a second key pointing to the same record can be
//! recognised (and given its bytes again).
//!
//! Every record is added once and almost never looked up: lookups come
//! only when the walk wants a record that is not in the buffer, which in
//! streaming order happens once per pull, and finds nothing. A hash map
//! made each insert two cache misses into a table of tens of MiB (a
//! quarter of the verifying thread on the 128 MiB generated repository).
//! This set instead
//!
//! - appends to short unsorted tails, sorted into runs and merged
//!   log-structured (sequential memory traffic only), in [`SHARDS`] parts so
//!   that no merge holds more than a part twice;
//! - answers "certainly not here" from a blocked Bloom filter of about
//!   [`FILTER_BITS_PER_KEY`] bits per entry (one cache line per query and
//!   level), so the common lookup scans one short tail and never touches
//!   the runs. Entries enter the filter when their tail becomes a run.
//!
//! Shards and filter bits come from a seeded hash of the fingerprint: a
//! repository cannot aim its records at one shard or one filter block.

use std::hash::BuildHasher as _;

use atrepo_store::CidKey;

/// Parts the set is split into (by seeded hash).
const SHARDS: usize = 64;

/// Entries a shard's unsorted tail holds before it is sorted into a run
/// (and how many entries a lookup past the filter may scan linearly).
const TAIL: usize = 128;

/// Filter bits per entry at a level's full capacity. Five bits per entry
/// set in one 512-bit block give about 3% false positives at capacity,
/// which cost one search of the runs each; more bits made the newest level
/// too big to stay in cache while it is filled.
const FILTER_BITS_PER_KEY: usize = 8;

/// Entries the first filter level is sized for; each further level is
/// twice the size of the one before.
const FIRST_LEVEL_KEYS: usize = 1024;

/// Bits set per entry.
const FILTER_HASHES: u32 = 5;

/// One entry: a record's fingerprint and the value kept for it (a packed
/// position or a digest tail; see `buffer.rs`).
type Entry = (CidKey, u64);

/// A set of record fingerprints with a value each; see the module docs.
#[derive(Debug)]
pub(crate) struct Taken {
    hasher: foldhash::fast::RandomState,
    shards: Vec<Shard>,
    filter: Filter,
    len: usize,
}

#[derive(Debug, Default)]
struct Shard {
    /// Unsorted, newest last, at most [`TAIL`] entries.
    tail: Vec<Entry>,
    /// Sorted runs, oldest (and biggest) first; each at least twice the
    /// size of the next, so there are at most log2(entries / TAIL) + 1.
    runs: Vec<Vec<Entry>>,
}

impl Taken {
    pub(crate) fn new() -> Self {
        Taken {
            hasher: foldhash::fast::RandomState::default(),
            shards: Vec::new(),
            filter: Filter::default(),
            len: 0,
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `k` with `value`. Inserts do not look for `k` first (that
    /// query cost as much as the rest of the insert): a key added twice (a
    /// record block that came twice, taken twice) is kept twice, and a
    /// lookup returns either value. Callers add a value for `k` only when
    /// it is true of `k`, so either is right.
    pub(crate) fn insert(&mut self, k: CidKey, value: u64) {
        let h = self.hasher.hash_one(k);
        if self.shards.is_empty() {
            self.shards = (0..SHARDS).map(|_| Shard::default()).collect();
        }
        self.len = self.len.saturating_add(1);
        let Some(shard) = self.shards.get_mut(shard_of(h)) else { return };
        shard.tail.push((k, value));
        if shard.tail.len() >= TAIL {
            // Filter bits are set a tail at a time: independent cache
            // misses in a tight loop overlap, where one per insert, among
            // the walk's other work, did not (62% of the insert).
            for (k, _) in &shard.tail {
                self.filter.insert(self.hasher.hash_one(k), self.len);
            }
            shard.flush();
        }
    }

    /// The value kept for `k`.
    pub(crate) fn get(&self, k: &CidKey) -> Option<u64> {
        let h = self.hasher.hash_one(k);
        let shard = self.shards.get(shard_of(h))?;
        // Tails are not in the filter yet.
        if let Some(&(_, v)) = shard.tail.iter().find(|(key, _)| key == k) {
            return Some(v);
        }
        if !self.filter.may_contain(h) {
            return None;
        }
        shard.find_in_runs(k)
    }

    pub(crate) fn contains_key(&self, k: &CidKey) -> bool {
        self.get(k).is_some()
    }
}

/// The shard of hash `h` (its top bits; the filter uses the others).
fn shard_of(h: u64) -> usize {
    // SHARDS is a power of two well below 2^32.
    usize::try_from(h >> 58).unwrap_or(0) % SHARDS
}

impl Shard {
    /// Sorts the tail into a run and merges runs.
    fn flush(&mut self) {
        self.tail.sort_unstable_by_key(|&(k, _)| k);
        // A copy of the sorted tail, so the tail keeps its allocation.
        let mut run = self.tail.clone();
        self.tail.clear();
        // Merge while the run before is no more than twice as big: every
        // entry is merged O(log n) times, and the runs stay few.
        while let Some(before) = self.runs.last() {
            if before.len() > run.len().saturating_mul(2) {
                break;
            }
            let before = self.runs.pop().unwrap_or_default();
            run = merge(before, run);
        }
        self.runs.push(run);
    }

    fn find_in_runs(&self, k: &CidKey) -> Option<u64> {
        // A key stored twice has right values both times: any hit will do.
        self.runs.iter().find_map(|run| {
            run.binary_search_by_key(k, |&(key, _)| key).ok().and_then(|i| run.get(i)).map(|e| e.1)
        })
    }
}

/// Two sorted runs as one.
fn merge(a: Vec<Entry>, b: Vec<Entry>) -> Vec<Entry> {
    // Sized from two runs already in memory (not from input): one
    // allocation instead of doublings.
    let mut out = Vec::new();
    out.reserve_exact(a.len().saturating_add(b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    out
}

/// A blocked Bloom filter that grows by levels: level `i` is sized for
/// `FIRST_LEVEL_KEYS << i` entries, and entries go to the newest level.
/// A query asks every level (one 64-byte block each).
#[derive(Debug, Default)]
struct Filter {
    levels: Vec<Vec<[u64; 8]>>,
    /// Entries the levels before the newest hold in all.
    filled: usize,
}

impl Filter {
    /// Adds hash `h`; `len` is how many entries the filter holds now.
    fn insert(&mut self, h: u64, len: usize) {
        let capacity = self.capacity();
        if len >= capacity || self.levels.is_empty() {
            self.filled = capacity;
            let keys = FIRST_LEVEL_KEYS << self.levels.len().min(40);
            let blocks = (keys.saturating_mul(FILTER_BITS_PER_KEY) / 512).max(1);
            self.levels.push(vec![[0u64; 8]; blocks]);
        }
        if let Some(level) = self.levels.last_mut() {
            set(level, h);
        }
    }

    /// Entries all levels are sized for.
    fn capacity(&self) -> usize {
        match self.levels.len() {
            0 => 0,
            n => self.filled.saturating_add(FIRST_LEVEL_KEYS << (n - 1).min(40)),
        }
    }

    fn may_contain(&self, h: u64) -> bool {
        self.levels.iter().any(|level| test(level, h))
    }
}

/// The block, of `blocks`, for hash `h`, and the word and bit of each of the
/// [`FILTER_HASHES`] bits within it (nine bits each).
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

fn set(level: &mut [[u64; 8]], h: u64) {
    let (block, positions) = bits(level.len(), h);
    if let Some(words) = level.get_mut(block) {
        for (word, bit) in positions {
            if let Some(w) = words.get_mut(word) {
                *w |= bit;
            }
        }
    }
}

fn test(level: &[[u64; 8]], h: u64) -> bool {
    let (block, mut positions) = bits(level.len(), h);
    match level.get(block) {
        Some(words) => positions.all(|(word, bit)| words.get(word).is_some_and(|w| w & bit != 0)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn key(n: u64) -> CidKey {
        // Spread like digests, but reproducible.
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        b[8..16].copy_from_slice(&n.to_le_bytes());
        let digest = multihash_of(&b);
        CidKey::of(&cid::Cid::new_v1(0x71, digest))
    }

    fn multihash_of(b: &[u8; 32]) -> cid::multihash::Multihash<64> {
        cid::multihash::Multihash::wrap(0x12, b).unwrap()
    }

    #[test]
    fn holds_every_entry_through_merges_and_levels() {
        let mut taken = Taken::new();
        let n = 200_000usize;
        for i in 0..n as u64 {
            taken.insert(key(i), i);
        }
        assert_eq!(taken.len(), n);
        for i in 0..n as u64 {
            assert_eq!(taken.get(&key(i)), Some(i), "entry {i}");
        }
        // A key added again answers with one of its values.
        taken.insert(key(7), 7 | 1 << 40);
        assert!(matches!(taken.get(&key(7)), Some(v) if v & 0xff == 7));
        assert_eq!(taken.len(), n + 1);
    }

    #[test]
    fn false_positives_are_rare_and_never_answers() {
        let mut taken = Taken::new();
        for i in 0..50_000u64 {
            taken.insert(key(i), i);
        }
        let mut maybe = 0;
        for i in 1_000_000..1_100_000u64 {
            let k = key(i);
            let h = taken.hasher.hash_one(k);
            maybe += usize::from(taken.filter.may_contain(h));
            assert_eq!(taken.get(&k), None);
        }
        // Six levels of about 3% each at capacity, less below.
        assert!(maybe < 10_000, "{maybe} filter hits in 100000 absent keys");
    }

    #[test]
    fn runs_stay_few() {
        let mut taken = Taken::new();
        for i in 0..(SHARDS * TAIL * 64) as u64 {
            taken.insert(key(i), i);
        }
        let most = taken.shards.iter().map(|s| s.runs.len()).max().unwrap_or(0);
        // Entries per shard ~ TAIL * 64: about log2(64) + 1 runs.
        assert!(most <= 10, "{most} runs in a shard");
        for shard in &taken.shards {
            for run in &shard.runs {
                assert!(run.windows(2).all(|w| w[0].0 < w[1].0));
            }
        }
    }

    proptest! {
        // Model-based: the set answers as a map from each key to the values
        // added for it, giving one of them.
        #[test]
        fn behaves_as_a_multimap(
            ops in proptest::collection::vec((0u64..3000, 0u64..4, any::<bool>()), 1..3000)
        ) {
            let mut taken = Taken::new();
            let mut model: HashMap<CidKey, Vec<u64>> = HashMap::new();
            for (n, value, lookup) in ops {
                let k = key(n);
                if lookup {
                    match (taken.get(&k), model.get(&k)) {
                        (None, None) => {}
                        (Some(v), Some(values)) => prop_assert!(values.contains(&v)),
                        (found, expected) => prop_assert!(false, "{found:?} for {expected:?}"),
                    }
                } else {
                    model.entry(k).or_default().push(value);
                    taken.insert(k, value);
                }
            }
            for (k, values) in &model {
                prop_assert!(taken.get(k).is_some_and(|v| values.contains(&v)));
            }
            prop_assert_eq!(taken.len(), model.values().map(Vec::len).sum::<usize>());
        }
    }
}
