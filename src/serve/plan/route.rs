//! Routing: the request-target turned into the object it names.
//!
//! Owns: origin-form and absolute-form targets, stripping the query, one round
//! of percent-decoding, and the refusal of everything that could make a path
//! mean something other than a key (encoded separators, NUL, invalid or overlong
//! UTF-8, dot segments), and the Open Connect range form: a path ending in
//! `/range/START-END` names those bytes of the object before it (the range sits
//! in the path so that it survives proxies that strip Range fields), and the
//! path form of signed URLs (`/t/<token>/<object path>`): the token segment is
//! split off the raw path first, and every rule above then applies to the
//! rest, so that a token never lets a path out of what it names. It is
//! pure, and a target without escapes is routed without a copy: the key,
//! the query and the token borrow the request's bytes. It must never build a
//! filesystem path: a route yields a valid key's name ([`ObjectKey::check`]),
//! and only the store maps keys to files.

use std::borrow::Cow;

use crate::store::{KeyError, ObjectKey};

/// Why a target cannot name an object. Every variant is answered with 400,
/// except `NoObject` (404).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the request-target is not in origin or absolute form")]
    BadForm,
    #[error("malformed percent-encoding")]
    BadEscape,
    #[error("an encoded `/` or `\\` in the path")]
    EncodedSeparator,
    #[error("the decoded path is not valid UTF-8")]
    NotUtf8,
    #[error("the path names no object")]
    NoObject,
    #[error("invalid object key: {0}")]
    Key(#[from] KeyError),
    #[error("`/range/START-END` with END before START")]
    BackwardPathRange,
}

/// What a request-target asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The object's key, valid ([`ObjectKey::check`]).
    pub key: Cow<'a, str>,
    /// The raw query (after `?`), kept for signed-URL checks.
    pub query: Option<Cow<'a, str>>,
    /// The token segment of the path form (`eddy_proto::token::split_path`),
    /// as sent; the key is the path after it.
    pub path_token: Option<&'a str>,
    /// `/range/START-END` at the end of the path: the inclusive byte range
    /// asked for, answered 200 with exactly those bytes.
    pub path_range: Option<PathRange>,
}

/// The byte range of the `/range/START-END` form, inclusive, START <= END.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRange {
    pub first: u64,
    pub last: u64,
}

/// The path segment that introduces the range form.
const RANGE_SEGMENT: &str = "/range";

/// Routes a request-target.
pub fn route(target: &[u8]) -> Result<Target<'_>, RouteError> {
    let path_and_query = strip_absolute_form(target)?;
    if path_and_query.first() != Some(&b'/') {
        return Err(RouteError::BadForm);
    }
    if path_and_query.contains(&b'#') {
        return Err(RouteError::BadForm);
    }
    let (raw_path, query) = match path_and_query.iter().position(|&b| b == b'?') {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
        None => (path_and_query, None),
    };
    // The path form's token segment is split off before anything is decoded,
    // so that the rest meets every rule below exactly as a path without one.
    let (path_token, raw_path) = match eddy_proto::token::split_path(raw_path) {
        Some((segment, rest)) => (Some(segment), rest),
        None => (None, raw_path),
    };
    let text = match percent_decode(raw_path)? {
        Cow::Borrowed(raw) => {
            Cow::Borrowed(std::str::from_utf8(raw).map_err(|_| RouteError::NotUtf8)?)
        }
        Cow::Owned(decoded) => {
            Cow::Owned(String::from_utf8(decoded).map_err(|_| RouteError::NotUtf8)?)
        }
    };
    let (name, path_range) = split_path_range(&text[1..])?;
    if name.is_empty() {
        return Err(RouteError::NoObject);
    }
    ObjectKey::check(name)?;
    let end = 1 + name.len();
    let key = match text {
        Cow::Borrowed(text) => Cow::Borrowed(&text[1..end]),
        Cow::Owned(text) => Cow::Owned(text[1..end].to_owned()),
    };
    let query = query.map(String::from_utf8_lossy);
    Ok(Target {
        key,
        query,
        path_token,
        path_range,
    })
}

/// `KEY/range/START-END` → (`KEY`, the range). A last segment that is not two
/// decimal numbers joined by `-` is not the range form: the whole name is the
/// key, as written.
fn split_path_range(name: &str) -> Result<(&str, Option<PathRange>), RouteError> {
    // The range is the last segment, after a `range` one: one backward byte
    // search, not a substring search, on every request.
    let Some((before, spec)) = name.rsplit_once('/') else {
        return Ok((name, None));
    };
    let Some(key) = before.strip_suffix(RANGE_SEGMENT) else {
        return Ok((name, None));
    };
    let number = |s: &str| {
        let digits = !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| s.parse::<u64>().ok()).flatten()
    };
    let parsed = spec
        .split_once('-')
        .and_then(|(a, b)| Some((number(a)?, number(b)?)));
    match parsed {
        None => Ok((name, None)),
        Some((first, last)) if last < first => Err(RouteError::BackwardPathRange),
        Some((first, last)) => Ok((key, Some(PathRange { first, last }))),
    }
}

