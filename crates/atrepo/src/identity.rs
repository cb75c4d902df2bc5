//! DID documents: the atproto signing key a document declares, so that a
//! repository or an event can be checked against "the key this DID
//! published" without copying the key out by hand.
//!
//! # What this module owns
//!
//! Reading a DID document (JSON, as a PLC directory or a `did:web` host
//! serves it) the way the atproto DID specification says: the signing key
//! is the verification method whose `id` is `#atproto` or `DID#atproto`,
//! whose `controller` (when given) is the DID itself, of type `Multikey`
//! (`publicKeyMultibase` a multikey), or of one of the two legacy types
//! (`EcdsaSecp256k1VerificationKey2019`, `EcdsaSecp256r1VerificationKey2019`,
//! whose `publicKeyMultibase` is the bare key, compressed or not). Other
//! methods are ignored; the first `#atproto` method counts, as in the
//! TypeScript and Go implementations.
//!
//! # What it must not do
//!
//! No network access and no DID resolution: the caller fetches the
//! document. Nothing here says the document is current; a key that signed
//! an old commit may have been rotated since.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::verify::{Curve, KeyOptions, PublicKey, StaticKeyResolver};

/// The largest input [`did_document_keys`] reads, in bytes: 64 MiB, room
/// for about a hundred thousand documents.
pub const MAX_DID_DOCUMENTS_BYTES: usize = 64 * 1024 * 1024;

