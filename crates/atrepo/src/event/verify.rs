//! [`Verifier`]: the checks a relay runs on each `#commit` and `#sync`
//! event before passing it on.
//!
//! Checks run cheapest first, so that a hostile event costs little before
//! it is refused: limits, the CAR slice (every block hashed, blessed CIDs
//! only, each block within the record limit), the commit block (present,
//! the first root, strictly decoded), the event's fields against the
//! commit, the rev against the caller's state and the clock, `since` and
//! `prevData` against the caller's state, every operation on its own,
//! then the signature, and last the operations against the tree the
//! signature covers.

use std::collections::HashSet;

use cid::Cid;

use super::decode::{Action, CommitEvent, SyncEvent};
use super::error::{EventError, snippet};
use super::frame::Event;
use super::state::{RepoState, StateStore};
use super::{CheckMode, RecordCheck, VerifyOptions};
use crate::car::{CarSlice, Options};
use crate::mst::{self, KeyRules, Tree};
use crate::store::{BlockRead, Bytes, MemoryStore};
use crate::verify::{
    Clock, Commit, CommitOptions, KeyResolver, PublicKey, SystemClock, Tid, drisl, syntax,
};
use crate::{Error, ErrorKind, Result};

/// A `#commit` event that passed every check.
#[derive(Debug)]
#[non_exhaustive]
pub struct VerifiedCommit {
    /// The account's DID.
    pub did: String,
    /// The commit's rev.
    pub rev: Tid,
    /// The event's `since`.
    pub since: Option<Tid>,
    /// The stream sequence number.
    pub seq: i64,
    /// The commit block's CID.
    pub commit: Cid,
    /// The commit's tree root.
    pub data: Cid,
    /// The event's `prevData`.
    pub prev_data: Option<Cid>,
    /// Number of operations.
    pub ops: usize,
    /// Whether the key had to be refreshed for the signature to verify
    /// (only with a [`KeyResolver`]).
    pub key_refreshed: bool,
    /// Checks that failed but were downgraded by [`CheckMode::Warn`], in
    /// the order they ran. Empty with the default options.
    pub warnings: Vec<Error>,
}

impl VerifiedCommit {
    /// The repository's state after this commit, to keep for the next
    /// event.
    pub fn state(&self) -> RepoState {
        RepoState { rev: self.rev, data: self.data }
    }
}

/// A `#sync` event that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSync {
    /// The account's DID.
    pub did: String,
    /// The commit's rev.
    pub rev: Tid,
    /// The stream sequence number.
    pub seq: i64,
    /// The commit block's CID.
    pub commit: Cid,
    /// The commit's tree root.
    pub data: Cid,
    /// Whether the key had to be refreshed for the signature to verify.
    pub key_refreshed: bool,
}

impl VerifiedSync {
    /// The repository's state from now on: a `#sync` resets it rather than
    /// chaining from the previous one.
    pub fn state(&self) -> RepoState {
        RepoState { rev: self.rev, data: self.data }
    }
}

/// A verified event of either type.
#[derive(Debug)]
#[non_exhaustive]
pub enum Verified {
    /// A verified `#commit`.
    Commit(VerifiedCommit),
    /// A verified `#sync`.
    Sync(VerifiedSync),
}

impl Verified {
    /// The repository's state after the event.
    pub fn state(&self) -> RepoState {
        match self {
            Verified::Commit(c) => c.state(),
            Verified::Sync(s) => s.state(),
        }
    }

    /// The account's DID.
    pub fn did(&self) -> &str {
        match self {
            Verified::Commit(c) => &c.did,
            Verified::Sync(s) => &s.did,
        }
    }

    /// The checks downgraded to warnings.
    pub fn warnings(&self) -> &[Error] {
        match self {
            Verified::Commit(c) => &c.warnings,
            Verified::Sync(_) => &[],
        }
    }
}

