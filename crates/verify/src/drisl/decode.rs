//! [`Decoder`]: a strict DRISL cursor that never indexes, never allocates
//! and never panics.

use std::fmt;

use cid::Cid;
use cid::multihash::Multihash;

/// A DRISL decoding failure: what was wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{problem} at offset {offset}")]
pub struct DecodeError {
    /// Offset of the offending item, from the start of the block.
    pub offset: u64,
    /// What is wrong.
    pub problem: Problem,
}

/// The kinds of CBOR item, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// An unsigned integer.
    Unsigned,
    /// A negative integer.
    Negative,
    /// A byte string.
    Bytes,
    /// A text string.
    Text,
    /// An array.
    Array,
    /// A map.
    Map,
    /// A tag (42 is a CID link).
    Tag,
    /// `false` or `true`.
    Bool,
    /// `null`.
    Null,
    /// Anything else of major type 7: floats, `undefined`, other simple
    /// values, the break code.
    Other,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Unsigned => "an unsigned integer",
            Kind::Negative => "a negative integer",
            Kind::Bytes => "a byte string",
            Kind::Text => "a text string",
            Kind::Array => "an array",
            Kind::Map => "a map",
            Kind::Tag => "a tag",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
            Kind::Other => "a float or simple value",
        })
    }
}

/// What was wrong with DRISL input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// The input ends inside an item.
    Truncated,
    /// Bytes follow the top-level item.
    TrailingBytes,
    /// An integer, length or tag has a shorter encoding.
    NotMinimal,
    /// An indefinite-length string, array or map.
    Indefinite,
    /// A reserved additional-information value (28 to 30).
    Reserved,
    /// A floating-point number; atproto data has none.
    Float,
    /// `undefined` or a simple value other than `false`, `true`, `null`.
    Simple,
    /// A tag other than 42.
    Tag {
        /// The tag found.
        found: u64,
    },
    /// An item of the wrong kind.
    Unexpected {
        /// What the schema wanted.
        expected: &'static str,
        /// What the input had.
        found: Kind,
    },
    /// A map key that is not a text string.
    KeyNotText,
    /// A map key that does not sort after the one before it (unsorted or
    /// duplicate keys).
    KeyOrder,
    /// A fixed-schema map with a key other than the one due at this point.
    UnexpectedKey {
        /// The key the schema wanted next.
        expected: &'static str,
        /// The key found (at most 64 bytes of it, lossily decoded).
        found: String,
    },
    /// A fixed-schema map with the wrong number of entries.
    MapLength {
        /// The schema's number of entries.
        expected: &'static str,
        /// The number found.
        found: u64,
    },
    /// A text string that is not UTF-8.
    InvalidUtf8,
    /// An integer outside the signed 64-bit range.
    IntegerOverflow,
    /// A tag-42 link whose bytes do not start with `0x00` or are not
    /// exactly one CID.
    InvalidLink,
    /// A link that is a valid CID but not one atproto allows here.
    UnblessedLink {
        /// What was required.
        expected: &'static str,
        /// The link found, and what kind of CID it is (`bafk... (CIDv1,
        /// raw, sha2-256)`). Boxed, not a `String`: a second variant of a
        /// `String`'s size would cost the enum a separate tag (8 bytes on
        /// every decoder `Result`).
        found: Box<str>,
    },
    /// Well-formed DRISL that breaks an atproto data model rule (a bad
    /// `$type`, a malformed blob object, a top level that is not a map).
    DataModel {
        /// The rule broken.
        rule: &'static str,
    },
    /// Nesting deeper than the limit.
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// An array or map with more entries than the limit.
    TooLong {
        /// The limit.
        limit: u64,
        /// The number of entries declared.
        found: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Truncated => f.write_str("truncated cbor"),
            Problem::TrailingBytes => f.write_str("trailing bytes after the cbor value"),
            Problem::NotMinimal => f.write_str("non-minimal cbor integer or length"),
            Problem::Indefinite => f.write_str("indefinite-length cbor item"),
            Problem::Reserved => f.write_str("reserved cbor additional information"),
            Problem::Float => f.write_str("floating-point number (atproto data has none)"),
            Problem::Simple => f.write_str("cbor simple value other than false, true, null"),
            Problem::Tag { found } => write!(f, "cbor tag {found}: expected only tag 42"),
            Problem::Unexpected { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            Problem::KeyNotText => f.write_str("map key is not a text string"),
            Problem::KeyOrder => f.write_str("map keys not in canonical order (or duplicated)"),
            Problem::UnexpectedKey { expected, found } => {
                write!(f, "expected map key {expected:?}, found {found:?}")
            }
            Problem::MapLength { expected, found } => {
                write!(f, "expected a map of {expected} entries, found {found}")
            }
            Problem::InvalidUtf8 => f.write_str("text string is not valid utf-8"),
            Problem::IntegerOverflow => f.write_str("integer outside the signed 64-bit range"),
            Problem::InvalidLink => {
                f.write_str("cid link is not a 0x00 byte followed by exactly one cid")
            }
            Problem::UnblessedLink { expected, found } => {
                write!(f, "expected {expected} cid link, found {found}")
            }
            Problem::DataModel { rule } => write!(f, "data model violation: {rule}"),
            Problem::TooDeep { limit } => write!(f, "nesting deeper than {limit}"),
            Problem::TooLong { limit, found } => {
                write!(f, "container of {found} entries exceeds the limit of {limit}")
            }
        }
    }
}

