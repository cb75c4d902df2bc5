//! Switches that loosen or resize the checks of the repository commands
//! (`verify`, `ls`, `get`, `stats`, `export`, `diff`). The defaults follow
//! the specifications; these are for historical repositories, third-party
//! writers, and repositories bigger than the default limits.

use atrepo::car::Limits;
use atrepo::mst::{KeyRules, Limits as MstLimits};
use atrepo::verify::{CommitOptions, DEFAULT_FUTURE_TOLERANCE};
use atrepo::{RecordCheck, VerifyOptions};
use clap::Args;
use std::time::Duration;

/// The switches; see the module docs.
#[derive(Debug, Args)]
pub(crate) struct Rules {
    /// Accept the record paths of historical repositories: one `/` between
    /// two non-empty parts of the allowed characters, instead of a
    /// normalized NSID, `/` and a record key.
    #[arg(long)]
    lax_paths: bool,
    /// Accept a version 2 commit (repositories last written before August
    /// 2023), whose `rev` may be absent.
    #[arg(long)]
    allow_v2: bool,
    /// Do not decode records as strict DRISL (their CIDs are still
    /// checked): for writers whose records are not canonical. (`get` and
    /// `export` still decode the records they print.)
    #[arg(long)]
    opaque_records: bool,
    /// Largest CAR accepted, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = Limits::DEFAULT_MAX_TOTAL_BYTES >> 20)]
    max_car_mib: u64,
    /// Most blocks a CAR may hold, duplicates included.
    #[arg(long, value_name = "N", default_value_t = Limits::DEFAULT_MAX_BLOCKS)]
    max_blocks: u64,
    /// Largest block (CID and bytes) accepted, in MiB. The default is
    /// atproto's usual cap (records of at most 1 MB); no specification
    /// fixes one for repositories. Each block is held whole while it is
    /// hashed, so this bounds the memory one block can take.
    #[arg(long, value_name = "MIB", default_value_t = Limits::DEFAULT_MAX_SECTION_LEN >> 20)]
    max_block_mib: u64,
    /// Most entries one MST node may hold. The repository specification
    /// asks for a "statistically unlikely" cap: a node of random keys
    /// reaches the default with odds far below one in 10^20, so only keys
    /// chosen to share a layer come near it. Raise it for such a
    /// repository.
    #[arg(
        long,
        value_name = "N",
        default_value_t = MstLimits::DEFAULT_MAX_ENTRIES,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    max_node_entries: u64,
    /// How far a commit's rev may be ahead of this machine's clock, in
    /// seconds: a rev further ahead is refused (exit 1), as the
    /// specifications ask. Raise it for a writer whose clock runs ahead.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_FUTURE_TOLERANCE.as_secs())]
    max_rev_ahead: u64,
}

impl Rules {
    /// `options` with these switches applied.
    pub(crate) fn apply(&self, mut options: VerifyOptions) -> VerifyOptions {
        options = options
            .keys(self.keys())
            .commit(self.commit())
            .mst(self.mst())
            .future_tolerance(Duration::from_secs(self.max_rev_ahead));
        if self.opaque_records {
            options = options.records(RecordCheck::Opaque);
        }
        let car = self.car(options.car);
        options.car(car)
    }

    /// The record path rules.
    pub(crate) fn keys(&self) -> KeyRules {
        if self.lax_paths { KeyRules::Lax } else { KeyRules::Strict }
    }

    /// The MST limits (`--max-node-entries`).
    pub(crate) fn mst(&self) -> MstLimits {
        MstLimits::default().max_entries(self.max_node_entries)
    }

    /// Whether records are left undecoded (`--opaque-records`).
    pub(crate) fn opaque_records(&self) -> bool {
        self.opaque_records
    }

    /// The commit decoding options.
    pub(crate) fn commit(&self) -> CommitOptions {
        CommitOptions::default().allow_v2(self.allow_v2)
    }

    /// `car` with these limits.
    pub(crate) fn car(&self, car: atrepo::car::Options) -> atrepo::car::Options {
        let total = self.max_car_mib.saturating_mul(1 << 20);
        // No block is bigger than the whole CAR.
        let section = self.max_block_mib.saturating_mul(1 << 20).min(total);
        let limits =
            car.limits.max_total_bytes(total).max_blocks(self.max_blocks).max_section_len(section);
        car.limits(limits)
    }
}
