//! `cargo xtask malformed-corpus`: rebuilds the malformed-input corpus in
//! `crates/atrepo/tests/data/malformed/<area>/<name>.<ext>`.
//!
//! Every file is built byte by byte from the specs (CAR v1 framing, CIDs,
//! DRISL heads, commit and MST node maps, multibase keys), not by our
//! writers: a CBOR head, a varint and a section are a few lines each here.
//! The crates are used only for hashing, signing and key layers, and once
//! for a valid firehose event that two cases then alter byte-wise.
//!
//! Extensions say which entry point reads a file (see
//! `crates/atrepo/tests/it/malformed_corpus.rs`): `.car` whole-repository
//! verification, `.cbor` strict DRISL (a record), `.event` a `#commit`
//! event body, `.txt` keys and signatures.

// Bytes are built from numbers whose ranges the code matches or knows
// (CBOR head widths, varint groups, DER lengths under 128).
#![allow(clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use atrepo::car::{DAG_CBOR, RAW, blessed_cid};
use atrepo::verify::{Curve, SigningKey, Tid};

/// The folder, from the workspace root.
pub(crate) const DIR: &str = "crates/atrepo/tests/data/malformed";

/// The repository's DID (the test reads it from `repo.did`).
const DID: &str = "did:plc:malformedcorpus00000";
/// "Now" for the rev checks, in Unix seconds; the test uses the same.
const NOW_SECS: u64 = 1_700_000_000;

/// A corpus being written: path (relative to [`DIR`]) to bytes.
#[derive(Default)]
struct Corpus(BTreeMap<String, Vec<u8>>);

impl Corpus {
    fn add(&mut self, path: &str, bytes: impl Into<Vec<u8>>) {
        let old = self.0.insert(path.to_owned(), bytes.into());
        assert!(old.is_none(), "corpus file {path} written twice");
    }
}

/// Rebuilds the corpus: removes the old files and writes every case.
pub(crate) fn run_malformed_corpus(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        anyhow::bail!("malformed-corpus: unknown argument {a:?}");
    }
    let dir = crate::root().join(DIR);
    let corpus = build()?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let mut areas: BTreeMap<&str, usize> = BTreeMap::new();
    for (path, bytes) in &corpus.0 {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, bytes).with_context(|| format!("writing {}", file.display()))?;
        let area = path.split_once('/').map_or("", |(a, _)| a);
        *areas.entry(area).or_default() += usize::from(!area.is_empty());
    }
    for (area, n) in &areas {
        if !area.is_empty() {
            println!("{area:>8}: {n}");
        }
    }
    let total: usize = areas.values().sum();
    println!("   total: {total} cases in {}", Path::new(DIR).display());
    Ok(())
}

// ---------------------------------------------------------------------
// Bytes from the specs.

/// An unsigned LEB128 varint (multiformats unsigned-varint).
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A minimal CBOR head.
fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [&[m | 25][..], &(n as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[m | 26][..], &(n as u32).to_be_bytes()].concat(),
        _ => [&[m | 27][..], &n.to_be_bytes()].concat(),
    }
}

fn uint(n: u64) -> Vec<u8> {
    head(0, n)
}
fn bytes(b: &[u8]) -> Vec<u8> {
    [head(2, b.len() as u64), b.to_vec()].concat()
}
fn text(s: &str) -> Vec<u8> {
    [head(3, s.len() as u64), s.as_bytes().to_vec()].concat()
}
fn array(n: u64) -> Vec<u8> {
    head(4, n)
}
fn map(n: u64) -> Vec<u8> {
    head(5, n)
}
const NULL: u8 = 0xf6;

/// A DAG-CBOR link: tag 42 (`d8 2a`) around `00 <binary CID>`.
fn link(cid: &[u8]) -> Vec<u8> {
    let mut inner = vec![0x00];
    inner.extend_from_slice(cid);
    [vec![0xd8, 0x2a], bytes(&inner)].concat()
}

fn link_or_null(cid: Option<&[u8]>) -> Vec<u8> {
    cid.map_or(vec![NULL], link)
}

/// A blessed binary CID (v1, `codec`, sha2-256) of `data`.
fn cid(codec: u64, data: &[u8]) -> Vec<u8> {
    blessed_cid(codec, data).to_bytes()
}

/// A CAR v1 header with these binary roots, with its length varint.
fn header(roots: &[&[u8]]) -> Vec<u8> {
    let mut h = map(2);
    h.extend(text("roots"));
    h.extend(array(roots.len() as u64));
    for r in roots {
        h.extend(link(r));
    }
    h.extend(text("version"));
    h.extend(uint(1));
    framed(&h)
}

/// `bytes` prefixed with their length as a varint.
fn framed(b: &[u8]) -> Vec<u8> {
    [varint(b.len() as u64), b.to_vec()].concat()
}

/// A CAR section: length varint, binary CID, block bytes.
fn section(cid: &[u8], data: &[u8]) -> Vec<u8> {
    framed(&[cid, data].concat())
}

