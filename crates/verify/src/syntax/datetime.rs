//! The `datetime` format: the intersection of RFC 3339 and ISO 8601 that
//! atproto's Lexicon allows, checked for real calendar dates.

use super::{Check, Fail, Kind, SyntaxError, run};

/// Most bytes in a datetime.
pub const DATETIME_MAX_LEN: usize = 64;

/// Validates a datetime: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of one
/// or more digits after `.`, then `Z` or `+HH:MM` / `-HH:MM` (not
/// `-00:00`); uppercase `T` and `Z`; at most [`DATETIME_MAX_LEN`] bytes.
///
/// The date must exist (month 1 to 12, a day the month has, leap years
/// included), hours 0 to 23, minutes and seconds 0 to 59 (no leap
/// second), and the instant, once shifted to UTC, must stay within years
/// 0000 to 9999.
pub fn datetime(s: &str) -> Result<(), SyntaxError> {
    run(Kind::Datetime, s, check_datetime)
}

/// Reads `n` ASCII digits at `at` as a number.
fn digits(b: &[u8], at: usize, n: usize, rule: &'static str) -> Result<u32, Fail> {
    let end = at.saturating_add(n);
    let Some(field) = b.get(at..end) else {
        return Err(Fail::at(rule, b.len().min(at)));
    };
    let mut value = 0u32;
    for (i, &c) in field.iter().enumerate() {
        if !c.is_ascii_digit() {
            return Err(Fail::char(rule, at.saturating_add(i)));
        }
        value = value.saturating_mul(10).saturating_add(u32::from(c.wrapping_sub(b'0')));
    }
    Ok(value)
}

/// Requires the byte `want` at `at`.
fn literal(b: &[u8], at: usize, want: u8, rule: &'static str) -> Check {
    match b.get(at) {
        Some(&c) if c == want => Ok(()),
        Some(_) => Err(Fail::char(rule, at)),
        None => Err(Fail::at(rule, b.len())),
    }
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn check_datetime(b: &[u8]) -> Check {
    if b.len() > DATETIME_MAX_LEN {
        return Err(Fail::at("expected at most 64 bytes", DATETIME_MAX_LEN));
    }
    let year = digits(b, 0, 4, "expected a four-digit year")?;
    literal(b, 4, b'-', "expected \"-\" after the year")?;
    let month = digits(b, 5, 2, "expected a two-digit month")?;
    literal(b, 7, b'-', "expected \"-\" after the month")?;
    let day = digits(b, 8, 2, "expected a two-digit day")?;
    literal(b, 10, b'T', "expected \"T\" between date and time")?;
    let hour = digits(b, 11, 2, "expected a two-digit hour")?;
    literal(b, 13, b':', "expected \":\" after the hour")?;
    let minute = digits(b, 14, 2, "expected two-digit minutes")?;
    literal(b, 16, b':', "expected \":\" after the minutes")?;
    let second = digits(b, 17, 2, "expected two-digit seconds")?;

    let mut at = 19usize;
    if b.get(at) == Some(&b'.') {
        at = at.saturating_add(1);
        let frac =
            b.get(at..).unwrap_or_default().iter().take_while(|c| c.is_ascii_digit()).count();
        if frac == 0 {
            return Err(Fail::at("expected at least one digit after \".\"", at));
        }
        at = at.saturating_add(frac);
    }

    // The offset, in seconds east of UTC.
    let offset: i64 = match b.get(at) {
        Some(b'Z') => {
            at = at.saturating_add(1);
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, at.saturating_add(1), 2, "expected a two-digit offset hour")?;
            literal(b, at.saturating_add(3), b':', "expected \":\" in the offset")?;
            let om = digits(b, at.saturating_add(4), 2, "expected two-digit offset minutes")?;
            if oh > 23 || om > 59 {
                return Err(Fail::at("expected an offset within 00:00 to 23:59", at));
            }
            if sign == b'-' && oh == 0 && om == 0 {
                return Err(Fail::at("expected \"+00:00\" or \"Z\" for utc, found \"-00:00\"", at));
            }
            let secs =
                i64::from(oh).saturating_mul(3600).saturating_add(i64::from(om).saturating_mul(60));
            at = at.saturating_add(6);
            if sign == b'-' { secs.saturating_neg() } else { secs }
        }
        Some(_) => return Err(Fail::char("expected a time zone: \"Z\" or +hh:mm or -hh:mm", at)),
        None => return Err(Fail::at("expected a time zone: \"Z\" or +hh:mm or -hh:mm", at)),
    };
    if at != b.len() {
        return Err(Fail::char("expected the end of the datetime", at));
    }

    if !(1..=12).contains(&month) {
        return Err(Fail::at("expected a month from 01 to 12", 5));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(Fail::at("expected a day that exists in the month", 8));
    }
    if hour > 23 {
        return Err(Fail::at("expected an hour from 00 to 23", 11));
    }
    if minute > 59 {
        return Err(Fail::at("expected minutes from 00 to 59", 14));
    }
    if second > 59 {
        return Err(Fail::at("expected seconds from 00 to 59", 17));
    }

    // Shifting to UTC moves the instant by less than a day, so only the
    // first and last day of the range can leave it.
    let time_of_day = i64::from(hour)
        .saturating_mul(3600)
        .saturating_add(i64::from(minute).saturating_mul(60))
        .saturating_add(i64::from(second));
    let utc = time_of_day.saturating_sub(offset);
    if year == 0 && month == 1 && day == 1 && utc < 0 {
        return Err(Fail::whole("expected an instant at or after year 0000 in utc"));
    }
    if year == 9999 && month == 12 && day == 31 && utc >= 86_400 {
        return Err(Fail::whole("expected an instant before year 10000 in utc"));
    }
    Ok(())
}
