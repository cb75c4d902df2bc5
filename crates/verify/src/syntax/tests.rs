//! Unit tests for the syntax validators: exact errors for each rule. The
//! interop fixtures (`syntax/*.txt`) run in `tests/it` and `interop-tests`.

use super::*;

fn err(kind: Kind, rule: &'static str, offset: Option<usize>, found: Option<char>) -> SyntaxError {
    SyntaxError { kind, rule, offset, found }
}

#[track_caller]
fn check(f: fn(&str) -> Result<(), SyntaxError>, input: &str, expected: Result<(), SyntaxError>) {
    assert_eq!(f(input), expected, "{input:?}");
}

#[test]
fn dids() {
    check(did, "did:plc:ewvi7nxzyoun6zhxrhs64oiz", Ok(()));
    check(did, "did:web:localhost%3A1234", Ok(()));
    check(did, "did:method:-:_:.:%ab", Ok(()));
    let k = Kind::Did;
    check(did, "DID:plc:x", Err(err(k, "expected the prefix \"did:\"", Some(0), None)));
    check(did, "did:plcx", Err(err(k, "expected \":\" after the did method", Some(8), None)));
    check(did, "did::x", Err(err(k, "expected a did method of lowercase letters", Some(4), None)));
    let upper = "expected a lowercase letter in the did method";
    check(did, "did:pLc:x", Err(err(k, upper, Some(5), Some('L'))));
    check(did, "did:plc:", Err(err(k, "expected a method-specific identifier", Some(8), None)));
    let chars = "expected a letter, digit or one of \"._:%-\"";
    check(did, "did:plc:a/b", Err(err(k, chars, Some(9), Some('/'))));
    check(did, "did:plc:é", Err(err(k, chars, Some(8), Some('é'))));
    let end = "expected the did not to end with \":\" or \"%\"";
    check(did, "did:plc:abc%", Err(err(k, end, Some(11), Some('%'))));
    let long = format!("did:plc:{}", "a".repeat(2041));
    check(did, &long, Err(err(k, "expected at most 2048 bytes", Some(2048), None)));
    check(did, &long[..2048], Ok(()));
}

#[test]
fn handles() {
    check(handle, "john.test", Ok(()));
    check(handle, "XX.LCS.MIT.EDU", Ok(()));
    check(handle, "4chan.org", Ok(()));
    let k = Kind::Handle;
    check(
        handle,
        "john",
        Err(err(k, "expected at least two labels separated by \".\"", None, None)),
    );
    let chars = "expected a letter, digit, hyphen or period";
    check(handle, "jo_hn.test", Err(err(k, chars, Some(2), Some('_'))));
    check(handle, "john..test", Err(err(k, "expected a non-empty label", Some(5), None)));
    let start = "expected a label not starting with a hyphen";
    check(handle, "-john.test", Err(err(k, start, Some(0), Some('-'))));
    let end = "expected a label not ending with a hyphen";
    check(handle, "john-.test", Err(err(k, end, Some(4), Some('-'))));
    let tld = "expected the last label to start with a letter";
    check(handle, "john.0", Err(err(k, tld, Some(5), Some('0'))));
    let label = format!("a.{}.test", "o".repeat(64));
    check(handle, &label, Err(err(k, "expected a label of at most 63 bytes", Some(2), None)));
}

#[test]
fn nsids() {
    check(nsid, "app.bsky.feed.post", Ok(()));
    check(nsid, "com.example.fooBarV2", Ok(()));
    check(nsid, "one.2.three", Ok(()));
    check(nsid, "Com.Example.foo", Ok(()));
    let k = Kind::Nsid;
    let three = "expected at least three segments separated by \".\"";
    check(nsid, "com.example", Err(err(k, three, None, None)));
    check(nsid, "example", Err(err(k, three, None, None)));
    let first = "expected the first segment to start with a letter";
    check(nsid, "1.0.0.127.record", Err(err(k, first, Some(0), Some('1'))));
    let name_start = "expected the name to start with a letter";
    check(nsid, "com.example.2foo", Err(err(k, name_start, Some(12), Some('2'))));
    let name_chars = "expected only letters and digits in the name";
    check(nsid, "a-0.b-1.c-3", Err(err(k, name_chars, Some(9), Some('-'))));
    let chars = "expected a letter, digit, hyphen or period";
    check(nsid, "com.example.foo*", Err(err(k, chars, Some(15), Some('*'))));
    check(nsid, "com..foo", Err(err(k, "expected a non-empty label", Some(4), None)));
    check(nsid, "com.foo.", Err(err(k, "expected a non-empty name segment", Some(8), None)));
    let normal = "expected a lowercase (normalized) domain authority";
    check(nsid_normalized, "app.bsky.feed.post", Ok(()));
    check(nsid_normalized, "app.bsky.feed.POST", Ok(()));
    check(nsid_normalized, "app.Bsky.feed.post", Err(err(k, normal, Some(4), Some('B'))));
}