/// A record: `{"n": n, "$type": "com.example.record"}` in canonical order.
fn record(n: u64) -> Vec<u8> {
    [map(2), text("n"), uint(n), text("$type"), text("com.example.record")].concat()
}

/// A node entry as written: prefix length, key suffix, subtree, value.
struct Entry<'a> {
    p: u64,
    k: &'a [u8],
    t: Option<Vec<u8>>,
    v: Vec<u8>,
}

/// An MST node exactly as given (canonical key order `e`, `l`; entries
/// `k`, `p`, `t`, `v`).
fn node(left: Option<&[u8]>, entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = [map(2), text("e"), array(entries.len() as u64)].concat();
    for e in entries {
        out.extend(map(4));
        out.extend(text("k"));
        out.extend(bytes(e.k));
        out.extend(text("p"));
        out.extend(uint(e.p));
        out.extend(text("t"));
        out.extend(link_or_null(e.t.as_deref()));
        out.extend(text("v"));
        out.extend(link(&e.v));
    }
    out.extend(text("l"));
    out.extend(link_or_null(left));
    out
}

/// A node entry by full key: key, value CID, subtree CID.
type FullEntry<'a> = (&'a str, Vec<u8>, Option<Vec<u8>>);

/// A node from full keys, prefix-compressed canonically.
fn node_full(left: Option<&[u8]>, entries: &[FullEntry<'_>]) -> Vec<u8> {
    let mut prev: &[u8] = b"";
    let mut raw = Vec::new();
    for (k, v, t) in entries {
        let k = k.as_bytes();
        let p = prev.iter().zip(k).take_while(|(a, b)| a == b).count();
        raw.push(Entry { p: p as u64, k: &k[p..], t: t.clone(), v: v.clone() });
        prev = k;
    }
    node(left, &raw)
}

/// The `n`-th key `com.example.record/k<i>` on `layer`, after `after`.
fn key_on_layer(layer: u8, after: &str, n: usize) -> String {
    (0u64..)
        .map(|i| format!("com.example.record/k{i:06}"))
        .filter(|k| k.as_str() > after && atrepo::mst::layer(k.as_bytes()) == layer)
        .nth(n)
        .expect("keys on every small layer exist")
}

fn key() -> SigningKey {
    SigningKey::from_seed(Curve::K256, b"atrepo malformed corpus").expect("seeded key")
}

fn rev_at(secs: u64) -> String {
    Tid::from_parts(secs * 1_000_000, 7).expect("a valid timestamp").to_string()
}

/// Commit fields as written; `None` leaves a field out.
#[derive(Clone)]
struct CommitFields {
    did: Option<Vec<u8>>,
    rev: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
    prev: Option<Vec<u8>>,
    version: Option<Vec<u8>>,
    extra: Option<(String, Vec<u8>)>,
}

impl CommitFields {
    fn new(data: &[u8]) -> Self {
        CommitFields {
            did: Some(text(DID)),
            rev: Some(text(&rev_at(NOW_SECS - 3600))),
            data: Some(link(data)),
            prev: Some(vec![NULL]),
            version: Some(uint(3)),
            extra: None,
        }
    }

    /// The map, with `sig` if given, keys in canonical order.
    fn encode(&self, sig: Option<&[u8]>) -> Vec<u8> {
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        let mut add = |k: &str, v: &Option<Vec<u8>>| {
            if let Some(v) = v {
                fields.push((k.to_owned(), v.clone()));
            }
        };
        add("did", &self.did);
        add("rev", &self.rev);
        add("data", &self.data);
        add("prev", &self.prev);
        add("version", &self.version);
        if let Some(sig) = sig {
            fields.push(("sig".to_owned(), bytes(sig)));
        }
        if let Some(extra) = &self.extra {
            fields.push(extra.clone());
        }
        fields.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        let mut out = map(fields.len() as u64);
        for (k, v) in fields {
            out.extend(text(&k));
            out.extend(v);
        }
        out
    }

    /// Signed with the corpus key: the signature covers the map without
    /// `sig`.
    fn signed(&self) -> Vec<u8> {
        let sig = key().sign(&self.encode(None)).expect("signing works");
        self.encode(Some(&sig))
    }

    fn with_sig(&self, sig: &[u8]) -> Vec<u8> {
        self.encode(Some(sig))
    }
}

/// A repository as blocks: a root node CID, nodes and records.
struct Tree {
    root: Vec<u8>,
    blocks: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Tree {
    fn add(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        let c = cid(DAG_CBOR, &bytes);
        self.blocks.push((c.clone(), bytes));
        c
    }
}

/// The baseline tree: four layer-0 keys around one layer-1 key, so that
/// the root (layer 1) has a left and a right subtree.
struct Baseline {
    keys: [String; 5],
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

fn baseline() -> Baseline {
    let mid = key_on_layer(1, "com.example.record/k000100", 0);
    let a = key_on_layer(0, "", 0);
    let b = key_on_layer(0, "", 1);
    let d = key_on_layer(0, &mid, 0);
    let e = key_on_layer(0, &mid, 1);
    assert!(b < mid && a < b && d < e);
    let records = (0..5).map(|n| (cid(DAG_CBOR, &record(n)), record(n))).collect();
    Baseline { keys: [a, b, mid, d, e], records }
}

impl Baseline {
    fn value(&self, i: usize) -> Vec<u8> {
        self.records[i].0.clone()
    }

    /// The valid tree, with node bytes given by `left`, `right` and `root`
    /// rewriters (identity for the baseline).
    fn tree(&self) -> Tree {
        let k = &self.keys;
        let mut t = Tree { root: vec![], blocks: vec![] };
        let left = t.add(node_full(
            None,
            &[(k[0].as_str(), self.value(0), None), (k[1].as_str(), self.value(1), None)],
        ));
        let right = t.add(node_full(
            None,
            &[(k[3].as_str(), self.value(3), None), (k[4].as_str(), self.value(4), None)],
        ));
        t.root = t.add(node_full(Some(&left), &[(k[2].as_str(), self.value(2), Some(right))]));
        t.blocks.extend(self.records.iter().cloned());
        t
    }
}

/// A whole repository CAR: header with the commit as root, the commit,
/// then `blocks`.
fn repo_car(commit: &[u8], blocks: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let commit_cid = cid(DAG_CBOR, commit);
    let mut out = header(&[&commit_cid]);
    out.extend(section(&commit_cid, commit));
    for (c, b) in blocks {
        out.extend(section(c, b));
    }
    out
}

/// A repository CAR signed over the tree `t`.
fn signed_repo(t: &Tree) -> Vec<u8> {
    repo_car(&CommitFields::new(&t.root).signed(), &t.blocks)
}

/// A repository whose tree is one root node (hand-written bytes) holding
/// entries that point at the baseline records, plus extra nodes.
fn one_node_repo(root: Vec<u8>, extra: Vec<Vec<u8>>, b: &Baseline) -> Vec<u8> {
    let mut t = Tree { root: vec![], blocks: vec![] };
    for e in extra {
        t.add(e);
    }
    t.root = t.add(root);
    t.blocks.extend(b.records.iter().cloned());
    signed_repo(&t)
}

// ---------------------------------------------------------------------
// Signatures and keys.

const K256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s` for big-endian 32-byte numbers.
fn sub_from(n: &[u8; 32], s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = d.rem_euclid(256) as u8;
    }
    out
}

/// A compact signature with `s` replaced by `n - s` (high-S).
fn high_s(sig: &[u8; 64], n: &[u8; 32]) -> Vec<u8> {
    [&sig[..32], &sub_from(n, &sig[32..])[..]].concat()
}

/// ASN.1 DER of a compact signature.
fn der(sig: &[u8; 64]) -> Vec<u8> {
    let int = |x: &[u8]| {
        let x: Vec<u8> = x.iter().copied().skip_while(|&b| b == 0).collect();
        let pad = x.first().is_none_or(|&b| b >= 0x80);
        let mut out = vec![0x02, (x.len() + usize::from(pad)) as u8];
        if pad {
            out.push(0);
        }
        out.extend(x);
        out
    };
    let body = [int(&sig[..32]), int(&sig[32..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn base58(data: &[u8]) -> String {
    let mut digits: Vec<u8> = Vec::new();
    for &byte in data {
        let mut carry = u32::from(byte);
        for d in &mut digits {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    std::iter::repeat_n('1', zeros)
        .chain(digits.iter().rev().map(|&d| char::from(BASE58[usize::from(d)])))
        .collect()
}

/// A did:key from multicodec prefix and key bytes.
fn did_key(codec: &[u8], key: &[u8]) -> String {
    format!("did:key:z{}", base58(&[codec, key].concat()))
}

const K256_CODEC: &[u8] = &[0xe7, 0x01];
const P256_CODEC: &[u8] = &[0x80, 0x24];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A signature case: the key, the message (hex) and the signature (hex),
/// one per line.
fn sig_case(key: &str, message: &[u8], sig: &[u8]) -> String {
    format!("{key}\nmessage {}\nsignature {}\n", hex(message), hex(sig))
}

// ---------------------------------------------------------------------
// The cases.

fn build() -> Result<Corpus> {
    let mut c = Corpus::default();
    let b = baseline();
    let valid = signed_repo(&b.tree());
    c.add("repo.did", DID);
    c.add("signing-key.did-key", key().public_key().to_did_key());
    c.add("README.md", README);

    car_framing(&mut c, &b, &valid);
    cids(&mut c, &b);
    block_integrity(&mut c, &b, &valid);
    drisl(&mut c);
    commits(&mut c, &b);
    mst(&mut c, &b);
    keys(&mut c);
    events(&mut c)?;
    Ok(c)
}

const README: &str = "\
# Malformed-input corpus

Hand-built hostile inputs, one file per case, each mapped to its expected
error in `crates/atrepo/tests/it/snapshots/` by
`crates/atrepo/tests/it/malformed_corpus.rs`. Rebuild with
`cargo xtask malformed-corpus` (source: `xtask/src/corpus.rs`); never edit
by hand.

- `.car`: a whole repository CAR, through `verify_repo` with the key in
  `signing-key.did-key`, the DID in `repo.did`, and the clock at Unix time
  1,700,000,000.
- `.cbor`: a record, through strict DRISL (`drisl::validate_record`).
- `.event`: a `#commit` event body, decoded and verified with the same key
  and clock.
- `.txt`: a did:key (first line), optionally followed by `message <hex>`
  and `signature <hex>`; or `legacy <curve> <multibase>`.
";

fn car_framing(c: &mut Corpus, b: &Baseline, valid: &[u8]) {
    let t = b.tree();
    let commit = CommitFields::new(&t.root).signed();
    let commit_cid = cid(DAG_CBOR, &commit);
    let hdr = header(&[&commit_cid]);

    c.add("car/empty-input.car", vec![]);
    c.add("car/truncated-header-varint.car", vec![0x80]);
    // The header length 58 written in two bytes.
    let hbody = &hdr[1..];
    c.add(
        "car/non-minimal-header-varint.car",
        [&[0x80 | hbody.len() as u8, 0x00][..], hbody].concat(),
    );
    c.add("car/overlong-header-varint.car", [vec![0xff; 9], vec![0x01]].concat());
    c.add("car/zero-header-length.car", vec![0x00]);
    // A section length of 2^63 needs ten varint bytes: more than allowed.
    c.add(
        "car/section-length-2pow63.car",
        [hdr.clone(), vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]].concat(),
    );
    c.add(
        "car/section-length-2pow63-minus-1.car",
        [hdr.clone(), vec![0xff; 8], vec![0x7f]].concat(),
    );
    c.add(
        "car/section-length-over-cap.car",
        [hdr.clone(), varint(2 * 1024 * 1024 + 1), vec![0; 64]].concat(),
    );
    c.add(
        "car/section-longer-than-input.car",
        [hdr.clone(), varint(1000), commit_cid.clone(), vec![0; 10]].concat(),
    );
    c.add("car/header-not-a-map.car", framed(&[array(2), text("roots"), text("version")].concat()));
    let version = |v: u64| {
        framed(
            &[map(2), text("roots"), array(1), link(&commit_cid), text("version"), uint(v)]
                .concat(),
        )
    };
    c.add("car/header-version-2.car", [version(2), section(&commit_cid, &commit)].concat());
    c.add(
        "car/carv2-pragma.car",
        [vec![0x0a, 0xa1, 0x67], b"version".to_vec(), vec![0x02]].concat(),
    );
    c.add(
        "car/header-empty-roots.car",
        framed(&[map(2), text("roots"), array(0), text("version"), uint(1)].concat()),
    );
    c.add(
        "car/header-root-not-a-cid.car",
        framed(
            &[map(2), text("roots"), array(1), bytes(&commit_cid), text("version"), uint(1)]
                .concat(),
        ),
    );
    c.add(
        "car/header-keys-unsorted.car",
        framed(
            &[map(2), text("version"), uint(1), text("roots"), array(1), link(&commit_cid)]
                .concat(),
        ),
    );
    c.add("car/header-trailing-bytes.car", framed(&[&hdr[1..], &[NULL][..]].concat()));
    // roots[0] is the MST root node, not the commit.
    let mut wrong_root = header(&[&t.root]);
    wrong_root.extend(section(&commit_cid, &commit));
    for (cc, bb) in &t.blocks {
        wrong_root.extend(section(cc, bb));
    }
    c.add("car/root-is-not-the-commit.car", wrong_root);
    c.add("car/section-shorter-than-cid.car", [hdr.clone(), framed(&commit_cid[..10])].concat());
    c.add("car/trailing-partial-section.car", [valid.to_vec(), vec![0x32, 0x01, 0x71]].concat());
    // Cut after the last whole section but one: the framing is fine, a
    // record is missing (retryable with more data).
    let last = t.blocks.last().expect("blocks");
    let cut = valid.len() - section(&last.0, &last.1).len();
    c.add("car/truncated-on-block-boundary.car", valid[..cut].to_vec());
    c.add("car/truncated-inside-block.car", valid[..valid.len() - 3].to_vec());
}

fn cids(c: &mut Corpus, b: &Baseline) {
    let t = b.tree();
    let commit = CommitFields::new(&t.root).signed();
    let commit_cid = cid(DAG_CBOR, &commit);
    let hdr = header(&[&commit_cid]);
    let rec = record(9);
    let digest = &cid(RAW, &rec)[4..];
    let with = |cid_bytes: Vec<u8>| [hdr.clone(), section(&cid_bytes, &rec)].concat();

    c.add("cid/v0-in-section.car", with([&[0x12, 0x20][..], digest].concat()));
    c.add(
        "cid/v0-root.car",
        [
            framed(
                &[map(2), text("roots"), array(1)]
                    .concat()
                    .into_iter()
                    .chain(
                        [vec![0xd8, 0x2a], bytes(&[&[0x00, 0x12, 0x20][..], digest].concat())]
                            .concat(),
                    )
                    .chain([text("version"), uint(1)].concat())
                    .collect::<Vec<u8>>(),
            ),
            section(&commit_cid, &commit),
        ]
        .concat(),
    );
    c.add("cid/dag-pb-codec.car", with([&[0x01, 0x70, 0x12, 0x20][..], digest].concat()));
    c.add("cid/identity-hash.car", with([&[0x01, 0x55, 0x00, 0x04][..], b"abcd"].concat()));
    c.add("cid/blake3-hash.car", with([&[0x01, 0x55, 0x1e, 0x20][..], digest].concat()));
    c.add("cid/digest-31-bytes.car", with([&[0x01, 0x55, 0x12, 0x1f][..], &digest[..31]].concat()));
    c.add("cid/digest-33-bytes.car", with([&[0x01, 0x55, 0x12, 0x21][..], digest, &[0]].concat()));
    c.add("cid/cid-version-2.car", with([&[0x02, 0x55, 0x12, 0x20][..], digest].concat()));
    c.add(
        "cid/truncated-digest.car",
        [hdr.clone(), framed(&[&[0x01, 0x55, 0x12, 0x20][..], &digest[..16]].concat())].concat(),
    );
    // The commit's `data` link without the 0x00 multibase prefix.
    let mut fields = CommitFields::new(&t.root);
    fields.data = Some([vec![0xd8, 0x2a], bytes(&t.root)].concat());
    c.add("cid/link-without-00-prefix.car", repo_car(&fields.signed(), &t.blocks));
}

fn block_integrity(c: &mut Corpus, b: &Baseline, valid: &[u8]) {
    let t = b.tree();
    // The last record's last byte flipped.
    let mut flipped = valid.to_vec();
    *flipped.last_mut().expect("bytes") ^= 0x01;
    c.add("block/hash-mismatch.car", flipped);

    let commit = CommitFields::new(&t.root).signed();
    let mut dup = t.blocks.clone();
    dup.insert(1, t.blocks[3].clone());
    dup.push(t.blocks[0].clone());
    c.add("block/duplicate-blocks.car", repo_car(&commit, &dup));

    let mut extra = t.blocks.clone();
    let stray = record(1000);
    extra.insert(2, (cid(DAG_CBOR, &stray), stray));
    c.add("block/unreferenced-block.car", repo_car(&commit, &extra));

    // A node that links to its own (claimed) CID: only a reader that does
    // not hash blocks could be fooled.
    let claimed = t.root.clone();
    let selfish =
        node_full(Some(&claimed), &[(b.keys[2].as_str(), b.value(2), Some(claimed.clone()))]);
    let mut blocks = vec![(claimed, selfish)];
    blocks.extend(t.blocks.iter().skip(3).cloned());
    c.add("block/claims-its-own-cid.car", repo_car(&commit, &blocks));
}

fn drisl(c: &mut Corpus) {
    let rec =
        |value: &[u8]| [map(2), text("a"), value.to_vec(), text("$type"), text("x.y.z")].concat();
    c.add("drisl/non-minimal-integer.cbor", rec(&[0x18, 0x01]));
    c.add("drisl/non-minimal-length.cbor", rec(&[0x78, 0x01, b'x']));
    c.add("drisl/indefinite-array.cbor", rec(&[0x9f, 0x01, 0xff]));
    c.add("drisl/indefinite-map.cbor", [vec![0xbf], text("a"), uint(1), vec![0xff]].concat());
    c.add("drisl/indefinite-string.cbor", rec(&[0x7f, 0x61, b'x', 0xff]));
    c.add(
        "drisl/unsorted-keys.cbor",
        [map(3), text("b"), uint(1), text("a"), uint(2), text("$type"), text("x.y.z")].concat(),
    );
    c.add(
        "drisl/duplicate-keys.cbor",
        [map(3), text("a"), uint(1), text("a"), uint(2), text("$type"), text("x.y.z")].concat(),
    );
    c.add(
        "drisl/integer-key.cbor",
        [map(2), uint(1), uint(2), text("$type"), text("x.y.z")].concat(),
    );
    c.add("drisl/tag-0.cbor", rec(&[&[0xc0][..], &text("2024-01-01T00:00:00Z")].concat()));
    c.add(
        "drisl/tag-42-non-minimal.cbor",
        rec(&[&[0xd9, 0x00, 0x2a][..], &bytes(&[&[0][..], &cid(RAW, b"x")].concat())].concat()),
    );
    c.add("drisl/float-64.cbor", rec(&[0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]));
    c.add("drisl/float-32.cbor", rec(&[0xfa, 0x3f, 0x80, 0, 0]));
    c.add("drisl/float-16.cbor", rec(&[0xf9, 0x3c, 0x00]));
    c.add("drisl/nan.cbor", rec(&[0xf9, 0x7e, 0x00]));
    c.add("drisl/infinity.cbor", rec(&[0xf9, 0x7c, 0x00]));
    c.add("drisl/undefined.cbor", rec(&[0xf7]));
    c.add("drisl/simple-value.cbor", rec(&[0xf0]));
    c.add("drisl/trailing-bytes.cbor", [rec(&[0x01]), vec![0x00]].concat());
    let mut deep = vec![0x81; 299];
    deep.push(0x01);
    c.add("drisl/depth-300.cbor", rec(&deep));
    c.add(
        "drisl/integer-overflow.cbor",
        rec(&[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    );
    c.add("drisl/invalid-utf8.cbor", rec(&[0x62, 0xc3, 0x28]));
    c.add("drisl/empty-type.cbor", [map(1), text("$type"), text("")].concat());
    c.add(
        "drisl/link-without-00-prefix.cbor",
        rec(&[&[0xd8, 0x2a][..], &bytes(&cid(RAW, b"x"))].concat()),
    );
    c.add("drisl/not-a-map.cbor", [array(1), uint(1)].concat());
}

fn commits(c: &mut Corpus, b: &Baseline) {
    let t = b.tree();
    let base = CommitFields::new(&t.root);
    let mut add = |name: &str, commit: Vec<u8>| {
        c.add(&format!("commit/{name}.car"), repo_car(&commit, &t.blocks));
    };

    let mut f = base.clone();
    f.prev = None;
    add("missing-prev", f.signed());
    let mut f = base.clone();
    f.version = Some(uint(2));
    add("version-2", f.signed());
    let mut f = base.clone();
    f.data = Some(link(&cid(RAW, b"not a node")));
    add("data-not-dag-cbor", f.signed());
    let mut f = base.clone();
    f.rev = Some(text("not-a-tid"));
    add("rev-not-a-tid", f.signed());
    let mut f = base.clone();
    f.rev = Some(text(&rev_at(NOW_SECS + 6 * 60)));
    add("rev-6-minutes-in-future", f.signed());
    let mut f = base.clone();
    f.extra = Some(("zzzz".to_owned(), vec![NULL]));
    add("unknown-field", f.signed());
    let mut f = base.clone();
    f.did = Some(text("did:plc:someoneelse000000000"));
    add("did-not-the-expected", f.signed());

    let unsigned = base.encode(None);
    let sig = key().sign(&unsigned).expect("signing works");
    add("sig-63-bytes", base.with_sig(&sig[..63]));
    add("sig-65-bytes", base.with_sig(&[&sig[..], &[0]].concat()));
    add("sig-der", base.with_sig(&der(&sig)));
    add("sig-high-s", base.with_sig(&high_s(&sig, &K256_N)));
    let other = SigningKey::from_seed(Curve::K256, b"someone else").expect("seeded key");
    add("sig-by-another-key", base.with_sig(&other.sign(&unsigned).expect("signing works")));
    let mut flipped = sig;
    flipped[10] ^= 0x01;
    add("sig-flipped-bit", base.with_sig(&flipped));
}

/// A node entry from its parts.
fn e(p: u64, k: &[u8], t: Option<Vec<u8>>, v: Vec<u8>) -> Entry<'_> {
    Entry { p, k, t, v }
}

fn mst(c: &mut Corpus, b: &Baseline) {
    let k = &b.keys;
    let v = |i: usize| b.value(i);
    let mut add = |name: &str, car: Vec<u8>| c.add(&format!("mst/{name}.car"), car);

    // A layer-1 key among layer-0 keys in one node.
    add(
        "keys-of-two-layers-in-a-node",
        one_node_repo(
            node_full(
                None,
                &[
                    (k[0].as_str(), v(0), None),
                    (k[2].as_str(), v(2), None),
                    (k[3].as_str(), v(3), None),
                ],
            ),
            vec![],
            b,
        ),
    );
    add(
        "keys-unsorted-in-a-node",
        one_node_repo(
            node_full(None, &[(k[1].as_str(), v(1), None), (k[0].as_str(), v(0), None)]),
            vec![],
            b,
        ),
    );
    add(
        "duplicate-key",
        one_node_repo(
            node_full(None, &[(k[0].as_str(), v(0), None), (k[0].as_str(), v(1), None)]),
            vec![],
            b,
        ),
    );
    add(
        "prefix-longer-than-previous-key",
        one_node_repo(
            node(
                None,
                &[e(0, k[0].as_bytes(), None, v(0)), e(k[0].len() as u64 + 1, b"x", None, v(1))],
            ),
            vec![],
            b,
        ),
    );
    add(
        "first-prefix-not-zero",
        one_node_repo(node(None, &[e(1, &k[0].as_bytes()[1..], None, v(0))]), vec![], b),
    );
    add("empty-key", one_node_repo(node(None, &[e(0, b"", None, v(0))]), vec![], b));
    let long = format!("com.example.record/{}", "a".repeat(1100));
    add(
        "key-over-1024-bytes",
        one_node_repo(node(None, &[e(0, long.as_bytes(), None, v(0))]), vec![], b),
    );
    add(
        "key-without-collection",
        one_node_repo(node(None, &[e(0, b"no-slash-here", None, v(0))]), vec![], b),
    );
    // An entry-less node below the root.
    let empty = node(None, &[]);
    add(
        "empty-node-below-root",
        one_node_repo(
            node_full(Some(&cid(DAG_CBOR, &empty)), &[(k[2].as_str(), v(2), None)]),
            vec![empty.clone()],
            b,
        ),
    );
    // An entry-less root that only points to a subtree.
    let leaf = node_full(None, &[(k[0].as_str(), v(0), None)]);
    add(
        "root-only-points-to-subtree",
        one_node_repo(node(Some(&cid(DAG_CBOR, &leaf)), &[]), vec![leaf.clone()], b),
    );
    // A layer-0 node linking to a subtree.
    add(
        "layer-0-node-with-subtree",
        one_node_repo(
            node_full(Some(&cid(DAG_CBOR, &leaf)), &[(k[1].as_str(), v(1), None)]),
            vec![leaf.clone()],
            b,
        ),
    );
    // The baseline without its left subtree.
    let mut t = b.tree();
    t.blocks.remove(0);
    add("missing-node", signed_repo(&t));
    let mut t = b.tree();
    t.blocks.pop();
    add("missing-record", signed_repo(&t));
    // 201 entries in one node (the cap is 200).
    let many: Vec<String> = (0..201).map(|i| key_on_layer(0, "", i)).collect();
    let entries: Vec<FullEntry<'_>> = many.iter().map(|k| (k.as_str(), v(0), None)).collect();
    add("too-many-entries", one_node_repo(node_full(None, &entries), vec![], b));
    // Three layers; the test walks this file with a depth cap of 2.
    let low = key_on_layer(0, "", 0);
    let mid = key_on_layer(1, &low, 0);
    let top = key_on_layer(2, &mid, 0);
    let l0 = node_full(None, &[(low.as_str(), v(0), None)]);
    let l1 = node_full(Some(&cid(DAG_CBOR, &l0)), &[(mid.as_str(), v(1), None)]);
    add(
        "deeper-than-cap",
        one_node_repo(
            node_full(Some(&cid(DAG_CBOR, &l1)), &[(top.as_str(), v(2), None)]),
            vec![l0, l1],
            b,
        ),
    );
    // The DAG bomb: layers 0..=5, every link of a node to the same child,
    // six keys per node: 7^5 visits for a naive walker, 6 blocks here.
    let mut child: Option<Vec<u8>> = None;
    let mut nodes = Vec::new();
    for layer in 0..=5u8 {
        let keys: Vec<String> = (0..6).map(|i| key_on_layer(layer, "", i)).collect();
        let entries: Vec<FullEntry<'_>> =
            keys.iter().map(|k| (k.as_str(), v(0), child.clone())).collect();
        let bytes = node_full(child.as_deref(), &entries);
        child = Some(cid(DAG_CBOR, &bytes));
        nodes.push(bytes);
    }
    let root = nodes.pop().expect("nodes");
    add("shared-child-dag-bomb", one_node_repo(root, nodes, b));
    // A record that is not valid DRISL (a float).
    let float_record =
        [map(2), text("n"), vec![0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], text("$type"), text("x.y.z")]
            .concat();
    let mut t = Tree { root: vec![], blocks: vec![] };
    let fr = t.add(float_record);
    t.root = t.add(node_full(None, &[(k[0].as_str(), fr, None)]));
    add("record-with-a-float", signed_repo(&t));

    // The four cases of atproto#5429, which the TypeScript reference
    // accepted.
    add(
        "atproto5429-unnormalized-nsid",
        one_node_repo(
            node(None, &[e(0, b"COM.Example.record/3jzfcijpj2z2a", None, v(0))]),
            vec![],
            b,
        ),
    );
    // The baseline with its right subtree's node claiming a key of the
    // wrong layer (a layer-1 key one layer too low).
    let wrong = key_on_layer(1, &k[2], 0);
    let right = node_full(None, &[(k[3].as_str(), v(3), None), (wrong.as_str(), v(4), None)]);
    let left = node_full(None, &[(k[0].as_str(), v(0), None), (k[1].as_str(), v(1), None)]);
    add(
        "atproto5429-key-on-wrong-layer",
        one_node_repo(
            node_full(
                Some(&cid(DAG_CBOR, &left)),
                &[(k[2].as_str(), v(2), Some(cid(DAG_CBOR, &right)))],
            ),
            vec![left.clone(), right],
            b,
        ),
    );
    // A right subtree holding a key below its parent's key.
    let below = node_full(None, &[(k[1].as_str(), v(1), None)]);
    let left0 = node_full(None, &[(k[0].as_str(), v(0), None)]);
    add(
        "atproto5429-right-subtree-key-below-bound",
        one_node_repo(
            node_full(
                Some(&cid(DAG_CBOR, &left0)),
                &[(k[2].as_str(), v(2), Some(cid(DAG_CBOR, &below)))],
            ),
            vec![left0, below],
            b,
        ),
    );
    let shared = k[0].bytes().zip(k[1].bytes()).take_while(|(a, b)| a == b).count();
    assert!(shared > 5);
    add(
        "atproto5429-prefix-not-longest",
        one_node_repo(
            node(
                None,
                &[e(0, k[0].as_bytes(), None, v(0)), e(5, &k[1].as_bytes()[5..], None, v(1))],
            ),
            vec![],
            b,
        ),
    );
}

fn keys(c: &mut Corpus) {
    let k256 = SigningKey::from_seed(Curve::K256, b"corpus k256").expect("seeded key");
    let p256 = SigningKey::from_seed(Curve::P256, b"corpus p256").expect("seeded key");
    let k256_did = k256.public_key().to_did_key();
    let p256_did = p256.public_key().to_did_key();
    let message = b"atrepo malformed corpus";

    // The same key as a 65-byte uncompressed SEC1 point.
    let uncompressed = {
        use k256::elliptic_curve::sec1::ToSec1Point;
        let point = k256::PublicKey::from_sec1_bytes(&k256.public_key().to_compressed())
            .expect("a valid key");
        point.to_sec1_point(false).as_bytes().to_vec()
    };
    assert_eq!(uncompressed.len(), 65);
    let legacy = format!("z{}", base58(&uncompressed));
    c.add("keys/uncompressed-k256.txt", did_key(K256_CODEC, &uncompressed));
    // x = 5 is not on secp256k1 (5^3 + 7 = 132 is not a square mod p).
    let mut off = vec![0x02];
    off.extend([0u8; 31]);
    off.push(5);
    c.add("keys/point-off-curve.txt", did_key(K256_CODEC, &off));
    // The point at infinity has no compressed form; 33 zero bytes.
    c.add("keys/identity-point.txt", did_key(P256_CODEC, &[0u8; 33]));
    c.add("keys/ed25519-multicodec.txt", did_key(&[0xed, 0x01], &[7u8; 32]));
    c.add(
        "keys/wrong-multibase-base16.txt",
        format!(
            "did:key:f{}",
            hex(&[&[0xe7, 0x01][..], &k256.public_key().to_compressed()].concat())
        ),
    );
    c.add("keys/invalid-base58-character.txt", format!("{}0OIl", &k256_did[..20]));
    c.add("keys/key-too-short.txt", did_key(K256_CODEC, &k256.public_key().to_compressed()[..32]));

    let k_sig = k256.sign(message).expect("signing works");
    let p_sig = p256.sign(message).expect("signing works");
    c.add("keys/k256-signature-against-p256-key.txt", sig_case(&p256_did, message, &k_sig));
    let mut r0 = p_sig;
    r0[..32].fill(0);
    c.add("keys/r-zero.txt", sig_case(&p256_did, message, &r0));
    let mut s0 = p_sig;
    s0[32..].fill(0);
    c.add("keys/s-zero.txt", sig_case(&p256_did, message, &s0));
    let s_n = [&p_sig[..32], &P256_N[..]].concat();
    c.add("keys/s-equals-n.txt", sig_case(&p256_did, message, &s_n));
    c.add("keys/p256-high-s.txt", sig_case(&p256_did, message, &high_s(&p_sig, &P256_N)));
    c.add("keys/k256-high-s.txt", sig_case(&k256_did, message, &high_s(&k_sig, &K256_N)));
    c.add("keys/der-signature.txt", sig_case(&k256_did, message, &der(&k_sig)));
    c.add("keys/legacy-uncompressed-not-enabled.txt", format!("legacy k256 {legacy}\n"));
}

fn events(c: &mut Corpus) -> Result<()> {
    use atrepo::event::CommitEventBuilder;
    use atrepo::mst::Builder;
    use atrepo::store::MemoryStore;

    // A valid event from our builder; the cases then change one field in
    // place (same length), so the commit block no longer matches it.
    let store = MemoryStore::new();
    let empty = Builder::new().build(&store, std::iter::empty::<(&str, _)>())?;
    let rev = Tid::from_parts((NOW_SECS - 60) * 1_000_000, 0).expect("a valid timestamp");
    let built = CommitEventBuilder::new(&store, DID, empty, rev)
        .put("com.example.record/3jzfcijpj2z2a", record(1))
        .build(&key())?;
    let body = built.body;
    let replace = |from: &[u8], to: &[u8]| {
        assert_eq!(from.len(), to.len());
        let at = body.windows(from.len()).position(|w| w == from).expect("field in the event");
        let mut out = body.clone();
        out[at..at + to.len()].copy_from_slice(to);
        out
    };
    c.add(
        "commit/event-did-mismatch.event",
        replace(DID.as_bytes(), b"did:plc:malformedcorpus99999"),
    );
    let other_rev = Tid::from_parts((NOW_SECS - 120) * 1_000_000, 0).expect("a valid timestamp");
    c.add(
        "commit/event-rev-mismatch.event",
        replace(rev.to_string().as_bytes(), other_rev.to_string().as_bytes()),
    );
    Ok(())
}
