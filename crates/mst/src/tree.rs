//! [`Tree`]: a mutable tree that loads nodes lazily, so it can change a
//! partial tree (a commit's proof blocks) as long as the changed paths are
//! present.

use atrepo_store::{BlockRead, Bytes};
use cid::Cid;

use crate::error::{Error, Result, show};
use crate::layer::layer;
use crate::node::{self, MAX_KEY_LEN, NodeBuf};
use crate::options::{KeyRules, Limits};

/// A link to a subtree: absent, not loaded yet (with the key range its
/// parent gave it when loaded), or loaded.
#[derive(Debug, Clone, Default)]
enum Link {
    #[default]
    None,
    Stub(Cid, Bounds),
    Node(Box<Node>),
}

/// The keys a subtree's keys must lie strictly between, as its parent
/// said when it was loaded (the parent may change before the subtree is
/// read: a key inserted into the parent splits it, and its keys then lie
/// on both sides of that key, as they should).
#[derive(Debug, Clone, Default)]
struct Bounds {
    low: Option<Box<[u8]>>,
    high: Option<Box<[u8]>>,
}

#[derive(Debug, Clone)]
struct Node {
    layer: u8,
    left: Link,
    entries: Vec<Entry>,
    /// The node's CID while it is unchanged since it was loaded or last
    /// hashed.
    cid: Option<Cid>,
}

#[derive(Debug, Clone)]
struct Entry {
    key: Box<[u8]>,
    value: Cid,
    right: Link,
}

impl Node {
    fn empty(layer: u8) -> Self {
        Node { layer, left: Link::None, entries: Vec::new(), cid: None }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && matches!(self.left, Link::None)
    }

    /// The slot of the subtree just before entry `i`.
    fn child_before(&mut self, i: usize) -> &mut Link {
        match i.checked_sub(1).and_then(|p| self.entries.get_mut(p)) {
            Some(prev) => &mut prev.right,
            None => &mut self.left,
        }
    }

    fn last_child(&mut self) -> &mut Link {
        match self.entries.last_mut() {
            Some(last) => &mut last.right,
            None => &mut self.left,
        }
    }

    fn position(&self, key: &[u8]) -> usize {
        self.entries.partition_point(|e| &*e.key < key)
    }
}

/// Counts of what a change did, for callers that meter work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Nodes read from the store and decoded.
    pub loaded: u64,
}

/// A Merkle Search Tree that can be read and changed.
///
/// Nodes are read from the store only when an operation needs them, and
/// each loaded node is checked with the same node rules as the
/// [`Walker`](crate::Walker), and its keys against the range its parent
/// gave it (a partial tree cannot be walked whole, so this is where a
/// subtree key outside its parent's range is found). Unchanged subtrees stay links, so changing a
/// partial tree works as long as the nodes on the changed paths are
/// present; a missing one is [`Error::MissingNode`].
///
/// ```
/// use atrepo_mst::{Builder, Tree};
/// use atrepo_store::MemoryStore;
/// # let a: cid::Cid = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm".parse().unwrap();
///
/// let store = MemoryStore::new();
/// let mut tree = Tree::new(&store);
/// tree.insert("app.bsky.feed.post/3jzfcijpj2z2a", a)?;
/// tree.insert("app.bsky.feed.like/3jzfcijpj2z2b", a)?;
/// // Same set of keys, same root, whatever the order.
/// let built = Builder::new().build(&store, [
///     ("app.bsky.feed.like/3jzfcijpj2z2b", a),
///     ("app.bsky.feed.post/3jzfcijpj2z2a", a),
/// ])?;
/// assert_eq!(tree.root(), built);
/// # Ok::<(), atrepo_mst::Error>(())
/// ```
#[derive(Debug)]
pub struct Tree<S> {
    store: S,
    root: Node,
    keys: KeyRules,
    limits: Limits,
    stats: TreeStats,
}

impl<S: BlockRead> Tree<S> {
    /// An empty tree whose future nodes may be read from `store`.
    pub fn new(store: S) -> Self {
        Tree {
            store,
            root: Node::empty(0),
            keys: KeyRules::default(),
            limits: Limits::default(),
            stats: TreeStats::default(),
        }
    }

