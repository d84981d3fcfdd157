//! Byte ranges (RFC 9110 §14.1): one range-spec read from its text, and
//! resolved against a representation length.
//!
//! Owns: [`ByteRange`] (a satisfiable range, clipped), [`RangeSpec`] (a
//! range-spec before it meets a length), reading one list element of a
//! `Range` field ([`spec`]) and resolving one spec ([`satisfy`]). The
//! appliance's planner (`eddy::serve::plan::range`, with its limits and
//! multi-range answers) and the reference origin (`eddy-origin`, one range
//! at most) both build on these, so the two read a range-spec the same way.
//! It must never read a whole field (units, lists, limits: each caller's
//! rules) nor decide a status.

/// One satisfiable byte range, inclusive at both ends, already clipped to the length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte offset.
    pub first: u64,
    /// Last byte offset (inclusive); always `< len`.
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range (never zero).
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Always false: a satisfiable range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A parsed range-spec before it meets a length (RFC 9110 §14.1.1).
/// Numerals that do not fit in a `u64` saturate to `u64::MAX`, which keeps
/// their meaning: a huge last-pos is clipped, a huge first-pos is past any
/// length, a huge suffix covers the whole representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` (`last` = None for `first-`).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl Default for RangeSpec {
    fn default() -> Self {
        RangeSpec::Suffix(0)
    }
}

impl RangeSpec {
    /// Whether this is a suffix of at least one byte: on a zero-length
    /// representation, the only form RFC 9110 §14.1.3 calls satisfiable.
    pub fn is_nonempty_suffix(&self) -> bool {
        matches!(self, RangeSpec::Suffix(n) if *n > 0)
    }
}

/// One list element of a byte-range set, already trimmed of whitespace:
/// `first-last`, `first-` or `-suffix`. `None` when it is not one, or when
/// last-pos is below first-pos (which makes the whole set invalid, §14.1.1).
pub fn spec(element: &str) -> Option<RangeSpec> {
    let (first, last) = element.split_once('-')?;
    if first.is_empty() {
        return Some(RangeSpec::Suffix(numeral(last)?));
    }
    let first = numeral(first)?;
    if last.is_empty() {
        return Some(RangeSpec::From { first, last: None });
    }
    let last = numeral(last)?;
    (last >= first).then_some(RangeSpec::From {
        first,
        last: Some(last),
    })
}

/// `1*DIGIT`, saturating at `u64::MAX` for numerals of any length.
fn numeral(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// One spec against the length: `None` when it selects no byte.
pub fn satisfy(spec: RangeSpec, len: u64) -> Option<ByteRange> {
    match spec {
        RangeSpec::From { first, last } => {
            if first >= len {
                return None;
            }
            let last = last.map_or(len - 1, |l| l.min(len - 1));
            Some(ByteRange { first, last })
        }
        RangeSpec::Suffix(n) => {
            if n == 0 || len == 0 {
                return None;
            }
            Some(ByteRange {
                first: len - n.min(len),
                last: len - 1,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_three_forms_and_what_is_not_one() {
        assert_eq!(
            spec("10-19"),
            Some(RangeSpec::From {
                first: 10,
                last: Some(19)
            })
        );
        assert_eq!(
            spec("10-"),
            Some(RangeSpec::From {
                first: 10,
                last: None
            })
        );
        assert_eq!(spec("-5"), Some(RangeSpec::Suffix(5)));
        for bad in ["", "-", "5", "a-1", "1-a", "1--2", "+1-2", "19-10", " 1-2"] {
            assert_eq!(spec(bad), None, "{bad:?}");
        }
        assert_eq!(
            spec("99999999999999999999999-"),
            Some(RangeSpec::From {
                first: u64::MAX,
                last: None
            })
        );
    }

    #[test]
    fn satisfy_clips_and_refuses_what_selects_nothing() {
        let r = |first, last| Some(ByteRange { first, last });
        assert_eq!(
            satisfy(
                RangeSpec::From {
                    first: 90,
                    last: Some(1000)
                },
                100
            ),
            r(90, 99)
        );
        assert_eq!(
            satisfy(
                RangeSpec::From {
                    first: 100,
                    last: None
                },
                100
            ),
            None
        );
        assert_eq!(satisfy(RangeSpec::Suffix(1000), 100), r(0, 99));
        assert_eq!(satisfy(RangeSpec::Suffix(0), 100), None);
        assert_eq!(satisfy(RangeSpec::Suffix(5), 0), None);
        assert!(RangeSpec::Suffix(5).is_nonempty_suffix());
        assert!(!RangeSpec::Suffix(0).is_nonempty_suffix());
    }

    proptest! {
        #[test]
        // Over the specs that `spec` makes (last-pos never below first-pos).
        fn a_satisfied_range_is_within_the_length(first in 0u64..1000, more in proptest::option::of(0u64..1000), suffix in 0u64..2000, len in 0u64..1500) {
            let last = more.map(|m| first + m);
            for s in [RangeSpec::From { first, last }, RangeSpec::Suffix(suffix)] {
                if let Some(r) = satisfy(s, len) {
                    prop_assert!(r.first <= r.last && r.last < len);
                }
            }
        }
    }
}
