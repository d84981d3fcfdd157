//! `Range` and `If-Range` for content answers (RFC 9110 §13.1.5, §14).
//!
//! Owns: reading a `Range` field value as at most one byte range (each
//! range-spec read and resolved by `eddy_proto::range`, as the appliance does), resolving it
//! against the representation length (clipping, suffixes, unsatisfiable
//! ranges), and the `If-Range` comparison (a strong ETag equal to ours, or an
//! HTTP date equal to Last-Modified). Several ranges are answered with the
//! whole representation, which RFC 9110 allows. It is pure: no I/O, no clock.
//! It must never decide statuses for anything but the three outcomes of
//! [`Outcome`], nor write a byte.

pub use eddy_proto::range::ByteRange;
use eddy_proto::range::RangeSpec;

/// The field value as this origin reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// `bytes=` with exactly one range-spec.
    Single(RangeSpec),
    /// `bytes=` with several: answered in full.
    Several,
    /// Another unit or not a valid specifier: the field is ignored.
    Ignored,
}

/// What the answer does with the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the whole representation.
    Full,
    /// 206 with this range.
    Partial(ByteRange),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parses a `Range` field value. Never fails: a bad value is `Ignored`.
pub fn parse(value: &str) -> Parsed {
    let Some((unit, set)) = value.split_once('=') else {
        return Parsed::Ignored;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Parsed::Ignored;
    }
    let mut specs = Vec::new();
    for element in set.split(',') {
        let element = element.trim_matches(|c| c == ' ' || c == '\t');
        if element.is_empty() {
            continue;
        }
        match eddy_proto::range::spec(element) {
            Some(s) => specs.push(s),
            None => return Parsed::Ignored,
        }
    }
    match specs.as_slice() {
        [] => Parsed::Ignored,
        [one] => Parsed::Single(*one),
        _ => Parsed::Several,
    }
}

/// Resolves a parsed field against a representation of `len` bytes.
pub fn resolve(parsed: Parsed, len: u64) -> Outcome {
    let spec = match parsed {
        Parsed::Single(s) => s,
        Parsed::Several | Parsed::Ignored => return Outcome::Full,
    };
    match eddy_proto::range::satisfy(spec, len) {
        Some(range) => Outcome::Partial(range),
        // A suffix selects no byte of an empty representation, yet is
        // satisfiable by the letter of RFC 9110 §14.1.3: sent whole.
        None if len == 0 && spec.is_nonempty_suffix() => Outcome::Full,
        None => Outcome::Unsatisfiable,
    }
}

/// Whether an `If-Range` value matches the representation, so that the
/// `Range` field applies (RFC 9110 §13.1.5): an entity-tag matches only
/// when strong and equal to `etag` (with its quotes); a date matches only
/// when it is exactly `last_modified` (unix seconds). Anything else,
/// including a weak tag or an unreadable date, does not match.
pub fn if_range_matches(value: &str, etag: &str, last_modified: u64) -> bool {
    let value = value.trim();
    if value.starts_with('"') {
        return value == etag;
    }
    if value.starts_with("W/") {
        return false;
    }
    match httpdate::parse_http_date(value) {
        Ok(t) => t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() == last_modified)
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(first: u64, last: u64) -> Outcome {
        Outcome::Partial(ByteRange { first, last })
    }

    #[test]
    fn the_three_single_forms() {
        assert_eq!(resolve(parse("bytes=10-"), 100), r(10, 99));
        assert_eq!(resolve(parse("bytes=10-19"), 100), r(10, 19));
        assert_eq!(resolve(parse("bytes=-10"), 100), r(90, 99));
        assert_eq!(resolve(parse("bytes=0-0"), 1), r(0, 0));
    }

    #[test]
    fn clipping_and_unsatisfiable() {
        assert_eq!(resolve(parse("bytes=90-1000"), 100), r(90, 99));
        assert_eq!(resolve(parse("bytes=-1000"), 100), r(0, 99));
        assert_eq!(resolve(parse("bytes=100-"), 100), Outcome::Unsatisfiable);
        assert_eq!(resolve(parse("bytes=-0"), 100), Outcome::Unsatisfiable);
        assert_eq!(resolve(parse("bytes=0-"), 0), Outcome::Unsatisfiable);
        assert_eq!(resolve(parse("bytes=-5"), 0), Outcome::Full);
        assert_eq!(
            resolve(parse("bytes=99999999999999999999999-"), 100),
            Outcome::Unsatisfiable
        );
        assert_eq!(
            resolve(parse("bytes=0-99999999999999999999999"), 100),
            r(0, 99)
        );
    }

    #[test]
    fn ignored_and_several() {
        for v in [
            "items=0-1",
            "bytes",
            "bytes=",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes= -",
        ] {
            assert_eq!(parse(v), Parsed::Ignored, "{v}");
        }
        assert_eq!(parse("bytes=0-1,5-6"), Parsed::Several);
        assert_eq!(resolve(parse("bytes=0-1,5-6"), 100), Outcome::Full);
        assert_eq!(
            parse("Bytes = 1-2 ,"),
            Parsed::Single(RangeSpec::From {
                first: 1,
                last: Some(2)
            })
        );
    }

    #[test]
    fn if_range_needs_a_strong_equal_tag_or_the_exact_date() {
        let etag = "\"0123456789abcdef0123456789abcdef\"";
        assert!(if_range_matches(etag, etag, 0));
        assert!(!if_range_matches("\"other\"", etag, 0));
        assert!(!if_range_matches(&format!("W/{etag}"), etag, 0));
        let lm = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        assert!(if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", etag, lm));
        assert!(!if_range_matches("Sun, 06 Nov 1994 08:49:38 GMT", etag, lm));
        assert!(!if_range_matches("yesterday", etag, lm));
    }

    proptest! {
        #[test]
        fn parse_never_panics(v in ".{0,40}") {
            let _ = resolve(parse(&v), 100);
        }

        #[test]
        fn partial_ranges_lie_inside_the_representation(
            first in 0u64..300, span in 0u64..300, suffix in 0u64..300, len in 0u64..200,
        ) {
            for v in [
                format!("bytes={first}-{}", first + span),
                format!("bytes={first}-"),
                format!("bytes=-{suffix}"),
            ] {
                if let Outcome::Partial(b) = resolve(parse(&v), len) {
                    prop_assert!(b.first <= b.last && b.last < len, "{v} {len} {b:?}");
                }
            }
        }
    }
}