    /// The tree rooted at `root` in `store`. Reads and checks the root node
    /// only.
    pub fn load(store: S, root: Cid) -> Result<Self> {
        Self::load_with(store, root, KeyRules::default(), Limits::default())
    }

    /// Like [`load`](Self::load) with explicit key rules and limits.
    pub fn load_with(store: S, root: Cid, keys: KeyRules, limits: Limits) -> Result<Self> {
        let mut tree =
            Tree { store, root: Node::empty(0), keys, limits, stats: TreeStats::default() };
        let node = tree.read(root, None, &Bounds::default())?;
        if node.entries.is_empty() && !matches!(node.left, Link::None) {
            return Err(Error::RootOnlyPointer { cid: root });
        }
        tree.root = node;
        Ok(tree)
    }

    /// Returns this tree with the given key rules for inserted keys and
    /// loaded nodes.
    pub fn with_keys(mut self, keys: KeyRules) -> Self {
        self.keys = keys;
        self
    }

    /// How many nodes were read so far.
    pub fn stats(&self) -> TreeStats {
        self.stats
    }

    /// The value stored under `key`, if any.
    pub fn get(&mut self, key: &str) -> Result<Option<Cid>> {
        let key = key.as_bytes();
        let kl = layer(key);
        let mut node = &mut self.root;
        loop {
            if kl > node.layer || node.is_empty() {
                return Ok(None);
            }
            let i = node.position(key);
            if let Some(e) = node.entries.get(i)
                && &*e.key == key
            {
                return Ok(Some(e.value));
            }
            if kl == node.layer {
                return Ok(None);
            }
            let below = node.layer.saturating_sub(1);
            let slot = node.child_before(i);
            if matches!(slot, Link::None) {
                return Ok(None);
            }
            node = resolve(&self.store, &mut self.stats, slot, below, self.keys, &self.limits)?;
        }
    }

    /// Sets `key` to `value` and returns the previous value.
    pub fn insert(&mut self, key: &str, value: Cid) -> Result<Option<Cid>> {
        let key = key.as_bytes();
        self.check(key)?;
        node::check_value(key, &value)?;
        let kl = layer(key);
        if usize::from(kl) >= self.limits.max_depth {
            return Err(Error::TooDeep { cid: Cid::default(), limit: self.limits.max_depth });
        }
        let mut ctx = Ctx {
            store: &self.store,
            stats: &mut self.stats,
            keys: self.keys,
            limits: &self.limits,
        };
        let root = &mut self.root;
        if root.is_empty() {
            *root =
                Node { layer: kl, left: Link::None, entries: vec![entry(key, value)], cid: None };
            return Ok(None);
        }
        if kl > root.layer {
            // The key goes above the current root: split the whole tree
            // around it and lift both halves to the layer below the key.
            let old_layer = root.layer;
            let old = Link::Node(Box::new(std::mem::replace(root, Node::empty(kl))));
            let (left, right) = ctx.split(old, key, old_layer)?;
            root.left = lift(left, old_layer, kl);
            root.entries.push(Entry { key: key.into(), value, right: lift(right, old_layer, kl) });
            return Ok(None);
        }
        ctx.insert(root, key, kl, value)
    }

    /// Removes `key` and returns its value, if it was there.
    pub fn remove(&mut self, key: &str) -> Result<Option<Cid>> {
        let key = key.as_bytes();
        let kl = layer(key);
        let mut ctx = Ctx {
            store: &self.store,
            stats: &mut self.stats,
            keys: self.keys,
            limits: &self.limits,
        };
        if self.root.is_empty() || kl > self.root.layer {
            return Ok(None);
        }
        let removed = ctx.remove(&mut self.root, key, kl)?;
        if removed.is_some() {
            // The top of the tree must not be an entry-less node that only
            // points to a subtree: hoist until it has entries or is empty.
            while self.root.entries.is_empty() {
                let below = self.root.layer.saturating_sub(1);
                match std::mem::take(&mut self.root.left) {
                    Link::None => {
                        self.root = Node::empty(0);
                        break;
                    }
                    link => self.root = ctx.take(link, below)?,
                }
            }
        }
        Ok(removed)
    }

