//! Sync 1.1 operation inversion: from a commit's tree and its operations,
//! the root the tree had before the commit.

use atrepo_store::BlockRead;
use cid::Cid;

use crate::error::{Error, Result};
use crate::options::{KeyRules, Limits};
use crate::tree::Tree;

/// One record operation of a commit, with the CIDs the sync 1.1 firehose
/// carries for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// `key` was created with value `cid`.
    Create {
        /// The key.
        key: String,
        /// The new value.
        cid: Cid,
    },
    /// `key` changed from `prev` to `cid`.
    Update {
        /// The key.
        key: String,
        /// The new value.
        cid: Cid,
        /// The old value.
        prev: Cid,
    },
    /// `key`, whose value was `prev`, was deleted.
    Delete {
        /// The key.
        key: String,
        /// The old value.
        prev: Cid,
    },
}

impl Op {
    /// The key the operation is about.
    pub fn key(&self) -> &str {
        match self {
            Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// Undoes `ops` on the tree rooted at `after` and returns the root before
/// them.
///
/// `store` needs only the nodes on the paths the operations touch (a
/// commit's proof blocks); a missing one is [`Error::MissingNode`]. Each
/// operation must match the tree: a created or updated key must hold the
/// new value, a deleted key must be absent; otherwise
/// [`Error::OpMismatch`]. The result does not depend on the order of `ops`
/// as long as each key appears once.
pub fn invert<S: BlockRead>(
    store: S,
    after: Cid,
    ops: &[Op],
    keys: KeyRules,
    limits: &Limits,
) -> Result<Cid> {
    let mut tree = Tree::load_with(store, after, keys, *limits)?;
    for op in ops {
        let (found, expected) = match op {
            Op::Create { key, cid } => (tree.remove(key)?, Some(*cid)),
            Op::Update { key, cid, prev } => (tree.insert(key, *prev)?, Some(*cid)),
            Op::Delete { key, prev } => (tree.insert(key, *prev)?, None),
        };
        if found != expected {
            let show = |c: Option<Cid>| c.map_or_else(|| "no value".to_owned(), |c| c.to_string());
            return Err(Error::OpMismatch {
                key: op.key().to_owned(),
                expected: show(expected),
                found: show(found),
            });
        }
    }
    Ok(tree.root())
}
