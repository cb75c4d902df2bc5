//! Identifier syntax: DID, NSID, record key, TID, repository path, handle,
//! AT URI, AT identifier, datetime and CID string, as the atproto syntax
//! specifications define them.
//!
//! Every validator takes `&str`, returns `Ok(())` or a [`SyntaxError`]
//! naming the identifier kind, the rule broken and, where it helps, the
//! byte offset and the character found there. They are byte loops: no
//! regular expressions, no allocation, linear in the input. `atrepo-mst`
//! calls [`repo_path`] or [`repo_path_lax`] on every key it decodes.
//!
//! Where the specifications and the reference implementations
//! (`@atproto/syntax`, indigo's `atproto/syntax`) leave room, these
//! validators follow the interop fixtures (`syntax/*.txt`), which pass in
//! full.

mod datetime;
#[cfg(test)]
mod tests;

use std::fmt;

pub use datetime::{DATETIME_MAX_LEN, datetime};

/// Which kind of identifier a [`SyntaxError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A DID ([`did`]).
    Did,
    /// A namespaced identifier ([`nsid`]).
    Nsid,
    /// A record key ([`record_key`]).
    RecordKey,
    /// A timestamp identifier ([`tid`]).
    Tid,
    /// A repository path, `collection/rkey` ([`repo_path`], [`repo_path_lax`]).
    RepoPath,
    /// A handle ([`handle`]).
    Handle,
    /// An `at://` URI ([`at_uri`]).
    AtUri,
    /// A handle or a DID ([`at_identifier`]).
    AtIdentifier,
    /// A datetime ([`datetime`]).
    Datetime,
    /// A CID in string form ([`cid_string`]).
    CidString,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Did => "did",
            Kind::Nsid => "nsid",
            Kind::RecordKey => "record key",
            Kind::Tid => "tid",
            Kind::RepoPath => "repo path",
            Kind::Handle => "handle",
            Kind::AtUri => "at-uri",
            Kind::AtIdentifier => "at-identifier",
            Kind::Datetime => "datetime",
            Kind::CidString => "cid string",
        })
    }
}

/// An identifier that breaks a syntax rule.
///
/// `rule` says what was expected; `offset` is the byte at fault when one
/// is, and `found` the character there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub struct SyntaxError {
    /// The kind of identifier being checked.
    pub kind: Kind,
    /// What was expected, as a lowercase phrase ("expected ...").
    pub rule: &'static str,
    /// Byte offset of the problem in the checked string, where one applies.
    pub offset: Option<usize>,
    /// The character at `offset`, where there is one.
    pub found: Option<char>,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}", self.kind)?;
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset}")?;
        }
        write!(f, ": {}", self.rule)?;
        if let Some(c) = self.found {
            write!(f, ", found {c:?}")?;
        }
        Ok(())
    }
}

/// A rule broken, before it is tied to a kind and an input: internal
/// checks return this and the public wrappers turn it into a
/// [`SyntaxError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fail {
    pub(crate) rule: &'static str,
    /// Byte offset in the string being checked.
    pub(crate) at: Option<usize>,
    /// Whether to report the character at `at` as found.
    pub(crate) show: bool,
}

impl Fail {
    /// A rule about the character at `at`.
    pub(crate) fn char(rule: &'static str, at: usize) -> Self {
        Fail { rule, at: Some(at), show: true }
    }

    /// A rule about a position, without naming the character.
    pub(crate) fn at(rule: &'static str, at: usize) -> Self {
        Fail { rule, at: Some(at), show: false }
    }

    /// A rule about the whole string.
    pub(crate) fn whole(rule: &'static str) -> Self {
        Fail { rule, at: None, show: false }
    }

    /// Shifts the offset by `base` (for a part checked on its own).
    fn shift(self, base: usize) -> Self {
        Fail { at: self.at.map(|a| a.saturating_add(base)), ..self }
    }

    /// Ties this failure to `input` (the whole string the caller passed).
    pub(crate) fn into_error(self, kind: Kind, input: &str) -> SyntaxError {
        let found = match (self.show, self.at) {
            (true, Some(at)) => input.get(at..).and_then(|rest| rest.chars().next()),
            _ => None,
        };
        SyntaxError { kind, rule: self.rule, offset: self.at, found }
    }
}

