//! Preconditions (RFC 9110 §13): If-Match, If-Unmodified-Since, If-None-Match,
//! If-Modified-Since and If-Range, evaluated in the order of §13.2.2.
//!
//! Owns: entity-tag list parsing, strong and weak comparison, the date rules
//! (including the 60-second rule that makes a Last-Modified usable in If-Range)
//! and the resulting [`Decision`]. It is pure: the current time comes in as a
//! value. It must not parse Range (that is `range`) nor choose headers or bodies
//! (that is `respond`).

use std::borrow::Cow;

/// The validators of the selected representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators<'a> {
    /// Opaque part of our strong ETag, without quotes.
    pub etag: &'a str,
    /// Last-Modified in whole seconds since the Unix epoch.
    pub last_modified: u64,
}

/// The precondition fields of a request, each the comma-joined value of all its
/// field lines (a date field that arrived twice therefore fails to parse and is
/// ignored, as §13.1.3 and §13.1.4 require).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions<'a> {
    pub if_match: Option<Cow<'a, [u8]>>,
    pub if_none_match: Option<Cow<'a, [u8]>>,
    pub if_modified_since: Option<Cow<'a, [u8]>>,
    pub if_unmodified_since: Option<Cow<'a, [u8]>>,
    pub if_range: Option<Cow<'a, [u8]>>,
}

/// What the preconditions allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Answer normally; `honour_range` is false when If-Range did not match,
    /// in which case the Range field must be ignored (§13.1.5).
    Proceed { honour_range: bool },
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// A Last-Modified is strong enough for If-Range only if it is at least this
/// much older than the Date we send (RFC 9110 §8.8.2.2).
pub const STRONG_LAST_MODIFIED_AGE_SECS: u64 = 60;

