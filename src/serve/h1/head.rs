//! HTTP/1.1 request heads (RFC 9112), parsed with `httparse` from the bytes a
//! connection has buffered.
//!
//! Owns: the request line and header fields turned into a [`RequestHead`]:
//! method, target, version, keep-alive, body framing (Content-Length versus
//! Transfer-Encoding, and the smuggling cases refused), the Range field and the
//! precondition fields (`plan::fields`). The head limits (431, 414) and the
//! Host rule are `serve::limits`', asked here as by the TLS transport. It is
//! pure: it reads a byte slice and never touches a socket.

use std::mem::MaybeUninit;

use crate::config::Limits;
use crate::serve::limits::{self, HeadSize};
use crate::serve::plan::fields::Fields;
use crate::serve::plan::respond::ServeError;

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

impl BodyFraming {
    /// True when the request carries body bytes we must discard.
    pub fn has_body(self) -> bool {
        !matches!(self, BodyFraming::None | BodyFraming::Length(0))
    }
}

/// The field slots of the parser, on the stack and never initialised
/// (`limits.max_headers` is at most 1024; a larger value would take them
/// from the heap).
const SLOTS: usize = 1024;

/// One parsed request head, borrowing the connection's buffer: nothing of it
/// is copied.
#[derive(Debug, Clone)]
pub struct RequestHead<'b> {
    pub method: &'b str,
    pub target: &'b [u8],
    pub http10: bool,
    /// Bytes the head occupied in the buffer, including the final CRLF.
    pub len: usize,
    pub keep_alive: bool,
    pub body: BodyFraming,
    /// Range and the preconditions.
    pub fields: Fields<'b>,
}

/// The result of looking at the buffered bytes. A complete head is returned
/// by value, once per request, and moved into the request's boxed future
/// (`conn::answer_one`): boxing it here would add an allocation per request
/// on the plain path to save a move of about 230 bytes.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Parsed<'b> {
    Complete(RequestHead<'b>),
    /// More bytes are needed (and the buffer is still within the limit).
    Partial,
    /// The head is unusable; the error says how to answer. `http10` tells the
    /// transport how to frame the answer when it is known.
    Invalid(ServeError),
}

/// Parses the first request head in `buf`.
pub fn parse<'b>(buf: &'b [u8], limits: &Limits) -> Parsed<'b> {
    let wanted = limits::max_fields(limits);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; SLOTS];
    let mut more;
    let headers = if wanted <= SLOTS {
        &mut slots[..wanted]
    } else {
        more = vec![MaybeUninit::uninit(); wanted];
        &mut more[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, headers) {
        Ok(status) => status,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(limits::too_many_fields()),
        Err(httparse::Error::Version) => return Parsed::Invalid(version_error(buf)),
        Err(_) => return Parsed::Invalid(ServeError::BadRequest("malformed request head")),
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return partial(buf, limits),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid(ServeError::BadRequest("incomplete request line"));
    };
    let size = HeadSize {
        fields: req.headers.len(),
        bytes: head_len,
        target: path.len(),
    };
    if let Err(e) = limits::check(size, limits) {
        return Parsed::Invalid(e);
    }
    let http10 = version == 0;
    let mut hosts = 0usize;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut fields = Fields::default();
    for h in req.headers.iter() {
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // A list of identical values is tolerated (RFC 9112 §6.3 item 5).
            for part in value.split(|&b| b == b',') {
                let Some(n) = parse_length(trim(part)) else {
                    return Parsed::Invalid(ServeError::BadRequest("invalid Content-Length"));
                };
                if content_length.is_some_and(|c| c != n) {
                    return Parsed::Invalid(ServeError::BadRequest("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if http10 {
                return Parsed::Invalid(ServeError::BadRequest("Transfer-Encoding in HTTP/1.0"));
            }
            let last = value
                .rsplit(|&b| b == b',')
                .next()
                .map(trim)
                .unwrap_or_default();
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Parsed::Invalid(ServeError::BadRequest("request body not chunked"));
            }
            chunked = true;
        } else {
            fields.add(name, value);
        }
    }
    if chunked && content_length.is_some() {
        return Parsed::Invalid(ServeError::BadRequest(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    let version = if http10 {
        limits::Version::Http10
    } else {
        limits::Version::Http11
    };
    if let Err(e) = limits::check_hosts(version, hosts) {
        return Parsed::Invalid(e);
    }
    let body = if chunked {
        BodyFraming::Chunked
    } else {
        content_length.map_or(BodyFraming::None, BodyFraming::Length)
    };
    let keep_alive = !close && (!http10 || keep_alive_token);
    Parsed::Complete(RequestHead {
        method,
        target: path.as_bytes(),
        http10,
        len: head_len,
        keep_alive,
        body,
        fields,
    })
}

/// A partial head: fine while under the limits, else 414 or 431.
fn partial(buf: &[u8], limits: &Limits) -> Parsed<'static> {
    let line_end = buf.iter().position(|&b| b == b'\n');
    match limits::check_partial(buf.len(), line_end, limits) {
        Ok(()) => Parsed::Partial,
        Err(e) => Parsed::Invalid(e),
    }
}

/// httparse knows only HTTP/1.x: an `HTTP/d.d` it refuses is a version we do not
/// support (505); anything else is a malformed line (400).
fn version_error(buf: &[u8]) -> ServeError {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = trim(line.strip_suffix(b"\r").unwrap_or(line));
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    let looks_like_version = version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit();
    if looks_like_version {
        ServeError::VersionNotSupported
    } else {
        ServeError::BadRequest("malformed request line")
    }
}

fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn head(raw: &str) -> RequestHead<'_> {
        match parse(raw.as_bytes(), &limits()) {
            Parsed::Complete(h) => h,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn status(raw: &str) -> u16 {
        match parse(raw.as_bytes(), &limits()) {
            Parsed::Invalid(e) => e.status(),
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn keep_alive_rules() {
        assert!(head("GET /a HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
        assert!(!head("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET /a HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head("GET /a HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing_and_smuggling() {
        assert_eq!(
            head("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").body,
            BodyFraming::Length(5)
        );
        assert_eq!(
            head("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").body,
            BodyFraming::Chunked
        );
        assert_eq!(
            head("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n").body,
            BodyFraming::Length(5)
        );
        assert_eq!(status("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(
            status("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400
        );
    }

    #[test]
    fn host_rules_and_versions() {
        assert_eq!(status("GET /a HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status("GET /a HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status("GET /a FTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("GET\r\n\r\n"), 400);
    }

    #[test]
    fn conditions_and_range_are_collected_and_joined() {
        let h = head("GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nIf-None-Match: \"a\"\r\nif-none-match: \"b\"\r\n\r\n");
        assert_eq!(h.fields.range.as_deref(), Some(&b"bytes=0-1"[..]));
        assert_eq!(
            h.fields.conditions.if_none_match.as_deref(),
            Some(&b"\"a\", \"b\""[..])
        );
    }

    #[test]
    fn limits_give_414_and_431() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        assert_eq!(status(&long), 414);
        let partial_long = format!("GET /{}", "a".repeat(9000));
        assert_eq!(status(&partial_long), 414);
        let many = format!(
            "GET /a HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "X-A: b\r\n".repeat(101)
        );
        assert_eq!(status(&many), 431);
        let big = format!(
            "GET /a HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n",
            "b".repeat(17000)
        );
        assert_eq!(status(&big), 431);
        assert!(matches!(
            parse(b"GET /a HTTP/1.1\r\nHost: x\r\n", &limits()),
            Parsed::Partial
        ));
    }
}
