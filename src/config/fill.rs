//! The `[fill]` section: how the appliance fills itself from a control plane.
//!
//! Owns: turning [`RawFill`] plus the `--fill-*` flags into a checked
//! [`Fill`]; every error names the key, the value and the reason. The fill is
//! on when `fill.manifest_url` (or `--fill-manifest`) is set, and then needs
//! at least one control-plane key. Plain `http://` for the manifest is
//! refused unless `fill.insecure_plain_http` says so (tests, the demo);
//! sources may be plain http, since every byte is checked against the
//! signed manifest's SHA-256. It must not read files or open sockets (the
//! CA bundle is read when the fill starts).

use std::path::PathBuf;
use std::time::Duration;

use eddy_fill::window::Window;
use eddy_proto::wire::VerifyKey;

use super::{
    appliance_id, control_plane_url, count, defaults, duration, invalid, ConfigError, Overrides,
    RawFill,
};

/// The checked fill settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    pub manifest_url: String,
    pub appliance: String,
    pub keys: Vec<VerifyKey>,
    pub window: Window,
    pub poll_interval: Duration,
    pub parallel: usize,
    /// 0 = no cap.
    pub max_rate_mbps: u64,
    pub reserve_bytes: u64,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub retry_rounds: u32,
    pub ca_file: PathBuf,
    pub insecure_plain_http: bool,
    /// Bytes; `None` = sized from the rate cap.
    pub recv_buffer: Option<u32>,
}

