//! DID documents: the atproto signing key a document declares, so that a
//! repository or an event can be checked against "the key this DID
//! published" without copying the key out by hand.
//!
//! # What this module owns
//!
//! Reading a DID document (JSON, as a PLC directory or a `did:web` host
//! serves it) the way the atproto DID specification says: the signing key
//! is the verification method whose `id` is `#atproto` or `DID#atproto`
//! and whose `controller` is the DID itself, of type `Multikey`
//! (`publicKeyMultibase` a multikey), or of one of the two legacy types
//! (`EcdsaSecp256k1VerificationKey2019`, `EcdsaSecp256r1VerificationKey2019`,
//! whose `publicKeyMultibase` is the bare key, compressed or not). Other
//! methods are ignored. A document with two or more `#atproto` methods, a
//! method with an `id` ending in `#atproto` (of any DID) that gives a
//! member twice, or more than [`MAX_ATPROTO_METHODS`] such methods, is
//! refused: the
//! implementations disagree on which would count (TypeScript takes the
//! first, indigo the last its DID controls, `JSON.parse` the last of a
//! repeated member), and a verifier must not pick a key another would not.
//! `verificationMethod` may be one method instead of an array.
//!
//! Documents are read into only the fields above: everything else is
//! skipped as it is parsed, and so is every method whose `id` does not end
//! in `#atproto` (a document with more than [`MAX_ATPROTO_METHODS`] of
//! those is refused).
//! With at most [`MAX_DID_DOCUMENTS`] documents per input, what is held
//! besides the input is bounded whatever the input holds.
//!
//! # What it must not do
//!
//! No network access and no DID resolution: the caller fetches the
//! document. Nothing here says the document is current; a key that signed
//! an old commit may have been rotated since.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::verify::{Curve, KeyOptions, PublicKey, StaticKeyResolver};

/// The largest input [`did_documents`] reads, in bytes: 64 MiB, room for
/// about a hundred thousand documents.
pub const MAX_DID_DOCUMENTS_BYTES: usize = 64 * 1024 * 1024;

/// Most documents (or values where a document is expected) in one input.
pub const MAX_DID_DOCUMENTS: usize = 100_000;

/// Most verification methods with an `id` ending in `#atproto` in one
/// document; a document with more is refused.
pub const MAX_ATPROTO_METHODS: usize = 16;

