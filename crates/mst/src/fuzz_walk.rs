//! The structured MST fuzz body (`internal::fuzzing::mst_walk_structured`):
//! a valid tree built from fuzz input, checked against an independent
//! reference builder, then mutated the ways the threat model lists (wrong
//! layer, swapped entries, duplicate key, dropped block, empty node, shared
//! child, non-canonical prefix).
//!
//! The oracle is the spec's uniqueness of the tree: the walker accepts a
//! tree only if it is the canonical tree of the leaves it yields. Every
//! mutation here makes a non-canonical tree, so each must end in a typed
//! error, after reading each block at most a bounded number of times.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use atrepo_store::{BlockRead, BlockStore, Bytes, MemoryStore};
use atrepo_verify::drisl::Encoder;
use cid::Cid;
use sha2::Digest;

use crate::layer::{common_prefix_len, layer};
use crate::node;
use crate::{Builder, ErrorKind, Item, KeyRules, Limits, Tree, WalkOptions, Walker};

/// Most keys one input makes.
const MAX_KEYS: u8 = 64;
/// Record key characters (a subset, so that keys share prefixes often).
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Fuzz bytes, read front to back; past the end every read is zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// A number below `n` (which must be non-zero), from one byte.
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()).checked_rem(n).unwrap_or(0)
    }
}

/// A node with full keys: left link, then `(key, value, right link)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    left: Option<Cid>,
    entries: Vec<(Vec<u8>, Cid, Option<Cid>)>,
}

impl Node {
    fn encode(&self) -> Vec<u8> {
        node::encode(
            self.left.as_ref(),
            self.entries.iter().map(|(k, v, t)| (k.as_slice(), v, t.as_ref())),
        )
    }

    /// Every subtree link, in order.
    fn links(&self) -> Vec<Cid> {
        self.left
            .iter()
            .chain(self.entries.iter().filter_map(|(_, _, t)| t.as_ref()))
            .copied()
            .collect()
    }

    /// Replaces every link to `old` with `new`.
    fn relink(&mut self, old: &Cid, new: Cid) {
        if self.left.as_ref() == Some(old) {
            self.left = Some(new);
        }
        for (_, _, t) in &mut self.entries {
            if t.as_ref() == Some(old) {
                *t = Some(new);
            }
        }
    }
}

/// A store that counts reads.
struct Counting<'a> {
    inner: &'a MemoryStore,
    reads: AtomicU64,
}

impl BlockRead for Counting<'_> {
    fn get(&self, cid: &Cid) -> atrepo_store::Result<Option<Bytes>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.get(cid)
    }

    fn has(&self, cid: &Cid) -> atrepo_store::Result<bool> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.has(cid)
    }

    fn scan(
        &self,
        f: &mut dyn FnMut(&Cid, &[u8]) -> atrepo_store::Result<()>,
    ) -> atrepo_store::Result<()> {
        self.inner.scan(f)
    }
}

/// The layer of a key computed apart from [`layer`]: SHA-256 through the
/// `sha2` crate, leading zero bits halved.
fn reference_layer(key: &[u8]) -> u8 {
    let mut zeros = 0u32;
    for byte in sha2::Sha256::digest(key) {
        zeros = zeros.saturating_add(byte.leading_zeros());
        if byte != 0 {
            break;
        }
    }
    u8::try_from(zeros / 2).unwrap_or(u8::MAX)
}

/// The reference builder: the tree of `items` (sorted, with the layer each
/// key is placed on), written recursively from the spec's definition.
/// Returns the root and stores every node in `blocks`.
fn reference_build(items: &[(Vec<u8>, Cid, u8)], blocks: &mut BTreeMap<Cid, Node>) -> Cid {
    let top = items.iter().map(|(_, _, l)| *l).max().unwrap_or(0);
    let root = subtree(items, top, blocks).unwrap_or_else(|| Node { left: None, entries: vec![] });
    store_node(root, blocks)
}

fn store_node(node: Node, blocks: &mut BTreeMap<Cid, Node>) -> Cid {
    let cid = node::cid_of(&node.encode());
    blocks.insert(cid, node);
    cid
}

