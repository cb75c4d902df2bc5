//! Malformed and adversarial keys, signatures and commits. Each case
//! asserts the exact error variant it must produce, and its class.
#![allow(
    clippy::needless_pass_by_value,
    reason = "the table helpers read better taking the expected error by value"
)]

use atrepo_verify::drisl::{DecodeError, Problem};
use atrepo_verify::syntax::{Kind, SyntaxError};
use atrepo_verify::{
    Commit, CommitOptions, Curve, DEFAULT_FUTURE_TOLERANCE, Error, ErrorKind, FixedClock,
    KeyOptions, PublicKey, Tid,
};

use crate::common::*;

// ----- keys ------------------------------------------------------------------

#[track_caller]
fn did_key_err(did_key: &str, expected: Error) {
    let err = PublicKey::from_did_key(did_key).unwrap_err();
    assert_eq!(err, expected, "{did_key}");
    assert_eq!(err.kind(), ErrorKind::Malformed);
}

#[test]
fn uncompressed_did_key() {
    let point = key(Curve::K256, "a").public_key();
    let uncompressed = k256::ecdsa::VerifyingKey::from_sec1_bytes(&point.to_compressed())
        .unwrap()
        .to_sec1_point(false);
    let bytes = [&[0xe7, 0x01][..], uncompressed.as_bytes()].concat();
    assert_eq!(bytes.len(), 67);
    did_key_err(&did_key_of(&bytes), Error::UncompressedKey { curve: Curve::K256 });
}

#[test]
fn off_curve_points() {
    // x = 5 on k256 and x = 1 on p256 have no y on the curve.
    let mut k = vec![0xe7, 0x01, 0x02];
    k.extend([0u8; 31]);
    k.push(5);
    did_key_err(&did_key_of(&k), Error::InvalidPoint { curve: Curve::K256 });
    let mut p = vec![0x80, 0x24, 0x03];
    p.extend([0u8; 31]);
    p.push(1);
    did_key_err(&did_key_of(&p), Error::InvalidPoint { curve: Curve::P256 });
    // x above the field prime.
    let mut big = vec![0x80, 0x24, 0x02];
    big.extend([0xff; 32]);
    did_key_err(&did_key_of(&big), Error::InvalidPoint { curve: Curve::P256 });
}

#[test]
fn identity_point() {
    // SEC1 writes the point at infinity as the single byte 0x00.
    did_key_err(&did_key_of(&[0xe7, 0x01, 0x00]), Error::InvalidPoint { curve: Curve::K256 });
    let mut tagged = vec![0x80, 0x24];
    tagged.extend([0u8; 33]);
    did_key_err(&did_key_of(&tagged), Error::InvalidPoint { curve: Curve::P256 });
    // The legacy uncompressed form of (0, 0), which is not on either curve.
    let zeros = [&[0x04][..], &[0u8; 64]].concat();
    let legacy = cid::multibase::encode(cid::multibase::Base::Base58Btc, &zeros);
    let options = KeyOptions::default().legacy_uncompressed(true);
    for curve in [Curve::K256, Curve::P256] {
        let err = PublicKey::from_legacy_multibase(curve, &legacy, &options).unwrap_err();
        assert_eq!(err, Error::InvalidPoint { curve });
    }
}

#[test]
fn other_multicodecs() {
    // An ed25519 did:key (multicodec 0xed).
    did_key_err(
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        Error::UnsupportedKeyType { codec: 0xed },
    );
    // A secp256k1 private key multicodec (0x1301).
    let mut private = vec![0x81, 0x26];
    private.extend([1u8; 32]);
    did_key_err(&did_key_of(&private), Error::UnsupportedKeyType { codec: 0x1301 });
    // A truncated and a non-minimal varint.
    did_key_err(&did_key_of(&[0x80]), Error::Multicodec);
    did_key_err(&did_key_of(&[0xe7, 0x81, 0x00, 0x02]), Error::Multicodec);
}

