//! Timestamps: RFC 3339 with an offset, or integer epoch milliseconds.
//!
//! All times inside the pipeline are UTC epoch milliseconds (`i64`).

/// Default earliest accepted event time: 1990-01-01T00:00:00Z. Early enough
/// for any store's order history, late enough that epoch seconds sent as
/// milliseconds (which read as January 1970) are still rejected.
pub const MIN_MS: i64 = 631_152_000_000;
/// Earliest time read at all: 1900-01-01T00:00:00Z.
pub const MIN_TIME_MS: i64 = -2_208_988_800_000;
/// Default latest accepted event time (exclusive) and latest read at all: 2100-01-01T00:00:00Z.
pub const MAX_MS: i64 = 4_102_444_800_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// The offset that ends a date-time, in minutes east of UTC: RFC 3339's
/// `Z` and `±HH:MM`, ISO 8601's `±HHMM` and `±HH` (PHP's `DATE_ISO8601`
/// writes `+0200`), and ` UTC` (as exports such as REES46's end).
fn offset_minutes(b: &[u8]) -> Option<i64> {
    if matches!(b, b"Z" | b"z" | b" UTC") {
        return Some(0);
    }
    let (sign, rest) = b.split_first()?;
    let (oh, om) = match rest {
        [h1, h2] => (digits(&[*h1, *h2], 0, 2)?, 0),
        [_, _, b':', _, _] | [_, _, _, _] => {
            let m = if rest.len() == 5 { 3 } else { 2 };
            (digits(rest, 0, 2)?, digits(rest, m, 2)?)
        }
        _ => return None,
    };
    if oh > 23 || om > 59 {
        return None;
    }
    let v = i64::from(oh * 60 + om);
    match sign {
        b'+' => Some(v),
        b'-' => Some(-v),
        _ => None,
    }
}

/// Parses an RFC 3339 date-time with a mandatory offset (`Z` or `±HH:MM`,
/// and the forms [`offset_minutes`] reads) into UTC epoch milliseconds.
/// Fractions beyond milliseconds are truncated. Returns `None` for
/// anything else, including out-of-range dates.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(digits(b, 0, 4)?);
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let min = digits(b, 14, 2)?;
    let sec = digits(b, 17, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // RFC 3339 allows a leap second (60); it is folded into the next second.
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min = offset_minutes(&b[i..])?;
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec)
        - offset_min * 60;
    let ms = secs * 1000 + millis;
    (MIN_TIME_MS..=MAX_MS).contains(&ms).then_some(ms)
}

/// Formats UTC epoch milliseconds as RFC 3339 with millisecond precision and `Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The start of the UTC-aligned window of `width_ms` that contains `ms`.
pub fn window_start(ms: i64, width_ms: i64) -> i64 {
    ms - ms.rem_euclid(width_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets_to_the_same_instant() {
        let z = parse_rfc3339("2019-10-01T00:00:05Z").unwrap();
        assert_eq!(z, 1_569_888_005_000);
        assert_eq!(parse_rfc3339("2019-10-01T03:00:05+03:00"), Some(z));
        assert_eq!(parse_rfc3339("2019-09-30T23:00:05.000-01:00"), Some(z));
        assert_eq!(parse_rfc3339("2019-10-01 00:00:05.123456Z"), Some(z + 123));
        // ISO 8601's basic offsets (PHP's DATE_ISO8601, Java's `Z`
        // pattern) and an export's ` UTC`.
        assert_eq!(parse_rfc3339("2019-10-01T03:00:05+0300"), Some(z));
        assert_eq!(parse_rfc3339("2019-10-01T03:00:05+03"), Some(z));
        assert_eq!(parse_rfc3339("2019-09-30T22:30:05-0130"), Some(z));
        assert_eq!(parse_rfc3339("2019-10-01 00:00:05 UTC"), Some(z));
    }

    #[test]
    fn rejects_malformed_and_impossible_dates() {
        for bad in [
            "",
            "2019-10-01",
            "2019-10-01T00:00:05",
            "2019-02-29T00:00:00Z",
            "2019-13-01T00:00:00Z",
            "2019-10-01T24:00:00Z",
            "2019-10-01T00:00:00.Z",
            "2019-10-01T00:00:00+3",
            "2019-10-01T00:00:00+03:0",
            "2019-10-01T00:00:00+030",
            "2019-10-01T00:00:00+24:00",
            "2019-10-01T00:00:00+03:60",
            "2019-10-01T00:00:00+03:00:00",
            "2019-10-01T00:00:00+03-00",
            "2019-10-01T00:00:00 03:00",
            "2019-10-01T00:00:00UTC",
            "2019-10-01T00:00:00 utc",
            "1899-12-31T23:59:59Z",
            "2019-10-01T00:00:00Zjunk",
            "２019-10-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert!(parse_rfc3339("2020-02-29T00:00:00Z").is_some());
    }

    #[test]
    fn formats_and_parses_round_trip() {
        for ms in [
            MIN_TIME_MS,
            MIN_MS,
            1_569_888_005_123,
            1_700_000_000_001,
            MAX_MS - 1,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn windows_align_to_utc_minutes() {
        assert_eq!(window_start(1_569_888_065_999, 60_000), 1_569_888_060_000);
        assert_eq!(window_start(1_569_888_060_000, 60_000), 1_569_888_060_000);
    }
}
