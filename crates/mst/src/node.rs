//! Strict decoding and canonical encoding of MST node blocks.
//!
//! A node is the DRISL map `{e: [{k, p, t, v}, ...], l}` (keys in canonical
//! order: `e` before `l`; `k`, `p`, `t`, `v` in entries). Both `l` and `t`
//! are always present, possibly null. See `docs/formats.md`, section
//! "MST nodes".

use atrepo_verify::drisl::{Decoder, Encoder};
use atrepo_verify::syntax;
use cid::Cid;

use crate::error::{Error, Result, show};
use crate::layer::{common_prefix_len, layer};
use crate::options::{KeyRules, Limits};

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// One decoded entry: where its full key lies in [`NodeBuf::keys`], its value
/// and its right subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    pub(crate) key_start: usize,
    pub(crate) key_end: usize,
    pub(crate) value: Cid,
    pub(crate) right: Option<Cid>,
}

/// A decoded node with its keys decompressed. Buffers are reused between
/// nodes to keep walks free of per-node allocations.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeBuf {
    pub(crate) left: Option<Cid>,
    /// Every full key, concatenated.
    pub(crate) keys: Vec<u8>,
    pub(crate) entries: Vec<EntryMeta>,
    /// The layer of the node's keys; `None` for a node without entries.
    pub(crate) layer: Option<u8>,
}

impl NodeBuf {
    /// The full key of an entry.
    pub(crate) fn key(&self, entry: &EntryMeta) -> &[u8] {
        self.keys.get(entry.key_start..entry.key_end).unwrap_or_default()
    }

    /// The subtree before entry `i` (the left link for `i == 0`).
    pub(crate) fn child_before(&self, i: usize) -> Option<Cid> {
        match i.checked_sub(1) {
            None => self.left,
            Some(prev) => self.entries.get(prev).and_then(|e| e.right),
        }
    }
}

/// Decodes `bytes` (the block of node `cid`) into `out`, enforcing every
/// node-local rule: strict DRISL of the node schema, the entry cap, prefix
/// compression (first `p` is 0, `p` within the previous key, `p` the
/// longest common prefix), keys non-empty, at most [`MAX_KEY_LEN`] bytes,
/// valid under `rules`, strictly increasing, all on one layer, and no
/// subtree links from layer 0.
///
/// Tree-level rules (layers relative to the parent, order across nodes,
/// empty nodes, sharing) are the caller's.
pub(crate) fn decode(
    cid: &Cid,
    bytes: &[u8],
    limits: &Limits,
    rules: KeyRules,
    out: &mut NodeBuf,
) -> Result<()> {
    out.left = None;
    out.keys.clear();
    out.entries.clear();
    out.layer = None;
    let malformed = |error| Error::Decode { cid: *cid, error };
    let mut d = Decoder::new(bytes);
    d.map_of(2, "2").map_err(malformed)?;
    d.key("e").map_err(malformed)?;
    let count = d.array().map_err(malformed)?;
    if count > limits.max_entries {
        return Err(Error::TooManyEntries { cid: *cid, limit: limits.max_entries, found: count });
    }
    let mut prev: std::ops::Range<usize> = 0..0;
    for index in 0..count {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        d.map_of(4, "4").map_err(malformed)?;
        d.key("k").map_err(malformed)?;
        let suffix = d.bytes().map_err(malformed)?;
        d.key("p").map_err(malformed)?;
        let prefix = d.uint().map_err(malformed)?;
        d.key("t").map_err(malformed)?;
        let right = d.node_link_or_null().map_err(malformed)?;
        d.key("v").map_err(malformed)?;
        let value = d.link().map_err(malformed)?;

        let prev_len = prev.end.saturating_sub(prev.start);
        if index == 0 && prefix != 0 {
            return Err(Error::FirstPrefixNotZero { cid: *cid, found: prefix });
        }
        let p = match usize::try_from(prefix) {
            Ok(p) if p <= prev_len => p,
            _ => {
                return Err(Error::PrefixTooLong {
                    cid: *cid,
                    index,
                    prefix,
                    previous_len: prev_len,
                });
            }
        };
        let new_len = p.saturating_add(suffix.len());
        if new_len == 0 {
            return Err(Error::EmptyKey { cid: *cid, index });
        }
        if new_len > MAX_KEY_LEN {
            return Err(Error::KeyTooLong { cid: *cid, index, len: new_len, limit: MAX_KEY_LEN });
        }
        let start = out.keys.len();
        out.keys.extend_from_within(prev.start..prev.start.saturating_add(p));
        out.keys.extend_from_slice(suffix);
        let end = out.keys.len();
        let key = out.keys.get(start..end).unwrap_or_default();
        let previous = out.keys.get(prev.clone()).unwrap_or_default();
        if index > 0 {
            let longest = common_prefix_len(previous, key);
            if key <= previous {
                return Err(if key == previous {
                    Error::DuplicateKey { cid: *cid, key: show(key) }
                } else {
                    Error::KeyOrder { cid: *cid, key: show(key), previous: show(previous) }
                });
            }
            if longest != p {
                return Err(Error::PrefixNotLongest { cid: *cid, index, prefix, longest });
            }
        }
        check_key(cid, key, rules)?;
        let key_layer = layer(key);
        match out.layer {
            None => out.layer = Some(key_layer),
            Some(node_layer) if node_layer != key_layer => {
                return Err(Error::WrongLayer { cid: *cid, key: show(key), key_layer, node_layer });
            }
            Some(_) => {}
        }
        out.entries.push(EntryMeta { key_start: start, key_end: end, value, right });
        prev = start..end;
    }
    d.key("l").map_err(malformed)?;
    out.left = d.node_link_or_null().map_err(malformed)?;
    d.finish().map_err(malformed)?;
    if out.layer == Some(0) && (out.left.is_some() || out.entries.iter().any(|e| e.right.is_some()))
    {
        return Err(Error::ChildBelowZero { cid: *cid });
    }
    Ok(())
}

