//! The `Display` text of every error variant, as insta snapshots: one line
//! per variant with its class, so a change of wording shows up in review.

use std::time::Duration;

use atrepo_verify::drisl::{DecodeError, Problem};
use atrepo_verify::syntax::{self, Kind, SyntaxError};
use atrepo_verify::{Curve, Error, Tid};

fn every_variant() -> Vec<Error> {
    let tid = Tid::parse("3jzfcijpj2z2a").unwrap();
    let later = Tid::parse("3jzfcijpj2z2b").unwrap();
    vec![
        Error::NotDidKey { found: "did:web:example.com".to_owned() },
        Error::MultibasePrefix { found: Some('f') },
        Error::MultibasePrefix { found: None },
        Error::Base58 { offset: 3, found: '0' },
        Error::KeyTooLong { limit: 128, found: 200 },
        Error::Multicodec,
        Error::UnsupportedKeyType { codec: 0xed },
        Error::UncompressedKey { curve: Curve::K256 },
        Error::KeyLength { curve: Curve::P256, found: 32 },
        Error::LegacyKeyLength { curve: Curve::K256, found: 64, uncompressed: true },
        Error::LegacyKeyLength { curve: Curve::K256, found: 64, uncompressed: false },
        Error::MultikeyInLegacyMethod { curve: Curve::P256 },
        Error::InvalidPoint { curve: Curve::K256 },
        Error::SecretKey { curve: Curve::P256 },
        Error::SignatureLength { found: 63 },
        Error::DerSignature { found: 71 },
        Error::ZeroScalar { part: "r" },
        Error::ScalarOutOfRange { part: "s", curve: Curve::P256 },
        Error::HighS { curve: Curve::P256 },
        Error::BadSignature {
            curve: Curve::K256,
            key: "did:key:zQ3shPaEZ5BYv2WyjEJ8uwRHPjYZmQByxnJ24vjUFCb11ZuBQ".to_owned(),
        },
        Error::Signing { curve: Curve::K256 },
        Error::Cbor { error: DecodeError { offset: 42, problem: Problem::Float } },
        Error::UnknownField { field: "tag".to_owned() },
        Error::MissingField { field: "prev" },
        Error::UnsupportedVersion { expected: "3", found: 2 },
        Error::InvalidField { field: "rev", error: syntax::tid("2024").unwrap_err() },
        Error::CommitCodec {
            cid: "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity".to_owned(),
            codec: 0x55,
        },
        Error::NotACommit {
            cid: "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm".to_owned(),
            error: Box::new(Error::UnknownField { field: "e".to_owned() }),
        },
        Error::UnblessedLink {
            field: "data",
            found: "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity".to_owned(),
        },
        Error::RevNotAfter { rev: tid, previous: later },
        Error::RevInFuture {
            rev: later,
            ahead: Duration::from_secs(360),
            tolerance: Duration::from_secs(300),
        },
        Error::KeyNotFound { did: "did:plc:abc".to_owned() },
    ]
}

#[test]
fn error_display() {
    let text: String = every_variant().iter().map(|e| format!("[{}] {e}\n", e.kind())).collect();
    insta::assert_snapshot!("error_display", text);
}

#[test]
fn syntax_error_display() {
    let cases: [(Kind, Result<(), SyntaxError>); 10] = [
        (Kind::Did, syntax::did("did:plc:abc%")),
        (Kind::Nsid, syntax::nsid("com.example")),
        (Kind::RecordKey, syntax::record_key("..")),
        (Kind::Tid, syntax::tid("kjzfcijpj2z2a")),
        (Kind::RepoPath, syntax::repo_path("app.bsky.feed.post/a/b")),
        (Kind::Handle, syntax::handle("john..test")),
        (Kind::AtUri, syntax::at_uri("at://did:plc:a/")),
        (Kind::AtIdentifier, syntax::at_identifier("@handle")),
        (Kind::Datetime, syntax::datetime("1985-04-12T23:20:50.123-00:00")),
        (Kind::CidString, syntax::cid_string("cid:bafy")),
    ];
    let mut text = String::new();
    for (kind, result) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.kind, kind);
        text.push_str(&format!("{err}\n"));
    }
    insta::assert_snapshot!("syntax_error_display", text);
}
