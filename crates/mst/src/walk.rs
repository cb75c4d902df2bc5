//! [`Walker`]: the validated, iterative, in-order walk of a tree.

use atrepo_store::{BlockRead, Bytes};
use cid::Cid;

use crate::error::{Error, Result, show};
use crate::node::{self, NodeBuf};
use crate::options::{Completeness, Records, WalkOptions};

/// One step of a walk, borrowing the walker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A leaf: a key and the CID of its record, with the record's bytes when
    /// [`Records::Fetch`] is on.
    Leaf {
        /// The full key (`collection/rkey`).
        key: &'a str,
        /// The record's CID.
        cid: Cid,
        /// The record's bytes, when fetched.
        record: Option<Bytes>,
    },
    /// A leaf whose record is not in the store ([`Completeness::Lenient`]
    /// with records checked or fetched).
    MissingRecord {
        /// The full key.
        key: &'a str,
        /// The record's CID.
        cid: Cid,
    },
    /// A subtree whose node is not in the store ([`Completeness::Lenient`]).
    /// Its keys are skipped.
    MissingNode {
        /// The missing node.
        cid: Cid,
    },
}

/// One step of a walk, owned: what the [`Iterator`] impl yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A leaf; see [`Event::Leaf`].
    Leaf {
        /// The full key.
        key: String,
        /// The record's CID.
        cid: Cid,
        /// The record's bytes, when fetched.
        record: Option<Bytes>,
    },
    /// See [`Event::MissingRecord`].
    MissingRecord {
        /// The full key.
        key: String,
        /// The record's CID.
        cid: Cid,
    },
    /// See [`Event::MissingNode`].
    MissingNode {
        /// The missing node.
        cid: Cid,
    },
}

impl From<Event<'_>> for Item {
    fn from(event: Event<'_>) -> Self {
        match event {
            Event::Leaf { key, cid, record } => Item::Leaf { key: key.to_owned(), cid, record },
            Event::MissingRecord { key, cid } => Item::MissingRecord { key: key.to_owned(), cid },
            Event::MissingNode { cid } => Item::MissingNode { cid },
        }
    }
}

/// Counts gathered during a walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Nodes decoded.
    pub nodes: u64,
    /// Bytes of node blocks decoded.
    pub node_bytes: u64,
    /// Leaves yielded (including ones whose record is missing).
    pub leaves: u64,
    /// Bytes of records fetched.
    pub record_bytes: u64,
    /// Number of layers: the root's layer plus one (0 for an empty tree).
    pub layers: u8,
    /// Missing nodes reported (lenient walks).
    pub missing_nodes: u64,
    /// Missing records reported (lenient walks).
    pub missing_records: u64,
}

#[derive(Debug, Clone, Copy)]
enum Pos {
    /// About to visit the left subtree.
    Left,
    /// About to yield entry `i`.
    Entry(usize),
    /// About to visit entry `i`'s right subtree.
    Right(usize),
}

#[derive(Debug)]
struct Frame {
    cid: Cid,
    node: NodeBuf,
    /// Per entry, whether the store said its record is stored when the
    /// walk looked ahead; `false` also for "not looked up".
    records_present: Vec<bool>,
    layer: u8,
    pos: Pos,
}

/// Walks a tree from its root in key order, checking every rule of the
/// MST as it goes, and yields leaves lazily.
///
/// - Node-local rules (strict DRISL, prefix compression, key syntax and
///   length, one layer per node, entry cap) are checked when a node is
///   decoded; tree rules (each child exactly one layer below its parent,
///   keys strictly increasing across the whole walk, which also bounds
///   every subtree to its parent's range; no empty node but the root of an
///   empty tree; the root not an entry-less pointer; no node reached twice)
///   as the walk reaches them.
/// - The walk is iterative with an explicit stack capped at
///   [`Limits::max_depth`](crate::Limits); a shared subtree is caught the
///   second time it is reached, so work is proportional to the number of
///   distinct blocks.
/// - Errors end the walk, except [`Error::MissingNode`] and
///   [`Error::MissingRecord`] in a strict walk: after those the walker stays
///   where it was, and the next call retries the same block, so a caller
///   that reads blocks as they arrive (a streaming CAR) can supply it and go
///   on. An [`Iterator`] walk stops after the first error either way.
///
/// ```
/// use atrepo_mst::{Builder, Item, KeyRules, WalkOptions, Walker};
/// use atrepo_store::MemoryStore;
/// # let cid: cid::Cid = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm".parse().unwrap();
///
/// let store = MemoryStore::new();
/// let root = Builder::new()
///     .build(&store, [("app.bsky.feed.post/3jzfcijpj2z2a", cid), ("app.bsky.feed.like/3jzfcijpj2z2b", cid)])?;
/// let keys: Vec<String> = Walker::new(&store, root, WalkOptions::default())
///     .map(|item| match item? {
///         Item::Leaf { key, .. } => Ok(key),
///         other => panic!("unexpected {other:?}"),
///     })
///     .collect::<Result<_, atrepo_mst::Error>>()?;
/// assert_eq!(keys, ["app.bsky.feed.like/3jzfcijpj2z2b", "app.bsky.feed.post/3jzfcijpj2z2a"]);
/// # Ok::<(), atrepo_mst::Error>(())
/// ```
#[derive(Debug)]
pub struct Walker<S> {
    store: S,
    options: WalkOptions,
    root: Cid,
    stack: Vec<Frame>,
    /// Buffers of nodes the walk has left, for the next nodes it reads.
    pool: Vec<(NodeBuf, Vec<bool>)>,
    /// The CIDs of the next [`BlockRead::look_ahead`].
    ahead: Vec<Cid>,
    /// Every node read, by fingerprint (16 bytes each, not 96).
    visited: atrepo_store::CidKeySet,
    last_key: String,
    /// The key being stepped onto, until its record check succeeds.
    next_key: String,
    started: bool,
    done: bool,
    /// Set when the last error was a missing block: the walk can go on.
    resumable: bool,
    stats: WalkStats,
}

