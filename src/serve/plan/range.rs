//! The `Range` header (RFC 9110 §14) turned into a plan against a known length.
//!
//! Owns: parsing a `Range` field value (its unit and list; each range-spec is
//! read and resolved by `eddy_proto::range`, which the reference origin shares),
//! resolving the set against the representation length, and the
//! anti-amplification limits (range count, range sum). It is pure: no I/O, no clock, no knowledge of HTTP status codes beyond
//! the three outcomes in [`RangeOutcome`]. It must never decide about
//! preconditions (that is `conditional`) nor write a byte (that is each
//! transport's: `h1::sendfile`, `tls::stream`).

use super::inline::InlineVec;

pub use eddy_proto::range::{ByteRange, RangeSpec};

/// The range-specs of a field, in request order: two in place (players ask for
/// one), more on the heap.
pub type Specs = InlineVec<RangeSpec, 2>;

/// The satisfiable ranges of a field, in request order: two in place.
pub type Ranges = InlineVec<ByteRange, 2>;

/// The field value read as a byte-range set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedRange {
    /// `bytes=` with a syntactically valid set, in request order.
    Bytes(Specs),
    /// A range unit other than `bytes`: the field is ignored (RFC 9110 §14.2).
    UnknownUnit,
    /// Not a valid ranges-specifier: the field is ignored.
    Invalid,
}

/// Limits that keep a Range field from amplifying a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeLimits {
    /// More range-specs than this: the field is ignored.
    pub max_ranges: usize,
    /// The satisfiable ranges may sum to at most this percentage of the length.
    pub max_sum_percent: u32,
}

/// What the response does with the Range field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Send the whole representation with 200 (field absent, ignored, over a
    /// limit, or satisfiable on a zero-length representation, where it
    /// selects no byte: see [`resolve`]).
    Full,
    /// Send these ranges with 206, in request order (one range: a single part;
    /// several: multipart/byteranges).
    Partial(Ranges),
    /// No range is satisfiable: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parses a Range field value. Never fails: a bad value is `Invalid`.
