//! The source URLs a manifest names for an object, and the one percent-decode
//! of a content path.
//!
//! Owns: turning a key into a URL path (every byte outside the RFC 3986
//! unreserved set percent-encoded, segment by segment, `/` kept), appending it
//! to each configured base in order, and the reverse decode the content route
//! applies once. It is pure. It must never validate a key (that is
//! `eddy_proto::key`) nor decide which bases exist (that is the command line).

use eddy_proto::ObjectKey;

/// The URLs of `key` under each base, in order. Every base ends in `/`.
pub fn urls(bases: &[String], key: &ObjectKey) -> Vec<String> {
    let path = encode_key(key.as_str());
    bases.iter().map(|b| format!("{b}{path}")).collect()
}

/// `key` with each segment percent-encoded and the `/` between them kept.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b == b'/' || b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Why a path could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a `%` is not followed by two hex digits")]
    BadEscape,
    #[error("the decoded path is not UTF-8")]
    NotUtf8,
    #[error("the path encodes a `/` or a NUL")]
    EncodedSeparator,
}

/// One percent-decode of a URL path. An encoded `/` or NUL is refused, so
/// that a key's segments are the ones the client wrote.
pub fn decode_path(path: &str) -> Result<String, DecodeError> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|&c| hex(c));
            let lo = bytes.get(i + 2).and_then(|&c| hex(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(DecodeError::BadEscape);
            };
            let b = (hi << 4) | lo;
            if b == b'/' || b == 0 {
                return Err(DecodeError::EncodedSeparator);
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).unwrap_or_else(|e| panic!("{k}: {e}"))
    }

    #[test]
    fn urls_follow_the_bases_in_order() {
        let bases = vec![
            "http://bad.test/x/".to_owned(),
            "http://127.0.0.1:9/content/".to_owned(),
        ];
        assert_eq!(
            urls(&bases, &key("titles/81/v 1080?.mp4")),
            vec![
                "http://bad.test/x/titles/81/v%201080%3F.mp4",
                "http://127.0.0.1:9/content/titles/81/v%201080%3F.mp4",
            ]
        );
        assert_eq!(encode_key("a/é#%"), "a/%C3%A9%23%25");
    }

    #[test]
    fn decoding_refuses_bad_escapes_and_separators() {
        assert_eq!(decode_path("a/%C3%A9%20b"), Ok("a/é b".to_owned()));
        assert_eq!(decode_path("a%2Fb"), Err(DecodeError::EncodedSeparator));
        assert_eq!(decode_path("a%00"), Err(DecodeError::EncodedSeparator));
        assert_eq!(decode_path("a%2"), Err(DecodeError::BadEscape));
        assert_eq!(decode_path("a%zz"), Err(DecodeError::BadEscape));
        assert_eq!(decode_path("%FF"), Err(DecodeError::NotUtf8));
        // One decode only.
        assert_eq!(decode_path("%252e"), Ok("%2e".to_owned()));
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity(k in "[a-z0-9 é?#%+]{1,8}(/[a-z0-9 é?#%+]{1,8}){0,3}") {
            prop_assert_eq!(decode_path(&encode_key(&k)), Ok(k));
        }

        #[test]
        fn decode_never_panics(p in ".{0,40}") {
            let _ = decode_path(&p);
        }
    }
}