#[test]
fn wrong_multibase_and_strings() {
    let good = key(Curve::P256, "a").public_key().to_multikey();
    let body = &good[1..];
    did_key_err(&format!("did:key:f{body}"), Error::MultibasePrefix { found: Some('f') });
    did_key_err(&format!("did:key:{body}"), Error::MultibasePrefix { found: Some('D') });
    did_key_err("did:key:", Error::MultibasePrefix { found: None });
    did_key_err("did:key:z0abc", Error::Base58 { offset: 1, found: '0' });
    did_key_err("did:key:zDna#frag", Error::Base58 { offset: 4, found: '#' });
    did_key_err(
        &format!("did:key:z{}", "1".repeat(200)),
        Error::KeyTooLong { limit: 128, found: 200 },
    );
    did_key_err(
        &format!("did:web:{body}"),
        Error::NotDidKey { found: format!("did:web:{body}")[..32].to_owned() },
    );
    // Key bytes of the wrong length.
    let mut short = vec![0xe7, 0x01, 0x02];
    short.extend([1u8; 31]);
    did_key_err(&did_key_of(&short), Error::KeyLength { curve: Curve::K256, found: 32 });
}

#[test]
fn legacy_uncompressed_multibase() {
    let signer = key(Curve::P256, "legacy");
    let public = signer.public_key();
    let uncompressed = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public.to_compressed())
        .unwrap()
        .to_sec1_point(false);
    let legacy = cid::multibase::encode(cid::multibase::Base::Base58Btc, uncompressed.as_bytes());
    // Not enabled: refused.
    let err =
        PublicKey::from_legacy_multibase(Curve::P256, &legacy, &KeyOptions::default()).unwrap_err();
    assert_eq!(err, Error::UncompressedKey { curve: Curve::P256 });
    // Enabled: the same key as the compressed form.
    let options = KeyOptions::default().legacy_uncompressed(true);
    let parsed = PublicKey::from_legacy_multibase(Curve::P256, &legacy, &options).unwrap();
    assert_eq!(parsed, public);
    // The compressed legacy form is always accepted, on the curve named.
    let compressed = public.to_legacy_multibase();
    let parsed =
        PublicKey::from_legacy_multibase(Curve::P256, &compressed, &KeyOptions::default()).unwrap();
    assert_eq!(parsed, public);
}

/// A review found a multikey in a legacy method refused as "expected a
/// 33-byte compressed key, found 35 bytes", and wrong lengths described
/// as if uncompressed keys were never accepted.
#[test]
fn legacy_multibase_errors_say_what_was_found() {
    let base58 = |b: &[u8]| cid::multibase::encode(cid::multibase::Base::Base58Btc, b);
    let on = KeyOptions::default().legacy_uncompressed(true);
    let off = KeyOptions::default();
    for curve in [Curve::K256, Curve::P256] {
        let public = key(curve, "legacy errors").public_key();
        let multikey = public.to_did_key().trim_start_matches("did:key:").to_owned();
        for options in [&on, &off] {
            let err = PublicKey::from_legacy_multibase(curve, &multikey, options).unwrap_err();
            assert_eq!(err, Error::MultikeyInLegacyMethod { curve });
            assert!(err.to_string().contains("its type should be Multikey"), "{err}");
        }
        let short = base58(&public.to_compressed()[..32]);
        let err = PublicKey::from_legacy_multibase(curve, &short, &on).unwrap_err();
        assert_eq!(err, Error::LegacyKeyLength { curve, found: 32, uncompressed: true });
        assert!(err.to_string().contains("compressed or 65-byte uncompressed"), "{err}");
        let err = PublicKey::from_legacy_multibase(curve, &short, &off).unwrap_err();
        assert!(!err.to_string().contains("uncompressed"), "{err}");
        // A hybrid (06) encoding: 65 bytes, not a point form we take.
        let mut hybrid = [0u8; 65];
        hybrid[0] = 0x06;
        let err = PublicKey::from_legacy_multibase(curve, &base58(&hybrid), &on).unwrap_err();
        assert_eq!(err, Error::InvalidPoint { curve });
    }
}

