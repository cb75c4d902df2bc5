//! Firehose frames: a header (`{t, op}`) and a body, two DRISL values back
//! to back (event stream specification, "Framing"), read one at a time or
//! from a capture of concatenated frames.

use super::Limits;
use super::decode::{AccountEvent, CommitEvent, EventType, IdentityEvent, SyncEvent, cbor};
use super::error::{EventError, snippet};
use crate::verify::drisl::{self, Decoder, Encoder, Problem, key_precedes};

const HEADER: &str = "frame header";
const ERROR_BODY: &str = "error frame body";
const BODY: &str = "frame body";

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameHeader<'a> {
    /// `op: 1`: a message whose type is `t` (`#commit`, `#sync`,
    /// `#identity`, ...).
    Message {
        /// The message type, as the header gives it.
        kind: &'a str,
    },
    /// `op: -1`: an error; the body is `{error, message?}`.
    Error,
}

/// One frame: its header and its body's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Frame<'a> {
    /// The header.
    pub header: FrameHeader<'a>,
    /// The body: one DRISL value (checked when it is decoded).
    pub body: &'a [u8],
    /// The frame's offset in the input it was read from.
    pub offset: u64,
    /// The frame's length in bytes, header included.
    pub len: u64,
}

/// Reads a header map: `t` (text) and `op` (integer), unknown keys skipped.
fn read_header<'a>(d: &mut Decoder<'a>) -> Result<FrameHeader<'a>, EventError> {
    let n = d.map().map_err(cbor(HEADER))?;
    let mut prev: Option<&[u8]> = None;
    let (mut t, mut op) = (None, None);
    for _ in 0..n {
        let at = d.offset();
        let key = d.text_key().map_err(cbor(HEADER))?;
        if prev.is_some_and(|p| !key_precedes(p, key)) {
            let error = drisl::DecodeError { offset: at, problem: Problem::KeyOrder };
            return Err(EventError::Cbor { part: HEADER, error });
        }
        prev = Some(key);
        match key {
            b"t" => t = Some(d.text().map_err(cbor(HEADER))?),
            b"op" => op = Some(d.int().map_err(cbor(HEADER))?),
            _ => d.skip(&drisl::Limits::default()).map_err(cbor(HEADER))?,
        }
    }
    match op {
        Some(1) => match t {
            Some(kind) => Ok(FrameHeader::Message { kind }),
            None => Err(EventError::MissingField { part: HEADER, field: "t" }),
        },
        Some(-1) => Ok(FrameHeader::Error),
        Some(found) => Err(EventError::UnknownFrameOp { found }),
        None => Err(EventError::MissingField { part: HEADER, field: "op" }),
    }
}

impl<'a> Frame<'a> {
    /// Reads exactly one frame: `bytes` must be a header followed by a body
    /// and nothing else, at most [`Limits::max_frame_bytes`] long (checked
    /// first).
    pub fn decode(bytes: &'a [u8], limits: &Limits) -> Result<Frame<'a>, EventError> {
        let found = bytes.len() as u64;
        if found > limits.max_frame_bytes {
            return Err(EventError::FrameTooLarge { limit: limits.max_frame_bytes, found });
        }
        let mut d = Decoder::new(bytes);
        let header = read_header(&mut d)?;
        let body =
            bytes.get(usize::try_from(d.offset()).unwrap_or(usize::MAX)..).unwrap_or_default();
        Ok(Frame { header, body, offset: 0, len: found })
    }

    /// A message frame: the header `{t: kind, op: 1}` followed by `body`.
    pub fn encode(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut e = Encoder::new();
        e.map(2).text("t").text(kind).text("op").int(1);
        let mut out = e.into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// An error frame: the header `{op: -1}` and the body `{error,
    /// message?}`.
    pub fn encode_error(error: &str, message: Option<&str>) -> Vec<u8> {
        let mut e = Encoder::new();
        e.map(1).text("op").int(-1);
        e.map(1u64.saturating_add(u64::from(message.is_some()))).text("error").text(error);
        if let Some(message) = message {
            e.text("message").text(message);
        }
        e.into_bytes()
    }

    /// Whether `bytes` starts with a frame header rather than an event body:
    /// its first map's first key is `t` or `op` (an event body's keys are
    /// longer; `ops` is a `#commit`'s first).
    pub fn looks_like_frame(bytes: &[u8]) -> bool {
        let mut d = Decoder::new(bytes);
        matches!(d.map(), Ok(n) if n > 0) && matches!(d.text_key(), Ok(b"t" | b"op"))
    }
}

/// The frames of a capture of concatenated frames (as saved from
/// `com.atproto.sync.subscribeRepos`), in order.
///
/// Each frame is found by decoding its header and skipping its body, which
/// checks both are strict DRISL, within a window of
/// [`Limits::max_frame_bytes`]. A frame over the limit is reported as
/// [`EventError::FrameTooLarge`] and skipped. A frame that fails
/// otherwise (a strict rule: key order, minimal encoding, nesting depth,
/// floats; a header no frame has: an unknown `op`, no `t`) is reported with
/// its error and skipped too, if its end can be found from its CBOR
/// structure alone and another frame (or the end of the input) follows it
/// (`failed_frame_len`). Anything else (truncation, an indefinite length,
/// zero padding, bytes that are not CBOR) ends the iteration, since the
/// next frame's start cannot be found (the spec asks clients to drop the
/// connection on invalid framing); [`Frames::unread`] then says how much
/// of the input was left.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    input: &'a [u8],
    pos: usize,
    limits: Limits,
    done: bool,
}

impl<'a> Frames<'a> {
    /// The frames of `input`.
    pub fn new(input: &'a [u8], limits: &Limits) -> Self {
        Frames { input, pos: 0, limits: *limits, done: false }
    }

