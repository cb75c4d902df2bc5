//! The one place this crate uses `unsafe`: mapping a file into memory,
//! read-only, as shared [`Bytes`].
//!
//! Why a map and not a read: a CAR file can be many gigabytes, and the
//! [`CarFileStore`](crate::CarFileStore) promises that opening one costs
//! memory for the index only and that a read copies no block. A map lets
//! the kernel page blocks in on demand and lets [`Bytes::slice`] hand out
//! views of them.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use bytes::Bytes;

/// Maps the whole of `file` read-only, as shared [`Bytes`] that keep the
/// map alive.
///
/// The caller promises what [`CarFileStore`](crate::CarFileStore)
/// documents: the file is not modified or truncated while mapped (a
/// truncation turns reads of the lost pages into SIGBUS). Callers that
/// cannot promise that the bytes stay the same must re-check what they
/// read, as `atrepo`'s file reader re-hashes every block it views.
pub fn map_file(file: &File) -> io::Result<Bytes> {
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: `Mmap::map` is unsafe because the mapped bytes can change
    // under the returned `&[u8]` if another process (or this one) writes to
    // or truncates the file; a truncation turns reads into SIGBUS. Nothing in
    // this crate writes to a mapped file: index files are replaced by
    // writing a new file and renaming it over the old one, which leaves the
    // mapped inode untouched. Writes by others cannot be prevented here
    // (advisory locks would not stop them either), so `CarFileStore` and
    // `docs/choosing-a-backend.md` state that a CAR must not be modified
    // while open, as every memory-mapping reader (ripgrep, memmap-based
    // databases) requires. The map is read-only (`PROT_READ`), so a bug
    // here cannot write through it.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok(Bytes::from_owner(map))
}
