//! [`Value`]: the atproto data model, for open data such as records.

use std::collections::BTreeMap;

use cid::Cid;

use super::decode::{DecodeError, Decoder, Kind, Problem, Result};
use super::encode::Encoder;
use super::{Limits, key_precedes};

/// A value of the atproto data model.
///
/// Built from strictly validated DRISL by [`Value::decode`] and written back
/// canonically by [`Value::to_cbor`], so `decode(to_cbor(v)) == v` and
/// `to_cbor(decode(b)) == b` for every accepted `b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `false` or `true`.
    Bool(bool),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A UTF-8 string.
    String(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A CID link.
    Link(Cid),
    /// An array.
    Array(Vec<Value>),
    /// A map with string keys.
    Map(BTreeMap<String, Value>),
}

/// Checks that `bytes` is one strict DRISL value within `limits`, without
/// building it.
pub fn validate(bytes: &[u8], limits: &Limits) -> Result<()> {
    let mut d = Decoder::new(bytes);
    d.skip(limits)?;
    d.finish()
}

/// Checks that `bytes` is a record: strict DRISL within `limits`, a map at
/// the top, and the atproto data model rules (`$type` a non-empty string
/// where present; blob objects complete).
pub fn validate_record(bytes: &[u8], limits: &Limits) -> Result<()> {
    let mut d = Decoder::new(bytes);
    starts_a_record(&d)?;
    d.skip_data_model(limits)?;
    d.finish()
}

/// The rule a record adds at its first byte: it is a map.
fn starts_a_record(d: &Decoder<'_>) -> Result<()> {
    if d.peek_kind()? != Kind::Map {
        let rule = "a record must be a map";
        return Err(d.error(Problem::DataModel { rule }));
    }
    Ok(())
}

impl Value {
    /// Decodes one strict DRISL value from `bytes` (all of them), checking
    /// the data model rules on the way.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Value> {
        // Validate first, without allocating; then build from input that is
        // known to be good, so allocations follow real, bounded sizes.
        let mut check = Decoder::new(bytes);
        check.skip_data_model(limits)?;
        check.finish()?;
        let mut d = Decoder::new(bytes);
        build(&mut d, limits.max_depth)
    }

    /// Decodes a record: what [`validate_record`] accepts (a map at the
    /// top, strict DRISL, the data model rules), as a value, in one walk.
    pub fn decode_record(bytes: &[u8], limits: &Limits) -> Result<Value> {
        starts_a_record(&Decoder::new(bytes))?;
        Value::decode(bytes, limits)
    }

    /// The canonical DRISL encoding.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        self.encode(&mut e);
        e.into_bytes()
    }

    /// Writes the canonical encoding into `e`.
    pub fn encode(&self, e: &mut Encoder) {
        match self {
            Value::Null => {
                e.null();
            }
            Value::Bool(b) => {
                e.bool(*b);
            }
            Value::Integer(n) => {
                e.int(*n);
            }
            Value::String(s) => {
                e.text(s);
            }
            Value::Bytes(b) => {
                e.bytes(b);
            }
            Value::Link(cid) => {
                e.link(cid);
            }
            Value::Array(items) => {
                e.array(items.len() as u64);
                for item in items {
                    item.encode(e);
                }
            }
            Value::Map(map) => {
                e.map(map.len() as u64);
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by(|a, b| (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes())));
                for key in keys {
                    e.text(key);
                    if let Some(value) = map.get(key) {
                        value.encode(e);
                    }
                }
            }
        }
    }
}

/// Builds a value from input already checked by `skip_data_model`, so
/// the recursion depth is bounded by the limit that check enforced.
fn build(d: &mut Decoder<'_>, depth_left: usize) -> Result<Value> {
    let depth_left = depth_left.saturating_sub(1);
    Ok(match d.peek_kind()? {
        Kind::Unsigned | Kind::Negative => Value::Integer(d.int()?),
        Kind::Bytes => Value::Bytes(d.bytes()?.to_vec()),
        Kind::Text => Value::String(d.text()?.to_owned()),
        Kind::Tag => Value::Link(d.link()?),
        Kind::Bool => Value::Bool(d.bool()?),
        Kind::Null => {
            d.null()?;
            Value::Null
        }
        Kind::Array => {
            let n = d.array()?;
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(build(d, depth_left)?);
            }
            Value::Array(items)
        }
        Kind::Map => {
            let n = d.map()?;
            let mut map = BTreeMap::new();
            let mut prev: Option<String> = None;
            for _ in 0..n {
                let at = d.offset();
                let key = d.text()?.to_owned();
                if prev.as_ref().is_some_and(|p| !key_precedes(p.as_bytes(), key.as_bytes())) {
                    return Err(DecodeError { offset: at, problem: Problem::KeyOrder });
                }
                let value = build(d, depth_left)?;
                prev = Some(key.clone());
                map.insert(key, value);
            }
            Value::Map(map)
        }
        Kind::Other => return Err(d.error(Problem::Simple)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn round_trips_canonically() {
        // {"a": 1, "bb": [true, null, "x"], "c": h'01'}
        let bytes = hex("a361610161634101626262 83f5f66178".replace(' ', "").as_str());
        let v = Value::decode(&bytes, &Limits::default()).unwrap();
        assert_eq!(v.to_cbor(), bytes);
    }

    #[test]
    fn data_model_rules() {
        let rec = |v: Value| validate_record(&v.to_cbor(), &Limits::default());
        let map = |pairs: Vec<(&str, Value)>| {
            Value::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        };
        assert!(rec(map(vec![("$type", Value::String("a.b.c".into()))])).is_ok());
        let empty = rec(map(vec![("$type", Value::String(String::new()))])).unwrap_err();
        assert!(matches!(empty.problem, Problem::DataModel { .. }));
        let null = rec(map(vec![("$type", Value::Null)])).unwrap_err();
        assert!(matches!(null.problem, Problem::DataModel { .. }));
        let blob = map(vec![
            ("$type", Value::String("blob".into())),
            ("mimeType", Value::String("image/jpeg".into())),
            ("size", Value::String("10000".into())),
        ]);
        let bad = rec(map(vec![("b", blob)])).unwrap_err();
        assert!(matches!(bad.problem, Problem::DataModel { .. }));
        let top = validate_record(&Value::String("blah".into()).to_cbor(), &Limits::default());
        assert!(matches!(top.unwrap_err().problem, Problem::DataModel { .. }));
    }

    /// `decode_record` accepts exactly what `validate_record` does, and
    /// gives the value `decode` would.
    #[test]
    fn decode_record_agrees_with_validate_record() {
        let limits = Limits::default();
        let cases: [&[u8]; 5] =
            [b"\xa1\x61a\x01", b"\x61x", b"\xa2\x61b\x01\x61a\x02", b"\xa1\x65$type\x60", b"\x80"];
        for bytes in cases {
            let decoded = Value::decode_record(bytes, &limits);
            assert_eq!(decoded.clone().map(drop), validate_record(bytes, &limits), "{bytes:02x?}");
            if let Ok(value) = decoded {
                assert_eq!(value, Value::decode(bytes, &limits).unwrap());
            }
        }
    }
}
