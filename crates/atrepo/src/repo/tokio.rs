//! [`AsyncRepoReader`]: the tokio driver of the verification engine.

use atrepo_car::AsyncCarReader;
use atrepo_verify::{Commit, KeyResolver, PublicKey};
use cid::Cid;
use tokio::io::AsyncRead;

use super::engine::{Engine, Poll};
use super::{Record, Report, VerifyOptions, verify_with};
use crate::error::{Error, Result};

/// [`RepoReader`](super::RepoReader) over a tokio [`AsyncRead`]: the same
/// checks, the same buffering, awaiting the input instead of blocking on it.
pub struct AsyncRepoReader<R> {
    reader: AsyncCarReader<R>,
    engine: Engine,
    commit: Commit,
    failed: bool,
}

impl<R> std::fmt::Debug for AsyncRepoReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRepoReader").field("commit", &self.engine.commit_cid()).finish()
    }
}

impl<R: AsyncRead + Unpin> AsyncRepoReader<R> {
    /// Opens a repository CAR read from `reader`, up to and including the
    /// commit.
    pub async fn new(reader: R, options: VerifyOptions) -> Result<Self> {
        let mut reader = AsyncCarReader::with_options(reader, options.car).await?;
        let mut engine = Engine::new(reader.header().root(), options);
        engine.keep_records_of_stream()?;
        engine.add_bytes(reader.offset());
        while !engine.poll_commit()? {
            pull(&mut reader, &mut engine).await?;
        }
        let commit =
            engine.commit().cloned().ok_or(Error::MissingCommit { cid: engine.commit_cid() })?;
        Ok(AsyncRepoReader { reader, engine, commit, failed: false })
    }

    /// The commit, decoded and checked (its signature, and its rev against
    /// the clock, only once a key was given).
    pub fn commit(&self) -> &Commit {
        &self.commit
    }

    /// The commit's CID.
    pub fn commit_cid(&self) -> Cid {
        self.engine.commit_cid()
    }

    /// Checks the commit's signature with `key`, then its rev against the
    /// clock (as [`RepoReader::verify_signature`](crate::RepoReader::verify_signature)).
    pub fn verify_signature(&mut self, key: &PublicKey) -> Result<()> {
        self.engine.verify_signature(key)
    }

    /// Checks the signature with a key from `resolver`, refreshing it once
    /// if it does not verify.
    pub async fn verify_signature_with<K: KeyResolver>(&mut self, resolver: &K) -> Result<()> {
        verify_with(&mut self.engine, resolver).await
    }

    /// The next record, verified, or `None` when the walk is done.
    pub async fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        if self.failed {
            return Ok(None);
        }
        loop {
            match self.engine.poll() {
                Ok(Poll::Record) => return Ok(self.engine.record()),
                Ok(Poll::NeedBlock) => {
                    if let Err(e) = pull(&mut self.reader, &mut self.engine).await {
                        self.failed = true;
                        return Err(e);
                    }
                }
                Ok(Poll::Done) => return Ok(None),
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
    }

    /// Verifies the rest and returns the report.
    pub async fn finish(mut self) -> Result<Report> {
        while self.next_record().await?.is_some() {}
        if self.failed {
            return Err(Error::Usage("finish called after an error".to_owned()));
        }
        self.engine.report()
    }
}

/// Feeds the engine the next few blocks (as many as the sync driver does,
/// so both hold the same blocks at the same time), or the end of input.
async fn pull<R: AsyncRead + Unpin>(
    reader: &mut AsyncCarReader<R>,
    engine: &mut Engine,
) -> Result<()> {
    for _ in 0..super::PULL_BATCH {
        let before = reader.offset();
        match reader.next_block().await? {
            Some(block) => {
                let end = reader.offset();
                engine.push(block.cid, block.data, end.saturating_sub(before), end)?;
            }
            None => {
                engine.push_eof();
                break;
            }
        }
    }
    Ok(())
}

/// Verifies a whole repository CAR read from a tokio `AsyncRead`.
pub async fn verify_repo_async<R: AsyncRead + Unpin>(
    reader: R,
    options: VerifyOptions,
) -> Result<Report> {
    AsyncRepoReader::new(reader, options).await?.finish().await
}
