//! Round-trip properties: sign then verify, commit encode then decode, key
//! to did:key and back, TID to string and back.

use atrepo_verify::{
    Commit, CommitOptions, Curve, Error, KeyOptions, PublicKey, SigningKey, Tid, UnsignedCommit,
};
use proptest::prelude::*;

use crate::common::node;

fn curve() -> impl Strategy<Value = Curve> {
    prop_oneof![Just(Curve::K256), Just(Curve::P256)]
}

fn signer() -> impl Strategy<Value = SigningKey> {
    (curve(), prop::collection::vec(any::<u8>(), 0..32))
        .prop_map(|(curve, seed)| SigningKey::from_seed(curve, &seed).unwrap())
}

/// DIDs of the shapes atproto uses, and a few odd but valid ones.
fn did() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z2-7]{24}".prop_map(|id| format!("did:plc:{id}")),
        "[a-z0-9]{1,20}(\\.[a-z0-9]{1,10}){1,3}".prop_map(|host| format!("did:web:{host}")),
        "[a-z]{1,8}:[a-zA-Z0-9._:%-]{0,40}[a-zA-Z0-9._-]".prop_map(|rest| format!("did:{rest}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_then_verify(signer in signer(), message in prop::collection::vec(any::<u8>(), 0..300)) {
        let public = signer.public_key();
        let sig = signer.sign(&message).unwrap();
        // verify() refuses high-S, so passing also shows the signature is low-S.
        prop_assert_eq!(public.verify(&message, &sig), Ok(()));
        let mut other = message.clone();
        other.push(0);
        prop_assert_eq!(
            public.verify(&other, &sig),
            Err(Error::BadSignature { curve: signer.curve(), key: public.to_did_key() })
        );
    }

    #[test]
    fn key_to_did_key_and_back(signer in signer()) {
        let public = signer.public_key();
        let did_key = public.to_did_key();
        let prefix = match public.curve() {
            Curve::K256 => "did:key:zQ3s",
            Curve::P256 => "did:key:zDna",
        };
        prop_assert!(did_key.starts_with(prefix));
        let parsed = PublicKey::from_did_key(&did_key).unwrap();
        prop_assert_eq!(&parsed, &public);
        prop_assert_eq!(parsed.to_did_key(), did_key);
        prop_assert_eq!(PublicKey::from_multikey(&public.to_multikey()).unwrap(), public.clone());
        let legacy = public.to_legacy_multibase();
        let parsed = PublicKey::from_legacy_multibase(public.curve(), &legacy, &KeyOptions::default());
        prop_assert_eq!(parsed.unwrap(), public);
    }

    #[test]
    fn commit_encode_then_decode(
        signer in signer(),
        did in did(),
        data in any::<[u8; 8]>(),
        rev in any::<u64>(),
        prev in proptest::option::of(any::<[u8; 8]>()),
    ) {
        let rev = Tid::from_u64(rev);
        let prev = prev.map(|p| node(&p));
        let unsigned = UnsignedCommit::new(&did, node(&data), rev, prev).unwrap();
        let commit = unsigned.clone().sign(&signer).unwrap();
        let bytes = commit.to_cbor();
        let decoded = Commit::decode(&bytes, &CommitOptions::default()).unwrap();
        prop_assert_eq!(&decoded, &commit);
        prop_assert_eq!(decoded.to_cbor(), bytes);
        prop_assert_eq!(decoded.unsigned_bytes(), unsigned.to_cbor());
        prop_assert_eq!(decoded.did(), did.as_str());
        prop_assert_eq!(decoded.rev(), Some(rev));
        prop_assert_eq!(decoded.prev(), prev.as_ref());
        prop_assert_eq!(decoded.verify(&signer.public_key()), Ok(()));
    }

    #[test]
    fn tid_to_string_and_back(a in any::<u64>(), b in any::<u64>()) {
        let (ta, tb) = (Tid::from_u64(a), Tid::from_u64(b));
        let (sa, sb) = (ta.to_string(), tb.to_string());
        prop_assert_eq!(Tid::parse(&sa), Ok(ta));
        prop_assert_eq!(a.cmp(&b), sa.cmp(&sb));
        prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let options = CommitOptions::default().allow_v2(true);
        if let Ok(commit) = Commit::decode(&bytes, &options) {
            prop_assert_eq!(commit.to_cbor(), bytes);
        }
    }

    #[test]
    fn fuzz_bodies_hold_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        use atrepo_verify::internal::fuzzing;
        fuzzing::commit_decode(&bytes);
        fuzzing::verify_commit(&bytes);
        fuzzing::did_key(&bytes);
        fuzzing::syntax(&bytes);
    }

    #[test]
    fn did_key_parse_never_panics(s in "did:key:z[1-9A-HJ-NP-Za-km-z]{0,100}") {
        if let Ok(key) = PublicKey::from_did_key(&s) {
            prop_assert_eq!(key.to_did_key(), s);
        }
    }
}

#[test]
fn fuzz_bodies_hold_on_valid_input() {
    use atrepo_verify::internal::fuzzing;
    for curve in [Curve::K256, Curve::P256] {
        let signer = SigningKey::from_seed(curve, b"fuzz").unwrap();
        let commit = crate::common::signed_commit(&signer).to_cbor();
        fuzzing::commit_decode(&commit);
        let mut framed = vec![u8::try_from(commit.len()).unwrap()];
        framed.extend(&commit);
        framed.extend(signer.sign(b"fuzz").unwrap());
        fuzzing::verify_commit(&framed);
        let public = signer.public_key();
        for s in [public.to_did_key(), public.to_multikey(), public.to_legacy_multibase()] {
            fuzzing::did_key(s.as_bytes());
        }
    }
    for s in ["app.bsky.feed.post/3jzfcijpj2z2a", "did:plc:abc", "john.test", "3jzfcijpj2z2a"] {
        fuzzing::syntax(s.as_bytes());
    }
}

#[test]
fn commit_cid_is_over_the_signed_bytes() {
    let signer = SigningKey::from_seed(Curve::K256, b"cid").unwrap();
    let commit = crate::common::signed_commit(&signer);
    let expected = crate::common::cid(0x71, &commit.to_cbor());
    assert_eq!(commit.cid(), expected);
}
