//! RFC 3339 timestamps, as Meilisearch writes and accepts them, without a date crate: task
//! objects carry them as strings, the list filters compare them as instants.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// Nanoseconds since the Unix epoch of `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time.
/// Also returns whether only a date was given (Meilisearch's `after*` filters then start at the
/// next day).
pub fn parse(text: &str) -> Option<(i128, bool)> {
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let date = text.get(0..10)?;
    let (y, m, d) = (
        num(date.get(0..4)?)?,
        num(date.get(5..7)?)?,
        num(date.get(8..10)?)?,
    );
    if date.as_bytes().get(4) != Some(&b'-') || date.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = i128::from(days_from_civil(y, m, d)) * NANOS_PER_DAY;
    let rest = &text[10..];
    if rest.is_empty() {
        return Some((day, true));
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (h, mi, s) = (
        num(rest.get(0..2)?)?,
        num(rest.get(3..5)?)?,
        num(rest.get(6..8)?)?,
    );
    if rest.as_bytes().get(2) != Some(&b':') || rest.as_bytes().get(5) != Some(&b':') {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &rest[8..];
    let mut nanos: i128 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut value: i128 = 0;
        for (i, b) in frac.bytes().take(digits).enumerate() {
            if i < 9 {
                value = value * 10 + i128::from(b - b'0');
            }
        }
        for _ in digits..9 {
            value *= 10;
        }
        nanos = value;
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (num(rest.get(1..3)?)?, num(rest.get(4..6)?)?);
            if rest.len() != 6 || rest.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = i128::from(h * 3600 + mi * 60 + s - offset_secs);
    Some((day + secs * 1_000_000_000 + nanos, false))
}

/// `nanos` since the epoch as Meilisearch writes instants: UTC, trailing zeros of the fraction
/// dropped (`2026-11-21T23:37:56.98343913Z`).
pub fn format(nanos: i128) -> String {
    let days = nanos.div_euclid(NANOS_PER_DAY);
    let in_day = nanos.rem_euclid(NANOS_PER_DAY);
    let (y, m, d) = civil_from_days(days as i64);
    let secs = in_day / 1_000_000_000;
    let frac = in_day % 1_000_000_000;
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac > 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

pub fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

pub fn now() -> String {
    format(now_nanos())
}

pub const DAY: i128 = NANOS_PER_DAY;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_meilisearch_instants() {
        for text in [
            "2026-11-21T23:37:56.98343913Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T12:00:00.5Z",
        ] {
            let (n, date_only) = parse(text).expect(text);
            assert!(!date_only);
            assert_eq!(format(n), text);
        }
        assert_eq!(
            parse("2026-11-22T01:37:56+02:00").map(|p| p.0),
            parse("2026-11-21T23:37:56Z").map(|p| p.0)
        );
        assert_eq!(
            parse("2026-11-21"),
            Some((parse("2026-11-21T00:00:00Z").expect("t").0, true))
        );
        for bad in [
            "2026-13-01",
            "yesterday",
            "2026-11-21T25:00:00Z",
            "2026-11-21T10:00:00",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