/// Verifies a `#commit` event with the default options and the system
/// clock; see [`Verifier::verify_commit`].
pub fn verify_commit_event(
    event: &CommitEvent<'_>,
    key: &PublicKey,
    prior: Option<&RepoState>,
) -> Result<VerifiedCommit> {
    Verifier::new().verify_commit(event, key, prior)
}

/// Checks firehose events, with [`VerifyOptions`] and a [`Clock`] for the
/// future-rev check.
#[derive(Debug, Clone, Default)]
pub struct Verifier<C = SystemClock> {
    options: VerifyOptions,
    clock: C,
}

impl Verifier<SystemClock> {
    /// A verifier with the default (strict) options and the system clock.
    pub fn new() -> Self {
        Self::default()
    }
}

/// An operation after the checks on its own, ready for the tree.
#[derive(Debug)]
struct NormOp<'a> {
    path: &'a str,
    action: Action,
    /// The value the tree after the commit holds at `path`.
    after: Option<Cid>,
    /// The value before, when the op carries it.
    before: Option<Cid>,
}

/// A commit past every check but the signature and the tree.
#[derive(Debug)]
struct Staged<'a> {
    commit: Commit,
    commit_cid: Cid,
    store: MemoryStore,
    ops: Vec<NormOp<'a>>,
    /// Whether every update and delete carries `prev`.
    invertible: bool,
    warnings: Vec<Error>,
}

impl<C: Clock> Verifier<C> {
    /// Returns this verifier reading the time from `clock`.
    pub fn with_clock<D: Clock>(self, clock: D) -> Verifier<D> {
        Verifier { options: self.options, clock }
    }

    /// Returns this verifier with `options`.
    pub fn with_options(mut self, options: VerifyOptions) -> Self {
        self.options = options;
        self
    }

    /// The options in use.
    pub fn options(&self) -> &VerifyOptions {
        &self.options
    }

    /// Verifies a `#commit` event against `key` and the state the caller
    /// holds for the repository (`None` for a repository seen for the
    /// first time).
    ///
    /// On success the result's [`state`](VerifiedCommit::state) is what to
    /// hold next. Every check failing has its own error: see the module
    /// docs and [`EventError`].
    pub fn verify_commit(
        &self,
        event: &CommitEvent<'_>,
        key: &PublicKey,
        prior: Option<&RepoState>,
    ) -> Result<VerifiedCommit> {
        let staged = self.stage_commit(event, prior)?;
        staged.commit.verify(key)?;
        self.finish_commit(event, prior, staged, false)
    }

    /// Like [`verify_commit`](Self::verify_commit), with the key from
    /// `resolver`. If the signature does not match, the key is refreshed
    /// once ([`KeyResolver::refresh_key`]) and, if it changed, the
    /// signature checked again; it never loops. Signatures that are
    /// malformed (wrong length, high-S) are not retried.
    pub async fn verify_commit_resolving<R: KeyResolver>(
        &self,
        event: &CommitEvent<'_>,
        resolver: &R,
        prior: Option<&RepoState>,
    ) -> Result<VerifiedCommit> {
        let staged = self.stage_commit(event, prior)?;
        let refreshed = check_resolving(&staged.commit, resolver).await?;
        self.finish_commit(event, prior, staged, refreshed)
    }

    /// Verifies a `#sync` event: the commit in `blocks` (strict, signed by
    /// `key`), its DID and rev against the event, and the rev after the
    /// caller's last known rev and not too far in the future. The result's
    /// [`state`](VerifiedSync::state) replaces the caller's state.
    pub fn verify_sync(
        &self,
        event: &SyncEvent<'_>,
        key: &PublicKey,
        prior: Option<&RepoState>,
    ) -> Result<VerifiedSync> {
        let (commit, cid) = self.stage_sync(event, prior)?;
        commit.verify(key)?;
        Ok(verified_sync(event, &commit, cid, false))
    }

