//! `firehose/commit-proof-fixtures.json`: roots before and after each
//! commit, and inversion of the commit from its proof blocks alone.

use std::path::Path;

use anyhow::Result;
use atrepo::mst::{self, Builder, KeyRules, Limits, Op, Tree};
use atrepo::store::{BlockRead, BlockStore, MemoryStore};
use cid::Cid;
use serde::Deserialize;

use crate::Case;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fixture {
    comment: String,
    leaf_value: String,
    keys: Vec<String>,
    adds: Vec<String>,
    dels: Vec<String>,
    root_before_commit: String,
    root_after_commit: String,
    blocks_in_proof: Vec<String>,
}

/// Runs every fixture as one case: root before, root after, and inversion
/// from the proof blocks only.
pub(crate) fn commit_proofs(path: &Path) -> Result<Vec<Case>> {
    let fixtures: Vec<Fixture> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut cases = Vec::new();
    for f in fixtures {
        let expected = format!(
            "before {}, after {}, inverted from {} proof blocks to before",
            f.root_before_commit,
            f.root_after_commit,
            f.blocks_in_proof.len()
        );
        let outcome = run(&f);
        let ok = outcome.as_ref().is_ok_and(Vec::is_empty);
        cases.push(Case::check(f.comment.clone(), expected, ok, || match outcome {
            Ok(problems) => problems.join("; "),
            Err(e) => format!("error: {e:#}"),
        }));
    }
    Ok(cases)
}

/// Returns the list of mismatches (empty when everything matches).
fn run(f: &Fixture) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let value: Cid = f.leaf_value.parse()?;
    let before: Cid = f.root_before_commit.parse()?;
    let after: Cid = f.root_after_commit.parse()?;

    let store = MemoryStore::new();
    let built =
        Builder::new().keys(KeyRules::Lax).build(&store, f.keys.iter().map(|k| (k, value)))?;
    if built != before {
        problems.push(format!("built root before {built}"));
    }
    let mut tree = Tree::load_with(&store, built, KeyRules::Lax, Limits::default())?;
    for key in &f.adds {
        tree.insert(key, value)?;
    }
    for key in &f.dels {
        tree.remove(key)?;
    }
    let (root_after, blocks) = tree.root_and_new_blocks();
    store.write(blocks.into_iter().collect())?;
    if root_after != after {
        problems.push(format!("root after {root_after}"));
    }

    // Inversion sees only the proof blocks.
    let proof = MemoryStore::new();
    for cid in &f.blocks_in_proof {
        let cid: Cid = cid.parse()?;
        match store.get(&cid)? {
            Some(bytes) => proof.put(cid, bytes)?,
            None => problems.push(format!("proof block {cid} is not a node of either tree")),
        }
    }
    let ops: Vec<Op> = f
        .adds
        .iter()
        .map(|k| Op::Create { key: k.clone(), cid: value })
        .chain(f.dels.iter().map(|k| Op::Delete { key: k.clone(), prev: value }))
        .collect();
    match mst::invert(&proof, after, &ops, KeyRules::Lax, &Limits::default()) {
        Ok(inverted) if inverted == before => {}
        Ok(inverted) => problems.push(format!("inverted to {inverted}")),
        Err(e) => problems.push(format!("inversion failed: {e}")),
    }
    Ok(problems)
}
