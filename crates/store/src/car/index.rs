//! The CAR index: a sorted table from CID key to where the block lies in
//! the file, built in one pass and optionally kept in a file beside the
//! CAR. The file format is in `docs/formats.md`, section "CAR index file".

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use atrepo_car::{CarSlice, CidMode, HashCheck, Options};
use bytes::Bytes;
use cid::Cid;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

pub(crate) const NAME: &str = "car";
pub(crate) const MAGIC: [u8; 8] = *b"ATRCIDX\0";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_LEN: usize = 128;
pub(crate) const ENTRY_LEN: usize = 48;
/// Bytes of an entry that form its sort key: the 32-byte key and the kind.
const SORT_LEN: usize = 33;
/// Entry kind for a CID that is not blessed: the key is the SHA-256 of the
/// CID's binary form.
const KIND_OTHER: u8 = 0xff;
const FLAG_VERIFIED: u32 = 1;
const FLAG_PERMISSIVE: u32 = 2;

/// What the index knows about the CAR it was built from, to tell whether an
/// index file still fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CarIdentity {
    pub(crate) len: u64,
    pub(crate) mtime_ns: u64,
    pub(crate) header_sha256: [u8; 32],
}

impl CarIdentity {
    pub(crate) fn of(file: &File, car: &[u8], header_end: u64) -> io::Result<CarIdentity> {
        let meta = file.metadata()?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let header = usize::try_from(header_end).ok().and_then(|end| car.get(..end)).unwrap_or(car);
        Ok(CarIdentity {
            len: car.len() as u64,
            mtime_ns,
            header_sha256: Sha256::digest(header).into(),
        })
    }
}

/// A sorted index over one CAR file.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    /// `count` entries of `ENTRY_LEN` bytes, sorted by their first
    /// `SORT_LEN` bytes, unique.
    entries: Bytes,
    count: u64,
    payload: u64,
    flags: u32,
}

/// Where one block lies in the CAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) cid_offset: u64,
    pub(crate) cid_len: u8,
    pub(crate) data_len: u32,
}

impl Entry {
    pub(crate) fn data_offset(&self) -> u64 {
        self.cid_offset.saturating_add(u64::from(self.cid_len))
    }
    pub(crate) fn end(&self) -> u64 {
        self.data_offset().saturating_add(u64::from(self.data_len))
    }
}

