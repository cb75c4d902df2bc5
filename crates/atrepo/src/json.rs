//! atproto data model values as JSON, in the DAG-JSON conventions atproto
//! uses: links as `{"$link": "<cid>"}`, bytes as
//! `{"$bytes": "<base64>"}` (standard alphabet, no padding).
//!
//! [`from_json`] and [`record_from_json`] read JSON into a
//! [`Value`], refusing what the data model
//! forbids; [`to_json`] writes a value back. `from_json(to_json(v)) == v`
//! for every value, and a value read from JSON encodes to the DRISL bytes
//! whose CID the interop fixtures give.
//!
//! Rules on the way in:
//!
//! - numbers must be integers in the signed 64-bit range; a float with an
//!   integer value (`123.0`) is read as that integer as long as it is
//!   exactly representable (at most 2^53 in magnitude), any other float is
//!   refused;
//! - an object with a `$link` key must have only that key, a string
//!   holding a CID in its canonical string form; likewise `$bytes` with
//!   unpadded standard base64 that re-encodes exactly;
//! - `$type`, where present, is a non-empty string, and an object whose
//!   `$type` is `"blob"` has a `ref` link, a `mimeType` string and a
//!   non-negative integer `size` (the rules `drisl::validate_record`
//!   applies to DRISL);
//! - nesting is bounded by [`Limits::max_depth`].

use std::collections::BTreeMap;

use cid::Cid;
use cid::multibase::Base;
use serde_json::{Map, Number};

use crate::verify::drisl::{Limits, Value};

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// JSON that is not an atproto data model value. `path` is a JSON Pointer
/// to the offending value (`""` is the top).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A number with a fractional part, or not finite.
    #[error("expected an integer at {path:?}, found a float")]
    Float {
        /// Where.
        path: String,
    },
    /// An integer outside the signed 64-bit range, or an integer-valued
    /// float too large to be exact.
    #[error("expected an integer within the signed 64-bit range at {path:?}, found {found}")]
    IntegerRange {
        /// Where.
        path: String,
        /// The number, as JSON wrote it.
        found: String,
    },
    /// A `$link` or `$bytes` object with other keys or a non-string value.
    #[error("expected {{\"{key}\": <string>}} with no other keys at {path:?}")]
    TypedObject {
        /// `$link` or `$bytes`.
        key: &'static str,
        /// Where.
        path: String,
    },
    /// A `$link` string that is not a CID in canonical string form.
    #[error("expected a cid in canonical string form at {path:?}, found {found:?}")]
    InvalidLink {
        /// Where.
        path: String,
        /// The string found (at most 100 bytes of it).
        found: String,
    },
    /// A `$bytes` string that is not unpadded standard base64.
    #[error("expected unpadded standard base64 at {path:?}")]
    InvalidBytes {
        /// Where.
        path: String,
    },
    /// A data model rule broken (`$type`, blob shape).
    #[error("data model violation at {path:?}: {rule}")]
    DataModel {
        /// Where.
        path: String,
        /// The rule.
        rule: &'static str,
    },
    /// A record whose top level is not an object.
    #[error("expected a json object at the top of a record, found {found}")]
    NotAnObject {
        /// The kind of JSON value found.
        found: &'static str,
    },
    /// Nesting deeper than the limit.
    #[error("nesting deeper than {limit} at {path:?}")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Where.
        path: String,
    },
}

/// Reads a record: a JSON object, converted by [`from_json`].
pub fn record_from_json(json: &serde_json::Value, limits: &Limits) -> Result<Value> {
    match json {
        serde_json::Value::Object(_) => from_json(json, limits),
        other => Err(Error::NotAnObject { found: kind(other) }),
    }
}

/// Reads any data model value from JSON, with the rules in the module
/// documentation.
pub fn from_json(json: &serde_json::Value, limits: &Limits) -> Result<Value> {
    let mut path = Vec::new();
    convert(json, limits, &mut path)
}

/// Writes a value as JSON: links as `{"$link": ...}` (CIDv1 in base32),
/// bytes as `{"$bytes": ...}` (unpadded standard base64).
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Integer(n) => J::Number(Number::from(*n)),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => single("$bytes", Base::Base64.encode(b)),
        Value::Link(cid) => single("$link", cid.to_string()),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => J::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

fn single(key: &str, value: String) -> serde_json::Value {
    let mut map = Map::new();
    map.insert(key.to_owned(), serde_json::Value::String(value));
    serde_json::Value::Object(map)
}

