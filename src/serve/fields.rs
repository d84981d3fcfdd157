//! The request header fields the planner reads: Range and the five
//! preconditions, collected the same way whatever the transport (httparse
//! headers, hyper's `HeaderMap` for HTTPS and HTTP/2).
//!
//! Owns: matching those field names (case-insensitively) and joining repeated
//! fields into one comma-separated value (RFC 9110 §5.3). It is pure and reads
//! no other field: framing and connection fields belong to each transport.

use super::conditional::Conditions;

/// The fields that change what a GET or HEAD answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub range: Option<Vec<u8>>,
    pub conditions: Conditions,
}

impl Fields {
    /// Takes one field line; returns false when the name is not one of ours.
    pub fn add(&mut self, name: &str, value: &[u8]) -> bool {
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
        } else {
            return false;
        };
        match slot {
            Some(existing) => {
                existing.extend_from_slice(b", ");
                existing.extend_from_slice(value);
            }
            None => *slot = Some(value.to_vec()),
        }
        true
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