/// What descending into a child produced.
enum Descent {
    Pushed,
    Missing(Cid),
}

impl<S: BlockRead> Walker<S> {
    /// A walker over the tree rooted at `root` in `store`. Nothing is read
    /// until the first step.
    pub fn new(store: S, root: Cid, options: WalkOptions) -> Self {
        Walker {
            store,
            options,
            root,
            stack: Vec::new(),
            pool: Vec::new(),
            ahead: Vec::new(),
            visited: atrepo_store::CidKeySet::default(),
            last_key: String::new(),
            next_key: String::new(),
            started: false,
            done: false,
            resumable: false,
            stats: WalkStats::default(),
        }
    }

    /// What the walk has seen so far (all of the tree once it has ended).
    pub fn stats(&self) -> WalkStats {
        self.stats
    }

    /// The next step of the walk, or `None` at its end.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>> {
        if self.done {
            return Ok(None);
        }
        match self.step() {
            Ok(Some(Step::Leaf(cid, record))) => {
                Ok(Some(Event::Leaf { key: self.key(), cid, record }))
            }
            Ok(Some(Step::MissingRecord(cid))) => {
                Ok(Some(Event::MissingRecord { key: self.key(), cid }))
            }
            Ok(Some(Step::MissingNode(cid))) => Ok(Some(Event::MissingNode { cid })),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(e) => {
                // A missing block in a strict walk can be retried; anything
                // else ends the walk.
                self.done = !std::mem::take(&mut self.resumable);
                Err(e)
            }
        }
    }

    /// Walks to the end, calling `f` for each leaf; missing blocks are errors
    /// or skipped according to the options. Returns the walk's counts.
    pub fn for_each_leaf(
        mut self,
        mut f: impl FnMut(&str, &Cid, Option<&Bytes>) -> Result<()>,
    ) -> Result<WalkStats> {
        while let Some(event) = self.next_event()? {
            if let Event::Leaf { key, cid, record } = event {
                f(key, &cid, record.as_ref())?;
            }
        }
        Ok(self.stats)
    }

    /// Whether the walk has read the node `cid`.
    pub fn visited(&self, cid: &Cid) -> bool {
        self.visited_key(&atrepo_store::CidKey::of(cid))
    }

    /// Like [`visited`](Self::visited), for a CID known by its fingerprint
    /// only.
    pub fn visited_key(&self, key: &atrepo_store::CidKey) -> bool {
        self.visited.contains(key)
    }

    /// The fingerprints of every node the walk has read.
    pub fn visited_keys(&self) -> impl Iterator<Item = &atrepo_store::CidKey> + '_ {
        self.visited.iter()
    }

    /// The key of the last leaf the walk yielded (empty before the first).
    pub fn current_key(&self) -> &str {
        &self.last_key
    }

    fn key(&self) -> &str {
        self.current_key()
    }

    fn step(&mut self) -> Result<Option<Step>> {
        if !self.started {
            // `started` is set only once the root is read, so a missing root
            // can be retried.
            let missing = match self.start() {
                Ok(missing) => missing,
                Err(e) => {
                    self.resumable = e.kind() == crate::ErrorKind::Missing;
                    return Err(e);
                }
            };
            self.started = true;
            if let Some(missing) = missing {
                return Ok(Some(missing));
            }
        }
        loop {
            let Some(top) = self.stack.last_mut() else { return Ok(None) };
            match top.pos {
                Pos::Left => {
                    let Some(left) = top.node.left else {
                        top.pos = Pos::Entry(0);
                        continue;
                    };
                    let (parent, layer) = (top.cid, top.layer);
                    top.pos = Pos::Entry(0);
                    match self.descend(left, parent, layer) {
                        Ok(Descent::Pushed) => {}
                        Ok(Descent::Missing(cid)) => return Ok(Some(Step::MissingNode(cid))),
                        Err(e) => return Err(self.rewind(e, Pos::Left)),
                    }
                }
                Pos::Entry(i) => {
                    let Some(entry) = top.node.entries.get(i).copied() else {
                        if let Some(frame) = self.stack.pop() {
                            self.pool.push((frame.node, frame.records_present));
                        }
                        continue;
                    };
                    let cid = top.cid;
                    let key = top.node.key(&entry);
                    // Keys are non-empty, so the first key always passes.
                    if key <= self.last_key.as_bytes() {
                        return Err(if key == self.last_key.as_bytes() {
                            Error::DuplicateKey { cid, key: show(key) }
                        } else {
                            let previous = show(self.last_key.as_bytes());
                            Error::KeyOrder { cid, key: show(key), previous }
                        });
                    }
                    // Keys were checked to be UTF-8 when their node was
                    // decoded; checked once here, not on every read of the
                    // current key.
                    let Ok(text) = std::str::from_utf8(key) else {
                        return Err(Error::KeyNotUtf8 { cid, key: show(key) });
                    };
                    self.next_key.clear();
                    self.next_key.push_str(text);
                    top.pos = Pos::Right(i);
                    let looked_up = top.records_present.get(i) == Some(&true);
                    match self.record(entry.value, looked_up) {
                        Ok(step) => {
                            std::mem::swap(&mut self.last_key, &mut self.next_key);
                            self.stats.leaves = self.stats.leaves.saturating_add(1);
                            return Ok(Some(step));
                        }
                        Err(e) => return Err(self.rewind(e, Pos::Entry(i))),
                    }
                }
                Pos::Right(i) => {
                    let right = top.node.entries.get(i).and_then(|e| e.right);
                    let (parent, layer) = (top.cid, top.layer);
                    top.pos = Pos::Entry(i.saturating_add(1));
                    if let Some(right) = right {
                        match self.descend(right, parent, layer) {
                            Ok(Descent::Pushed) => {}
                            Ok(Descent::Missing(cid)) => return Ok(Some(Step::MissingNode(cid))),
                            Err(e) => return Err(self.rewind(e, Pos::Right(i))),
                        }
                    }
                }
            }
        }
    }

    /// After a failed step: a missing block leaves the walk where it was, so
    /// the same step is retried once the caller has supplied the block.
    /// Any other error ends the walk.
    fn rewind(&mut self, error: Error, pos: Pos) -> Error {
        if error.kind() == crate::ErrorKind::Missing {
            if let Some(top) = self.stack.last_mut() {
                top.pos = pos;
            }
            self.resumable = true;
        }
        error
    }

    /// Reads and checks the root. Returns a step to yield if it is missing
    /// in a lenient walk.
    fn start(&mut self) -> Result<Option<Step>> {
        let root = self.root;
        let (mut node, mut records_present) = Default::default();
        if !self.read_node(&root, &mut node, &mut records_present)? {
            return Ok(Some(Step::MissingNode(root)));
        }
        self.visited.insert(atrepo_store::CidKey::of(&root));
        let Some(layer) = node.layer else {
            if node.left.is_some() {
                return Err(Error::RootOnlyPointer { cid: root });
            }
            // The empty tree: nothing to walk.
            return Ok(None);
        };
        let layers = layer.saturating_add(1);
        if usize::from(layers) > self.options.limits.max_depth {
            return Err(Error::TooDeep { cid: root, limit: self.options.limits.max_depth });
        }
        self.stats.layers = layers;
        self.stack.push(Frame { cid: root, node, records_present, layer, pos: Pos::Left });
        Ok(None)
    }

    /// Reads, checks and pushes the child `cid` of a node on `parent_layer`.
    fn descend(&mut self, cid: Cid, parent: Cid, parent_layer: u8) -> Result<Descent> {
        let Some(layer) = parent_layer.checked_sub(1) else {
            return Err(Error::ChildBelowZero { cid: parent });
        };
        if self.stack.len() >= self.options.limits.max_depth {
            return Err(Error::TooDeep { cid, limit: self.options.limits.max_depth });
        }
        // Marked visited before the read (one probe of the set, where a
        // check, then an insert once read, took two: at 500 MiB the set
        // outgrows the caches and each probe is a miss), and unmarked if
        // the read fails: the node is not there yet (a strict walk may be
        // resumed), or it is malformed (which ends the walk).
        let k = atrepo_store::CidKey::of(&cid);
        if !self.visited.insert(k) {
            return Err(Error::NodeReachedTwice { cid });
        }
        let (mut node, mut records_present) = self.pool.pop().unwrap_or_default();
        let read = self.read_node(&cid, &mut node, &mut records_present);
        // Keys of two layers in a child: its place says which is off it.
        let read = node::placed(read, Some(layer));
        if !matches!(read, Ok(true)) {
            self.visited.remove(&k);
            self.pool.push((node, records_present));
            return read.map(|_| Descent::Missing(cid));
        }
        node::check_layer(&cid, &node, layer)?;
        self.stack.push(Frame { cid, node, records_present, layer, pos: Pos::Left });
        Ok(Descent::Pushed)
    }

    /// Reads node `cid` into `out` ([`node::read`]), then looks ahead to
    /// the blocks the node links to (filling `records_present`).
    /// `Ok(false)` if the node is missing and the walk is lenient.
    fn read_node(
        &mut self,
        cid: &Cid,
        out: &mut NodeBuf,
        records_present: &mut Vec<bool>,
    ) -> Result<bool> {
        let options = &self.options;
        match node::read(&self.store, cid, &options.limits, options.keys, out)? {
            Some(len) => {
                self.stats.nodes = self.stats.nodes.saturating_add(1);
                self.stats.node_bytes = self.stats.node_bytes.saturating_add(len as u64);
                self.look_ahead(out, records_present)?;
                Ok(true)
            }
            None if self.options.completeness == Completeness::Lenient => {
                self.stats.missing_nodes = self.stats.missing_nodes.saturating_add(1);
                Ok(false)
            }
            None => Err(Error::MissingNode { cid: *cid }),
        }
    }

    /// Tells the store which blocks the walk reads next
    /// ([`BlockRead::look_ahead`]): the children of the node just decoded,
    /// and its records when they are checked or
    /// [`WalkOptions::records_ahead`] asks. A store that holds blocks in
    /// memory overlaps those lookups, and a record it says is stored needs
    /// no lookup of its own when its leaf comes. What it says of children
    /// is not kept (each is read when the walk gets to it), so their
    /// answers go to `records_present` before it gets its own. Records
    /// that are not checked are told of only with
    /// [`WalkOptions::records_ahead`]: fetched ones are read at their leaf
    /// anyway, and no measurement has shown the extra lookup paying in a
    /// `MemoryStore`.
    fn look_ahead(&mut self, node: &NodeBuf, records_present: &mut Vec<bool>) -> Result<()> {
        let cids = &mut self.ahead;
        cids.clear();
        cids.extend(node.left);
        cids.extend(node.entries.iter().filter_map(|e| e.right));
        if !cids.is_empty() {
            self.store.look_ahead(cids, records_present)?;
        }
        records_present.clear();
        if (self.options.records == Records::Check || self.options.records_ahead)
            && !node.entries.is_empty()
        {
            cids.clear();
            cids.extend(node.entries.iter().map(|e| e.value));
            self.store.look_ahead(cids, records_present)?;
        }
        Ok(())
    }

    /// Checks or fetches the record of the leaf just stepped onto;
    /// `looked_up` if the store said it is stored when the walk looked
    /// ahead (a promise that it stays so; see [`BlockRead::look_ahead`]).
    fn record(&mut self, cid: Cid, looked_up: bool) -> Result<Step> {
        let present = match self.options.records {
            Records::Skip => return Ok(Step::Leaf(cid, None)),
            Records::Check if looked_up => Some(None),
            Records::Check => self.store.has(&cid)?.then_some(None),
            Records::Fetch => self.store.get(&cid)?.map(Some),
        };
        match present {
            Some(record) => {
                if let Some(bytes) = &record {
                    self.stats.record_bytes =
                        self.stats.record_bytes.saturating_add(bytes.len() as u64);
                }
                Ok(Step::Leaf(cid, record))
            }
            None if self.options.completeness == Completeness::Lenient => {
                self.stats.missing_records = self.stats.missing_records.saturating_add(1);
                Ok(Step::MissingRecord(cid))
            }
            None => Err(Error::MissingRecord { key: self.next_key.clone(), cid }),
        }
    }
}

enum Step {
    Leaf(Cid, Option<Bytes>),
    MissingRecord(Cid),
    MissingNode(Cid),
}

impl<S: BlockRead> Iterator for Walker<S> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().map(|e| e.map(Item::from)).transpose()
    }
}

impl<S: BlockRead> std::iter::FusedIterator for Walker<S> {}
