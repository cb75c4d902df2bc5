//! A strict Merkle Search Tree for atproto repositories.
//!
//! This crate owns the MST as the atproto repository spec defines it: node
//! blocks, key layers, the validated in-order walk, building and changing
//! trees, diffs, proofs, and sync 1.1 operation inversion. It accepts exactly
//! the trees the spec allows.
//!
//! # What this crate must not do
//!
//! - Read blocks any other way than through [`atrepo_store::BlockRead`].
//! - Know about CAR framing, storage backends or signatures.
//! - Recurse on untrusted depth: the walk is iterative with a depth cap;
//!   the recursive tree operations are bounded by key layers, which the
//!   depth cap also bounds.
//! - Hash record blocks or judge their contents; a leaf's value is a CID.
//!
//! # Main types
//!
//! - [`Walker`]: validated in-order walk yielding [`Event`]s (or owned
//!   [`Item`]s as an [`Iterator`]), with [`WalkStats`].
//! - [`Builder`]: the canonical tree of a set of pairs, bottom-up.
//! - [`Tree`]: lazy, mutable tree for insert, update, delete and lookups,
//!   working on partial trees.
//! - [`diff()`]: created, updated and deleted keys between two roots.
//! - [`prove`] / [`verify_proof`]: presence and absence proofs, with
//!   [`ProofOutcome::Inconclusive`] when a subtree is missing.
//! - [`invert`]: the root before a commit from its [`Op`]s and proof blocks.
//! - [`layer`]: the layer of a key.
//!
//! # Crate features
//!
//! None.
//!
//! # Untrusted input
//!
//! Every node read (by any entry point) is decoded as strict DRISL of the
//! node schema and checked: entry cap ([`Limits::max_entries`], default
//! 200), prefix compression (first `p` is 0, `p` within the previous key,
//! `p` the longest common prefix), keys non-empty, at most 1024 bytes,
//! valid under [`KeyRules`], strictly increasing, all on one layer, no
//! subtree below layer 0. Walks add: each child exactly one layer below its
//! parent, keys increasing across the whole tree, no empty node but the
//! root of an empty tree, no entry-less root pointing to a subtree, no node
//! reached twice, depth at most [`Limits::max_depth`] (default 32). Work is
//! proportional to the number of distinct blocks.
//!
//! # Example
//!
//! ```
//! use atrepo_mst::{Builder, Tree, WalkOptions, Walker, diff, KeyRules, Limits};
//! use atrepo_store::MemoryStore;
//! # let a: cid::Cid = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm".parse().unwrap();
//! # let b: cid::Cid = "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq".parse().unwrap();
//!
//! let store = MemoryStore::new();
//! let before = Builder::new().build(&store, [("app.bsky.feed.post/3jzfcijpj2z2a", a)])?;
//!
//! let mut tree = Tree::load(&store, before)?;
//! tree.insert("app.bsky.feed.post/3jzfcijpj2z2b", b)?;
//! let (after, blocks) = tree.root_and_new_blocks();
//! store.write(blocks.into_iter().collect())?;
//!
//! let (changes, _) = diff(&store, before, &store, after, KeyRules::Strict, &Limits::default())?;
//! assert_eq!(changes.len(), 1);
//! assert_eq!(changes[0].after, Some(b));
//! assert_eq!(Walker::new(&store, after, WalkOptions::default()).count(), 2);
//! # use atrepo_store::BlockStore;
//! # Ok::<(), atrepo_mst::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::arithmetic_side_effects
    )
)]

mod build;
mod diff;
mod error;
mod fuzz_walk;
mod invert;
mod layer;
mod node;
mod options;
mod proof;
mod tree;
mod walk;

pub use build::Builder;
pub use diff::{Change, DiffStats, diff};
pub use error::{Error, ErrorKind, Result};
pub use invert::{Op, invert};
pub use layer::{common_prefix_len, layer};
pub use node::{MAX_KEY_LEN, is_record_link};
pub use options::{Completeness, KeyRules, Limits, Records, WalkOptions};
pub use proof::{ProofOutcome, prove, verify_proof};
pub use tree::{Tree, TreeStats};
pub use walk::{Event, Item, WalkStats, Walker};

/// Entry points for fuzzing and out-of-crate tests.
///
/// Not part of the public API: anything here may change in any release.
#[doc(hidden)]
pub mod internal {
    use cid::Cid;

    /// Encodes a node from full keys, for building malformed-tree test cases
    /// (keys are prefix-compressed canonically).
    pub fn encode_node(left: Option<&Cid>, entries: &[(&[u8], Cid, Option<Cid>)]) -> Vec<u8> {
        crate::node::encode(left, entries.iter().map(|(k, v, r)| (*k, v, r.as_ref())))
    }

    /// The CID of a node block.
    pub fn node_cid(bytes: &[u8]) -> Cid {
        crate::node::cid_of(bytes)
    }

    /// Fuzz bodies: each takes arbitrary bytes and must never panic.
    pub mod fuzzing {
        use crate::node::{self, NodeBuf};
        use crate::{KeyRules, Limits};

        pub use crate::fuzz_walk::mst_walk_structured;

        /// Decodes `data` as one MST node under every key rule.
        pub fn mst_node(data: &[u8]) {
            let cid = node::cid_of(data);
            let mut buf = NodeBuf::default();
            for rules in [KeyRules::Strict, KeyRules::Lax, KeyRules::Any] {
                if node::decode(&cid, data, &Limits::default(), rules, &mut buf).is_ok() {
                    // Accepted nodes re-encode to the same bytes.
                    let entries =
                        buf.entries.iter().map(|e| (buf.key(e), &e.value, e.right.as_ref()));
                    let again = node::encode(buf.left.as_ref(), entries);
                    assert_eq!(again, data, "accepted a non-canonical node");
                }
            }
        }
    }
}
