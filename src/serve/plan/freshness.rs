//! Freshness: the `Cache-Control` value of an object, from config, by key
//! prefix or media type (RFC 9111 §5.2.2), so that browsers and caches in
//! front of the appliance keep immutable video for long and playlists briefly.
//!
//! Owns: the order of the rules (the first `[[cache_control.rules]]` that
//! matches, then the playlist value for HLS and DASH playlists, then the
//! default). It is pure: key and media type in, a value out. It must never
//! decide on which statuses the value is sent (`respond` sends it on 200, 206
//! and 304 alike, RFC 9110 §15.4.5) nor change what is sent.

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// A URL path prefix (`/titles/live/`), compared with `/` + the key.
    Prefix(String),
    /// A media type (`video/mp4`), compared case-insensitively with the
    /// object's type without parameters.
    MediaType(String),
}

use std::sync::Arc;

/// One `[[cache_control.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Match,
    /// The field value; `None`: send no Cache-Control for these objects.
    pub value: Option<Arc<str>>,
}

/// The freshness rules of every listener.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheControl {
    pub rules: Vec<Rule>,
    /// For `.m3u8` and `.mpd` (their media types), unless a rule matched.
    pub playlists: Option<Arc<str>>,
    /// For everything else.
    pub default: Option<Arc<str>>,
}

/// The media types of playlists: HLS (RFC 8216 §4) and DASH.
const PLAYLIST_TYPES: [&str; 2] = ["application/vnd.apple.mpegurl", "application/dash+xml"];

impl CacheControl {
    /// The Cache-Control value for `key` of media type `media_type`.
    /// Shared, so that a response takes it without a copy.
    pub fn for_object(&self, key: &str, media_type: &str) -> Option<&Arc<str>> {
        let base = media_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let rule = self.rules.iter().find(|r| match &r.matches {
            Match::Prefix(p) => p.strip_prefix('/').is_some_and(|p| key.starts_with(p)),
            Match::MediaType(t) => t.eq_ignore_ascii_case(base),
        });
        if let Some(rule) = rule {
            return rule.value.as_ref();
        }
        if PLAYLIST_TYPES.iter().any(|t| t.eq_ignore_ascii_case(base)) {
            return self.playlists.as_ref();
        }
        self.default.as_ref()
    }
}

/// Checks a configured value: a field value of visible ASCII and spaces
/// (RFC 9110 §5.5), so that both transports can send it unchanged.
pub fn valid_value(text: &str) -> Result<(), &'static str> {
    if text.trim() != text {
        return Err("must not start or end with whitespace");
    }
    if !text.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err("must be visible ASCII and spaces (an HTTP field value)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::plan::media::content_type;

    fn rules() -> CacheControl {
        CacheControl {
            rules: vec![
                Rule {
                    matches: Match::Prefix("/live/".into()),
                    value: Some("no-cache".into()),
                },
                Rule {
                    matches: Match::MediaType("text/vtt".into()),
                    value: None,
                },
            ],
            playlists: Some("public, max-age=2".into()),
            default: Some("public, max-age=31536000, immutable".into()),
        }
    }

    fn of(c: &CacheControl, key: &str) -> Option<String> {
        c.for_object(key, content_type(key)).map(|v| v.to_string())
    }

    #[test]
    fn first_rule_then_playlists_then_default() {
        let c = rules();
        assert_eq!(
            of(&c, "titles/81/seg001.m4s").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            of(&c, "titles/81/hls/index.m3u8").as_deref(),
            Some("public, max-age=2")
        );
        assert_eq!(
            of(&c, "titles/81/dash/manifest.MPD").as_deref(),
            Some("public, max-age=2")
        );
        assert_eq!(of(&c, "live/81/index.m3u8").as_deref(), Some("no-cache"));
        assert_eq!(of(&c, "live/81/seg.m4s").as_deref(), Some("no-cache"));
        assert_eq!(of(&c, "titles/81/subs.vtt"), None);
        // A prefix is a path prefix: `/live/` does not match `lively/`.
        assert_eq!(
            of(&c, "lively/a.mp4").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        // Media types compare without parameters.
        assert_eq!(c.for_object("x", "Text/VTT; charset=utf-8"), None);
        assert_eq!(of(&CacheControl::default(), "a.mp4"), None);
    }

    #[test]
    fn values_must_be_field_values() {
        assert!(valid_value("public, max-age=31536000, immutable").is_ok());
        assert!(valid_value("no-cache\r\nSet-Cookie: x").is_err());
        assert!(valid_value(" public").is_err());
        assert!(valid_value("max-age=ü").is_err());
    }
}