    /// Offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// The bytes of the input not read: after an error that ended the
    /// iteration, from the start of the frame that could not be framed;
    /// zero once every frame was read.
    pub fn unread(&self) -> u64 {
        self.input.len().saturating_sub(self.pos) as u64
    }

    /// Decodes one frame at the start of `window`, returning it and its
    /// length.
    fn frame_in(window: &'a [u8]) -> Result<(FrameHeader<'a>, &'a [u8], usize), EventError> {
        let mut d = Decoder::new(window);
        let header = read_header(&mut d)?;
        let start = usize::try_from(d.offset()).unwrap_or(usize::MAX);
        d.skip(&drisl::Limits::default()).map_err(cbor(BODY))?;
        let end = usize::try_from(d.offset()).unwrap_or(usize::MAX);
        let body = window.get(start..end).unwrap_or_default();
        Ok((header, body, end))
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, EventError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.input.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        let cap = usize::try_from(self.limits.max_frame_bytes).unwrap_or(usize::MAX);
        let clipped = rest.len() > cap;
        let window = rest.get(..cap.min(rest.len())).unwrap_or(rest);
        let offset = self.pos as u64;
        match Self::frame_in(window) {
            Ok((header, body, len)) => {
                self.pos = self.pos.saturating_add(len);
                Some(Ok(Frame { header, body, offset, len: len as u64 }))
            }
            Err(mut e) => {
                // Where the failed frame ends, if that can be told: from its
                // structure within the window; past the window (a frame over
                // the limit), decoded whole or from its structure there.
                let mut len = failed_frame_len(window, rest);
                if len.is_none() && clipped {
                    match Self::frame_in(rest) {
                        Ok((_, _, whole)) => len = Some(whole),
                        Err(whole) => {
                            len = failed_frame_len(rest, rest);
                            e = whole;
                        }
                    }
                }
                let Some(len) = len else {
                    self.done = true;
                    return Some(Err(e));
                };
                // Framed all the same: this frame fails, the next is read.
                self.pos = self.pos.saturating_add(len);
                if len > cap {
                    let limit = self.limits.max_frame_bytes;
                    return Some(Err(EventError::FrameTooLarge { limit, found: len as u64 }));
                }
                Some(Err(e))
            }
        }
    }
}

/// Where a frame that failed to decode ends, found in `window` (the start
/// of `rest`, the input from the frame on), if that can be told with some
/// confidence: it starts with a map (every frame header is one), its two
/// items end within the window ([`structural_len`]), and what follows them
/// is the end of the input or [looks like a frame](Frame::looks_like_frame).
/// Otherwise (zero padding, a frame cut short, bytes that are not CBOR)
/// `None`: the next frame's start is not known.
fn failed_frame_len(window: &[u8], rest: &[u8]) -> Option<usize> {
    if window.first()? >> 5 != 5 {
        return None;
    }
    let len = structural_len(window, 2)?;
    let after = rest.get(len..)?;
    (after.is_empty() || Frame::looks_like_frame(after)).then_some(len)
}

impl std::iter::FusedIterator for Frames<'_> {}

/// The length of the first `items` CBOR items of `bytes`, found from their
/// structure only: heads and definite lengths, in any encoding (not
/// minimal, maps in any key order, floats, any tags, nested as deep as
/// they go). `None` if they do not end within `bytes`, or hold an
/// indefinite length or a reserved head, whose end this does not follow.
///
/// One count of items still to read takes the place of a stack (an array
/// adds its length, a map twice its length, a tag one), and every item
/// takes at least one byte: the loop ends within `bytes.len()` steps and
/// allocates nothing, whatever the input claims.
fn structural_len(bytes: &[u8], items: u64) -> Option<usize> {
    let mut left = items;
    let mut pos = 0usize;
    while left > 0 {
        left -= 1;
        let initial = *bytes.get(pos)?;
        pos = pos.checked_add(1)?;
        let arg = match initial & 0x1f {
            info @ 0..=23 => u64::from(info),
            info @ 24..=27 => {
                // 1, 2, 4 or 8 bytes, big-endian.
                let width = 1usize << (info - 24);
                let arg_bytes = bytes.get(pos..pos.checked_add(width)?)?;
                pos = pos.checked_add(width)?;
                arg_bytes.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b))
            }
            _ => return None,
        };
        match initial >> 5 {
            2 | 3 => pos = pos.checked_add(usize::try_from(arg).ok()?)?,
            4 => left = left.checked_add(arg)?,
            5 => left = left.checked_add(arg.checked_mul(2)?)?,
            6 => left = left.checked_add(1)?,
            // Integers and major 7 (simple values, floats): the head was
            // the whole item.
            _ => {}
        }
    }
    (pos <= bytes.len()).then_some(pos)
}

