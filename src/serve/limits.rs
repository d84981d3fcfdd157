//! The request-head limits and the Host rule, in one place for both
//! transports.
//!
//! Owns: how many field lines a head may have, how many bytes (measured as
//! the head is, or would be, written in HTTP/1.1), how long its target may be
//! (414 over `limits.max_target_bytes`, 431 over `limits.max_headers` or
//! `limits.max_head_bytes`), the same limits on a head still arriving, and the
//! Host rule (HTTP/1.1: exactly one Host field; HTTP/1.0: at most one; HTTP/2
//! carries `:authority` instead). The plain transport (`h1::head`) and the TLS
//! one (`tls::conn`, whose hyper limits are set larger and only guard memory)
//! both ask here, so that a head refused on one is refused on the other with
//! the same status. It is pure, and must never look at framing or at any field
//! value: that is each transport's parser.

use super::plan::respond::ServeError;
use crate::config::Limits;

/// The HTTP version of a head, as far as the Host rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
    Http2,
}

/// The size of a complete request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadSize {
    /// Field lines.
    pub fields: usize,
    /// Bytes of the whole head, its final CRLF included.
    pub bytes: usize,
    /// Bytes of the request-target.
    pub target: usize,
}

/// A head arriving needs no more than this past the target on its request
/// line (the method, the version and their spaces) before it is judged too
/// long a target.
const LINE_SLACK: usize = 32;

/// The most field lines a head may have: a parser needs this many slots, and
/// one more field is a 431.
pub fn max_fields(limits: &Limits) -> usize {
    limits.max_headers
}

/// The 431 of a head with more fields than [`max_fields`] (a parser that ran
/// out of slots says so).
pub fn too_many_fields() -> ServeError {
    ServeError::HeadTooLarge
}

/// Checks a complete head against the limits, in one order for both
/// transports: fields (431), bytes (431), target (414).
pub fn check(size: HeadSize, limits: &Limits) -> Result<(), ServeError> {
    if size.fields > max_fields(limits) {
        return Err(too_many_fields());
    }
    if size.bytes > limits.max_head_bytes {
        return Err(ServeError::HeadTooLarge);
    }
    if size.target > limits.max_target_bytes {
        return Err(ServeError::TargetTooLong);
    }
    Ok(())
}

/// Checks a head still arriving: `buffered` bytes of it so far, its request
/// line `line` bytes long once its end has come (`None`: not yet).
pub fn check_partial(
    buffered: usize,
    line: Option<usize>,
    limits: &Limits,
) -> Result<(), ServeError> {
    let line = line.unwrap_or(buffered);
    if line > limits.max_target_bytes + LINE_SLACK {
        return Err(ServeError::TargetTooLong);
    }
    if buffered >= limits.max_head_bytes {
        return Err(ServeError::HeadTooLarge);
    }
    Ok(())
}

/// The bytes a head would take written in HTTP/1.1, for a transport that
/// received it otherwise (HTTP/2): `METHOD TARGET HTTP/1.1\r\n`, then
/// `name: value\r\n` for each field as (name, value) lengths, then `\r\n`.
pub fn h1_bytes(
    method: usize,
    target: usize,
    fields: impl IntoIterator<Item = (usize, usize)>,
) -> usize {
    let line = method + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = fields
        .into_iter()
        .map(|(name, value)| name + value + 4)
        .sum();
    line + fields + 2
}

/// The Host rule (RFC 9112 §3.2): `hosts` Host fields in a head of `version`.
pub fn check_hosts(version: Version, hosts: usize) -> Result<(), ServeError> {
    match version {
        Version::Http11 if hosts != 1 => Err(ServeError::BadRequest(
            "HTTP/1.1 needs exactly one Host field",
        )),
        Version::Http10 if hosts > 1 => Err(ServeError::BadRequest("more than one Host field")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(r: Result<(), ServeError>) -> u16 {
        r.err().map_or(0, |e| e.status())
    }

    #[test]
    fn complete_heads_in_one_order() {
        let l = Limits::default();
        let ok = HeadSize {
            fields: l.max_headers,
            bytes: l.max_head_bytes,
            target: l.max_target_bytes,
        };
        assert_eq!(status(check(ok, &l)), 0);
        assert_eq!(
            status(check(
                HeadSize {
                    fields: ok.fields + 1,
                    ..ok
                },
                &l
            )),
            431
        );
        assert_eq!(
            status(check(
                HeadSize {
                    bytes: ok.bytes + 1,
                    ..ok
                },
                &l
            )),
            431
        );
        assert_eq!(
            status(check(
                HeadSize {
                    target: ok.target + 1,
                    ..ok
                },
                &l
            )),
            414
        );
        // Both over: the field limits come first, on every transport.
        let both = HeadSize {
            bytes: ok.bytes + 1,
            target: ok.target + 1,
            ..ok
        };
        assert_eq!(status(check(both, &l)), 431);
    }

    #[test]
    fn partial_heads() {
        let l = Limits::default();
        assert_eq!(status(check_partial(100, None, &l)), 0);
        assert_eq!(
            status(check_partial(l.max_target_bytes + 33, None, &l)),
            414
        );
        assert_eq!(status(check_partial(l.max_head_bytes, Some(10), &l)), 431);
        assert_eq!(
            status(check_partial(
                l.max_head_bytes - 1,
                Some(l.max_target_bytes + 33),
                &l
            )),
            414
        );
    }

    #[test]
    fn the_h1_size_of_a_head() {
        // "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        assert_eq!(h1_bytes(3, 2, [(4, 1)]), 28);
        assert_eq!(h1_bytes(3, 2, []), 19);
    }

    #[test]
    fn host_rules() {
        assert_eq!(status(check_hosts(Version::Http11, 1)), 0);
        assert_eq!(status(check_hosts(Version::Http11, 0)), 400);
        assert_eq!(status(check_hosts(Version::Http11, 2)), 400);
        assert_eq!(status(check_hosts(Version::Http10, 0)), 0);
        assert_eq!(status(check_hosts(Version::Http10, 2)), 400);
        assert_eq!(status(check_hosts(Version::Http2, 0)), 0);
    }
}
