//! [`VerifyOptions`]: what a repository verification checks and how much
//! it may spend.

use std::time::{Duration, SystemTime};

use atrepo_mst::KeyRules;
use atrepo_store::SpillOptions;
use atrepo_verify::{CommitOptions, DEFAULT_FUTURE_TOLERANCE, PublicKey};

/// Whether the commit's signature must be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SignatureCheck {
    /// Check it: with [`VerifyOptions::key`], or with a key handed to
    /// [`RepoReader::verify_signature`](crate::RepoReader::verify_signature)
    /// before the first record is read. The default.
    #[default]
    Required,
    /// Do not check it. Everything else is still verified; the report says
    /// the signature was not checked. For inspecting repositories whose key
    /// is unknown, never for deciding whether to trust one.
    Skip,
}

/// How record blocks are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordCheck {
    /// Strict DRISL and the data model rules, within these limits. The
    /// default.
    Strict(atrepo_verify::drisl::Limits),
    /// Only their CIDs (which the CAR reader checks anyway): for callers
    /// that decode records themselves.
    Opaque,
}

impl Default for RecordCheck {
    fn default() -> Self {
        RecordCheck::Strict(atrepo_verify::drisl::Limits::default())
    }
}

/// Everything that configures [`verify_repo`](crate::verify_repo) and
/// [`RepoReader`](crate::RepoReader).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// The DID the repository must belong to, if known.
    pub did: Option<String>,
    /// The key the commit must be signed with, if known up front.
    pub key: Option<PublicKey>,
    /// Whether the signature must be checked.
    pub signature: SignatureCheck,
    /// CAR limits, CID mode and block hashing.
    pub car: atrepo_car::Options,
    /// MST limits (entries per node, depth).
    pub mst: atrepo_mst::Limits,
    /// Which MST keys are acceptable.
    pub keys: KeyRules,
    /// Commit decoding options (v2 commits).
    pub commit: CommitOptions,
    /// How records are checked.
    pub records: RecordCheck,
    /// Memory the block buffer may use, counting per-block bookkeeping.
    /// Moving notes or the fingerprints of records handed out to segment
    /// files under the spill folder stays within it: a new segment's
    /// filter is built once the entries it replaces are freed, and a merge
    /// frees the old filters before it builds the new one. Known
    /// excesses, for a moment, which the report's peak shows: moving notes
    /// holds one of their 64 tables sorted (16 bytes a note) and a 4 KiB
    /// page beside the tables, and at limits of a few MiB a merge's 48 KiB
    /// of buffers can pass what the tables it froze freed (4.6 KB over at
    /// 4 MiB, 8 KiB over at 256 KiB, in tests); below about 8 MiB, the
    /// fingerprints of records handed out (charged 32 bytes each) can
    /// allocate more than they are charged when few are held (their 64
    /// shards' chunks are not full).
    pub memory_limit: u64,
    /// Where blocks of a stream go past the memory limit; `None` makes
    /// crossing it an error. A stream's blocks that wait then go to an
    /// anonymous scratch file under [`SpillOptions::parent`], each noted
    /// in memory by its position (20 to 80 bytes) and read back and
    /// re-hashed when the walk needs it; past [`SpillOptions::max_spilled`]
    /// bytes of them, the stream fails with a `spilled bytes` limit error.
    /// Only once those notes' tables cannot grow within the limit (beside
    /// the blocks still waiting in memory) do blocks go to the spill store
    /// ([`SpillOptions::target`], which has a cap of its own). Files and
    /// inputs held in memory need no scratch file: their blocks wait as
    /// positions in them (for an input held in memory, only with spill
    /// options; without, crossing the limit is an error there too).
    pub spill: Option<SpillOptions>,
    /// How far in the future a commit's `rev` may be. It is checked once
    /// the signature is: a rev changed under an old signature fails as a
    /// bad signature.
    pub future_tolerance: Duration,
    /// The time rev checks compare with; `None` for the system clock.
    pub now: Option<SystemTime>,
    /// Whether records read from a stream are kept so that a second key
    /// pointing to the same record gets its bytes too (see
    /// [`Record::data`](crate::Record::data)). Default `false`.
    ///
    /// A stream cannot be read again, so a record's bytes are dropped once
    /// handed out; with this set, each record is also written once to an
    /// anonymous scratch file under [`SpillOptions::parent`] (the system's
    /// temporary folder when `spill` is `None`: on a RAM-backed `/tmp` that
    /// is memory outside [`memory_limit`](Self::memory_limit)), the same
    /// file that holds the stream's waiting blocks past the limit, and
    /// read back and re-hashed for a repeat. Records taken from the spill
    /// store (or its batch in flight) stay there instead. Kept records
    /// take at most [`SpillOptions::max_spilled`] bytes of the file (beside
    /// the waiting blocks' and the spill store's own caps), and records of
    /// 16 MiB or more are not kept; past either, a repeat comes without
    /// bytes. Its write buffer (a sixteenth of `memory_limit`, 4 to 64 KiB)
    /// counts in `memory_limit`. Worth it for callers that use every
    /// record's bytes; verification alone never needs it. Inputs held in memory and
    /// regular files are read again instead, and ignore it.
    pub keep_records: bool,
}