    /// Like [`verify_sync`](Self::verify_sync), with the key from
    /// `resolver`, refreshed once on a mismatching signature.
    pub async fn verify_sync_resolving<R: KeyResolver>(
        &self,
        event: &SyncEvent<'_>,
        resolver: &R,
        prior: Option<&RepoState>,
    ) -> Result<VerifiedSync> {
        let (commit, cid) = self.stage_sync(event, prior)?;
        let refreshed = check_resolving(&commit, resolver).await?;
        Ok(verified_sync(event, &commit, cid, refreshed))
    }

    /// Verifies a `#commit` or `#sync` event. Other messages are refused
    /// with [`EventError::UnsupportedEventType`] or
    /// [`EventError::ErrorFrame`].
    pub fn verify_event(
        &self,
        event: &Event<'_>,
        key: &PublicKey,
        prior: Option<&RepoState>,
    ) -> Result<Verified> {
        match event {
            Event::Commit(e) => self.verify_commit(e, key, prior).map(Verified::Commit),
            Event::Sync(e) => self.verify_sync(e, key, prior).map(Verified::Sync),
            other => Err(other.unsupported().unwrap_or(EventError::UnrecognizedBody).into()),
        }
    }

    /// Like [`verify_event`](Self::verify_event), with every check but
    /// the signature (its length and low-S form included): for checking a
    /// capture's structure, chains and inversions when the keys are not
    /// known. A forged event passes it; only a signature check says who
    /// wrote the commit.
    pub fn verify_event_unsigned(
        &self,
        event: &Event<'_>,
        prior: Option<&RepoState>,
    ) -> Result<Verified> {
        match event {
            Event::Commit(e) => {
                let staged = self.stage_commit(e, prior)?;
                self.finish_commit(e, prior, staged, false).map(Verified::Commit)
            }
            Event::Sync(e) => {
                let (commit, cid) = self.stage_sync(e, prior)?;
                Ok(Verified::Sync(verified_sync(e, &commit, cid, false)))
            }
            other => Err(other.unsupported().unwrap_or(EventError::UnrecognizedBody).into()),
        }
    }

    /// Like [`verify_event`](Self::verify_event), with the first of `keys`
    /// the commit's signature matches (several keys for one account: a
    /// capture that spans a key rotation). The event is checked once; only
    /// the signature is checked against each key in turn. Returns the
    /// result and the index in `keys` of the key that matched; if none
    /// does, the key's error for one key, [`EventError::NoKeyMatched`] for
    /// several (or the signature's own error if it is malformed), and
    /// [`Error::NoKey`] for no keys.
    pub fn verify_event_any_key(
        &self,
        event: &Event<'_>,
        keys: &[PublicKey],
        prior: Option<&RepoState>,
    ) -> Result<(Verified, usize)> {
        match event {
            Event::Commit(e) => {
                let staged = self.stage_commit(e, prior)?;
                let index = first_signer(&staged.commit, keys)?;
                Ok((Verified::Commit(self.finish_commit(e, prior, staged, false)?), index))
            }
            Event::Sync(e) => {
                let (commit, cid) = self.stage_sync(e, prior)?;
                let index = first_signer(&commit, keys)?;
                Ok((Verified::Sync(verified_sync(e, &commit, cid, false)), index))
            }
            other => Err(other.unsupported().unwrap_or(EventError::UnrecognizedBody).into()),
        }
    }

    /// Verifies `event` against the state `states` holds for its DID and,
    /// if it passes, stores the new state. A failed event leaves the state
    /// as it was.
    pub fn apply(
        &self,
        event: &Event<'_>,
        key: &PublicKey,
        states: &dyn StateStore,
    ) -> Result<Verified> {
        self.apply_any_key(event, std::slice::from_ref(key), states).map(|(verified, _)| verified)
    }

    /// [`verify_event_any_key`](Self::verify_event_any_key) against the
    /// state `states` holds, storing the new state if it passes (see
    /// [`apply`](Self::apply)).
    pub fn apply_any_key(
        &self,
        event: &Event<'_>,
        keys: &[PublicKey],
        states: &dyn StateStore,
    ) -> Result<(Verified, usize)> {
        self.apply_with(event, states, |prior| self.verify_event_any_key(event, keys, prior))
    }

