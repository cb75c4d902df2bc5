//! [`Cursor`]: a cursor over untrusted bytes that never indexes out of
//! bounds and tracks its absolute offset for error messages.

/// A cursor over a byte slice. Every read either returns the bytes asked for
/// or `None`; nothing here can panic.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
    /// Absolute offset of `rest[0]` in the whole input.
    offset: u64,
}

impl<'a> Cursor<'a> {
    /// A cursor over `bytes`, whose first byte is at absolute `offset`.
    pub(crate) fn new(bytes: &'a [u8], offset: u64) -> Self {
        Cursor { rest: bytes, offset }
    }

    /// Absolute offset of the next unread byte.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes not yet read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Whether every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Takes the next `n` bytes, or `None` if fewer remain.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        self.offset = self.offset.saturating_add(n as u64);
        Some(head)
    }

    /// Takes one byte.
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (&b, tail) = self.rest.split_first()?;
        self.rest = tail;
        self.offset = self.offset.saturating_add(1);
        Some(b)
    }

    /// Takes the next `n` bytes as a sub-cursor with the right offsets.
    pub(crate) fn sub(&mut self, n: usize) -> Option<Cursor<'a>> {
        let offset = self.offset;
        self.take(n).map(|bytes| Cursor::new(bytes, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_never_overruns() {
        let mut r = Cursor::new(b"abc", 10);
        assert_eq!(r.take(2), Some(&b"ab"[..]));
        assert_eq!(r.offset(), 12);
        assert_eq!(r.take(2), None);
        assert_eq!(r.byte(), Some(b'c'));
        assert_eq!(r.byte(), None);
        assert!(r.is_empty());
    }

    #[test]
    fn sub_keeps_absolute_offsets() {
        let mut r = Cursor::new(b"abcdef", 100);
        r.byte();
        let mut s = r.sub(3).unwrap();
        assert_eq!(s.offset(), 101);
        assert_eq!(s.take(3), Some(&b"bcd"[..]));
        assert_eq!(r.offset(), 104);
        assert_eq!(r.rest(), b"ef");
    }
}