#[test]
fn record_keys() {
    for ok in ["self", "3jzfcijpj2z2a", "~1.2-3_", ":", "...", "lang:"] {
        check(record_key, ok, Ok(()));
    }
    let k = Kind::RecordKey;
    check(record_key, "", Err(err(k, "expected at least one byte", None, None)));
    let dots = "expected a record key other than \".\" and \"..\"";
    check(record_key, ".", Err(err(k, dots, None, None)));
    check(record_key, "..", Err(err(k, dots, None, None)));
    let chars = "expected a letter, digit or one of \"._~:-\"";
    check(record_key, "a/b", Err(err(k, chars, Some(1), Some('/'))));
    check(record_key, &"o".repeat(512), Ok(()));
    let long = "o".repeat(513);
    check(record_key, &long, Err(err(k, "expected at most 512 bytes", Some(512), None)));
}

#[test]
fn tids() {
    check(tid, "3jzfcijpj2z2a", Ok(()));
    let k = Kind::Tid;
    check(tid, "3jzfcijpj2z2", Err(err(k, "expected exactly 13 characters", None, None)));
    let chars = "expected a base32-sortable character (234567a-z)";
    check(tid, "3jzfcijpj2z21", Err(err(k, chars, Some(12), Some('1'))));
    check(tid, "3JZFCIJPJ2Z2A", Err(err(k, chars, Some(1), Some('J'))));
    let high = "expected a first character in 234567a-j (high bit clear)";
    check(tid, "kjzfcijpj2z2a", Err(err(k, high, Some(0), Some('k'))));
}

#[test]
fn repo_paths() {
    check(repo_path, "app.bsky.feed.post/3jzfcijpj2z2a", Ok(()));
    check(repo_path, "app.bsky.actor.profile/self", Ok(()));
    let k = Kind::RepoPath;
    let one = "expected \"collection/rkey\" with one \"/\"";
    check(repo_path, "app.bsky.feed.post", Err(err(k, one, None, None)));
    let two = "expected exactly one \"/\"";
    check(repo_path, "app.bsky.feed.post/a/b", Err(err(k, two, Some(20), Some('/'))));
    let normal = "expected a lowercase (normalized) domain authority";
    check(repo_path, "App.bsky.feed.post/a", Err(err(k, normal, Some(0), Some('A'))));
    let chars = "expected a letter, digit or one of \"._~:-\"";
    check(repo_path, "app.bsky.feed.post/a b", Err(err(k, chars, Some(20), Some(' '))));
    let dots = "expected a record key other than \".\" and \"..\"";
    check(repo_path, "app.bsky.feed.post/..", Err(err(k, dots, None, None)));
    let three = "expected at least three segments separated by \".\"";
    check(repo_path, "coll/rkey", Err(err(k, three, None, None)));

    check(repo_path_lax, "coll/rkey", Ok(()));
    check(repo_path_lax, "App.Bsky.feed.post/a:b", Ok(()));
    check(repo_path_lax, "com.example.record/..", Ok(()));
    check(repo_path_lax, "coll", Err(err(k, one, None, None)));
    check(repo_path_lax, "a/b/c", Err(err(k, two, Some(3), Some('/'))));
    let empty_left = "expected a non-empty collection before \"/\"";
    check(repo_path_lax, "/rkey", Err(err(k, empty_left, Some(0), None)));
    let empty_right = "expected a non-empty record key after \"/\"";
    check(repo_path_lax, "coll/", Err(err(k, empty_right, Some(5), None)));
    check(repo_path_lax, "co ll/rkey", Err(err(k, chars, Some(2), Some(' '))));
    let long = format!("c/{}", "o".repeat(1023));
    check(repo_path_lax, &long, Err(err(k, "expected at most 1024 bytes", Some(1024), None)));
}

