//! Synthetic signed repositories with realistic records, deterministic from
//! a seed: for tests, fixtures and benchmarks (`atrepo gen`).
//!
//! The mix follows what real Bluesky repositories hold: mostly likes, then
//! posts (some with replies, facets, or image embeds with blob links),
//! follows, reposts, a few blocks, and one profile. Record keys are TIDs
//! that increase over time, as a PDS writes them.

use std::collections::BTreeMap;

use atrepo_car::{DAG_CBOR, RAW, blessed_cid};
use atrepo_verify::drisl::Value;
use atrepo_verify::{Curve, SigningKey, Tid};

use crate::error::{Error, Result};
use crate::writer::RepoWriter;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GenOptions {
    /// How many records (the profile included).
    pub records: u64,
    /// The seed: the same seed gives the same repository, byte for byte.
    pub seed: u64,
    /// The signing key's curve.
    pub curve: Curve,
}

impl GenOptions {
    /// Returns these options generating `n` records.
    pub fn records(mut self, n: u64) -> Self {
        self.records = n;
        self
    }
    /// Returns these options with `seed`.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Returns these options signing with a key on `curve`.
    pub fn curve(mut self, curve: Curve) -> Self {
        self.curve = curve;
        self
    }
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { records: 1000, seed: 1, curve: Curve::K256 }
    }
}

/// A generated repository and the key that signed it.
#[derive(Debug)]
pub struct Generated {
    /// The repository's DID.
    pub did: String,
    /// The key that signed the commit.
    pub key: SigningKey,
    /// The commit's rev.
    pub rev: Tid,
    /// The records, ready to build or write.
    pub writer: RepoWriter,
}

/// A deterministic generator (SplitMix64): small, fast, and stable across
/// platforms and releases, which `rand` does not promise.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

const WORDS: &[&str] = &[
    "the", "a", "today", "atproto", "relay", "repo", "just", "shipped", "coffee", "morning",
    "thread", "about", "why", "this", "matters", "love", "new", "post", "feed", "sky", "blue",
    "open", "protocol", "data", "signed", "tree", "merkle", "search", "fast", "really", "think",
    "people", "with", "and", "for", "on", "in", "is", "it", "to", "of", "you", "me", "we",
    "weekend", "photo", "cat", "garden", "book", "reading", "music", "rust", "code", "bug",
];

/// A did:plc-shaped DID from a number.
fn did_from(rng: &mut Rng) -> String {
    let mut s = String::from("did:plc:");
    for _ in 0..24 {
        let i = usize::try_from(rng.below(26)).unwrap_or(0);
        s.push(char::from(b'a'.saturating_add(u8::try_from(i).unwrap_or(0))));
    }
    s
}

fn text(rng: &mut Rng, words: u64) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        let w = WORDS.get(usize::try_from(rng.below(WORDS.len() as u64)).unwrap_or(0));
        s.push_str(w.copied().unwrap_or("x"));
    }
    s
}

/// An RFC 3339 timestamp for `micros` after the epoch, as atproto writes
/// them (UTC, milliseconds).
fn datetime(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let millis = (micros / 1000) % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm), for dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<BTreeMap<_, _>>())
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn tid_string(micros: u64, clock: u16) -> String {
    Tid::from_parts(micros, clock).map(|t| t.to_string()).unwrap_or_default()
}

fn strong_ref(rng: &mut Rng, now: u64) -> Value {
    let did = did_from(rng);
    let cid = blessed_cid(DAG_CBOR, &rng.bytes(16));
    let rkey = tid_string(now.saturating_sub(rng.below(1 << 36)), 0);
    map(vec![
        ("cid", string(cid.to_string())),
        ("uri", string(format!("at://{did}/app.bsky.feed.post/{rkey}"))),
    ])
}

fn post(rng: &mut Rng, now: u64) -> Value {
    let words = 3 + rng.below(45);
    let body = text(rng, words);
    let mut pairs = vec![
        ("$type", string("app.bsky.feed.post")),
        ("text", string(body.clone())),
        ("langs", Value::Array(vec![string("en")])),
        ("createdAt", string(datetime(now))),
    ];
    if rng.below(4) == 0 {
        let root = strong_ref(rng, now);
        let parent = strong_ref(rng, now);
        pairs.push(("reply", map(vec![("root", root), ("parent", parent)])));
    }
    if rng.below(6) == 0 {
        let end = i64::try_from(body.len().min(12)).unwrap_or(0);
        let facet = map(vec![
            (
                "index",
                map(vec![("byteStart", Value::Integer(0)), ("byteEnd", Value::Integer(end))]),
            ),
            (
                "features",
                Value::Array(vec![map(vec![
                    ("$type", string("app.bsky.richtext.facet#link")),
                    ("uri", string("https://atproto.com/specs/repository")),
                ])]),
            ),
        ]);
        pairs.push(("facets", Value::Array(vec![facet])));
    }
    if rng.below(8) == 0 {
        let blob = blob(rng, "image/jpeg");
        let image = map(vec![("alt", string(text(rng, 4))), ("image", blob)]);
        pairs.push((
            "embed",
            map(vec![
                ("$type", string("app.bsky.embed.images")),
                ("images", Value::Array(vec![image])),
            ]),
        ));
    }
    map(pairs)
}

