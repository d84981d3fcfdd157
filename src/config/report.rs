//! The `[report]` section: reports to the control plane (health, popularity,
//! inventory).
//!
//! Owns: turning [`RawReport`] plus `--report-url` into a checked [`Report`];
//! every error names the key, the value and the reason (never a token's
//! value). Reporting is on when `report.url` is set, and then needs a token
//! (`report.token`, or `EDDY_REPORT_TOKEN` to keep it out of the file).
//! Plain `http://` is refused unless `report.insecure_plain_http`. It must
//! not read files or open sockets.

use std::path::PathBuf;
use std::time::Duration;

use super::{
    appliance_id, control_plane_url, count, defaults, duration, invalid, secret, ConfigError, Fill,
    Overrides, RawReport,
};

/// The checked report settings.
#[derive(Clone, PartialEq, Eq)]
pub struct Report {
    /// Where reports are posted, e.g. `https://cp.example/v1/report/oca-1`.
    pub url: String,
    pub appliance: String,
    /// The bearer token (never printed: `Debug` hides it).
    pub token: String,
    pub health_interval: Duration,
    pub popularity_interval: Duration,
    pub inventory_interval: Duration,
    pub buffer: usize,
    pub ca_file: PathBuf,
    pub insecure_plain_http: bool,
}

impl std::fmt::Debug for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Report")
            .field("url", &self.url)
            .field("appliance", &self.appliance)
            .field("token", &"<hidden>")
            .field("health_interval", &self.health_interval)
            .finish_non_exhaustive()
    }
}

/// Checks the section; `None` when reporting is off.
pub fn resolve(
    raw: RawReport,
    o: &Overrides,
    fill: Option<&Fill>,
) -> Result<Option<Report>, ConfigError> {
    let Some(url) = o.report_url.clone().or(raw.url) else {
        return Ok(None);
    };
    let insecure = o.report_insecure_plain_http || raw.insecure_plain_http.unwrap_or(false);
    control_plane_url(
        "report.url",
        &url,
        insecure,
        "report.insecure_plain_http = true (--report-insecure-plain-http)",
    )?;
    let token = o
        .report_token
        .clone()
        .or_else(|| std::env::var("EDDY_REPORT_TOKEN").ok())
        .or(raw.token);
    let token = match token {
        Some(t) => secret("report.token", t, defaults::REPORT_TOKEN_MIN_BYTES)?,
        None => {
            return Err(invalid(
                "report.token",
                "(none)",
                "a token is required with report.url (or set EDDY_REPORT_TOKEN)",
            ))
        }
    };
    // The fill's id unless said otherwise, so both talk of one appliance.
    let appliance = appliance_id(
        "report.appliance",
        raw.appliance.or_else(|| fill.map(|f| f.appliance.clone())),
    )?;
    Ok(Some(Report {
        url,
        appliance,
        token,
        health_interval: duration(
            "report.health_interval",
            raw.health_interval,
            defaults::REPORT_HEALTH_INTERVAL,
        )?,
        popularity_interval: duration(
            "report.popularity_interval",
            raw.popularity_interval,
            defaults::REPORT_POPULARITY_INTERVAL,
        )?,
        inventory_interval: duration(
            "report.inventory_interval",
            raw.inventory_interval,
            defaults::REPORT_INVENTORY_INTERVAL,
        )?,
        buffer: count(
            "report.buffer",
            raw.buffer,
            defaults::REPORT_BUFFER,
            1,
            100_000,
        )?,
        ca_file: raw
            .ca_file
            .unwrap_or_else(|| PathBuf::from(defaults::FILL_CA_FILE)),
        insecure_plain_http: insecure,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(r: Result<Option<Report>, ConfigError>) -> &'static str {
        match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(_) => "other",
            Ok(_) => "ok",
        }
    }

    #[test]
    fn off_without_a_url_and_errors_name_the_key() {
        let o = Overrides::default();
        assert!(matches!(resolve(RawReport::default(), &o, None), Ok(None)));
        let raw = |url: &str, token: Option<&str>| RawReport {
            url: Some(url.into()),
            token: token.map(str::to_owned),
            appliance: Some("oca-1".into()),
            ..RawReport::default()
        };
        assert_eq!(
            key_of(resolve(
                raw("http://cp/r", Some("0123456789abcdef0")),
                &o,
                None
            )),
            "report.url"
        );
        assert_eq!(
            key_of(resolve(raw("https://cp/r", Some("short")), &o, None)),
            "report.token"
        );
        assert_eq!(
            key_of(resolve(
                raw("https://cp/r", Some("0123456789abcdef0")),
                &o,
                None
            )),
            "ok"
        );
        let mut r = raw("https://cp/r", Some("0123456789abcdef0"));
        r.health_interval = Some("0s".into());
        assert_eq!(key_of(resolve(r, &o, None)), "report.health_interval");
    }

    #[test]
    fn the_token_never_shows_in_debug() -> Result<(), ConfigError> {
        let raw = RawReport {
            url: Some("https://cp/r".into()),
            token: Some("super-secret-token-value".into()),
            appliance: Some("oca-1".into()),
            ..RawReport::default()
        };
        let r = resolve(raw, &Overrides::default(), None)?
            .ok_or_else(|| invalid("report", "", "expected"))?;
        assert!(!format!("{r:?}").contains("super-secret"));
        Ok(())
    }
}
