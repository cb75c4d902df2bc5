//! [`Taken`]: the fingerprints of every record handed out, with where each
//! was in the input, so a second key pointing to the same record can be
//! recognised (and given its bytes again).
//!
//! Every record is added once and almost never looked up: lookups come
//! only when the walk wants a record that is not in the buffer, which in
//! streaming order happens once per pull, and finds nothing. A hash map
//! made each insert two cache misses into a table of tens of MiB (a
//! quarter of the verifying thread on the 128 MiB generated repository).
//! This set instead, in each of [`SHARDS`] parts,
//!
//! - appends to a short unsorted tail, sorted into runs and merged
//!   log-structured (sequential memory traffic only; no merge holds more
//!   than a shard twice);
//! - answers "certainly not here" from a blocked Bloom filter of
//!   [`FILTER_BITS_PER_KEY`] to twice that bits per entry, so the common
//!   lookup scans one short tail and one cache line, and never touches the
//!   runs. Entries enter the filter a tail at a time, into one shard's
//!   filter (a few KiB), which stays in cache; the filter is rebuilt twice
//!   as big from the runs when the shard outgrows it.
//!
//! Shards and filter bits come from a seeded hash of the fingerprint: a
//! repository cannot aim its records at one shard or one filter block.

use std::hash::BuildHasher as _;

use atrepo_store::CidKey;

/// Parts the set is split into (by seeded hash).
const SHARDS: usize = 64;

/// Entries a shard's unsorted tail holds before it is sorted into a run
/// (and how many entries a lookup may scan linearly).
const TAIL: usize = 128;

/// Filter bits per entry when a shard's filter is full (twice that just
/// after it is rebuilt). Five bits per entry in one 512-bit block give
/// about 3% false positives when full, each costing a search of the runs.
const FILTER_BITS_PER_KEY: usize = 8;

/// Bits set per entry.
const FILTER_HASHES: u32 = 5;

/// One entry of a run: a record's fingerprint and the value kept for it (a
/// packed position or a digest tail; see `buffer.rs`).
type Entry = (CidKey, u64);

/// A set of record fingerprints with a value each; see the module docs.
#[derive(Debug)]
pub(crate) struct Taken {
    hasher: foldhash::fast::RandomState,
    shards: Vec<Shard>,
    len: usize,
}

#[derive(Debug, Default)]
struct Shard {
    /// Unsorted, newest last, at most [`TAIL`] entries, with their hashes.
    tail: Vec<(CidKey, u64, u64)>,
    /// Sorted runs, oldest (and biggest) first; each more than twice the
    /// size of the next, so there are at most log2(entries / TAIL) + 1.
    runs: Vec<Vec<Entry>>,
    /// Entries in the runs.
    in_runs: usize,
    /// The filter of the runs' entries: 512-bit blocks.
    filter: Vec<[u64; 8]>,
}

impl Taken {
    pub(crate) fn new() -> Self {
        Taken { hasher: foldhash::fast::RandomState::default(), shards: Vec::new(), len: 0 }
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
        shard.tail.push((k, value, h));
        if shard.tail.len() >= TAIL {
            shard.flush(&self.hasher);
        }
    }

    /// The value kept for `k`.
    pub(crate) fn get(&self, k: &CidKey) -> Option<u64> {
        let h = self.hasher.hash_one(k);
        self.shards.get(shard_of(h))?.get(k, h)
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
    fn get(&self, k: &CidKey, h: u64) -> Option<u64> {
        // The tail is not in the filter yet.
        if let Some(&(_, v, _)) = self.tail.iter().find(|(key, _, _)| key == k) {
            return Some(v);
        }
        if !test(&self.filter, h) {
            return None;
        }
        // A key stored twice has right values both times: any hit will do.
        self.runs.iter().find_map(|run| {
            run.binary_search_by_key(k, |&(key, _)| key).ok().and_then(|i| run.get(i)).map(|e| e.1)
        })
    }

    /// Moves the tail into the filter and the runs.
    fn flush(&mut self, hasher: &foldhash::fast::RandomState) {
        self.in_runs = self.in_runs.saturating_add(self.tail.len());
        if self.in_runs.saturating_mul(FILTER_BITS_PER_KEY) > self.filter.len().saturating_mul(512)
        {
            // Twice the bits the runs need now: rebuilt from them, and
            // rebuilt again when they have doubled.
            let blocks = self.in_runs.saturating_mul(FILTER_BITS_PER_KEY * 2) / 512;
            self.filter = vec![[0u64; 8]; blocks.max(1)];
            for run in &self.runs {
                for (k, _) in run {
                    set(&mut self.filter, hasher.hash_one(k));
                }
            }
        }
        for &(_, _, h) in &self.tail {
            set(&mut self.filter, h);
        }
        self.tail.sort_unstable_by_key(|&(k, _, _)| k);
        let mut run: Vec<Entry> = Vec::new();
        run.reserve_exact(self.tail.len());
        run.extend(self.tail.drain(..).map(|(k, v, _)| (k, v)));
        // Merge while the run before is no more than twice as big: every
        // entry is merged O(log n) times, and the runs stay few.
        while let Some(before) = self.runs.last() {
            if before.len() > run.len().saturating_mul(2) {
                break;
            }
            let before = self.runs.pop().unwrap_or_default();
            run = merge(&before, &run);
        }
        self.runs.push(run);
    }
}

/// Two sorted runs as one.
fn merge(a: &[Entry], b: &[Entry]) -> Vec<Entry> {
    // Sized from two runs already in memory (not from input): one
    // allocation instead of doublings.
    let mut out = Vec::new();
    out.reserve_exact(a.len().saturating_add(b.len()));
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        if x.0 <= y.0 {
            out.push(*x);
            i += 1;
        } else {
            out.push(*y);
            j += 1;
        }
    }
    out.extend_from_slice(a.get(i..).unwrap_or_default());
    out.extend_from_slice(b.get(j..).unwrap_or_default());
    out
}

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

fn set(filter: &mut [[u64; 8]], h: u64) {
    let (block, positions) = bits(filter.len(), h);
    if let Some(words) = filter.get_mut(block) {
        for (word, bit) in positions {
            if let Some(w) = words.get_mut(word) {
                *w |= bit;
            }
        }
    }
}

fn test(filter: &[[u64; 8]], h: u64) -> bool {
    let (block, mut positions) = bits(filter.len(), h);
    match filter.get(block) {
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
    fn holds_every_entry_through_merges_and_filter_rebuilds() {
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
            let shard = &taken.shards[shard_of(h)];
            maybe += usize::from(test(&shard.filter, h));
            assert_eq!(taken.get(&k), None);
        }
        // About 3% when a filter is full, less when it was just rebuilt.
        assert!(maybe < 4_000, "{maybe} filter hits in 100000 absent keys");
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