/// What was wrong with a DID document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DidDocumentError {
    /// The input is not JSON, or not a document, an array of documents or
    /// documents one after another.
    #[error(
        "expected JSON DID documents, found invalid JSON at line {line}, column {column}: {message}"
    )]
    Json {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The input is bigger than [`MAX_DID_DOCUMENTS_BYTES`].
    #[error("expected DID documents of at most {limit} bytes, found more")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// The input holds more than [`MAX_DID_DOCUMENTS`] values.
    #[error("expected at most {limit} DID documents, found more")]
    TooMany {
        /// The cap.
        limit: usize,
    },
    /// Not exactly one document where one was expected
    /// ([`did_document_key`]).
    #[error("expected one DID document, found {found}")]
    NotOne {
        /// How many the input holds.
        found: usize,
    },
    /// A value that is not a JSON object where a document was expected.
    #[error("expected a DID document (a JSON object), found {found}")]
    NotAnObject {
        /// What was found: `an array`, `a string`...
        found: &'static str,
    },
    /// A member that decides the key given twice in one object (`id` or
    /// `verificationMethod` of the document): which one counts is not
    /// for a verifier to guess.
    #[error("expected one {field:?} in the DID document, found two or more")]
    Duplicate {
        /// The member's name.
        field: &'static str,
    },
    /// The document's `id` is missing or not a DID.
    #[error("expected a DID as the document's id, found {found}")]
    BadId {
        /// The `id` (quoted, shortened), its kind, or `none`.
        found: String,
    },
    /// No verification method with `id` `#atproto` or `DID#atproto`.
    #[error("expected an #atproto verification method in the DID document of {did}, found none")]
    NoAtprotoKey {
        /// The document's DID.
        did: String,
    },
    /// Two or more verification methods with `id` `#atproto` or
    /// `DID#atproto`: which one is the key is not for a verifier to guess.
    #[error(
        "expected one #atproto verification method in the DID document of {did}, found {found}"
    )]
    SeveralAtprotoKeys {
        /// The document's DID.
        did: String,
        /// How many (counting stops at [`MAX_ATPROTO_METHODS`]).
        found: usize,
    },
    /// A verification method with an `id` ending in `#atproto` gives one
    /// of `id`, `type`, `controller` or `publicKeyMultibase` twice.
    #[error(
        "expected each member of the #atproto verification methods in the DID document of \
         {did} once, found one given twice"
    )]
    AmbiguousMethod {
        /// The document's DID.
        did: String,
    },
    /// More than [`MAX_ATPROTO_METHODS`] verification methods with an
    /// `id` ending in `#atproto`: refused, not cut short, since one
    /// dropped unseen could be a second key.
    #[error(
        "expected at most {limit} verification methods with an id ending in #atproto in the \
         DID document of {did}, found more"
    )]
    TooManyAtprotoMethods {
        /// The document's DID.
        did: String,
        /// The cap.
        limit: usize,
    },
    /// The `#atproto` method is controlled by another DID, or names no
    /// controller.
    #[error(
        "expected the #atproto key of {did} to be controlled by {did}, found controller {found}"
    )]
    Controller {
        /// The document's DID.
        did: String,
        /// The method's `controller` (quoted, shortened), its kind, or
        /// `none`.
        found: String,
    },
    /// The `#atproto` method's type is not one atproto uses.
    #[error(
        "expected the #atproto key of {did} to be of type Multikey, \
         EcdsaSecp256k1VerificationKey2019 or EcdsaSecp256r1VerificationKey2019, found {found}"
    )]
    MethodType {
        /// The document's DID.
        did: String,
        /// The method's `type` (quoted, shortened), its kind, or `none`.
        found: String,
    },
    /// The `#atproto` method has no `publicKeyMultibase` string.
    #[error("expected a publicKeyMultibase string in the #atproto method of {did}, found {found}")]
    MissingKey {
        /// The document's DID.
        did: String,
        /// What was there instead: a kind, or `none`.
        found: String,
    },
    /// The `#atproto` method's `publicKeyMultibase` is not a key of the
    /// method's type.
    #[error("expected a publicKeyMultibase key for the #atproto method of {did}: {error}")]
    Key {
        /// The document's DID.
        did: String,
        /// What the key parser found.
        error: crate::verify::Error,
    },
    /// Two documents for one DID with different keys.
    #[error("expected one #atproto key for {did}, found two documents with different keys")]
    Conflict {
        /// The DID.
        did: String,
    },
}

/// The DID a document is about and the atproto signing key it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidDocumentKey {
    /// The document's `id`.
    pub did: String,
    /// Its `#atproto` key.
    pub key: PublicKey,
}

/// The signing key of the one DID document in `json`.
pub fn did_document_key(json: &[u8]) -> Result<DidDocumentKey, DidDocumentError> {
    let mut found = did_documents(json)?;
    match found.len() {
        1 => found.remove(0),
        n => Err(DidDocumentError::NotOne { found: n }),
    }
}

/// Every document in `json`: one document, a JSON array of documents, or
/// documents one after another (JSON Lines), each with its key or what
/// is wrong with it, in input order. Fails as a whole only when the input
/// is too large or not JSON.
pub fn did_documents(
    json: &[u8],
) -> Result<Vec<Result<DidDocumentKey, DidDocumentError>>, DidDocumentError> {
    if json.len() > MAX_DID_DOCUMENTS_BYTES {
        return Err(DidDocumentError::TooLarge { limit: MAX_DID_DOCUMENTS_BYTES });
    }
    // A byte order mark, as some editors write, is not JSON.
    let json = json.strip_prefix(b"\xef\xbb\xbf").unwrap_or(json);
    let mut out = Vec::new();
    for item in serde_json::Deserializer::from_slice(json).into_iter::<Item>() {
        let item = item.map_err(|e| {
            // serde_json's message ends with the position, given apart.
            let message = e.to_string();
            let message = message.rsplit_once(" at line ").map_or(&*message, |(m, _)| m);
            DidDocumentError::Json { line: e.line(), column: e.column(), message: message.into() }
        })?;
        match item {
            Item::One(entry) => out.push(entry.key()),
            Item::Many(keys, complete) => {
                out.extend(keys);
                if !complete {
                    return Err(DidDocumentError::TooMany { limit: MAX_DID_DOCUMENTS });
                }
            }
        }
        if out.len() > MAX_DID_DOCUMENTS {
            return Err(DidDocumentError::TooMany { limit: MAX_DID_DOCUMENTS });
        }
    }
    Ok(out)
}