// ----- signatures ------------------------------------------------------------

#[track_caller]
fn sig_err(key: &PublicKey, msg: &[u8], sig: &[u8], expected: Error, kind: ErrorKind) {
    let err = key.verify(msg, sig).unwrap_err();
    assert_eq!(err, expected);
    assert_eq!(err.kind(), kind);
}

#[test]
fn signature_table() {
    let msg = b"hello world";
    for curve in [Curve::K256, Curve::P256] {
        let signer = key(curve, "sig");
        let public = signer.public_key();
        let sig = signer.sign(msg).unwrap();
        public.verify(msg, &sig).unwrap();

        // r = 0 and s = 0.
        let mut r0 = sig;
        r0[..32].fill(0);
        sig_err(&public, msg, &r0, Error::ZeroScalar { part: "r" }, ErrorKind::Malformed);
        let mut s0 = sig;
        s0[32..].fill(0);
        sig_err(&public, msg, &s0, Error::ZeroScalar { part: "s" }, ErrorKind::Malformed);

        // s >= n and r >= n.
        let mut s_n = sig;
        s_n[32..].copy_from_slice(&order(curve));
        let out_of_range = Error::ScalarOutOfRange { part: "s", curve };
        sig_err(&public, msg, &s_n, out_of_range, ErrorKind::Malformed);
        let mut s_max = sig;
        s_max[32..].fill(0xff);
        let out_of_range = Error::ScalarOutOfRange { part: "s", curve };
        sig_err(&public, msg, &s_max, out_of_range, ErrorKind::Malformed);
        let mut r_n = sig;
        r_n[..32].copy_from_slice(&order(curve));
        let out_of_range = Error::ScalarOutOfRange { part: "r", curve };
        sig_err(&public, msg, &r_n, out_of_range, ErrorKind::Malformed);

        // High-S: the same signature with s replaced by n - s. The p256
        // crate would accept it; atproto does not, on either curve.
        let high = flip_s(curve, &sig);
        sig_err(&public, msg, &high, Error::HighS { curve }, ErrorKind::Malformed);

        // DER, and compact signatures of the wrong length.
        let der = der(&sig);
        let found = der.len();
        sig_err(&public, msg, &der, Error::DerSignature { found }, ErrorKind::Malformed);
        let short = Error::SignatureLength { found: 63 };
        sig_err(&public, msg, &sig[..63], short, ErrorKind::Malformed);
        let long = [&sig[..], &[0]].concat();
        let long_err = Error::SignatureLength { found: 65 };
        sig_err(&public, msg, &long, long_err, ErrorKind::Malformed);
        sig_err(&public, msg, &[], Error::SignatureLength { found: 0 }, ErrorKind::Malformed);

        // Well-formed but wrong: another message, another key.
        let bad = Error::BadSignature { curve, key: public.to_did_key() };
        sig_err(&public, b"hello world!", &sig, bad, ErrorKind::Verification);
        let other = key(curve, "other").public_key();
        let bad = Error::BadSignature { curve, key: other.to_did_key() };
        sig_err(&other, msg, &sig, bad, ErrorKind::Verification);
    }
}

#[test]
fn k256_signature_against_p256_key() {
    let msg = b"hello world";
    let sig = key(Curve::K256, "k").sign(msg).unwrap();
    let p256 = key(Curve::P256, "k").public_key();
    let err = p256.verify(msg, &sig).unwrap_err();
    assert_eq!(err, Error::BadSignature { curve: Curve::P256, key: p256.to_did_key() });
    assert_eq!(err.kind(), ErrorKind::Verification);
}

// ----- commits ---------------------------------------------------------------

#[track_caller]
fn commit_err(bytes: &[u8], expected: Error) {
    let err = Commit::decode(bytes, &CommitOptions::default()).unwrap_err();
    assert_eq!(err, expected);
    assert_eq!(err.kind(), ErrorKind::Malformed);
}

