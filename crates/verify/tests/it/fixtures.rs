//! The atproto interop fixtures that concern this crate: signature vectors,
//! W3C did:key vectors and the identifier syntax files.
//!
//! Read from `$ATPROTO_INTEROP_TESTS` (or `interop-tests/fixtures`), never
//! copied into the repository. Missing fixtures fail the tests.

use std::path::PathBuf;

use atrepo_verify::syntax::{self, SyntaxError};
use atrepo_verify::{Curve, Error, KeyOptions, PublicKey, SigningKey};
use cid::multibase::Base;
use serde_json::Value;

use crate::common::hex_bytes;

fn fixtures() -> PathBuf {
    let dir = match std::env::var_os("ATPROTO_INTEROP_TESTS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop-tests/fixtures"),
    };
    assert!(
        dir.is_dir(),
        "atproto interop fixtures not found at {}: set ATPROTO_INTEROP_TESTS \
         (see DEVELOPERS.md, \"Interop fixtures\")",
        dir.display()
    );
    dir
}

fn json(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(rel)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn base64(s: &str) -> Vec<u8> {
    Base::Base64.decode(s).unwrap()
}

#[test]
fn signature_fixtures() {
    let rows = json("crypto/signature-fixtures.json");
    assert_eq!(rows.len(), 6);
    for row in rows {
        let s = |k: &str| row[k].as_str().unwrap();
        let curve = Curve::from_legacy_method_type(s("didDocSuite")).unwrap();
        assert_eq!(curve.jwt_alg(), s("algorithm"));
        let from_did = PublicKey::from_did_key(s("publicKeyDid")).unwrap();
        let from_multibase = PublicKey::from_legacy_multibase(
            curve,
            s("publicKeyMultibase"),
            &KeyOptions::default(),
        )
        .unwrap();
        assert_eq!(from_did, from_multibase);
        assert_eq!(from_did.curve(), curve);
        assert_eq!(from_did.to_did_key(), s("publicKeyDid"));
        assert_eq!(from_multibase.to_legacy_multibase(), s("publicKeyMultibase"));

        let message = base64(s("messageBase64"));
        let signature = base64(s("signatureBase64"));
        let result = from_did.verify(&message, &signature);
        let tags: Vec<&str> =
            row["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        match (row["validSignature"].as_bool().unwrap(), tags.as_slice()) {
            (true, []) => assert_eq!(result, Ok(()), "{}", s("comment")),
            (false, ["high-s"]) => assert_eq!(result, Err(Error::HighS { curve })),
            (false, ["der-encoded"]) => {
                assert_eq!(result, Err(Error::DerSignature { found: signature.len() }));
            }
            other => panic!("unexpected fixture shape {other:?}"),
        }
        // Signatures do not match other data.
        let short = from_did.verify(&message, &[1, 2, 3]);
        assert_eq!(short, Err(Error::SignatureLength { found: 3 }));
        if tags.is_empty() {
            let other = from_did.verify(&[1, 2, 3], &signature);
            assert_eq!(other, Err(Error::BadSignature { curve, key: from_did.to_did_key() }));
        }
    }
}

#[test]
fn w3c_did_key_vectors() {
    let mut count = 0;
    for (file, curve) in
        [("crypto/w3c_didkey_K256.json", Curve::K256), ("crypto/w3c_didkey_P256.json", Curve::P256)]
    {
        for row in json(file) {
            let secret = match (row.get("privateKeyBytesHex"), row.get("privateKeyBytesBase58")) {
                (Some(hex), _) => hex_bytes(hex.as_str().unwrap()),
                (_, Some(b58)) => Base::Base58Btc.decode(b58.as_str().unwrap()).unwrap(),
                _ => panic!("no private key in {row}"),
            };
            let expected = row["publicDidKey"].as_str().unwrap();
            let signer = SigningKey::from_bytes(curve, &secret).unwrap();
            assert_eq!(signer.public_key().to_did_key(), expected);
            let parsed = PublicKey::from_did_key(expected).unwrap();
            assert_eq!(parsed, signer.public_key());
            assert_eq!(parsed.to_did_key(), expected);
            count += 1;
        }
    }
    assert_eq!(count, 6);
}

/// The cases of a syntax fixture file: non-empty lines not starting with
/// `#`, kept exactly (surrounding spaces are part of some cases).
fn lines(rel: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("syntax").join(rel)).unwrap();
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

#[track_caller]
fn check_file(stem: &str, validate: fn(&str) -> Result<(), SyntaxError>) {
    let valid = lines(&format!("{stem}_syntax_valid.txt"));
    let invalid = lines(&format!("{stem}_syntax_invalid.txt"));
    assert!(!valid.is_empty() && !invalid.is_empty());
    for case in &valid {
        assert_eq!(validate(case), Ok(()), "{stem} should accept {case:?}");
    }
    for case in &invalid {
        assert!(validate(case).is_err(), "{stem} should refuse {case:?}");
    }
}

#[test]
fn syntax_fixtures() {
    check_file("did", syntax::did);
    check_file("nsid", syntax::nsid);
    check_file("recordkey", syntax::record_key);
    check_file("tid", syntax::tid);
    check_file("handle", syntax::handle);
    check_file("atidentifier", syntax::at_identifier);
    check_file("aturi", syntax::at_uri);
    check_file("datetime", syntax::datetime);
    check_file("cid", syntax::cid_string);
    for case in lines("datetime_parse_invalid.txt") {
        assert!(syntax::datetime(&case).is_err(), "datetime should refuse {case:?}");
    }
    // Every valid TID also parses to a value that prints back the same.
    for case in lines("tid_syntax_valid.txt") {
        assert_eq!(atrepo_verify::Tid::parse(&case).unwrap().to_string(), case);
    }
}