/// What was wrong with a DID document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DidDocumentError {
    /// The input is not JSON (or not a document, an array of documents or
    /// one document per line).
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
    #[error("expected DID documents of at most {limit} bytes, found {found}")]
    TooLarge {
        /// The cap.
        limit: usize,
        /// The input's size.
        found: usize,
    },
    /// A value that is not a JSON object where a document was expected.
    #[error("expected a DID document (a JSON object), found {found}")]
    NotAnObject {
        /// What was found: `an array`, `a string`...
        found: &'static str,
    },
    /// The document's `id` is missing or not a DID.
    #[error("expected a DID as the document's id, found {found}")]
    BadId {
        /// The `id`, shortened, or `none`.
        found: String,
    },
    /// No verification method with `id` `#atproto` or `DID#atproto`.
    #[error("expected an #atproto verification method in the DID document of {did}, found none")]
    NoAtprotoKey {
        /// The document's DID.
        did: String,
    },
    /// The `#atproto` method is controlled by another DID.
    #[error(
        "expected the #atproto key of {did} to be controlled by {did}, found controller {found}"
    )]
    Controller {
        /// The document's DID.
        did: String,
        /// The method's `controller`, shortened.
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
        /// The method's `type`, shortened, or `none`.
        found: String,
    },
    /// The `#atproto` method has no `publicKeyMultibase` string.
    #[error("expected a publicKeyMultibase string in the #atproto method of {did}, found none")]
    MissingKey {
        /// The document's DID.
        did: String,
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

/// The signing key of one DID document, given as a JSON value.
pub fn did_document_key(document: &Value) -> Result<DidDocumentKey, DidDocumentError> {
    let Value::Object(doc) = document else {
        return Err(DidDocumentError::NotAnObject { found: kind(document) });
    };
    let did = match doc.get("id") {
        Some(Value::String(id)) if crate::verify::syntax::did(id).is_ok() => id.clone(),
        Some(other) => return Err(DidDocumentError::BadId { found: shown(other) }),
        None => return Err(DidDocumentError::BadId { found: "none".to_owned() }),
    };
    let methods = match doc.get("verificationMethod") {
        Some(Value::Array(methods)) => methods.as_slice(),
        _ => &[],
    };
    let full_id = format!("{did}#atproto");
    let method = methods
        .iter()
        .filter_map(Value::as_object)
        .find(|m| {
            m.get("id").and_then(Value::as_str).is_some_and(|id| id == "#atproto" || id == full_id)
        })
        .ok_or_else(|| DidDocumentError::NoAtprotoKey { did: did.clone() })?;
    if let Some(controller) = method.get("controller")
        && controller.as_str() != Some(did.as_str())
    {
        return Err(DidDocumentError::Controller { did, found: shown(controller) });
    }
    let method_type = method.get("type").and_then(Value::as_str);
    let legacy = method_type.and_then(Curve::from_legacy_method_type);
    if method_type != Some("Multikey") && legacy.is_none() {
        let found = method.get("type").map_or_else(|| "none".to_owned(), shown);
        return Err(DidDocumentError::MethodType { did, found });
    }
    let Some(multibase) = method.get("publicKeyMultibase").and_then(Value::as_str) else {
        return Err(DidDocumentError::MissingKey { did });
    };
    let key = match legacy {
        None => PublicKey::from_multikey(multibase),
        // Deprecated documents hold uncompressed keys too; the TypeScript
        // implementation compresses them.
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

/// The signing keys of every DID document in `json`: one document, a JSON
/// array of documents, or documents one after another (JSON Lines). Every
/// document must yield a key; two documents for one DID must agree.
pub fn did_document_keys(json: &[u8]) -> Result<Vec<DidDocumentKey>, DidDocumentError> {
    if json.len() > MAX_DID_DOCUMENTS_BYTES {
        let (limit, found) = (MAX_DID_DOCUMENTS_BYTES, json.len());
        return Err(DidDocumentError::TooLarge { limit, found });
    }
    let mut keys: Vec<DidDocumentKey> = Vec::new();
    let mut seen: BTreeMap<String, PublicKey> = BTreeMap::new();
    for value in serde_json::Deserializer::from_slice(json).into_iter::<Value>() {
        let value = value.map_err(|e| DidDocumentError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let documents = match value {
            Value::Array(documents) => documents,
            document => vec![document],
        };
        for document in &documents {
            let found = did_document_key(document)?;
            match seen.get(&found.did) {
                Some(key) if *key == found.key => {}
                Some(_) => return Err(DidDocumentError::Conflict { did: found.did }),
                None => {
                    seen.insert(found.did.clone(), found.key.clone());
                    keys.push(found);
                }
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

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message: JSON, at most 80 characters of it.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::SigningKey;

    fn key(curve: Curve) -> PublicKey {
        SigningKey::from_seed(curve, b"did document").unwrap().public_key()
    }

    fn doc(did: &str, method: &Value) -> Value {
        serde_json::json!({
            "@context": ["https://www.w3.org/ns/did/v1"],
            "id": did,
            "alsoKnownAs": ["at://alice.example.com"],
            "verificationMethod": [method],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer",
                         "serviceEndpoint": "https://pds.example.com"}],
        })
    }

    fn multikey(key: &PublicKey) -> String {
        key.to_did_key().trim_start_matches("did:key:").to_owned()
    }

    #[test]
    fn the_atproto_multikey_is_the_key() {
        let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
        for curve in [Curve::K256, Curve::P256] {
            let k = key(curve);
            for id in [format!("{did}#atproto"), "#atproto".to_owned()] {
                let d = doc(
                    did,
                    &serde_json::json!({"id": id, "type": "Multikey", "controller": did,
                                       "publicKeyMultibase": multikey(&k)}),
                );
                let found = did_document_key(&d).unwrap();
                assert_eq!((found.did.as_str(), &found.key), (did, &k));
            }
        }
    }

    #[test]
    fn other_methods_are_ignored_and_the_first_atproto_one_counts() {
        let did = "did:web:example.com";
        let (old, new) = (key(Curve::P256), key(Curve::K256));
        let d = serde_json::json!({
            "id": did,
            "verificationMethod": [
                {"id": format!("{did}#atproto_old"), "type": "Multikey", "controller": did,
                 "publicKeyMultibase": multikey(&old)},
                "not a method",
                {"id": format!("{did}#atproto"), "type": "Multikey", "controller": did,
                 "publicKeyMultibase": multikey(&new)},
                {"id": format!("{did}#atproto"), "type": "Multikey", "controller": did,
                 "publicKeyMultibase": multikey(&old)},
            ],
        });
        assert_eq!(did_document_key(&d).unwrap().key, new);
    }

    #[test]
    fn legacy_method_types_hold_the_bare_key() {
        let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
        for curve in [Curve::K256, Curve::P256] {
            let k = key(curve);
            let d = doc(
                did,
                &serde_json::json!({"id": "#atproto", "type": curve.legacy_method_type(),
                                   "controller": did,
                                   "publicKeyMultibase": k.to_legacy_multibase()}),
            );
            assert_eq!(did_document_key(&d).unwrap().key, k);
        }
    }

    #[test]
    fn documents_that_declare_no_usable_key_say_why() {
        let did = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
        let k = key(Curve::K256);
        let method = |extra: Value| {
            let mut m = serde_json::json!({"id": "#atproto", "type": "Multikey",
                                           "controller": did,
                                           "publicKeyMultibase": multikey(&k)});
            for (name, value) in extra.as_object().unwrap() {
                if value.is_null() {
                    m.as_object_mut().unwrap().remove(name);
                } else {
                    m[name] = value.clone();
                }
            }
            doc(did, &m)
        };
        let cases: Vec<(Value, &str)> = vec![
            (serde_json::json!([]), "expected a DID document (a JSON object), found an array"),
            (
                serde_json::json!({"id": "alice"}),
                "expected a DID as the document's id, found \"alice\"",
            ),
            (serde_json::json!({}), "expected a DID as the document's id, found none"),
            (method(serde_json::json!({"id": "#atproto_label"})), "found none"),
            (
                method(serde_json::json!({"controller": "did:plc:other"})),
                "found controller \"did:plc:other\"",
            ),
            (
                method(serde_json::json!({"type": "Ed25519VerificationKey2020"})),
                "found \"Ed25519VerificationKey2020\"",
            ),
            (method(serde_json::json!({"type": null})), "found none"),
            (method(serde_json::json!({"publicKeyMultibase": null})), "publicKeyMultibase string"),
            (method(serde_json::json!({"publicKeyMultibase": "zzzz"})), "publicKeyMultibase"),
        ];
        for (d, message) in cases {
            let e = did_document_key(&d).unwrap_err();
            assert!(e.to_string().contains(message), "{e} / {message}");
        }
        // A legacy type with a multikey (multicodec prefix) is not its key.
        let d = doc(
            did,
            &serde_json::json!({"id": "#atproto", "type": "EcdsaSecp256k1VerificationKey2019",
                               "publicKeyMultibase": multikey(&k)}),
        );
        assert!(matches!(did_document_key(&d), Err(DidDocumentError::Key { .. })));
    }

    #[test]
    fn one_document_an_array_or_lines() {
        let (a, b) = ("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb");
        let (ka, kb) = (key(Curve::K256), key(Curve::P256));
        let method = |did: &str, k: &PublicKey| {
            serde_json::json!({"id": "#atproto", "type": "Multikey", "controller": did,
                               "publicKeyMultibase": multikey(k)})
        };
        let (da, db) = (doc(a, &method(a, &ka)), doc(b, &method(b, &kb)));
        let one = did_document_keys(da.to_string().as_bytes()).unwrap();
        assert_eq!(one, [DidDocumentKey { did: a.to_owned(), key: ka.clone() }]);
        let array = serde_json::json!([da, db]).to_string();
        let lines = format!("{da}\n{db}\n");
        for input in [array, lines] {
            let keys = did_document_keys(input.as_bytes()).unwrap();
            assert_eq!(keys.len(), 2, "{input}");
            let resolver = did_document_resolver(input.as_bytes()).unwrap();
            assert_eq!(resolver.get(b).unwrap(), kb);
        }
        // The same document twice is fine; two keys for one DID are not.
        assert_eq!(did_document_keys(format!("{da}{da}").as_bytes()).unwrap().len(), 1);
        let other = doc(a, &method(a, &kb));
        let e = did_document_keys(format!("{da}\n{other}").as_bytes()).unwrap_err();
        assert!(matches!(e, DidDocumentError::Conflict { .. }), "{e}");
        // Not JSON: where.
        let e = did_document_keys(b"{\"id\": \n oops").unwrap_err();
        assert!(matches!(e, DidDocumentError::Json { line: 2, .. }), "{e}");
    }
}
