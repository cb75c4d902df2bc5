//! [`Notes`]: where each block that waits outside memory is (its packed
//! position in the input or in a stream's scratch file), by short
//! fingerprint, charged to the memory budget by what its tables allocate.
//!
//! Out of order, nearly every block of a repository waits here at some
//! point, so this table is what grows with the input. One hash table made
//! the budget lie in two ways (a massif profile of the 500 MiB shuffled
//! repository read as a stream at `--mem-limit 64`: 71 MB of table for
//! about a million notes charged at 32 bytes each):
//!
//! - a table doubles all at once, and holds the old and the new table
//!   together while it moves the entries over;
//! - right after doubling, or when removals left tombstones that made it
//!   grow instead of rehash in place, it holds up to four times the
//!   buckets its entries need.
//!
//! Here the notes are split into [`SHARDS`] tables by a seeded hash (a
//! repository cannot aim its blocks at one), so a doubling moves a
//! sixty-fourth of them; and the set reports the bytes its tables hold
//! ([`Notes::allocated`]) and what growing one would take at once
//! ([`Notes::growth`]), which the buffer charges to its budget instead of
//! an estimate per note. This module must not decide what fits: the
//! buffer does.

use std::hash::BuildHasher as _;

/// Tables the notes are split into (by seeded hash).
const SHARDS: usize = 64;

/// One table of notes: short fingerprint and packed position.
type Shard = hashbrown::HashTable<(u64, u64)>;

/// What [`Notes::growth`] says a first table takes (hashbrown's smallest
/// table of 16-byte entries is under 100 bytes).
pub(crate) const FIRST_TABLE: u64 = 128;

/// Capacity up to which a table is not shrunk (a few KiB): small tables
/// would only grow again.
const SHRINK_MIN: usize = 256;

/// The shard of seeded hash `h`: its top bits.
fn shard_of(h: u64) -> usize {
    // SHARDS is a power of two well below 2^32.
    usize::try_from(h >> 58).unwrap_or(0) % SHARDS
}