/// `http://authority/path` → `/path` (RFC 9112 §3.2.2: servers accept it).
fn strip_absolute_form(target: &[u8]) -> Result<&[u8], RouteError> {
    let lower_starts = |prefix: &[u8]| {
        target.len() >= prefix.len() && target[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    let rest = if lower_starts(b"http://") {
        &target[7..]
    } else if lower_starts(b"https://") {
        &target[8..]
    } else {
        return Ok(target);
    };
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if rest[i] == b'/' => Ok(&rest[i..]),
        Some(_) | None => Err(RouteError::NoObject),
    }
}

/// Decodes `%XX` once (a path without `%` is returned as it is). Refuses
/// encoded `/` and `\` (they would change the segment structure) and NUL; a
/// raw `\` is refused by the key rules.
fn percent_decode(raw: &[u8]) -> Result<Cow<'_, [u8]>, RouteError> {
    if !raw.contains(&b'%') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hi = raw
                .get(i + 1)
                .and_then(|&c| hex(c))
                .ok_or(RouteError::BadEscape)?;
            let lo = raw
                .get(i + 2)
                .and_then(|&c| hex(c))
                .ok_or(RouteError::BadEscape)?;
            let byte = hi << 4 | lo;
            if byte == b'/' || byte == b'\\' {
                return Err(RouteError::EncodedSeparator);
            }
            if byte == 0 {
                return Err(RouteError::Key(KeyError::ControlCharacter));
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(Cow::Owned(out))
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

    fn key(t: &str) -> Result<String, RouteError> {
        route(t.as_bytes()).map(|t| t.key.into_owned())
    }

    #[test]
    fn plain_and_encoded_names() {
        assert_eq!(key("/titles/81/v.mp4"), Ok("titles/81/v.mp4".into()));
        assert_eq!(key("/a%20b.mp4?e=1&t=x"), Ok("a b.mp4".into()));
        assert_eq!(key("/%C3%BC.mp4"), Ok("ü.mp4".into()));
        assert_eq!(key("http://cache.example/a/b"), Ok("a/b".into()));
        assert_eq!(key("HTTP://cache.example:8080/a"), Ok("a".into()));
        let t = route(b"/a?e=1&t=x").expect("routes");
        assert_eq!(t.query.as_deref(), Some("e=1&t=x"));
    }

    #[test]
    fn escapes_are_refused() {
        assert!(matches!(
            key("/../etc/passwd"),
            Err(RouteError::Key(KeyError::DotSegment))
        ));
        assert!(matches!(
            key("/a/%2e%2e/%2e%2e/etc/passwd"),
            Err(RouteError::Key(KeyError::DotSegment))
        ));
        assert!(matches!(
            key("/a/%2E%2e"),
            Err(RouteError::Key(KeyError::DotSegment))
        ));
        assert_eq!(key("/..%2fetc%2fpasswd"), Err(RouteError::EncodedSeparator));
        assert_eq!(key("/..%5cetc"), Err(RouteError::EncodedSeparator));
        assert!(matches!(
            key("/..\\etc"),
            Err(RouteError::Key(KeyError::Backslash))
        ));
        assert_eq!(key("/%c0%ae%c0%ae/etc"), Err(RouteError::NotUtf8));
        assert!(matches!(
            key("/a%00.mp4"),
            Err(RouteError::Key(KeyError::ControlCharacter))
        ));
        assert!(matches!(
            key("//etc/passwd"),
            Err(RouteError::Key(KeyError::EmptySegment))
        ));
        assert_eq!(key("/%zz"), Err(RouteError::BadEscape));
        assert_eq!(key("/a%2"), Err(RouteError::BadEscape));
        assert_eq!(key("*"), Err(RouteError::BadForm));
        assert_eq!(key("etc/passwd"), Err(RouteError::BadForm));
        assert_eq!(key("/"), Err(RouteError::NoObject));
        assert_eq!(key("http://host"), Err(RouteError::NoObject));
    }

    #[test]
    fn range_in_the_path() {
        let t = route(b"/titles/81/v.mp4/range/0-1048575?e=1").expect("routes");
        assert_eq!(&*t.key, "titles/81/v.mp4");
        assert_eq!(
            t.path_range,
            Some(PathRange {
                first: 0,
                last: 1_048_575
            })
        );
        assert_eq!(t.query.as_deref(), Some("e=1"));
        let t = route(b"/v/range/7-7").expect("routes");
        assert_eq!(t.path_range, Some(PathRange { first: 7, last: 7 }));
        // Encoded the same way as any path.
        let t = route(b"/v/range/1%2d2").expect("routes");
        assert_eq!(t.path_range, Some(PathRange { first: 1, last: 2 }));
        assert_eq!(
            route(b"/v/range/9-3").map(|t| t.key),
            Err(RouteError::BackwardPathRange)
        );
        // A key of its own: nothing before the form.
        let t = route(b"/range/0-9").expect("routes");
        assert_eq!((&*t.key, t.path_range), ("range/0-9", None));
        // Not the form: the whole name is the key.
        for name in [
            "v/range/1-",
            "v/range/-5",
            "v/range/a-b",
            "v/range/1-2-3",
            "v/range/+1-2",
            "v/range",
        ] {
            let raw = format!("/{name}");
            let t = route(raw.as_bytes()).expect("routes");
            assert_eq!((&*t.key, t.path_range), (name, None));
        }
        // 20 digits cannot be an offset.
        let t = route(b"/v/range/0-99999999999999999999").expect("routes");
        assert_eq!(t.path_range, None);
        // Only the last `/range/` counts.
        let t = route(b"/a/range/1-2/range/3-4").expect("routes");
        assert_eq!(&*t.key, "a/range/1-2");
        assert_eq!(t.path_range, Some(PathRange { first: 3, last: 4 }));
    }

    const TOKEN: &str = "1800000000.k1.L3RpdGxlcy84MS8.._Hk";

    #[test]
    fn a_target_without_escapes_is_borrowed_not_copied() {
        let t = route(b"/a/v.mp4?x=1").expect("routes");
        assert!(matches!(t.key, Cow::Borrowed("a/v.mp4")), "{t:?}");
        assert!(matches!(t.query, Some(Cow::Borrowed("x=1"))), "{t:?}");
        let t = route(b"/a/v%20w.mp4").expect("routes");
        assert!(matches!(&t.key, Cow::Owned(k) if k == "a/v w.mp4"), "{t:?}");
        let t = route(b"/a%2Ev/w.mp4/range/1-2").expect("routes");
        assert_eq!(
            (&*t.key, t.path_range),
            ("a.v/w.mp4", Some(PathRange { first: 1, last: 2 }))
        );
    }

    #[test]
    fn a_path_token_is_split_off_and_the_rest_routed_as_any_path() {
        let raw = format!("/t/{TOKEN}/titles/81/hls/seg001.m4s?x=1");
        let t = route(raw.as_bytes()).expect("routes");
        assert_eq!(&*t.key, "titles/81/hls/seg001.m4s");
        assert_eq!(t.path_token, Some(TOKEN));
        assert_eq!(t.query.as_deref(), Some("x=1"));
        let raw = format!("https://cache.example/t/{TOKEN}/a/v.mp4/range/0-9");
        let t = route(raw.as_bytes()).expect("routes");
        assert_eq!(&*t.key, "a/v.mp4");
        assert_eq!(t.path_range, Some(PathRange { first: 0, last: 9 }));
        assert_eq!(t.path_token, Some(TOKEN));
        // A folder named `t` is still a folder.
        let t = route(b"/t/a.m4s").expect("routes");
        assert_eq!((&*t.key, t.path_token), ("t/a.m4s", None));
        // The token names nothing by itself.
        assert_eq!(key(&format!("/t/{TOKEN}/")), Err(RouteError::NoObject));
        // After the token, every escape is refused as without one.
        for (rest, want) in [
            ("../etc/passwd", RouteError::Key(KeyError::DotSegment)),
            ("titles/81/../../etc", RouteError::Key(KeyError::DotSegment)),
            (
                "titles/81/%2e%2e/82/v.mp4",
                RouteError::Key(KeyError::DotSegment),
            ),
            ("titles/81/..%2f82%2fv.mp4", RouteError::EncodedSeparator),
            ("titles%2f82/v.mp4", RouteError::EncodedSeparator),
            ("titles/81%5c..%5c82", RouteError::EncodedSeparator),
            ("/titles/82/v.mp4", RouteError::Key(KeyError::EmptySegment)),
            (
                "titles/81/a%00",
                RouteError::Key(KeyError::ControlCharacter),
            ),
        ] {
            assert_eq!(key(&format!("/t/{TOKEN}/{rest}")), Err(want), "{rest}");
        }
        // An encoded separator cannot forge the token segment either.
        assert_eq!(
            key(&format!("/t%2f{TOKEN}/a")),
            Err(RouteError::EncodedSeparator)
        );
    }

    #[test]
    fn double_encoding_decodes_once_into_a_harmless_name() {
        assert_eq!(key("/%252e%252e/etc"), Ok("%2e%2e/etc".into()));
    }

    proptest! {
        #[test]
        fn no_routed_key_escapes(t in "(/t/1\\.k\\.a\\.b\\.c)?/[a-z%./\\\\0-9A-F]{0,30}") {
            if let Ok(target) = route(t.as_bytes()) {
                for c in std::path::Path::new(&*target.key).components() {
                    prop_assert!(matches!(c, std::path::Component::Normal(_)));
                }
            }
        }
    }
}