type Check = Result<(), Fail>;

/// Runs `check` on `s` and reports failures as `kind`.
fn run(kind: Kind, s: &str, check: impl FnOnce(&[u8]) -> Check) -> Result<(), SyntaxError> {
    check(s.as_bytes()).map_err(|f| f.into_error(kind, s))
}

/// Finds the first byte of `bytes` that `allowed` rejects.
fn first_disallowed(bytes: &[u8], allowed: impl Fn(u8) -> bool) -> Option<usize> {
    bytes.iter().position(|&b| !allowed(b))
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// Whether `b` may appear in a record key: letters, digits and `._~:-`.
pub(crate) const fn is_record_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'~')
}

fn is_did_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'%' | b'-')
}

/// Splits `bytes` on `.` and yields each label with its start offset.
fn labels(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0usize;
    bytes.split(|&b| b == b'.').map(move |label| {
        let at = start;
        start = start.saturating_add(label.len()).saturating_add(1);
        (at, label)
    })
}

// ---------------------------------------------------------------------------
// DID

/// Most bytes in a DID.
pub const DID_MAX_LEN: usize = 2048;

/// Validates a DID: `did:` + a lowercase method + `:` + an identifier of
/// letters, digits and `._:%-`, not ending in `:` or `%`, at most
/// [`DID_MAX_LEN`] bytes.
///
/// Any method is accepted (atproto's own are `plc` and `web`); percent
/// escapes are not decoded, as in the reference implementations.
pub fn did(s: &str) -> Result<(), SyntaxError> {
    run(Kind::Did, s, check_did)
}