/// The hash a shard's table places an entry by: `h` multiplied by an odd
/// constant, so that its top bits (the table's control byte) depend on
/// the low bits too, not only on the bits that chose the shard, which are
/// the same for every entry of one shard.
fn table_hash(h: u64) -> u64 {
    h.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Where blocks that wait outside memory are, by short fingerprint.
#[derive(Debug)]
pub(crate) struct Notes {
    shards: Vec<Shard>,
    hasher: foldhash::fast::RandomState,
    len: usize,
    /// The bytes all tables hold (`HashTable::allocation_size`).
    allocated: u64,
}

impl Default for Notes {
    fn default() -> Self {
        Notes {
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            len: 0,
            allocated: 0,
        }
    }
}

impl Notes {
    /// The shard of `k` and the hash its table places `k` by.
    fn place(&self, k: u64) -> (usize, u64) {
        let h = self.hasher.hash_one(k);
        (shard_of(h), table_hash(h))
    }

    /// The note of `k`, if there is one.
    pub(crate) fn get(&self, k: u64) -> Option<u64> {
        let (i, t) = self.place(k);
        self.shards.get(i)?.find(t, |&(key, _)| key == k).map(|&(_, packed)| packed)
    }

    /// At most what noting a new `k` would allocate at once, besides what
    /// the tables hold: when its shard's table is full, a table twice its
    /// size (the old one is freed only once the entries moved); else 0. A
    /// full table whose removals left tombstones may be rehashed in place
    /// instead, allocating nothing: this errs on the safe side.
    pub(crate) fn growth(&self, k: u64) -> u64 {
        let (i, _) = self.place(k);
        match self.shards.get(i) {
            Some(shard) if shard.len() >= shard.capacity() => {
                (shard.allocation_size() as u64).saturating_mul(2).max(FIRST_TABLE)
            }
            _ => 0,
        }
    }

    /// Notes `k` at `packed`, unless `k` is noted already: then the note
    /// stays as it was (it is another block's, whose short fingerprint
    /// clashes: replacing it would lose that block). Returns whether `k` was
    /// noted, and the bytes of the table this replaced if its shard grew,
    /// which were held together with the new table for a moment (see
    /// [`growth`](Self::growth)); else 0.
    pub(crate) fn insert(&mut self, k: u64, packed: u64) -> (bool, u64) {
        let (i, t) = self.place(k);
        let Notes { shards, hasher, len, allocated } = self;
        let Some(shard) = shards.get_mut(i) else { return (false, 0) };
        let before = shard.allocation_size() as u64;
        // One probe: the entry of `k`. (hashbrown makes room for a new
        // entry before it looks, so the table may grow even when `k` is
        // there: the allocation is measured either way.)
        let rehash = |&(key, _): &(u64, u64)| table_hash(hasher.hash_one(key));
        let noted = match shard.entry(t, |&(key, _)| key == k, rehash) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(entry) => {
                entry.insert((k, packed));
                *len = len.saturating_add(1);
                true
            }
        };
        let after = shard.allocation_size() as u64;
        *allocated = allocated.saturating_sub(before).saturating_add(after);
        (noted, if after == before { 0 } else { before })
    }

    /// Drops the note of `k`. A table left under a quarter of its capacity
    /// (which removals' tombstones lower, so it may be emptier) is shrunk
    /// to half full (so that it neither grows nor shrinks again
    /// until its notes double or halve): out of order, the notes drain as
    /// the walk catches up, and the memory goes back to the budget. Returns
    /// the note, and the bytes of the smaller table if there is one (held
    /// together with the table it replaces for a moment), else 0.
    pub(crate) fn remove(&mut self, k: u64) -> Option<(u64, u64)> {
        let (i, t) = self.place(k);
        let Notes { shards, hasher, len, allocated } = self;
        let shard = shards.get_mut(i)?;
        let ((_, packed), _) = shard.find_entry(t, |&(key, _)| key == k).ok()?.remove();
        *len = len.saturating_sub(1);
        let mut smaller = 0;
        if shard.capacity() > SHRINK_MIN && shard.len() < shard.capacity() / 4 {
            let before = shard.allocation_size() as u64;
            shard.shrink_to(shard.len() * 2, |&(key, _)| table_hash(hasher.hash_one(key)));
            smaller = shard.allocation_size() as u64;
            *allocated = allocated.saturating_sub(before).saturating_add(smaller);
        }
        Some((packed, smaller))
    }

    /// How many blocks are noted.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no block is noted.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes the tables hold.
    pub(crate) fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Every note: short fingerprint and packed position.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.shards.iter().flat_map(|shard| shard.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bytes `notes`'s tables hold, asked of each table.
    fn allocated_by_tables(notes: &Notes) -> u64 {
        notes.shards.iter().map(|s| s.allocation_size() as u64).sum()
    }

    #[test]
    fn notes_charge_their_tables_and_say_what_growing_takes() {
        let mut notes = Notes::default();
        assert_eq!((notes.len(), notes.allocated(), notes.is_empty()), (0, 0, true));
        let mut peak_growth = 0;
        for k in 0..200_000u64 {
            let before = notes.allocated();
            let growth = notes.growth(k);
            let (noted, replaced) = notes.insert(k, k + 1);
            assert!(noted, "note {k}");
            let after = notes.allocated();
            // A table grows only when `growth` said it might, never past
            // what it said, and reports the table it replaced.
            if after != before {
                assert!(growth > 0, "note {k}: grew without warning");
                assert!(after - before + replaced <= growth, "note {k}: said {growth}");
            }
            if after == before {
                assert_eq!(replaced, 0, "note {k}");
            }
            peak_growth = peak_growth.max(growth);
        }
        assert_eq!(notes.len(), 200_000);
        assert_eq!(notes.allocated(), allocated_by_tables(&notes));
        // 200,000 notes of 16 bytes: between 7/8 and 7/16 full.
        let per = notes.allocated() / 200_000;
        assert!((19..=40).contains(&per), "{per} bytes a note");
        // A doubling moves one shard, never the whole set.
        assert!(peak_growth * 16 < notes.allocated(), "{peak_growth} of {}", notes.allocated());

        assert_eq!(notes.get(7), Some(8));
        assert_eq!(notes.remove(7), Some((8, 0)));
        assert_eq!((notes.get(7), notes.remove(7), notes.len()), (None, None, 199_999));
        // One removal does not shrink a table.
        assert_eq!(notes.allocated(), allocated_by_tables(&notes));
        // A note stays: a clashing fingerprint does not replace it.
        assert_eq!(notes.insert(1, 5), (false, 0));
        assert_eq!((notes.get(1), notes.len()), (Some(2), 199_999));
        assert_eq!(notes.iter().count(), 199_999);

        // Draining the notes gives the tables back, down to small ones.
        let full = notes.allocated();
        for k in (0..200_000u64).filter(|&k| k != 7) {
            let before = notes.allocated();
            let (_, smaller) = notes.remove(k).unwrap();
            assert_eq!(smaller > 0, notes.allocated() < before, "note {k}");
            assert!(notes.allocated() <= before, "note {k}");
        }
        assert!(notes.is_empty());
        assert_eq!(notes.allocated(), allocated_by_tables(&notes));
        // What is left: tables of at most SHRINK_MIN entries (2 * SHRINK_MIN
        // buckets of 17 bytes after the last shrink), about 6% here.
        let small = (SHARDS * (SHRINK_MIN * 2 * 17 + 16)) as u64;
        assert!(
            notes.allocated() <= small && notes.allocated() * 10 < full,
            "{}",
            notes.allocated()
        );
    }

    #[test]
    fn churn_stays_charged_and_warned() {
        // Out of order, notes come and go: removals leave tombstones, and a
        // full table may then grow or rehash in place. The charge follows
        // the tables either way, and growth never comes unannounced.
        let mut notes = Notes::default();
        let mut live = std::collections::VecDeque::new();
        for k in 0..300_000u64 {
            let before = notes.allocated();
            let growth = notes.growth(k);
            let (_, replaced) = notes.insert(k, k);
            let after = notes.allocated();
            // The grown table is `after - before + replaced`.
            assert!(after == before || growth >= after - before + replaced, "note {k}");
            live.push_back(k);
            // Keep between 10,000 and 50,000 notes, removing the oldest.
            if live.len() > 50_000 || (k % 3 == 0 && live.len() > 10_000) {
                let old = live.pop_front().unwrap();
                assert_eq!(notes.remove(old).map(|(packed, _)| packed), Some(old));
            }
        }
        assert_eq!(notes.len(), live.len());
        assert_eq!(notes.allocated(), allocated_by_tables(&notes));
        assert!(live.iter().all(|&k| notes.get(k) == Some(k)));
    }

    proptest! {
        // Model-based: the notes answer as a map from fingerprint to
        // position through inserts, refused inserts of a noted fingerprint
        // and removals (which shrink
        // tables), and the charge is always what the tables hold, never
        // grown past what `growth` said.
        #[test]
        fn behave_as_a_map_and_charge_their_tables(
            ops in proptest::collection::vec((0u64..5000, 0u64..1000, 0u8..3), 1..6000)
        ) {
            let mut notes = Notes::default();
            let mut model = std::collections::HashMap::new();
            for (k, packed, op) in ops {
                match op {
                    0 | 1 => {
                        let (before, growth) = (notes.allocated(), notes.growth(k));
                        let (noted, replaced) = notes.insert(k, packed);
                        let after = notes.allocated();
                        prop_assert!(after == before || after - before + replaced <= growth);
                        prop_assert_eq!(noted, !model.contains_key(&k));
                        model.entry(k).or_insert(packed);
                    }
                    _ => {
                        let removed = notes.remove(k).map(|(p, _)| p);
                        prop_assert_eq!(removed, model.remove(&k));
                    }
                }
                prop_assert_eq!(notes.len(), model.len());
                prop_assert_eq!(notes.is_empty(), model.is_empty());
            }
            prop_assert_eq!(notes.allocated(), allocated_by_tables(&notes));
            for (k, packed) in &model {
                prop_assert_eq!(notes.get(*k), Some(*packed));
            }
            let mut all: Vec<_> = notes.iter().collect();
            all.sort_unstable();
            let mut expected: Vec<_> = model.into_iter().collect();
            expected.sort_unstable();
            prop_assert_eq!(all, expected);
        }
    }
}
