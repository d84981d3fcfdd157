//! The request header fields the planner reads: Range, the five
//! preconditions and the three CORS request fields (`Origin`,
//! `Access-Control-Request-Method`, `Access-Control-Request-Headers`),
//! collected the same way whatever the transport (httparse headers, hyper's
//! `HeaderMap` for HTTPS and HTTP/2).
//!
//! Owns: matching those field names (case-insensitively) and joining repeated
//! fields into one comma-separated value (RFC 9110 §5.3). A value sent once is
//! borrowed from the transport's bytes, not copied; only a repeated field is
//! joined into a value of its own. It is pure and reads no other field:
//! framing and connection fields belong to each transport.

use std::borrow::Cow;

use super::conditional::Conditions;

/// The fields that change what a GET or HEAD answers, and the CORS fields
/// (which add response fields, never change bytes or statuses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub range: Option<Cow<'a, [u8]>>,
    pub conditions: Conditions<'a>,
    /// The CORS request fields. Not boxed: a browser player sends `Origin`
    /// with every request, and a box would be an allocation per request;
    /// the fields live only while their request is answered.
    pub cors: Option<CorsFields<'a>>,
}

/// The CORS request fields (Fetch §3.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsFields<'a> {
    /// `Origin` (Fetch §3.1): repeated, it is a list no origin equals.
    pub origin: Option<Cow<'a, [u8]>>,
    /// `Access-Control-Request-Method` of a preflight.
    pub method: Option<Cow<'a, [u8]>>,
    /// `Access-Control-Request-Headers` of a preflight.
    pub headers: Option<Cow<'a, [u8]>>,
}

impl<'a> Fields<'a> {
    /// Takes one field line; returns false when the name is not one of ours.
    pub fn add(&mut self, name: &str, value: &'a [u8]) -> bool {
        let slot = if name.eq_ignore_ascii_case("range") {
            &mut self.range
        } else if name.eq_ignore_ascii_case("if-match") {
            &mut self.conditions.if_match
        } else if name.eq_ignore_ascii_case("if-none-match") {
            &mut self.conditions.if_none_match
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            &mut self.conditions.if_modified_since
        } else if name.eq_ignore_ascii_case("if-unmodified-since") {
            &mut self.conditions.if_unmodified_since
        } else if name.eq_ignore_ascii_case("if-range") {
            &mut self.conditions.if_range
        } else if name.eq_ignore_ascii_case("origin") {
            &mut self.cors.get_or_insert_default().origin
        } else if name.eq_ignore_ascii_case("access-control-request-method") {
            &mut self.cors.get_or_insert_default().method
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            &mut self.cors.get_or_insert_default().headers
        } else {
            return false;
        };
        match slot {
            Some(existing) => {
                let joined = existing.to_mut();
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(value);
            }
            None => *slot = Some(Cow::Borrowed(value)),
        }
        true
    }

    /// The request's `Origin`, if it sent one.
    pub fn origin(&self) -> Option<&[u8]> {
        self.cors.as_ref()?.origin.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_repeats_join() {
        let mut f = Fields::default();
        assert!(f.add("RANGE", b"bytes=0-1"));
        assert!(f.add("If-None-Match", b"\"a\""));
        assert!(f.add("if-none-match", b"\"b\""));
        assert!(!f.add("host", b"x"));
        assert_eq!(f.range.as_deref(), Some(&b"bytes=0-1"[..]));
        assert_eq!(
            f.conditions.if_none_match.as_deref(),
            Some(&b"\"a\", \"b\""[..])
        );
        assert_eq!(f.conditions.if_match, None);
    }
}