    /// Like [`apply`](Self::apply), without the signature check (see
    /// [`verify_event_unsigned`](Self::verify_event_unsigned)).
    pub fn apply_unsigned(&self, event: &Event<'_>, states: &dyn StateStore) -> Result<Verified> {
        let verified = self.apply_with(event, states, |prior| {
            self.verify_event_unsigned(event, prior).map(|verified| (verified, ()))
        });
        verified.map(|(verified, ())| verified)
    }

    /// Reads the state held for `event`'s DID, verifies with `verify`, and
    /// stores the new state if it passed.
    fn apply_with<T>(
        &self,
        event: &Event<'_>,
        states: &dyn StateStore,
        verify: impl FnOnce(Option<&RepoState>) -> Result<(Verified, T)>,
    ) -> Result<(Verified, T)> {
        let Some(did) = event.did() else {
            return Err(event.unsupported().unwrap_or(EventError::UnrecognizedBody).into());
        };
        let prior = states.get(did)?;
        let (verified, extra) = verify(prior.as_ref())?;
        states.set(did, &verified.state())?;
        Ok((verified, extra))
    }

    /// Handles a failed check according to `mode`: an error to return, or
    /// a warning to keep.
    fn check(&self, mode: CheckMode, warnings: &mut Vec<Error>, error: Error) -> Result<()> {
        match mode {
            CheckMode::Enforce => Err(error),
            CheckMode::Warn => {
                warnings.push(error);
                Ok(())
            }
        }
    }

    /// Reads `blocks` as a CAR into a store; returns it and the first root.
    fn load_blocks(&self, blocks: &[u8]) -> Result<(MemoryStore, Cid)> {
        let limits = &self.options.limits;
        let found = blocks.len() as u64;
        if found > limits.max_blocks_bytes {
            return Err(EventError::BlocksTooLarge { limit: limits.max_blocks_bytes, found }.into());
        }
        let car_limits = crate::car::Limits::default()
            .max_total_bytes(limits.max_blocks_bytes)
            .max_section_len(limits.max_blocks_bytes);
        let slice = CarSlice::with_options(blocks, Options::default().limits(car_limits))?;
        let root = slice.header().root();
        let store = MemoryStore::new();
        for frame in slice {
            let frame = frame?;
            let found = frame.data.len() as u64;
            if found > limits.max_record_bytes {
                let limit = limits.max_record_bytes;
                return Err(
                    EventError::RecordTooLarge { cid: Box::new(frame.cid), limit, found }.into()
                );
            }
            store.insert(frame.cid, Bytes::copy_from_slice(frame.data));
        }
        Ok((store, root))
    }

    /// Reads the commit block `cid` from `store`, strictly, and checks its
    /// DID and rev against the event's.
    fn load_commit(&self, store: &MemoryStore, cid: &Cid, did: &str, rev: Tid) -> Result<Commit> {
        let Some(bytes) = store.get(cid)? else {
            return Err(EventError::CommitNotInBlocks { cid: Box::new(*cid) }.into());
        };
        let commit = Commit::decode_block(cid, &bytes, &CommitOptions::default())?;
        if commit.did() != did {
            let (expected, found) = (did.to_owned(), commit.did().to_owned());
            return Err(EventError::DidMismatch { expected, found }.into());
        }
        match commit.rev() {
            Some(found) if found == rev => Ok(commit),
            Some(found) => Err(EventError::RevMismatch { expected: rev, found }.into()),
            // Version 3 commits (the only ones decoded here) have a rev.
            None => Err(EventError::MissingField { part: "commit", field: "rev" }.into()),
        }
    }

