//! [`Commit`]: the signed root of a repository, decoded strictly, verified
//! against a key, and built and signed by [`UnsignedCommit`].
//!
//! A commit is a DRISL map (repository specification, "Commit Objects"):
//!
//! | field     | type                          | notes                          |
//! |-----------|-------------------------------|--------------------------------|
//! | `did`     | text, a DID                   |                                |
//! | `rev`     | text, a TID                   | optional in v2 only            |
//! | `sig`     | bytes                         | absent from the signed bytes   |
//! | `data`    | link, CIDv1 dag-cbor sha2-256 | the MST root                   |
//! | `prev`    | link (same) or null           | required key, usually null     |
//! | `version` | unsigned integer, 3           | 2 only with `allow_v2`         |
//!
//! Keys come in canonical order (length first, then bytewise), which is
//! the order of this table. The signature is over SHA-256 of the same map
//! without `sig`; the commit's CID is over the signed bytes.

use cid::Cid;
use cid::multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::drisl::{Decoder, Encoder, Limits, key_precedes};
use crate::error::{Error, Result, snippet};
use crate::key::PublicKey;
use crate::signing::SigningKey;
use crate::syntax;
use crate::tid::Tid;

/// The dag-cbor multicodec, which links to commits and MST nodes use.
const DAG_CBOR: u64 = 0x71;

/// The commit version atrepo writes and reads by default.
pub const COMMIT_VERSION: u64 = 3;

/// Options for decoding commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitOptions {
    /// Also accept version 2 commits (historical repositories, before
    /// August 2023), in which `rev` may be absent. Off by default.
    pub allow_v2: bool,
}

impl CommitOptions {
    /// Returns these options with `allow_v2` set.
    pub fn allow_v2(mut self, yes: bool) -> Self {
        self.allow_v2 = yes;
        self
    }
}

/// A decoded, schema-checked commit. Its fields are read-only: build new
/// commits with [`UnsignedCommit`].
///
/// A decoded commit re-encodes ([`Commit::to_cbor`]) to exactly the bytes
/// it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    did: String,
    version: u64,
    data: Cid,
    rev: Option<Tid>,
    prev: Option<Cid>,
    sig: Vec<u8>,
}

/// The fields as read, before the checks that need all of them.
#[derive(Default)]
struct Fields<'a> {
    did: Option<&'a str>,
    rev: Option<&'a str>,
    sig: Option<&'a [u8]>,
    data: Option<Cid>,
    prev: Option<Option<Cid>>,
    version: Option<u64>,
}

impl Commit {
    /// Decodes a commit block strictly.
    ///
    /// Refuses anything but canonical DRISL (non-minimal heads, floats,
    /// indefinite lengths, unsorted or duplicate keys, trailing bytes:
    /// [`Error::Cbor`]), unknown fields ([`Error::UnknownField`]), missing
    /// ones ([`Error::MissingField`]), a version other than 3 (or 2 with
    /// [`CommitOptions::allow_v2`]), `data`/`prev` links that are not
    /// CIDv1 dag-cbor sha2-256, a `did` that is not a DID and a `rev` that
    /// is not a TID ([`Error::InvalidField`]).
    pub fn decode(bytes: &[u8], options: &CommitOptions) -> Result<Commit> {
        let mut d = Decoder::new(bytes);
        let f = read_fields(&mut d)?;
        d.finish()?;

        let version = f.version.ok_or(Error::MissingField { field: "version" })?;
        match version {
            3 => {}
            2 if options.allow_v2 => {}
            found => {
                let expected = if options.allow_v2 { "2 or 3" } else { "3" };
                return Err(Error::UnsupportedVersion { expected, found });
            }
        }
        let did = f.did.ok_or(Error::MissingField { field: "did" })?;
        let data = f.data.ok_or(Error::MissingField { field: "data" })?;
        let prev = f.prev.ok_or(Error::MissingField { field: "prev" })?;
        let sig = f.sig.ok_or(Error::MissingField { field: "sig" })?;
        if version == 3 && f.rev.is_none() {
            return Err(Error::MissingField { field: "rev" });
        }
        syntax::did(did).map_err(|error| Error::InvalidField { field: "did", error })?;
        let rev = match f.rev {
            Some(rev) => {
                Some(Tid::parse(rev).map_err(|error| Error::InvalidField { field: "rev", error })?)
            }
            None => None,
        };
        Ok(Commit { did: did.to_owned(), version, data, rev, prev, sig: sig.to_vec() })
    }

