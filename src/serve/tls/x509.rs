//! Reading the one X.509 field eddy needs from a certificate: its notAfter.
//!
//! Owns: a minimal DER walk over `Certificate → tbsCertificate → validity`
//! (RFC 5280 §4.1) and the conversion of UTCTime and GeneralizedTime (§4.1.2.5)
//! to Unix seconds, so that `eddy_tls_cert_not_after_seconds` shows when the
//! serving certificate expires. Pure: bytes in, a number out. It must never
//! validate or trust a certificate (rustls does that) and never panic on any
//! input: anything it does not understand is `None`.

/// The notAfter of the DER certificate `der`, in Unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (tag, cert, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // version [0] EXPLICIT, present from v2 on.
    let (tag, _, after) = tlv(rest)?;
    if tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer: skipped.
    for want in [INTEGER, SEQUENCE, SEQUENCE] {
        let (tag, _, after) = tlv(rest)?;
        if tag != want {
            return None;
        }
        rest = after;
    }
    let (tag, validity, _) = tlv(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, after_not_before) = tlv(validity)?;
    let (tag, time, _) = tlv(after_not_before)?;
    match tag {
        UTC_TIME => utc_time(time),
        GENERALIZED_TIME => generalized_time(time),
        _ => None,
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: its tag, its contents and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// `YYMMDDHHMMSSZ`; years 50-99 are 19xx, 00-49 are 20xx (RFC 5280 §4.1.2.5.1).
fn utc_time(t: &[u8]) -> Option<i64> {
    if t.len() != 13 || t[12] != b'Z' {
        return None;
    }
    let yy = digits(&t[0..2])?;
    let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
    unix(year, &t[2..12])
}

/// `YYYYMMDDHHMMSSZ` (RFC 5280 §4.1.2.5.2: no fractions, always Z).
fn generalized_time(t: &[u8]) -> Option<i64> {
    if t.len() != 15 || t[14] != b'Z' {
        return None;
    }
    unix(digits(&t[0..4])?, &t[4..14])
}

/// `MMDDHHMMSS` of `year` as Unix seconds.
fn unix(year: i64, rest: &[u8]) -> Option<i64> {
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let (h, m, s) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

fn digits(d: &[u8]) -> Option<i64> {
    d.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cert(not_after: (i32, u8, u8)) -> Result<Vec<u8>, rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate()?;
        Ok(params.self_signed(&key)?.der().to_vec())
    }

    #[test]
    fn reads_utc_time_and_generalized_time() -> Result<(), rcgen::Error> {
        // 2031-05-06T00:00:00Z (UTCTime) and 2060-01-02T00:00:00Z
        // (GeneralizedTime: RFC 5280 wants it from 2050 on).
        assert_eq!(not_after(&cert((2031, 5, 6))?), Some(1_935_792_000));
        assert_eq!(not_after(&cert((2060, 1, 2))?), Some(2_840_227_200));
        Ok(())
    }

    #[test]
    fn dates_convert_exactly() {
        assert_eq!(utc_time(b"700101000000Z"), Some(0));
        assert_eq!(utc_time(b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(generalized_time(b"20000229120000Z"), Some(951_825_600));
        assert_eq!(utc_time(b"701301000000Z"), None);
        assert_eq!(utc_time(b"70010100000aZ"), None);
        assert_eq!(generalized_time(b"20000229120000"), None);
    }

    #[test]
    fn garbage_and_truncations_are_none() -> Result<(), rcgen::Error> {
        let der = cert((2031, 5, 6))?;
        for cut in 0..der.len().min(400) {
            // Cut inside the validity or before it: never a wrong date.
            let got = not_after(&der[..cut]);
            assert!(got.is_none(), "cut at {cut}: {got:?}");
        }
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        Ok(())
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = not_after(&bytes);
        }
    }
}