/// The node on `layer` holding `items` (all on `layer` or below), `None`
/// for no items.
fn subtree(
    items: &[(Vec<u8>, Cid, u8)],
    layer: u8,
    blocks: &mut BTreeMap<Cid, Node>,
) -> Option<Node> {
    if items.is_empty() {
        return None;
    }
    let below = layer.checked_sub(1);
    let link = |group: &[(Vec<u8>, Cid, u8)], blocks: &mut BTreeMap<Cid, Node>| {
        let child = below.and_then(|b| subtree(group, b, blocks))?;
        Some(store_node(child, blocks))
    };
    let mut node = Node { left: None, entries: vec![] };
    let mut group_start = 0usize;
    for (i, (key, value, l)) in items.iter().enumerate() {
        if *l == layer {
            let group = items.get(group_start..i).unwrap_or_default();
            let child = link(group, blocks);
            match node.entries.last_mut() {
                Some((_, _, t)) => *t = child,
                None => node.left = child,
            }
            node.entries.push((key.clone(), *value, None));
            group_start = i.saturating_add(1);
        }
    }
    let group = items.get(group_start..).unwrap_or_default();
    let child = link(group, blocks);
    match node.entries.last_mut() {
        Some((_, _, t)) => *t = child,
        None => node.left = child,
    }
    Some(node)
}

/// The canonical root of `pairs` by the crate's [`Builder`].
fn canonical_root(pairs: &[(String, Cid)]) -> Option<Cid> {
    Builder::new().build_nodes(pairs.iter().map(|(k, v)| (k.as_bytes(), *v))).ok().map(|(r, _)| r)
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    WrongLayer,
    Swap,
    Duplicate,
    DropBlock,
    EmptyNode,
    SharedChild,
    NonCanonicalPrefix,
}

const MUTATIONS: [Mutation; 7] = [
    Mutation::WrongLayer,
    Mutation::Swap,
    Mutation::Duplicate,
    Mutation::DropBlock,
    Mutation::EmptyNode,
    Mutation::SharedChild,
    Mutation::NonCanonicalPrefix,
];

/// A tree under mutation: its nodes and which node links to which.
struct Mutable {
    nodes: BTreeMap<Cid, Node>,
    root: Cid,
    /// Extra blocks that are not nodes of `nodes` (a non-canonical
    /// encoding, written as raw bytes).
    raw: Vec<(Cid, Vec<u8>)>,
}

impl Mutable {
    fn parent_of(&self, child: &Cid) -> Option<Cid> {
        self.nodes.iter().find(|(_, n)| n.links().contains(child)).map(|(c, _)| *c)
    }

    /// Puts `bytes` in place of node `old` and re-links every ancestor up to
    /// the root; returns the new root.
    fn replace(&mut self, old: Cid, bytes: Vec<u8>) -> Cid {
        let mut new = node::cid_of(&bytes);
        self.raw.push((new, bytes));
        let mut old = old;
        while let Some(parent) = self.parent_of(&old) {
            let Some(mut node) = self.nodes.get(&parent).cloned() else { break };
            node.relink(&old, new);
            let bytes = node.encode();
            new = node::cid_of(&bytes);
            self.raw.push((new, bytes));
            old = parent;
        }
        new
    }

    fn store(&self, drop: Option<&Cid>) -> MemoryStore {
        let store = MemoryStore::new();
        for (cid, node) in &self.nodes {
            if Some(cid) != drop {
                store.insert(*cid, Bytes::from(node.encode()));
            }
        }
        for (cid, bytes) in &self.raw {
            if Some(cid) != drop {
                store.insert(*cid, Bytes::from(bytes.clone()));
            }
        }
        store
    }

    /// A node picked by `input` among those `fits` accepts.
    fn pick(&self, input: &mut Input<'_>, fits: impl Fn(&Node) -> bool) -> Option<(Cid, Node)> {
        let candidates: Vec<_> = self.nodes.iter().filter(|(_, n)| fits(n)).collect();
        let n = candidates.len();
        if n == 0 {
            return None;
        }
        candidates.get(input.below(n)).map(|(c, n)| (**c, (*n).clone()))
    }
}

