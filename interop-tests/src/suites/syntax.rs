//! `syntax/`: identifier validators against the valid and invalid lists.
//!
//! A case is every line that is not empty and does not start with `#`,
//! kept exactly as written (some cases are about surrounding spaces).

use std::path::Path;

use anyhow::Result;
use atrepo::verify::syntax::{self, SyntaxError};

use crate::Case;

/// Runs `validate` on every case of the file at `path`, each expected to
/// pass (`valid`) or fail.
fn lines(
    path: &Path,
    what: &str,
    validate: fn(&str) -> Result<(), SyntaxError>,
    valid: bool,
) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let result = validate(line);
            let expected = if valid { format!("valid {what}") } else { format!("invalid {what}") };
            Case::check(name(line), expected, result.is_ok() == valid, || match result {
                Ok(()) => "accepted".to_owned(),
                Err(e) => format!("refused: {e}"),
            })
        })
        .collect())
}

/// The case's name: the input, quoted, shortened when long.
fn name(line: &str) -> String {
    const MAX: usize = 80;
    if line.len() <= MAX {
        return format!("{line:?}");
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &line[..end], line.len())
}

macro_rules! files {
    ($($fn_name:ident: $what:literal, $validate:path, $valid:literal;)*) => {
        $(
            #[doc = concat!("The `syntax/` file of ", $what, " cases (`",
                stringify!($fn_name), "`).")]
            pub(crate) fn $fn_name(path: &Path) -> Result<Vec<Case>> {
                lines(path, $what, $validate, $valid)
            }
        )*
    };
}

files! {
    did_valid: "did", syntax::did, true;
    did_invalid: "did", syntax::did, false;
    nsid_valid: "nsid", syntax::nsid, true;
    nsid_invalid: "nsid", syntax::nsid, false;
    recordkey_valid: "record key", syntax::record_key, true;
    recordkey_invalid: "record key", syntax::record_key, false;
    tid_valid: "tid", syntax::tid, true;
    tid_invalid: "tid", syntax::tid, false;
    cid_valid: "cid string", syntax::cid_string, true;
    cid_invalid: "cid string", syntax::cid_string, false;
    handle_valid: "handle", syntax::handle, true;
    handle_invalid: "handle", syntax::handle, false;
    atidentifier_valid: "at-identifier", syntax::at_identifier, true;
    atidentifier_invalid: "at-identifier", syntax::at_identifier, false;
    aturi_valid: "at-uri", syntax::at_uri, true;
    aturi_invalid: "at-uri", syntax::at_uri, false;
    datetime_valid: "datetime", syntax::datetime, true;
    datetime_invalid: "datetime", syntax::datetime, false;
    datetime_parse_invalid: "datetime", syntax::datetime, false;
}