pub fn parse(value: &[u8]) -> ParsedRange {
    let Ok(value) = std::str::from_utf8(value) else {
        return ParsedRange::Invalid;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return ParsedRange::Invalid;
    };
    let unit = unit.trim_matches(|c| c == ' ' || c == '\t');
    if unit.is_empty() || !unit.bytes().all(is_tchar) {
        return ParsedRange::Invalid;
    }
    if !unit.eq_ignore_ascii_case("bytes") {
        return ParsedRange::UnknownUnit;
    }
    let mut specs = Specs::new();
    // `1#range-spec`: empty list elements are allowed and ignored (RFC 9110 §5.6.1.2),
    // but at least one real element must be present.
    for element in set.split(',') {
        let element = element.trim_matches(|c| c == ' ' || c == '\t');
        if element.is_empty() {
            continue;
        }
        match eddy_proto::range::spec(element) {
            Some(spec) => specs.push(spec),
            None => return ParsedRange::Invalid,
        }
    }
    if specs.is_empty() {
        return ParsedRange::Invalid;
    }
    ParsedRange::Bytes(specs)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Resolves a parsed field against the representation length and the limits.
pub fn resolve(parsed: &ParsedRange, len: u64, limits: RangeLimits) -> RangeOutcome {
    let specs = match parsed {
        ParsedRange::Bytes(specs) => specs,
        ParsedRange::UnknownUnit | ParsedRange::Invalid => return RangeOutcome::Full,
    };
    if specs.len() > limits.max_ranges {
        return RangeOutcome::Full;
    }
    let ranges: Ranges = specs
        .iter()
        .filter_map(|s| eddy_proto::range::satisfy(*s, len))
        .collect();
    if ranges.is_empty() {
        // RFC 9110 §14.1.3: "When a selected representation has zero length,
        // the only satisfiable form of range-spec is a suffix-range with a
        // non-zero suffix-length." It selects no byte, which no 206 can say
        // (Content-Range has no empty range), so the whole, empty
        // representation is sent with 200, as for a Range field ignored.
        if len == 0 && specs.iter().any(RangeSpec::is_nonempty_suffix) {
            return RangeOutcome::Full;
        }
        return RangeOutcome::Unsatisfiable;
    }
    let sum = ranges
        .iter()
        .fold(0u128, |acc, r| acc + u128::from(r.len()));
    let allowed = u128::from(len) * u128::from(limits.max_sum_percent) / 100;
    if sum > allowed {
        return RangeOutcome::Full;
    }
    RangeOutcome::Partial(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: RangeLimits = RangeLimits {
        max_ranges: 16,
        max_sum_percent: 100,
    };

    fn plan(v: &str, len: u64) -> RangeOutcome {
        resolve(&parse(v.as_bytes()), len, LIMITS)
    }

    fn ranges(r: &[ByteRange]) -> Ranges {
        r.iter().copied().collect()
    }

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    #[test]
    fn single_open_and_suffix_forms() {
        assert_eq!(
            plan("bytes=0-99", 1000),
            RangeOutcome::Partial(ranges(&[r(0, 99)]))
        );
        assert_eq!(
            plan("bytes=0-", 1000),
            RangeOutcome::Partial(ranges(&[r(0, 999)]))
        );
        assert_eq!(
            plan("bytes=-100", 1000),
            RangeOutcome::Partial(ranges(&[r(900, 999)]))
        );
        assert_eq!(
            plan("bytes=5-5", 1000),
            RangeOutcome::Partial(ranges(&[r(5, 5)]))
        );
    }

    #[test]
    fn past_eof_is_clipped_not_refused() {
        assert_eq!(
            plan("bytes=0-3145727", 1000),
            RangeOutcome::Partial(ranges(&[r(0, 999)]))
        );
        assert_eq!(
            plan("bytes=-5000", 1000),
            RangeOutcome::Partial(ranges(&[r(0, 999)]))
        );
    }

    #[test]
    fn huge_numerals_saturate_with_their_meaning() {
        let huge = "99999999999999999999999999999";
        assert_eq!(
            plan(&format!("bytes=10-{huge}"), 1000),
            RangeOutcome::Partial(ranges(&[r(10, 999)]))
        );
        assert_eq!(
            plan(&format!("bytes={huge}-"), 1000),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            plan(&format!("bytes=-{huge}"), 1000),
            RangeOutcome::Partial(ranges(&[r(0, 999)]))
        );
        assert_eq!(
            plan("bytes=18446744073709551616-18446744073709551617", 1000),
            RangeOutcome::Unsatisfiable
        );
    }

    #[test]
    fn unsatisfiable_cases() {
        assert_eq!(plan("bytes=1000-", 1000), RangeOutcome::Unsatisfiable);
        assert_eq!(plan("bytes=-0", 1000), RangeOutcome::Unsatisfiable);
        assert_eq!(plan("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(plan("bytes=0-0", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(plan("bytes=-0", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(
            plan("bytes=2000-3000, 5000-", 1000),
            RangeOutcome::Unsatisfiable
        );
    }

    #[test]
    fn a_suffix_on_a_zero_length_representation_is_satisfiable_and_sends_it_whole() {
        // RFC 9110 §14.1.3: the one satisfiable form on zero length; it selects
        // no byte, so the answer is the (empty) representation with 200.
        assert_eq!(plan("bytes=-5", 0), RangeOutcome::Full);
        assert_eq!(plan("bytes=-1", 0), RangeOutcome::Full);
        assert_eq!(plan("bytes=0-,-5", 0), RangeOutcome::Full);
        assert_eq!(plan("bytes=-0,-5", 0), RangeOutcome::Full);
        // Every other form stays unsatisfiable there (first-pos >= length).
        assert_eq!(plan("bytes=0-,5-9", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(plan("bytes=-0,-0", 0), RangeOutcome::Unsatisfiable);
        // Over the range-count limit it is ignored, like any field.
        let many = format!("bytes={}", vec!["-1"; 17].join(","));
        assert_eq!(plan(&many, 0), RangeOutcome::Full);
        // Not on a representation of any length: there it selects bytes.
        assert_eq!(
            plan("bytes=-5", 1),
            RangeOutcome::Partial(ranges(&[r(0, 0)]))
        );
    }

    #[test]
    fn multi_range_keeps_request_order_and_drops_unsatisfiable() {
        assert_eq!(
            plan("bytes=500-599, 0-9,2000-3000 ,-10", 1000),
            RangeOutcome::Partial(ranges(&[r(500, 599), r(0, 9), r(990, 999)]))
        );
    }

    #[test]
    fn invalid_specifiers_are_ignored() {
        for v in [
            "bytes=5-1",
            "bytes=abc",
            "bytes=",
            "bytes=,",
            "bytes",
            "bytes=1-2-3",
            "bytes=0-1,5-1",
            "bytes=+1-2",
            "bytes=0x10-20",
            "bytes=--5",
            "=0-1",
            "by tes=0-1",
            "bytes=1 -2",
        ] {
            assert_eq!(plan(v, 1000), RangeOutcome::Full, "{v}");
        }
        assert_eq!(parse(b"bytes=\xff-1"), ParsedRange::Invalid);
    }

    #[test]
    fn unknown_unit_is_ignored_and_unit_is_case_insensitive() {
        assert_eq!(parse(b"items=0-5"), ParsedRange::UnknownUnit);
        assert_eq!(plan("items=0-5", 1000), RangeOutcome::Full);
        assert_eq!(
            plan("Bytes=0-5", 1000),
            RangeOutcome::Partial(ranges(&[r(0, 5)]))
        );
        assert_eq!(
            plan("bytes = 0-5", 1000),
            RangeOutcome::Partial(ranges(&[r(0, 5)]))
        );
    }

    #[test]
    fn limits_turn_amplification_into_a_full_response() {
        let many = format!("bytes={}", vec!["0-0"; 17].join(","));
        assert_eq!(plan(&many, 1000), RangeOutcome::Full);
        let sixteen = format!("bytes={}", vec!["0-0"; 16].join(","));
        assert!(matches!(plan(&sixteen, 1000), RangeOutcome::Partial(v) if v.len() == 16));
        assert_eq!(plan("bytes=0-,0-", 1000), RangeOutcome::Full);
        assert_eq!(
            plan("bytes=0-499,500-999", 1000),
            RangeOutcome::Partial(ranges(&[r(0, 499), r(500, 999)]))
        );
        assert_eq!(plan("bytes=0-500,500-999", 1000), RangeOutcome::Full);
    }

    #[test]
    fn offsets_beyond_four_gib_are_exact() {
        let len = 5 * (1u64 << 30);
        let v = format!("bytes={}-{}", (1u64 << 32) - 2, (1u64 << 32) + 1);
        assert_eq!(
            plan(&v, len),
            RangeOutcome::Partial(ranges(&[r((1 << 32) - 2, (1 << 32) + 1)]))
        );
    }

    proptest! {
        #[test]
        fn every_planned_range_lies_inside_the_file(v in "bytes=[0-9,\\- ]{0,40}", len in 0u64..5000) {
            if let RangeOutcome::Partial(ranges) = plan(&v, len) {
                prop_assert!(!ranges.is_empty());
                let mut sum = 0u64;
                for range in ranges.iter() {
                    prop_assert!(range.first <= range.last);
                    prop_assert!(range.last < len);
                    sum += range.len();
                }
                prop_assert!(sum <= len);
            }
        }

        #[test]
        fn a_single_int_range_matches_its_definition(first in 0u64..3000, extra in 0u64..3000, len in 1u64..3000) {
            let last = first + extra;
            let got = plan(&format!("bytes={first}-{last}"), len);
            if first >= len {
                prop_assert_eq!(got, RangeOutcome::Unsatisfiable);
            } else {
                prop_assert_eq!(got, RangeOutcome::Partial(ranges(&[r(first, last.min(len - 1))])));
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = resolve(&parse(&bytes), 100, LIMITS);
        }
    }
}
