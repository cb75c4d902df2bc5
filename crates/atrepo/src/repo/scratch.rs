//! A stream's scratch file: blocks that wait past the memory budget, and
//! records kept so that a second key pointing to one of them gets its
//! bytes again (see
//! [`VerifyOptions::keep_records`](crate::VerifyOptions::keep_records)).
//! A stream cannot be read again; this file stands in for it, as the input
//! file does for a file.
//!
//! The file holds each block as a CAR section holds it, the CID's bytes
//! then the data, so the buffer reads it back and confirms it exactly as it
//! does a section of an input file. It is created with
//! [`tempfile::tempfile_in`]: it has no name, and the operating system frees
//! it when the handle closes, even if the process is killed. It is only
//! ever appended to.

use std::fs::File;
use std::io;
use std::path::Path;

/// Most bytes gathered in memory before one write to the file; a section
/// at least as long as the buffer is written directly.
pub(crate) const SCRATCH_BUFFER: usize = 64 * 1024;

/// Fewest bytes gathered before one write, whatever the memory budget.
pub(crate) const SCRATCH_BUFFER_MIN: usize = 4 * 1024;

/// What a section is in the scratch file for; each part has a cap of its
/// own, so records kept for a second key never take the room that
/// waiting blocks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// A block waiting for the walk, past the memory budget.
    Waiting = 0,
    /// A record handed out, kept for a second key.
    Kept = 1,
}

/// The scratch file, and what has not reached it yet.
#[derive(Debug)]
pub(crate) struct Scratch {
    file: File,
    /// Sections appended but not yet written: they start at `flushed`.
    buf: Vec<u8>,
    /// The most `buf` holds.
    buf_size: usize,
    /// Bytes written to the file.
    flushed: u64,
    /// Most bytes each [`Part`] may take; past it nothing more of that
    /// part is appended.
    cap: u64,
    /// Bytes appended of each part: waiting blocks, kept records.
    used: [u64; 2],
    /// The bytes waiting blocks would have needed when one was refused for
    /// the cap.
    refused: Option<u64>,
}

impl Scratch {
    /// Creates the scratch file under `dir`, holding at most `cap` bytes of
    /// each [`Part`] and gathering `buf_size` bytes in memory per write.
    pub(crate) fn create(dir: &Path, cap: u64, buf_size: usize) -> io::Result<Scratch> {
        std::fs::create_dir_all(dir)?;
        let file = tempfile::tempfile_in(dir)?;
        // Its whole size at once, a constant: it never grows past it (see
        // `append`), so the budget's charge is exact.
        let mut buf = Vec::new();
        buf.reserve_exact(buf_size);
        Ok(Scratch { file, buf, buf_size, flushed: 0, cap, used: [0; 2], refused: None })
    }

    /// Appends a section (`id`, the CID's bytes, then `data`) and returns
    /// where its data starts, or `None` (appending nothing) past `part`'s
    /// cap.
    pub(crate) fn append(&mut self, part: Part, id: &[u8], data: &[u8]) -> io::Result<Option<u64>> {
        let len = (id.len() as u64).saturating_add(data.len() as u64);
        let start = self.flushed.saturating_add(self.buf.len() as u64);
        let used = self.used[part as usize];
        if used.saturating_add(len) > self.cap {
            if part == Part::Waiting {
                self.refused = Some(used.saturating_add(len));
            }
            return Ok(None);
        }
        self.used[part as usize] = used.saturating_add(len);
        if self.buf.len().saturating_add(id.len()).saturating_add(data.len()) > self.buf_size {
            self.flush()?;
        }
        if id.len().saturating_add(data.len()) >= self.buf_size {
            // Straight to the file: the buffer never grows past its size.
            write_at(&self.file, id, self.flushed)?;
            write_at(&self.file, data, self.flushed.saturating_add(id.len() as u64))?;
            self.flushed = self.flushed.saturating_add(len);
        } else {
            self.buf.extend_from_slice(id);
            self.buf.extend_from_slice(data);
        }
        Ok(Some(start.saturating_add(id.len() as u64)))
    }

    /// If a waiting block was refused for the cap: the cap, and the bytes
    /// waiting blocks would have needed. A kept record refused does not
    /// count: it only comes without bytes to a second key.
    pub(crate) fn refused(&self) -> Option<(u64, u64)> {
        self.refused.map(|needed| (self.cap, needed))
    }

