//! [`Tid`]: atproto's timestamp identifier, used as a commit's `rev` and
//! as record keys, and the injectable [`Clock`] the rev checks read.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::syntax::{self, Kind, SyntaxError, TID_ALPHABET, tid_digit};

/// How far in the future a rev may be before it is refused by default:
/// five minutes, as indigo's relay allows (`futureRevTolerance`).
pub const DEFAULT_FUTURE_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Timestamps at or above this many microseconds do not fit in 53 bits.
const MAX_MICROS: u64 = 1 << 53;
/// Clock identifiers have 10 bits.
const MAX_CLOCK_ID: u16 = 1 << 10;

/// A timestamp identifier: 13 base32-sortable characters holding a 64-bit
/// value, 53 bits of microseconds since the UNIX epoch then a 10-bit clock
/// identifier.
///
/// Ordering of [`Tid`]s is the ordering of their strings, which is the
/// ordering of their values.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tid(u64);

impl Tid {
    /// Parses a TID, with the rules of [`syntax::tid`].
    pub fn parse(s: &str) -> Result<Tid, SyntaxError> {
        syntax::check_tid(s.as_bytes()).map_err(|f| f.into_error(Kind::Tid, s))?;
        let value =
            s.bytes().filter_map(tid_digit).fold(0u64, |acc, d| acc.wrapping_shl(5) | u64::from(d));
        Ok(Tid(value))
    }

    /// The TID for `timestamp_micros` (microseconds since the UNIX epoch,
    /// below 2^53) and `clock_id` (below 1024), or `None` if either is out
    /// of range.
    pub fn from_parts(timestamp_micros: u64, clock_id: u16) -> Option<Tid> {
        if timestamp_micros >= MAX_MICROS || clock_id >= MAX_CLOCK_ID {
            return None;
        }
        Some(Tid(timestamp_micros.wrapping_shl(10) | u64::from(clock_id)))
    }

    /// The TID with the given 64-bit value. Every value has a 13-character
    /// form, but TIDs made by atproto implementations keep the top bit
    /// clear.
    pub fn from_u64(value: u64) -> Tid {
        Tid(value)
    }

    /// The 64-bit value.
    pub fn as_u64(&self) -> u64 {
        self.0
    }

    /// Microseconds since the UNIX epoch.
    pub fn timestamp_micros(&self) -> u64 {
        self.0.wrapping_shr(10)
    }

    /// The 10-bit clock identifier.
    pub fn clock_id(&self) -> u16 {
        // Masked to 10 bits, so the conversion never truncates.
        u16::try_from(self.0 & 0x3ff).unwrap_or_default()
    }

    /// The 13 characters of this TID.
    pub fn to_bytes(&self) -> [u8; 13] {
        let mut out = [b'2'; 13];
        let mut rest = self.0;
        // Five bits per character, least significant last; the first
        // character gets the top four bits.
        for slot in out.iter_mut().rev() {
            let digit = usize::try_from(rest & 0x1f).unwrap_or_default();
            *slot = TID_ALPHABET.get(digit).copied().unwrap_or(b'2');
            rest = rest.wrapping_shr(5);
        }
        out
    }

    /// Fails unless this rev comes strictly after `previous` (a repeated or
    /// older rev is refused).
    pub fn check_after(&self, previous: &Tid) -> Result<()> {
        if self > previous {
            Ok(())
        } else {
            Err(Error::RevNotAfter { rev: *self, previous: *previous })
        }
    }

    /// Fails if this rev's timestamp is more than `tolerance` ahead of
    /// `clock` ([`DEFAULT_FUTURE_TOLERANCE`] is the usual choice).
    pub fn check_not_future(&self, clock: &impl Clock, tolerance: Duration) -> Result<()> {
        let now = clock.now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let rev = Duration::from_micros(self.timestamp_micros());
        match rev.checked_sub(now) {
            Some(ahead) if ahead > tolerance => {
                Err(Error::RevInFuture { rev: *self, ahead, tolerance })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // The alphabet is ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&bytes).unwrap_or_default())
    }
}

impl fmt::Debug for Tid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tid({self})")
    }
}

impl FromStr for Tid {
    type Err = SyntaxError;

    fn from_str(s: &str) -> Result<Tid, SyntaxError> {
        Tid::parse(s)
    }
}

/// Where rev checks read the time: injected, so that verification stays
/// deterministic and free of hidden I/O.
pub trait Clock {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock ([`SystemTime::now`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock stopped at one instant, for tests and replays.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl FixedClock {
    /// A clock stopped `micros` microseconds after the UNIX epoch.
    pub fn from_micros(micros: u64) -> Self {
        FixedClock(UNIX_EPOCH.checked_add(Duration::from_micros(micros)).unwrap_or(UNIX_EPOCH))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for s in
            ["3jzfcijpj2z2a", "7777777777777", "3zzzzzzzzzzzz", "2222222222222", "jzzzzzzzzzzzz"]
        {
            let tid = Tid::parse(s).unwrap();
            assert_eq!(tid.to_string(), s);
        }
        assert_eq!(Tid::parse("2222222222222").unwrap().as_u64(), 0);
        assert_eq!(Tid::parse("jzzzzzzzzzzzz").unwrap().as_u64(), u64::MAX);
        assert_eq!(Tid::from_u64(u64::MAX).to_string(), "jzzzzzzzzzzzz");
    }

    #[test]
    fn parts() {
        let tid = Tid::from_parts(1_700_000_000_000_000, 1023).unwrap();
        assert_eq!(tid.timestamp_micros(), 1_700_000_000_000_000);
        assert_eq!(tid.clock_id(), 1023);
        assert_eq!(Tid::parse(&tid.to_string()), Ok(tid));
        assert_eq!(Tid::from_parts(1 << 53, 0), None);
        assert_eq!(Tid::from_parts(0, 1024), None);
    }

    #[test]
    fn order_matches_strings() {
        let a = Tid::parse("3jzfcijpj2z2a").unwrap();
        let b = Tid::parse("3jzfcijpj2z2b").unwrap();
        assert!(a < b);
        assert_eq!(b.check_after(&a), Ok(()));
        assert_eq!(a.check_after(&b), Err(Error::RevNotAfter { rev: a, previous: b }));
        assert_eq!(a.check_after(&a), Err(Error::RevNotAfter { rev: a, previous: a }));
    }

    #[test]
    fn future_tolerance() {
        let now = 1_700_000_000_000_000;
        let clock = FixedClock::from_micros(now);
        let at = |offset: u64| Tid::from_parts(now + offset, 0).unwrap();
        let four_minutes = 4 * 60 * 1_000_000;
        assert_eq!(at(four_minutes).check_not_future(&clock, DEFAULT_FUTURE_TOLERANCE), Ok(()));
        let five = 5 * 60 * 1_000_000;
        assert_eq!(at(five).check_not_future(&clock, DEFAULT_FUTURE_TOLERANCE), Ok(()));
        let six = Tid::from_parts(now + 6 * 60 * 1_000_000, 0).unwrap();
        assert_eq!(
            six.check_not_future(&clock, DEFAULT_FUTURE_TOLERANCE),
            Err(Error::RevInFuture {
                rev: six,
                ahead: Duration::from_secs(360),
                tolerance: DEFAULT_FUTURE_TOLERANCE
            })
        );
        // The past is always fine.
        let old = Tid::from_parts(0, 0).unwrap();
        assert_eq!(old.check_not_future(&clock, Duration::ZERO), Ok(()));
    }
}