/// `Result` with [`DecodeError`].
pub(crate) type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// A strict DRISL cursor over one block.
///
/// Each method reads one item of the named kind or fails with the offset
/// and the problem. Methods that read containers return the declared entry
/// count, already checked against the bytes left (every entry takes at
/// least one byte), so loops over it are bounded by the input size.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

/// A decoded CBOR head.
#[derive(Debug, Clone, Copy)]
struct Head {
    major: u8,
    arg: u64,
    /// Offset of the head's first byte.
    at: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `input`.
    #[inline]
    pub fn new(input: &'a [u8]) -> Self {
        Decoder { input, pos: 0 }
    }

    /// Offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes not yet read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    /// Fails unless every byte was read.
    #[inline]
    pub fn finish(&self) -> Result<()> {
        if self.remaining() == 0 { Ok(()) } else { Err(self.error(Problem::TrailingBytes)) }
    }

    /// An error at the current offset.
    pub fn error(&self, problem: Problem) -> DecodeError {
        DecodeError { offset: self.pos as u64, problem }
    }

    fn error_at(at: usize, problem: Problem) -> DecodeError {
        DecodeError { offset: at as u64, problem }
    }

    /// The kind of the next item, without reading it.
    #[inline]
    pub fn peek_kind(&self) -> Result<Kind> {
        let Some(&initial) = self.input.get(self.pos) else {
            return Err(self.error(Problem::Truncated));
        };
        Ok(kind_of(initial))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.input.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    /// Reads a head, enforcing minimal, definite encodings and refusing
    /// floats and simple values other than false, true and null.
    #[inline]
    fn head(&mut self) -> Result<Head> {
        let at = self.pos;
        let Some(&initial) = self.input.get(at) else {
            return Err(self.error(Problem::Truncated));
        };
        self.pos = at.saturating_add(1);
        let major = initial >> 5;
        let info = initial & 0x1f;
        if major == 7 {
            return match info {
                20..=22 => Ok(Head { major, arg: u64::from(info), at }),
                25..=27 => Err(Self::error_at(at, Problem::Float)),
                28..=30 => Err(Self::error_at(at, Problem::Reserved)),
                31 => Err(Self::error_at(at, Problem::Indefinite)),
                _ => Err(Self::error_at(at, Problem::Simple)),
            };
        }
        let (len, min) = match info {
            0..=23 => return Ok(Head { major, arg: u64::from(info), at }),
            24 => (1, 24),
            25 => (2, 0x100),
            26 => (4, 0x1_0000),
            27 => (8, 0x1_0000_0000),
            28..=30 => return Err(Self::error_at(at, Problem::Reserved)),
            _ => return Err(Self::error_at(at, Problem::Indefinite)),
        };
        let Some(bytes) = self.take(len) else {
            return Err(Self::error_at(at, Problem::Truncated));
        };
        let arg = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if arg < min {
            return Err(Self::error_at(at, Problem::NotMinimal));
        }
        Ok(Head { major, arg, at })
    }

    #[inline]
    fn head_of(&mut self, major: u8, expected: &'static str) -> Result<Head> {
        let head = self.head()?;
        if head.major != major || (major == 7) {
            // `head` read the initial byte at `head.at`, so it is there.
            let found = self.input.get(head.at).map_or(Kind::Other, |&b| kind_of(b));
            return Err(Self::error_at(head.at, Problem::Unexpected { expected, found }));
        }
        Ok(head)
    }

    /// Reads an unsigned integer.
    #[inline]
    pub fn uint(&mut self) -> Result<u64> {
        Ok(self.head_of(0, "an unsigned integer")?.arg)
    }

    /// Reads a signed integer that fits in `i64`.
    pub fn int(&mut self) -> Result<i64> {
        let kind = self.peek_kind()?;
        let head = self.head()?;
        let value = match head.major {
            0 => i64::try_from(head.arg).ok(),
            // -1 - arg, which fits exactly when arg <= i64::MAX.
            1 => i64::try_from(head.arg).ok().and_then(|n| (-1i64).checked_sub(n)),
            _ => {
                let problem = Problem::Unexpected { expected: "an integer", found: kind };
                return Err(Self::error_at(head.at, problem));
            }
        };
        value.ok_or_else(|| Self::error_at(head.at, Problem::IntegerOverflow))
    }

    /// Reads `false` or `true`.
    pub fn bool(&mut self) -> Result<bool> {
        match self.peek_kind()? {
            Kind::Bool => {
                let head = self.head()?;
                Ok(head.arg == 21)
            }
            found => Err(self.error(Problem::Unexpected { expected: "a boolean", found })),
        }
    }

    /// Reads `null` if it comes next and says whether it did.
    #[inline]
    pub fn null(&mut self) -> Result<bool> {
        if self.peek_kind()? == Kind::Null {
            self.pos = self.pos.saturating_add(1);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Reads a byte string, borrowing it.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let head = self.head_of(2, "a byte string")?;
        self.payload(head)
    }

    /// Reads a UTF-8 text string, borrowing it.
    pub fn text(&mut self) -> Result<&'a str> {
        let head = self.head_of(3, "a text string")?;
        let bytes = self.payload(head)?;
        std::str::from_utf8(bytes).map_err(|_| Self::error_at(head.at, Problem::InvalidUtf8))
    }

    /// The payload of text string `head`, checked to be UTF-8 (without
    /// making a `str` of it, which the record validator does not need).
    #[inline]
    fn utf8_payload(&mut self, head: Head) -> Result<&'a [u8]> {
        let bytes = self.payload(head)?;
        if super::is_utf8(bytes) {
            Ok(bytes)
        } else {
            Err(Self::error_at(head.at, Problem::InvalidUtf8))
        }
    }