    /// The root CID, hashing every node changed since the last call.
    pub fn root(&mut self) -> Cid {
        seal(&mut self.root, &mut |_, _| {})
    }

    /// The root CID and the blocks of every node changed since the last
    /// call to this method or [`root`](Self::root), children first.
    pub fn root_and_new_blocks(&mut self) -> (Cid, Vec<(Cid, Bytes)>) {
        let mut blocks = Vec::new();
        let root = seal(&mut self.root, &mut |cid, bytes| blocks.push((cid, Bytes::from(bytes))));
        (root, blocks)
    }

    fn check(&self, key: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(Error::BadKey { key: show(key), expected: "a key of 1 to 1024 bytes" });
        }
        node::check_key(&Cid::default(), key, self.keys)
    }

    /// Reads and checks node `cid`, expected on `layer` when known and
    /// within `bounds`.
    fn read(&mut self, cid: Cid, layer: Option<u8>, bounds: &Bounds) -> Result<Node> {
        let mut ctx = Ctx {
            store: &self.store,
            stats: &mut self.stats,
            keys: self.keys,
            limits: &self.limits,
        };
        ctx.read(cid, layer, bounds)
    }
}

fn entry(key: &[u8], value: Cid) -> Entry {
    Entry { key: key.into(), value, right: Link::None }
}

/// Wraps `link` (a subtree on `from`) in entry-less nodes up to the layer
/// just below `to`, so links never skip a layer.
fn lift(mut link: Link, from: u8, to: u8) -> Link {
    if matches!(link, Link::None) {
        return link;
    }
    let mut layer = from;
    while layer.saturating_add(1) < to {
        layer = layer.saturating_add(1);
        link = Link::Node(Box::new(Node { layer, left: link, entries: Vec::new(), cid: None }));
    }
    link
}

/// Makes `slot` a loaded node (reading it if it is a stub) and returns it.
fn resolve<'n, S: BlockRead>(
    store: &S,
    stats: &mut TreeStats,
    slot: &'n mut Link,
    layer: u8,
    keys: KeyRules,
    limits: &Limits,
) -> Result<&'n mut Node> {
    if let Link::Stub(cid, bounds) = slot {
        let mut ctx = Ctx { store, stats, keys, limits };
        *slot = Link::Node(Box::new(ctx.read(*cid, Some(layer), bounds)?));
    }
    if matches!(slot, Link::None) {
        *slot = Link::Node(Box::new(Node::empty(layer)));
    }
    match slot {
        Link::Node(node) => Ok(node),
        // Both other cases were replaced just above.
        Link::None | Link::Stub(..) => Err(Error::MissingNode { cid: Cid::default() }),
    }
}

/// Hashes every changed node under (and including) `node`, reporting each
/// new block, and returns `node`'s CID. Recursion is bounded by the layer.
fn seal(node: &mut Node, out: &mut dyn FnMut(Cid, Vec<u8>)) -> Cid {
    if let Some(cid) = node.cid {
        return cid;
    }
    let left = seal_link(&mut node.left, out);
    for e in &mut node.entries {
        seal_link(&mut e.right, out);
    }
    // Every child is sealed now, so each link knows its CID.
    let bytes = node::encode(
        left.as_ref(),
        node.entries.iter().map(|e| (&*e.key, &e.value, sealed_cid(&e.right))),
    );
    let cid = node::cid_of(&bytes);
    out(cid, bytes);
    node.cid = Some(cid);
    cid
}

/// The CID of a link whose node, if loaded, was sealed.
fn sealed_cid(link: &Link) -> Option<&Cid> {
    match link {
        Link::None => None,
        Link::Stub(cid, _) => Some(cid),
        Link::Node(node) => node.cid.as_ref(),
    }
}

fn seal_link(link: &mut Link, out: &mut dyn FnMut(Cid, Vec<u8>)) -> Option<Cid> {
    match link {
        Link::None => None,
        Link::Stub(cid, _) => Some(*cid),
        Link::Node(node) => Some(seal(node, out)),
    }
}

/// What the recursive operations need besides the node they work on.
struct Ctx<'a, S> {
    store: &'a S,
    stats: &'a mut TreeStats,
    keys: KeyRules,
    limits: &'a Limits,
}

