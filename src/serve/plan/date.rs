//! HTTP-dates (RFC 9110 §5.6.7) from and to whole seconds since the Unix
//! epoch: the planner's one representation of time.
//!
//! Owns: writing the preferred form, IMF-fixdate (`Sun, 06 Nov 1994 08:49:37
//! GMT`, always 29 bytes), into a caller's buffer, and reading any of the
//! three forms a recipient must accept (through `httpdate`). It is pure:
//! seconds in, bytes out, never a clock read. Times are clamped to the
//! four-digit years IMF-fixdate can spell (1970 to 9999).

/// The length of an IMF-fixdate.
pub const LEN: usize = 29;

/// The last second IMF-fixdate can spell: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `secs` since the epoch as an IMF-fixdate.
pub fn imf_fixdate(secs: u64) -> [u8; LEN] {
    let secs = secs.min(MAX_SECS);
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // Day 0 (1970-01-01) was a Thursday.
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out[12..14], year / 100);
    two(&mut out[14..16], year % 100);
    two(&mut out[17..19], of_day / 3600);
    two(&mut out[20..22], of_day / 60 % 60);
    two(&mut out[23..25], of_day % 60);
    out
}

/// An HTTP-date (any of its three forms) in whole seconds since the epoch, 0
/// for one before it; `None` for anything else.
pub fn parse(text: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(text).ok()?;
    Some(
        time.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

fn two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01
/// (H. Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(secs: u64) -> String {
        String::from_utf8_lossy(&imf_fixdate(secs)).into_owned()
    }

    #[test]
    fn known_dates() {
        assert_eq!(text(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(text(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(text(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(text(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(text(MAX_SECS), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(text(u64::MAX), text(MAX_SECS), "clamped");
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        assert_eq!(parse("yesterday"), None);
    }

    proptest! {
        #[test]
        fn the_same_as_httpdate(secs in 0u64..=MAX_SECS) {
            let theirs = httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
            );
            prop_assert_eq!(text(secs), theirs);
            prop_assert_eq!(parse(&text(secs)), Some(secs));
        }
    }
}
