//! Timestamps and ids in the textual forms Meilisearch uses, without pulling in a date crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC 3339 in UTC with nanoseconds, trailing zeros trimmed (`2026-11-21T23:37:56.98343913Z`),
/// which is how Meilisearch (the `time` crate) prints task dates.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let nanos = since.subsec_nanos();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// ISO 8601 duration as Meilisearch prints task durations (`PT0.004240432S`).
pub fn iso_duration(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("PT{}S", d.as_secs());
    }
    let frac = format!("{nanos:09}");
    format!("PT{}.{}S", d.as_secs(), frac.trim_end_matches('0'))
}

/// A UUIDv7-shaped string (48-bit ms timestamp, version 7, variant 10). Uniqueness within the
/// process is all a test double needs, so the "random" bits come from a counter mixed with time.
pub fn uuid_v7() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() as u64 & 0xFFFF_FFFF_FFFF;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut x = n ^ (now.subsec_nanos() as u64).rotate_left(29) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    let rand_a = (x >> 52) & 0x0FFF;
    let rand_b = x & 0x3FFF_FFFF_FFFF_FFFF;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xFFFF,
        0x7000 | rand_a,
        0x8000 | ((rand_b >> 48) & 0x3FFF),
        rand_b & 0xFFFF_FFFF_FFFF
    )
}

/// Howard Hinnant's civil-to-days algorithm (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &str, n: usize) -> Option<(i64, &str)> {
    if s.len() < n || !s.as_bytes()[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

fn expect<'a>(s: &'a str, c: &[char]) -> Option<&'a str> {
    let first = s.chars().next()?;
    c.contains(&first).then(|| &s[first.len_utf8()..])
}

/// Parses an API key `expiresAt` the way Meilisearch does: RFC 3339, or
/// `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` taken as UTC.
pub fn parse_expiration(text: &str) -> Option<SystemTime> {
    let (y, rest) = digits(text, 4)?;
    let rest = expect(rest, &['-'])?;
    let (mo, rest) = digits(rest, 2)?;
    let rest = expect(rest, &['-'])?;
    let (d, rest) = digits(rest, 2)?;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo as u32) {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    if rest.is_empty() {
        return at(days * 86_400, 0);
    }
    let space = rest.starts_with(' ');
    let rest = expect(rest, &['T', 't', ' '])?;
    let (h, rest) = digits(rest, 2)?;
    let rest = expect(rest, &[':'])?;
    let (mi, rest) = digits(rest, 2)?;
    let rest = expect(rest, &[':'])?;
    let (s, mut rest) = digits(rest, 2)?;
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let mut padded = frac[..n.min(9)].to_string();
        while padded.len() < 9 {
            padded.push('0');
        }
        nanos = padded.parse().ok()?;
        rest = &frac[n..];
    }
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    if rest.is_empty() {
        // Without an offset only whole seconds are accepted, as in Meilisearch's formats.
        return (nanos == 0 && text.len() == 19)
            .then(|| at(secs, 0))
            .flatten();
    }
    if space {
        return None;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, r) = digits(&rest[1..], 2)?;
            let r = expect(r, &[':'])?;
            let (om, r) = digits(r, 2)?;
            if !r.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    at(secs - offset, nanos)
}

fn days_in_month(y: i64, m: u32) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn at(secs: i64, nanos: u32) -> Option<SystemTime> {
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_like_meilisearch() {
        let t = UNIX_EPOCH + Duration::new(1_795_304_276, 983_439_130);
        assert_eq!(rfc3339(t), "2026-11-21T23:37:56.98343913Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(iso_duration(Duration::new(0, 4_240_432)), "PT0.004240432S");
        assert_eq!(iso_duration(Duration::from_millis(1)), "PT0.001S");
        assert_eq!(iso_duration(Duration::from_secs(2)), "PT2S");
    }

    #[test]
    fn parses_expiration_dates() {
        let t = UNIX_EPOCH + Duration::new(1_795_304_276, 983_439_130);
        assert_eq!(parse_expiration("2026-11-21T23:37:56.98343913Z"), Some(t));
        assert_eq!(
            parse_expiration("2026-11-22T01:37:56.98343913+02:00"),
            Some(t)
        );
        let midnight = UNIX_EPOCH + Duration::from_secs(1_795_219_200);
        assert_eq!(parse_expiration("2026-11-21"), Some(midnight));
        assert_eq!(parse_expiration("2026-11-21 00:00:00"), Some(midnight));
        assert_eq!(parse_expiration("2026-11-21T00:00:00"), Some(midnight));
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "tomorrow",
            "2026-11-21T00:00",
            "",
        ] {
            assert_eq!(parse_expiration(bad), None, "{bad}");
        }
    }

    #[test]
    fn uuid_has_v7_shape() {
        let u = uuid_v7();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "7");
        assert_ne!(u, uuid_v7());
    }
}