impl<S: BlockRead> Ctx<'_, S> {
    /// Reads and checks node `cid`, expected on `layer` when known, its
    /// keys strictly within `bounds`.
    fn read(&mut self, cid: Cid, layer: Option<u8>, bounds: &Bounds) -> Result<Node> {
        // One decoding buffer per thread, reused: its vectors keep their
        // capacity from node to node.
        thread_local! {
            static BUF: std::cell::RefCell<NodeBuf> = std::cell::RefCell::default();
        }
        BUF.with_borrow_mut(|buf| {
            let read = node::read(self.store, &cid, self.limits, self.keys, buf);
            if node::placed(read, layer)?.is_none() {
                return Err(Error::MissingNode { cid });
            }
            self.stats.loaded = self.stats.loaded.saturating_add(1);
            node::check_bounds(&cid, buf, bounds.low.as_deref(), bounds.high.as_deref())?;
            self.node_from(cid, layer, buf, bounds)
        })
    }

    /// Checks decoded node `cid` in `buf` against `layer`, when known, then
    /// builds the owned node, each child link with the key range it must
    /// lie in (between the keys around it, or the node's own `bounds` at
    /// either end).
    fn node_from(
        &self,
        cid: Cid,
        layer: Option<u8>,
        buf: &NodeBuf,
        bounds: &Bounds,
    ) -> Result<Node> {
        let node_layer = match (buf.layer, layer) {
            (_, Some(expected)) => {
                node::check_layer(&cid, buf, expected)?;
                expected
            }
            (Some(found), None) => found,
            // An entry-less root: the empty tree, or a pointer the caller
            // rejects.
            (None, None) => 0,
        };
        // Each child link with the range it must lie in, the subtree
        // before entry `i` being child `i`.
        let link = |c: Option<Cid>, i: usize| match c {
            None => Link::None,
            Some(c) => {
                let (low, high) = buf.child_range(i, bounds.low.as_deref(), bounds.high.as_deref());
                Link::Stub(c, Bounds { low: low.map(Into::into), high: high.map(Into::into) })
            }
        };
        let entries = buf
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| Entry {
                key: buf.key(e).into(),
                value: e.value,
                right: link(e.right, i.saturating_add(1)),
            })
            .collect();
        Ok(Node { layer: node_layer, left: link(buf.left, 0), entries, cid: Some(cid) })
    }

    /// Turns a link into an owned node on `layer`, reading it if needed.
    fn take(&mut self, link: Link, layer: u8) -> Result<Node> {
        match link {
            Link::None => Ok(Node::empty(layer)),
            Link::Stub(cid, bounds) => self.read(cid, Some(layer), &bounds),
            Link::Node(node) => Ok(*node),
        }
    }

    /// Inserts into `node` a key on layer `kl <= node.layer`.
    fn insert(&mut self, node: &mut Node, key: &[u8], kl: u8, value: Cid) -> Result<Option<Cid>> {
        let i = node.position(key);
        if let Some(e) = node.entries.get_mut(i)
            && &*e.key == key
        {
            let old = std::mem::replace(&mut e.value, value);
            if old != value {
                node.cid = None;
            }
            return Ok(Some(old));
        }
        let below = node.layer.saturating_sub(1);
        if kl == node.layer {
            node.cid = None;
            let slot = std::mem::take(node.child_before(i));
            let (left, right) = self.split(slot, key, below)?;
            *node.child_before(i) = left;
            node.entries.insert(i, Entry { key: key.into(), value, right });
            return Ok(None);
        }
        let slot = node.child_before(i);
        let child = resolve(self.store, self.stats, slot, below, self.keys, self.limits)?;
        let old = self.insert(child, key, kl, value)?;
        // Only a changed child changes its parent.
        if child.cid.is_none() {
            node.cid = None;
        }
        Ok(old)
    }

    /// Removes `key` (on layer `kl <= node.layer`) from under `node`.
    fn remove(&mut self, node: &mut Node, key: &[u8], kl: u8) -> Result<Option<Cid>> {
        let i = node.position(key);
        let below = node.layer.saturating_sub(1);
        if kl == node.layer {
            if node.entries.get(i).is_none_or(|e| &*e.key != key) {
                return Ok(None);
            }
            node.cid = None;
            let removed = node.entries.remove(i);
            let before = std::mem::take(node.child_before(i));
            *node.child_before(i) = self.merge(before, removed.right, below)?;
            return Ok(Some(removed.value));
        }
        let slot = node.child_before(i);
        if matches!(slot, Link::None) {
            return Ok(None);
        }
        let child = resolve(self.store, self.stats, slot, below, self.keys, self.limits)?;
        let removed = self.remove(child, key, kl)?;
        if removed.is_some() {
            node.cid = None;
            let slot = node.child_before(i);
            if matches!(slot, Link::Node(n) if n.is_empty()) {
                *slot = Link::None;
            }
        }
        Ok(removed)
    }

    /// Splits the subtree `link` on `layer` around `key` (not in it) into
    /// the parts below and above the key.
    fn split(&mut self, link: Link, key: &[u8], layer: u8) -> Result<(Link, Link)> {
        if matches!(link, Link::None) {
            return Ok((Link::None, Link::None));
        }
        let mut node = self.take(link, layer)?;
        let i = node.position(key);
        let middle = std::mem::take(node.child_before(i));
        let (mid_left, mid_right) = self.split(middle, key, layer.saturating_sub(1))?;
        let high_entries = node.entries.split_off(i);
        let mut low = node;
        low.cid = None;
        *low.last_child() = mid_left;
        let high = Node { layer, left: mid_right, entries: high_entries, cid: None };
        Ok((boxed(low), boxed(high)))
    }

    /// Joins two subtrees on `layer`, all of `a`'s keys below all of `b`'s.
    fn merge(&mut self, mut a: Link, mut b: Link, layer: u8) -> Result<Link> {
        match (&a, &b) {
            (Link::None, _) => {
                self.check_edge(&mut b, layer, Edge::First)?;
                return Ok(b);
            }
            (_, Link::None) => {
                self.check_edge(&mut a, layer, Edge::Last)?;
                return Ok(a);
            }
            _ => {}
        }
        let mut low = self.take(a, layer)?;
        let mut high = self.take(b, layer)?;
        let seam_low = std::mem::take(low.last_child());
        let seam_high = std::mem::take(&mut high.left);
        *low.last_child() = self.merge(seam_low, seam_high, layer.saturating_sub(1))?;
        low.entries.append(&mut high.entries);
        low.cid = None;
        Ok(boxed(low))
    }
}

