//! A deterministic CAR shaped like an atproto repository export, for
//! benchmarks: a signed-commit-like root block, MST-node-like blocks and
//! record blocks, all real DAG-CBOR under blessed sha2-256 CIDs.
//!
//! The shape (block sizes, CID density, block count per MiB) follows real
//! exports: records of 100 B to 2 KB (mostly likes and follows, some long
//! posts) and tree nodes of about four entries with prefix-compressed keys.
//! It is not a valid repository: the tree's key heights and the commit's
//! signature are not real, so use it for framing, hashing and storage
//! benches, not for MST or signature verification.

// Sizes here are our own small constants and generator outputs (a few
// MiB at most); narrowing them cannot lose anything.
#![allow(clippy::cast_possible_truncation)]

use std::ops::Range;

use atrepo_car::{CarWriter, DAG_CBOR, Header, blessed_cid};
use cid::Cid;

/// A generated repository CAR.
#[derive(Debug, Clone)]
pub struct RepoCar {
    /// The CAR bytes.
    pub car: Vec<u8>,
    /// The root: the commit block's CID.
    pub root: Cid,
    /// Where each block's bytes are in `car`, in CAR order.
    pub blocks: Vec<Range<usize>>,
    /// How many of the blocks are records.
    pub records: usize,
    /// How many of the blocks are tree nodes.
    pub nodes: usize,
}

impl RepoCar {
    /// Each block's bytes, in CAR order.
    pub fn block_bytes(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.blocks.iter().filter_map(|r| self.car.get(r.clone()))
    }
}

/// Generates a repository CAR of at least `min_bytes` bytes. The same
/// `seed` always gives the same bytes.
pub fn repo_car(min_bytes: usize, seed: u64) -> RepoCar {
    let mut rng = SplitMix64(seed);
    let did = format!("did:plc:{}", base32(&mut rng, 24));

    // Records, with their keys, until the CAR will be big enough. Tree
    // nodes add about a third to the records' bytes.
    let mut records: Vec<(String, Cid, Vec<u8>)> = Vec::new();
    let mut record_bytes = 0;
    let mut tid = tid_base(&mut rng);
    while record_bytes * 4 / 3 < min_bytes {
        let (collection, block) = record(&mut rng);
        tid += 1 + rng.below(1 << 20);
        let key = format!("{collection}/{}", tid_string(tid));
        record_bytes += block.len() + 40;
        records.push((key, blessed_cid(DAG_CBOR, &block), block));
    }
    records.sort_by(|a, b| a.0.cmp(&b.0));

    // Leaves of 1 to 8 entries, then layers of about four children each.
    let mut layer: Vec<(String, Cid, Vec<u8>, Range<usize>)> = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let n = (1 + rng.below(8) as usize).min(records.len() - i);
        let entries: Vec<(&str, Cid, Option<Cid>)> =
            records[i..i + n].iter().map(|(k, c, _)| (k.as_str(), *c, None)).collect();
        let node = mst_node(None, &entries);
        layer.push((records[i].0.clone(), blessed_cid(DAG_CBOR, &node), node, i..i + n));
        i += n;
    }
    let mut nodes: Vec<Vec<Vec<u8>>> = vec![layer.iter().map(|n| n.2.clone()).collect()];
    // Which records each leaf holds, for writing them next to their leaf.
    let leaf_records: Vec<Range<usize>> = layer.iter().map(|n| n.3.clone()).collect();
    while layer.len() > 1 {
        let mut up = Vec::new();
        for group in layer.chunks(4) {
            // `l` is the first child; each further child hangs off an entry
            // whose key is that child's first key.
            let entries: Vec<(&str, Cid, Option<Cid>)> = group
                .iter()
                .skip(1)
                .map(|(k, c, _, _)| (k.as_str(), blessed_cid(DAG_CBOR, k.as_bytes()), Some(*c)))
                .collect();
            let node = mst_node(Some(group[0].1), &entries);
            up.push((group[0].0.clone(), blessed_cid(DAG_CBOR, &node), node, 0..0));
        }
        nodes.push(up.iter().map(|n| n.2.clone()).collect());
        layer = up;
    }
    let data = layer.first().map(|n| n.1).unwrap_or_else(|| blessed_cid(DAG_CBOR, b""));

    let commit = commit(&mut rng, &did, data, &tid_string(tid));
    let root = blessed_cid(DAG_CBOR, &commit);
    let header = Header::new(vec![root]).unwrap_or_else(|| unreachable!("one root"));

    // Commit, then the tree top down, then each leaf followed by its
    // records, as an export walks it.
    let mut writer = CarWriter::new(Vec::new(), &header).unwrap_or_else(|e| panic!("{e}"));
    let mut ranges = Vec::new();
    let mut put = |w: &mut CarWriter<Vec<u8>>, data: &[u8]| {
        w.write(&blessed_cid(DAG_CBOR, data), data).unwrap_or_else(|e| panic!("{e}"));
        let end = w.offset() as usize;
        ranges.push(end - data.len()..end);
    };
    put(&mut writer, &commit);
    let node_count = nodes.iter().map(Vec::len).sum();
    for level in nodes.iter().skip(1).rev() {
        for node in level {
            put(&mut writer, node);
        }
    }
    for (leaf, held) in nodes[0].iter().zip(&leaf_records) {
        put(&mut writer, leaf);
        for (_, _, block) in &records[held.clone()] {
            put(&mut writer, block);
        }
    }
    let car = writer.finish().unwrap_or_else(|e| panic!("{e}"));
    RepoCar { car, root, blocks: ranges, records: records.len(), nodes: node_count }
}

