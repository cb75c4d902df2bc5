//! [`diff`]: the keys that differ between two trees, reading only the
//! subtrees whose CIDs differ.

use std::cmp::Ordering;

use atrepo_store::BlockRead;
use cid::Cid;

use crate::error::{Error, Result, show};
use crate::node::{self, NodeBuf};
use crate::options::{KeyRules, Limits};

/// One key that differs between two trees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// The key.
    pub key: String,
    /// Its value in the first tree; `None` if the key was created.
    pub before: Option<Cid>,
    /// Its value in the second tree; `None` if the key was deleted.
    pub after: Option<Cid>,
}

/// What a diff read, for callers that meter work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Nodes read from either store.
    pub nodes_read: u64,
}

/// The changes from the tree `before` (in `before_store`) to the tree
/// `after` (in `after_store`), in key order.
///
/// Both walks advance in key order; whenever both stand at subtrees with
/// the same CID, both skip them unread, so the work is proportional to the
/// size of the difference (times the tree's depth), not the trees. Every
/// node read is checked with the node rules and its expected layer.
pub fn diff(
    before_store: &dyn BlockRead,
    before: Cid,
    after_store: &dyn BlockRead,
    after: Cid,
    keys: KeyRules,
    limits: &Limits,
) -> Result<(Vec<Change>, DiffStats)> {
    let mut stats = DiffStats::default();
    let mut changes = Vec::new();
    if before == after {
        return Ok((changes, stats));
    }
    let mut a = Cursor::open(before_store, before, keys, limits, &mut stats)?;
    let mut b = Cursor::open(after_store, after, keys, limits, &mut stats)?;
    loop {
        let (x, y) = (a.at()?, b.at()?);
        match (x, y) {
            (At::End, At::End) => break,
            (At::Sub(cx, _), At::Sub(cy, _)) if cx == cy => {
                a.over();
                b.over();
            }
            (At::Sub(_, lx), At::Sub(_, ly)) => match lx.cmp(&ly) {
                Ordering::Greater => a.enter(&mut stats)?,
                Ordering::Less => b.enter(&mut stats)?,
                Ordering::Equal => {
                    a.enter(&mut stats)?;
                    b.enter(&mut stats)?;
                }
            },
            (At::Sub(..), _) => a.enter(&mut stats)?,
            (_, At::Sub(..)) => b.enter(&mut stats)?,
            (At::Leaf(va), At::Leaf(vb)) => {
                let (ka, kb) = (a.key(), b.key());
                match ka.cmp(kb) {
                    Ordering::Equal => {
                        if va != vb {
                            changes.push(Change {
                                key: show(ka),
                                before: Some(va),
                                after: Some(vb),
                            });
                        }
                        a.over();
                        b.over();
                    }
                    Ordering::Less => {
                        changes.push(Change { key: show(ka), before: Some(va), after: None });
                        a.over();
                    }
                    Ordering::Greater => {
                        changes.push(Change { key: show(kb), before: None, after: Some(vb) });
                        b.over();
                    }
                }
            }
            (At::Leaf(va), At::End) => {
                changes.push(Change { key: show(a.key()), before: Some(va), after: None });
                a.over();
            }
            (At::End, At::Leaf(vb)) => {
                changes.push(Change { key: show(b.key()), before: None, after: Some(vb) });
                b.over();
            }
        }
    }
    Ok((changes, stats))
}

/// Where a cursor stands.
#[derive(Debug, Clone, Copy)]
enum At {
    End,
    /// A subtree: its CID and layer.
    Sub(Cid, u8),
    /// A leaf: its value (the key via [`Cursor::key`]).
    Leaf(Cid),
}

/// A key bound of a subtree: none at the tree's ends.
type Bound = Option<Box<[u8]>>;

struct Frame {
    node: NodeBuf,
    layer: u8,
    /// 0 is the left subtree, `2i + 1` entry `i`, `2i + 2` its right subtree.
    slot: usize,
    /// The keys this node's keys must lie strictly between (from its
    /// parent; none for the root).
    low: Bound,
    high: Bound,
}

