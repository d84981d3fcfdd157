//! The `[cors]` and `[cache_control]` sections: what web players need from a
//! listener besides bytes.
//!
//! Owns: turning [`RawCors`] and [`RawCacheControl`] into the checked rules
//! of `serve::plan::cors` and `serve::plan::freshness`; every error names the key, the
//! value and the reason. CORS is off until `cors.allow_origins` names an
//! origin (or `*`); each listener applies it unless `serve.cors` or
//! `tls.cors` is false. It must not read files or open sockets.

use std::sync::Arc;

use crate::serve::plan::cors::{self, Allow, Cors};
use crate::serve::plan::freshness::{self, CacheControl, Match, Rule};

use super::{defaults, duration, invalid, ConfigError, RawCacheControl, RawCors};

/// `[cors]` → the rules, `None` when no origin is allowed (CORS off).
pub(super) fn cors(raw: RawCors) -> Result<Option<Cors>, ConfigError> {
    let origins = raw.allow_origins.unwrap_or_default();
    let max_age = duration("cors.max_age", raw.max_age, defaults::CORS_MAX_AGE)?;
    let timing = raw
        .timing_allow_origin
        .unwrap_or(defaults::CORS_TIMING_ALLOW_ORIGIN);
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err(invalid(
                "cors.allow_origins",
                format!("{origins:?}"),
                "\"*\" allows every origin and must be the only entry",
            ));
        }
        Allow::Any
    } else {
        for o in &origins {
            cors::valid_origin(o)
                .map_err(|why| invalid("cors.allow_origins", format!("{o:?}"), why))?;
        }
        Allow::List(origins.into_iter().map(Arc::from).collect())
    };
    Ok(Some(Cors {
        allow,
        max_age: max_age.as_secs().to_string().into(),
        timing,
    }))
}

/// `[cache_control]` → the freshness rules. An empty value sends none.
pub(super) fn cache_control(raw: RawCacheControl) -> Result<CacheControl, ConfigError> {
    let value = |key: &'static str, text: String| -> Result<Option<Arc<str>>, ConfigError> {
        freshness::valid_value(&text).map_err(|why| invalid(key, format!("{text:?}"), why))?;
        Ok((!text.is_empty()).then(|| Arc::from(text)))
    };
    let default = value(
        "cache_control.default",
        raw.default
            .unwrap_or_else(|| defaults::CACHE_CONTROL_DEFAULT.to_owned()),
    )?;
    let playlists = value(
        "cache_control.playlists",
        raw.playlists
            .unwrap_or_else(|| defaults::CACHE_CONTROL_PLAYLISTS.to_owned()),
    )?;
    let mut rules = Vec::new();
    for r in raw.rules.unwrap_or_default() {
        let matches = match (r.prefix, r.media_type) {
            (Some(p), None) if p.starts_with('/') => Match::Prefix(p),
            (Some(p), None) => {
                return Err(invalid(
                    "cache_control.rules.prefix",
                    format!("{p:?}"),
                    "must start with / (a URL path prefix such as \"/titles/live/\")",
                ))
            }
            (None, Some(t)) if t.contains('/') && !t.contains(';') => Match::MediaType(t),
            (None, Some(t)) => {
                return Err(invalid(
                    "cache_control.rules.media_type",
                    format!("{t:?}"),
                    "must be a media type without parameters, such as \"video/mp4\"",
                ))
            }
            (p, t) => {
                return Err(invalid(
                    "cache_control.rules",
                    format!("prefix = {p:?}, media_type = {t:?}"),
                    "each rule needs exactly one of prefix and media_type",
                ))
            }
        };
        rules.push(Rule {
            matches,
            value: value("cache_control.rules.value", r.value)?,
        });
    }
    Ok(CacheControl {
        rules,
        playlists,
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{parse_toml, resolve, Config, Overrides};

    fn load(text: &str) -> Result<Config, String> {
        let overrides = Overrides {
            disks: vec!["/srv/d0".into()],
            ..Overrides::default()
        };
        resolve(parse_toml(text)?, &overrides).map_err(|e| e.to_string())
    }

    #[test]
    fn cors_is_off_by_default_and_one_key_turns_it_on() {
        let c = load("").expect("empty config");
        assert_eq!(c.cors, None);
        assert!(c.plain_cors);
        let c = load("[cors]\nallow_origins = [\"https://player.example\"]\n").expect("on");
        let cors = c.cors.expect("cors on");
        assert_eq!(&*cors.max_age, "7200");
        assert!(cors.timing);
        let c = load("[cors]\nallow_origins = [\"*\"]\nmax_age = \"10m\"\ntiming_allow_origin = false\n[serve]\ncors = false\n")
            .expect("any");
        assert_eq!(
            c.cors.map(|c| (c.allow, c.max_age, c.timing)),
            Some((crate::serve::plan::cors::Allow::Any, "600".into(), false))
        );
        assert!(!c.plain_cors);
    }

    #[test]
    fn bad_origins_name_the_key() {
        for (text, why) in [
            ("[\"*\", \"https://a.example\"]", "only entry"),
            ("[\"https://a.example/\"]", "no path"),
            ("[\"a.example\"]", "https://"),
            ("[\"https://A.example\"]", "lowercase"),
        ] {
            let e = load(&format!("[cors]\nallow_origins = {text}\n")).expect_err(text);
            assert!(
                e.contains("cors.allow_origins") && e.contains(why),
                "{text}: {e}"
            );
        }
        let e = load("[cors]\nmax_age = \"0s\"\n").expect_err("zero");
        assert!(e.contains("cors.max_age"), "{e}");
    }

    #[test]
    fn cache_control_defaults_rules_and_errors() {
        let c = load("").expect("defaults").cache_control;
        assert_eq!(
            c.default.as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(c.playlists.as_deref(), Some("public, max-age=2"));
        let c = load("[cache_control]\ndefault = \"\"\n[[cache_control.rules]]\nprefix = \"/live/\"\nvalue = \"no-cache\"\n[[cache_control.rules]]\nmedia_type = \"text/vtt\"\nvalue = \"public, max-age=60\"\n")
            .expect("rules")
            .cache_control;
        assert_eq!(c.default, None);
        assert_eq!(
            c.for_object("live/a.m4s", "video/iso.segment")
                .map(|v| &**v),
            Some("no-cache")
        );
        assert_eq!(
            c.for_object("a.vtt", "text/vtt").map(|v| &**v),
            Some("public, max-age=60")
        );
        for (text, key) in [
            (
                "[cache_control]\ndefault = \"a\\r\\nb\"\n",
                "cache_control.default",
            ),
            (
                "[[cache_control.rules]]\nprefix = \"live/\"\nvalue = \"x\"\n",
                "cache_control.rules.prefix",
            ),
            (
                "[[cache_control.rules]]\nmedia_type = \"mp4\"\nvalue = \"x\"\n",
                "cache_control.rules.media_type",
            ),
            (
                "[[cache_control.rules]]\nvalue = \"x\"\n",
                "cache_control.rules",
            ),
            (
                "[[cache_control.rules]]\nprefix = \"/a/\"\nmedia_type = \"a/b\"\nvalue = \"x\"\n",
                "cache_control.rules",
            ),
        ] {
            let e = load(text).expect_err(text);
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
