//! Snapshots of every error's message and class.

use atrepo_mst::Error;
use atrepo_verify::drisl::{DecodeError, Problem};

use crate::common::{cid_of, value};

#[test]
fn every_error_message() {
    let cid = cid_of(0x71, b"node");
    let key = "com.example.record/k1".to_owned();
    let errors = vec![
        Error::Decode { cid, error: DecodeError { offset: 7, problem: Problem::Float } },
        Error::TooManyEntries { cid, limit: 200, found: 201 },
        Error::FirstPrefixNotZero { cid, found: 3 },
        Error::PrefixTooLong { cid, index: 1, prefix: 30, previous_len: 21 },
        Error::PrefixNotLongest { cid, index: 1, prefix: 5, longest: 19 },
        Error::EmptyKey { cid, index: 0 },
        Error::KeyTooLong { cid, index: 0, len: 1100, limit: 1024 },
        Error::InvalidKey {
            cid,
            key: "no-slash".to_owned(),
            error: atrepo_verify::syntax::repo_path("no-slash").unwrap_err(),
        },
        Error::KeyNotUtf8 { cid, key: "\u{fffd}".to_owned() },
        Error::WrongLayer { cid, key: key.clone(), key_layer: 0, node_layer: 1 },
        Error::MixedLayers {
            cid,
            first: key.clone(),
            first_layer: 1,
            key: "com.example.record/k2".to_owned(),
            key_layer: 0,
        },
        Error::KeyOrder { cid, key: "com.example.record/a".to_owned(), previous: key.clone() },
        Error::DuplicateKey { cid, key: key.clone() },
        Error::NodeReachedTwice { cid },
        Error::EmptyNode { cid },
        Error::RootOnlyPointer { cid },
        Error::ChildBelowZero { cid },
        Error::TooDeep { cid, limit: 32 },
        Error::MissingNode { cid },
        Error::MissingRecord { key: key.clone(), cid: value(1) },
        Error::BadKey { key: String::new(), expected: "a non-empty key" },
        Error::BadValue { key: "com.example.record/a".to_owned(), value: cid_of(0x55, b"a") },
        Error::OpMismatch { key, expected: value(1).to_string(), found: "no value".to_owned() },
        Error::Store(atrepo_store::Error::ReadOnly { backend: "car" }),
    ];
    let text: Vec<String> = errors.iter().map(|e| format!("{}: {e}", e.kind())).collect();
    insta::assert_snapshot!(text.join("\n"));
}
