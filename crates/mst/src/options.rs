//! [`Limits`], [`KeyRules`] and [`WalkOptions`].

/// Caps on what a tree may look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most entries in one node. The spec asks implementations to cap this
    /// at a "statistically unlikely" length; with a fanout of 4, a node of
    /// 200 entries has odds far below one in 10^20.
    pub max_entries: u64,
    /// Most layers from the root down (the root's layer plus one). A key on
    /// layer 32 needs 64 leading zero bits in its hash, so honest trees
    /// never come near the default.
    pub max_depth: usize,
}

impl Limits {
    /// The default entry cap.
    pub const DEFAULT_MAX_ENTRIES: u64 = 200;
    /// The default depth cap.
    pub const DEFAULT_MAX_DEPTH: usize = 32;

    /// Returns these limits with `max_entries` set.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Returns these limits with `max_depth` set.
    pub fn max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_entries: Self::DEFAULT_MAX_ENTRIES, max_depth: Self::DEFAULT_MAX_DEPTH }
    }
}

/// Which keys are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyRules {
    /// A valid repository path: a normalized NSID, `/`, a valid record key.
    /// The default.
    #[default]
    Strict,
    /// For historical repositories: exactly one `/` with something on both
    /// sides, and only record-key characters.
    Lax,
    /// Any non-empty UTF-8 key (for generic trees and test vectors). Never
    /// use it for atproto repositories.
    Any,
}

/// What to do when a block the tree links to is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Completeness {
    /// A missing node or record is an error. The default: a full repository
    /// must be complete.
    #[default]
    Strict,
    /// Missing nodes and records are reported as items and the walk goes on
    /// (CAR slices, proofs, partial syncs).
    Lenient,
}

/// What the walker does with the records that leaves point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Records {
    /// Do not look at records at all. The default.
    #[default]
    Skip,
    /// Check that each record is in the store.
    Check,
    /// Fetch each record's bytes and hand them over with the leaf.
    Fetch,
}

/// How a walk validates and what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WalkOptions {
    /// Caps on node size and depth.
    pub limits: Limits,
    /// Which keys are acceptable.
    pub keys: KeyRules,
    /// Missing blocks: error or item.
    pub completeness: Completeness,
    /// Whether records are checked or fetched.
    pub records: Records,
    /// Whether the store hears of a node's records, through
    /// [`BlockRead::look_ahead`](atrepo_store::BlockRead::look_ahead), when
    /// the node is decoded, even though the walk does not check them
    /// ([`Records::Skip`], [`Records::Fetch`]; [`Records::Check`] always
    /// tells). For a caller that reads each leaf's record itself, from a
    /// store that uses what it is told to start its lookups early (the
    /// verify pipeline's buffer). Off by default: a store that looks blocks
    /// up as it is told would look up records no one reads.
    pub records_ahead: bool,
}

impl WalkOptions {
    /// Returns these options with `limits` set.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Returns these options with `keys` set.
    pub fn keys(mut self, keys: KeyRules) -> Self {
        self.keys = keys;
        self
    }
    /// Returns these options with `completeness` set.
    pub fn completeness(mut self, completeness: Completeness) -> Self {
        self.completeness = completeness;
        self
    }
    /// Returns these options with `records` set.
    pub fn records(mut self, records: Records) -> Self {
        self.records = records;
        self
    }
    /// Returns these options with `records_ahead` set.
    pub fn records_ahead(mut self, records_ahead: bool) -> Self {
        self.records_ahead = records_ahead;
        self
    }
}
