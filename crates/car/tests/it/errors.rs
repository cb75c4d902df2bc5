//! Error text and classes: `insta` snapshots of the `Display` text and
//! `kind()` of every error variant, one snapshot per area, each produced
//! from real input; and the accessors (`offset`, `section`, `is_*`)
//! checked against the fields for every row of the malformed table.

use std::io::{self, Read, Write};

use atrepo_car::{
    CarReader, CarSlice, CarWriter, CidMode, DAG_CBOR, Error, ErrorKind, HashCheck, Header, Limits,
    Options, blessed_cid,
};

use crate::common::*;
use crate::malformed::cases;

/// The first error reading `input` through the slice reader.
fn error_of(input: &[u8], options: Options) -> Error {
    match CarSlice::with_options(input, options) {
        Err(e) => e,
        Ok(slice) => {
            for frame in slice {
                if let Err(e) = frame {
                    return e;
                }
            }
            panic!("no error in {input:02x?}")
        }
    }
}

/// One snapshot line per error: what the input was, the class, the text.
fn lines(errors: &[(&str, Error)]) -> String {
    let mut out = String::new();
    for (what, e) in errors {
        out.push_str(&format!("{what}\n  kind: {}\n  text: {e}\n", e.kind()));
    }
    out
}

fn permissive() -> Options {
    Options::default().cid_mode(CidMode::Permissive)
}

fn hdr() -> Vec<u8> {
    framed(&header())
}

#[test]
fn framing_errors() {
    let s = Options::default();
    let errors = [
        ("empty input", error_of(&[], s)),
        ("header cut", error_of(&hdr()[..20], s)),
        ("section length cut", error_of(&cat(&[&hdr(), &[0x80]]), s)),
        ("section cut", error_of(&cat(&[&hdr(), &good(b"a")[..11]]), s)),
        ("header length not minimal", error_of(&[0xba, 0x00], s)),
        ("section length of ten bytes", error_of(&cat(&[&hdr(), &[0x80; 9], &[1]]), s)),
        ("header over its cap", error_of(&varint(4097), s)),
        ("seventeen roots", error_of(&framed(&header_with(&vec![blessed(b"r"); 17], 1)), s)),
        ("section over its cap", error_of(&cat(&[&hdr(), &varint(3 << 20)]), s)),
        (
            "total over its cap",
            error_of(&car(&[b"a"]), s.limits(Limits::default().max_total_bytes(64))),
        ),
        (
            "blocks over their cap",
            error_of(&car(&[b"a"]), s.limits(Limits::default().max_blocks(0))),
        ),
    ];
    insta::assert_snapshot!("framing", lines(&errors));
}

#[test]
fn header_errors() {
    let s = Options::default();
    let body = |parts: &[&[u8]]| framed(&cat(parts));
    let errors = [
        ("header length zero", error_of(&[0x00], s)),
        ("header not a map", error_of(&body(&[b"\x82\x80\x01"]), s)),
        (
            "roots not CIDs",
            error_of(&body(&[b"\xa2", ROOTS_KEY, b"\x81\x01", VERSION_KEY, b"\x01"]), s),
        ),
        ("version 2", error_of(&framed(&header_with(&[blessed(b"r")], 2)), s)),
        ("CARv2 pragma", error_of(b"\x0a\xa1\x67version\x02", s)),
        ("empty roots", error_of(&body(&[b"\xa2", ROOTS_KEY, b"\x80", VERSION_KEY, b"\x01"]), s)),
    ];
    insta::assert_snapshot!("header", lines(&errors));
}

#[test]
fn cid_errors() {
    let s = Options::default();
    let in_section = |cid: &[u8], opts| error_of(&cat(&[&hdr(), &section(cid, b"a")]), opts);
    let errors = [
        ("CIDv0 in a section", in_section(&v0(b"a"), s)),
        ("CIDv0 root", error_of(&framed(&header_with(&[v0(b"r")], 1)), s)),
        ("CID version 2", in_section(b"\x02\x71\x12\x20", s)),
        ("dag-pb codec", in_section(&cid_v1(0x70, 0x12, &sha256(b"a")), s)),
        ("identity hash", in_section(&cid_v1(0x55, 0x00, b"a"), s)),
        ("blake3 in permissive mode", in_section(&cid_v1(0x71, 0x1e, &[1; 32]), permissive())),
        ("31-byte sha2-256 digest", in_section(&cid_v1(0x71, 0x12, &[1; 31]), s)),
        ("65-byte digest", in_section(&cid_v1(0x71, 0x1e, &[1; 65]), permissive())),
        ("section shorter than a CID", error_of(&cat(&[&hdr(), &framed(&blessed(b"a")[..20])]), s)),
        ("codec varint not minimal", in_section(b"\x01\xf1\x00", s)),
        (
            "codec varint of ten bytes",
            in_section(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1], s),
        ),
    ];
    insta::assert_snapshot!("cid", lines(&errors));
}