    #[inline]
    fn payload(&mut self, head: Head) -> Result<&'a [u8]> {
        usize::try_from(head.arg)
            .ok()
            .and_then(|n| self.take(n))
            .ok_or_else(|| Self::error_at(head.at, Problem::Truncated))
    }

    /// Reads an array head and returns its length, which is at most the
    /// number of bytes left.
    #[inline]
    pub fn array(&mut self) -> Result<u64> {
        let head = self.head_of(4, "an array")?;
        self.count(head, 1)
    }

    /// Reads a map head and returns its number of entries, which is at most
    /// half the number of bytes left.
    #[inline]
    pub fn map(&mut self) -> Result<u64> {
        let head = self.head_of(5, "a map")?;
        self.count(head, 2)
    }

    #[inline]
    fn count(&self, head: Head, min_bytes_each: u64) -> Result<u64> {
        if head.arg.saturating_mul(min_bytes_each) > self.remaining() as u64 {
            return Err(Self::error_at(head.at, Problem::Truncated));
        }
        Ok(head.arg)
    }

    /// Reads a map head that must have exactly `n` entries.
    #[inline]
    pub fn map_of(&mut self, n: u64, expected: &'static str) -> Result<()> {
        let at = self.pos;
        let found = self.map()?;
        if found == n {
            Ok(())
        } else {
            Err(Self::error_at(at, Problem::MapLength { expected, found }))
        }
    }

    /// Reads a map key that must be exactly `key`. Fixed schemas call this
    /// with their keys in canonical order, which rules out unsorted,
    /// duplicate and unknown keys.
    #[inline]
    pub fn key(&mut self, key: &'static str) -> Result<()> {
        // Fast path: the one valid encoding of a short key is its length
        // head and its bytes. Anything else takes the checked path, which
        // accepts nothing more and names what is wrong.
        if let Ok(len @ 0..24) = u8::try_from(key.len())
            && let Some((&head, rest)) = self.input.get(self.pos..).and_then(<[u8]>::split_first)
            && head == 0x60 | len
            && rest.starts_with(key.as_bytes())
        {
            self.pos = self.pos.saturating_add(key.len()).saturating_add(1);
            return Ok(());
        }
        self.key_checked(key)
    }

    #[cold]
    fn key_checked(&mut self, key: &'static str) -> Result<()> {
        let at = self.pos;
        let found = self.text_key()?;
        if found == key.as_bytes() {
            Ok(())
        } else {
            let found = String::from_utf8_lossy(found.get(..64).unwrap_or(found)).into_owned();
            Err(Self::error_at(at, Problem::UnexpectedKey { expected: key, found }))
        }
    }

    /// Reads a map key of open data: a text string, returned as bytes.
    pub fn text_key(&mut self) -> Result<&'a [u8]> {
        let at = self.pos;
        match self.peek_kind()? {
            Kind::Text => {
                let head = self.head_of(3, "a text string")?;
                self.utf8_payload(head)
            }
            _ => Err(Self::error_at(at, Problem::KeyNotText)),
        }
    }

    /// Reads a CID link (tag 42), any CID the `cid` crate accepts.
    #[inline]
    pub fn link(&mut self) -> Result<Cid> {
        match self.canonical_blessed_link(false) {
            Some(cid) => Ok(cid),
            None => self.link_checked(),
        }
    }

    #[inline(never)]
    fn link_checked(&mut self) -> Result<Cid> {
        let at = self.pos;
        let bytes = self.link_bytes()?;
        parse_cid(bytes).ok_or_else(|| Self::error_at(at, Problem::InvalidLink))
    }

    /// Reads a CID link that must be blessed: CIDv1, dag-cbor or raw,
    /// sha2-256.
    pub fn blessed_link(&mut self) -> Result<Cid> {
        let at = self.pos;
        let cid = self.link()?;
        Self::blessed_at(at, cid)
    }

    /// `cid`, read at `at`, if it is blessed.
    fn blessed_at(at: usize, cid: Cid) -> Result<Cid> {
        if is_blessed(&cid) {
            Ok(cid)
        } else {
            Err(Self::error_at(
                at,
                Problem::UnblessedLink { expected: BLESSED, found: describe_cid(&cid) },
            ))
        }
    }

    /// Reads a link to a DAG-CBOR block (a commit's `data`, an MST node's
    /// children): CIDv1, dag-cbor, sha2-256.
    #[inline]
    pub fn node_link(&mut self) -> Result<Cid> {
        match self.canonical_blessed_link(true) {
            Some(cid) => Ok(cid),
            None => self.node_link_checked(),
        }
    }

    #[inline(never)]
    fn node_link_checked(&mut self) -> Result<Cid> {
        let at = self.pos;
        let cid = self.link_checked()?;
        if is_blessed(&cid) && cid.codec() == DAG_CBOR {
            Ok(cid)
        } else {
            Err(Self::error_at(
                at,
                Problem::UnblessedLink { expected: NODE, found: describe_cid(&cid) },
            ))
        }
    }

    /// Reads `null` or a [`node_link`](Self::node_link).
    #[inline]
    pub fn node_link_or_null(&mut self) -> Result<Option<Cid>> {
        if self.null()? { Ok(None) } else { self.node_link().map(Some) }
    }

    /// Fast path for links: reads a blessed sha2-256 CID (dag-cbor only if
    /// `node`, else dag-cbor or raw) in the one canonical encoding of such a
    /// link, or reads nothing and returns `None`. Everything it accepts the
    /// checked path accepts with the same result.
    #[inline]
    fn canonical_blessed_link(&mut self, node: bool) -> Option<Cid> {
        // Tag 42, a byte string of 37 bytes, the 0x00 prefix, CIDv1.
        const START: [u8; 6] = [0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01];
        let rest = self.input.get(self.pos..)?;
        let (start, rest) = rest.split_first_chunk::<6>()?;
        let ([codec, SHA2_256_BYTE, 0x20], rest) = rest.split_first_chunk::<3>()? else {
            return None;
        };
        if *start != START || !(*codec == 0x71 || (!node && *codec == 0x55)) {
            return None;
        }
        let digest = rest.get(..32)?;
        let hash = Multihash::wrap(SHA2_256, digest).ok()?;
        self.pos = self.pos.checked_add(41)?;
        Some(Cid::new_v1(u64::from(*codec), hash))
    }

    fn link_bytes(&mut self) -> Result<&'a [u8]> {
        let kind = self.peek_kind()?;
        let head = self.head()?;
        if head.major != 6 {
            let problem = Problem::Unexpected { expected: "a cid link", found: kind };
            return Err(Self::error_at(head.at, problem));
        }
        self.tag_content(head)
    }

    /// Given a tag head, checks it is 42 and returns the CID bytes after the
    /// `0x00` prefix.
    fn tag_content(&mut self, head: Head) -> Result<&'a [u8]> {
        if head.arg != 42 {
            return Err(Self::error_at(head.at, Problem::Tag { found: head.arg }));
        }
        let at = self.pos;
        let kind = self.peek_kind()?;
        let inner = self.head()?;
        if inner.major != 2 {
            let problem =
                Problem::Unexpected { expected: "a byte string in a cid link", found: kind };
            return Err(Self::error_at(at, problem));
        }
        match self.payload(inner)? {
            [0x00, cid @ ..] => Ok(cid),
            _ => Err(Self::error_at(at, Problem::InvalidLink)),
        }
    }

    /// Reads and validates one item of any kind (nested items included)
    /// without allocating beyond one small frame per nesting level.
    ///
    /// Iterative: nesting is bounded by `limits.max_depth`, containers by
    /// `limits.max_container_len`, and the work by the input length.
    pub fn skip(&mut self, limits: &super::Limits) -> Result<()> {
        self.walk(limits, false)
    }

    /// Like [`skip`](Self::skip), and also checks the atproto data model
    /// rules: `$type`, where present, is a non-empty string, and an object
    /// whose `$type` is `"blob"` has a `ref` link, a `mimeType` string and
    /// an integer `size`.
    pub fn skip_data_model(&mut self, limits: &super::Limits) -> Result<()> {
        self.walk(limits, true)
    }

    fn walk(&mut self, limits: &super::Limits, data_model: bool) -> Result<()> {
        // One frame per open container: entries left, and for maps the
        // previous key (canonical order) and what the data model needs.
        let mut stack = Stack::default();
        let mut started = false;
        loop {
            let mut key: Option<&'a [u8]> = None;
            if let Some(top) = stack.last_mut() {
                if top.left == 0 {
                    if data_model && top.blob.is_blob() && !top.blob.is_complete() {
                        let rule = "a blob needs a ref link, a mimeType string and an integer size";
                        return Err(Self::error_at(top.at, Problem::DataModel { rule }));
                    }
                    stack.pop();
                    continue;
                }
                top.left = top.left.saturating_sub(1);
                if top.is_map {
                    let key_at = self.pos;
                    let k = self.text_key()?;
                    if let Some(prev) = top.prev_key
                        && !super::key_precedes(prev, k)
                    {
                        return Err(Self::error_at(key_at, Problem::KeyOrder));
                    }
                    top.prev_key = Some(k);
                    key = Some(k);
                }
            } else if started {
                return Ok(());
            }
            started = true;
            let head = self.head()?;
            let mut text: Option<&'a [u8]> = None;
            match head.major {
                0 | 1 if head.arg > i64::MAX as u64 => {
                    return Err(Self::error_at(head.at, Problem::IntegerOverflow));
                }
                2 => {
                    self.payload(head)?;
                }
                3 => text = Some(self.utf8_payload(head)?),
                4 | 5 => {}
                // Any CID that parses: links inside records are not held
                // to the blessed formats. Upstream enforces those for the
                // repository's own structure only (bluesky-social/atproto
                // #814: commits, MST nodes and their record links, which
                // the commit and node decoders check); for links in records
                // (#815) nothing enforces them yet, and the data model
                // spec calls sha2-256 "preferred". A repository holding
                // such a record is one the network accepts.
                6 => {
                    let at = head.at;
                    let cid = self.tag_content(head)?;
                    if parse_cid(cid).is_none() {
                        return Err(Self::error_at(at, Problem::InvalidLink));
                    }
                }
                // head() lets only false, true and null through here.
                _ => {}
            }
            if data_model && let (Some(key), Some(parent)) = (key, stack.last_mut()) {
                parent
                    .blob
                    .see(key, head.major, text)
                    .map_err(|rule| Self::error_at(head.at, Problem::DataModel { rule }))?;
            }
            if let 4 | 5 = head.major {
                let is_map = head.major == 5;
                let n = self.count(head, if is_map { 2 } else { 1 })?;
                if n > limits.max_container_len {
                    let problem = Problem::TooLong { limit: limits.max_container_len, found: n };
                    return Err(Self::error_at(head.at, problem));
                }
                if stack.len() >= limits.max_depth {
                    let problem = Problem::TooDeep { limit: limits.max_depth };
                    return Err(Self::error_at(head.at, problem));
                }
                stack.push(Frame {
                    left: n,
                    is_map,
                    prev_key: None,
                    at: head.at,
                    blob: Blob::default(),
                });
            }
        }
    }
}

