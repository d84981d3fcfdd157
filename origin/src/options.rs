//! What `eddy-origin serve` is told on its command line, checked.
//!
//! Owns: [`ServeOptions`] and the parsers of each flag's value (durations,
//! `HH:MM`, source URL bases, public URL, report tokens; fault specs are
//! [`crate::fault`]'s), each failing with the reason. The binary's clap types call these parsers,
//! so a bad value is refused before anything is bound, with a message that
//! names the flag, the value and the reason (exit 64); a report token is the
//! exception: its message names the appliance and never the token, and its
//! `Debug` hides it. It must never open a file or a socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::fault::FaultSpec;

/// The default lifetime of a manifest.
pub const DEFAULT_MANIFEST_TTL: &str = "24h";

/// Everything `serve` needs, already checked.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub content: PathBuf,
    pub key: PathBuf,
    pub catalogue: Option<PathBuf>,
    /// Without a trailing `/`; `None` = `http://{bound address}`.
    pub public_url: Option<String>,
    /// Source URL bases in order, each ending in `/`.
    pub sources: Vec<String>,
    pub manifest_ttl: Duration,
    pub fill_start: Option<String>,
    pub generation_start: Option<u64>,
    pub faults: Vec<FaultSpec>,
    /// The SQLite file; `None` = in memory (lost on restart).
    pub db: Option<PathBuf>,
    /// One per appliance that may post reports.
    pub report_tokens: Vec<ReportToken>,
}

/// The shortest report token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// `--report-token APPLIANCE=TOKEN`: the bearer token `APPLIANCE` posts
/// reports with. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ReportToken {
    pub appliance: String,
    token: String,
}

impl std::fmt::Debug for ReportToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReportToken({}=<redacted>)", self.appliance)
    }
}

impl ReportToken {
    /// A token for `appliance`, checked as `--report-token` checks it (for a
    /// caller that builds [`ServeOptions`] itself, such as the demo).
    pub fn new(appliance: &str, token: &str) -> Result<ReportToken, TokenFlagError> {
        let mut one = parse_report_tokens(&[format!("{appliance}={token}")])?;
        one.pop().ok_or(TokenFlagError::Shape { index: 1 })
    }

    /// The secret, for the comparison only.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// Why a `--report-token` value was refused. The message names the flag and
/// the appliance, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFlagError {
    #[error("--report-token (value {index}): not APPLIANCE=TOKEN")]
    Shape { index: usize },
    #[error("--report-token for appliance {appliance:?}: {reason}")]
    Appliance { appliance: String, reason: String },
    #[error(
        "--report-token for appliance {appliance:?}: the token has {len} characters; \
         a token is at least {MIN_TOKEN_LEN} visible ASCII characters"
    )]
    Short { appliance: String, len: usize },
    #[error(
        "--report-token for appliance {appliance:?}: the token has a character that is not \
         visible ASCII (0x21 to 0x7e)"
    )]
    NotVisible { appliance: String },
    #[error("--report-token for appliance {appliance:?}: given more than once")]
    Twice { appliance: String },
}

/// Parses every `--report-token` value, in order.
pub fn parse_report_tokens(values: &[String]) -> Result<Vec<ReportToken>, TokenFlagError> {
    let mut out: Vec<ReportToken> = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let (appliance, token) = value
            .split_once('=')
            .ok_or(TokenFlagError::Shape { index: i + 1 })?;
        crate::catalogue::check_appliance_id(appliance).map_err(|reason| {
            TokenFlagError::Appliance {
                appliance: appliance.to_owned(),
                reason,
            }
        })?;
        let appliance = appliance.to_owned();
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenFlagError::NotVisible { appliance });
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenFlagError::Short {
                appliance,
                len: token.len(),
            });
        }
        if out.iter().any(|t| t.appliance == appliance) {
            return Err(TokenFlagError::Twice { appliance });
        }
        out.push(ReportToken {
            appliance,
            token: token.to_owned(),
        });
    }
    Ok(out)
}