/// The sort key of a CID: 32 bytes and a kind byte.
pub(crate) fn sort_key(cid: &Cid) -> [u8; SORT_LEN] {
    let mut key = [0u8; SORT_LEN];
    let (digest, kind) = key.split_at_mut(32);
    let mh = cid.hash();
    let blessed = cid.version() == cid::Version::V1
        && matches!(cid.codec(), 0x71 | 0x55)
        && mh.code() == 0x12
        && mh.digest().len() == 32;
    if blessed {
        digest.copy_from_slice(mh.digest());
        // The codec is 0x71 or 0x55 here, so it fits a byte.
        kind.fill(u8::try_from(cid.codec()).unwrap_or(KIND_OTHER));
    } else {
        digest.copy_from_slice(&Sha256::digest(cid.to_bytes()));
        kind.fill(KIND_OTHER);
    }
    key
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = bytes.get(at..at.saturating_add(4)) {
        b.copy_from_slice(src);
    }
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = bytes.get(at..at.saturating_add(8)) {
        b.copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

fn decode_entry(raw: &[u8]) -> Entry {
    Entry {
        cid_len: raw.get(33).copied().unwrap_or(0),
        data_len: u32_at(raw, 36),
        cid_offset: u64_at(raw, 40),
    }
}

fn encode_entry(key: &[u8; SORT_LEN], entry: Entry) -> [u8; ENTRY_LEN] {
    let mut raw = [0u8; ENTRY_LEN];
    let (sort, rest) = raw.split_at_mut(SORT_LEN);
    sort.copy_from_slice(key);
    // rest: cid_len (1), reserved (2), data_len (4), cid_offset (8).
    let (cid_len, rest) = rest.split_at_mut(1);
    cid_len.fill(entry.cid_len);
    let (_reserved, rest) = rest.split_at_mut(2);
    let (data_len, cid_offset) = rest.split_at_mut(4);
    data_len.copy_from_slice(&entry.data_len.to_le_bytes());
    cid_offset.copy_from_slice(&entry.cid_offset.to_le_bytes());
    raw
}

fn options_flags(options: &Options) -> u32 {
    let mut flags = 0;
    if options.hash_check == HashCheck::Verify {
        flags |= FLAG_VERIFIED;
    }
    if options.cid_mode != CidMode::Strict {
        flags |= FLAG_PERMISSIVE;
    }
    flags
}

impl Index {
    /// Reads every section of `car` (whose header ends at `header_end`) and
    /// indexes each distinct CID at its first occurrence. Blocks are hashed
    /// unless `options` say otherwise; any error in the CAR fails the build.
    pub(crate) fn build(car: &[u8], options: Options) -> Result<Index> {
        let mut slice = CarSlice::with_options(car, options)?;
        let mut rows: Vec<[u8; ENTRY_LEN]> = Vec::new();
        while let Some(frame) = slice.next() {
            let frame = frame?;
            let end = slice.offset();
            let data_len = u32::try_from(frame.data.len()).map_err(|_| Error::LimitExceeded {
                what: "indexed block length",
                limit: u64::from(u32::MAX),
                actual: frame.data.len() as u64,
            })?;
            let cid_bytes = frame.cid.to_bytes();
            let cid_len = u8::try_from(cid_bytes.len()).map_err(|_| Error::LimitExceeded {
                what: "indexed CID length",
                limit: u64::from(u8::MAX),
                actual: cid_bytes.len() as u64,
            })?;
            let data_offset = end.saturating_sub(u64::from(data_len));
            let cid_offset = data_offset.saturating_sub(u64::from(cid_len));
            let entry = Entry { cid_offset, cid_len, data_len };
            // The reader accepts only minimal varints, so the CID's binary
            // form is exactly the bytes before the block; check anyway.
            if slice_at(car, cid_offset, u64::from(cid_len)) != Some(&cid_bytes[..]) {
                return Err(Error::Corrupt {
                    backend: NAME,
                    what: format!(
                        "expected the CID's bytes at offset {cid_offset}, found other bytes"
                    ),
                });
            }
            // Keep the order of appearance as a tie-break: rows are sorted
            // stably below, and the first of equal keys is kept.
            rows.push(encode_entry(&sort_key(&frame.cid), entry));
        }
        rows.sort_by(|a, b| a.get(..SORT_LEN).cmp(&b.get(..SORT_LEN)));
        rows.dedup_by(|later, earlier| later.get(..SORT_LEN) == earlier.get(..SORT_LEN));
        let payload = rows.iter().map(|r| u64::from(decode_entry(r).data_len)).sum();
        let count = rows.len() as u64;
        Ok(Index {
            entries: Bytes::from(rows.into_flattened()),
            count,
            payload,
            flags: options_flags(&options),
        })
    }

    /// Number of distinct blocks.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the distinct blocks' lengths.
    pub(crate) fn payload(&self) -> u64 {
        self.payload
    }

    /// Bytes the index itself takes.
    pub(crate) fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    fn row(&self, i: u64) -> Option<&[u8]> {
        let start = usize::try_from(i).ok()?.checked_mul(ENTRY_LEN)?;
        self.entries.get(start..start.checked_add(ENTRY_LEN)?)
    }

    /// Finds the entry for `cid` by binary search.
    pub(crate) fn find(&self, cid: &Cid) -> Option<Entry> {
        let key = sort_key(cid);
        let (mut lo, mut hi) = (0u64, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let row = self.row(mid)?;
            match row.get(..SORT_LEN)?.cmp(&key[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(decode_entry(row)),
            }
        }
        None
    }

    /// Writes the index to `path` atomically: a temporary file in the same
    /// folder, synced, then renamed over `path`.
    pub(crate) fn save(&self, path: &Path, car: &CarIdentity) -> io::Result<()> {
        let mut header = [0u8; HEADER_LEN];
        {
            let mut w = &mut header[..];
            w.write_all(&MAGIC)?;
            w.write_all(&VERSION.to_le_bytes())?;
            w.write_all(&self.flags.to_le_bytes())?;
            w.write_all(&car.len.to_le_bytes())?;
            w.write_all(&car.mtime_ns.to_le_bytes())?;
            w.write_all(&car.header_sha256)?;
            w.write_all(&self.count.to_le_bytes())?;
            w.write_all(&self.payload.to_le_bytes())?;
            w.write_all(&Sha256::digest(&self.entries))?;
        }
        let tmp = temp_path(path);
        let result = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(&header)?;
            file.write_all(&self.entries)?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Reads an index file (already mapped as `bytes`) and checks that it
    /// fits `car` and was built with options at least as strict as
    /// `options`. `Err(reason)` says why it does not fit.
    pub(crate) fn load(
        bytes: &Bytes,
        car: &CarIdentity,
        options: &Options,
    ) -> std::result::Result<Index, &'static str> {
        let header = bytes.get(..HEADER_LEN).ok_or("index file shorter than its header")?;
        if header.get(..8) != Some(&MAGIC[..]) {
            return Err("not an index file (bad magic)");
        }
        if u32_at(header, 8) != VERSION {
            return Err("unsupported index version");
        }
        let flags = u32_at(header, 12);
        let wanted = options_flags(options);
        if wanted & FLAG_VERIFIED != 0 && flags & FLAG_VERIFIED == 0 {
            return Err("index built without hashing blocks");
        }
        if wanted & FLAG_PERMISSIVE == 0 && flags & FLAG_PERMISSIVE != 0 {
            return Err("index built accepting non-blessed CIDs");
        }
        if u64_at(header, 16) != car.len {
            return Err("car file length changed");
        }
        if u64_at(header, 24) != car.mtime_ns {
            return Err("car file modification time changed");
        }
        if header.get(32..64) != Some(&car.header_sha256[..]) {
            return Err("car header changed");
        }
        let count = u64_at(header, 64);
        let payload = u64_at(header, 72);
        let expected_len = count
            .checked_mul(ENTRY_LEN as u64)
            .and_then(|n| n.checked_add(HEADER_LEN as u64))
            .ok_or("entry count does not fit the file")?;
        if expected_len != bytes.len() as u64 {
            return Err("entry count does not fit the file");
        }
        if count > options.limits.max_blocks {
            return Err("more entries than the block limit allows");
        }
        let entries = bytes.slice(HEADER_LEN..);
        if header.get(80..112) != Some(&Sha256::digest(&entries)[..]) {
            return Err("entries checksum mismatch");
        }
        let mut sum = 0u64;
        let mut previous: Option<&[u8]> = None;
        for row in entries.chunks_exact(ENTRY_LEN) {
            let key = row.get(..SORT_LEN);
            if previous >= key {
                return Err("entries not sorted and unique");
            }
            previous = key;
            let entry = decode_entry(row);
            if entry.end() > car.len || entry.cid_offset >= car.len {
                return Err("entry points past the end of the car file");
            }
            sum = sum.saturating_add(u64::from(entry.data_len));
        }
        if sum != payload {
            return Err("payload total does not match the entries");
        }
        Ok(Index { entries, count, payload, flags })
    }
}

/// `len` bytes of `bytes` from `offset`, if they are all there.
pub(crate) fn slice_at(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}