/// The order of one stream's sequence numbers: each event's `seq` must be
/// above every `seq` seen before on the stream.
///
/// The event stream specification has hosts number events in increasing
/// order (with gaps allowed); an event at or below the highest number seen
/// is a replay or a reordering. What to do with one is the caller's
/// choice: indigo's consumer logs it, `atrepo event verify-stream` warns
/// (or fails it with `--strict-seq`). `seq` is not covered by any
/// signature, so this is a check on the stream, not on the repository:
/// keep one `SeqOrder` per upstream connection (or capture), and do not
/// raise it with an event refused for what it holds ([`check`](Self::check)
/// first, [`advance`](Self::advance) after), so that one corrupt frame
/// with a huge `seq` does not put every later event out of order.
///
/// ```
/// use atrepo::event::SeqOrder;
///
/// let mut order = SeqOrder::new();
/// assert!(order.observe(5).is_ok());
/// assert!(order.observe(9).is_ok()); // gaps are fine
/// assert!(order.observe(9).is_err()); // a replay
/// assert!(order.observe(7).is_err()); // out of order
/// assert_eq!(order.last(), Some(9));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqOrder {
    last: Option<i64>,
}

impl SeqOrder {
    /// A stream with no events seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `seq` against the highest seen so far: it must be above.
    pub fn check(&self, seq: i64) -> Result<(), EventError> {
        match self.last {
            Some(previous) if seq <= previous => {
                Err(EventError::SeqNotIncreasing { seq, previous })
            }
            _ => Ok(()),
        }
    }

    /// Makes `seq` the highest seen if it is above it (never lowers it).
    pub fn advance(&mut self, seq: i64) {
        self.last = Some(self.last.map_or(seq, |last| last.max(seq)));
    }

    /// [`check`](Self::check), then [`advance`](Self::advance) if it
    /// passed: a `seq` that fails leaves the order as it was, so one
    /// replayed event does not fail the ones after it.
    pub fn observe(&mut self, seq: i64) -> Result<(), EventError> {
        self.check(seq)?;
        self.advance(seq);
        Ok(())
    }

    /// The highest `seq` seen so far.
    pub fn last(&self) -> Option<i64> {
        self.last
    }
}

