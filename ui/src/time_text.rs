//! Times as people read and type them: durations as `m:ss`, dates as `YYYY-MM-DD` and
//! follow-up times as `YYYY-MM-DD HH:MM`.
//!
//! There is no clock here. Timers are `now_ms` (the engine's clock, carried in the view model)
//! minus a `*_since_ms` from the same clock, and typed dates are checked for shape and for being
//! a real calendar date, not against today: the engine knows the time zone and the date.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A calendar date as typed, with no time zone: `2026-11-24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CalendarDate {
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to the length of the month.
    pub day: u8,
}

/// A wall-clock date and time as typed, minute precision, in the agent's local time zone:
/// `2026-11-24 09:30`. The engine turns it into an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LocalDateTime {
    pub date: CalendarDate,
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
}

/// Why a typed date or date-time was refused; `Display` is the sentence the form shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateTextError {
    /// Nothing typed.
    Empty,
    /// Not in the expected `YYYY-MM-DD` / `YYYY-MM-DD HH:MM` shape.
    DateTimeFormat,
    /// Not in the expected `YYYY-MM-DD` shape.
    DateFormat,
    /// The shape is right but there is no such day (e.g. `2026-02-30`).
    NoSuchDate,
    /// The shape is right but there is no such time (e.g. `24:10`).
    NoSuchTime,
}

impl fmt::Display for DateTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "Required.",
            Self::DateTimeFormat => "Use the format YYYY-MM-DD HH:MM, e.g. 2026-11-24 09:30.",
            Self::DateFormat => "Use the format YYYY-MM-DD, e.g. 2026-11-24.",
            Self::NoSuchDate => "There is no such date.",
            Self::NoSuchTime => "There is no such time of day (00:00 to 23:59).",
        })
    }
}

impl std::error::Error for DateTextError {}

impl fmt::Display for CalendarDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:02}:{:02}", self.date, self.hour, self.minute)
    }
}

/// A duration for a timer: `0:07`, `12:34`, `1:02:03`. Rounds down to the second.
pub fn duration_text(duration_ms: u64) -> String {
    let total_s = duration_ms / 1000;
    let (h, m, s) = (total_s / 3600, (total_s / 60) % 60, total_s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Time since `since_ms` on the engine clock, as [`duration_text`]; `0:00` if `since_ms` is
/// ahead of `now_ms` (the engine's clock and a server's can disagree by a little).
pub fn elapsed_text(now_ms: u64, since_ms: u64) -> String {
    duration_text(now_ms.saturating_sub(since_ms))
}

/// Whole seconds left until `deadline_ms`, rounded up, so a countdown shows `1` until the very end.
pub fn seconds_left(now_ms: u64, deadline_ms: u64) -> u64 {
    deadline_ms.saturating_sub(now_ms).div_ceil(1000)
}

/// Parse `YYYY-MM-DD` (surrounding spaces ignored).
pub fn parse_date(text: &str) -> Result<CalendarDate, DateTextError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DateTextError::Empty);
    }
    date_from_text(text).ok_or(DateTextError::DateFormat)?
}

/// Parse `YYYY-MM-DD HH:MM` (surrounding spaces ignored; one or more spaces or a `T` between).
pub fn parse_date_time(text: &str) -> Result<LocalDateTime, DateTextError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DateTextError::Empty);
    }
    let format = DateTextError::DateTimeFormat;
    let (date_text, time_text) = match text.split_once('T') {
        Some(parts) => parts,
        None => text.split_once(' ').ok_or(format)?,
    };
    let time_text = time_text.trim_start();
    let date = date_from_text(date_text).ok_or(format)??;
    let (hour_text, minute_text) = time_text.split_once(':').ok_or(format)?;
    if hour_text.is_empty() || hour_text.len() > 2 || minute_text.len() != 2 {
        return Err(format);
    }
    let hour = digits(hour_text).ok_or(format)?;
    let minute = digits(minute_text).ok_or(format)?;
    if hour > 23 || minute > 59 {
        return Err(DateTextError::NoSuchTime);
    }
    Ok(LocalDateTime {
        date,
        // Both checked above to fit: hour <= 23, minute <= 59.
        hour: hour as u8,
        minute: minute as u8,
    })
}

/// `None` when the shape is wrong; `Some(Err)` when the shape is right but the day does not exist.
fn date_from_text(text: &str) -> Option<Result<CalendarDate, DateTextError>> {
    let mut parts = text.split('-');
    let (year_text, month_text, day_text) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || year_text.len() != 4
        || month_text.len() != 2
        || day_text.len() != 2
    {
        return None;
    }
    let (year, month, day) = (digits(year_text)?, digits(month_text)?, digits(day_text)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Some(Err(DateTextError::NoSuchDate));
    }
    Some(Ok(CalendarDate {
        // Four digits, two digits, two digits: all fit.
        year: year as u16,
        month: month as u8,
        day: day as u8,
    }))
}

/// ASCII digits only (no sign, no spaces), as a number.
fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration_text(0), "0:00");
        assert_eq!(duration_text(7_999), "0:07");
        assert_eq!(duration_text(754_000), "12:34");
        assert_eq!(duration_text(3_723_000), "1:02:03");
        assert_eq!(elapsed_text(1_000, 5_000), "0:00");
        assert_eq!(seconds_left(10_000, 10_001), 1);
        assert_eq!(seconds_left(10_000, 9_000), 0);
    }

    #[test]
    fn follow_up_times_are_checked_for_shape_and_calendar() {
        let ok = parse_date_time(" 2026-11-24 09:30 ").unwrap();
        assert_eq!(ok.to_string(), "2026-11-24 09:30");
        assert_eq!(parse_date_time("2026-11-24T9:05").unwrap().hour, 9);
        assert_eq!(parse_date_time(""), Err(DateTextError::Empty));
        assert_eq!(
            parse_date_time("24/11/2026 09:30"),
            Err(DateTextError::DateTimeFormat)
        );
        assert_eq!(
            parse_date_time("2026-11-24"),
            Err(DateTextError::DateTimeFormat)
        );
        assert_eq!(
            parse_date_time("2026-11-24 0930"),
            Err(DateTextError::DateTimeFormat)
        );
        assert_eq!(
            parse_date_time("2026-02-29 10:00"),
            Err(DateTextError::NoSuchDate)
        );
        assert!(parse_date_time("2028-02-29 10:00").is_ok());
        assert_eq!(
            parse_date_time("2026-11-24 24:00"),
            Err(DateTextError::NoSuchTime)
        );
        assert_eq!(parse_date("2026-13-01"), Err(DateTextError::NoSuchDate));
        assert_eq!(parse_date("2026-1-01"), Err(DateTextError::DateFormat));
        assert_eq!(parse_date("+026-01-01"), Err(DateTextError::DateFormat));
    }
}
