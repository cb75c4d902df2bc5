//! Proofs of presence and absence: the nodes on a key's search path.

use atrepo_store::{BlockRead, Bytes};
use cid::Cid;

use crate::error::{Error, Result};
use crate::layer::layer;
use crate::node::{self, NodeBuf};
use crate::options::{KeyRules, Limits};

/// What a proof shows about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProofOutcome {
    /// The key is in the tree with this value.
    Present(Cid),
    /// The key is not in the tree: every node on its search path was present
    /// and checked, and the path ends where the key would have to be.
    Absent,
    /// The search path leads into a subtree whose node is not available, so
    /// nothing can be concluded. Never to be read as "absent".
    Inconclusive {
        /// The first node on the path that is missing.
        missing: Cid,
    },
}

/// The blocks proving the presence or absence of `key` in the tree rooted
/// at `root`: the nodes on its search path, root first. Fails with
/// [`Error::MissingNode`] if a node on the path is not in `store`.
pub fn prove(
    store: &dyn BlockRead,
    root: Cid,
    key: &str,
    keys: KeyRules,
    limits: &Limits,
) -> Result<Vec<(Cid, Bytes)>> {
    let mut path = Vec::new();
    match search(store, root, key.as_bytes(), keys, limits, Some(&mut path))? {
        ProofOutcome::Inconclusive { missing } => Err(Error::MissingNode { cid: missing }),
        ProofOutcome::Present(_) | ProofOutcome::Absent => Ok(path),
    }
}

/// Checks what the blocks in `store` (typically a proof from [`prove`])
/// show about `key` in the tree rooted at `root`.
///
/// Every node on the path is checked with the node rules, its expected
/// layer, and the key range its parent gives it, so a proof cannot place a
/// key where the tree could not hold it.
pub fn verify_proof(
    store: &dyn BlockRead,
    root: Cid,
    key: &str,
    keys: KeyRules,
    limits: &Limits,
) -> Result<ProofOutcome> {
    search(store, root, key.as_bytes(), keys, limits, None)
}

fn search(
    store: &dyn BlockRead,
    root: Cid,
    key: &[u8],
    keys: KeyRules,
    limits: &Limits,
    mut path: Option<&mut Vec<(Cid, Bytes)>>,
) -> Result<ProofOutcome> {
    let key_layer = layer(key);
    let mut node = NodeBuf::default();
    let mut cid = root;
    let mut expected: Option<u8> = None;
    // Exclusive bounds the parent gives the current node.
    let mut low: Option<Vec<u8>> = None;
    let mut high: Option<Vec<u8>> = None;
    for depth in 0..=limits.max_depth {
        if depth == limits.max_depth {
            return Err(Error::TooDeep { cid, limit: limits.max_depth });
        }
        let Some(bytes) = store.get(&cid)? else {
            return Ok(ProofOutcome::Inconclusive { missing: cid });
        };
        node::placed(node::decode(&cid, &bytes, limits, keys, &mut node), expected)?;
        if let Some(path) = path.as_deref_mut() {
            path.push((cid, bytes));
        }
        let node_layer = match (node.layer, expected) {
            (_, Some(want)) => {
                node::check_layer(&cid, &node, want)?;
                want
            }
            (Some(found), None) => found,
            (None, None) if node.left.is_none() => return Ok(ProofOutcome::Absent),
            (None, None) => return Err(Error::RootOnlyPointer { cid }),
        };
        node::check_bounds(&cid, &node, low.as_deref(), high.as_deref())?;
        let i = node.entries.partition_point(|e| node.key(e) < key);
        if let Some(e) = node.entries.get(i)
            && node.key(e) == key
        {
            return Ok(ProofOutcome::Present(e.value));
        }
        // A key on this layer or above would have to be in this node.
        if key_layer >= node_layer {
            return Ok(ProofOutcome::Absent);
        }
        let Some(child) = node.child_before(i) else {
            return Ok(ProofOutcome::Absent);
        };
        let (child_low, child_high) = node.child_range(i, low.as_deref(), high.as_deref());
        (low, high) = (child_low.map(<[u8]>::to_vec), child_high.map(<[u8]>::to_vec));
        expected = Some(node_layer.checked_sub(1).ok_or(Error::ChildBelowZero { cid })?);
        cid = child;
    }
    Err(Error::TooDeep { cid, limit: limits.max_depth })
}