#[test]
fn at_identifiers_and_uris() {
    check(at_identifier, "did:plc:abc", Ok(()));
    check(at_identifier, "john.test", Ok(()));
    let k = Kind::AtIdentifier;
    let three_parts = "expected \":\" after the did method";
    check(at_identifier, "did:thing", Err(err(k, three_parts, Some(9), None)));

    check(at_uri, "at://did:plc:asdf123/com.atproto.feed.post/record", Ok(()));
    check(at_uri, "at://user.bsky.social", Ok(()));
    let k = Kind::AtUri;
    check(at_uri, "AT://did:plc:a", Err(err(k, "expected the prefix \"at://\"", Some(0), None)));
    let trailing = "expected a collection nsid after \"/\"";
    check(at_uri, "at://did:plc:a/", Err(err(k, trailing, Some(15), None)));
    let segments = "expected at most two path segments";
    check(at_uri, "at://did:plc:a/a.b.c/r/x", Err(err(k, segments, Some(22), Some('/'))));
    let did_chars = "expected a letter, digit or one of \"._:%-\"";
    check(at_uri, "at://did:plc:a#frag", Err(err(k, did_chars, Some(14), Some('#'))));
    let rkey_chars = "expected a letter, digit or one of \"._~:-\"";
    check(at_uri, "at://did:plc:a/a.b.c/%23", Err(err(k, rkey_chars, Some(21), Some('%'))));
}

#[test]
fn datetimes() {
    for ok in [
        "1985-04-12T23:20:50.123Z",
        "1985-04-12T23:20:50Z",
        "1985-04-12T23:20:50.123+01:45",
        "2000-02-29T00:00:00Z",
        "0000-01-01T00:00:00.000Z",
        "0000-01-01T00:00:00-01:00",
        "9999-12-31T23:59:59+01:00",
    ] {
        check(datetime, ok, Ok(()));
    }
    let k = Kind::Datetime;
    let zone = "expected a time zone: \"Z\" or +hh:mm or -hh:mm";
    check(datetime, "1985-04-12T23:20:50.123", Err(err(k, zone, Some(23), None)));
    check(datetime, "1985-04-12T23:20:50.123z", Err(err(k, zone, Some(23), Some('z'))));
    let t = "expected \"T\" between date and time";
    check(datetime, "1985-04-12t23:20:50Z", Err(err(k, t, Some(10), Some('t'))));
    let utc = "expected \"+00:00\" or \"Z\" for utc, found \"-00:00\"";
    check(datetime, "1985-04-12T23:20:50-00:00", Err(err(k, utc, Some(19), None)));
    let frac = "expected at least one digit after \".\"";
    check(datetime, "1985-04-12T23:20:50.Z", Err(err(k, frac, Some(20), None)));
    let day = "expected a day that exists in the month";
    check(datetime, "1985-02-29T00:00:00Z", Err(err(k, day, Some(8), None)));
    check(datetime, "1900-02-29T00:00:00Z", Err(err(k, day, Some(8), None)));
    let month = "expected a month from 01 to 12";
    check(datetime, "1985-13-12T23:20:50Z", Err(err(k, month, Some(5), None)));
    let second = "expected seconds from 00 to 59";
    check(datetime, "1985-04-12T23:59:60Z", Err(err(k, second, Some(17), None)));
    let negative = "expected an instant at or after year 0000 in utc";
    check(datetime, "0000-01-01T00:00:00+01:00", Err(err(k, negative, None, None)));
    let past = "expected an instant before year 10000 in utc";
    check(datetime, "9999-12-31T23:30:00-01:00", Err(err(k, past, None, None)));
    let end = "expected the end of the datetime";
    check(datetime, "1985-04-12T23:20:50Z ", Err(err(k, end, Some(20), Some(' '))));
    let year = "expected a four-digit year";
    check(datetime, "+001985-04-12T23:20:50Z", Err(err(k, year, Some(0), Some('+'))));
}