impl Frame {
    /// The key range of the subtree at even `slot`: between the keys
    /// around it, or this node's own bounds at either end.
    fn child_bounds(&self, slot: usize) -> (Bound, Bound) {
        let (low, high) =
            self.node.child_range(slot / 2, self.low.as_deref(), self.high.as_deref());
        (low.map(Box::from), high.map(Box::from))
    }
}

struct Cursor<'s> {
    store: &'s dyn BlockRead,
    keys: KeyRules,
    limits: Limits,
    stack: Vec<Frame>,
}

impl<'s> Cursor<'s> {
    fn open(
        store: &'s dyn BlockRead,
        root: Cid,
        keys: KeyRules,
        limits: &Limits,
        stats: &mut DiffStats,
    ) -> Result<Self> {
        let mut cursor = Cursor { store, keys, limits: *limits, stack: Vec::new() };
        let node = cursor.read(root, None, stats)?;
        if node.entries.is_empty() && node.left.is_some() {
            return Err(Error::RootOnlyPointer { cid: root });
        }
        let layer = node.layer.unwrap_or(0);
        cursor.stack.push(Frame { node, layer, slot: 0, low: None, high: None });
        Ok(cursor)
    }

    fn read(&self, cid: Cid, layer: Option<u8>, stats: &mut DiffStats) -> Result<NodeBuf> {
        let mut node = NodeBuf::default();
        let read = node::read(self.store, &cid, &self.limits, self.keys, &mut node);
        if node::placed(read, layer)?.is_none() {
            return Err(Error::MissingNode { cid });
        }
        stats.nodes_read = stats.nodes_read.saturating_add(1);
        if let Some(layer) = layer {
            node::check_layer(&cid, &node, layer)?;
        }
        Ok(node)
    }

    /// Where the cursor stands, skipping absent subtrees and finished nodes.
    fn at(&mut self) -> Result<At> {
        loop {
            let Some(top) = self.stack.last_mut() else { return Ok(At::End) };
            let entry = (top.slot.saturating_sub(1)) / 2;
            if top.slot % 2 == 1 {
                if let Some(e) = top.node.entries.get(entry) {
                    return Ok(At::Leaf(e.value));
                }
            } else {
                let child = if top.slot == 0 {
                    top.node.left
                } else {
                    top.node.entries.get(entry).and_then(|e| e.right)
                };
                if let Some(cid) = child {
                    let below = top.layer.checked_sub(1).ok_or(Error::ChildBelowZero { cid })?;
                    return Ok(At::Sub(cid, below));
                }
                if top.slot / 2 < top.node.entries.len() {
                    top.slot = top.slot.saturating_add(1);
                    continue;
                }
            }
            // The parent's slot already moved past this subtree on `enter`.
            self.stack.pop();
        }
    }

    /// The key of the leaf the cursor stands at.
    fn key(&self) -> &[u8] {
        self.stack
            .last()
            .and_then(|top| top.node.entries.get(top.slot / 2).map(|e| top.node.key(e)))
            .unwrap_or_default()
    }

    /// Steps past the current leaf or subtree.
    fn over(&mut self) {
        if let Some(top) = self.stack.last_mut() {
            top.slot = top.slot.saturating_add(1);
        }
    }

    /// Steps into the subtree the cursor stands at.
    fn enter(&mut self, stats: &mut DiffStats) -> Result<()> {
        let At::Sub(cid, layer) = self.at()? else { return Ok(()) };
        if self.stack.len() >= self.limits.max_depth {
            return Err(Error::TooDeep { cid, limit: self.limits.max_depth });
        }
        let node = self.read(cid, Some(layer), stats)?;
        // Key order across nodes: a subtree's keys lie between the keys
        // around it in its parent (the walk finds this through global key
        // order; a diff skips equal subtrees, so it checks each node).
        let (low, high) = match self.stack.last() {
            Some(top) => top.child_bounds(top.slot),
            None => (None, None),
        };
        node::check_bounds(&cid, &node, low.as_deref(), high.as_deref())?;
        self.over();
        self.stack.push(Frame { node, layer, slot: 0, low, high });
        Ok(())
    }
}