/// A decoded firehose message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Events are decoded once per frame and matched at once; boxing the large
// variant would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
pub enum Event<'a> {
    /// A `#commit` event.
    Commit(CommitEvent<'a>),
    /// A `#sync` event.
    Sync(SyncEvent<'a>),
    /// An `#identity` event.
    Identity(IdentityEvent<'a>),
    /// An `#account` event.
    Account(AccountEvent<'a>),
    /// An error frame.
    Error {
        /// The error name.
        error: &'a str,
        /// The message, if any.
        message: Option<&'a str>,
    },
    /// A message of another type (`#info`, or one this version does not
    /// know), with its body checked to be DRISL.
    Other {
        /// The type the header gives.
        kind: &'a str,
    },
}

impl<'a> Event<'a> {
    /// Decodes a frame's body according to its header.
    pub fn from_frame(frame: &Frame<'a>, limits: &Limits) -> Result<Event<'a>, EventError> {
        match frame.header {
            FrameHeader::Message { kind: "#commit" } => {
                CommitEvent::decode(frame.body, limits).map(Event::Commit)
            }
            FrameHeader::Message { kind: "#sync" } => {
                SyncEvent::decode(frame.body, limits).map(Event::Sync)
            }
            FrameHeader::Message { kind: "#identity" } => {
                IdentityEvent::decode(frame.body, limits).map(Event::Identity)
            }
            FrameHeader::Message { kind: "#account" } => {
                AccountEvent::decode(frame.body, limits).map(Event::Account)
            }
            FrameHeader::Message { kind } => {
                drisl::validate(frame.body, &drisl::Limits::default()).map_err(cbor(BODY))?;
                Ok(Event::Other { kind })
            }
            FrameHeader::Error => read_error_body(frame.body),
        }
    }

    /// Decodes either a whole frame (header and body) or a bare `#commit`
    /// or `#sync` body, telling them apart by their first key
    /// ([`Frame::looks_like_frame`], [`EventType::detect`]).
    pub fn decode(bytes: &'a [u8], limits: &Limits) -> Result<Event<'a>, EventError> {
        let found = bytes.len() as u64;
        if found > limits.max_frame_bytes {
            return Err(EventError::FrameTooLarge { limit: limits.max_frame_bytes, found });
        }
        if Frame::looks_like_frame(bytes) {
            return Event::from_frame(&Frame::decode(bytes, limits)?, limits);
        }
        match EventType::detect(bytes) {
            Some(EventType::Commit) => CommitEvent::decode(bytes, limits).map(Event::Commit),
            Some(EventType::Sync) => SyncEvent::decode(bytes, limits).map(Event::Sync),
            None => Err(EventError::UnrecognizedBody),
        }
    }

    /// The message type: `#commit`, `#sync`, the header's type for other
    /// messages, or `error`.
    pub fn kind(&self) -> &'a str {
        match self {
            Event::Commit(_) => "#commit",
            Event::Sync(_) => "#sync",
            Event::Identity(_) => "#identity",
            Event::Account(_) => "#account",
            Event::Error { .. } => "error",
            Event::Other { kind } => kind,
        }
    }

    /// The account the event is about, for `#commit`, `#sync`,
    /// `#identity` and `#account`.
    pub fn did(&self) -> Option<&'a str> {
        match self {
            Event::Commit(e) => Some(e.repo),
            Event::Sync(e) => Some(e.did),
            Event::Identity(e) => Some(e.did),
            Event::Account(e) => Some(e.did),
            Event::Error { .. } | Event::Other { .. } => None,
        }
    }

    /// The stream sequence number, for `#commit`, `#sync`, `#identity` and
    /// `#account`.
    pub fn seq(&self) -> Option<i64> {
        match self {
            Event::Commit(e) => Some(e.seq),
            Event::Sync(e) => Some(e.seq),
            Event::Identity(e) => Some(e.seq),
            Event::Account(e) => Some(e.seq),
            Event::Error { .. } | Event::Other { .. } => None,
        }
    }

    /// This event as an error, for callers that verify only `#commit` and
    /// `#sync`: [`EventError::ErrorFrame`] or
    /// [`EventError::UnsupportedEventType`]; `None` for the two.
    pub fn unsupported(&self) -> Option<EventError> {
        match self {
            Event::Commit(_) | Event::Sync(_) => None,
            Event::Error { error, message } => Some(EventError::ErrorFrame {
                error: snippet(error, 256),
                message: message.map(|m| snippet(m, 256)),
            }),
            Event::Identity(_) | Event::Account(_) | Event::Other { .. } => {
                Some(EventError::UnsupportedEventType { found: snippet(self.kind(), 64) })
            }
        }
    }
}

fn read_error_body(body: &[u8]) -> Result<Event<'_>, EventError> {
    let mut d = Decoder::new(body);
    let n = d.map().map_err(cbor(ERROR_BODY))?;
    let mut prev: Option<&[u8]> = None;
    let (mut error, mut message) = (None, None);
    for _ in 0..n {
        let at = d.offset();
        let key = d.text_key().map_err(cbor(ERROR_BODY))?;
        if prev.is_some_and(|p| !key_precedes(p, key)) {
            let error = drisl::DecodeError { offset: at, problem: Problem::KeyOrder };
            return Err(EventError::Cbor { part: ERROR_BODY, error });
        }
        prev = Some(key);
        match key {
            b"error" => error = Some(d.text().map_err(cbor(ERROR_BODY))?),
            b"message" => message = Some(d.text().map_err(cbor(ERROR_BODY))?),
            _ => d.skip(&drisl::Limits::default()).map_err(cbor(ERROR_BODY))?,
        }
    }
    d.finish().map_err(cbor(ERROR_BODY))?;
    let error = error.ok_or(EventError::MissingField { part: ERROR_BODY, field: "error" })?;
    Ok(Event::Error { error, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(key: &str) -> Vec<u8> {
        let mut e = Encoder::new();
        e.map(1).text(key).text("x");
        e.into_bytes()
    }

    #[test]
    fn seq_order_refuses_replays_and_reorders_without_moving() {
        let mut order = SeqOrder::new();
        assert_eq!(order.last(), None);
        // Any first number, negative included: nothing to compare it with.
        order.observe(-3).unwrap();
        order.observe(10).unwrap();
        let e = order.observe(10).unwrap_err();
        assert!(matches!(e, EventError::SeqNotIncreasing { seq: 10, previous: 10 }), "{e:?}");
        let e = order.observe(4).unwrap_err();
        assert!(matches!(e, EventError::SeqNotIncreasing { seq: 4, previous: 10 }), "{e:?}");
        assert_eq!(e.code(), "seq_not_increasing");
        assert_eq!(e.kind(), crate::ErrorKind::Verification);
        // A refused number leaves the highest as it was.
        assert_eq!(order.last(), Some(10));
        order.observe(11).unwrap();
        // Checking alone does not move it; advancing never lowers it.
        order.check(500).unwrap();
        order.advance(7);
        assert_eq!(order.last(), Some(11));
        order.advance(12);
        assert!(order.check(12).is_err());
        order.observe(i64::MAX).unwrap();
        assert!(order.observe(i64::MAX).is_err());
    }

    #[test]
    fn frames_split_and_decode() {
        let mut stream = Frame::encode("#info", &body("did"));
        stream.extend(Frame::encode_error("FutureCursor", Some("cursor in the future")));
        let frames: Vec<_> =
            Frames::new(&stream, &Limits::default()).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 2);
        assert!(Frame::looks_like_frame(&stream));
        assert!(!Frame::looks_like_frame(&body("did")));
        let first = Event::from_frame(&frames[0], &Limits::default()).unwrap();
        assert_eq!(first, Event::Other { kind: "#info" });
        assert!(matches!(first.unsupported(), Some(EventError::UnsupportedEventType { .. })));
        let second = Event::from_frame(&frames[1], &Limits::default()).unwrap();
        assert_eq!(
            second,
            Event::Error { error: "FutureCursor", message: Some("cursor in the future") }
        );
        assert_eq!(frames[1].offset, frames[0].len);
    }

    #[test]
    fn oversized_frames_are_skipped() {
        let big = Frame::encode("#identity", &body(&"d".repeat(100)));
        let small = Frame::encode("#identity", &body("did"));
        let mut stream = big.clone();
        stream.extend(&small);
        let limits = Limits::default().max_frame_bytes(64);
        let items: Vec<_> = Frames::new(&stream, &limits).collect();
        assert_eq!(items.len(), 2);
        assert!(
            matches!(&items[0], Err(EventError::FrameTooLarge { limit: 64, found }) if *found == big.len() as u64)
        );
        assert!(items[1].is_ok());
    }

    #[test]
    fn bad_headers() {
        let mut e = Encoder::new();
        e.map(1).text("op").int(2);
        let mut frame = e.into_bytes();
        frame.extend(body("did"));
        assert!(matches!(
            Frame::decode(&frame, &Limits::default()),
            Err(EventError::UnknownFrameOp { found: 2 })
        ));
        let mut e = Encoder::new();
        e.map(1).text("op").int(1);
        assert!(matches!(
            Frame::decode(&e.into_bytes(), &Limits::default()),
            Err(EventError::MissingField { field: "t", .. })
        ));
        // In a capture, such a frame is skipped, and the next one read.
        let mut stream = frame.clone();
        stream.extend(Frame::encode("#identity", &body("did")));
        let items: Vec<_> = Frames::new(&stream, &Limits::default()).collect();
        assert!(matches!(&items[..], [Err(EventError::UnknownFrameOp { found: 2 }), Ok(_)]));
        // Garbage stops the iteration.
        let mut frames = Frames::new(&[0xff, 0x00], &Limits::default());
        let items: Vec<_> = frames.by_ref().collect();
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
        assert_eq!(frames.unread(), 2);
    }

    /// A frame that breaks a strict rule but is well-formed CBOR fails on
    /// its own, and the frames after it are read (a review found one such
    /// frame ended the whole capture); one whose end cannot be found still
    /// ends it, and says how much was left.
    #[test]
    fn a_strict_failure_skips_one_frame() {
        let good = Frame::encode("#identity", &body("did"));
        // Keys out of canonical order; 100 nested arrays (past the depth
        // limit); a float; a non-minimal length.
        let unordered = [0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02];
        let deep = [vec![0x81; 100], vec![0x00]].concat();
        let float = [0xa1, 0x61, b'a', 0xfb, 0, 0, 0, 0, 0, 0, 0, 0];
        let long = [0xa1, 0x61, b'a', 0x78, 0x01, b'x'];
        for bad in [&unordered[..], &deep, &float, &long] {
            let mut stream = good.clone();
            stream.extend(Frame::encode("#identity", bad));
            stream.extend(&good);
            let mut frames = Frames::new(&stream, &Limits::default());
            let items: Vec<_> = frames.by_ref().collect();
            assert_eq!(items.len(), 3, "{bad:02x?}");
            assert!(items[0].is_ok() && items[2].is_ok(), "{bad:02x?}");
            assert!(matches!(&items[1], Err(EventError::Cbor { .. })), "{:?}", items[1]);
            assert_eq!(items[2].as_ref().unwrap().offset, (stream.len() - good.len()) as u64);
            assert_eq!(frames.unread(), 0);
        }
        // An indefinite-length map: its end is not followed.
        let mut stream = good.clone();
        let cut = stream.len();
        stream.extend(Frame::encode("#identity", &[0xbf, 0x61, b'a', 0x01, 0xff]));
        stream.extend(&good);
        let mut frames = Frames::new(&stream, &Limits::default());
        let items: Vec<_> = frames.by_ref().collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
        assert_eq!(frames.unread(), (stream.len() - cut) as u64);
        // Zero padding after the last frame is one error, not one per two
        // bytes; so is a failed frame followed by bytes that start no
        // frame (the iteration does not go on into them).
        let bad = Frame::encode("#identity", &unordered);
        for (tail, unread) in
            [(vec![0u8; 100], 100), ([bad.clone(), vec![0u8; 100]].concat(), bad.len() + 100)]
        {
            let stream = [good.clone(), tail].concat();
            let mut frames = Frames::new(&stream, &Limits::default());
            let items: Vec<_> = frames.by_ref().collect();
            assert_eq!(items.len(), 2);
            assert_eq!(frames.unread(), unread as u64);
        }
        // Too large and breaking a strict rule: reported as too large, and
        // skipped.
        let long = [&[0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x78, 100][..], &[b'x'; 100]].concat();
        let big = Frame::encode("#identity", &long);
        let stream = [big.clone(), good.clone()].concat();
        let limits = Limits::default().max_frame_bytes(64);
        let items: Vec<_> = Frames::new(&stream, &limits).collect();
        assert!(
            matches!(&items[..], [Err(EventError::FrameTooLarge { found, .. }), Ok(_)] if *found == big.len() as u64),
            "{items:?}"
        );
    }

    #[test]
    fn structural_lengths() {
        // Two items: `{"a": [1, h'00']}` (non-minimal array length) and a tag.
        let items = [0xa1, 0x61, b'a', 0x98, 0x02, 0x01, 0x41, 0x00, 0xd8, 0x2a, 0x40, 0xee];
        assert_eq!(structural_len(&items, 1), Some(8));
        assert_eq!(structural_len(&items, 2), Some(11));
        for cut in 0..11 {
            assert_eq!(structural_len(&items[..cut], 2), None, "{cut}");
        }
        // A claimed length far past the input, and a huge array count, end
        // without reading or allocating past the input.
        assert_eq!(
            structural_len(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1),
            None
        );
        assert_eq!(
            structural_len(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1),
            None
        );
        // Reserved heads and indefinite lengths.
        for head in [0x1c, 0x5f, 0x7f, 0x9f, 0xbf, 0xff] {
            assert_eq!(structural_len(&[head, 0x00, 0xff], 1), None, "{head:02x}");
        }
    }
}