/// Which edge of a subtree faces a seam: its first keys (the high side of
/// a merge) or its last (the low side).
#[derive(Debug, Clone, Copy)]
enum Edge {
    First,
    Last,
}

impl<S: BlockRead> Ctx<'_, S> {
    /// Reads, as far as the store has them, the nodes down `edge` of
    /// `link` (on `layer`), each checked against the key range its parent
    /// gave it. A merge with an empty side keeps the other side as it is,
    /// unread: a subtree left on the wrong side of a removed key (a
    /// malformed tree whose inversion still gives the right root, found
    /// by a review) would go unseen. The nodes next to a removed key are
    /// what a commit's covering proof carries (the TypeScript reference
    /// includes both neighbours' paths); one the store lacks ends the
    /// check there, since not every implementation sends them.
    fn check_edge(&mut self, link: &mut Link, layer: u8, edge: Edge) -> Result<()> {
        let (mut slot, mut layer) = (link, layer);
        loop {
            match slot {
                Link::None => return Ok(()),
                Link::Stub(cid, _) if !self.store.has(cid)? => return Ok(()),
                _ => {}
            }
            let node = resolve(self.store, self.stats, slot, layer, self.keys, self.limits)?;
            let Some(below) = layer.checked_sub(1) else { return Ok(()) };
            slot = match edge {
                Edge::First => &mut node.left,
                Edge::Last => node.last_child(),
            };
            layer = below;
        }
    }
}

/// A node as a link, or no link if it is empty.
fn boxed(node: Node) -> Link {
    if node.is_empty() { Link::None } else { Link::Node(Box::new(node)) }
}