fn kind(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// One step of a JSON Pointer.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A JSON Pointer (RFC 6901) for `path`.
fn pointer(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            Seg::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Seg::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// Integer-valued floats up to this magnitude convert exactly.
const MAX_SAFE_FLOAT: f64 = 9_007_199_254_740_992.0; // 2^53

fn convert<'a>(
    json: &'a serde_json::Value,
    limits: &Limits,
    path: &mut Vec<Seg<'a>>,
) -> Result<Value> {
    use serde_json::Value as J;
    Ok(match json {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::String(s) => Value::String(s.clone()),
        J::Number(n) => Value::Integer(integer(n, path)?),
        J::Array(items) => {
            enter(limits, path)?;
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                out.push(convert(item, limits, path)?);
                path.pop();
            }
            Value::Array(out)
        }
        J::Object(map) => {
            if let Some(v) = typed(map, "$link", path)? {
                return link(v, path);
            }
            if let Some(v) = typed(map, "$bytes", path)? {
                return bytes(v, path);
            }
            enter(limits, path)?;
            let mut out = BTreeMap::new();
            for (k, v) in map {
                path.push(Seg::Key(k));
                out.insert(k.clone(), convert(v, limits, path)?);
                path.pop();
            }
            check_data_model(&out).map_err(|(key, rule)| {
                if let Some(key) = key {
                    path.push(Seg::Key(key));
                }
                Error::DataModel { path: pointer(path), rule }
            })?;
            Value::Map(out)
        }
    })
}

/// Fails when descending one more level would exceed the depth limit
/// (`path` holds the levels above).
fn enter(limits: &Limits, path: &[Seg<'_>]) -> Result<()> {
    if path.len() >= limits.max_depth {
        return Err(Error::TooDeep { limit: limits.max_depth, path: pointer(path) });
    }
    Ok(())
}

fn integer(n: &Number, path: &[Seg<'_>]) -> Result<i64> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    if n.is_u64() {
        return Err(Error::IntegerRange { path: pointer(path), found: n.to_string() });
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 => {
            if f.abs() <= MAX_SAFE_FLOAT {
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "f is an integer of magnitude at most 2^53, exact in i64"
                )]
                Ok(f as i64)
            } else {
                Err(Error::IntegerRange { path: pointer(path), found: n.to_string() })
            }
        }
        _ => Err(Error::Float { path: pointer(path) }),
    }
}

/// The value of `key` if `map` has it: the only key, holding a string.
fn typed<'a>(
    map: &'a Map<String, serde_json::Value>,
    key: &'static str,
    path: &[Seg<'_>],
) -> Result<Option<&'a str>> {
    match map.get(key) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) if map.len() == 1 => Ok(Some(s)),
        Some(_) => Err(Error::TypedObject { key, path: pointer(path) }),
    }
}

