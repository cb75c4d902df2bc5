//! The malformed-input table: hand-assembled CARs (built from
//! `docs/formats.md`, not from our writer), each with the exact outcome
//! every reader must give: how many blocks it yields, then either a clean
//! end or one error variant with all its fields.
//!
//! Each row is its own `#[test]`; `cases()` lists the same rows as data for
//! the snapshot in `errors.rs`.

use atrepo_car::{CidMode, CidProblem, HashCheck, Item, Limit, Limits, Options, VarintError};

use crate::common::*;

/// One row of the table.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) input: Vec<u8>,
    pub(crate) options: Options,
    pub(crate) blocks: usize,
    pub(crate) end: Result<(), E>,
}

/// Reads `input` through every reader and asserts the outcome: `blocks`
/// blocks, then `end`.
#[track_caller]
fn check(input: &[u8], options: Options, blocks: usize, end: &Result<(), E>) {
    let got = read_all(input, options);
    assert_eq!(&got.end, end, "how the read ended");
    assert_eq!(got.blocks.len(), blocks, "blocks yielded before the end");
}

macro_rules! table {
    ($( $(#[doc = $doc:literal])* $name:ident: $input:expr, $options:expr => $blocks:expr, $end:expr; )*) => {
        $(
            $(#[doc = $doc])*
            #[test]
            fn $name() {
                let input: Vec<u8> = $input;
                check(&input, $options, $blocks, &$end);
            }
        )*

        /// Every row, as data.
        pub(crate) fn cases() -> Vec<Case> {
            vec![$(Case {
                name: stringify!($name),
                input: $input,
                options: $options,
                blocks: $blocks,
                end: $end,
            }),*]
        }
    };
}

/// Length of `framed(&header())`: one varint byte and 58 header bytes.
const H: u64 = 59;
/// Length of `good(b"a")`: varint, 36-byte CID, one data byte.
const GOOD_A: u64 = 38;
/// The default section cap.
const MAX_SECTION: u64 = Limits::DEFAULT_MAX_SECTION_LEN;

fn strict() -> Options {
    Options::default()
}

fn permissive() -> Options {
    Options::default().cid_mode(CidMode::Permissive)
}

fn limits(l: Limits) -> Options {
    Options::default().limits(l)
}

fn hdr() -> Vec<u8> {
    framed(&header())
}

/// `varint(len) header` for a header body given as parts.
fn hdr_of(parts: &[&[u8]]) -> Vec<u8> {
    framed(&cat(parts))
}

/// A header with `n` distinct blessed roots.
fn header_with_roots(n: usize) -> Vec<u8> {
    let roots: Vec<Vec<u8>> = (0..n).map(|i| blessed(&[i as u8])).collect();
    framed(&header_with(&roots, 1))
}

fn truncated(item: Item, offset: u64, section: Option<u64>, needed: u64) -> Result<(), E> {
    Err(E::Truncated { item, offset, section, needed })
}

fn bad_varint(
    item: Item,
    offset: u64,
    section: Option<u64>,
    problem: VarintError,
) -> Result<(), E> {
    Err(E::Varint { item, offset, section, problem })
}

fn bad_cid(offset: u64, section: Option<u64>, problem: CidProblem) -> Result<(), E> {
    Err(E::InvalidCid { offset, section, problem })
}

fn bad_header(offset: u64, expected: &'static str) -> Result<(), E> {
    Err(E::InvalidHeader { offset, expected })
}

fn over(limit: Limit, max: u64, found: u64, offset: u64, section: Option<u64>) -> Result<(), E> {
    Err(E::LimitExceeded { limit, max, found, offset, section })
}

fn mismatch(offset: u64, section: u64, claimed: &[u8], computed: &[u8]) -> Result<(), E> {
    Err(E::HashMismatch {
        offset,
        section,
        claimed: Box::new(cid(claimed)),
        computed: Box::new(cid(computed)),
    })
}

/// A section claiming the CID of `claimed` but holding `data`.
fn lying(claimed: &[u8], data: &[u8]) -> Vec<u8> {
    section(&blessed(claimed), data)
}

/// The first `n` bytes of `v`.
fn cut(v: &[u8], n: usize) -> Vec<u8> {
    v[..n].to_vec()
}

/// `v` without its last `n` bytes.
fn chop(v: &[u8], n: usize) -> Vec<u8> {
    v[..v.len() - n].to_vec()
}

/// A 32-byte digest that is no hash of anything here.
const D32: [u8; 32] = [0xab; 32];

table! {
    // ---- Truncation, at each kind of position --------------------------

    /// Nothing at all: not even a header length.
    empty_input: Vec::new(), strict() => 0, truncated(Item::HeaderLength, 0, None, 1);
    /// The header length varint has its continuation bit set, then ends.
    truncated_in_header_length: vec![0xba], strict() => 0,
        truncated(Item::HeaderLength, 0, None, 1);
    /// Only the header length.
    truncated_after_header_length: cut(&hdr(), 1), strict() => 0,
        truncated(Item::Header, 0, None, 58);
    /// The header is cut inside its roots array.
    truncated_in_header: cut(&hdr(), 20), strict() => 0,
        truncated(Item::Header, 0, None, 39);
    /// The header's length is honest, but its CBOR promises two roots and
    /// holds one: the header ends where the second root should be.
    header_promises_roots_then_ends:
        hdr_of(&[b"\xa2", ROOTS_KEY, b"\x82", &link(&blessed(b"root"))]), strict() => 0,
        bad_header(50, "a CID link (tag 42 as 0xd8 0x2a)");
    /// A section length varint cut after its first byte.
    truncated_in_section_length: cat(&[&hdr(), &[0x80]]), strict() => 0,
        truncated(Item::SectionLength, H, Some(0), 1);
    /// A section cut inside its CID.
    truncated_in_cid: cat(&[&hdr(), &cut(&good(b"a"), 11)]), strict() => 0,
        truncated(Item::Section, H, Some(0), GOOD_A - 11);
    /// A section cut inside its block bytes.
    truncated_in_block: cat(&[&hdr(), &chop(&good(b"abcdef"), 2)]), strict() => 0,
        truncated(Item::Section, H, Some(0), 2);
    /// A good section, then one cut short: the first is still yielded.
    truncated_in_second_section: cat(&[&car(&[b"a"]), &chop(&good(b"bb"), 1)]), strict() => 1,
        truncated(Item::Section, H + GOOD_A, Some(1), 1);

    // ---- Varints ------------------------------------------------------

    /// Header length 58 written as `ba 00`.
    header_length_not_minimal: cat(&[&[0xba, 0x00], &header()]), strict() => 0,
        bad_varint(Item::HeaderLength, 0, None, VarintError::NotMinimal);
    /// Section length 38 written as `a6 80 00`.
    section_length_not_minimal:
        cat(&[&hdr(), &[0xa6, 0x80, 0x00], &good(b"a")[1..]]), strict() => 0,
        bad_varint(Item::SectionLength, H, Some(0), VarintError::NotMinimal);
    /// A ten-byte header length.
    header_length_ten_bytes: cat(&[&[0xff; 9], &[0x01], &header()]), strict() => 0,
        bad_varint(Item::HeaderLength, 0, None, VarintError::TooLong);
    /// Section length 2^63 needs ten bytes: refused as a varint.
    section_length_two_pow_63: cat(&[&hdr(), &[0x80; 9], &[0x01]]), strict() => 0,
        bad_varint(Item::SectionLength, H, Some(0), VarintError::TooLong);
    /// A ninth byte with its continuation bit set, at the end of the input.
    section_length_ninth_byte_continues: cat(&[&hdr(), &[0xff; 9]]), strict() => 0,
        bad_varint(Item::SectionLength, H, Some(0), VarintError::TooLong);

    // ---- Huge lengths and limits ---------------------------------------

    /// 2^63 - 1, the largest nine-byte varint: refused by the section cap
    /// before anything is read or allocated.
    section_length_two_pow_63_minus_1: cat(&[&hdr(), &[0xff; 8], &[0x7f]]), strict() => 0,
        over(Limit::SectionLength, MAX_SECTION, (1 << 63) - 1, H, Some(0));
    /// One byte over the section cap, with no bytes after it.
    section_length_over_cap: cat(&[&hdr(), &varint(MAX_SECTION + 1)]), strict() => 0,
        over(Limit::SectionLength, MAX_SECTION, MAX_SECTION + 1, H, Some(0));
    /// Exactly the cap is allowed: the input then ends, so it is truncated.
    section_length_at_cap_then_ends: cat(&[&hdr(), &varint(MAX_SECTION), b"abc"]), strict() => 0,
        truncated(Item::Section, H, Some(0), MAX_SECTION + 4 - 7);
    /// A configured section cap.
    section_length_over_custom_cap: car(&[b"a"]), limits(Limits::default().max_section_len(36))
        => 0, over(Limit::SectionLength, 36, 37, H, Some(0));
    /// One byte over the header cap.
    header_length_over_cap: varint(4097), strict() => 0,
        over(Limit::HeaderLength, 4096, 4097, 0, None);
    /// A configured header cap one byte under the header.
    header_length_over_custom_cap: car(&[]), limits(Limits::default().max_header_len(57)) => 0,
        over(Limit::HeaderLength, 57, 58, 0, None);
    /// Seventeen roots; the default allows sixteen.
    too_many_roots: header_with_roots(17), strict() => 0,
        over(Limit::Roots, 16, 17, 9, None);
    /// Sixteen roots are fine.
    sixteen_roots: header_with_roots(16), strict() => 0, Ok(());
    /// Three blocks where two are allowed: two are yielded first.
    max_blocks_exceeded: car(&[b"a", b"b", b"c"]), limits(Limits::default().max_blocks(2)) => 2,
        over(Limit::Blocks, 2, 3, H + 2 * GOOD_A, Some(2));
    /// A CAR one byte larger than allowed: refused at the last section.
    max_total_bytes_exceeded: car(&[b"a", b"b"]),
        limits(Limits::default().max_total_bytes(H + 2 * GOOD_A - 1)) => 1,
        over(Limit::TotalBytes, H + 2 * GOOD_A - 1, H + 2 * GOOD_A, H + GOOD_A, Some(1));
    /// The total cap applies to the header too.
    max_total_bytes_below_header: car(&[]), limits(Limits::default().max_total_bytes(10)) => 0,
        over(Limit::TotalBytes, 10, H, 0, None);
    /// A CAR of exactly the total cap is fine.
    max_total_bytes_exact: car(&[b"a"]), limits(Limits::default().max_total_bytes(H + GOOD_A))
        => 1, Ok(());

    // ---- Header --------------------------------------------------------

    /// A header length of zero.
    header_length_zero: cat(&[&[0x00], &good(b"a")]), strict() => 0,
        bad_header(1, "a non-empty header");
    /// The header is an array, not a map.
    header_not_a_map: hdr_of(&[b"\x82\x80\x01"]), strict() => 0,
        bad_header(1, "a map with keys roots and version");
    /// `version: 2`.
    header_version_2: framed(&header_with(&[blessed(b"root")], 2)), strict() => 0,
        Err(E::UnsupportedVersion { offset: 58, found: 2 });
    /// A CARv2 file: the pragma `0a a1 67 "version" 02`, then the v2 header.
    carv2_pragma: cat(&[b"\x0a\xa1\x67version\x02", &[0; 40]]), strict() => 0,
        Err(E::UnsupportedVersion { offset: 10, found: 2 });
    /// `roots: []`.
    empty_roots: hdr_of(&[b"\xa2", ROOTS_KEY, b"\x80", VERSION_KEY, b"\x01"]), strict() => 0,
        Err(E::NoRoots { offset: 8 });
    /// `roots: [1]`.
    roots_not_cids: hdr_of(&[b"\xa2", ROOTS_KEY, b"\x81\x01", VERSION_KEY, b"\x01"]), strict()
        => 0, bad_header(9, "a CID link (tag 42 as 0xd8 0x2a)");
    /// `roots: <link>`, a link instead of an array of them.
    roots_not_an_array:
        hdr_of(&[b"\xa2", ROOTS_KEY, &link(&blessed(b"root")), VERSION_KEY, b"\x01"]), strict()
        => 0, bad_header(8, "an array of roots");
    /// Tag 42 over the bare CID, without the `00` multibase prefix.
    root_without_00_prefix: hdr_of(&[
        b"\xa2", ROOTS_KEY, b"\x81\xd8\x2a\x58\x24", &blessed(b"root"), VERSION_KEY, b"\x01",
    ]), strict() => 0, bad_header(11, "a CID byte string starting with 0x00");
    /// Tag 42 written with a two-byte argument (`d9 00 2a`).
    root_tag_not_minimal: hdr_of(&[
        b"\xa2", ROOTS_KEY, b"\x81\xd9\x00\x2a\x58\x25\x00", &blessed(b"root"), VERSION_KEY, b"\x01",
    ]), strict() => 0, bad_header(9, "a CID link (tag 42 as 0xd8 0x2a)");
    /// A root byte string with a byte after the CID.
    root_with_trailing_byte: hdr_of(&[
        b"\xa2", ROOTS_KEY, b"\x81\xd8\x2a\x58\x26\x00", &blessed(b"root"), b"\x00",
        VERSION_KEY, b"\x01",
    ]), strict() => 0, bad_header(50, "the end of the CID byte string");
    /// `version` before `roots`: not canonical order.
    header_keys_out_of_order: hdr_of(&[
        b"\xa2", VERSION_KEY, b"\x01", ROOTS_KEY, b"\x81", &link(&blessed(b"root")),
    ]), strict() => 0, bad_header(11, "keys roots then version, once each");
    /// A third key.
    header_extra_key: hdr_of(&[
        b"\xa3", ROOTS_KEY, b"\x81", &link(&blessed(b"root")), VERSION_KEY, b"\x01", b"\x61x\x01",
    ]), strict() => 0, bad_header(1, "a map with keys roots and version");
    /// `version` but no `roots`.
    header_without_roots: hdr_of(&[b"\xa1", VERSION_KEY, b"\x01"]), strict() => 0,
        bad_header(1, "a roots key");
    /// Bytes after the map, inside the declared header length.
    header_trailing_bytes: framed(&cat(&[&header(), b"\x00"])), strict() => 0,
        bad_header(59, "the end of the header");
    /// `version: 1` written as `18 01`.
    header_version_not_minimal: hdr_of(&[
        b"\xa2", ROOTS_KEY, b"\x81", &link(&blessed(b"root")), VERSION_KEY, b"\x18\x01",
    ]), strict() => 0, bad_header(58, "a minimally encoded CBOR length");
    /// An indefinite-length map.
    header_indefinite_map: hdr_of(&[
        b"\xbf", ROOTS_KEY, b"\x81", &link(&blessed(b"root")), VERSION_KEY, b"\x01", b"\xff",
    ]), strict() => 0, bad_header(1, "a definite-length CBOR item");

    // ---- CIDs ----------------------------------------------------------

    /// A CIDv0 in a section, strict mode.
    v0_in_section_strict: cat(&[&hdr(), &section(&v0(b"a"), b"a")]), strict() => 0,
        bad_cid(H + 1, Some(0), CidProblem::V0);
    /// A CIDv0 in a section, permissive mode: accepted and hashed.
    v0_in_section_permissive: cat(&[&hdr(), &section(&v0(b"a"), b"a")]), permissive() => 1,
        Ok(());
    /// A CIDv0 in a section, permissive mode, that does not match its block.
    v0_in_section_permissive_mismatch: cat(&[&hdr(), &section(&v0(b"a"), b"b")]), permissive()
        => 0, mismatch(H, 0, &v0(b"a"), &v0(b"b"));
    /// A CIDv0 root, strict mode.
    v0_in_roots_strict: framed(&header_with(&[v0(b"root")], 1)), strict() => 0,
        bad_cid(14, None, CidProblem::V0);
    /// A CIDv0 root, permissive mode.
    v0_in_roots_permissive: cat(&[&framed(&header_with(&[v0(b"root")], 1)), &good(b"a")]),
        permissive() => 1, Ok(());
    /// An identity-hash CID, strict mode.
    identity_strict: cat(&[&hdr(), &section(&cid_v1(0x55, 0x00, b"abc"), b"abc")]), strict()
        => 0, bad_cid(H + 1, Some(0), CidProblem::HashFunction { found: 0x00 });
    /// An identity-hash CID, permissive mode: the block is its own digest.
    identity_permissive: cat(&[&hdr(), &section(&cid_v1(0x55, 0x00, b"abc"), b"abc")]),
        permissive() => 1, Ok(());
    /// An identity-hash CID whose block is not its digest.
    identity_permissive_mismatch:
        cat(&[&hdr(), &section(&cid_v1(0x55, 0x00, b"abc"), b"abd")]), permissive() => 0,
        mismatch(H, 0, &cid_v1(0x55, 0x00, b"abc"), &cid_v1(0x55, 0x00, b"abd"));
    /// A blake3 (0x1e) CID, strict mode.
    blake3_strict: cat(&[&hdr(), &section(&cid_v1(0x71, 0x1e, &D32), b"a")]), strict() => 0,
        bad_cid(H + 1, Some(0), CidProblem::HashFunction { found: 0x1e });
    /// A blake3 CID, permissive mode with hashing on: atrepo cannot hash it,
    /// so it cannot vouch for it.
    blake3_permissive: cat(&[&hdr(), &section(&cid_v1(0x71, 0x1e, &D32), b"a")]), permissive()
        => 0, bad_cid(H + 1, Some(0), CidProblem::HashFunction { found: 0x1e });
    /// A blake3 CID, permissive mode with hashing explicitly off.
    blake3_permissive_unchecked: cat(&[&hdr(), &section(&cid_v1(0x71, 0x1e, &D32), b"a")]),
        permissive().hash_check(HashCheck::Unchecked) => 1, Ok(());
    /// A dag-pb (0x70) CID, strict mode.
    dag_pb_strict: cat(&[&hdr(), &section(&cid_v1(0x70, 0x12, &sha256(b"a")), b"a")]), strict()
        => 0, bad_cid(H + 1, Some(0), CidProblem::Codec { found: 0x70 });
    /// A dag-pb CID, permissive mode.
    dag_pb_permissive: cat(&[&hdr(), &section(&cid_v1(0x70, 0x12, &sha256(b"a")), b"a")]),
        permissive() => 1, Ok(());
    /// An unknown codec (0x300001, a three-byte varint), strict mode.
    unknown_codec_strict:
        cat(&[&hdr(), &section(&cid_v1(0x30_0001, 0x12, &sha256(b"a")), b"a")]), strict() => 0,
        bad_cid(H + 1, Some(0), CidProblem::Codec { found: 0x30_0001 });
    /// A sha2-256 CID with a 31-byte digest.
    digest_length_31: cat(&[&hdr(), &section(&cid_v1(0x71, 0x12, &D32[..31]), b"a")]), strict()
        => 0, bad_cid(H + 1, Some(0), CidProblem::DigestLength { expected: 32, found: 31 });
    /// A sha2-256 CID with a 33-byte digest.
    digest_length_33: cat(&[&hdr(), &section(&cid_v1(0x71, 0x12, &[0xab; 33]), b"a")]), strict()
        => 0, bad_cid(H + 1, Some(0), CidProblem::DigestLength { expected: 32, found: 33 });
    /// A digest longer than any supported hash, permissive mode.
    digest_too_long: cat(&[&hdr(), &section(&cid_v1(0x71, 0x1e, &[0xab; 65]), b"a")]),
        permissive() => 0, bad_cid(H + 1, Some(0), CidProblem::DigestTooLong { found: 65 });
    /// A sha2-512 CID, permissive mode: hashed and accepted.
    sha2_512_permissive: {
        let digest = <sha2::Sha512 as sha2::Digest>::digest(b"a");
        cat(&[&hdr(), &section(&cid_v1(0x71, 0x13, &digest), b"a")])
    }, permissive() => 1, Ok(());
    /// A CID version 2.
    cid_version_2: cat(&[&hdr(), &section(b"\x02\x71\x12\x20", &D32)]), strict() => 0,
        bad_cid(H + 1, Some(0), CidProblem::Version { found: 2 });
    /// A codec varint `f1 00` (0x71, not minimal) inside a CID.
    cid_varint_not_minimal: cat(&[&hdr(), &section(b"\x01\xf1\x00\x12\x20", &D32)]), strict()
        => 0, bad_cid(H + 1, Some(0), CidProblem::Varint(VarintError::NotMinimal));
    /// A ten-byte codec varint inside a CID.
    cid_varint_too_long: cat(&[&hdr(), &section(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0x01], &D32)]), strict() => 0,
        bad_cid(H + 1, Some(0), CidProblem::Varint(VarintError::TooLong));
    /// A section shorter than a CID.
    section_shorter_than_cid: cat(&[&hdr(), &framed(&blessed(b"a")[..20])]), strict() => 0,
        bad_cid(H + 1, Some(0), CidProblem::Truncated);
    /// A section of length zero.
    section_length_zero: cat(&[&hdr(), &[0x00]]), strict() => 0,
        bad_cid(H + 1, Some(0), CidProblem::Truncated);

    // ---- Block integrity -----------------------------------------------

    /// A block that does not hash to its CID: the error names both CIDs.
    hash_mismatch: cat(&[&hdr(), &lying(b"claimed", b"actual")]), strict() => 0,
        mismatch(H, 0, &blessed(b"claimed"), &blessed(b"actual"));
    /// A mismatch in the second section, after a good one.
    hash_mismatch_second_section: cat(&[&car(&[b"a"]), &lying(b"x", b"y")]), strict() => 1,
        mismatch(H + GOOD_A, 1, &blessed(b"x"), &blessed(b"y"));
    /// A raw-codec mismatch: the computed CID keeps the raw codec.
    hash_mismatch_raw: cat(&[&hdr(), &section(&cid_v1(0x55, 0x12, &sha256(b"x")), b"y")]),
        strict() => 0,
        mismatch(H, 0, &cid_v1(0x55, 0x12, &sha256(b"x")), &cid_v1(0x55, 0x12, &sha256(b"y")));
    /// A mismatch read with hashing explicitly off: accepted, as asked.
    hash_mismatch_unchecked: cat(&[&hdr(), &lying(b"claimed", b"actual")]),
        strict().hash_check(HashCheck::Unchecked) => 1, Ok(());
    /// The same block twice: both are yielded (the spec says tolerate).
    duplicate_blocks: car(&[b"same", b"same"]), strict() => 2, Ok(());
    /// Blocks that nothing links to, not even the root: tolerated.
    unreferenced_blocks: car(&[b"x", b"y", b"z"]), strict() => 3, Ok(());
    /// A zero-length block under the CID of the empty string.
    zero_length_block: car(&[b""]), strict() => 1, Ok(());
    /// A raw-codec block.
    raw_codec_block: cat(&[&hdr(), &section(&cid_v1(0x55, 0x12, &sha256(b"r")), b"r")]),
        strict() => 1, Ok(());
    /// Only a header: a CAR with no blocks ends cleanly.
    header_only: hdr(), strict() => 0, Ok(());

    // ---- Trailing garbage after the last full section -------------------

    /// One byte, `0a`: a section length of 10 with nothing after it.
    trailing_1_byte: cat(&[&car(&[b"a"]), b"\x0a"]), strict() => 1,
        truncated(Item::Section, H + GOOD_A, Some(1), 10);
    /// Two bytes, `0d 0a`: a section length of 13 and one byte of it.
    trailing_2_bytes: cat(&[&car(&[b"a"]), b"\x0d\x0a"]), strict() => 1,
        truncated(Item::Section, H + GOOD_A, Some(1), 12);
    /// Two bytes, `ff ff`: an unfinished section length.
    trailing_2_bytes_in_varint: cat(&[&car(&[b"a"]), b"\xff\xff"]), strict() => 1,
        truncated(Item::SectionLength, H + GOOD_A, Some(1), 1);
    /// Five zero bytes of padding: a zero-length section, too short for a
    /// CID.
    trailing_5_bytes: cat(&[&car(&[b"a"]), &[0; 5]]), strict() => 1,
        bad_cid(H + GOOD_A + 1, Some(1), CidProblem::Truncated);
}

#[test]
fn the_layout_constants_hold() {
    assert_eq!(hdr().len() as u64, H);
    assert_eq!(header().len(), 58);
    assert_eq!(good(b"a").len() as u64, GOOD_A);
}

#[test]
fn the_table_is_big_and_its_names_unique() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len());
    // Both outcomes are represented.
    assert!(cases.iter().filter(|c| c.end.is_ok()).count() >= 10);
    assert!(cases.iter().filter(|c| c.end.is_err()).count() >= 30);
}

#[test]
fn duplicate_blocks_are_yielded_as_they_come() {
    let got = read_all(&car(&[b"same", b"other", b"same"]), strict());
    let cids: Vec<_> = got.blocks.iter().map(|b| b.0).collect();
    assert_eq!(cids[0], cids[2]);
    assert_ne!(cids[0], cids[1]);
    assert_eq!(got.blocks[0].1, b"same");
    assert_eq!(got.blocks[2].1, b"same");
    // Offsets and indexes still count the duplicate.
    assert_eq!(got.blocks[2].3, 2);
}

#[test]
fn the_zero_length_block_has_the_empty_string_cid() {
    let got = read_all(&car(&[b""]), strict());
    assert_eq!(got.blocks[0].0, cid(&blessed(b"")));
    assert!(got.blocks[0].1.is_empty());
}

#[test]
fn permissive_roots_keep_their_cid_version() {
    let input = framed(&header_with(&[v0(b"root"), blessed(b"two")], 1));
    let got = read_all(&input, permissive());
    let roots = got.roots.unwrap();
    assert_eq!(roots[0], cid(&v0(b"root")));
    assert_eq!(roots[0].version(), cid::Version::V0);
    assert_eq!(roots[1], cid(&blessed(b"two")));
}