    /// Reads `out.len()` bytes starting at `start`: from the file up to
    /// what was written, the rest from the buffer. A range need not be
    /// one section: a CID confirmed against the bytes before a section's
    /// data may be longer than the section's own (a hostile twin), and
    /// reach into the section before it.
    pub(crate) fn read(&self, start: u64, out: &mut [u8]) -> io::Result<()> {
        let in_file = usize::try_from(self.flushed.saturating_sub(start))
            .unwrap_or(usize::MAX)
            .min(out.len());
        let (head, tail) = out.split_at_mut(in_file);
        if !head.is_empty() {
            read_at(&self.file, head, start)?;
        }
        if !tail.is_empty() {
            let from = start.max(self.flushed) - self.flushed;
            let from = usize::try_from(from).map_err(|_| short_read())?;
            let end = from.checked_add(tail.len()).ok_or_else(short_read)?;
            tail.copy_from_slice(self.buf.get(from..end).ok_or_else(short_read)?);
        }
        Ok(())
    }

    /// Bytes appended so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.flushed.saturating_add(self.buf.len() as u64)
    }

    /// Flips a bit of the last byte appended, as a disk fault would.
    #[cfg(test)]
    pub(crate) fn damage_last_byte(&mut self) {
        if let Some(b) = self.buf.last_mut() {
            *b ^= 1;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        write_at(&self.file, &self.buf, self.flushed)?;
        self.flushed = self.flushed.saturating_add(self.buf.len() as u64);
        self.buf.clear();
        Ok(())
    }
}

fn short_read() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "past the end of the scratch file")
}

/// Fills `out` from `file` at `offset`: one `pread` where there is one,
/// without moving the file's position.
pub(crate) fn read_at(file: &File, out: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, out, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut handle = file;
        handle.seek(SeekFrom::Start(offset))?;
        handle.read_exact(out)
    }
}

/// Writes `data` to `file` at `offset`, as [`read_at`] reads.
fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, data, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek as _, SeekFrom, Write as _};
        let mut handle = file;
        handle.seek(SeekFrom::Start(offset))?;
        handle.write_all(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_read_back_from_the_buffer_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut scratch = Scratch::create(dir.path(), u64::MAX, SCRATCH_BUFFER).unwrap();
        let small = scratch.append(Part::Waiting, b"id1", b"small").unwrap().unwrap();
        let big_data = vec![7u8; SCRATCH_BUFFER + 10];
        // Flushes the small one, then goes straight to the file.
        let big = scratch.append(Part::Kept, b"id2", &big_data).unwrap().unwrap();
        let last = scratch.append(Part::Waiting, b"id3", b"last").unwrap().unwrap();
        assert_eq!((small, big), (3, 3 + 5 + 3));
        let mut out = vec![0u8; 5];
        scratch.read(small, &mut out).unwrap();
        assert_eq!(out, b"small");
        let mut out = vec![0u8; big_data.len()];
        scratch.read(big, &mut out).unwrap();
        assert_eq!(out, big_data);
        // Still in the buffer.
        let mut out = [0u8; 7];
        scratch.read(last - 3, &mut out).unwrap();
        assert_eq!(&out, b"id3last");
        // Across the end of the file into the buffer.
        let mut out = [0u8; 5];
        scratch.read(last - 5, &mut out).unwrap();
        assert_eq!(&out, &[7, 7, b'i', b'd', b'3']);
        assert_eq!(scratch.buf.capacity(), SCRATCH_BUFFER);
        // Past what was appended.
        assert!(scratch.read(last, &mut [0u8; 5]).is_err());
        // The directory holds no named file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn nothing_is_appended_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut scratch = Scratch::create(dir.path(), 10, SCRATCH_BUFFER).unwrap();
        assert_eq!(scratch.append(Part::Waiting, b"ab", b"cdef").unwrap(), Some(2));
        assert_eq!(scratch.refused(), None);
        assert_eq!(scratch.append(Part::Waiting, b"ab", b"cdef").unwrap(), None);
        assert_eq!(scratch.refused(), Some((10, 12)));
        assert_eq!(scratch.append(Part::Waiting, b"a", b"b").unwrap(), Some(7));
        assert_eq!(scratch.len(), 8);
        // Kept records have a cap of their own, and a refused one is not
        // the waiting blocks' limit.
        let mut scratch = Scratch::create(dir.path(), 10, SCRATCH_BUFFER).unwrap();
        assert_eq!(scratch.append(Part::Kept, b"ab", b"cdefghijk").unwrap(), None);
        assert_eq!(scratch.refused(), None);
        assert_eq!(scratch.append(Part::Kept, b"ab", b"cdef").unwrap(), Some(2));
        assert_eq!(scratch.append(Part::Waiting, b"ab", b"cdef").unwrap(), Some(8));
        assert_eq!(scratch.refused(), None);
    }
}