/// What the data model checks need to know about one map.
#[derive(Debug, Default, Clone, Copy)]
struct Blob {
    type_blob: bool,
    has_ref: bool,
    has_mime: bool,
    has_size: bool,
}

impl Blob {
    /// Records a key and its value's major type (and text, for strings).
    fn see(&mut self, key: &[u8], major: u8, text: Option<&[u8]>) -> Result<(), &'static str> {
        match key {
            b"$type" => match text {
                Some(b"") => return Err("$type must not be empty"),
                Some(t) => self.type_blob = t == b"blob",
                None => return Err("$type must be a string"),
            },
            b"ref" => self.has_ref = major == 6,
            b"mimeType" => self.has_mime = major == 3,
            b"size" => self.has_size = major == 0,
            _ => {}
        }
        Ok(())
    }

    fn is_blob(&self) -> bool {
        self.type_blob
    }

    fn is_complete(&self) -> bool {
        self.has_ref && self.has_mime && self.has_size
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Frame<'a> {
    left: u64,
    is_map: bool,
    prev_key: Option<&'a [u8]>,
    at: usize,
    blob: Blob,
}

/// Open containers held on the stack before [`Stack`] needs the heap:
/// records rarely nest deeper, and one allocation per record showed in
/// profiles of the record validator.
const INLINE_FRAMES: usize = 8;

