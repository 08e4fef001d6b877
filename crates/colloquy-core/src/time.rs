//! Wall-clock time as the wire and the database carry it: integer unix seconds / milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds since the unix epoch.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// RFC 3339 UTC with milliseconds (`2026-03-25T11:42:06.000Z`) of a unix millisecond.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reads a UTC time as [`rfc3339_ms`] writes it, and the shorter forms people type and
/// `<input type="datetime-local">` sends (`2026-12-01T22:56`, seconds and `Z` optional).
pub fn parse_utc_ms(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, clock) = text.split_once(['T', ' ']).unwrap_or((text, "00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, millis) = match clock.split_once('.') {
        Some((c, frac)) => {
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            (c, digits.parse::<i64>().ok()?)
        }
        None => (clock, 0),
    };
    let mut c = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let hour = c.next()??;
    let minute = c.next()??;
    let second = c.next().unwrap_or(Some(0))?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since the epoch from a civil date (Howard Hinnant's algorithm, the inverse of the
    // one above).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000) + millis)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parsing_reads_back_what_formatting_writes() {
        for ms in [0, 1_764_629_796_123, 951_782_400_000, -86_400_000, 4_102_444_799_999] {
            assert_eq!(super::parse_utc_ms(&super::rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(super::parse_utc_ms("2025-12-01T22:56"), Some(1_764_629_760_000));
        assert_eq!(super::parse_utc_ms("2025-13-01T00:00"), None);
        assert_eq!(super::parse_utc_ms("yesterday"), None);
    }

    use super::*;

    #[test]
    fn formats_rfc3339_with_millis() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_774_438_926_000), "2026-03-25T11:42:06.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }
}