/// Encodes a node with entry `at`'s prefix one byte shorter than the
/// longest (its suffix one byte longer).
fn encode_short_prefix(node: &Node, at: usize) -> Vec<u8> {
    let mut e = Encoder::new();
    e.map(2).text("e").array(node.entries.len() as u64);
    let mut prev: &[u8] = &[];
    for (i, (key, value, right)) in node.entries.iter().enumerate() {
        let mut p = common_prefix_len(prev, key);
        if i == at {
            p = p.saturating_sub(1);
        }
        e.map(4);
        e.text("k").bytes(key.get(p..).unwrap_or_default());
        e.text("p").uint(p as u64);
        e.text("t").link_or_null(right.as_ref());
        e.text("v").link(value);
        prev = key;
    }
    e.text("l").link_or_null(node.left.as_ref());
    e.into_bytes()
}

/// Walks `root` strictly, records skipped; returns the leaves and the
/// number of block reads.
fn walk(store: &MemoryStore, root: Cid) -> (crate::Result<Vec<(String, Cid)>>, u64) {
    let counting = Counting { inner: store, reads: AtomicU64::new(0) };
    let options = WalkOptions::default().keys(KeyRules::Strict);
    let leaves = Walker::new(&counting, root, options)
        .map(|item| match item? {
            Item::Leaf { key, cid, .. } => Ok((key, cid)),
            // A strict walk reports missing blocks as errors.
            Item::MissingNode { cid } => Err(crate::Error::MissingNode { cid }),
            Item::MissingRecord { key, cid } => Err(crate::Error::MissingRecord { key, cid }),
        })
        .collect();
    (leaves, counting.reads.load(Ordering::Relaxed))
}

/// See the module docs.
pub fn mst_walk_structured(data: &[u8]) {
    let mut input = Input(data);
    let count = input.byte() % MAX_KEYS;
    let mut keys = BTreeSet::new();
    for _ in 0..count {
        let len = input.below(12).saturating_add(1);
        let rkey: String = (0..len)
            .map(|_| ALPHABET.get(input.below(ALPHABET.len())).map_or('a', |&b| char::from(b)))
            .collect();
        keys.insert(format!("com.example.record/{rkey}"));
    }
    // Values from a small pool, so that some keys share a record.
    let pairs: Vec<(String, Cid)> = keys
        .into_iter()
        .map(|k| {
            let v = input.byte() % 16;
            (k, node::cid_of(&[v]))
        })
        .collect();
    let items: Vec<(Vec<u8>, Cid, u8)> = pairs
        .iter()
        .map(|(k, v)| {
            let l = layer(k.as_bytes());
            assert_eq!(l, reference_layer(k.as_bytes()), "layer of {k:?}");
            (k.as_bytes().to_vec(), *v, l)
        })
        .collect();
    if items.iter().any(|(_, _, l)| usize::from(*l) >= Limits::DEFAULT_MAX_DEPTH) {
        return;
    }

    // Three constructions agree: the crate's builder, the reference
    // builder, and the incremental tree fed in input order.
    let canonical = canonical_root(&pairs);
    assert!(canonical.is_some(), "the builder refused a valid key set");
    let Some(canonical) = canonical else { return };
    let mut nodes = BTreeMap::new();
    let reference = reference_build(&items, &mut nodes);
    assert_eq!(reference, canonical, "builder and reference builder disagree");
    let scratch = MemoryStore::new();
    let mut tree = Tree::new(&scratch);
    for (k, v) in pairs.iter().rev() {
        assert!(tree.insert(k, *v).is_ok(), "tree refused {k:?}");
    }
    assert_eq!(tree.root(), canonical, "incremental tree and builder disagree");

    let tree = Mutable { nodes, root: canonical, raw: vec![] };
    let blocks = tree.nodes.len() as u64;
    let (leaves, reads) = walk(&tree.store(None), canonical);
    assert_eq!(leaves.as_ref().ok(), Some(&pairs), "the canonical tree was refused: {leaves:?}");
    assert!(reads <= blocks.saturating_add(1), "{reads} reads for {blocks} blocks");

    let Some(mutation) = MUTATIONS.get(input.below(MUTATIONS.len())).copied() else { return };
    let mut tree = tree;
    let Some((root, dropped)) = mutate(&mut tree, &items, mutation, &mut input) else { return };
    if root == canonical && dropped.is_none() {
        // The mutation changed nothing (a layer lie the tree cannot show).
        return;
    }
    let store = tree.store(dropped.as_ref());
    let blocks = store.usage().map_or(0, |u| u.blocks);
    let (result, reads) = walk(&store, root);
    assert!(
        reads <= blocks.saturating_mul(2).saturating_add(2),
        "{mutation:?}: {reads} reads for {blocks} blocks"
    );
    if let Ok(leaves) = &result {
        let again = canonical_root(leaves);
        assert!(
            again == Some(root),
            "{mutation:?}: accepted a non-canonical tree {root} ({} leaves, canonical {again:?})",
            leaves.len()
        );
    }
    let kind = result.as_ref().err().map(crate::Error::kind);
    assert!(
        matches!(kind, Some(ErrorKind::Malformed | ErrorKind::Verification | ErrorKind::Missing)),
        "{mutation:?}: expected a typed error, found {result:?}"
    );
}