#[test]
fn cid_strings() {
    check(cid_string, "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a", Ok(()));
    let k = Kind::CidString;
    check(cid_string, "12345", Err(err(k, "expected at least 8 characters", None, None)));
    let chars = "expected a letter, digit, \"+\" or \"=\"";
    check(cid_string, "cid:bafyrei", Err(err(k, chars, Some(3), Some(':'))));
    let v0 = "expected a CIDv1, found a CIDv0 (\"Qm\" prefix)";
    check(
        cid_string,
        "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR",
        Err(err(k, v0, Some(0), None)),
    );
}

#[test]
fn display() {
    let e = nsid("com.example.foo*").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid nsid at byte 15: expected a letter, digit, hyphen or period, found '*'"
    );
    let e = record_key("").unwrap_err();
    assert_eq!(e.to_string(), "invalid record key: expected at least one byte");
}

mod fast_paths {
    use proptest::prelude::*;

    use super::super::{
        check_repo_path_detailed, is_record_key, is_repo_path, nsid_fast, record_key,
    };

    /// The detailed NSID check, without its fast path.
    fn slow(b: &[u8], normalized: bool) -> bool {
        super::super::check_nsid_detailed(b, normalized).is_ok()
    }

    /// UTF-8 decoding and the detailed path check, without fast paths.
    fn slow_path(b: &[u8]) -> bool {
        std::str::from_utf8(b).is_ok() && check_repo_path_detailed(b).is_ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The one-pass NSID check accepts exactly what the detailed one
        /// accepts, on strings built from the characters that matter.
        #[test]
        fn nsid_fast_agrees(s in "[aZ0.-]{0,12}|([aB1-]{1,4}\\.){1,4}[aB1-]{0,4}", normalized in any::<bool>()) {
            prop_assert_eq!(nsid_fast(s.as_bytes(), normalized), slow(s.as_bytes(), normalized), "{:?}", s);
        }

        #[test]
        fn nsid_fast_agrees_on_lengths(a in 60usize..66, b in 60usize..66, n in 60usize..66) {
            let s = format!("{}.{}.{}", "a".repeat(a), "b".repeat(b), "c".repeat(n));
            prop_assert_eq!(nsid_fast(s.as_bytes(), true), slow(s.as_bytes(), true));
        }

        /// The one-pass path check accepts exactly what UTF-8 decoding and
        /// the detailed check accept.
        #[test]
        fn is_repo_path_agrees(
            s in "([aZ0.-]{0,6}){0,3}/?[aZ0.~:_/-]{0,6}|([aB1-]{1,4}\\.){1,4}[aB1-]{0,4}/[a.~:_/-]{0,4}|[a./ \u{e9}*]{0,12}",
        ) {
            prop_assert_eq!(is_repo_path(s.as_bytes()), slow_path(s.as_bytes()), "{:?}", s);
        }

        #[test]
        fn is_repo_path_agrees_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..24), prefix in any::<bool>()) {
            let b = if prefix { [b"app.bsky.feed.post/".as_slice(), &b].concat() } else { b };
            prop_assert_eq!(is_repo_path(&b), slow_path(&b), "{:?}", b);
        }

        #[test]
        fn is_record_key_agrees(b in proptest::collection::vec(any::<u8>(), 0..6), s in "[a.~:_/ -]{0,4}") {
            for b in [b.as_slice(), s.as_bytes()] {
                let slow = std::str::from_utf8(b).is_ok_and(|s| record_key(s).is_ok());
                prop_assert_eq!(is_record_key(b), slow, "{:?}", b);
            }
        }

        #[test]
        fn is_repo_path_agrees_on_lengths(collection in 315usize..320, rkey in 0usize..3) {
            let rkeys = ["a".repeat(512), "a".repeat(513), String::new()];
            let c = format!("a.b.{}", "c".repeat(collection.min(63)));
            let long = format!("{}.{}", "a".repeat(collection.saturating_sub(66)), c);
            for path in [format!("{c}/{}", rkeys[rkey]), format!("{long}/x")] {
                prop_assert_eq!(is_repo_path(path.as_bytes()), slow_path(path.as_bytes()), "{}", path);
            }
        }
    }
}