/// Checks the section; `None` when the fill is off.
pub fn resolve(raw: RawFill, o: &Overrides) -> Result<Option<Fill>, ConfigError> {
    let Some(url) = o.fill_manifest.clone().or(raw.manifest_url) else {
        return Ok(None);
    };
    let insecure = o.fill_insecure_plain_http || raw.insecure_plain_http.unwrap_or(false);
    control_plane_url(
        "fill.manifest_url",
        &url,
        insecure,
        "fill.insecure_plain_http = true (--fill-insecure-plain-http)",
    )?;
    let key_texts = if o.fill_keys.is_empty() {
        raw.keys.unwrap_or_default()
    } else {
        o.fill_keys.clone()
    };
    if key_texts.is_empty() {
        return Err(invalid(
            "fill.keys",
            "[]",
            "at least one control-plane public key (`ed25519:…`, from `eddy-origin keygen`) is required to check manifests",
        ));
    }
    let mut keys = Vec::new();
    for k in &key_texts {
        keys.push(
            VerifyKey::parse(k)
                .map_err(|e| invalid("fill.keys", format!("{k:?}"), e.to_string()))?,
        );
    }
    let appliance = appliance_id("fill.appliance", o.fill_appliance.clone().or(raw.appliance))?;
    let window_text = o
        .fill_window
        .clone()
        .or(raw.window)
        .unwrap_or_else(|| defaults::FILL_WINDOW.to_owned());
    let window = Window::parse(&window_text)
        .map_err(|e| invalid("fill.window", format!("{window_text:?}"), e.to_string()))?;
    let poll_interval = duration(
        "fill.poll_interval",
        o.fill_poll.clone().or(raw.poll_interval),
        defaults::FILL_POLL,
    )?;
    let parallel = count(
        "fill.parallel",
        raw.parallel,
        defaults::FILL_PARALLEL,
        1,
        64,
    )?;
    let max_rate_mbps = count(
        "fill.max_rate_mbps",
        o.fill_max_rate_mbps.or(raw.max_rate_mbps),
        defaults::FILL_MAX_RATE_MBPS as usize,
        0,
        1_000_000,
    )? as u64;
    let reserve_mib = count(
        "fill.reserve_mib",
        raw.reserve_mib,
        defaults::FILL_RESERVE_MIB as usize,
        0,
        1 << 30,
    )? as u64;
    let connect_timeout = duration(
        "fill.connect_timeout",
        raw.connect_timeout,
        defaults::FILL_CONNECT_TIMEOUT,
    )?;
    let idle_timeout = duration(
        "fill.idle_timeout",
        raw.idle_timeout,
        defaults::FILL_IDLE_TIMEOUT,
    )?;
    let retry_base = duration("fill.retry_base", raw.retry_base, defaults::FILL_RETRY_BASE)?;
    let retry_max = duration("fill.retry_max", raw.retry_max, defaults::FILL_RETRY_MAX)?;
    if retry_max < retry_base {
        return Err(invalid(
            "fill.retry_max",
            format!("{retry_max:?}"),
            format!("must not be shorter than fill.retry_base ({retry_base:?})"),
        ));
    }
    let retry_rounds = count(
        "fill.retry_rounds",
        raw.retry_rounds,
        defaults::FILL_RETRY_ROUNDS,
        1,
        100,
    )? as u32;
    let recv_kib = count("fill.recv_buffer_kib", raw.recv_buffer_kib, 0, 0, 65_536)?;
    let recv_buffer = (recv_kib > 0).then_some((recv_kib as u32) << 10);
    let ca_file = raw
        .ca_file
        .unwrap_or_else(|| PathBuf::from(defaults::FILL_CA_FILE));
    Ok(Some(Fill {
        manifest_url: url,
        appliance,
        keys,
        window,
        poll_interval,
        parallel,
        max_rate_mbps,
        reserve_bytes: reserve_mib << 20,
        connect_timeout,
        idle_timeout,
        retry_base,
        retry_max,
        retry_rounds,
        ca_file,
        insecure_plain_http: insecure,
        recv_buffer,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ed25519:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg";

    fn raw(url: &str) -> RawFill {
        RawFill {
            manifest_url: Some(url.into()),
            keys: Some(vec![KEY.into()]),
            appliance: Some("oca-1".into()),
            ..RawFill::default()
        }
    }

    fn key_of(r: Result<Option<Fill>, ConfigError>) -> &'static str {
        match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            Err(_) => "other error",
            Ok(_) => "ok",
        }
    }

    #[test]
    fn off_without_a_url_and_defaults_with_one() -> Result<(), ConfigError> {
        assert_eq!(resolve(RawFill::default(), &Overrides::default())?, None);
        let f = resolve(
            raw("https://cp.example/v1/manifest/oca-1"),
            &Overrides::default(),
        )?
        .ok_or_else(|| invalid("fill", "", "expected a fill"))?;
        assert_eq!(
            f.window,
            Window::parse(defaults::FILL_WINDOW).unwrap_or(Window::Always)
        );
        assert_eq!(f.max_rate_mbps, 1200);
        assert_eq!(f.reserve_bytes, 1 << 30);
        Ok(())
    }

    #[test]
    fn errors_name_the_key() {
        let o = Overrides::default();
        assert_eq!(
            key_of(resolve(raw("http://cp/v1/manifest/x"), &o)),
            "fill.manifest_url"
        );
        assert_eq!(key_of(resolve(raw("ftp://cp/x"), &o)), "fill.manifest_url");
        let mut r = raw("https://cp/x");
        r.keys = Some(vec![]);
        assert_eq!(key_of(resolve(r, &o)), "fill.keys");
        let mut r = raw("https://cp/x");
        r.keys = Some(vec!["ed25519:short".into()]);
        assert_eq!(key_of(resolve(r, &o)), "fill.keys");
        let mut r = raw("https://cp/x");
        r.window = Some("2-14".into());
        assert_eq!(key_of(resolve(r, &o)), "fill.window");
        let mut r = raw("https://cp/x");
        r.appliance = Some("a b".into());
        assert_eq!(key_of(resolve(r, &o)), "fill.appliance");
        let mut r = raw("https://cp/x");
        r.retry_base = Some("10s".into());
        r.retry_max = Some("1s".into());
        assert_eq!(key_of(resolve(r, &o)), "fill.retry_max");
    }

    #[test]
    fn flags_alone_turn_it_on() -> Result<(), ConfigError> {
        let o = Overrides {
            fill_manifest: Some("http://127.0.0.1:1/v1/manifest/oca-1".into()),
            fill_keys: vec![KEY.into()],
            fill_window: Some("always".into()),
            fill_appliance: Some("oca-1".into()),
            fill_insecure_plain_http: true,
            ..Overrides::default()
        };
        let f = resolve(RawFill::default(), &o)?
            .ok_or_else(|| invalid("fill", "", "expected a fill"))?;
        assert_eq!(f.window, Window::Always);
        assert!(f.insecure_plain_http);
        Ok(())
    }
}