/// Checks a key against the configured rules (length and emptiness are
/// checked by the caller).
pub(crate) fn check_key(cid: &Cid, key: &[u8], rules: KeyRules) -> Result<()> {
    let Ok(text) = std::str::from_utf8(key) else {
        return Err(Error::KeyNotUtf8 { cid: *cid, key: show(key) });
    };
    let invalid = |error| Error::InvalidKey { cid: *cid, key: text.to_owned(), error };
    match rules {
        KeyRules::Strict => syntax::repo_path(text).map_err(invalid),
        KeyRules::Lax => syntax::repo_path_lax(text).map_err(invalid),
        KeyRules::Any => Ok(()),
    }
}

/// Encodes a node canonically: keys prefix-compressed against the previous
/// key in the node, `l` and every `t` written even when null.
pub(crate) fn encode<'a>(
    left: Option<&Cid>,
    entries: impl ExactSizeIterator<Item = (&'a [u8], &'a Cid, Option<&'a Cid>)>,
) -> Vec<u8> {
    let mut e = Encoder::new();
    e.map(2).text("e").array(entries.len() as u64);
    let mut prev: &[u8] = &[];
    for (key, value, right) in entries {
        let p = common_prefix_len(prev, key);
        e.map(4);
        e.text("k").bytes(key.get(p..).unwrap_or_default());
        e.text("p").uint(p as u64);
        e.text("t").link_or_null(right);
        e.text("v").link(value);
        prev = key;
    }
    e.text("l").link_or_null(left);
    e.into_bytes()
}

/// The CID of a node block: CIDv1, dag-cbor, sha2-256.
pub(crate) fn cid_of(bytes: &[u8]) -> Cid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    match cid::multihash::Multihash::wrap(0x12, digest.as_slice()) {
        Ok(mh) => Cid::new_v1(0x71, mh),
        // A 32-byte digest always fits.
        Err(_) => Cid::default(),
    }
}
