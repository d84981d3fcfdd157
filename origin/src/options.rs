//! What `eddy-origin serve` is told on its command line, checked.
//!
//! Owns: [`ServeOptions`] and the parsers of each flag's value (durations,
//! `HH:MM`, source URL bases, public URL; fault specs are [`crate::fault`]'s),
//! each failing with the reason. The binary's clap types call these parsers,
//! so a bad value is refused before anything is bound, with a message that
//! names the flag, the value and the reason (exit 64). It must never open a
//! file or a socket.

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
    fn durations_and_start_times() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("0s"), Ok(Duration::ZERO));
        assert!(parse_ttl("soon").is_err());
        assert_eq!(parse_fill_start("02:00"), Ok("02:00".to_owned()));
        assert!(parse_fill_start("2:00").is_err());
        assert!(parse_fill_start("24:00").is_err());
    }
}