    /// Decodes the commit block `bytes` stored under `cid` (hash-checked
    /// by the caller), as [`Commit::decode`] does, after checking that
    /// `cid` is a dag-cbor CID ([`Error::CommitCodec`]): every reader of a
    /// commit named by a CID (a CAR root, a `#sync`) goes through here. A
    /// map with fewer than two of a commit's fields (an MST node, a record,
    /// even one with a `did`) is [`Error::NotACommit`], naming the block
    /// and the field that gave it away; a commit with one field too many
    /// or too few keeps that error.
    pub fn decode_block(cid: &Cid, bytes: &[u8], options: &CommitOptions) -> Result<Commit> {
        if cid.codec() != DAG_CBOR {
            return Err(Error::CommitCodec { cid: cid.to_string(), codec: cid.codec() });
        }
        Self::decode(bytes, options).map_err(|error| match error {
            Error::UnknownField { .. } | Error::MissingField { .. }
                if commit_fields_in(bytes) < 2 =>
            {
                Error::NotACommit { cid: cid.to_string(), error: Box::new(error) }
            }
            other => other,
        })
    }

    /// The account DID.
    pub fn did(&self) -> &str {
        &self.did
    }

    /// The repository format version: 3, or 2 for a commit decoded with
    /// [`CommitOptions::allow_v2`].
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The MST root.
    pub fn data(&self) -> &Cid {
        &self.data
    }

    /// The revision; always present in version 3 commits.
    pub fn rev(&self) -> Option<Tid> {
        self.rev
    }

    /// The previous commit, usually `None` (the field is present but null).
    pub fn prev(&self) -> Option<&Cid> {
        self.prev.as_ref()
    }

    /// The signature bytes, as stored (checked only by [`verify`](Self::verify)).
    pub fn sig(&self) -> &[u8] {
        &self.sig
    }

    /// The bytes that were signed: the canonical DRISL of this commit
    /// without `sig`.
    pub fn unsigned_bytes(&self) -> Vec<u8> {
        self.encode(false)
    }

    /// The canonical DRISL of the whole commit, `sig` included.
    pub fn to_cbor(&self) -> Vec<u8> {
        self.encode(true)
    }

    /// The commit's CID: CIDv1, dag-cbor, sha2-256 of [`to_cbor`](Self::to_cbor).
    pub fn cid(&self) -> Cid {
        dag_cbor_cid(&self.to_cbor())
    }

    /// Verifies `sig` over the unsigned bytes against `key`, with the rules
    /// of [`PublicKey::verify`].
    pub fn verify(&self, key: &PublicKey) -> Result<()> {
        key.verify(&self.unsigned_bytes(), &self.sig)
    }

    fn encode(&self, with_sig: bool) -> Vec<u8> {
        let entries =
            4u64.saturating_add(u64::from(self.rev.is_some())).saturating_add(u64::from(with_sig));
        let mut e = Encoder::new();
        e.map(entries).text("did").text(&self.did);
        if let Some(rev) = &self.rev {
            e.text("rev").text(&rev.to_string());
        }
        if with_sig {
            e.text("sig").bytes(&self.sig);
        }
        e.text("data").link(&self.data);
        e.text("prev").link_or_null(self.prev.as_ref());
        e.text("version").uint(self.version);
        e.into_bytes()
    }
}

/// Reads the commit map, checking canonical key order and each field's
/// type as it goes.
fn read_fields<'a>(d: &mut Decoder<'a>) -> Result<Fields<'a>> {
    // The decoder bounds `n` by the bytes left, so the loop is bounded.
    let n = d.map()?;
    let mut f = Fields::default();
    let mut prev_key: Option<&[u8]> = None;
    for _ in 0..n {
        let at = d.offset();
        let key = d.text_key()?;
        if prev_key.is_some_and(|p| !key_precedes(p, key)) {
            let problem = crate::drisl::Problem::KeyOrder;
            return Err(crate::drisl::DecodeError { offset: at, problem }.into());
        }
        prev_key = Some(key);
        match key {
            b"did" => f.did = Some(d.text()?),
            b"rev" => f.rev = Some(d.text()?),
            b"sig" => f.sig = Some(d.bytes()?),
            b"data" => f.data = Some(d.node_link()?),
            b"prev" => f.prev = Some(d.node_link_or_null()?),
            b"version" => f.version = Some(d.uint()?),
            other => {
                let field = snippet(&String::from_utf8_lossy(other), 64);
                return Err(Error::UnknownField { field });
            }
        }
    }
    Ok(f)
}