#[test]
fn verification_errors() {
    let errors = [
        (
            "blessed CID",
            error_of(
                &cat(&[&hdr(), &section(&blessed(b"claimed"), b"actual")]),
                Options::default(),
            ),
        ),
        (
            "identity CID",
            error_of(&cat(&[&hdr(), &section(&cid_v1(0x55, 0x00, b"abc"), b"abd")]), permissive()),
        ),
    ];
    insta::assert_snapshot!("verification", lines(&errors));
}

/// A source or sink that fails with `ConnectionReset` after `ok` bytes.
#[derive(Debug)]
struct Failing {
    data: Vec<u8>,
    ok: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let n = buf.len().min(self.ok).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data.drain(..n);
        self.ok -= n;
        Ok(n)
    }
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let n = buf.len().min(self.ok);
        self.ok -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn io_errors() {
    let car = car(&[b"a", b"b"]);
    let read_header = CarReader::new(Failing { data: car.clone(), ok: 10 }).unwrap_err();
    let mut reader = CarReader::new(Failing { data: car.clone(), ok: 70 }).unwrap();
    let read_block = reader.next_block().unwrap_err();

    let cid = blessed_cid(DAG_CBOR, b"a");
    let header = Header::new(vec![cid]).unwrap();
    let write_header = CarWriter::new(Failing { data: vec![], ok: 3 }, &header).unwrap_err();
    let mut writer = CarWriter::new(Failing { data: vec![], ok: 60 }, &header).unwrap();
    let write_block = writer.write(&cid, b"a").unwrap_err();

    let errors = [
        ("read failing in the header", read_header),
        ("read failing in a section", read_block),
        ("write failing in the header", write_header),
        ("write failing in a section", write_block),
    ];
    for (_, e) in &errors {
        // The cause is kept as the source, not flattened into the text.
        let source = std::error::Error::source(e).unwrap();
        assert_eq!(source.to_string(), io::Error::from(io::ErrorKind::ConnectionReset).to_string());
        assert!(e.is_io() && !e.is_malformed() && !e.is_verification());
    }
    insta::assert_snapshot!("io", lines(&errors));
}

/// The malformed table as `{case → outcome}`: the corpus at a glance.
#[test]
fn table_outcomes() {
    let mut out = String::new();
    for case in cases() {
        let (blocks, end) = blocks_then(&case.input, case.options);
        assert_eq!(blocks, case.blocks, "{}", case.name);
        let line = match end {
            Ok(()) => format!("{}: ok, blocks: {blocks}\n", case.name),
            Err(e) => format!("{}: blocks: {blocks}, then {} | {e}\n", case.name, e.kind()),
        };
        out.push_str(&line);
    }
    insta::assert_snapshot!("table", out);
}

/// How many blocks the slice reader yields from `input`, and how it ends.
fn blocks_then(input: &[u8], options: Options) -> (usize, Result<(), Error>) {
    let slice = match CarSlice::with_options(input, options) {
        Ok(slice) => slice,
        Err(e) => return (0, Err(e)),
    };
    let mut n = 0;
    for frame in slice {
        if let Err(e) = frame {
            return (n, Err(e));
        }
        n += 1;
    }
    (n, Ok(()))
}

/// For every error in the table, the accessors agree with the fields and
/// `kind()` puts it in the one class it belongs to.
#[test]
fn accessors_agree_with_the_fields() {
    for case in cases() {
        let Err(e) = blocks_then(&case.input, case.options).1 else { continue };
        let (offset, section, kind) = match E::from(&e) {
            E::Truncated { offset, section, .. }
            | E::Varint { offset, section, .. }
            | E::InvalidCid { offset, section, .. } => (offset, section, ErrorKind::Malformed),
            E::InvalidHeader { offset, .. }
            | E::UnsupportedVersion { offset, .. }
            | E::NoRoots { offset } => (offset, None, ErrorKind::Malformed),
            E::LimitExceeded { offset, section, .. } => (offset, section, ErrorKind::Limit),
            E::HashMismatch { offset, section, .. } => {
                (offset, Some(section), ErrorKind::Verification)
            }
            E::Io { offset, .. } => (offset, None, ErrorKind::Io),
        };
        assert_eq!(e.offset(), offset, "{}", case.name);
        assert_eq!(e.section(), section, "{}", case.name);
        assert_eq!(e.kind(), kind, "{}", case.name);
        assert_eq!(e.is_malformed(), kind == ErrorKind::Malformed, "{}", case.name);
        assert_eq!(e.is_verification(), kind == ErrorKind::Verification, "{}", case.name);
        assert_eq!(e.is_io(), kind == ErrorKind::Io, "{}", case.name);
    }
}

/// Verification is on and CIDs are strict unless the caller says otherwise.
#[test]
fn the_defaults_are_the_safe_ones() {
    let o = Options::default();
    assert_eq!(o.hash_check, HashCheck::Verify);
    assert_eq!(o.cid_mode, CidMode::Strict);
    assert_eq!(o.unchecked().hash_check, HashCheck::Unchecked);
    let bad = cat(&[&hdr(), &section(&blessed(b"claimed"), b"actual")]);
    assert!(error_of(&bad, o).is_verification());
    assert!(matches!(
        CarReader::new(&bad[..]).unwrap().next_block(),
        Err(Error::HashMismatch { .. })
    ));
}
