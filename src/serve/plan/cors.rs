//! Cross-origin reads by web players: the CORS protocol of the Fetch standard
//! (§3.2), so that a player page on the service's own origin may read
//! segments, `Content-Range` and `ETag` from an appliance.
//!
//! Owns: which origins are allowed (`cors.allow_origins`: a list of
//! serialized origins, or `*`), whether a request is a CORS preflight, the
//! fields of an accepted preflight, and the CORS fields added to every other
//! answer of a listener that has CORS on. It is pure: rules and request fields
//! in, field values out. It must never change a status, a body or any other
//! field: an origin that is not allowed gets exactly the answer it would get
//! with CORS off (no CORS field at all), and statuses stay `respond`'s.

use std::sync::Arc;

use super::fields::Fields;
use super::respond::{FieldValue, Headers};

/// The methods a preflight may ask for: the only ones eddy serves.
pub const ALLOW_METHODS: &str = "GET, HEAD";

/// The request fields a player may send cross-origin: Range and the
/// preconditions (RFC 9110 §13.1, §14.2). Each is lowercase for comparison.
const ALLOW_HEADERS: [&str; 6] = [
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
];

/// `Access-Control-Allow-Headers` of an accepted preflight.
pub const ALLOW_HEADERS_VALUE: &str =
    "Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, If-Range";

/// The response fields a player's script may read besides the CORS-safelisted
/// ones (Fetch §3.2.4 lists Content-Length among those; it is named anyway,
/// for older browsers).
pub const EXPOSE_HEADERS: &str = "Content-Range, Content-Length, ETag, Accept-Ranges";

/// Which origins may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Any origin (`*`): anonymous public content.
    Any,
    /// Exactly these serialized origins (`https://player.example`), compared
    /// byte for byte with the request's `Origin` (Fetch §3.2.5).
    List(Vec<Arc<str>>),
}