/// The signing keys of every document in `json` (see [`did_documents`]):
/// every document must yield a key, and two documents for one DID must
/// agree (the same document twice counts once), as a resolver of one key
/// per DID needs. A caller that accepts several keys per DID (a capture
/// that spans a key rotation) reads [`did_documents`] instead.
pub fn did_document_keys(json: &[u8]) -> Result<Vec<DidDocumentKey>, DidDocumentError> {
    let mut keys: Vec<DidDocumentKey> = Vec::new();
    let mut seen: BTreeMap<String, PublicKey> = BTreeMap::new();
    for found in did_documents(json)? {
        let found = found?;
        match seen.get(&found.did) {
            Some(key) if *key == found.key => {}
            Some(_) => return Err(DidDocumentError::Conflict { did: found.did }),
            None => {
                seen.insert(found.did.clone(), found.key.clone());
                keys.push(found);
            }
        }
    }
    Ok(keys)
}

/// A [`StaticKeyResolver`] over the documents in `json` (see
/// [`did_document_keys`]).
pub fn did_document_resolver(json: &[u8]) -> Result<StaticKeyResolver, DidDocumentError> {
    Ok(did_document_keys(json)?.into_iter().map(|k| (k.did, k.key)).collect())
}

// ---------------------------------------------------------------------------
// The typed parse: only the fields the rules read are kept.

