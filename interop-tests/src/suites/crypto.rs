//! `crypto/`: signature vectors (valid, high-S and DER signatures on both
//! curves) and the W3C did:key vectors.

use std::path::Path;

use anyhow::{Context, Result, bail};
use atrepo::verify::{Curve, Error, KeyOptions, PublicKey, SigningKey};
use cid::multibase::Base;
use serde::Deserialize;

use crate::Case;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Signature {
    comment: String,
    message_base64: String,
    algorithm: String,
    did_doc_suite: String,
    public_key_did: String,
    public_key_multibase: String,
    signature_base64: String,
    valid_signature: bool,
    tags: Vec<String>,
}

/// `crypto/signature-fixtures.json`: both key encodings parse to the same
/// key and print back exactly; valid signatures verify; high-S and DER
/// signatures are refused with their own errors.
pub(crate) fn signatures(path: &Path) -> Result<Vec<Case>> {
    let rows: Vec<Signature> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    rows.into_iter().map(signature_case).collect()
}

fn signature_case(row: Signature) -> Result<Case> {
    let curve = Curve::from_legacy_method_type(&row.did_doc_suite)
        .with_context(|| format!("unknown didDocSuite {:?}", row.did_doc_suite))?;
    if curve.jwt_alg() != row.algorithm {
        bail!("algorithm {:?} does not match {:?}", row.algorithm, row.did_doc_suite);
    }
    let message = Base::Base64.decode(&row.message_base64).ok().context("messageBase64")?;
    let signature = Base::Base64.decode(&row.signature_base64).ok().context("signatureBase64")?;
    let expected_err = match (row.valid_signature, row.tags.as_slice()) {
        (true, _) => None,
        (false, [tag]) if tag == "high-s" => Some(Error::HighS { curve }),
        (false, [tag]) if tag == "der-encoded" => {
            Some(Error::DerSignature { found: signature.len() })
        }
        (false, tags) => bail!("no expected error known for tags {tags:?}"),
    };
    let expected = match &expected_err {
        None => "both key encodings parse alike; the signature verifies".to_owned(),
        Some(e) => format!("both key encodings parse alike; refused: {e}"),
    };

    let outcome = (|| -> std::result::Result<(), String> {
        let from_did = PublicKey::from_did_key(&row.public_key_did).map_err(|e| e.to_string())?;
        let from_multibase = PublicKey::from_legacy_multibase(
            curve,
            &row.public_key_multibase,
            &KeyOptions::default(),
        )
        .map_err(|e| e.to_string())?;
        if from_did != from_multibase {
            return Err("did:key and multibase give different keys".to_owned());
        }
        if from_did.to_did_key() != row.public_key_did
            || from_multibase.to_legacy_multibase() != row.public_key_multibase
        {
            return Err("a key does not print back to its fixture string".to_owned());
        }
        let result = from_did.verify(&message, &signature);
        match (result, &expected_err) {
            (Ok(()), None) => Ok(()),
            (Err(e), Some(want)) if e == *want => Ok(()),
            (Ok(()), Some(_)) => Err("the signature verified".to_owned()),
            (Err(e), _) => Err(e.to_string()),
        }
    })();
    let ok = outcome.is_ok();
    Ok(Case::check(row.comment, expected, ok, || outcome.err().unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DidKey {
    private_key_bytes_hex: Option<String>,
    private_key_bytes_base58: Option<String>,
    public_did_key: String,
}

/// `crypto/w3c_didkey_K256.json`.
pub(crate) fn w3c_k256(path: &Path) -> Result<Vec<Case>> {
    did_keys(path, Curve::K256)
}

/// `crypto/w3c_didkey_P256.json`.
pub(crate) fn w3c_p256(path: &Path) -> Result<Vec<Case>> {
    did_keys(path, Curve::P256)
}

/// Each secret key's public key prints as the fixture's did:key, which
/// parses back to the same key and prints back exactly.
fn did_keys(path: &Path, curve: Curve) -> Result<Vec<Case>> {
    let rows: Vec<DidKey> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    rows.into_iter()
        .map(|row| {
            let secret = match (&row.private_key_bytes_hex, &row.private_key_bytes_base58) {
                (Some(hex), _) => decode_hex(hex)?,
                (None, Some(b58)) => {
                    Base::Base58Btc.decode(b58).ok().context("privateKeyBytesBase58")?
                }
                (None, None) => bail!("a row has no private key"),
            };
            let outcome = (|| -> std::result::Result<(), String> {
                let public =
                    SigningKey::from_bytes(curve, &secret).map_err(|e| e.to_string())?.public_key();
                if public.to_did_key() != row.public_did_key {
                    return Err(format!("derived {}", public.to_did_key()));
                }
                let parsed =
                    PublicKey::from_did_key(&row.public_did_key).map_err(|e| e.to_string())?;
                if parsed != public || parsed.to_did_key() != row.public_did_key {
                    return Err("the did:key does not round-trip".to_owned());
                }
                Ok(())
            })();
            let ok = outcome.is_ok();
            Ok(Case::check(
                row.public_did_key.clone(),
                format!("the {curve} secret key derives this did:key, which round-trips"),
                ok,
                || outcome.err().unwrap_or_default(),
            ))
        })
        .collect()
}

fn decode_hex(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd-length hex {s:?}");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            let pair = s.get(i..i + 2).context("hex")?;
            u8::from_str_radix(pair, 16).with_context(|| format!("invalid hex {pair:?}"))
        })
        .collect()
}
