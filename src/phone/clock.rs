//! Wall-clock text in the agent's time zone: past calls' dates, and follow-up times typed in
//! the wrap-up form turned into instants.
//!
//! The local UTC offset is read once, at start ([`init_local_offset`] from `main`, before
//! any thread exists: the `time` crate refuses to read it later on Unix); UTC if unknown.

use std::sync::OnceLock;

use sapa_ui::{CalendarDate, LocalDateTime};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

static OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local offset; call first thing in `main`.
pub fn init_local_offset() {
    offset();
}

fn offset() -> UtcOffset {
    *OFFSET.get_or_init(|| UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC))
}

/// `YYYY-MM-DD HH:MM` in local time for ms since the Unix epoch.
pub fn local_text(epoch_ms: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp(epoch_ms.div_euclid(1000)) else {
        return String::new();
    };
    let t = t.to_offset(offset());
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// A typed local date and time as ms since the Unix epoch. The form has validated it; a date
/// that still does not exist (never, in practice) falls back to now.
pub fn local_to_epoch_ms(at: LocalDateTime) -> i64 {
    let date = Month::try_from(at.date.month)
        .ok()
        .and_then(|m| Date::from_calendar_date(i32::from(at.date.year), m, at.date.day).ok());
    let time = Time::from_hms(at.hour, at.minute, 0).ok();
    match (date, time) {
        (Some(date), Some(time)) => {
            PrimitiveDateTime::new(date, time)
                .assume_offset(offset())
                .unix_timestamp()
                * 1000
        }
        _ => crate::peer::now_ms(),
    }
}

/// Local midnight at the start of `date`, as ms since the Unix epoch; `None` for a date that
/// does not exist.
pub fn local_midnight_ms(date: CalendarDate) -> Option<i64> {
    let month = Month::try_from(date.month).ok()?;
    let date = Date::from_calendar_date(i32::from(date.year), month, date.day).ok()?;
    Some(
        PrimitiveDateTime::new(date, Time::MIDNIGHT)
            .assume_offset(offset())
            .unix_timestamp()
            * 1000,
    )
}

/// The local calendar date after `date` (for "up to and including `date`").
pub fn next_day(date: CalendarDate) -> Option<CalendarDate> {
    let month = Month::try_from(date.month).ok()?;
    let next = Date::from_calendar_date(i32::from(date.year), month, date.day)
        .ok()?
        .next_day()?;
    Some(CalendarDate {
        year: u16::try_from(next.year()).ok()?,
        month: u8::from(next.month()),
        day: next.day(),
    })
}

/// The local calendar date of an instant (ms since the Unix epoch).
pub fn local_date(epoch_ms: i64) -> CalendarDate {
    let t = OffsetDateTime::from_unix_timestamp(epoch_ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset());
    CalendarDate {
        year: u16::try_from(t.year()).unwrap_or(1970),
        month: u8::from(t.month()),
        day: t.day(),
    }
}

/// Minutes the local time is ahead of UTC (negative west of Greenwich).
pub fn local_offset_minutes() -> i32 {
    i32::from(offset().whole_minutes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_text_and_back_agree() {
        let at = LocalDateTime {
            date: CalendarDate {
                year: 2026,
                month: 11,
                day: 24,
            },
            hour: 9,
            minute: 30,
        };
        let ms = local_to_epoch_ms(at);
        assert_eq!(local_text(ms), "2026-11-24 09:30");
    }

    #[test]
    fn a_day_runs_from_local_midnight_to_the_next() {
        let day = CalendarDate {
            year: 2026,
            month: 12,
            day: 31,
        };
        let start = local_midnight_ms(day).unwrap();
        assert_eq!(local_text(start), "2026-12-31 00:00");
        assert_eq!(local_date(start), day);
        assert_eq!(local_date(start - 1).day, 30);
        let next = next_day(day).unwrap();
        assert_eq!((next.year, next.month, next.day), (2027, 1, 1));
        assert_eq!(local_midnight_ms(next).unwrap() - start, 86_400_000);
        let bad = CalendarDate {
            year: 2026,
            month: 2,
            day: 30,
        };
        assert_eq!(local_midnight_ms(bad), None);
    }
}