    /// The rev after the last known one (or, with `same_ok`, equal to it),
    /// and not too far ahead.
    fn check_rev(&self, rev: Tid, prior: Option<&RepoState>, same_ok: bool) -> Result<()> {
        if let Some(prior) = prior
            && !(same_ok && rev == prior.rev)
            && rev.check_after(&prior.rev).is_err()
        {
            return Err(EventError::RevNotIncreasing { rev, previous: prior.rev }.into());
        }
        match rev.check_not_future(&self.clock, self.options.future_tolerance) {
            Ok(()) => Ok(()),
            Err(crate::verify::Error::RevInFuture { rev, ahead, tolerance }) => {
                Err(EventError::RevInFuture { rev, ahead, tolerance }.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn stage_sync(
        &self,
        event: &SyncEvent<'_>,
        prior: Option<&RepoState>,
    ) -> Result<(Commit, Cid)> {
        let (store, root) = self.load_blocks(event.blocks)?;
        let commit = self.load_commit(&store, &root, event.did, event.rev)?;
        // A `#sync` of the state already held (the TypeScript PDS sends
        // one after an account's first commit, and on activation) changes
        // nothing: its rev may equal the last known one.
        let same = prior.is_some_and(|p| p.data == *commit.data());
        self.check_rev(event.rev, prior, same)?;
        Ok((commit, root))
    }

    fn stage_commit<'e>(
        &self,
        event: &CommitEvent<'e>,
        prior: Option<&RepoState>,
    ) -> Result<Staged<'e>> {
        let limits = &self.options.limits;
        let found = event.ops.len() as u64;
        if found > limits.max_ops {
            return Err(EventError::TooManyOps { limit: limits.max_ops, found }.into());
        }
        let (store, root) = self.load_blocks(event.blocks)?;
        if root != event.commit {
            let (expected, found) = (Box::new(event.commit), Box::new(root));
            return Err(EventError::CommitCidMismatch { expected, found }.into());
        }
        let commit = self.load_commit(&store, &event.commit, event.repo, event.rev)?;
        self.check_rev(event.rev, prior, false)?;
        if let Some(since) = event.since
            && event.rev.check_after(&since).is_err()
        {
            return Err(EventError::SinceNotBeforeRev { since, rev: event.rev }.into());
        }

        let mut warnings = Vec::new();
        if let Some(prior) = prior {
            if event.since != Some(prior.rev) {
                let error = EventError::SinceMismatch { expected: prior.rev, found: event.since };
                self.check(self.options.chain, &mut warnings, error.into())?;
            }
            if let Some(prev_data) = event.prev_data
                && prev_data != prior.data
            {
                let (expected, found) = (Box::new(prior.data), Box::new(prev_data));
                let error = EventError::PrevDataMismatch { expected, found };
                self.check(self.options.chain, &mut warnings, error.into())?;
            }
        }

        // A repository's first commit has no `since`, and no previous tree
        // but the empty one: the TypeScript PDS leaves `prevData` out, and
        // the ops are inverted against the empty tree instead.
        if event.prev_data.is_none() && event.since.is_some() {
            self.check(self.options.inversion, &mut warnings, EventError::MissingPrevData.into())?;
        }

        let mut invertible = true;
        let mut ops = Vec::new();
        let mut seen = HashSet::new();
        for op in &event.ops {
            let norm = self.check_op(op, &store)?;
            if !seen.insert(op.path) {
                return Err(EventError::DuplicateOpPath { path: snippet(op.path, 1024) }.into());
            }
            if norm.action != Action::Create && norm.before.is_none() {
                invertible = false;
                let error =
                    EventError::OpMissingPrev { path: snippet(op.path, 1024), action: norm.action };
                self.check(self.options.inversion, &mut warnings, error.into())?;
            }
            ops.push(norm);
        }
        Ok(Staged { commit, commit_cid: root, store, ops, invertible, warnings })
    }

    /// The checks one operation needs on its own: path syntax, the shape of
    /// its CIDs for its action, and its record block.
    fn check_op<'e>(&self, op: &super::RepoOp<'e>, store: &MemoryStore) -> Result<NormOp<'e>> {
        let path = || snippet(op.path, 1024);
        let syntax = match self.options.keys {
            KeyRules::Lax => syntax::repo_path_lax(op.path),
            KeyRules::Any if !op.path.is_empty() => Ok(()),
            _ => syntax::repo_path(op.path),
        };
        syntax.map_err(|error| EventError::InvalidOpPath { path: path(), error })?;
        // Both links name records as the tree holds them: anything else
        // could never match the tree, and is refused here, in every mode,
        // rather than as an inversion finding.
        for (field, link) in [("cid", op.cid), ("prev", op.prev)] {
            if let Some(cid) = link
                && !mst::is_record_link(&cid)
            {
                return Err(EventError::OpLinkNotRecord {
                    path: path(),
                    field,
                    cid: Box::new(cid),
                }
                .into());
            }
        }
        match op.action {
            Action::Create | Action::Update => {
                let Some(cid) = op.cid else {
                    return Err(EventError::OpMissingCid { path: path(), action: op.action }.into());
                };
                if op.action == Action::Create
                    && let Some(prev) = op.prev
                {
                    return Err(
                        EventError::CreateWithPrev { path: path(), prev: Box::new(prev) }.into()
                    );
                }
                // An update may leave the record as it was (`cid` equal to
                // `prev`): the TypeScript PDS writes one for an
                // `applyWrites` update with an identical record. The tree
                // checks hold it like any other.
                let Some(record) = store.get(&cid)? else {
                    return Err(EventError::MissingRecordBlock {
                        path: path(),
                        cid: Box::new(cid),
                    }
                    .into());
                };
                if self.options.records == RecordCheck::Validate
                    && let Err(error) = drisl::validate_record(&record, &drisl::Limits::default())
                {
                    return Err(EventError::InvalidRecord {
                        path: path(),
                        cid: Box::new(cid),
                        error,
                    }
                    .into());
                }
                Ok(NormOp { path: op.path, action: op.action, after: Some(cid), before: op.prev })
            }
            Action::Delete => {
                if let Some(cid) = op.cid {
                    return Err(
                        EventError::DeleteWithCid { path: path(), cid: Box::new(cid) }.into()
                    );
                }
                Ok(NormOp { path: op.path, action: op.action, after: None, before: op.prev })
            }
        }
    }