/// The offset of the value of `name` in `map(entries)`.
fn value_at(entries: &[(&str, V<'_>)], name: &str) -> u64 {
    let i = entries.iter().position(|(k, _)| *k == name).unwrap();
    (map(&entries[..i]).len() + 1 + name.len()) as u64
}

fn cbor(offset: u64, problem: Problem) -> Error {
    Error::Cbor { error: DecodeError { offset, problem } }
}

#[test]
fn hand_built_commit_decodes() {
    // The helper builds exactly what the encoder writes.
    let signer = key(Curve::K256, "c");
    let commit = signed_commit(&signer);
    let bytes = map(&fields(commit.sig(), *commit.data()));
    assert_eq!(bytes, commit.to_cbor());
    let decoded = Commit::decode(&bytes, &CommitOptions::default()).unwrap();
    assert_eq!(decoded, commit);
    decoded.verify(&signer.public_key()).unwrap();
}

/// A commit block named by a CID (a CAR root, a `#sync`) must be named by
/// a dag-cbor CID: the same bytes under a raw CID are not the commit.
#[test]
fn a_commit_block_under_a_raw_cid_is_refused() {
    let commit = signed_commit(&key(Curve::K256, "c"));
    let bytes = commit.to_cbor();
    let options = CommitOptions::default();
    assert_eq!(Commit::decode_block(&commit.cid(), &bytes, &options).unwrap(), commit);
    let raw = cid::Cid::new_v1(0x55, *commit.cid().hash());
    let err = Commit::decode_block(&raw, &bytes, &options).unwrap_err();
    assert!(matches!(&err, Error::CommitCodec { codec: 0x55, .. }), "{err:?}");
    assert!(err.is_malformed());
}

/// A block of another shape named as the commit (an MST node, a record)
/// says so, naming the block, with the field that gave it away.
#[test]
fn a_block_that_is_not_a_commit_says_so() {
    let options = CommitOptions::default();
    let node = [0xa2, 0x61, b'e', 0x80, 0x61, b'l', 0xf6];
    let record = b"\xa1\x65$type\x71app.bsky.feed.post";
    // A feed generator record has a `did`, one of a commit's fields.
    let generator = map(&[
        ("did", V::Text("did:web:feed.example.com")),
        ("$type", V::Text("app.bsky.feed.generator")),
    ]);
    let empty = [0xa0];
    let cases = [
        (&node[..], "e"),
        (&record[..], "$type"),
        (&generator[..], "$type"),
        (&empty[..], "version"),
    ];
    for (bytes, field) in cases {
        let named = cid(0x71, bytes);
        let err = Commit::decode_block(&named, bytes, &options).unwrap_err();
        match &err {
            Error::NotACommit { cid: c, error } => {
                assert_eq!(*c, named.to_string());
                let found = match &**error {
                    Error::UnknownField { field } => field.as_str(),
                    Error::MissingField { field } => field,
                    other => panic!("{other:?}"),
                };
                assert_eq!(found, field);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_malformed());
        // Decoding bytes alone (no CID names them) keeps the field error.
        let plain = Commit::decode(bytes, &options).unwrap_err();
        assert!(matches!(plain, Error::UnknownField { .. } | Error::MissingField { .. }));
    }
}

#[test]
fn commit_table() {
    let sig = [7u8; 64];
    let data = node(b"data");
    let base = fields(&sig, data);
    let without = |name: &str| -> Vec<(&str, V<'_>)> {
        base.iter().filter(|(k, _)| *k != name).cloned().collect()
    };
    let with = |name: &str, v: V<'static>| -> Vec<(&str, V<'_>)> {
        base.iter().map(|(k, old)| (*k, if *k == name { v.clone() } else { old.clone() })).collect()
    };

    // Missing fields, prev included (it must be present, even if null).
    for field in ["did", "rev", "sig", "data", "prev", "version"] {
        commit_err(&map(&without(field)), Error::MissingField { field });
    }

    // Versions.
    commit_err(
        &map(&with("version", V::Uint(2))),
        Error::UnsupportedVersion { expected: "3", found: 2 },
    );
    commit_err(
        &map(&with("version", V::Uint(4))),
        Error::UnsupportedVersion { expected: "3", found: 4 },
    );

    // Non-blessed data links: raw codec, sha2-512, CIDv0.
    let unblessed = |found: cid::Cid, kind: &str| Problem::UnblessedLink {
        expected: "a CIDv1 dag-cbor sha2-256",
        found: format!("{found} ({kind})").into(),
    };
    let data_at = value_at(&base, "data");
    for (link, kind) in [
        (cid(0x55, b"raw"), "CIDv1, raw, sha2-256"),
        (
            cid::Cid::new_v1(0x71, cid::multihash::Multihash::wrap(0x13, &[1u8; 64]).unwrap()),
            "CIDv1, dag-cbor, hash 0x13 of 64 bytes",
        ),
        (cid::Cid::new_v0(*node(b"v0").hash()).unwrap(), "CIDv0"),
    ] {
        commit_err(&map(&with("data", V::Link(link))), cbor(data_at, unblessed(link, kind)));
    }

    // A float where version goes (3.0 as a float64).
    const FLOAT: &[u8] = &[0xfb, 0x40, 0x08, 0, 0, 0, 0, 0, 0];
    let bytes = map(&with("version", V::Raw(FLOAT)));
    commit_err(&bytes, cbor(bytes.len() as u64 - 9, Problem::Float));

    // A non-minimal integer.
    let bytes = map(&with("version", V::Raw(&[0x18, 0x03])));
    commit_err(&bytes, cbor(bytes.len() as u64 - 2, Problem::NotMinimal));

    // Trailing bytes.
    let mut bytes = map(&base);
    let end = bytes.len() as u64;
    bytes.push(0x00);
    commit_err(&bytes, cbor(end, Problem::TrailingBytes));

    // Unsorted keys: rev before did.
    let mut unsorted = base.clone();
    unsorted.swap(0, 1);
    let bytes = map(&unsorted);
    commit_err(&bytes, cbor(1 + 4 + 14, Problem::KeyOrder));

    // A duplicate key.
    let mut dup = base.clone();
    dup.insert(1, ("did", V::Text("did:plc:abc")));
    commit_err(&map(&dup), cbor(1 + 4 + 12, Problem::KeyOrder));

    // An extra key, in canonical position.
    let mut extra = base.clone();
    extra.insert(3, ("tag", V::Null));
    commit_err(&map(&extra), Error::UnknownField { field: "tag".to_owned() });

    // rev not a TID; did not a DID.
    let not_tid = SyntaxError {
        kind: Kind::Tid,
        rule: "expected exactly 13 characters",
        offset: None,
        found: None,
    };
    commit_err(
        &map(&with("rev", V::Text("2024-01-01"))),
        Error::InvalidField { field: "rev", error: not_tid },
    );
    let not_did = SyntaxError {
        kind: Kind::Did,
        rule: "expected the prefix \"did:\"",
        offset: Some(0),
        found: None,
    };
    commit_err(
        &map(&with("did", V::Text("alice.test"))),
        Error::InvalidField { field: "did", error: not_did },
    );

    // A field of the wrong type.
    let problem =
        Problem::Unexpected { expected: "a byte string", found: atrepo_verify::drisl::Kind::Text };
    let bytes = map(&with("sig", V::Text("sig")));
    commit_err(&bytes, cbor(value_at(&base, "sig"), problem));

    // Not a map at all.
    commit_err(
        &[0x80],
        cbor(
            0,
            Problem::Unexpected { expected: "a map", found: atrepo_verify::drisl::Kind::Array },
        ),
    );
}

#[test]
fn version_2_behind_the_option() {
    let sig = [7u8; 64];
    let v2: Vec<_> = fields(&sig, node(b"data"))
        .into_iter()
        .filter(|(k, _)| *k != "rev")
        .map(|(k, v)| if k == "version" { (k, V::Uint(2)) } else { (k, v) })
        .collect();
    let bytes = map(&v2);
    commit_err(&bytes, Error::UnsupportedVersion { expected: "3", found: 2 });
    let options = CommitOptions::default().allow_v2(true);
    let commit = Commit::decode(&bytes, &options).unwrap();
    assert_eq!((commit.version(), commit.rev()), (2, None));
    assert_eq!(commit.to_cbor(), bytes);
    let err = Commit::decode(&map(&fields(&sig, node(b"d"))[..5]), &options).unwrap_err();
    assert_eq!(err, Error::MissingField { field: "version" });
    let v4 = map(&[fields(&sig, node(b"d"))[..5].to_vec(), vec![("version", V::Uint(4))]].concat());
    let err = Commit::decode(&v4, &options).unwrap_err();
    assert_eq!(err, Error::UnsupportedVersion { expected: "2 or 3", found: 4 });
}

#[test]
fn rev_in_the_future() {
    let signer = key(Curve::K256, "future");
    let now = 1_700_000_000_000_000u64;
    let rev = Tid::from_parts(now + 6 * 60 * 1_000_000, 0).unwrap();
    let commit = atrepo_verify::UnsignedCommit::new("did:plc:abc", node(b"d"), rev, None)
        .unwrap()
        .sign(&signer)
        .unwrap();
    let decoded = Commit::decode(&commit.to_cbor(), &CommitOptions::default()).unwrap();
    decoded.verify(&signer.public_key()).unwrap();
    let clock = FixedClock::from_micros(now);
    let err =
        decoded.rev().unwrap().check_not_future(&clock, DEFAULT_FUTURE_TOLERANCE).unwrap_err();
    assert_eq!(
        err,
        Error::RevInFuture {
            rev,
            ahead: std::time::Duration::from_secs(360),
            tolerance: DEFAULT_FUTURE_TOLERANCE
        }
    );
    assert_eq!(err.kind(), ErrorKind::Verification);
}

#[test]
fn commit_signatures() {
    for curve in [Curve::K256, Curve::P256] {
        let signer = key(curve, "commit");
        let public = signer.public_key();
        let commit = signed_commit(&signer);
        let sig: [u8; 64] = commit.sig().try_into().unwrap();
        let data = *commit.data();
        let decode = |sig: &[u8]| {
            Commit::decode(&map(&fields(sig, data)), &CommitOptions::default()).unwrap()
        };
        decode(&sig).verify(&public).unwrap();
        let high = flip_s(curve, &sig);
        assert_eq!(decode(&high).verify(&public), Err(Error::HighS { curve }));
        let der = der(&sig);
        assert_eq!(decode(&der).verify(&public), Err(Error::DerSignature { found: der.len() }));
        assert_eq!(decode(&sig[..63]).verify(&public), Err(Error::SignatureLength { found: 63 }));
        let long = [&sig[..], &[1]].concat();
        assert_eq!(decode(&long).verify(&public), Err(Error::SignatureLength { found: 65 }));
        // Another MST root under the same signature.
        let tampered =
            Commit::decode(&map(&fields(&sig, node(b"other"))), &CommitOptions::default()).unwrap();
        let bad = Error::BadSignature { curve, key: public.to_did_key() };
        assert_eq!(tampered.verify(&public), Err(bad));
    }
}

#[test]
fn builder_refuses_bad_input() {
    let err = atrepo_verify::UnsignedCommit::new("did:plc:abc", cid(0x55, b"raw"), rev(), None)
        .unwrap_err();
    assert!(matches!(err, Error::UnblessedLink { field: "data", .. }));
    let err = atrepo_verify::UnsignedCommit::new(
        "did:plc:abc",
        node(b"d"),
        rev(),
        Some(cid(0x55, b"raw")),
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnblessedLink { field: "prev", .. }));
    let err = atrepo_verify::UnsignedCommit::new("did:plc:", node(b"d"), rev(), None).unwrap_err();
    assert!(matches!(err, Error::InvalidField { field: "did", .. }));
}
