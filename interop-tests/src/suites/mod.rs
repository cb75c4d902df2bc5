//! One module per fixture area. Each suite maps a fixture file to cases.

use std::path::Path;

use anyhow::Result;

use crate::Case;

mod crypto;
mod data_model;
mod firehose;
mod mst;
mod syntax;

/// A runner for one fixture file.
#[derive(Debug, Clone, Copy)]
pub struct Suite {
    /// The fixture file, relative to the fixture folder.
    pub file: &'static str,
    /// Runs every case in the file.
    pub run: fn(&Path) -> Result<Vec<Case>>,
}

/// Every suite atrepo runs.
pub const SUITES: &[Suite] = &[
    Suite { file: "mst/key_heights.json", run: mst::key_heights },
    Suite { file: "mst/common_prefix.json", run: mst::common_prefix },
    Suite { file: "mst/example_keys.txt", run: mst::example_keys },
    Suite { file: "firehose/commit-proof-fixtures.json", run: firehose::commit_proofs },
    Suite { file: "crypto/signature-fixtures.json", run: crypto::signatures },
    Suite { file: "crypto/w3c_didkey_K256.json", run: crypto::w3c_k256 },
    Suite { file: "crypto/w3c_didkey_P256.json", run: crypto::w3c_p256 },
    Suite { file: "data-model/data-model-fixtures.json", run: data_model::fixtures },
    Suite { file: "data-model/data-model-valid.json", run: data_model::valid },
    Suite { file: "data-model/data-model-invalid.json", run: data_model::invalid },
    Suite { file: "syntax/did_syntax_valid.txt", run: syntax::did_valid },
    Suite { file: "syntax/did_syntax_invalid.txt", run: syntax::did_invalid },
    Suite { file: "syntax/nsid_syntax_valid.txt", run: syntax::nsid_valid },
    Suite { file: "syntax/nsid_syntax_invalid.txt", run: syntax::nsid_invalid },
    Suite { file: "syntax/recordkey_syntax_valid.txt", run: syntax::recordkey_valid },
    Suite { file: "syntax/recordkey_syntax_invalid.txt", run: syntax::recordkey_invalid },
    Suite { file: "syntax/tid_syntax_valid.txt", run: syntax::tid_valid },
    Suite { file: "syntax/tid_syntax_invalid.txt", run: syntax::tid_invalid },
    Suite { file: "syntax/cid_syntax_valid.txt", run: syntax::cid_valid },
    Suite { file: "syntax/cid_syntax_invalid.txt", run: syntax::cid_invalid },
    Suite { file: "syntax/handle_syntax_valid.txt", run: syntax::handle_valid },
    Suite { file: "syntax/handle_syntax_invalid.txt", run: syntax::handle_invalid },
    Suite { file: "syntax/atidentifier_syntax_valid.txt", run: syntax::atidentifier_valid },
    Suite { file: "syntax/atidentifier_syntax_invalid.txt", run: syntax::atidentifier_invalid },
    Suite { file: "syntax/aturi_syntax_valid.txt", run: syntax::aturi_valid },
    Suite { file: "syntax/aturi_syntax_invalid.txt", run: syntax::aturi_invalid },
    Suite { file: "syntax/datetime_syntax_valid.txt", run: syntax::datetime_valid },
    Suite { file: "syntax/datetime_syntax_invalid.txt", run: syntax::datetime_invalid },
    Suite { file: "syntax/datetime_parse_invalid.txt", run: syntax::datetime_parse_invalid },
];

/// Fixture files that must be present and must run; CI fails otherwise.
pub const REQUIRED: &[&str] = &[
    "mst/key_heights.json",
    "mst/common_prefix.json",
    "mst/example_keys.txt",
    "firehose/commit-proof-fixtures.json",
    "crypto/signature-fixtures.json",
    "crypto/w3c_didkey_K256.json",
    "crypto/w3c_didkey_P256.json",
    "data-model/data-model-fixtures.json",
    "data-model/data-model-valid.json",
    "data-model/data-model-invalid.json",
    "syntax/did_syntax_valid.txt",
    "syntax/did_syntax_invalid.txt",
    "syntax/nsid_syntax_valid.txt",
    "syntax/nsid_syntax_invalid.txt",
    "syntax/recordkey_syntax_valid.txt",
    "syntax/recordkey_syntax_invalid.txt",
    "syntax/tid_syntax_valid.txt",
    "syntax/tid_syntax_invalid.txt",
    "syntax/cid_syntax_valid.txt",
    "syntax/cid_syntax_invalid.txt",
    "syntax/handle_syntax_valid.txt",
    "syntax/handle_syntax_invalid.txt",
    "syntax/atidentifier_syntax_valid.txt",
    "syntax/atidentifier_syntax_invalid.txt",
    "syntax/aturi_syntax_valid.txt",
    "syntax/aturi_syntax_invalid.txt",
    "syntax/datetime_syntax_valid.txt",
    "syntax/datetime_syntax_invalid.txt",
    "syntax/datetime_parse_invalid.txt",
];

/// The suite for a fixture file, if there is one.
pub fn find(file: &str) -> Option<&'static Suite> {
    SUITES.iter().find(|s| s.file == file)
}

/// Why a file without a suite is not run.
pub fn not_run_reason(file: &str) -> String {
    if file.starts_with("lexicon/") {
        "lexicon validation is out of scope for atrepo".to_owned()
    } else if file.starts_with("syntax/language_") {
        "atrepo validates no language tags: no repository or commit field is one".to_owned()
    } else if file.starts_with("syntax/uri_") {
        "atrepo validates at:// URIs only, not generic URIs".to_owned()
    } else {
        "no atrepo suite handles this file yet".to_owned()
    }
}

/// The value every leaf of the MST fixtures points to.
pub(crate) fn leaf_value() -> Result<cid::Cid> {
    Ok("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454".parse()?)
}