/// The walk's frames: the first [`INLINE_FRAMES`] inline, deeper ones in a
/// vector (the depth itself is bounded by the caller's limits).
#[derive(Default)]
struct Stack<'a> {
    inline: [Frame<'a>; INLINE_FRAMES],
    len: usize,
    more: Vec<Frame<'a>>,
}

impl<'a> Stack<'a> {
    #[inline]
    fn len(&self) -> usize {
        self.len.saturating_add(self.more.len())
    }

    #[inline]
    fn last_mut(&mut self) -> Option<&mut Frame<'a>> {
        if let Some(top) = self.more.last_mut() {
            return Some(top);
        }
        self.inline.get_mut(self.len.checked_sub(1)?)
    }

    #[inline]
    fn push(&mut self, frame: Frame<'a>) {
        match self.inline.get_mut(self.len) {
            Some(slot) if self.more.is_empty() => {
                *slot = frame;
                self.len = self.len.saturating_add(1);
            }
            _ => self.more.push(frame),
        }
    }

    #[inline]
    fn pop(&mut self) {
        if self.more.pop().is_none() {
            self.len = self.len.saturating_sub(1);
        }
    }
}

const DAG_CBOR: u64 = 0x71;
const RAW: u64 = 0x55;
const SHA2_256: u64 = 0x12;
/// [`SHA2_256`] as its one-byte varint.
const SHA2_256_BYTE: u8 = 0x12;
const BLESSED: &str = "a blessed (CIDv1, dag-cbor or raw, sha2-256)";
const NODE: &str = "a CIDv1 dag-cbor sha2-256";