/// The scalar `visit_*` methods of a visitor whose output for a scalar is
/// `$make(kind)`, `kind` naming the JSON type found.
macro_rules! visit_scalars {
    ($out:ty, $make:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$out, E> {
            Ok($make("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$out, E> {
            Ok($make("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$out, E> {
            Ok($make("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$out, E> {
            Ok($make("a number"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
            Ok($make("null"))
        }
    };
}

/// A string field, or the kind of the value found instead.
#[derive(Debug)]
enum Text {
    Str(String),
    Other(&'static str),
}

impl Text {
    fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(s) => Some(s),
            Text::Other(_) => None,
        }
    }

    /// For a message: the string quoted and shortened, or the kind.
    fn shown(text: Option<&Text>) -> String {
        match text {
            Some(Text::Str(s)) => shorten(s),
            Some(Text::Other(kind)) => (*kind).to_owned(),
            None => "none".to_owned(),
        }
    }
}

/// The string `s`, quoted, at most 80 characters of it.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((cut, _)) => format!("{:?}...", s.get(..cut).unwrap_or_default()),
        None => format!("{s:?}"),
    }
}

/// Visits any JSON value: strings become [`Text::Str`], anything else is
/// skipped (without keeping it) and named by its kind.
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    visit_scalars!(Text, Text::Other);
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
        Ok(Text::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text::Other("an object"))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

/// The fields of a verification method the rules read.
#[derive(Debug, Default)]
struct Method {
    id: Option<Text>,
    kind: Option<Text>,
    controller: Option<Text>,
    multibase: Option<Text>,
    /// One of the fields above was given twice.
    ambiguous: bool,
    /// Some `id` given (the first, or a repeated one) ends in `#atproto`.
    atproto_like: bool,
}

/// Reads the fields of one verification method from a map.
fn method_fields<'de, A: MapAccess<'de>>(mut map: A) -> Result<Method, A::Error> {
    let mut m = Method::default();
    while let Some(name) = map.next_key::<Text>()? {
        let slot = match name.as_str() {
            Some("id") => &mut m.id,
            Some("type") => &mut m.kind,
            Some("controller") => &mut m.controller,
            Some("publicKeyMultibase") => &mut m.multibase,
            _ => {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
        };
        let value = map.next_value::<Text>()?;
        if name.as_str() == Some("id") && value.as_str().is_some_and(|v| v.ends_with("#atproto")) {
            m.atproto_like = true;
        }
        match slot {
            None => *slot = Some(value),
            Some(_) => m.ambiguous = true,
        }
    }
    Ok(m)
}

/// `verificationMethod`: its methods (entries that are not objects are
/// skipped), or a value that holds none.
#[derive(Debug)]
enum Methods {
    /// The methods with an `id` ending in `#atproto` (at most
    /// [`MAX_ATPROTO_METHODS`]), and whether there were more.
    List(Vec<Method>, bool),
    NotAList,
}

struct MethodsVisitor;

impl<'de> Visitor<'de> for MethodsVisitor {
    type Value = Methods;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("verification methods")
    }
    visit_scalars!(Methods, |_| Methods::NotAList);
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Methods, A::Error> {
        let (mut methods, mut more) = (Vec::new(), false);
        while let Some(entry) = seq.next_element::<MaybeMethod>()? {
            // Only `#atproto` methods can be the key. Past the cap the
            // document is refused, not cut short: a method dropped
            // unseen could be a second key.
            if let Some(method) = entry.0
                && method.atproto_like
            {
                if methods.len() < MAX_ATPROTO_METHODS {
                    methods.push(method);
                } else {
                    more = true;
                }
            }
        }
        Ok(Methods::List(methods, more))
    }
    // One method instead of an array of one, as the TypeScript
    // implementation reads it.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Methods, A::Error> {
        Ok(Methods::List(vec![method_fields(map)?], false))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Methods, E> {
        Ok(Methods::NotAList)
    }
}

impl<'de> Deserialize<'de> for Methods {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Methods, D::Error> {
        d.deserialize_any(MethodsVisitor)
    }
}

/// An array entry of `verificationMethod`: a method, or `None` for
/// anything else (skipped without keeping it).
struct MaybeMethod(Option<Method>);

impl<'de> Deserialize<'de> for MaybeMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MaybeMethod, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeMethod;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a verification method")
            }
            visit_scalars!(MaybeMethod, |_| MaybeMethod(None));
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MaybeMethod, A::Error> {
                Ok(MaybeMethod(Some(method_fields(map)?)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<MaybeMethod, A::Error> {
                TextVisitor.visit_seq(seq).map(|_| MaybeMethod(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<MaybeMethod, E> {
                Ok(MaybeMethod(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// One top-level value or array entry: a document's fields, or the kind
/// of value found instead of a document.
#[derive(Debug)]
enum Entry {
    Document {
        id: Option<Text>,
        methods: Option<Methods>,
    },
    /// A document that gives this member twice.
    Duplicate(&'static str),
    Other(&'static str),
}

impl Entry {
    /// The document's key, by the rules in the module docs.
    fn key(self) -> Result<DidDocumentKey, DidDocumentError> {
        let (id, methods) = match self {
            Entry::Document { id, methods } => (id, methods),
            Entry::Other(found) => return Err(DidDocumentError::NotAnObject { found }),
            Entry::Duplicate(field) => return Err(DidDocumentError::Duplicate { field }),
        };
        let did = match id.as_ref().and_then(Text::as_str) {
            Some(did) if crate::verify::syntax::did(did).is_ok() => did.to_owned(),
            _ => return Err(DidDocumentError::BadId { found: Text::shown(id.as_ref()) }),
        };
        let methods = match methods {
            Some(Methods::List(_, true)) => {
                return Err(DidDocumentError::TooManyAtprotoMethods {
                    did,
                    limit: MAX_ATPROTO_METHODS,
                });
            }
            Some(Methods::List(methods, false)) => methods,
            _ => Vec::new(),
        };
        // A method that gives a member twice and an id ending in #atproto
        // is refused whichever DID it names: which id or key a reader
        // keeps differs between parsers.
        if methods.iter().any(|m| m.ambiguous) {
            return Err(DidDocumentError::AmbiguousMethod { did });
        }
        let full_id = format!("{did}#atproto");
        let mut atproto = methods.iter().filter(|m| {
            m.id.as_ref().and_then(Text::as_str).is_some_and(|id| id == "#atproto" || id == full_id)
        });
        let Some(method) = atproto.next() else {
            return Err(DidDocumentError::NoAtprotoKey { did });
        };
        let others = atproto.count();
        if others > 0 {
            return Err(DidDocumentError::SeveralAtprotoKeys { did, found: others + 1 });
        }
        if method.controller.as_ref().and_then(Text::as_str) != Some(did.as_str()) {
            let found = Text::shown(method.controller.as_ref());
            return Err(DidDocumentError::Controller { did, found });
        }
        let method_type = method.kind.as_ref().and_then(Text::as_str);
        let legacy = method_type.and_then(Curve::from_legacy_method_type);
        if method_type != Some("Multikey") && legacy.is_none() {
            let found = Text::shown(method.kind.as_ref());
            return Err(DidDocumentError::MethodType { did, found });
        }
        let Some(multibase) = method.multibase.as_ref().and_then(Text::as_str) else {
            let found = Text::shown(method.multibase.as_ref());
            return Err(DidDocumentError::MissingKey { did, found });
        };
        let key = match legacy {
            None => PublicKey::from_multikey(multibase),
            // Deprecated documents hold uncompressed keys too; the
            // TypeScript implementation compresses them.
            Some(curve) => {
                let options = KeyOptions::default().legacy_uncompressed(true);
                PublicKey::from_legacy_multibase(curve, multibase, &options)
            }
        };
        match key {
            Ok(key) => Ok(DidDocumentKey { did, key }),
            Err(error) => Err(DidDocumentError::Key { did, error }),
        }
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DID document")
    }
    visit_scalars!(Entry, Entry::Other);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let (mut id, mut methods) = (None, None);
        let mut duplicate = None;
        while let Some(name) = map.next_key::<Text>()? {
            match name.as_str() {
                Some("id") => {
                    if id.replace(map.next_value::<Text>()?).is_some() {
                        duplicate = duplicate.or(Some("id"));
                    }
                }
                Some("verificationMethod") => {
                    if methods.replace(map.next_value::<Methods>()?).is_some() {
                        duplicate = duplicate.or(Some("verificationMethod"));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match duplicate {
            Some(field) => Entry::Duplicate(field),
            None => Entry::Document { id, methods },
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Entry, A::Error> {
        TextVisitor.visit_seq(seq).map(|_| Entry::Other("an array"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Entry, E> {
        Ok(Entry::Other("a string"))
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

/// A top-level value: one document (or not-a-document), or an array of
/// them, each read to its key as it is parsed, and whether the array was
/// read whole (past [`MAX_DID_DOCUMENTS`] entries the rest is skipped).
enum Item {
    One(Entry),
    Many(Vec<Result<DidDocumentKey, DidDocumentError>>, bool),
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a DID document or an array of them")
            }
            visit_scalars!(Item, |kind| Item::One(Entry::Other(kind)));
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                let mut keys = Vec::new();
                while keys.len() < MAX_DID_DOCUMENTS {
                    match seq.next_element::<Entry>()? {
                        Some(entry) => keys.push(entry.key()),
                        None => return Ok(Item::Many(keys, true)),
                    }
                }
                let complete = seq.next_element::<IgnoredAny>()?.is_none();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::Many(keys, complete))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item, A::Error> {
                EntryVisitor.visit_map(map).map(Item::One)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                EntryVisitor.visit_str(v).map(Item::One)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::SigningKey;
    use serde_json::{Value, json};

    fn key(curve: Curve) -> PublicKey {
        SigningKey::from_seed(curve, b"did document").unwrap().public_key()
    }

    fn multikey(key: &PublicKey) -> String {
        key.to_did_key().trim_start_matches("did:key:").to_owned()
    }

    fn doc(did: &str, method: &Value) -> Value {
        json!({
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "alsoKnownAs": ["at://alice.example.com"],
            "verificationMethod": [method],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                         "serviceEndpoint": "https://pds.example.com"}],
        })
    }

    fn one(document: &Value) -> Result<DidDocumentKey, DidDocumentError> {
        did_document_key(document.to_string().as_bytes())
    }

    const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

    #[test]
    fn the_atproto_multikey_is_the_key() {
        for curve in [Curve::K256, Curve::P256] {
            let k = key(curve);
            for id in [format!("{DID}#atproto"), "#atproto".to_owned()] {
                let m = json!({"id": id, "type": "Multikey", "controller": DID,
                               "publicKeyMultibase": multikey(&k)});
                let found = one(&doc(DID, &m)).unwrap();
                assert_eq!((found.did.as_str(), &found.key), (DID, &k));
                // One method instead of an array of one.
                let mut single = doc(DID, &m);
                single["verificationMethod"] = m.clone();
                assert_eq!(one(&single).unwrap().key, k);
            }
        }
    }

    #[test]
    fn other_methods_are_skipped() {
        let did = "did:web:example.com";
        let (old, new) = (key(Curve::P256), key(Curve::K256));
        let d = json!({
            "id": did,
            "verificationMethod": [
                {"id": format!("{did}#atproto_old"), "type": "Multikey", "controller": did,
                 "publicKeyMultibase": multikey(&old)},
                "not a method",
                [1, 2],
                // Another DID's #atproto key is not this one's.
                {"id": "did:plc:someoneelse#atproto", "type": "Multikey",
                 "controller": "did:plc:someoneelse", "publicKeyMultibase": multikey(&old)},
                {"id": format!("{did}#atproto"), "type": "Multikey", "controller": did,
                 "publicKeyMultibase": multikey(&new)},
            ],
        });
        assert_eq!(one(&d).unwrap().key, new);
    }

    /// TypeScript takes the first `#atproto` method, indigo the last one
    /// its DID controls, and `JSON.parse` the last of a repeated member: a
    /// review found atrepo skipping a first method with another controller
    /// or a repeated member and verifying against the next one, a key
    /// TypeScript would not use. Such documents are refused.
    #[test]
    fn documents_with_two_atproto_keys_or_a_repeated_member_are_refused() {
        let did = "did:web:example.com";
        let (a, b) = (multikey(&key(Curve::P256)), multikey(&key(Curve::K256)));
        let method = |id: &str, controller: &str, k: &str| {
            json!({"id": id, "type": "Multikey", "controller": controller,
                   "publicKeyMultibase": k})
        };
        let full = format!("{did}#atproto");
        for (first, second) in [
            (method("#atproto", "did:plc:someoneelse", &a), method(&full, did, &b)),
            (method(&full, did, &a), method(&full, did, &b)),
            (method("#atproto", did, &a), method(&full, did, &a)),
        ] {
            let d = json!({"id": did, "verificationMethod": [first, second]});
            let e = one(&d).unwrap_err();
            assert!(matches!(e, DidDocumentError::SeveralAtprotoKeys { found: 2, .. }), "{e:?}");
            assert!(e.to_string().contains("one #atproto verification method"), "{e}");
        }
        // A member given twice in the #atproto method, whichever it is.
        let k = format!("\"publicKeyMultibase\": \"{b}\"");
        let members = [
            format!("{k}, \"publicKeyMultibase\": \"{a}\""),
            format!("{k}, \"controller\": \"{did}\""),
            format!("{k}, \"type\": \"Multikey\""),
            format!("{k}, \"id\": \"#other\""),
        ];
        for extra in members {
            let text = format!(
                "{{\"id\": \"{did}\", \"verificationMethod\": [{{\"id\": \"#atproto\", \
                 \"type\": \"Multikey\", \"controller\": \"{did}\", {extra}}}]}}"
            );
            let e = did_document_key(text.as_bytes()).unwrap_err();
            assert!(matches!(e, DidDocumentError::AmbiguousMethod { .. }), "{extra}: {e:?}");
            assert!(e.to_string().contains("found one given twice"), "{e}");
        }
        // A review's bypasses: a repeated id moving the method to another
        // DID (JSON.parse keeps the last, another parser the first), and
        // other DIDs' #atproto methods filling the slots kept so that a
        // second key went unseen.
        let text = format!(
            "{{\"id\": \"{did}\", \"verificationMethod\": [\
             {{\"id\": \"#atproto\", \"id\": \"did:plc:other#atproto\", \"type\": \"Multikey\", \
               \"controller\": \"{did}\", \"publicKeyMultibase\": \"{a}\"}}, \
             {{\"id\": \"{full}\", \"type\": \"Multikey\", \"controller\": \"{did}\", {k}}}]}}"
        );
        let e = did_document_key(text.as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::AmbiguousMethod { .. }), "{e:?}");
        let mut list: Vec<Value> =
            vec![json!({"id": "did:plc:other#atproto"}); MAX_ATPROTO_METHODS - 1];
        list.push(method("#atproto", did, &a));
        list.push(method(&full, did, &b));
        let e = one(&json!({"id": did, "verificationMethod": list})).unwrap_err();
        assert!(matches!(e, DidDocumentError::TooManyAtprotoMethods { .. }), "{e:?}");
        list.pop();
        assert_eq!(
            one(&json!({"id": did, "verificationMethod": list})).unwrap().key,
            key(Curve::P256)
        );
        // A repeated member in a method that is not #atproto is not ours
        // to judge.
        let text = format!(
            "{{\"id\": \"{did}\", \"verificationMethod\": [\
             {{\"id\": \"#label\", \"id\": \"#label2\"}}, \
             {{\"id\": \"#atproto\", \"type\": \"Multikey\", \"controller\": \"{did}\", {k}}}]}}"
        );
        assert_eq!(did_document_key(text.as_bytes()).unwrap().key, key(Curve::K256));
    }

    #[test]
    fn legacy_method_types_hold_the_bare_key() {
        for curve in [Curve::K256, Curve::P256] {
            let k = key(curve);
            let m = json!({"id": "#atproto", "type": curve.legacy_method_type(),
                           "controller": DID, "publicKeyMultibase": k.to_legacy_multibase()});
            assert_eq!(one(&doc(DID, &m)).unwrap().key, k);
        }
        // Uncompressed, as deprecated documents have it: secp256k1's
        // generator point (the key of secret 1).
        let x = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        let y = "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
        };
        let uncompressed = [vec![0x04], hex(x), hex(y)].concat();
        let compressed = [vec![0x02], hex(x)].concat();
        let multibase = cid::multibase::encode(cid::multibase::Base::Base58Btc, &uncompressed);
        let m = json!({"id": "#atproto", "type": "EcdsaSecp256k1VerificationKey2019",
                       "controller": DID, "publicKeyMultibase": multibase});
        let expected = PublicKey::from_compressed(Curve::K256, &compressed).unwrap();
        assert_eq!(one(&doc(DID, &m)).unwrap().key, expected);
    }

    #[test]
    fn documents_that_declare_no_usable_key_say_which_rule() {
        let k = key(Curve::K256);
        let method = |change: Value| {
            let mut m = json!({"id": "#atproto", "type": "Multikey", "controller": DID,
                               "publicKeyMultibase": multikey(&k)});
            for (name, value) in change.as_object().unwrap() {
                if value == "REMOVE" {
                    m.as_object_mut().unwrap().remove(name);
                } else {
                    m[name] = value.clone();
                }
            }
            doc(DID, &m)
        };
        use DidDocumentError as E;
        let check = |d: Value, ok: fn(&E) -> bool, message: &str| {
            let e = one(&d).unwrap_err();
            assert!(ok(&e), "{e:?}");
            assert!(e.to_string().contains(message), "{e} / {message}");
        };
        check(json!([]), |e| matches!(e, E::NotOne { found: 0 }), "one DID document, found 0");
        check(json!([5]), |e| matches!(e, E::NotAnObject { .. }), "found a number");
        check(json!("x"), |e| matches!(e, E::NotAnObject { .. }), "found a string");
        check(json!({"id": "alice"}), |e| matches!(e, E::BadId { .. }), "found \"alice\"");
        check(json!({"id": 7}), |e| matches!(e, E::BadId { .. }), "found a number");
        check(json!({}), |e| matches!(e, E::BadId { .. }), "id, found none");
        check(
            method(json!({"id": "#atproto_label"})),
            |e| matches!(e, E::NoAtprotoKey { .. }),
            "method in the DID document",
        );
        check(
            method(json!({"controller": "did:plc:other"})),
            |e| matches!(e, E::Controller { .. }),
            "found controller \"did:plc:other\"",
        );
        check(
            method(json!({"controller": "REMOVE"})),
            |e| matches!(e, E::Controller { .. }),
            "found controller none",
        );
        check(
            method(json!({"type": "Ed25519VerificationKey2020"})),
            |e| matches!(e, E::MethodType { .. }),
            "found \"Ed25519VerificationKey2020\"",
        );
        check(
            method(json!({"type": "REMOVE"})),
            |e| matches!(e, E::MethodType { .. }),
            "found none",
        );
        check(
            method(json!({"publicKeyMultibase": "REMOVE"})),
            |e| matches!(e, E::MissingKey { .. }),
            "string in the #atproto method",
        );
        check(
            method(json!({"publicKeyMultibase": ["z"]})),
            |e| matches!(e, E::MissingKey { .. }),
            "found an array",
        );
        check(method(json!({"publicKeyMultibase": "zzzz"})), |e| matches!(e, E::Key { .. }), "");
        // A legacy type with a multikey (multicodec prefix) is not its key.
        check(
            method(json!({"type": "EcdsaSecp256k1VerificationKey2019"})),
            |e| matches!(e, E::Key { .. }),
            "",
        );
        let mut not_a_list = doc(DID, &json!({}));
        not_a_list["verificationMethod"] = json!("#atproto");
        check(not_a_list, |e| matches!(e, E::NoAtprotoKey { .. }), "found none");
    }

    #[test]
    fn one_document_an_array_or_lines() {
        let (a, b) = ("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb");
        let (ka, kb) = (key(Curve::K256), key(Curve::P256));
        let method = |did: &str, k: &PublicKey| {
            json!({"id": "#atproto", "type": "Multikey", "controller": did,
                   "publicKeyMultibase": multikey(k)})
        };
        let (da, db) = (doc(a, &method(a, &ka)), doc(b, &method(b, &kb)));
        let found = did_document_keys(da.to_string().as_bytes()).unwrap();
        assert_eq!(found, [DidDocumentKey { did: a.to_owned(), key: ka.clone() }]);
        let array = json!([da, db]).to_string();
        let lines = format!("{da}\n{db}\n");
        for input in [array, lines] {
            let keys = did_document_keys(input.as_bytes()).unwrap();
            assert_eq!(keys.len(), 2, "{input}");
            let resolver = did_document_resolver(input.as_bytes()).unwrap();
            assert_eq!(resolver.get(b).unwrap(), kb);
        }
        // Each document on its own: a bad one does not hide the others.
        let found = did_documents(format!("{da}\n{{\"id\": 1}}\n[{db}, 5]").as_bytes()).unwrap();
        let ok: Vec<bool> = found.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true, false]);
        // The same document twice is fine; two keys for one DID are not.
        assert_eq!(did_document_keys(format!("{da}{da}").as_bytes()).unwrap().len(), 1);
        let other = doc(a, &method(a, &kb));
        let e = did_document_keys(format!("{da}\n{other}").as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::Conflict { .. }), "{e}");
        // Not JSON: where.
        let e = did_document_keys(b"{\"id\": \n oops").unwrap_err();
        assert!(matches!(e, DidDocumentError::Json { line: 2, .. }), "{e}");
        // Several documents where one is expected.
        let e = did_document_key(format!("{da}{db}").as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::NotOne { found: 2 }), "{e}");
    }

    #[test]
    fn what_is_not_read_is_not_kept() {
        // Values where documents are expected: counted, capped.
        let numbers = |n: usize| vec!["0"; n].join(",");
        let input = format!("[{}]", numbers(MAX_DID_DOCUMENTS));
        let found = did_documents(input.as_bytes()).unwrap();
        assert_eq!(found.len(), MAX_DID_DOCUMENTS);
        assert!(found.iter().all(|f| matches!(f, Err(DidDocumentError::NotAnObject { .. }))));
        let input = format!("[{}]", numbers(MAX_DID_DOCUMENTS + 1));
        let e = did_documents(input.as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::TooMany { .. }), "{e}");
        let lines = format!("{}\n{}\n5", numbers(1), input.replace(",0]", "]"));
        assert!(matches!(did_documents(lines.as_bytes()), Err(DidDocumentError::TooMany { .. })));
        // A million numbers and empty methods inside a document: skipped as
        // parsed, nothing kept.
        let d = format!(
            "{{\"id\": \"{DID}\", \"service\": [{}], \"verificationMethod\": [{}]}}",
            numbers(1_000_000),
            vec!["{}"; 1_000_000].join(","),
        );
        let e = did_document_key(d.as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::NoAtprotoKey { .. }), "{e}");
    }

    #[test]
    fn members_given_twice_are_not_guessed_at() {
        let k = key(Curve::K256);
        let m = json!({"id": "#atproto", "type": "Multikey", "controller": DID,
                       "publicKeyMultibase": multikey(&k)});
        let text = doc(DID, &m).to_string();
        // serde_json writes each member once; add a second id by hand.
        let twice = text.replacen('{', "{\"id\": \"did:plc:other\",", 1);
        let e = did_document_key(twice.as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::Duplicate { field: "id" }), "{e}");
        let twice = text.replacen('{', "{\"verificationMethod\": [],", 1);
        let e = did_document_key(twice.as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::Duplicate { field: "verificationMethod" }), "{e}");
        // A method with a member twice is never the key, and says so.
        let method = m.to_string().replacen('{', "{\"controller\": \"did:plc:other\",", 1);
        let text = text.replace(&m.to_string(), &method);
        let e = did_document_key(text.as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::AmbiguousMethod { .. }), "{e}");
    }

    #[test]
    fn json_errors_say_where_once_and_a_bom_is_skipped() {
        let e = did_document_key(b"{\"id\": \n oops").unwrap_err();
        let text = e.to_string();
        assert_eq!(text.matches("line 2").count(), 1, "{text}");
        let k = key(Curve::K256);
        let m = json!({"id": "#atproto", "type": "Multikey", "controller": DID,
                       "publicKeyMultibase": multikey(&k)});
        let with_bom = [b"\xef\xbb\xbf".as_slice(), doc(DID, &m).to_string().as_bytes()].concat();
        assert_eq!(did_document_key(&with_bom).unwrap().key, k);
    }
}
