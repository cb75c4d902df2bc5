//! Strict decoding and canonical encoding of MST node blocks.
//!
//! A node is the DRISL map `{e: [{k, p, t, v}, ...], l}` (keys in canonical
//! order: `e` before `l`; `k`, `p`, `t`, `v` in entries). Both `l` and `t`
//! are always present, possibly null. See `docs/formats.md`, section
//! "MST nodes".

use atrepo_store::BlockRead;
use atrepo_verify::drisl::{DecodeError, Decoder, Encoder};
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

    /// The key range of the subtree before entry `i` (see
    /// [`check_bounds`]): strictly between the keys around it, or the
    /// node's own bounds `low` and `high` at either end.
    pub(crate) fn child_range<'a>(
        &'a self,
        i: usize,
        low: Option<&'a [u8]>,
        high: Option<&'a [u8]>,
    ) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
        let key = |j: usize| self.entries.get(j).map(|e| self.key(e));
        let before = match i.checked_sub(1) {
            Some(prev) => key(prev),
            None => low,
        };
        (before, key(i).or(high))
    }
}

/// Decodes `bytes` (the block of node `cid`) into `out`, enforcing every
/// node-local rule: strict DRISL of the node schema (every link, record or
/// subtree, CIDv1 dag-cbor sha2-256), the entry cap, prefix
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
    // Decoder errors become node errors out of line, so the hot path moves
    // no error-sized values around.
    macro_rules! drisl {
        ($e:expr) => {
            match $e {
                Ok(value) => value,
                Err(error) => return Err(malformed(cid, error)),
            }
        };
    }
    let mut d = Decoder::new(bytes);
    drisl!(d.map_of(2, "2"));
    drisl!(d.key("e"));
    let count = drisl!(d.array());
    if count > limits.max_entries {
        return Err(Error::TooManyEntries { cid: *cid, limit: limits.max_entries, found: count });
    }
    let mut prev: std::ops::Range<usize> = 0..0;
    // Where the `/` of the previous key is, once a strict check passed it.
    let mut slash: Option<usize> = None;
    for index in 0..count {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        drisl!(d.map_of(4, "4"));
        drisl!(d.key("k"));
        let suffix = drisl!(d.bytes());
        drisl!(d.key("p"));
        let prefix = drisl!(d.uint());
        drisl!(d.key("t"));
        let right = drisl!(d.node_link_or_null());
        drisl!(d.key("v"));
        // A record is a DAG-CBOR block (repository spec, "v: link to the
        // record data (CBOR)"): its link is held to the same blessed form
        // as a subtree's, so a raw, CIDv0 or other-hash link is refused
        // here, naming the node, not later as a missing or odd block.
        let value = drisl!(d.node_link());

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
        // The key is `previous[..p]` then `suffix`, so the first suffix byte
        // against `previous[p]` settles both rules below when it is greater
        // (or `previous` has no byte `p`): the key sorts after `previous` and
        // `p` is their longest common prefix. Anything else goes through the
        // full comparison, which names the rule broken.
        let sorted_at_p = match (suffix.first(), previous.get(p)) {
            (Some(next), Some(before)) => next > before,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if index > 0 && !sorted_at_p {
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
        // A key that shares the previous key's collection and `/` (the
        // previous key passed the strict check, with its one `/` at `s`) is a
        // valid path exactly when the rest is a record key. Otherwise, or if
        // that fails, the full check runs and names what is wrong.
        let same_collection = match slash {
            Some(s) if p > s => key.get(s.saturating_add(1)..).is_some_and(syntax::is_record_key),
            _ => false,
        };
        if !same_collection {
            check_key(cid, key, rules)?;
            slash = match rules {
                KeyRules::Strict => key.iter().position(|&c| c == b'/'),
                KeyRules::Lax | KeyRules::Any => None,
            };
        }
        let key_layer = layer(key);
        match out.layer {
            None => out.layer = Some(key_layer),
            Some(first_layer) if first_layer != key_layer => {
                let first = out.entries.first().map(|e| show(out.key(e))).unwrap_or_default();
                let (cid, key) = (*cid, show(key));
                return Err(Error::MixedLayers { cid, first, first_layer, key, key_layer });
            }
            Some(_) => {}
        }
        out.entries.push(EntryMeta { key_start: start, key_end: end, value, right });
        prev = start..end;
    }
    drisl!(d.key("l"));
    out.left = drisl!(d.node_link_or_null());
    drisl!(d.finish());
    if out.layer == Some(0) && (out.left.is_some() || out.entries.iter().any(|e| e.right.is_some()))
    {
        return Err(Error::ChildBelowZero { cid: *cid });
    }
    Ok(())
}

/// Whether a node may hold `cid` as a record link (`v`): CIDv1, dag-cbor,
/// sha2-256, as node decoding requires.
pub fn is_record_link(cid: &Cid) -> bool {
    cid.version() == cid::Version::V1
        && cid.codec() == 0x71
        && cid.hash().code() == 0x12
        && cid.hash().size() == 32
}

/// Refuses `value` for `key` unless [`is_record_link`], so that trees and
/// the builder never write a node their own decoding refuses.
pub(crate) fn check_value(key: &[u8], value: &Cid) -> Result<()> {
    if is_record_link(value) {
        Ok(())
    } else {
        Err(Error::BadValue { key: show(key), value: *value })
    }
}

/// Reads node `cid` from `store` and decodes it into `out` (see
/// [`decode`]), the block lent for the time of the decoding
/// ([`BlockRead::read_with`]). Returns the block's length, or `None` if the
/// store does not have it.
pub(crate) fn read(
    store: &(impl BlockRead + ?Sized),
    cid: &Cid,
    limits: &Limits,
    rules: KeyRules,
    out: &mut NodeBuf,
) -> Result<Option<usize>> {
    let mut decoded = None;
    store.read_with(cid, &mut |bytes| {
        decoded = Some(decode(cid, bytes, limits, rules, out).map(|()| bytes.len()));
    })?;
    decoded.transpose()
}

/// A node's decoding result seen from its place in the tree: with the
/// layer its parent puts it on, keys of two layers ([`Error::MixedLayers`])
/// become [`Error::WrongLayer`] for the key off that layer. Without one (a
/// root), the error names both keys.
pub(crate) fn placed<T>(result: Result<T>, expected: Option<u8>) -> Result<T> {
    match (result, expected) {
        (Err(Error::MixedLayers { cid, first, first_layer, key, key_layer }), Some(layer)) => {
            let (key, key_layer) =
                if first_layer == layer { (key, key_layer) } else { (first, first_layer) };
            Err(Error::WrongLayer { cid, key, key_layer, node_layer: layer })
        }
        (result, _) => result,
    }
}

/// Checks decoded node `cid` against the layer its parent puts it on:
/// keys on that layer, or, with no entries, a link further down (only a
/// root may be an empty node, and nothing is below layer 0).
pub(crate) fn check_layer(cid: &Cid, node: &NodeBuf, expected: u8) -> Result<()> {
    match node.layer {
        Some(found) if found != expected => {
            let key = node.entries.first().map(|e| show(node.key(e))).unwrap_or_default();
            Err(Error::WrongLayer { cid: *cid, key, key_layer: found, node_layer: expected })
        }
        Some(_) => Ok(()),
        None if node.left.is_none() => Err(Error::EmptyNode { cid: *cid }),
        None if expected == 0 => Err(Error::ChildBelowZero { cid: *cid }),
        None => Ok(()),
    }
}

#[cold]
fn malformed(cid: &Cid, error: DecodeError) -> Error {
    Error::Decode { cid: *cid, error }
}

/// Checks a key against the configured rules (length and emptiness are
/// checked by the caller).
pub(crate) fn check_key(cid: &Cid, key: &[u8], rules: KeyRules) -> Result<()> {
    // Valid strict keys take the one-pass check (a valid path is ASCII, so
    // UTF-8); the rest go through UTF-8 decoding and the detailed check,
    // which name what is wrong.
    if rules == KeyRules::Strict && syntax::is_repo_path(key) {
        return Ok(());
    }
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
    // About 90 bytes an entry (two links, a short key suffix, four keys).
    let mut e = Encoder::with_capacity(entries.len().saturating_mul(96).saturating_add(48));
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

/// Checks that a node's keys lie strictly between the bounds its parent
/// gives it.
pub(crate) fn check_bounds(
    cid: &Cid,
    node: &NodeBuf,
    low: Option<&[u8]>,
    high: Option<&[u8]>,
) -> Result<()> {
    let (Some(first), Some(last)) = (node.entries.first(), node.entries.last()) else {
        return Ok(());
    };
    if let Some(low) = low
        && node.key(first) <= low
    {
        return Err(Error::KeyOrder { cid: *cid, key: show(node.key(first)), previous: show(low) });
    }
    if let Some(high) = high
        && node.key(last) >= high
    {
        return Err(Error::KeyOrder { cid: *cid, key: show(high), previous: show(node.key(last)) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_keys(keys: &[&[u8]]) -> Result<NodeBuf> {
        let value = cid_of(b"value");
        let bytes = encode(None, keys.iter().map(|k| (*k, &value, None)));
        let mut out = NodeBuf::default();
        decode(&cid_of(&bytes), &bytes, &Limits::default(), KeyRules::Strict, &mut out)
            .map(|()| out)
    }

    /// Decodes a node of `keys` and returns the error, which must be the
    /// one the full key check gives for `keys[1]` on its own.
    #[track_caller]
    fn assert_full_check_error(keys: &[&[u8]]) {
        let value = cid_of(b"value");
        let bytes = encode(None, keys.iter().map(|k| (*k, &value, None)));
        let cid = cid_of(&bytes);
        let expected = check_key(&cid, keys[1], KeyRules::Strict).unwrap_err();
        let found = decode_keys(keys).unwrap_err();
        assert_eq!(format!("{found:?}"), format!("{expected:?}"));
    }

    #[test]
    fn a_key_in_the_previous_keys_collection_gets_the_full_checks_error() {
        let first: &[u8] = b"app.bsky.feed.post/a";
        let long = [b"app.bsky.feed.post/b".as_slice(), &[b'b'; 512]].concat();
        for bad in [
            b"app.bsky.feed.post/b c".as_slice(),
            b"app.bsky.feed.post/b/c",
            b"app.bsky.feed.post/b\xc3\xa9",
            b"app.bsky.feed.post/b\xff",
            &long,
            // Shares only part of the collection: the full check runs.
            b"app.bsky.feed.post~/b",
            b"app.bsky.feed.pz-/b",
        ] {
            assert_full_check_error(&[first, bad]);
        }
    }

    #[test]
    fn order_and_prefix_errors_are_unchanged_by_the_first_byte_shortcut() {
        let a: &[u8] = b"app.bsky.feed.post/a";
        let ab: &[u8] = b"app.bsky.feed.post/ab";
        let b: &[u8] = b"app.bsky.feed.post/b";
        assert!(matches!(decode_keys(&[b, a]), Err(Error::KeyOrder { .. })));
        assert!(matches!(decode_keys(&[ab, a]), Err(Error::KeyOrder { .. })));
        assert!(matches!(decode_keys(&[a, a]), Err(Error::DuplicateKey { .. })));
        // `ab` after `a` sorts after it at the prefix: no order or prefix
        // error (possibly another layer).
        assert!(!matches!(
            decode_keys(&[a, ab]),
            Err(Error::KeyOrder { .. }
                | Error::DuplicateKey { .. }
                | Error::PrefixNotLongest { .. })
        ));
        // A prefix shorter than the longest: the first suffix byte equals
        // the previous key's byte there.
        let value = cid_of(b"value");
        let mut e = Encoder::new();
        e.map(2).text("e").array(2);
        for (p, k) in [(0u64, a), (10, &b[10..])] {
            e.map(4).text("k").bytes(k).text("p").uint(p).text("t").null().text("v").link(&value);
        }
        e.text("l").null();
        let bytes = e.into_bytes();
        let mut out = NodeBuf::default();
        let found = decode(&cid_of(&bytes), &bytes, &Limits::default(), KeyRules::Strict, &mut out);
        assert!(matches!(
            found,
            Err(Error::PrefixNotLongest { index: 1, prefix: 10, longest: 19, .. })
        ));
    }
}
