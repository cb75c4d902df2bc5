//! `data-model/`: JSON to DRISL bytes and CID and back, and the valid and
//! invalid data model values, through `atrepo::json`.

use std::path::Path;

use anyhow::{Context, Result};
use atrepo::json;
use atrepo::verify::drisl::{self, Limits, Value};
use cid::multibase::Base;
use serde::Deserialize;

use crate::Case;

#[derive(Deserialize)]
struct Fixture {
    json: serde_json::Value,
    cbor_base64: String,
    cid: String,
}

/// `data-model/data-model-fixtures.json`: the JSON reads to a value whose
/// DRISL encoding is the fixture's bytes, with the fixture's CID; the
/// bytes decode to a value that writes back to the same JSON.
pub(crate) fn fixtures(path: &Path) -> Result<Vec<Case>> {
    let rows: Vec<Fixture> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    rows.into_iter()
        .map(|row| {
            let cbor = Base::Base64.decode(&row.cbor_base64).ok().context("cbor_base64")?;
            let outcome = (|| -> std::result::Result<(), String> {
                let limits = Limits::default();
                let value =
                    json::record_from_json(&row.json, &limits).map_err(|e| e.to_string())?;
                let encoded = value.to_cbor();
                if encoded != cbor {
                    return Err(format!("cbor {}", Base::Base64.encode(&encoded)));
                }
                let cid = atrepo::car::blessed_cid(atrepo::car::DAG_CBOR, &encoded).to_string();
                if cid != row.cid {
                    return Err(format!("cid {cid}"));
                }
                let decoded = Value::decode(&cbor, &limits).map_err(|e| e.to_string())?;
                if json::to_json(&decoded) != row.json {
                    return Err(format!("json {}", json::to_json(&decoded)));
                }
                Ok(())
            })();
            let ok = outcome.is_ok();
            Ok(Case::check(
                row.cid.clone(),
                "json -> cbor bytes and cid, cbor -> the same json",
                ok,
                || outcome.err().unwrap_or_default(),
            ))
        })
        .collect()
}

#[derive(Deserialize)]
struct Example {
    note: String,
    json: serde_json::Value,
}

/// `data-model/data-model-valid.json`: each value is accepted, and its
/// DRISL encoding is a valid record that decodes back to it.
pub(crate) fn valid(path: &Path) -> Result<Vec<Case>> {
    let rows: Vec<Example> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let limits = Limits::default();
            let outcome = json::record_from_json(&row.json, &limits)
                .map_err(|e| e.to_string())
                .and_then(|value| {
                    let cbor = value.to_cbor();
                    drisl::validate_record(&cbor, &limits).map_err(|e| e.to_string())?;
                    match Value::decode(&cbor, &limits) {
                        Ok(back) if back == value => Ok(()),
                        Ok(_) => Err("the cbor decodes to another value".to_owned()),
                        Err(e) => Err(e.to_string()),
                    }
                });
            let ok = outcome.is_ok();
            Case::check(row.note, "accepted", ok, || outcome.err().unwrap_or_default())
        })
        .collect())
}

/// `data-model/data-model-invalid.json`: each value is refused.
pub(crate) fn invalid(path: &Path) -> Result<Vec<Case>> {
    let rows: Vec<Example> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let result = json::record_from_json(&row.json, &Limits::default());
            Case::check(row.note, "refused", result.is_err(), || "accepted".to_owned())
        })
        .collect())
}
