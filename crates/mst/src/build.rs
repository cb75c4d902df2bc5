//! [`Builder`]: the canonical tree for a set of keys, built bottom-up.

use atrepo_store::{Batch, BlockStore, Bytes};
use atrepo_verify::syntax;
use cid::Cid;

use crate::error::{Error, Result, show};
use crate::layer::layer;
use crate::node::{self, MAX_KEY_LEN};
use crate::options::{KeyRules, Limits};

/// Builds the canonical MST of a set of `(key, CID)` pairs in one pass and
/// writes its nodes to a store.
///
/// The result depends only on the set of pairs, never on their order: keys
/// are sorted, each lands on the layer its hash gives, and every node is
/// encoded canonically. Duplicate keys are an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Builder {
    keys: KeyRules,
    limits: Limits,
}

struct Item<'a> {
    key: &'a [u8],
    value: Cid,
    layer: u8,
}

impl Builder {
    /// A builder with strict key rules and default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns this builder with the given key rules.
    pub fn keys(mut self, keys: KeyRules) -> Self {
        self.keys = keys;
        self
    }

    /// Returns this builder with the given limits (`max_depth` bounds the
    /// layers of the keys).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Builds the tree, writes its nodes to `store` in one batch, and
    /// returns the root CID.
    pub fn build<K: AsRef<[u8]>>(
        &self,
        store: &dyn BlockStore,
        pairs: impl IntoIterator<Item = (K, Cid)>,
    ) -> Result<Cid> {
        let (root, nodes) = self.build_nodes(pairs)?;
        store.write(nodes.into_iter().collect())?;
        Ok(root)
    }

    /// Builds the tree and returns the root CID and every node block,
    /// children before parents, without writing them anywhere.
    pub fn build_nodes<K: AsRef<[u8]>>(
        &self,
        pairs: impl IntoIterator<Item = (K, Cid)>,
    ) -> Result<(Cid, Vec<(Cid, Bytes)>)> {
        let pairs: Vec<(K, Cid)> = pairs.into_iter().collect();
        let mut items: Vec<Item<'_>> = Vec::new();
        // The collection (with its `/`) of the last key that passed the full
        // strict check: a key that starts with it is a valid path exactly
        // when the rest is a record key, so runs of keys in one collection
        // (sorted input, a repository's export) skip the NSID check.
        let mut collection: &[u8] = &[];
        for (key, value) in &pairs {
            let key = key.as_ref();
            let same_collection = !collection.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.strip_prefix(collection).is_some_and(syntax::is_record_key);
            if !same_collection {
                self.check(key)?;
                if self.keys == KeyRules::Strict
                    && let Some(slash) = key.iter().position(|&c| c == b'/')
                {
                    collection = key.get(..=slash).unwrap_or_default();
                }
            }
            node::check_value(key, value)?;
            items.push(Item { key, value: *value, layer: layer(key) });
        }
        items.sort_unstable_by(|a, b| a.key.cmp(b.key));
        if let Some(w) = items.windows(2).find(|w| matches!(w, [a, b] if a.key == b.key)) {
            let key = w.first().map(|i| show(i.key)).unwrap_or_default();
            return Err(Error::BadKey { key, expected: "each key once" });
        }
        let mut out = Batch::new();
        let top = items.iter().map(|i| i.layer).max().unwrap_or(0);
        if usize::from(top) >= self.limits.max_depth {
            let cid = Cid::default();
            return Err(Error::TooDeep { cid, limit: self.limits.max_depth });
        }
        let root = match subtree(&items, top, &mut out)? {
            Some(root) => root,
            None => emit(node::encode(None, std::iter::empty()), &mut out),
        };
        Ok((root, out.into_iter().collect()))
    }

    fn check(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::BadKey { key: String::new(), expected: "a non-empty key" });
        }
        if key.len() > MAX_KEY_LEN {
            return Err(Error::BadKey { key: show(key), expected: "a key of at most 1024 bytes" });
        }
        node::check_key(&Cid::default(), key, self.keys)
    }
}

/// Builds the node on `layer` holding `items` (sorted, all on `layer` or
/// below), writing it and its descendants to `out`. `None` for no items.
///
/// Recursion depth is bounded by `layer`, which the caller keeps below
/// `Limits::max_depth`.
fn subtree(items: &[Item<'_>], layer: u8, out: &mut Batch) -> Result<Option<Cid>> {
    if items.is_empty() {
        return Ok(None);
    }
    let below = layer.checked_sub(1);
    let child = |range: &[Item<'_>], out: &mut Batch| -> Result<Option<Cid>> {
        match below {
            Some(below) => subtree(range, below, out),
            // On layer 0 every item is on this layer: no range between them.
            None => Ok(None),
        }
    };
    let mut left = None;
    let mut entries: Vec<(&[u8], Cid, Option<Cid>)> = Vec::new();
    let mut start = 0;
    for (i, item) in items.iter().enumerate() {
        if item.layer == layer {
            let sub = child(items.get(start..i).unwrap_or_default(), out)?;
            match entries.last_mut() {
                Some(last) => last.2 = sub,
                None => left = sub,
            }
            entries.push((item.key, item.value, None));
            start = i.saturating_add(1);
        }
    }
    let sub = child(items.get(start..).unwrap_or_default(), out)?;
    match entries.last_mut() {
        Some(last) => last.2 = sub,
        None => left = sub,
    }
    let bytes = node::encode(left.as_ref(), entries.iter().map(|(k, v, r)| (*k, v, r.as_ref())));
    Ok(Some(emit(bytes, out)))
}

fn emit(bytes: Vec<u8>, out: &mut Batch) -> Cid {
    let cid = node::cid_of(&bytes);
    out.put(cid, Bytes::from(bytes));
    cid
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The collection shortcut gives the error the full check gives.
    #[test]
    fn keys_after_a_checked_collection_get_the_full_checks_error() {
        let value = node::cid_of(b"value");
        let long = format!("app.bsky.feed.post/{}", "b".repeat(1006));
        for bad in [
            "app.bsky.feed.post/b c",
            "app.bsky.feed.post/b/c",
            "app.bsky.feed.post/",
            "app.bsky.feed.post/..",
            long.as_str(),
            "",
        ] {
            let builder = Builder::new();
            let expected = builder.check(bad.as_bytes()).unwrap_err();
            let found = builder.build_nodes([("app.bsky.feed.post/a", value), (bad, value)]);
            assert_eq!(format!("{:?}", found.unwrap_err()), format!("{expected:?}"), "{bad:?}");
        }
        let (root, _) = Builder::new()
            .build_nodes([("app.bsky.feed.post/a", value), ("app.bsky.feed.post/b", value)])
            .unwrap();
        let (again, _) = Builder::new()
            .keys(KeyRules::Any)
            .build_nodes([("app.bsky.feed.post/b", value), ("app.bsky.feed.post/a", value)])
            .unwrap();
        assert_eq!(root, again);
    }
}