impl VerifyOptions {
    /// The default memory limit, 256 MiB.
    pub const DEFAULT_MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

    /// Returns these options with the commit decoding options set (for
    /// example [`CommitOptions::allow_v2`]).
    pub fn commit(mut self, commit: CommitOptions) -> Self {
        self.commit = commit;
        self
    }

    /// Returns these options expecting `did`.
    pub fn did(mut self, did: impl Into<String>) -> Self {
        self.did = Some(did.into());
        self
    }
    /// Returns these options checking the signature with `key`.
    pub fn key(mut self, key: PublicKey) -> Self {
        self.key = Some(key);
        self
    }
    /// Returns these options with the signature check set.
    pub fn signature(mut self, check: SignatureCheck) -> Self {
        self.signature = check;
        self
    }
    /// Returns these options with the CAR options set.
    pub fn car(mut self, car: atrepo_car::Options) -> Self {
        self.car = car;
        self
    }
    /// Returns these options with the MST limits set.
    pub fn mst(mut self, limits: atrepo_mst::Limits) -> Self {
        self.mst = limits;
        self
    }
    /// Returns these options with the MST key rules set.
    pub fn keys(mut self, keys: KeyRules) -> Self {
        self.keys = keys;
        self
    }
    /// Returns these options with the record check set.
    pub fn records(mut self, records: RecordCheck) -> Self {
        self.records = records;
        self
    }
    /// Returns these options with the memory limit set, in bytes.
    ///
    /// It bounds the blocks waiting for the walk and their bookkeeping
    /// (about 300 bytes a block in memory; 20 to 80 for a block left in the
    /// input file or a stream's scratch file, charged by what the tables of
    /// those notes allocate, which keep up to about 0.5 MB of small tables
    /// once used) and the fingerprints of records handed out (32
    /// bytes each in memory; when the budget is short and they cost more
    /// than an eighth of it, they move to a temporary file under the spill
    /// folder, leaving about 1.4 bytes a record in memory). Past it blocks
    /// are left in the input file or spilled; with neither, verification
    /// stops with a limit error (and the fingerprints stay in memory,
    /// where millions of records can pass a small limit: the report's peak
    /// says so).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }
    /// Returns these options spilling with `spill` (or never, for `None`).
    pub fn spill(mut self, spill: Option<SpillOptions>) -> Self {
        self.spill = spill;
        self
    }
    /// Returns these options keeping records read from a stream for a
    /// second key (see [`VerifyOptions::keep_records`]).
    pub fn keep_records(mut self, keep: bool) -> Self {
        self.keep_records = keep;
        self
    }

    /// Returns these options allowing a rev up to `tolerance` ahead of the
    /// clock.
    pub fn future_tolerance(mut self, tolerance: Duration) -> Self {
        self.future_tolerance = tolerance;
        self
    }

    /// Returns these options checking revs against `now`.
    pub fn now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        let spill = SpillOptions::default();
        VerifyOptions {
            did: None,
            key: None,
            signature: SignatureCheck::default(),
            car: atrepo_car::Options::default(),
            mst: atrepo_mst::Limits::default(),
            keys: KeyRules::default(),
            commit: CommitOptions::default(),
            records: RecordCheck::default(),
            memory_limit: Self::DEFAULT_MEMORY_LIMIT,
            // Spill when a disk backend is compiled in; otherwise the memory
            // limit is a hard limit.
            spill: spill.target.is_some().then_some(spill),
            future_tolerance: DEFAULT_FUTURE_TOLERANCE,
            now: None,
            keep_records: false,
        }
    }
}