/// A record of a random kind: `(collection, DAG-CBOR bytes)`.
pub(crate) fn record(rng: &mut SplitMix64) -> (&'static str, Vec<u8>) {
    let created = format!(
        "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60),
        rng.below(1000)
    );
    let mut c = Cbor::default();
    let roll = rng.below(100);
    let collection = match roll {
        0..45 => "app.bsky.feed.like",
        45..65 => "app.bsky.graph.follow",
        65..75 => "app.bsky.feed.repost",
        _ => "app.bsky.feed.post",
    };
    match collection {
        "app.bsky.graph.follow" => {
            // Keys in DAG-CBOR order: by length, then bytewise.
            c.map(3);
            c.text("$type").text(collection);
            c.text("subject").text(&format!("did:plc:{}", base32(rng, 24)));
            c.text("createdAt").text(&created);
        }
        "app.bsky.feed.post" => {
            // Posts carry most of a repository's bytes: short ones are
            // common, long ones (with embeds, facets) reach about 2 KB.
            let len = if rng.below(4) == 0 { 300 + rng.below(1700) } else { 20 + rng.below(280) };
            c.map(4);
            c.text("text").text(&words(rng, len as usize));
            c.text("$type").text(collection);
            c.text("langs").array(1).text("en");
            c.text("createdAt").text(&created);
        }
        _ => {
            c.map(3);
            c.text("$type").text(collection);
            c.text("subject").map(2);
            c.text("cid").text(&blessed_cid(DAG_CBOR, &rng.next().to_be_bytes()).to_string());
            c.text("uri").text(&format!(
                "at://did:plc:{}/app.bsky.feed.post/{}",
                base32(rng, 24),
                tid_string(tid_base(rng))
            ));
            c.text("createdAt").text(&created);
        }
    }
    (collection, c.0)
}

/// An MST-node-like block: `{e: [{k, p, t, v}...], l}` with the keys
/// prefix-compressed against the previous one.
fn mst_node(left: Option<Cid>, entries: &[(&str, Cid, Option<Cid>)]) -> Vec<u8> {
    let mut c = Cbor::default();
    c.map(2);
    c.text("e").array(entries.len() as u64);
    let mut prev: &str = "";
    for (key, value, tree) in entries {
        let shared = prev.bytes().zip(key.bytes()).take_while(|(a, b)| a == b).count();
        c.map(4);
        c.text("k").bytes(key.as_bytes().get(shared..).unwrap_or_default());
        c.text("p").uint(shared as u64);
        c.text("t");
        match tree {
            Some(t) => c.link(t),
            None => c.null(),
        };
        c.text("v").link(value);
        prev = key;
    }
    c.text("l");
    match left {
        Some(l) => c.link(&l),
        None => c.null(),
    };
    c.0
}