/// How many of a commit's six fields `bytes`, a map that failed to decode
/// as a commit for a field too many or too few, has among its top-level
/// keys, counted up to the first item that does not decode (the count so
/// far: enough to tell a commit with an odd field from another block).
fn commit_fields_in(bytes: &[u8]) -> usize {
    const FIELDS: [&[u8]; 6] = [b"did", b"rev", b"sig", b"data", b"prev", b"version"];
    let mut d = Decoder::new(bytes);
    let Ok(n) = d.map() else { return 0 };
    let mut found = 0usize;
    for _ in 0..n {
        let Ok(key) = d.text_key() else { break };
        found = found.saturating_add(usize::from(FIELDS.contains(&key)));
        if d.skip(&Limits::default()).is_err() {
            break;
        }
    }
    found
}

/// The blessed dag-cbor CID of `bytes`.
fn dag_cbor_cid(bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    match Multihash::wrap(0x12, digest.as_slice()) {
        Ok(mh) => Cid::new_v1(DAG_CBOR, mh),
        // A 32-byte digest always fits a 64-byte multihash.
        Err(_) => Cid::default(),
    }
}

/// A version 3 commit before signing.
///
/// ```
/// # use atrepo_verify::{Curve, SigningKey, Tid, UnsignedCommit, CommitOptions, Commit};
/// # fn main() -> atrepo_verify::Result<()> {
/// let key = SigningKey::from_seed(Curve::K256, b"example")?;
/// let data = "bafyreidfayvfuwqa7qlnopdjiqrxzs6blmoeu4rujcjtnci5beludirz2a".parse().unwrap();
/// let rev = Tid::parse("3jzfcijpj2z2a").unwrap();
/// let commit = UnsignedCommit::new("did:plc:example", data, rev, None)?.sign(&key)?;
/// let bytes = commit.to_cbor();
/// let decoded = Commit::decode(&bytes, &CommitOptions::default())?;
/// decoded.verify(&key.public_key())?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedCommit {
    did: String,
    data: Cid,
    rev: Tid,
    prev: Option<Cid>,
}

impl UnsignedCommit {
    /// A version 3 commit for `did` with MST root `data`. Fails if `did` is
    /// not a DID or a link is not CIDv1 dag-cbor sha2-256.
    pub fn new(did: &str, data: Cid, rev: Tid, prev: Option<Cid>) -> Result<UnsignedCommit> {
        syntax::did(did).map_err(|error| Error::InvalidField { field: "did", error })?;
        check_node_link("data", &data)?;
        if let Some(prev) = &prev {
            check_node_link("prev", prev)?;
        }
        Ok(UnsignedCommit { did: did.to_owned(), data, rev, prev })
    }

    /// The bytes to sign: canonical DRISL without `sig`.
    pub fn to_cbor(&self) -> Vec<u8> {
        self.clone().with_signature(Vec::new()).unsigned_bytes()
    }

    /// Signs with `key` (low-S, deterministic) and returns the commit.
    pub fn sign(self, key: &SigningKey) -> Result<Commit> {
        let sig = key.sign(&self.to_cbor())?;
        Ok(self.with_signature(sig.to_vec()))
    }

    /// The commit with a signature made elsewhere (a remote signer). The
    /// signature is not checked here; [`Commit::verify`] does that.
    pub fn with_signature(self, sig: Vec<u8>) -> Commit {
        Commit {
            did: self.did,
            version: COMMIT_VERSION,
            data: self.data,
            rev: Some(self.rev),
            prev: self.prev,
            sig,
        }
    }
}

fn check_node_link(field: &'static str, cid: &Cid) -> Result<()> {
    let blessed = cid.version() == cid::Version::V1
        && cid.codec() == DAG_CBOR
        && cid.hash().code() == 0x12
        && cid.hash().size() == 32;
    if blessed { Ok(()) } else { Err(Error::UnblessedLink { field, found: cid.to_string() }) }
}