fn link(s: &str, path: &[Seg<'_>]) -> Result<Value> {
    match Cid::try_from(s) {
        Ok(cid) if cid.to_string() == s => Ok(Value::Link(cid)),
        _ => {
            let mut found = s.to_owned();
            if found.len() > 100 {
                let mut end = 100;
                while !found.is_char_boundary(end) {
                    end -= 1;
                }
                found.truncate(end);
            }
            Err(Error::InvalidLink { path: pointer(path), found })
        }
    }
}

fn bytes(s: &str, path: &[Seg<'_>]) -> Result<Value> {
    match Base::Base64.decode(s) {
        // The decoder refuses padding and non-zero trailing bits, so the
        // encoding is canonical; check anyway rather than assume.
        Ok(b) if Base::Base64.encode(&b) == s => Ok(Value::Bytes(b)),
        _ => Err(Error::InvalidBytes { path: pointer(path) }),
    }
}

/// The data model rules for one map; on failure, the key at fault (if
/// one) and the rule.
fn check_data_model(
    map: &BTreeMap<String, Value>,
) -> std::result::Result<(), (Option<&'static str>, &'static str)> {
    match map.get("$type") {
        None => return Ok(()),
        Some(Value::String(t)) if t.is_empty() => {
            return Err((Some("$type"), "$type must not be empty"));
        }
        Some(Value::String(t)) if t == "blob" => {}
        Some(Value::String(_)) => return Ok(()),
        Some(_) => return Err((Some("$type"), "$type must be a string")),
    }
    let blob_ok = matches!(map.get("ref"), Some(Value::Link(_)))
        && matches!(map.get("mimeType"), Some(Value::String(_)))
        && matches!(map.get("size"), Some(Value::Integer(n)) if *n >= 0);
    if blob_ok {
        Ok(())
    } else {
        Err((None, "a blob needs a ref link, a mimeType string and an integer size"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::verify::drisl;

    fn read(json: &serde_json::Value) -> Result<Value> {
        record_from_json(json, &Limits::default())
    }

    #[test]
    fn round_trips_through_json_and_cbor() {
        let json = json!({
            "a": {"$link": "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a"},
            "b": {"$bytes": "nFERjvLLiw9qm45JrqH9QTzyC2Lu1Xb4ne6+sBrCzI0"},
            "n": [-1, 0, 9_007_199_254_740_993_i64, i64::MIN, null, true, "x"],
            "blob": {
                "$type": "blob",
                "ref": {"$link": "bafkreiccldh766hwcnuxnf2wh6jgzepf2nlu2lvcllt63eww5p6chi4ity"},
                "mimeType": "image/jpeg",
                "size": 10000
            }
        });
        let value = read(&json).unwrap();
        assert_eq!(to_json(&value), json);
        let cbor = value.to_cbor();
        drisl::validate_record(&cbor, &Limits::default()).unwrap();
        assert_eq!(Value::decode(&cbor, &Limits::default()).unwrap(), value);
    }

    #[test]
    fn integer_like_floats() {
        assert_eq!(read(&json!({"a": 123.0})).unwrap(), read(&json!({"a": 123})).unwrap());
        assert_eq!(read(&json!({"a": -0.0})).unwrap(), read(&json!({"a": 0})).unwrap());
        assert_eq!(read(&json!({"a": 1.5})), Err(Error::Float { path: "/a".to_owned() }));
        let big = serde_json::from_str::<serde_json::Value>(r#"{"a": [1e300]}"#).unwrap();
        assert_eq!(
            read(&big),
            Err(Error::IntegerRange { path: "/a/0".to_owned(), found: "1e+300".to_owned() })
        );
        assert!(matches!(
            read(&json!({"a": u64::MAX})),
            Err(Error::IntegerRange { path, .. }) if path == "/a"
        ));
    }

    #[test]
    fn typed_objects() {
        let typed = |key: &'static str, path: &str| Error::TypedObject { key, path: path.into() };
        assert_eq!(read(&json!({"l": {"$link": 1}})), Err(typed("$link", "/l")));
        assert_eq!(read(&json!({"l": {"$link": "x", "o": 1}})), Err(typed("$link", "/l")));
        assert_eq!(read(&json!({"b": {"$bytes": [1]}})), Err(typed("$bytes", "/b")));
        let bad = Error::InvalidLink { path: "/l".into(), found: ".".into() };
        assert_eq!(read(&json!({"l": {"$link": "."}})), Err(bad));
        // A CID in another base is not canonical.
        let b58 = "zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7";
        assert!(matches!(read(&json!({"l": {"$link": b58}})), Err(Error::InvalidLink { .. })));
        let padded = Error::InvalidBytes { path: "/b".into() };
        assert_eq!(read(&json!({"b": {"$bytes": "AQ=="}})), Err(padded));
    }

    #[test]
    fn data_model_rules() {
        let dm = |path: &str, rule| Error::DataModel { path: path.into(), rule };
        assert_eq!(
            read(&json!({"r": {"$type": ""}})),
            Err(dm("/r/$type", "$type must not be empty"))
        );
        assert_eq!(
            read(&json!({"r": {"$type": 1}})),
            Err(dm("/r/$type", "$type must be a string"))
        );
        let blob = "a blob needs a ref link, a mimeType string and an integer size";
        let missing_ref = json!({"b": {"$type": "blob", "mimeType": "a/b", "size": 1}});
        assert_eq!(read(&missing_ref), Err(dm("/b", blob)));
        assert_eq!(read(&json!("blah")), Err(Error::NotAnObject { found: "a string" }));
        assert_eq!(from_json(&json!("blah"), &Limits::default()), Ok(Value::String("blah".into())));
    }

    #[test]
    fn depth_is_bounded() {
        let mut deep = json!(1);
        for _ in 0..10 {
            deep = json!([deep]);
        }
        let limits = Limits::default().max_depth(5);
        assert_eq!(
            from_json(&deep, &limits),
            Err(Error::TooDeep { limit: 5, path: "/0/0/0/0/0".to_owned() })
        );
        assert!(from_json(&deep, &Limits::default()).is_ok());
    }

    #[test]
    fn error_display() {
        let path = || "/rcrd/a".to_owned();
        let errors = [
            Error::Float { path: path() },
            Error::IntegerRange { path: path(), found: "1e+300".to_owned() },
            Error::TypedObject { key: "$link", path: path() },
            Error::InvalidLink { path: path(), found: ".".to_owned() },
            Error::InvalidBytes { path: path() },
            Error::DataModel { path: path(), rule: "$type must not be empty" },
            Error::NotAnObject { found: "a string" },
            Error::TooDeep { limit: 64, path: path() },
        ];
        let text: String = errors.iter().map(|e| format!("{e}\n")).collect();
        insta::assert_snapshot!("json_error_display", text);
    }

    #[test]
    fn pointers_escape() {
        assert_eq!(pointer(&[Seg::Key("a/b~c"), Seg::Index(3)]), "/a~1b~0c/3");
    }
}