/// A commit-like block: `{did, rev, sig, data, prev, version}`.
fn commit(rng: &mut SplitMix64, did: &str, data: Cid, rev: &str) -> Vec<u8> {
    let mut sig = [0u8; 64];
    for chunk in sig.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_be_bytes());
    }
    let mut c = Cbor::default();
    c.map(6);
    c.text("did").text(did);
    c.text("rev").text(rev);
    c.text("sig").bytes(&sig);
    c.text("data").link(&data);
    c.text("prev").null();
    c.text("version").uint(3);
    c.0
}

/// A minimal canonical DAG-CBOR writer.
#[derive(Default)]
struct Cbor(Vec<u8>);

impl Cbor {
    fn head(&mut self, major: u8, n: u64) -> &mut Self {
        let m = major << 5;
        match n {
            0..24 => self.0.push(m | n as u8),
            24..0x100 => self.0.extend([m | 24, n as u8]),
            0x100..0x1_0000 => {
                self.0.push(m | 25);
                self.0.extend((n as u16).to_be_bytes());
            }
            0x1_0000..0x1_0000_0000 => {
                self.0.push(m | 26);
                self.0.extend((n as u32).to_be_bytes());
            }
            _ => {
                self.0.push(m | 27);
                self.0.extend(n.to_be_bytes());
            }
        }
        self
    }
    fn uint(&mut self, n: u64) -> &mut Self {
        self.head(0, n)
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.0.extend(b);
        self
    }
    fn text(&mut self, s: &str) -> &mut Self {
        self.head(3, s.len() as u64);
        self.0.extend(s.as_bytes());
        self
    }
    fn array(&mut self, n: u64) -> &mut Self {
        self.head(4, n)
    }
    fn map(&mut self, n: u64) -> &mut Self {
        self.head(5, n)
    }
    fn link(&mut self, cid: &Cid) -> &mut Self {
        let bytes = cid.to_bytes();
        self.0.extend([0xd8, 0x2a]);
        self.head(2, bytes.len() as u64 + 1);
        self.0.push(0);
        self.0.extend(bytes);
        self
    }
    fn null(&mut self) -> &mut Self {
        self.0.push(0xf6);
        self
    }
}

/// SplitMix64: a tiny deterministic generator (no dependency needed).
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number below `n` (n > 0); the tiny bias does not matter here.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A microsecond timestamp around 2024, the base of a TID.
fn tid_base(rng: &mut SplitMix64) -> u64 {
    1_704_067_200_000_000 + rng.below(365 * 24 * 3600 * 1_000_000)
}

/// The 13-character base32-sortable TID of a timestamp.
fn tid_string(micros: u64) -> String {
    const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    let v = (micros << 10) & 0x7fff_ffff_ffff_ffff;
    (0..13).rev().map(|i| ALPHABET[((v >> (i * 5)) & 31) as usize] as char).collect()
}

/// `n` random base32 characters.
fn base32(rng: &mut SplitMix64, n: usize) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..n).map(|_| ALPHABET[rng.below(32) as usize] as char).collect()
}

/// About `len` bytes of word-like text.
fn words(rng: &mut SplitMix64, len: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "repo",
        "of",
        "a",
        "post",
        "and",
        "to",
        "is",
        "sky",
        "blue",
        "protocol",
        "federation",
        "merkle",
        "search",
        "tree",
        "signed",
        "commit",
        "today",
        "we",
        "ship",
    ];
    let mut out = String::new();
    while out.len() < len {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    out
}