fn check_did(b: &[u8]) -> Check {
    if b.len() > DID_MAX_LEN {
        return Err(Fail::at("expected at most 2048 bytes", DID_MAX_LEN));
    }
    let Some(rest) = b.strip_prefix(b"did:") else {
        return Err(Fail::at("expected the prefix \"did:\"", 0));
    };
    let Some(colon) = rest.iter().position(|&c| c == b':') else {
        return Err(Fail::at("expected \":\" after the did method", b.len()));
    };
    let method = rest.get(..colon).unwrap_or_default();
    if method.is_empty() {
        return Err(Fail::at("expected a did method of lowercase letters", 4));
    }
    if let Some(i) = first_disallowed(method, |c| c.is_ascii_lowercase()) {
        return Err(Fail::char(
            "expected a lowercase letter in the did method",
            i.saturating_add(4),
        ));
    }
    let id_start = 4usize.saturating_add(colon).saturating_add(1);
    let id = rest.get(colon.saturating_add(1)..).unwrap_or_default();
    if id.is_empty() {
        return Err(Fail::at("expected a method-specific identifier", id_start));
    }
    if let Some(i) = first_disallowed(id, is_did_byte) {
        let rule = "expected a letter, digit or one of \"._:%-\"";
        return Err(Fail::char(rule, id_start.saturating_add(i)));
    }
    if let Some(b':' | b'%') = id.last() {
        let rule = "expected the did not to end with \":\" or \"%\"";
        return Err(Fail::char(rule, b.len().saturating_sub(1)));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Handle

/// Most bytes in a handle (a DNS name).
pub const HANDLE_MAX_LEN: usize = 253;

/// Validates a handle: a DNS name of at least two labels of letters, digits
/// and hyphens, each 1 to 63 bytes, not starting or ending with a hyphen,
/// the last starting with a letter; at most [`HANDLE_MAX_LEN`] bytes.
///
/// Reserved top-level domains (`.local`, `.onion`, ...) are syntactically
/// valid; policy on them belongs to the caller.
pub fn handle(s: &str) -> Result<(), SyntaxError> {
    run(Kind::Handle, s, check_handle)
}

fn check_handle(b: &[u8]) -> Check {
    if let Some(i) = first_disallowed(b, |c| is_label_byte(c) || c == b'.') {
        return Err(Fail::char("expected a letter, digit, hyphen or period", i));
    }
    if b.len() > HANDLE_MAX_LEN {
        return Err(Fail::at("expected at most 253 bytes", HANDLE_MAX_LEN));
    }
    let count = labels(b).count();
    if count < 2 {
        return Err(Fail::whole("expected at least two labels separated by \".\""));
    }
    for (n, (at, label)) in labels(b).enumerate() {
        check_dns_label(label, at)?;
        let last = n.saturating_add(1) == count;
        if last && !label.first().is_some_and(u8::is_ascii_alphabetic) {
            return Err(Fail::char("expected the last label to start with a letter", at));
        }
    }
    Ok(())
}

/// A DNS label: 1 to 63 bytes, not starting or ending with a hyphen (the
/// characters are checked by the caller).
fn check_dns_label(label: &[u8], at: usize) -> Check {
    match label {
        [] => Err(Fail::at("expected a non-empty label", at)),
        _ if label.len() > 63 => Err(Fail::at("expected a label of at most 63 bytes", at)),
        [b'-', ..] => Err(Fail::char("expected a label not starting with a hyphen", at)),
        [.., b'-'] => {
            let end = at.saturating_add(label.len()).saturating_sub(1);
            Err(Fail::char("expected a label not ending with a hyphen", end))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// NSID

/// Most bytes in an NSID.
pub const NSID_MAX_LEN: usize = 317;

/// Validates an NSID: a domain authority in reverse order (at least two
/// labels of letters, digits and hyphens, each 1 to 63 bytes, not
/// starting or ending with a hyphen, the first starting with a letter)
/// then `.` and a name of 1 to 63 letters and digits starting with a
/// letter; at most [`NSID_MAX_LEN`] bytes in all.
///
/// The specification's 253-byte cap on the authority alone is not
/// enforced: the interop fixtures accept a longer one, as the reference
/// implementations do.
pub fn nsid(s: &str) -> Result<(), SyntaxError> {
    run(Kind::Nsid, s, |b| check_nsid(b, false))
}

/// Like [`nsid`], and also requires the normalized form: no uppercase
/// letters in the domain authority (the name is case-sensitive).
/// Repository paths need this form.
pub fn nsid_normalized(s: &str) -> Result<(), SyntaxError> {
    run(Kind::Nsid, s, |b| check_nsid(b, true))
}

fn check_nsid(b: &[u8], normalized: bool) -> Check {
    // Valid input takes the one-pass check; only failures pay for the
    // detailed passes, which find the rule broken and where.
    if nsid_fast(b, normalized) { Ok(()) } else { check_nsid_detailed(b, normalized) }
}

fn check_nsid_detailed(b: &[u8], normalized: bool) -> Check {
    if b.len() > NSID_MAX_LEN {
        return Err(Fail::at("expected at most 317 bytes", NSID_MAX_LEN));
    }
    if let Some(i) = first_disallowed(b, |c| is_label_byte(c) || c == b'.') {
        return Err(Fail::char("expected a letter, digit, hyphen or period", i));
    }
    let Some(dot) = b.iter().rposition(|&c| c == b'.') else {
        return Err(Fail::whole("expected at least three segments separated by \".\""));
    };
    let authority = b.get(..dot).unwrap_or_default();
    let name_at = dot.saturating_add(1);
    let name = b.get(name_at..).unwrap_or_default();
    if labels(authority).count() < 2 {
        return Err(Fail::whole("expected at least three segments separated by \".\""));
    }
    for (n, (at, label)) in labels(authority).enumerate() {
        check_dns_label(label, at)?;
        if n == 0 && !label.first().is_some_and(u8::is_ascii_alphabetic) {
            return Err(Fail::char("expected the first segment to start with a letter", at));
        }
    }
    if normalized && let Some(i) = authority.iter().position(u8::is_ascii_uppercase) {
        return Err(Fail::char("expected a lowercase (normalized) domain authority", i));
    }
    match name {
        [] => Err(Fail::at("expected a non-empty name segment", name_at)),
        _ if name.len() > 63 => Err(Fail::at("expected a name of at most 63 bytes", name_at)),
        [first, ..] if !first.is_ascii_alphabetic() => {
            Err(Fail::char("expected the name to start with a letter", name_at))
        }
        _ => match first_disallowed(name, is_alnum) {
            Some(i) => Err(Fail::char(
                "expected only letters and digits in the name",
                name_at.saturating_add(i),
            )),
            None => Ok(()),
        },
    }
}

/// One pass over `b`: whether it is a valid NSID (normalized, if asked).
/// Must accept exactly what [`check_nsid_detailed`] accepts; a unit test
/// compares the two on generated input.
fn nsid_fast(b: &[u8], normalized: bool) -> bool {
    if b.len() > NSID_MAX_LEN {
        return false;
    }
    let Some(dot) = b.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    let Some((authority, rest)) = b.split_at_checked(dot) else {
        return false;
    };
    // The name: 1 to 63 letters and digits, the first a letter.
    let name = rest.get(1..).unwrap_or_default();
    match name.first() {
        Some(&c) if class(c) & ALPHA != 0 && name.len() <= 63 => {}
        _ => return false,
    }
    if !all_of(name, ALNUM) {
        return false;
    }
    // The authority: at least two labels of 1 to 63 letters, digits and
    // hyphens, not starting or ending with a hyphen, the first starting
    // with a letter; no uppercase when normalized.
    let forbidden = if normalized { UPPER } else { 0 };
    let mut labels = 0usize;
    for label in authority.split(|&c| c == b'.') {
        let (Some(&first), Some(&last)) = (label.first(), label.last()) else {
            return false;
        };
        if label.len() > 63 || first == b'-' || last == b'-' {
            return false;
        }
        if labels == 0 && class(first) & ALPHA == 0 {
            return false;
        }
        let (mut all, mut any) = (LABEL, 0u8);
        for &c in label {
            let k = class(c);
            all &= k;
            any |= k;
        }
        if all == 0 || any & forbidden != 0 {
            return false;
        }
        labels = labels.wrapping_add(1);
    }
    labels >= 2
}

/// Whether every byte of `b` has class `bit`.
fn all_of(b: &[u8], bit: u8) -> bool {
    let mut all = bit;
    for &c in b {
        all &= class(c);
    }
    all != 0
}

/// Byte classes for the one-pass checks, one table lookup per byte.
const LABEL: u8 = 1;
const ALPHA: u8 = 2;
const UPPER: u8 = 4;
const RECORD_KEY: u8 = 8;
const ALNUM: u8 = 16;

#[allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    reason = "a compile-time table: i < 256 throughout"
)]
const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut k = 0;
        if c.is_ascii_alphanumeric() || c == b'-' {
            k |= LABEL;
        }
        if c.is_ascii_alphabetic() {
            k |= ALPHA;
        }
        if c.is_ascii_uppercase() {
            k |= UPPER;
        }
        if is_record_key_byte(c) {
            k |= RECORD_KEY;
        }
        if c.is_ascii_alphanumeric() {
            k |= ALNUM;
        }
        table[i] = k;
        i += 1;
    }
    table
};

/// The classes of byte `c`.
fn class(c: u8) -> u8 {
    CLASSES.get(usize::from(c)).copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Record key

/// Most bytes in a record key.
pub const RECORD_KEY_MAX_LEN: usize = 512;

/// Validates a record key: 1 to [`RECORD_KEY_MAX_LEN`] bytes of letters,
/// digits and `._~:-`, and neither `.` nor `..`.
pub fn record_key(s: &str) -> Result<(), SyntaxError> {
    run(Kind::RecordKey, s, check_record_key)
}

fn check_record_key(b: &[u8]) -> Check {
    if b.is_empty() {
        return Err(Fail::whole("expected at least one byte"));
    }
    if b.len() > RECORD_KEY_MAX_LEN {
        return Err(Fail::at("expected at most 512 bytes", RECORD_KEY_MAX_LEN));
    }
    if let Some(i) = first_disallowed(b, is_record_key_byte) {
        return Err(Fail::char("expected a letter, digit or one of \"._~:-\"", i));
    }
    if b == b"." || b == b".." {
        return Err(Fail::whole("expected a record key other than \".\" and \"..\""));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// TID

/// The base32-sortable alphabet TIDs are written in.
pub(crate) const TID_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// The value of a base32-sortable character, if it is one.
pub(crate) fn tid_digit(c: u8) -> Option<u8> {
    match c {
        b'2'..=b'7' => Some(c.wrapping_sub(b'2')),
        b'a'..=b'z' => Some(c.wrapping_sub(b'a').wrapping_add(6)),
        _ => None,
    }
}

/// Validates a TID: exactly 13 base32-sortable characters
/// (`234567a-z`), the first one of `234567a-j` so the value fits in 64
/// bits. [`Tid::parse`](crate::Tid::parse) also returns the value.
pub fn tid(s: &str) -> Result<(), SyntaxError> {
    run(Kind::Tid, s, check_tid)
}

pub(crate) fn check_tid(b: &[u8]) -> Check {
    if b.len() != 13 {
        return Err(Fail::whole("expected exactly 13 characters"));
    }
    if let Some(i) = first_disallowed(b, |c| tid_digit(c).is_some()) {
        return Err(Fail::char("expected a base32-sortable character (234567a-z)", i));
    }
    if b.first().and_then(|&c| tid_digit(c)).is_some_and(|d| d >= 16) {
        return Err(Fail::char("expected a first character in 234567a-j (high bit clear)", 0));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Repository paths

/// Most bytes [`repo_path_lax`] accepts: the MST key cap of the reference
/// implementations (indigo's `MAX_KEY_BYTES`).
pub const REPO_PATH_LAX_MAX_LEN: usize = 1024;

/// Validates a repository path (an MST key) strictly: a normalized NSID
/// ([`nsid_normalized`]), one `/`, and a record key ([`record_key`]), as the
/// repository specification requires of every path.
///
/// Offsets in errors are into the whole path.
pub fn repo_path(s: &str) -> Result<(), SyntaxError> {
    run(Kind::RepoPath, s, |b| {
        // Valid input takes the one-pass check; only failures pay for the
        // detailed one, which finds the rule broken and where.
        if is_repo_path(b) { Ok(()) } else { check_repo_path_detailed(b) }
    })
}

fn check_repo_path_detailed(b: &[u8]) -> Check {
    let slash = split_path(b)?;
    let collection = b.get(..slash).unwrap_or_default();
    let rkey_at = slash.saturating_add(1);
    let rkey = b.get(rkey_at..).unwrap_or_default();
    check_nsid(collection, true)?;
    check_record_key(rkey).map_err(|f| f.shift(rkey_at))
}

/// Whether `bytes` is a valid repository path: the same answer as
/// [`repo_path`] on the bytes as text (a valid path is ASCII, so bytes that
/// are not UTF-8 are refused), in one pass and without building an error.
///
/// For callers that check many keys and only need the details when one
/// fails: `atrepo-mst` checks every key of every node with it.
pub fn is_repo_path(bytes: &[u8]) -> bool {
    let Some(slash) = bytes.iter().position(|&c| c == b'/') else {
        return false;
    };
    let Some((collection, rest)) = bytes.split_at_checked(slash) else {
        return false;
    };
    let rkey = rest.get(1..).unwrap_or_default();
    // `/` is not a record key byte, so a second one fails here.
    nsid_fast(collection, true) && record_key_fast(rkey)
}

/// Whether `bytes` is a valid record key: the same answer as
/// [`record_key`] on the bytes as text, in one pass and without building an
/// error.
///
/// `atrepo-mst` uses it for a key that shares its collection and `/` with
/// the previous, already checked key of a node: the rest of the path is
/// then valid exactly when it is a record key.
pub fn is_record_key(bytes: &[u8]) -> bool {
    record_key_fast(bytes)
}

/// One pass over `b`: whether it is a valid record key. Must accept
/// exactly what [`check_record_key`] accepts.
fn record_key_fast(b: &[u8]) -> bool {
    if b.is_empty() || b.len() > RECORD_KEY_MAX_LEN || b == b"." || b == b".." {
        return false;
    }
    all_of(b, RECORD_KEY)
}

/// Validates a repository path as historical (v2-era) repositories wrote
/// them: exactly one `/`, both sides non-empty, every other byte a record
/// key character (letters, digits, `._~:-`), at most
/// [`REPO_PATH_LAX_MAX_LEN`] bytes. The collection need not be an NSID.
pub fn repo_path_lax(s: &str) -> Result<(), SyntaxError> {
    run(Kind::RepoPath, s, |b| {
        if b.len() > REPO_PATH_LAX_MAX_LEN {
            return Err(Fail::at("expected at most 1024 bytes", REPO_PATH_LAX_MAX_LEN));
        }
        let slash = split_path(b)?;
        if slash == 0 {
            return Err(Fail::at("expected a non-empty collection before \"/\"", 0));
        }
        if slash.saturating_add(1) == b.len() {
            return Err(Fail::at("expected a non-empty record key after \"/\"", b.len()));
        }
        match first_disallowed(b, |c| is_record_key_byte(c) || c == b'/') {
            Some(i) => Err(Fail::char("expected a letter, digit or one of \"._~:-\"", i)),
            None => Ok(()),
        }
    })
}

/// The offset of the one `/` in a path.
fn split_path(b: &[u8]) -> Result<usize, Fail> {
    let mut slashes = b.iter().enumerate().filter(|&(_, &c)| c == b'/').map(|(i, _)| i);
    let Some(first) = slashes.next() else {
        return Err(Fail::whole("expected \"collection/rkey\" with one \"/\""));
    };
    if let Some(second) = slashes.next() {
        return Err(Fail::char("expected exactly one \"/\"", second));
    }
    Ok(first)
}

// ---------------------------------------------------------------------------
// AT identifier and AT URI

/// Validates an AT identifier: a DID if it starts with `did:`, else a
/// handle.
pub fn at_identifier(s: &str) -> Result<(), SyntaxError> {
    run(Kind::AtIdentifier, s, check_at_identifier)
}

fn check_at_identifier(b: &[u8]) -> Check {
    if b.starts_with(b"did:") { check_did(b) } else { check_handle(b) }
}

/// Most bytes in an AT URI.
pub const AT_URI_MAX_LEN: usize = 8192;

/// Validates an AT URI in the form Lexicon's `at-uri` format allows:
/// `at://` + an AT identifier, then optionally `/` + an NSID, then
/// optionally `/` + a record key. No query, no fragment, no trailing
/// slash; at most [`AT_URI_MAX_LEN`] bytes.
pub fn at_uri(s: &str) -> Result<(), SyntaxError> {
    run(Kind::AtUri, s, |b| {
        if b.len() > AT_URI_MAX_LEN {
            return Err(Fail::at("expected at most 8192 bytes", AT_URI_MAX_LEN));
        }
        let Some(rest) = b.strip_prefix(b"at://") else {
            return Err(Fail::at("expected the prefix \"at://\"", 0));
        };
        let mut parts = rest.split(|&c| c == b'/');
        let mut at = 5usize;
        let authority = parts.next().unwrap_or_default();
        check_at_identifier(authority).map_err(|f| f.shift(at))?;
        at = at.saturating_add(authority.len()).saturating_add(1);
        if let Some(collection) = parts.next() {
            if collection.is_empty() {
                return Err(Fail::at("expected a collection nsid after \"/\"", at));
            }
            check_nsid(collection, false).map_err(|f| f.shift(at))?;
            at = at.saturating_add(collection.len()).saturating_add(1);
        }
        if let Some(rkey) = parts.next() {
            if rkey.is_empty() {
                return Err(Fail::at("expected a record key after \"/\"", at));
            }
            check_record_key(rkey).map_err(|f| f.shift(at))?;
            at = at.saturating_add(rkey.len());
        }
        if parts.next().is_some() {
            return Err(Fail::char("expected at most two path segments", at));
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// CID string

/// Validates a CID in string form, as Lexicon's `cid` format does: 8 to
/// 256 characters of letters, digits, `+` and `=` (multibase alphabets),
/// and not a CIDv0 (`Qm...`). This is a syntax check only; decoding is
/// `cid::Cid::try_from`.
pub fn cid_string(s: &str) -> Result<(), SyntaxError> {
    run(Kind::CidString, s, |b| {
        if b.len() < 8 {
            return Err(Fail::whole("expected at least 8 characters"));
        }
        if b.len() > 256 {
            return Err(Fail::at("expected at most 256 characters", 256));
        }
        if let Some(i) =
            first_disallowed(b, |c| c.is_ascii_alphanumeric() || c == b'+' || c == b'=')
        {
            return Err(Fail::char("expected a letter, digit, \"+\" or \"=\"", i));
        }
        if b.starts_with(b"Qm") {
            return Err(Fail::at("expected a CIDv1, found a CIDv0 (\"Qm\" prefix)", 0));
        }
        Ok(())
    })
}