/// The kind of the item whose initial byte is `initial`.
fn kind_of(initial: u8) -> Kind {
    match initial >> 5 {
        0 => Kind::Unsigned,
        1 => Kind::Negative,
        2 => Kind::Bytes,
        3 => Kind::Text,
        4 => Kind::Array,
        5 => Kind::Map,
        6 => Kind::Tag,
        _ => match initial {
            0xf4 | 0xf5 => Kind::Bool,
            0xf6 => Kind::Null,
            _ => Kind::Other,
        },
    }
}

/// Whether `cid` is one of atproto's blessed CIDs.
pub(crate) fn is_blessed(cid: &Cid) -> bool {
    cid.version() == cid::Version::V1
        && matches!(cid.codec(), DAG_CBOR | RAW)
        && cid.hash().code() == SHA2_256
        && cid.hash().size() == 32
}

/// `cid` and what kind of CID it is: its version, codec and hash, named
/// where atproto uses them (`bafk... (CIDv1, raw, sha2-256)`, `Qm...
/// (CIDv0)`, `bafy... (CIDv1, codec 0x70, hash 0x13 of 64 bytes)`). For
/// errors only.
#[cold]
fn describe_cid(cid: &Cid) -> Box<str> {
    let kind = if cid.version() == cid::Version::V0 {
        "CIDv0".to_owned()
    } else {
        let codec = match cid.codec() {
            DAG_CBOR => "dag-cbor".to_owned(),
            RAW => "raw".to_owned(),
            codec => format!("codec {codec:#x}"),
        };
        let hash = match (cid.hash().code(), cid.hash().size()) {
            (SHA2_256, 32) => "sha2-256".to_owned(),
            (code, size) => format!("hash {code:#x} of {size} bytes"),
        };
        format!("CIDv1, {codec}, {hash}")
    };
    format!("{cid} ({kind})").into_boxed_str()
}