    /// The operations against the signed tree: each must describe it
    /// (forward), and undoing them all must give the previous root.
    fn finish_commit(
        &self,
        event: &CommitEvent<'_>,
        prior: Option<&RepoState>,
        staged: Staged<'_>,
        key_refreshed: bool,
    ) -> Result<VerifiedCommit> {
        let Staged { commit, commit_cid, store, ops, invertible, mut warnings } = staged;
        let data = *commit.data();
        let mode = self.options.inversion;
        if let Err(error) = self.check_tree(&store, data, &ops, invertible, event, prior) {
            // Only what the inversion finds may be let through: ops that
            // disagree with the tree, a previous root that does not match,
            // a node the event left out (pre-1.1 events carry too few).
            // A malformed or mis-shaped signed tree, or a limit, fails the
            // event in every mode.
            let inversion = matches!(error, Error::Event(_)) || error.kind() == ErrorKind::Missing;
            if !inversion {
                return Err(error);
            }
            self.check(mode, &mut warnings, error)?;
        }
        Ok(VerifiedCommit {
            did: commit.did().to_owned(),
            rev: event.rev,
            since: event.since,
            seq: event.seq,
            commit: commit_cid,
            data,
            prev_data: event.prev_data,
            ops: ops.len(),
            key_refreshed,
            warnings,
        })
    }

