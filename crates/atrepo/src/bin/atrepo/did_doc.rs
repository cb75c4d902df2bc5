//! `--did-doc FILE`: the signing key (and the DID) from DID documents the
//! user fetched (`curl https://plc.directory/did:plc:...`), instead of a
//! `did:key` copied out of one by hand. See `atrepo::identity`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use atrepo::identity::{DidDocumentKey, MAX_DID_DOCUMENTS_BYTES, did_document_keys};

/// The documents in `path`: one, a JSON array of them, or one per line.
pub(crate) fn read(path: &Path) -> Result<Vec<DidDocumentKey>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read DID documents from {}", path.display()))?;
    // One byte past the cap, so that a bigger file is reported as such.
    let cap = u64::try_from(MAX_DID_DOCUMENTS_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    file.take(cap)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read DID documents from {}", path.display()))?;
    let keys = did_document_keys(&bytes).map_err(atrepo::Error::from);
    keys.with_context(|| format!("in {}", path.display()))
}

/// The one document in `path`.
pub(crate) fn read_one(path: &Path) -> Result<DidDocumentKey> {
    let mut keys = read(path)?;
    match keys.len() {
        1 => Ok(keys.remove(0)),
        n => bail!("expected one DID document in {}, found {n}", path.display()),
    }
}