/// Parses a humantime duration (`24h`, `90s`, `0s`).
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// Checks `HH:MM`.
pub fn parse_fill_start(text: &str) -> Result<String, String> {
    match eddy_proto::manifest::parse_hhmm(text) {
        Some(_) => Ok(text.to_owned()),
        None => Err("not HH:MM between 00:00 and 23:59".to_owned()),
    }
}

/// Checks a `--source` URL base and makes it end in `/`.
pub fn parse_source(text: &str) -> Result<String, String> {
    let base = http_url(text)?;
    Ok(if base.ends_with('/') {
        base
    } else {
        format!("{base}/")
    })
}

/// Checks a `--public-url` and drops any trailing `/`.
pub fn parse_public_url(text: &str) -> Result<String, String> {
    Ok(http_url(text)?.trim_end_matches('/').to_owned())
}

fn http_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or("not an http:// or https:// URL")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the URL has no host".to_owned());
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains whitespace or a control character".to_owned());
    }
    if text.contains(['?', '#']) {
        return Err("a URL base cannot have a query or fragment".to_owned());
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_end_in_a_slash_and_public_urls_do_not() {
        assert_eq!(
            parse_source("http://127.0.0.1:8080/content"),
            Ok("http://127.0.0.1:8080/content/".to_owned())
        );
        assert_eq!(
            parse_source("https://o.example/"),
            Ok("https://o.example/".to_owned())
        );
        assert!(parse_source("ftp://x/").is_err());
        assert!(parse_source("http:///x").is_err());
        assert!(parse_source("http://a/b?c").is_err());
        assert_eq!(
            parse_public_url("http://o.example:9/"),
            Ok("http://o.example:9".to_owned())
        );
    }

    #[test]
    fn report_tokens_name_the_appliance_and_never_the_token() {
        let ok = parse_report_tokens(&[
            "oca-1=0123456789abcdef".to_owned(),
            "oca-2=!~visible~ascii~only~".to_owned(),
        ]);
        let ok = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok[0].appliance, "oca-1");
        assert_eq!(ok[0].token(), "0123456789abcdef");
        assert!(!format!("{ok:?}").contains("0123456789"), "{ok:?}");
        // An `=` inside the token is the token's.
        let eq = parse_report_tokens(&["a=b=cdefghijklmnopq".to_owned()]);
        assert_eq!(
            eq.map(|t| t[0].token().to_owned()),
            Ok("b=cdefghijklmnopq".to_owned())
        );

        for (value, needle) in [
            ("oca-1=short-secret", "oca-1"),
            ("oca-1=with space secret token", "visible ASCII"),
            ("oca-1=tab\tsecret-token-long", "visible ASCII"),
            ("oca-1=ünicode-secret-token", "visible ASCII"),
            ("bad id!=0123456789abcdef-secret", "bad id!"),
            ("=0123456789abcdef-secret", "--report-token"),
            ("no-equals-secret-token", "not APPLIANCE=TOKEN"),
        ] {
            let e = match parse_report_tokens(&[value.to_owned()]) {
                Ok(t) => panic!("{value:?} accepted: {t:?}"),
                Err(e) => e.to_string(),
            };
            assert!(e.starts_with("--report-token"), "{e}");
            assert!(e.contains(needle), "{value:?}: {e}");
            assert!(!e.contains("secret"), "{value:?} leaks the token: {e}");
        }
        let twice = parse_report_tokens(&[
            "oca-1=0123456789abcdef".to_owned(),
            "oca-1=fedcba9876543210".to_owned(),
        ]);
        assert_eq!(
            twice.map_err(|e| e.to_string()),
            Err("--report-token for appliance \"oca-1\": given more than once".to_owned())
        );
    }

    #[test]
    fn durations_and_start_times() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("0s"), Ok(Duration::ZERO));
        assert!(parse_ttl("soon").is_err());
        assert_eq!(parse_fill_start("02:00"), Ok("02:00".to_owned()));
        assert!(parse_fill_start("2:00").is_err());
        assert!(parse_fill_start("24:00").is_err());
    }
}
