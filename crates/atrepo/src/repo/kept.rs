//! Records handed out from a stream, kept in an anonymous scratch file so a
//! second key pointing to one of them gets its bytes again (see
//! [`VerifyOptions::keep_records`](crate::VerifyOptions::keep_records)).
//!
//! The file holds each record as a CAR section holds it, the CID's bytes
//! then the data, so the buffer reads it back and confirms it exactly as it
//! does a section of an input file. It is created with
//! [`tempfile::tempfile_in`]: it has no name, and the operating system frees
//! it when the handle closes, even if the process is killed.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

/// Bytes gathered in memory before one write to the file; a record at least
/// this long is written directly.
pub(crate) const KEPT_BUFFER: usize = 64 * 1024;

/// The scratch file, and what has not reached it yet.
#[derive(Debug)]
pub(crate) struct Kept {
    file: File,
    /// Sections appended but not yet written: they start at `flushed`.
    buf: Vec<u8>,
    /// Bytes written to the file.
    flushed: u64,
    /// Most bytes the file may take; past it nothing more is kept.
    cap: u64,
}

impl Kept {
    /// Creates the scratch file under `dir`, keeping at most `cap` bytes.
    pub(crate) fn create(dir: &Path, cap: u64) -> io::Result<Kept> {
        std::fs::create_dir_all(dir)?;
        let file = tempfile::tempfile_in(dir)?;
        // Its whole size at once, a constant: it never grows past it (see
        // `append`), so the budget's charge is exact.
        let mut buf = Vec::new();
        buf.reserve_exact(KEPT_BUFFER);
        Ok(Kept { file, buf, flushed: 0, cap })
    }

    /// Appends a section (`id`, the CID's bytes, then `data`) and returns
    /// where its data starts, or `None` (keeping nothing) past the cap.
    pub(crate) fn append(&mut self, id: &[u8], data: &[u8]) -> io::Result<Option<u64>> {
        let len = (id.len() as u64).saturating_add(data.len() as u64);
        let start = self.flushed.saturating_add(self.buf.len() as u64);
        if start.saturating_add(len) > self.cap {
            return Ok(None);
        }
        if self.buf.len().saturating_add(id.len()).saturating_add(data.len()) > KEPT_BUFFER {
            self.flush()?;
        }
        if id.len().saturating_add(data.len()) >= KEPT_BUFFER {
            // Straight to the file: the buffer never grows past its size.
            self.file.seek(SeekFrom::Start(self.flushed))?;
            self.file.write_all(id)?;
            self.file.write_all(data)?;
            self.flushed = self.flushed.saturating_add(len);
        } else {
            self.buf.extend_from_slice(id);
            self.buf.extend_from_slice(data);
        }
        Ok(Some(start.saturating_add(id.len() as u64)))
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
            let mut handle: &File = &self.file;
            handle.seek(SeekFrom::Start(start))?;
            handle.read_exact(head)?;
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
        self.file.seek(SeekFrom::Start(self.flushed))?;
        self.file.write_all(&self.buf)?;
        self.flushed = self.flushed.saturating_add(self.buf.len() as u64);
        self.buf.clear();
        Ok(())
    }
}

fn short_read() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "past the end of the kept records")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_read_back_from_the_buffer_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = Kept::create(dir.path(), u64::MAX).unwrap();
        let small = kept.append(b"id1", b"small").unwrap().unwrap();
        let big_data = vec![7u8; KEPT_BUFFER + 10];
        // Flushes the small one, then goes straight to the file.
        let big = kept.append(b"id2", &big_data).unwrap().unwrap();
        let last = kept.append(b"id3", b"last").unwrap().unwrap();
        assert_eq!((small, big), (3, 3 + 5 + 3));
        let mut out = vec![0u8; 5];
        kept.read(small, &mut out).unwrap();
        assert_eq!(out, b"small");
        let mut out = vec![0u8; big_data.len()];
        kept.read(big, &mut out).unwrap();
        assert_eq!(out, big_data);
        // Still in the buffer.
        let mut out = [0u8; 7];
        kept.read(last - 3, &mut out).unwrap();
        assert_eq!(&out, b"id3last");
        // Across the end of the file into the buffer.
        let mut out = [0u8; 5];
        kept.read(last - 5, &mut out).unwrap();
        assert_eq!(&out, &[7, 7, b'i', b'd', b'3']);
        assert_eq!(kept.buf.capacity(), KEPT_BUFFER);
        // Past what was appended.
        assert!(kept.read(last, &mut [0u8; 5]).is_err());
        // The directory holds no named file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn nothing_is_kept_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = Kept::create(dir.path(), 10).unwrap();
        assert_eq!(kept.append(b"ab", b"cdef").unwrap(), Some(2));
        assert_eq!(kept.append(b"ab", b"cdef").unwrap(), None);
        assert_eq!(kept.append(b"a", b"b").unwrap(), Some(7));
    }
}