    fn check_tree(
        &self,
        store: &MemoryStore,
        data: Cid,
        ops: &[NormOp<'_>],
        invertible: bool,
        event: &CommitEvent<'_>,
        prior: Option<&RepoState>,
    ) -> Result<()> {
        let before = if ops.is_empty() {
            // An empty commit changes nothing: the tree is its own
            // previous tree, and no node needs to be read. A root the
            // event carries anyway is checked as a root (a review found an
            // entry-less root that only points to a subtree let through
            // here, refused as soon as an op made it read).
            if store.has(&data)? {
                Tree::load_with(store, data, self.options.keys, self.options.mst)?;
            }
            data
        } else {
            let mut tree = Tree::load_with(store, data, self.options.keys, self.options.mst)?;
            // Each op's path must hold its `after` CID. Undoing an op
            // returns what its path held, so one pass checks and inverts;
            // paths are unique, so undoing one leaves the others as they
            // were.
            for op in ops {
                let found = match (invertible, op.action, op.before) {
                    (true, Action::Create, _) => tree.remove(op.path)?,
                    (true, _, Some(before)) => tree.insert(op.path, before)?,
                    // Not invertible (already reported, or downgraded, as
                    // OpMissingPrev): only the check.
                    _ => tree.get(op.path)?,
                };
                if found != op.after {
                    return Err(EventError::OpCidMismatch {
                        path: snippet(op.path, 1024),
                        expected: op.after.map(Box::new),
                        found: found.map(Box::new),
                    }
                    .into());
                }
            }
            if !invertible {
                return Ok(());
            }
            tree.root()
        };
        // Without prevData: for a first commit (no `since`, no state held)
        // the empty tree; otherwise (already reported, or downgraded) the
        // caller's last known data is the only previous root to compare
        // with.
        let first = (event.since.is_none() && prior.is_none()).then(empty_tree);
        let Some(expected) = event.prev_data.or(first).or(prior.map(|p| p.data)) else {
            return Ok(());
        };
        if before != expected {
            let (expected, found) = (Box::new(expected), Box::new(before));
            return Err(EventError::InversionMismatch { expected, found }.into());
        }
        Ok(())
    }
}

/// The root of the empty tree, `{e: [], l: null}`: a repository's tree
/// before its first commit.
fn empty_tree() -> Cid {
    crate::car::blessed_cid(crate::car::DAG_CBOR, &[0xa2, 0x61, 0x65, 0x80, 0x61, 0x6c, 0xf6])
}

/// Checks `commit`'s signature with the resolver's key, refreshing it once
/// if the signature does not match. Returns whether it was refreshed.
async fn check_resolving<R: KeyResolver>(commit: &Commit, resolver: &R) -> Result<bool> {
    let did = commit.did();
    let resolution =
        |source: R::Error| Error::KeyResolution { did: did.to_owned(), source: Box::new(source) };
    let key = resolver.resolve_key(did).await.map_err(resolution)?;
    match commit.verify(&key) {
        Ok(()) => Ok(false),
        Err(first) if first.is_verification() => {
            let fresh = resolver.refresh_key(did).await.map_err(resolution)?;
            if fresh == key {
                return Err(first.into());
            }
            commit.verify(&fresh)?;
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// The index of the first of `keys` that `commit`'s signature verifies
/// with. If none does: with one key, its error; with several, the first
/// error that is not a plain mismatch (a malformed signature is so for
/// every key), else [`EventError::NoKeyMatched`].
fn first_signer(commit: &Commit, keys: &[PublicKey]) -> Result<usize> {
    let mut first = None;
    let mut other = None;
    for (index, key) in keys.iter().enumerate() {
        match commit.verify(key) {
            Ok(()) => return Ok(index),
            Err(e) => {
                if !matches!(e, crate::verify::Error::BadSignature { .. }) {
                    other.get_or_insert(e.clone());
                }
                first.get_or_insert(e);
            }
        }
    }
    match (first, other) {
        (None, _) => Err(Error::NoKey { did: commit.did().to_owned() }),
        (Some(e), _) if keys.len() == 1 => Err(e.into()),
        (_, Some(e)) => Err(e.into()),
        (Some(_), None) => Err(EventError::NoKeyMatched { tried: keys.len() }.into()),
    }
}

fn verified_sync(
    event: &SyncEvent<'_>,
    commit: &Commit,
    cid: Cid,
    key_refreshed: bool,
) -> VerifiedSync {
    VerifiedSync {
        did: commit.did().to_owned(),
        rev: event.rev,
        seq: event.seq,
        commit: cid,
        data: *commit.data(),
        key_refreshed,
    }
}