/// Evaluates the preconditions of a GET or HEAD request.
pub fn evaluate(c: &Conditions<'_>, v: &Validators<'_>, now: u64) -> Decision {
    // Step 1 and 2: If-Match, else If-Unmodified-Since.
    if let Some(field) = &c.if_match {
        if !list_matches(field, v.etag, Comparison::Strong) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(date) = c.if_unmodified_since.as_deref().and_then(parse_date) {
        if v.last_modified > date {
            return Decision::PreconditionFailed;
        }
    }
    // Step 3 and 4: If-None-Match, else If-Modified-Since (GET and HEAD only,
    // which is all this server answers).
    if let Some(field) = &c.if_none_match {
        if list_matches(field, v.etag, Comparison::Weak) {
            return Decision::NotModified;
        }
    } else if let Some(date) = c.if_modified_since.as_deref().and_then(parse_date) {
        // A date in the future is not a valid validator (§13.1.3).
        if date <= now && v.last_modified <= date {
            return Decision::NotModified;
        }
    }
    // Step 5: If-Range.
    let honour_range = match &c.if_range {
        None => true,
        Some(field) => if_range_matches(field, v, now),
    };
    Decision::Proceed { honour_range }
}

fn if_range_matches(field: &[u8], v: &Validators<'_>, now: u64) -> bool {
    let trimmed = trim_ows(field);
    if trimmed.first() == Some(&b'"') || trimmed.starts_with(b"W/") {
        // An entity-tag: strong comparison, so a weak tag never matches.
        let mut strong_match = false;
        let items = walk_tag_list(trimmed, |item| {
            strong_match =
                matches!(item, TagItem::Tag(tag) if tag.matches(v.etag, Comparison::Strong));
        });
        return items == Some(1) && strong_match;
    }
    match parse_date(trimmed) {
        Some(date) => {
            date == v.last_modified
                && v.last_modified
                    .saturating_add(STRONG_LAST_MODIFIED_AGE_SECS)
                    <= now
        }
        None => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

#[derive(Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

impl EntityTag<'_> {
    fn matches(&self, ours: &str, how: Comparison) -> bool {
        // Our own tags are always strong.
        let weak_ok = how == Comparison::Weak || !self.weak;
        weak_ok && self.opaque == ours.as_bytes()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum TagItem<'a> {
    Any,
    Tag(EntityTag<'a>),
}

/// Walks `"*" / #entity-tag`, handing each item to `each` in order, and
/// returns how many there were; `None` when the field is not a valid list
/// (whatever `each` saw of it before the fault). Collects nothing: an If-*
/// field is compared without an allocation.
fn walk_tag_list<'f>(field: &'f [u8], mut each: impl FnMut(TagItem<'f>)) -> Option<usize> {
    let trimmed = trim_ows(field);
    if trimmed == b"*" {
        each(TagItem::Any);
        return Some(1);
    }
    let mut count = 0;
    let mut rest = trimmed;
    loop {
        // Skip empty list elements and whitespace.
        while let Some((&b, tail)) = rest.split_first() {
            if b == b',' || b == b' ' || b == b'\t' {
                rest = tail;
            } else {
                break;
            }
        }
        if rest.is_empty() {
            break;
        }
        let weak = rest.starts_with(b"W/");
        if weak {
            rest = &rest[2..];
        }
        let body = rest.strip_prefix(b"\"")?;
        let end = body.iter().position(|&b| b == b'"')?;
        let opaque = &body[..end];
        if !opaque
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        each(TagItem::Tag(EntityTag { weak, opaque }));
        count += 1;
        rest = &body[end + 1..];
        // After a tag only OWS and a comma may follow.
        let next = trim_ows_start(rest);
        if !(next.is_empty() || next.starts_with(b",")) {
            return None;
        }
        rest = next;
    }
    (count > 0).then_some(count)
}

fn list_matches(field: &[u8], ours: &str, how: Comparison) -> bool {
    let mut any = false;
    let valid = walk_tag_list(field, |item| {
        any |= match item {
            // The representation exists whenever we evaluate preconditions.
            TagItem::Any => true,
            TagItem::Tag(tag) => tag.matches(ours, how),
        };
    });
    valid.is_some() && any
}

/// An HTTP-date in whole seconds since the epoch; `None` for anything else.
pub fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(trim_ows(value)).ok()?;
    super::date::parse(text)
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let v = trim_ows_start(v);
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &v[..end]
}

fn trim_ows_start(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    &v[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LM: u64 = 1_700_000_000;
    const NOW: u64 = LM + 3600;

    fn v() -> Validators<'static> {
        Validators {
            etag: "abc-123",
            last_modified: LM,
        }
    }

    fn date(secs: u64) -> Cow<'static, [u8]> {
        super::super::date::imf_fixdate(secs).to_vec().into()
    }

    fn c() -> Conditions<'static> {
        Conditions::default()
    }

    const GO: Decision = Decision::Proceed { honour_range: true };
    const NO_RANGE: Decision = Decision::Proceed {
        honour_range: false,
    };

    #[test]
    fn no_conditions_proceed() {
        assert_eq!(evaluate(&c(), &v(), NOW), GO);
    }

    #[test]
    fn if_match_is_strong_and_takes_lists_and_star() {
        let with = |s: &'static str| Conditions {
            if_match: Some(s.as_bytes().into()),
            ..c()
        };
        assert_eq!(evaluate(&with("\"abc-123\""), &v(), NOW), GO);
        assert_eq!(evaluate(&with("\"x\", \"abc-123\""), &v(), NOW), GO);
        assert_eq!(evaluate(&with("*"), &v(), NOW), GO);
        assert_eq!(
            evaluate(&with("W/\"abc-123\""), &v(), NOW),
            Decision::PreconditionFailed
        );
        assert_eq!(
            evaluate(&with("\"other\""), &v(), NOW),
            Decision::PreconditionFailed
        );
        assert_eq!(
            evaluate(&with("garbage"), &v(), NOW),
            Decision::PreconditionFailed
        );
    }

    #[test]
    fn if_unmodified_since_is_ignored_under_if_match_or_when_invalid() {
        let ius_old = Conditions {
            if_unmodified_since: Some(date(LM - 10)),
            ..c()
        };
        assert_eq!(evaluate(&ius_old, &v(), NOW), Decision::PreconditionFailed);
        let ius_ok = Conditions {
            if_unmodified_since: Some(date(LM)),
            ..c()
        };
        assert_eq!(evaluate(&ius_ok, &v(), NOW), GO);
        let both = Conditions {
            if_match: Some(b"\"abc-123\"".to_vec().into()),
            ..ius_old.clone()
        };
        assert_eq!(evaluate(&both, &v(), NOW), GO);
        let invalid = Conditions {
            if_unmodified_since: Some(b"yesterday".to_vec().into()),
            ..c()
        };
        assert_eq!(evaluate(&invalid, &v(), NOW), GO);
        let mut two = date(LM - 10).into_owned();
        two.extend_from_slice(b", ");
        two.extend_from_slice(&date(LM - 10));
        let listed = Conditions {
            if_unmodified_since: Some(two.into()),
            ..c()
        };
        assert_eq!(evaluate(&listed, &v(), NOW), GO);
    }

    #[test]
    fn if_none_match_is_weak_and_wins_over_if_modified_since() {
        let with = |s: &'static str| Conditions {
            if_none_match: Some(s.as_bytes().into()),
            ..c()
        };
        assert_eq!(
            evaluate(&with("\"abc-123\""), &v(), NOW),
            Decision::NotModified
        );
        assert_eq!(
            evaluate(&with("W/\"abc-123\""), &v(), NOW),
            Decision::NotModified
        );
        assert_eq!(
            evaluate(&with("\"a\", W/\"abc-123\""), &v(), NOW),
            Decision::NotModified
        );
        assert_eq!(evaluate(&with("*"), &v(), NOW), Decision::NotModified);
        assert_eq!(evaluate(&with("\"other\""), &v(), NOW), GO);
        // INM present and not matching: IMS that would say "not modified" is ignored.
        let both = Conditions {
            if_none_match: Some(b"\"other\"".to_vec().into()),
            if_modified_since: Some(date(NOW)),
            ..c()
        };
        assert_eq!(evaluate(&both, &v(), NOW), GO);
    }

    #[test]
    fn if_modified_since_rules() {
        let ims = |secs| Conditions {
            if_modified_since: Some(date(secs)),
            ..c()
        };
        assert_eq!(evaluate(&ims(LM), &v(), NOW), Decision::NotModified);
        assert_eq!(evaluate(&ims(LM + 5), &v(), NOW), Decision::NotModified);
        assert_eq!(evaluate(&ims(LM - 1), &v(), NOW), GO);
        // A date in the future is invalid and ignored.
        assert_eq!(evaluate(&ims(NOW + 100), &v(), NOW), GO);
        let bad = Conditions {
            if_modified_since: Some(b"not a date".to_vec().into()),
            ..c()
        };
        assert_eq!(evaluate(&bad, &v(), NOW), GO);
    }

    #[test]
    fn precondition_failure_beats_not_modified() {
        let both = Conditions {
            if_match: Some(b"\"nope\"".to_vec().into()),
            if_none_match: Some(b"\"abc-123\"".to_vec().into()),
            ..c()
        };
        assert_eq!(evaluate(&both, &v(), NOW), Decision::PreconditionFailed);
    }

    #[test]
    fn if_range_etag_is_strong_only() {
        let ir = |s: &'static str| Conditions {
            if_range: Some(s.as_bytes().into()),
            ..c()
        };
        assert_eq!(evaluate(&ir("\"abc-123\""), &v(), NOW), GO);
        assert_eq!(evaluate(&ir("W/\"abc-123\""), &v(), NOW), NO_RANGE);
        assert_eq!(evaluate(&ir("\"other\""), &v(), NOW), NO_RANGE);
        assert_eq!(evaluate(&ir("\"abc-123\", \"x\""), &v(), NOW), NO_RANGE);
        assert_eq!(evaluate(&ir("nonsense"), &v(), NOW), NO_RANGE);
    }

    #[test]
    fn if_range_date_needs_exact_match_and_sixty_seconds_of_age() {
        let ir = Conditions {
            if_range: Some(date(LM)),
            ..c()
        };
        assert_eq!(evaluate(&ir, &v(), LM + 60), GO);
        assert_eq!(evaluate(&ir, &v(), LM + 59), NO_RANGE);
        let later = Conditions {
            if_range: Some(date(LM + 1)),
            ..c()
        };
        assert_eq!(evaluate(&later, &v(), NOW), NO_RANGE);
    }

    #[test]
    fn tag_lists_allow_commas_inside_tags() {
        let with = Conditions {
            if_match: Some(b"\"a,b\", \"abc-123\"".to_vec().into()),
            ..c()
        };
        assert_eq!(evaluate(&with, &v(), NOW), GO);
    }

    proptest! {
        #[test]
        fn only_our_tag_passes_if_match(tag in "[a-z0-9-]{1,12}") {
            let cond = Conditions { if_match: Some(format!("\"{tag}\"").into_bytes().into()), ..Conditions::default() };
            let d = evaluate(&cond, &v(), NOW);
            if tag == "abc-123" {
                prop_assert_eq!(d, GO);
            } else {
                prop_assert_eq!(d, Decision::PreconditionFailed);
            }
        }

        #[test]
        fn arbitrary_fields_never_panic(a in proptest::collection::vec(any::<u8>(), 0..40),
                                        b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let cond = Conditions {
                if_match: Some(a.clone().into()),
                if_none_match: Some(b.clone().into()),
                if_modified_since: Some(a.clone().into()),
                if_unmodified_since: Some(b.clone().into()),
                if_range: Some(a.into()),
            };
            let _ = evaluate(&cond, &v(), NOW);
        }
    }
}