fn blob(rng: &mut Rng, mime: &str) -> Value {
    let size = i64::try_from(10_000 + rng.below(900_000)).unwrap_or(0);
    map(vec![
        ("$type", string("blob")),
        ("ref", Value::Link(blessed_cid(RAW, &rng.bytes(16)))),
        ("mimeType", string(mime)),
        ("size", Value::Integer(size)),
    ])
}

/// Shuffles `blocks` in place, deterministically from `seed` (xorshift64
/// and Fisher-Yates): the order of `atrepo gen --order shuffled`, for
/// inputs that are not in streaming order. The same seed always gives the
/// same order, so benchmarks and the command line make the same files.
pub fn shuffle_blocks<T>(blocks: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..blocks.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64).saturating_add(1)).unwrap_or(0);
        blocks.swap(i, j);
    }
}

/// Generates a repository of `options.records` records.
pub fn generate(options: &GenOptions) -> Result<Generated> {
    let mut rng = Rng(options.seed);
    let did = did_from(&mut rng);
    let key = SigningKey::from_seed(options.curve, &options.seed.to_le_bytes())?;
    let mut writer = RepoWriter::new(did.clone());

    // Start in May 2023.
    let mut now: u64 = 1_682_899_200_000_000;
    let profile = map(vec![
        ("$type", string("app.bsky.actor.profile")),
        ("displayName", string("Generated Example")),
        ("description", string(text(&mut rng, 20))),
        ("avatar", blob(&mut rng, "image/png")),
        ("createdAt", string(datetime(now))),
    ]);
    writer.insert_value("app.bsky.actor.profile/self", &profile)?;

    // Spread the records over at most two years, so that big repositories
    // still end in the past (a rev in the future does not verify).
    let span: u64 = 2 * 365 * 86_400 * 1_000_000;
    let max_gap = (span / options.records.max(1)).clamp(1_000, 600_000_000);
    for _ in 1..options.records {
        now = now.saturating_add(1 + rng.below(max_gap));
        let clock = u16::try_from(rng.below(1024)).unwrap_or(0);
        let rkey = tid_string(now, clock);
        let pick = rng.below(100);
        let (collection, record) = match pick {
            0..45 => {
                let subject = strong_ref(&mut rng, now);
                let v = map(vec![
                    ("$type", string("app.bsky.feed.like")),
                    ("subject", subject),
                    ("createdAt", string(datetime(now))),
                ]);
                ("app.bsky.feed.like", v)
            }
            45..70 => ("app.bsky.feed.post", post(&mut rng, now)),
            70..85 => {
                let v = map(vec![
                    ("$type", string("app.bsky.graph.follow")),
                    ("subject", string(did_from(&mut rng))),
                    ("createdAt", string(datetime(now))),
                ]);
                ("app.bsky.graph.follow", v)
            }
            85..97 => {
                let subject = strong_ref(&mut rng, now);
                let v = map(vec![
                    ("$type", string("app.bsky.feed.repost")),
                    ("subject", subject),
                    ("createdAt", string(datetime(now))),
                ]);
                ("app.bsky.feed.repost", v)
            }
            _ => {
                let v = map(vec![
                    ("$type", string("app.bsky.graph.block")),
                    ("subject", string(did_from(&mut rng))),
                    ("createdAt", string(datetime(now))),
                ]);
                ("app.bsky.graph.block", v)
            }
        };
        writer.insert_value(&format!("{collection}/{rkey}"), &record)?;
    }
    let rev = Tid::from_parts(now.saturating_add(1_000_000), 0)
        .ok_or_else(|| Error::Usage("generated timestamps left the TID range".to_owned()))?;
    Ok(Generated { did, key, rev, writer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_permutations_fixed_by_the_seed() {
        let sorted: Vec<u32> = (0..1000).collect();
        let mut a = sorted.clone();
        let mut b = sorted.clone();
        let mut c = sorted.clone();
        shuffle_blocks(&mut a, 42);
        shuffle_blocks(&mut b, 42);
        // Seeds differing only in their lowest bit give the same order
        // (the state starts at `seed | 1`, as it always has).
        shuffle_blocks(&mut c, 44);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, sorted);
        a.sort_unstable();
        assert_eq!(a, sorted);
        // The first positions of seed 1, which `atrepo gen --order shuffled`
        // and the benches' cached inputs depend on.
        let mut d: Vec<u32> = (0..8).collect();
        shuffle_blocks(&mut d, 1);
        assert_eq!(d, [4, 2, 5, 7, 0, 3, 6, 1]);
    }

    #[test]
    fn datetimes_are_rfc3339() {
        assert_eq!(datetime(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(datetime(1_682_899_200_123_000), "2023-05-01T00:00:00.123Z");
        assert!(atrepo_verify::syntax::datetime(&datetime(1_700_000_000_000_000)).is_ok());
    }

    #[test]
    fn same_seed_same_repository() {
        let options = GenOptions { records: 50, ..GenOptions::default() };
        let a = generate(&options).unwrap();
        let b = generate(&options).unwrap();
        let car_a = a.writer.to_car(&a.key, a.rev).unwrap();
        let car_b = b.writer.to_car(&b.key, b.rev).unwrap();
        assert_eq!(car_a, car_b);
        assert!(atrepo_verify::syntax::did(&a.did).is_ok());
        assert_eq!(a.writer.len(), 50);
    }
}
