//! Where `--did-doc FILE` and `--did-key DID=KEY` keys come from: DID
//! documents the user fetched (`curl https://plc.directory/did:plc:...`),
//! read by `atrepo::identity`, instead of a `did:key` copied out of one by
//! hand.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use atrepo::identity::{DidDocumentKey, MAX_DID_DOCUMENTS_BYTES, did_document_key, did_documents};
use atrepo::verify::PublicKey;

/// The bytes of `path` (`-` is standard input), at most one past the
/// documents' cap (so that a bigger input is reported as such, not cut
/// short).
fn bytes(path: &Path) -> Result<Vec<u8>> {
    let what = || format!("cannot read DID documents from {}", path.display());
    let reader: Box<dyn Read> = if path == Path::new("-") {
        crate::input::claim_stdin()?;
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(what)?)
    };
    let cap = u64::try_from(MAX_DID_DOCUMENTS_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    reader.take(cap).read_to_end(&mut bytes).with_context(what)?;
    Ok(bytes)
}

/// The one document in `path`: its DID and `#atproto` key.
pub(crate) fn read_one(path: &Path) -> Result<DidDocumentKey> {
    let found = did_document_key(&bytes(path)?).map_err(atrepo::Error::from);
    found.with_context(|| format!("in {}", path.display()))
}

/// Documents skipped by name before the rest are only counted.
const WARNINGS_SHOWN: usize = 10;

/// Most keys given for one DID: each failing event is checked against
/// all of them (a DID document declares one; a rotation adds a few).
pub(crate) const MAX_KEYS_PER_DID: usize = 16;

/// The keys a stream's events may be signed with, per DID: every key
/// given for a DID is tried in turn (a capture may span a key rotation).
#[derive(Debug, Default)]
pub(crate) struct KeyRing {
    by_did: BTreeMap<String, Vec<PublicKey>>,
}

impl KeyRing {
    /// Adds `key` for `did` (once); at most [`MAX_KEYS_PER_DID`] keys
    /// per DID.
    pub(crate) fn add(&mut self, did: String, key: PublicKey) -> Result<()> {
        let keys = self.by_did.entry(did).or_default();
        if !keys.contains(&key) {
            if keys.len() >= MAX_KEYS_PER_DID {
                bail!("expected at most {MAX_KEYS_PER_DID} keys for one DID, found more");
            }
            keys.push(key);
        }
        Ok(())
    }

    /// Adds the key of every document in `path` (one, an array, or one per
    /// line). A document without a usable key is skipped with a warning
    /// on stderr naming it: its DID's events then have no key (unless
    /// another source gives one), which each such event reports.
    pub(crate) fn add_documents(&mut self, path: &Path) -> Result<()> {
        let found = did_documents(&bytes(path)?).map_err(atrepo::Error::from);
        let found = found.with_context(|| format!("in {}", path.display()))?;
        if found.is_empty() {
            eprintln!("warning: {}: no DID documents", path.display());
        }
        let mut skipped = 0usize;
        for (n, document) in found.into_iter().enumerate() {
            match document {
                Ok(DidDocumentKey { did, key }) => {
                    self.add(did, key).with_context(|| format!("in {}", path.display()))?;
                }
                Err(e) => {
                    skipped += 1;
                    if skipped <= WARNINGS_SHOWN {
                        eprintln!("warning: {}: document {} skipped: {e}", path.display(), n + 1);
                    }
                }
            }
        }
        if skipped > WARNINGS_SHOWN {
            let more = skipped - WARNINGS_SHOWN;
            eprintln!("warning: {}: {more} more documents skipped", path.display());
        }
        Ok(())
    }

    /// The keys to try for `did`: those given for it (`--did-key` in the
    /// order given, then `--did-doc`), then `fallback` (`--key`) unless it
    /// is one of them. Empty when there are none.
    pub(crate) fn candidates(&self, did: &str, fallback: Option<&PublicKey>) -> Vec<PublicKey> {
        let mut keys = self.by_did.get(did).cloned().unwrap_or_default();
        if let Some(key) = fallback
            && !keys.contains(key)
        {
            keys.push(key.clone());
        }
        keys
    }
}
