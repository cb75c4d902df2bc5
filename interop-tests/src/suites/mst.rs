//! `mst/`: key heights, common prefixes, and building and walking the
//! example keys.

use std::path::Path;

use anyhow::{Context, Result};
use atrepo::mst::{self, Builder, Item, KeyRules, WalkOptions, Walker};
use atrepo::store::MemoryStore;
use serde::Deserialize;

use crate::Case;

#[derive(Deserialize)]
struct Height {
    key: String,
    height: u8,
}

/// `mst/key_heights.json`: the layer of each key.
pub(crate) fn key_heights(path: &Path) -> Result<Vec<Case>> {
    let cases: Vec<Height> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    Ok(cases
        .into_iter()
        .map(|c| {
            let got = mst::layer(c.key.as_bytes());
            Case::check(
                format!("{:?}", c.key),
                format!("height {}", c.height),
                got == c.height,
                || format!("height {got}"),
            )
        })
        .collect())
}

#[derive(Deserialize)]
struct Prefix {
    left: String,
    right: String,
    len: usize,
}

/// `mst/common_prefix.json`: common prefix lengths.
pub(crate) fn common_prefix(path: &Path) -> Result<Vec<Case>> {
    let cases: Vec<Prefix> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    Ok(cases
        .into_iter()
        .map(|c| {
            let got = mst::common_prefix_len(c.left.as_bytes(), c.right.as_bytes());
            let name = format!("{:?} / {:?}", c.left, c.right);
            Case::check(name, format!("length {}", c.len), got == c.len, || format!("length {got}"))
        })
        .collect())
}

/// `mst/example_keys.txt`: build a tree of every key (lax key rules: the
/// keys are not NSIDs), walk it back with every rule checked, and compare.
pub(crate) fn example_keys(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path)?;
    let keys: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let value = crate::suites::leaf_value()?;
    let store = MemoryStore::new();
    let built = Builder::new().keys(KeyRules::Lax).build(&store, keys.iter().map(|k| (*k, value)));
    let root = match built {
        Ok(root) => root,
        Err(e) => {
            let produced = format!("build failed: {e}");
            return Ok(vec![Case::check("build", "a tree of every key", false, || produced)]);
        }
    };
    let options = WalkOptions::default().keys(KeyRules::Lax);
    let walked: std::result::Result<Vec<String>, _> = Walker::new(&store, root, options)
        .map(|item| match item {
            Ok(Item::Leaf { key, .. }) => Ok(key),
            Ok(other) => Err(format!("unexpected {other:?}")),
            Err(e) => Err(e.to_string()),
        })
        .collect();
    let mut sorted: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    sorted.sort();
    let expected = format!("{} keys walked back in order with every rule checked", sorted.len());
    let case = match walked {
        Ok(walked) => Case::check("build and walk", expected, walked == sorted, || {
            format!(
                "{} keys, first mismatch at {:?}",
                walked.len(),
                walked.iter().zip(&sorted).position(|(a, b)| a != b)
            )
        }),
        Err(e) => Case::check("build and walk", expected, false, || format!("walk failed: {e}")),
    };
    let mut cases = vec![case];
    // Every key must land on the layer its hash gives: rebuild from a
    // different insertion order and require the same root.
    let mut tree = mst::Tree::new(&store).with_keys(KeyRules::Lax);
    for key in keys.iter().rev() {
        tree.insert(key, value).with_context(|| format!("inserting {key}"))?;
    }
    let again = tree.root();
    cases.push(Case::check(
        "insertion order independence",
        format!("root {root} when inserted one by one in reverse"),
        again == root,
        || format!("root {again}"),
    ));
    Ok(cases)
}