/// The CORS rules of the listeners that have CORS on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub allow: Allow,
    /// `Access-Control-Max-Age` of accepted preflights, rendered (seconds).
    pub max_age: Arc<str>,
    /// Send `Timing-Allow-Origin` with `Access-Control-Allow-Origin`, so that
    /// players can measure throughput with Resource Timing.
    pub timing: bool,
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request's `Origin`, or
    /// `None` when that origin may not read (or the request has none).
    pub fn allowed(&self, origin: Option<&[u8]>) -> Option<FieldValue> {
        let origin = origin?;
        match &self.allow {
            Allow::Any => Some(FieldValue::Static("*")),
            Allow::List(list) => list
                .iter()
                .find(|o| o.as_bytes() == origin)
                .map(|o| FieldValue::Shared(o.clone())),
        }
    }

    /// The fields of an accepted preflight, or `None` when the preflight is
    /// refused (an origin not allowed, a method other than GET and HEAD, or a
    /// request field not in [`ALLOW_HEADERS`]): it is then answered as if
    /// CORS were off, and the browser refuses the actual request.
    pub fn preflight(&self, fields: &Fields) -> Option<Headers> {
        let asked = fields.cors.as_ref()?;
        let allow_origin = self.allowed(asked.origin.as_deref())?;
        let method = asked.method.as_deref()?;
        // Methods are compared case-sensitively (Fetch §2.2.1: the browser
        // normalizes GET and HEAD to upper case before it asks).
        if method != b"GET" && method != b"HEAD" {
            return None;
        }
        if !headers_allowed(asked.headers.as_deref().unwrap_or_default()) {
            return None;
        }
        Some(Headers::from_iter([
            ("Access-Control-Allow-Origin", allow_origin),
            ("Access-Control-Allow-Methods", ALLOW_METHODS.into()),
            ("Access-Control-Allow-Headers", ALLOW_HEADERS_VALUE.into()),
            (
                "Access-Control-Max-Age",
                FieldValue::Shared(self.max_age.clone()),
            ),
            ("Vary", "Origin".into()),
        ]))
    }

    /// Adds the CORS fields to the answer of a non-preflight request.
    /// `Vary: Origin` goes on every answer (allowed origin or not, `Origin`
    /// sent or not), so that a shared cache never hands an answer made for
    /// one origin to another (Fetch §3.2.5, RFC 9110 §12.5.5).
    pub fn decorate(&self, origin: Option<&[u8]>, headers: &mut Headers) {
        headers.push(("Vary", "Origin".into()));
        let Some(allow_origin) = self.allowed(origin) else {
            return;
        };
        if self.timing {
            headers.push(("Timing-Allow-Origin", allow_origin.clone()));
        }
        headers.push(("Access-Control-Allow-Origin", allow_origin));
        headers.push(("Access-Control-Expose-Headers", EXPOSE_HEADERS.into()));
    }
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method` (Fetch §4.8).
pub fn is_preflight(method: &str, fields: &Fields) -> bool {
    method == "OPTIONS"
        && fields
            .cors
            .as_ref()
            .is_some_and(|c| c.origin.is_some() && c.method.is_some())
}

/// Whether every name in `Access-Control-Request-Headers` (a comma-separated
/// list, Fetch §3.2.2) is one a player may send.
fn headers_allowed(list: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .map(|name| name.trim_ascii())
        .filter(|name| !name.is_empty())
        .all(|name| {
            ALLOW_HEADERS
                .iter()
                .any(|a| name.eq_ignore_ascii_case(a.as_bytes()))
        })
}

/// Checks one configured origin: a serialized origin (`scheme://host[:port]`,
/// lowercase, no path), as browsers send it in `Origin` (RFC 6454 §6.1).
pub fn valid_origin(text: &str) -> Result<(), &'static str> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or("must start with https:// or http:// (or be \"*\" alone)")?;
    if rest.is_empty() {
        return Err("has no host");
    }
    if rest.contains('/') {
        return Err("must be an origin: scheme://host[:port], no path or trailing /");
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]".contains(&b))
    {
        return Err("must be lowercase letters, digits and -.:[] (browsers send origins lowercase, punycode for IDNs)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(origins: &[&str]) -> Cors {
        Cors {
            allow: Allow::List(origins.iter().map(|&o| Arc::from(o)).collect()),
            max_age: "7200".into(),
            timing: true,
        }
    }

    fn fields<'a>(pairs: &[(&str, &'a str)]) -> Fields<'a> {
        let mut f = Fields::default();
        for (n, v) in pairs {
            f.add(n, v.as_bytes());
        }
        f
    }

    fn get<'a>(h: &'a [(&'static str, FieldValue)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    const PLAYER: &str = "https://player.example";

    #[test]
    fn an_allowed_origin_is_echoed_and_others_get_nothing() {
        let c = list(&[PLAYER, "http://127.0.0.1:8000"]);
        let mut h = Headers::new();
        c.decorate(Some(PLAYER.as_bytes()), &mut h);
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some(PLAYER));
        assert_eq!(get(&h, "Timing-Allow-Origin"), Some(PLAYER));
        assert_eq!(
            get(&h, "Access-Control-Expose-Headers"),
            Some(EXPOSE_HEADERS)
        );
        assert_eq!(get(&h, "Vary"), Some("Origin"));
        for other in [
            Some(&b"https://evil.example"[..]),
            Some(b"https://player.example.evil"),
            Some(b"HTTPS://PLAYER.EXAMPLE"),
            Some(b"https://player.example, https://evil.example"),
            Some(b"null"),
            None,
        ] {
            let mut h = Headers::new();
            c.decorate(other, &mut h);
            assert_eq!(&*h, &[("Vary", FieldValue::Static("Origin"))], "{other:?}");
        }
        let any = Cors {
            allow: Allow::Any,
            timing: false,
            ..c
        };
        let mut h = Headers::new();
        any.decorate(Some(b"https://anyone.example"), &mut h);
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(get(&h, "Timing-Allow-Origin"), None);
    }

    #[test]
    fn preflights_accepted_and_refused() {
        let c = list(&[PLAYER]);
        let ok = fields(&[
            ("Origin", PLAYER),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range, if-none-match"),
        ]);
        assert!(is_preflight("OPTIONS", &ok));
        let h = c.preflight(&ok).expect("accepted");
        assert_eq!(get(&h, "Access-Control-Allow-Origin"), Some(PLAYER));
        assert_eq!(get(&h, "Access-Control-Allow-Methods"), Some("GET, HEAD"));
        assert_eq!(get(&h, "Access-Control-Max-Age"), Some("7200"));
        assert!(get(&h, "Access-Control-Allow-Headers").is_some_and(|v| v.contains("Range")));
        let head_only = fields(&[
            ("Origin", PLAYER),
            ("Access-Control-Request-Method", "HEAD"),
        ]);
        assert!(c.preflight(&head_only).is_some());
        for refused in [
            fields(&[
                ("Origin", "https://evil.example"),
                ("Access-Control-Request-Method", "GET"),
            ]),
            fields(&[("Origin", PLAYER), ("Access-Control-Request-Method", "PUT")]),
            fields(&[("Origin", PLAYER), ("Access-Control-Request-Method", "get")]),
            fields(&[
                ("Origin", PLAYER),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "range, x-player-id"),
            ]),
            fields(&[("Origin", PLAYER)]),
        ] {
            assert_eq!(c.preflight(&refused), None, "{refused:?}");
        }
        // Not a preflight: no Origin or no requested method, or not OPTIONS.
        assert!(!is_preflight("OPTIONS", &fields(&[("Origin", PLAYER)])));
        assert!(!is_preflight("GET", &ok));
        assert!(!is_preflight(
            "OPTIONS",
            &fields(&[("Access-Control-Request-Method", "GET")])
        ));
    }

    #[test]
    fn configured_origins() {
        for good in [
            PLAYER,
            "http://127.0.0.1:8000",
            "https://[::1]:8443",
            "https://xn--bcher-kva.example",
        ] {
            assert_eq!(valid_origin(good), Ok(()), "{good}");
        }
        for bad in [
            "player.example",
            "https://player.example/",
            "https://player.example/app",
            "https://Player.example",
            "https://",
            "*.example",
            "null",
            "https://a b",
        ] {
            assert!(valid_origin(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn only_a_listed_origin_ever_gets_an_allow_origin(origin in proptest::collection::vec(any::<u8>(), 0..40)) {
            let c = list(&[PLAYER]);
            let mut h = Headers::new();
            c.decorate(Some(&origin), &mut h);
            let granted = get(&h, "Access-Control-Allow-Origin").is_some();
            prop_assert_eq!(granted, origin == PLAYER.as_bytes());
            prop_assert_eq!(get(&h, "Vary"), Some("Origin"));
        }

        #[test]
        fn request_header_lists_never_panic(list in "[ -~]{0,60}") {
            let _ = headers_allowed(list.as_bytes());
        }
    }
}
