//! [`Limits`] and [`Options`]: what the reader accepts and how much of it.

/// Size limits, all checked before any allocation or read that depends on a
/// length taken from the input.
///
/// The defaults suit atproto repository exports: a few hundred bytes of
/// header, blocks of at most 2 MiB, repositories of up to 4 GiB. Firehose
/// consumers should tighten `max_total_bytes` (the sync spec caps an event's
/// `blocks` at 2,000,000 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest header, in bytes, after its length varint.
    pub max_header_len: u64,
    /// Most roots in the header.
    pub max_roots: usize,
    /// Largest section (CID plus block bytes), in bytes, after its length
    /// varint. Bounds the memory a streaming reader needs.
    pub max_section_len: u64,
    /// Largest whole input, in bytes, header included.
    pub max_total_bytes: u64,
    /// Most blocks (sections), duplicates included.
    pub max_blocks: u64,
}

impl Limits {
    /// The default header cap: room for a few dozen roots.
    pub const DEFAULT_MAX_HEADER_LEN: u64 = 4096;
    /// The default cap on roots.
    pub const DEFAULT_MAX_ROOTS: usize = 16;
    /// The default section cap, 2 MiB: atproto's block size cap. atproto
    /// records are at most 1 MB and MST nodes far smaller.
    pub const DEFAULT_MAX_SECTION_LEN: u64 = 2 * 1024 * 1024;
    /// The default cap on the whole input, 4 GiB.
    pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 4 * 1024 * 1024 * 1024;
    /// The default cap on blocks, 16 million.
    pub const DEFAULT_MAX_BLOCKS: u64 = 16_000_000;

    /// Returns these limits with `max_header_len` set.
    pub fn max_header_len(mut self, n: u64) -> Self {
        self.max_header_len = n;
        self
    }
    /// Returns these limits with `max_roots` set.
    pub fn max_roots(mut self, n: usize) -> Self {
        self.max_roots = n;
        self
    }
    /// Returns these limits with `max_section_len` set.
    pub fn max_section_len(mut self, n: u64) -> Self {
        self.max_section_len = n;
        self
    }
    /// Returns these limits with `max_total_bytes` set.
    pub fn max_total_bytes(mut self, n: u64) -> Self {
        self.max_total_bytes = n;
        self
    }
    /// Returns these limits with `max_blocks` set.
    pub fn max_blocks(mut self, n: u64) -> Self {
        self.max_blocks = n;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_len: Self::DEFAULT_MAX_HEADER_LEN,
            max_roots: Self::DEFAULT_MAX_ROOTS,
            max_section_len: Self::DEFAULT_MAX_SECTION_LEN,
            max_total_bytes: Self::DEFAULT_MAX_TOTAL_BYTES,
            max_blocks: Self::DEFAULT_MAX_BLOCKS,
        }
    }
}

/// Which CIDs the reader accepts, in sections and in header roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CidMode {
    /// atproto's blessed CIDs only: CIDv1, codec dag-cbor (`0x71`) or raw
    /// (`0x55`), hash sha2-256 (`0x12`) with a 32-byte digest. The default.
    #[default]
    Strict,
    /// Any CID the `cid` crate parses (v0 included, any codec). Blocks are
    /// still hashed: a hash function the reader cannot compute (anything but
    /// sha2-256, sha2-512 and identity) is refused unless hashing is
    /// [`HashCheck::Unchecked`].
    Permissive,
}

/// Whether each block is hashed and compared with its CID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HashCheck {
    /// Hash every block and fail on a mismatch. The default.
    #[default]
    Verify,
    /// Trust the CIDs as given. Only for callers that verify the blocks
    /// elsewhere (for example in parallel), or that read a CAR they wrote
    /// themselves.
    Unchecked,
}

/// Everything that configures a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Options {
    /// Size limits.
    pub limits: Limits,
    /// Which CIDs are accepted.
    pub cid_mode: CidMode,
    /// Whether blocks are hashed.
    pub hash_check: HashCheck,
}

impl Options {
    /// Returns these options with `limits` set.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Returns these options with `cid_mode` set.
    pub fn cid_mode(mut self, mode: CidMode) -> Self {
        self.cid_mode = mode;
        self
    }
    /// Returns these options with `hash_check` set.
    pub fn hash_check(mut self, check: HashCheck) -> Self {
        self.hash_check = check;
        self
    }
    /// Returns these options with block hashing turned off. The name is
    /// meant to stand out in review: see [`HashCheck::Unchecked`].
    pub fn unchecked(self) -> Self {
        self.hash_check(HashCheck::Unchecked)
    }
}