/// Parses exactly one binary CID from `bytes`.
pub(crate) fn parse_cid(bytes: &[u8]) -> Option<Cid> {
    // Fast path for the blessed form.
    if let [0x01, codec @ (0x71 | 0x55), 0x12, 0x20, digest @ ..] = bytes
        && digest.len() == 32
    {
        return Multihash::wrap(SHA2_256, digest).ok().map(|mh| Cid::new_v1(u64::from(*codec), mh));
    }
    let mut rest = bytes;
    let cid = Cid::read_bytes(&mut rest).ok()?;
    rest.is_empty().then_some(cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every decoder call returns a `Result` carrying a `DecodeError`: a
    /// variant that grows `Problem` grows all of them (a review measured
    /// 48 to 56 bytes when an error field was a second `String`).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn decode_errors_stay_small() {
        assert!(size_of::<Problem>() <= 40);
        assert!(size_of::<Result<u64>>() <= 48);
    }

    fn err(bytes: &[u8], f: impl FnOnce(&mut Decoder<'_>) -> Result<()>) -> Problem {
        let mut d = Decoder::new(bytes);
        f(&mut d).and_then(|()| d.finish()).unwrap_err().problem
    }

    #[test]
    fn integers_are_minimal_and_in_range() {
        assert_eq!(Decoder::new(&[0x17]).uint(), Ok(23));
        assert_eq!(Decoder::new(&[0x18, 0x18]).uint(), Ok(24));
        assert_eq!(err(&[0x18, 0x17], |d| d.uint().map(drop)), Problem::NotMinimal);
        assert_eq!(err(&[0x19, 0x00, 0xff], |d| d.uint().map(drop)), Problem::NotMinimal);
        assert_eq!(Decoder::new(&[0x20]).int(), Ok(-1));
        let min = [0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Decoder::new(&min).int(), Ok(i64::MIN));
        let too_small = [0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(err(&too_small, |d| d.int().map(drop)), Problem::IntegerOverflow);
    }

    #[test]
    fn floats_and_simple_values_are_refused() {
        for bytes in [&[0xf9, 0, 0][..], &[0xfa, 0, 0, 0, 0], &[0xfb, 0, 0, 0, 0, 0, 0, 0, 0]] {
            assert_eq!(err(bytes, |d| d.skip(&Default::default())), Problem::Float);
        }
        assert_eq!(err(&[0xf7], |d| d.skip(&Default::default())), Problem::Simple);
        assert_eq!(err(&[0xf8, 0x20], |d| d.skip(&Default::default())), Problem::Simple);
        assert_eq!(err(&[0x9f], |d| d.skip(&Default::default())), Problem::Indefinite);
    }

    #[test]
    fn keys_are_checked_in_open_maps() {
        // {"b": 1, "a": 2}: unsorted.
        let unsorted = [0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02];
        assert_eq!(err(&unsorted, |d| d.skip(&Default::default())), Problem::KeyOrder);
        // {"a": 1, "a": 2}: duplicate.
        let dup = [0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02];
        assert_eq!(err(&dup, |d| d.skip(&Default::default())), Problem::KeyOrder);
        // {"aa": 1, "b": 2}: length-first order puts "b" first.
        let lexical = [0xa2, 0x62, b'a', b'a', 0x01, 0x61, b'b', 0x02];
        assert_eq!(err(&lexical, |d| d.skip(&Default::default())), Problem::KeyOrder);
        // {1: 1}: integer key.
        assert_eq!(err(&[0xa1, 0x01, 0x01], |d| d.skip(&Default::default())), Problem::KeyNotText);
    }

    #[test]
    fn text_must_be_utf8_in_keys_and_values() {
        let limits = Default::default();
        // {"a": "é"} and {"é": 1}: valid, not ASCII.
        assert_eq!(Decoder::new(&[0xa1, 0x61, b'a', 0x62, 0xc3, 0xa9]).skip(&limits), Ok(()));
        assert_eq!(Decoder::new(&[0xa1, 0x62, 0xc3, 0xa9, 0x01]).skip(&limits), Ok(()));
        // A lone continuation byte, an overlong '/', a surrogate: invalid.
        for bad in [&[0x80][..], &[0xc0, 0xaf], &[0xed, 0xa0, 0x80]] {
            let len = 0x60 | u8::try_from(bad.len()).unwrap();
            let mut value = vec![0xa1, 0x61, b'a', len];
            value.extend_from_slice(bad);
            assert_eq!(err(&value, |d| d.skip(&limits)), Problem::InvalidUtf8, "{value:02x?}");
            let mut key = vec![0xa1, len];
            key.extend_from_slice(bad);
            key.push(0x01);
            assert_eq!(err(&key, |d| d.skip(&limits)), Problem::InvalidUtf8, "{key:02x?}");
        }
    }

    /// `{"a": {"a": ... {"a": inner} ...}}`, `depth` maps deep, then a
    /// sibling key `after` in the outermost map.
    fn nested(depth: usize, inner: &[u8], after: &[u8]) -> Vec<u8> {
        let mut out = vec![0xa2, 0x61, b'a'];
        for _ in 1..depth {
            out.extend_from_slice(&[0xa1, 0x61, b'a']);
        }
        out.extend_from_slice(inner);
        out.extend_from_slice(after);
        out
    }

    #[test]
    fn open_containers_past_the_inline_frames_are_checked_alike() {
        let limits = super::super::Limits::default();
        // Ordered, unordered, and an incomplete blob, innermost; then the
        // outermost map's second key, in order ("b") or not ("A" < "a").
        let ordered = [0xa2, 0x61, b'x', 0x01, 0x61, b'y', 0x02];
        let unordered = [0xa2, 0x61, b'y', 0x01, 0x61, b'x', 0x02];
        let blob = [0xa1, 0x65, b'$', b't', b'y', b'p', b'e', 0x64, b'b', b'l', b'o', b'b'];
        for depth in 1..INLINE_FRAMES * 3 {
            let ok = nested(depth, &ordered, &[0x61, b'b', 0x00]);
            assert_eq!(Decoder::new(&ok).skip_data_model(&limits), Ok(()), "depth {depth}");
            let inner = nested(depth, &unordered, &[0x61, b'b', 0x00]);
            assert_eq!(err(&inner, |d| d.skip(&limits)), Problem::KeyOrder, "depth {depth}");
            // Popping back out of the deep frames keeps the outer map's key.
            let outer = nested(depth, &ordered, &[0x61, b'A', 0x00]);
            assert_eq!(err(&outer, |d| d.skip(&limits)), Problem::KeyOrder, "depth {depth}");
            let incomplete = nested(depth, &blob, &[0x61, b'b', 0x00]);
            let problem = err(&incomplete, |d| d.skip_data_model(&limits));
            assert!(matches!(problem, Problem::DataModel { .. }), "depth {depth}: {problem:?}");
        }
    }

    #[test]
    fn depth_and_length_limits() {
        let deep = [0x81; 300];
        let problem = err(&deep, |d| d.skip(&Default::default()));
        assert_eq!(problem, Problem::TooDeep { limit: 64 });
        // An array claiming 2^32 entries with four bytes left.
        let huge = [0x9a, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(err(&huge, |d| d.skip(&Default::default())), Problem::Truncated);
    }

    #[test]
    fn links() {
        let cid = parse_cid(&[[0x01, 0x71, 0x12, 0x20].as_slice(), &[7; 32]].concat()).unwrap();
        let mut bytes = vec![0xd8, 0x2a, 0x58, 0x25, 0x00];
        bytes.extend(cid.to_bytes());
        assert_eq!(Decoder::new(&bytes).node_link(), Ok(cid));
        // Tag 42 encoded in two bytes is not minimal.
        let mut long_tag = vec![0xd9, 0x00, 0x2a];
        long_tag.extend(&bytes[2..]);
        assert_eq!(err(&long_tag, |d| d.link().map(drop)), Problem::NotMinimal);
        // Missing 0x00 prefix.
        let mut no_prefix = vec![0xd8, 0x2a, 0x58, 0x24];
        no_prefix.extend(cid.to_bytes());
        assert_eq!(err(&no_prefix, |d| d.link().map(drop)), Problem::InvalidLink);
        // Another tag.
        assert_eq!(err(&[0xc0, 0x60], |d| d.skip(&Default::default())), Problem::Tag { found: 0 });
    }

    /// Inside data, a link may be any CID that parses (see `walk`): CIDv0,
    /// dag-pb, sha2-512 and identity-hash links pass, as they do in the
    /// TypeScript and Go implementations; a payload that is no CID fails.
    #[test]
    fn links_inside_data_may_be_any_cid() {
        let link = |cid: &[u8]| {
            // A one-entry map `{"l": link}`; the payload is 0x00 and the CID.
            let len = u8::try_from(cid.len() + 1).unwrap();
            let mut bytes = vec![0xa1, 0x61, b'l', 0xd8, 0x2a];
            bytes.extend(if len < 24 { vec![0x40 | len] } else { vec![0x58, len] });
            bytes.push(0x00);
            bytes.extend(cid);
            bytes
        };
        let v1 = |codec: u8, hash: u8, digest: &[u8]| {
            let mut cid = vec![0x01, codec, hash, u8::try_from(digest.len()).unwrap()];
            cid.extend(digest);
            cid
        };
        let limits = Default::default();
        let v0 = [[0x12, 0x20].as_slice(), &[7; 32]].concat();
        for cid in [v0, v1(0x70, 0x12, &[7; 32]), v1(0x71, 0x13, &[7; 64]), v1(0x71, 0x00, b"x")] {
            assert_eq!(Decoder::new(&link(&cid)).skip_data_model(&limits), Ok(()), "{cid:02x?}");
        }
        let problem = err(&link(&[0x01, 0x71, 0x12, 0x20, 7]), |d| d.skip_data_model(&limits));
        assert_eq!(problem, Problem::InvalidLink);
    }

    /// Runs `fast` and `checked` on a decoder over `input` each and
    /// asserts they agree: same result, same bytes consumed.
    #[track_caller]
    fn agree<'i, T: PartialEq + fmt::Debug>(
        input: &'i [u8],
        fast: impl Fn(&mut Decoder<'i>) -> Result<T>,
        checked: impl Fn(&mut Decoder<'i>) -> Result<T>,
    ) {
        let (mut a, mut b) = (Decoder::new(input), Decoder::new(input));
        assert_eq!((fast(&mut a), a.pos), (checked(&mut b), b.pos), "{input:02x?}");
    }

    #[test]
    fn link_fast_path_agrees_with_the_checked_path() {
        let mut canonical = vec![0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01, 0x71, 0x12, 0x20];
        canonical.extend((0..32).map(|i| i * 7));
        canonical.push(0xf6);
        let mut inputs = Vec::new();
        // Every truncation, every value of every byte of the head and the
        // CID prefix, and an extra byte after.
        for len in 0..canonical.len() {
            inputs.push(canonical[..len].to_vec());
        }
        for at in 0..9 {
            for byte in 0..=255 {
                let mut input = canonical.clone();
                input[at] = byte;
                inputs.push(input);
            }
        }
        for input in &inputs {
            agree(input, Decoder::link, Decoder::link_checked);
            agree(input, Decoder::node_link, Decoder::node_link_checked);
            agree(input, Decoder::blessed_link, |d| {
                let at = d.pos;
                let cid = d.link_checked()?;
                Decoder::blessed_at(at, cid)
            });
        }
    }

    #[test]
    fn key_fast_path_agrees_with_the_checked_path() {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![0x61, b'k'],
            vec![0x61, b'k', 0x00],
            vec![0x61],
            vec![0x61, b'l'],
            vec![0x62, b'k', b'k'],
            vec![0x78, 0x01, b'k'],
            vec![0x41, b'k'],
            vec![0x7f, b'k', 0xff],
            vec![],
        ];
        for byte in 0..=255 {
            inputs.push(vec![byte, b'k']);
        }
        for input in &inputs {
            for key in ["k", "kk", ""] {
                agree(input, |d| d.key(key), |d| d.key_checked(key));
            }
        }
        let long = "a key of twenty-four b";
        let mut input = vec![0x76];
        input.extend(long.as_bytes());
        agree(&input, |d| d.key(long), |d| d.key_checked(long));
    }

    #[test]
    fn fixed_schema_keys() {
        let bytes = [0xa1, 0x61, b'e', 0x01];
        let mut d = Decoder::new(&bytes);
        d.map_of(1, "1").unwrap();
        assert!(matches!(
            d.clone().key("l").unwrap_err().problem,
            Problem::UnexpectedKey { expected: "l", .. }
        ));
        d.key("e").unwrap();
        assert_eq!(d.uint(), Ok(1));
        d.finish().unwrap();
    }
}