/// Applies `mutation`; returns the new root and the block to leave out, or
/// `None` when the tree has no place for this mutation.
fn mutate(
    tree: &mut Mutable,
    items: &[(Vec<u8>, Cid, u8)],
    mutation: Mutation,
    input: &mut Input<'_>,
) -> Option<(Cid, Option<Cid>)> {
    match mutation {
        Mutation::WrongLayer => {
            let i = input.below(items.len().max(1));
            let mut lied = items.to_vec();
            let (_, _, l) = lied.get_mut(i)?;
            *l = match l.checked_sub(1) {
                Some(lower) if input.byte().is_multiple_of(2) => lower,
                _ => l.saturating_add(1),
            };
            let mut nodes = BTreeMap::new();
            let root = reference_build(&lied, &mut nodes);
            tree.nodes = nodes;
            tree.root = root;
            Some((root, None))
        }
        Mutation::Swap => {
            let (cid, mut node) = tree.pick(input, |n| n.entries.len() >= 2)?;
            let j = input.below(node.entries.len().saturating_sub(1));
            let a = node.entries.get(j)?.clone();
            let b = node.entries.get(j.saturating_add(1))?.clone();
            // Keys and values trade places; subtree links stay.
            if let Some(e) = node.entries.get_mut(j) {
                (e.0, e.1) = (b.0, b.1);
            }
            if let Some(e) = node.entries.get_mut(j.saturating_add(1)) {
                (e.0, e.1) = (a.0, a.1);
            }
            Some((tree.replace(cid, node.encode()), None))
        }
        Mutation::Duplicate => {
            let (cid, mut node) = tree.pick(input, |n| !n.entries.is_empty())?;
            let j = input.below(node.entries.len());
            let (k, v, _) = node.entries.get(j)?.clone();
            node.entries.insert(j, (k, v, None));
            Some((tree.replace(cid, node.encode()), None))
        }
        Mutation::DropBlock => {
            let all: Vec<Cid> = tree.nodes.keys().copied().collect();
            let drop = *all.get(input.below(all.len().max(1)))?;
            Some((tree.root, Some(drop)))
        }
        Mutation::EmptyNode => {
            let (cid, mut node) = tree.pick(input, |n| !n.links().is_empty())?;
            let links = node.links();
            let target = *links.get(input.below(links.len()))?;
            let empty = Node { left: None, entries: vec![] };
            let bytes = empty.encode();
            let empty_cid = node::cid_of(&bytes);
            tree.raw.push((empty_cid, bytes));
            node.relink(&target, empty_cid);
            Some((tree.replace(cid, node.encode()), None))
        }
        Mutation::SharedChild => {
            let (cid, mut node) = tree.pick(input, |n| n.links().len() >= 2)?;
            let links = node.links();
            let from = *links.get(input.below(links.len()))?;
            let to = *links.iter().find(|l| **l != from)?;
            node.relink(&to, from);
            Some((tree.replace(cid, node.encode()), None))
        }
        Mutation::NonCanonicalPrefix => {
            let (cid, node) = tree.pick(input, |n| {
                n.entries
                    .windows(2)
                    .any(|w| matches!(w, [a, b] if common_prefix_len(&a.0, &b.0) > 0))
            })?;
            let at = node
                .entries
                .windows(2)
                .position(|w| matches!(w, [a, b] if common_prefix_len(&a.0, &b.0) > 0))?
                .saturating_add(1);
            Some((tree.replace(cid, encode_short_prefix(&node, at)), None))
        }
    }
}
