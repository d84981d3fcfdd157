//! Configuration: the TOML file, command-line overrides, and validation.
//!
//! Owns: [`RawConfig`] (the file as written; unknown keys are errors) and its
//! conversion into the typed [`Config`] that the rest of eddy reads. Every error
//! names the key, the value and the reason, and all of them are found before any
//! socket is bound. Defaults come from [`defaults`] only. It must not open
//! sockets or disks: checking that a disk exists belongs to the store.

pub mod defaults;
mod fill;
mod players;
mod report;

pub use fill::Fill;
pub use report::Report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Errors found while reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key} = {value}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

pub(crate) fn invalid(
    key: &'static str,
    value: impl std::fmt::Display,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// The file as written. Every field is optional; absent means the default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub serve: RawServe,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub tokens: RawTokens,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub http2: RawHttp2,
    #[serde(default)]
    pub fill: RawFill,
    #[serde(default)]
    pub report: RawReport,
    #[serde(default)]
    pub cors: RawCors,
    #[serde(default)]
    pub cache_control: RawCacheControl,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    pub allow_origins: Option<Vec<String>>,
    pub max_age: Option<String>,
    pub timing_allow_origin: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheControl {
    pub default: Option<String>,
    pub playlists: Option<String>,
    pub rules: Option<Vec<RawCacheRule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheRule {
    pub prefix: Option<String>,
    pub media_type: Option<String>,
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub url: Option<String>,
    pub appliance: Option<String>,
    pub token: Option<String>,
    pub health_interval: Option<String>,
    pub popularity_interval: Option<String>,
    pub inventory_interval: Option<String>,
    pub buffer: Option<i64>,
    pub ca_file: Option<PathBuf>,
    pub insecure_plain_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFill {
    pub manifest_url: Option<String>,
    pub appliance: Option<String>,
    pub keys: Option<Vec<String>>,
    pub window: Option<String>,
    pub poll_interval: Option<String>,
    pub parallel: Option<i64>,
    pub max_rate_mbps: Option<i64>,
    pub reserve_mib: Option<i64>,
    pub connect_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub retry_base: Option<String>,
    pub retry_max: Option<String>,
    pub retry_rounds: Option<i64>,
    pub ca_file: Option<PathBuf>,
    pub insecure_plain_http: Option<bool>,
    pub recv_buffer_kib: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: Option<Vec<String>>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub require_tokens: Option<bool>,
    pub cors: Option<bool>,
    pub ktls: Option<String>,
    pub reload_check: Option<String>,
    pub frame_bytes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp2 {
    pub max_concurrent_streams: Option<i64>,
    pub max_header_list_bytes: Option<i64>,
    pub max_pending_resets: Option<i64>,
    pub max_client_resets: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    pub keys: Option<Vec<RawKey>>,
    pub expiry_param: Option<String>,
    pub token_param: Option<String>,
}

/// One signing key as written. `Debug` is derived on purpose only for the
/// raw form's id; the secret is moved into a `SigningKey` whose `Debug` hides it.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub id: String,
    pub secret_hex: String,
}

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServe {
    pub listen: Option<Vec<String>>,
    pub require_tokens: Option<bool>,
    pub cors: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub disks: Option<Vec<PathBuf>>,
    pub open_file_cache: Option<i64>,
    pub open_file_valid: Option<String>,
    pub fsck_mib_per_sec: Option<i64>,
    pub failed_redirect: Option<String>,
    pub read_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_head_bytes: Option<i64>,
    pub max_target_bytes: Option<i64>,
    pub max_headers: Option<i64>,
    pub max_ranges: Option<i64>,
    pub max_range_sum_percent: Option<i64>,
    pub max_connections: Option<i64>,
    pub max_refusals: Option<i64>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub max_pipeline_depth: Option<i64>,
    pub max_discard_body_bytes: Option<i64>,
    pub linger_timeout: Option<String>,
    pub drain_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
    pub access: Option<String>,
    pub access_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
}

/// Values given on the command line; each replaces the config file's.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Vec<String>,
    pub disks: Vec<PathBuf>,
    /// `--admin-listen`: an address, or `off` / empty to disable.
    pub admin_listen: Option<String>,
    /// `--fill-manifest`, `--fill-key`, `--fill-window`, `--fill-appliance`,
    /// `--fill-insecure-plain-http`, `--fill-max-rate-mbps`, `--fill-poll`.
    pub fill_manifest: Option<String>,
    pub fill_keys: Vec<String>,
    pub fill_window: Option<String>,
    pub fill_appliance: Option<String>,
    pub fill_insecure_plain_http: bool,
    pub fill_max_rate_mbps: Option<i64>,
    pub fill_poll: Option<String>,
    /// `--report-url`, `--report-insecure-plain-http`.
    pub report_url: Option<String>,
    pub report_insecure_plain_http: bool,
    /// Set by `eddy demo` only.
    pub report_token: Option<String>,
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Plain HTTP/1.1 listeners.
    pub listen: Vec<SocketAddr>,
    /// Signed URLs required on the plain listeners.
    pub require_tokens: bool,
    /// The `[cors]` rules apply on the plain listeners (`serve.cors`).
    pub plain_cors: bool,
    /// The CORS rules; `None` = off (no `cors.allow_origins`).
    pub cors: Option<crate::serve::plan::cors::Cors>,
    /// The Cache-Control rules.
    pub cache_control: crate::serve::plan::freshness::CacheControl,
    /// The TLS listeners, when `tls.listen` names any.
    pub tls: Option<Tls>,
    pub http2: Http2Limits,
    pub disks: Vec<PathBuf>,
    /// Objects kept open between requests (0 = off).
    pub open_file_cache: usize,
    /// How long an opened object is served before it is reopened.
    pub open_file_valid: Duration,
    /// The background integrity check's read rate per drive, MiB/s (0 = off).
    pub fsck_mib_per_sec: u64,
    /// Where requests for objects on a failed drive are redirected (302);
    /// `None`: they are 404s.
    pub failed_redirect: Option<String>,
    /// A cold read that takes longer fails its drive.
    pub read_timeout: Duration,
    pub limits: Limits,
    pub log_level: String,
    /// Log lines as text (for a terminal or journald) or JSON (for a log pipeline).
    pub log_json: bool,
    /// The access log: where, and how much (`None` = off).
    pub access_log: Option<(PathBuf, crate::access_log::Sampling)>,
    pub tokens: Tokens,
    /// The admin listener (`/metrics`, `/healthz`, status page); `None` = off.
    pub admin_listen: Option<SocketAddr>,
    /// The bearer token of the admin listener's mutating endpoints (`POST
    /// /fill/now`); `None` = those endpoints are refused.
    pub admin_token: Option<String>,
    /// The fill from a control plane; `None` = off (content by `store import`).
    pub fill: Option<Fill>,
    /// Reports to the control plane; `None` = off.
    pub report: Option<Report>,
}

/// Signed-URL settings shared by every listener (each listener says whether it
/// requires them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tokens {
    /// Verification keys; the first one signs (`eddy token sign`).
    pub keys: Vec<eddy_proto::token::SigningKey>,
    /// The query parameter names.
    pub names: eddy_proto::token::ParamNames,
}

/// Whether to hand TLS records to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtlsSetting {
    /// Use kernel TLS where the kernel offers it; userspace rustls otherwise.
    Auto,
    /// Always userspace rustls.
    Off,
}

/// The TLS listener settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    pub require_tokens: bool,
    /// The `[cors]` rules apply on the TLS listeners (`tls.cors`).
    pub cors: bool,
    pub ktls: KtlsSetting,
    /// How often the cert and key files are checked for a change.
    pub reload_check: Duration,
    /// Body chunk size handed to the TLS transport.
    pub frame_bytes: usize,
}

/// HTTP/2 limits (TLS listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Limits {
    pub max_concurrent_streams: u32,
    pub max_header_list_bytes: u32,
    pub max_pending_resets: usize,
    pub max_client_resets: u32,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Http2Limits {
            max_concurrent_streams: defaults::H2_MAX_CONCURRENT_STREAMS,
            max_header_list_bytes: defaults::H2_MAX_HEADER_LIST_BYTES,
            max_pending_resets: defaults::H2_MAX_PENDING_RESETS,
            max_client_resets: defaults::H2_MAX_CLIENT_RESETS,
        }
    }
}

/// Every limit of the serve path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_target_bytes: usize,
    pub max_headers: usize,
    pub max_ranges: usize,
    pub max_range_sum_percent: u32,
    pub max_connections: usize,
    /// Connections over `max_connections` being answered 503 at once; more
    /// are closed at once.
    pub max_refusals: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub max_pipeline_depth: usize,
    pub max_discard_body_bytes: u64,
    pub linger_timeout: Duration,
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: defaults::MAX_HEAD_BYTES,
            max_target_bytes: defaults::MAX_TARGET_BYTES,
            max_headers: defaults::MAX_HEADERS,
            max_ranges: defaults::MAX_RANGES,
            max_range_sum_percent: defaults::MAX_RANGE_SUM_PERCENT,
            max_connections: defaults::MAX_CONNECTIONS,
            max_refusals: defaults::MAX_REFUSALS,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            send_timeout: defaults::SEND_TIMEOUT,
            max_pipeline_depth: defaults::MAX_PIPELINE_DEPTH,
            max_discard_body_bytes: defaults::MAX_DISCARD_BODY_BYTES,
            linger_timeout: defaults::LINGER_TIMEOUT,
            drain_timeout: defaults::DRAIN_TIMEOUT,
        }
    }
}

/// Reads `path` (if any), applies the overrides and checks everything.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let raw = match path {
        Some(path) => read_raw(path)?,
        None => RawConfig::default(),
    };
    resolve(raw, overrides)
}

/// Reads and parses `path` (unknown keys anywhere are errors).
fn read_raw(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Reads only what signing needs: the `[tokens]` section of `path` (the whole
/// file is still parsed, so unknown keys anywhere are still errors).
pub fn load_tokens(path: &Path) -> Result<Tokens, ConfigError> {
    tokens(read_raw(path)?.tokens)
}

/// Parses TOML text into a [`RawConfig`]; the message names the key and line.
pub fn parse_toml(text: &str) -> Result<RawConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
}

/// Turns the raw file plus overrides into a checked [`Config`].
pub fn resolve(raw: RawConfig, overrides: &Overrides) -> Result<Config, ConfigError> {
    let listen_text = if overrides.listen.is_empty() {
        raw.serve
            .listen
            .unwrap_or_else(|| vec![defaults::LISTEN.to_owned()])
    } else {
        overrides.listen.clone()
    };
    if listen_text.is_empty() {
        return Err(invalid(
            "serve.listen",
            "[]",
            "at least one listen address is required",
        ));
    }
    let listen = addresses("serve.listen", &listen_text, &[])?;

    let open_file_cache = count(
        "store.open_file_cache",
        raw.store.open_file_cache,
        defaults::OPEN_FILE_CACHE,
        0,
        1_000_000,
    )?;
    let open_file_valid = duration(
        "store.open_file_valid",
        raw.store.open_file_valid,
        defaults::OPEN_FILE_VALID,
    )?;
    let fsck_mib_per_sec = count(
        "store.fsck_mib_per_sec",
        raw.store.fsck_mib_per_sec,
        defaults::FSCK_MIB_PER_SEC,
        0,
        10_000,
    )? as u64;
    let read_timeout = duration(
        "store.read_timeout",
        raw.store.read_timeout,
        defaults::DISK_READ_DEADLINE,
    )?;
    if read_timeout.is_zero() {
        return Err(invalid(
            "store.read_timeout",
            "0s",
            "must be more than zero",
        ));
    }
    let failed_redirect = match raw.store.failed_redirect {
        None => None,
        Some(url) => {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            let clean = !url.bytes().any(|b| b.is_ascii_control() || b == b' ');
            let has_host = url
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
            if !(scheme_ok && clean && has_host && !url.contains(['?', '#'])) {
                return Err(invalid(
                    "store.failed_redirect",
                    format!("{url:?}"),
                    "must be an http:// or https:// URL with a host, no query, no spaces",
                ));
            }
            Some(url)
        }
    };
    let disks = if overrides.disks.is_empty() {
        raw.store.disks.unwrap_or_default()
    } else {
        overrides.disks.clone()
    };
    if disks.is_empty() {
        return Err(invalid(
            "store.disks",
            "[]",
            "at least one disk root is required (config store.disks or --disk DIR)",
        ));
    }
    for (i, d) in disks.iter().enumerate() {
        if d.as_os_str().is_empty() {
            return Err(invalid(
                "store.disks",
                "\"\"",
                "a disk root may not be empty",
            ));
        }
        if disks[..i].contains(d) {
            return Err(invalid(
                "store.disks",
                format!("{:?}", d.display().to_string()),
                "listed twice",
            ));
        }
        if d.to_str().is_none() {
            return Err(invalid(
                "store.disks",
                d.display(),
                "the path must be UTF-8",
            ));
        }
    }

    let l = raw.limits;
    let d = Limits::default();
    let limits = Limits {
        max_head_bytes: count(
            "limits.max_head_bytes",
            l.max_head_bytes,
            d.max_head_bytes,
            1024,
            1 << 20,
        )?,
        max_target_bytes: count(
            "limits.max_target_bytes",
            l.max_target_bytes,
            d.max_target_bytes,
            256,
            1 << 20,
        )?,
        max_headers: count("limits.max_headers", l.max_headers, d.max_headers, 8, 1024)?,
        max_ranges: count("limits.max_ranges", l.max_ranges, d.max_ranges, 1, 1024)?,
        max_range_sum_percent: count(
            "limits.max_range_sum_percent",
            l.max_range_sum_percent,
            d.max_range_sum_percent as usize,
            1,
            1000,
        )? as u32,
        max_connections: count(
            "limits.max_connections",
            l.max_connections,
            d.max_connections,
            1,
            10_000_000,
        )?,
        max_refusals: count(
            "limits.max_refusals",
            l.max_refusals,
            d.max_refusals,
            0,
            1_000_000,
        )?,
        header_read_timeout: duration(
            "limits.header_read_timeout",
            l.header_read_timeout,
            d.header_read_timeout,
        )?,
        idle_timeout: duration("limits.idle_timeout", l.idle_timeout, d.idle_timeout)?,
        send_timeout: duration("limits.send_timeout", l.send_timeout, d.send_timeout)?,
        max_pipeline_depth: count(
            "limits.max_pipeline_depth",
            l.max_pipeline_depth,
            d.max_pipeline_depth,
            1,
            1024,
        )?,
        max_discard_body_bytes: count(
            "limits.max_discard_body_bytes",
            l.max_discard_body_bytes,
            d.max_discard_body_bytes as usize,
            0,
            1 << 30,
        )? as u64,
        linger_timeout: duration("limits.linger_timeout", l.linger_timeout, d.linger_timeout)?,
        drain_timeout: duration("limits.drain_timeout", l.drain_timeout, d.drain_timeout)?,
    };
    if limits.max_target_bytes > limits.max_head_bytes {
        return Err(invalid(
            "limits.max_target_bytes",
            limits.max_target_bytes,
            format!(
                "must not exceed limits.max_head_bytes ({})",
                limits.max_head_bytes
            ),
        ));
    }

    let log_level = raw
        .log
        .level
        .unwrap_or_else(|| defaults::LOG_LEVEL.to_owned());
    if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
        return Err(invalid(
            "log.level",
            format!("{log_level:?}"),
            "must be one of error, warn, info, debug, trace",
        ));
    }
    let log_json = match raw.log.format.as_deref().unwrap_or(defaults::LOG_FORMAT) {
        "text" => false,
        "json" => true,
        other => {
            return Err(invalid(
                "log.format",
                format!("{other:?}"),
                "must be \"text\" or \"json\"",
            ))
        }
    };
    let access_log = access_log(raw.log.access, raw.log.access_file)?;
    let tokens = tokens(raw.tokens)?;
    let require_tokens = raw
        .serve
        .require_tokens
        .unwrap_or(defaults::PLAIN_REQUIRE_TOKENS);
    needs_keys("serve.require_tokens", require_tokens, &tokens)?;
    let plain_cors = raw.serve.cors.unwrap_or(defaults::LISTENER_CORS);
    let cors = players::cors(raw.cors)?;
    let cache_control = players::cache_control(raw.cache_control)?;
    let tls = tls(raw.tls, &listen, &tokens)?;
    let h = raw.http2;
    let hd = Http2Limits::default();
    let http2 = Http2Limits {
        max_concurrent_streams: count(
            "http2.max_concurrent_streams",
            h.max_concurrent_streams,
            hd.max_concurrent_streams as usize,
            1,
            10_000,
        )? as u32,
        max_header_list_bytes: count(
            "http2.max_header_list_bytes",
            h.max_header_list_bytes,
            hd.max_header_list_bytes as usize,
            1024,
            1 << 20,
        )? as u32,
        max_pending_resets: count(
            "http2.max_pending_resets",
            h.max_pending_resets,
            hd.max_pending_resets,
            1,
            100_000,
        )?,
        max_client_resets: count(
            "http2.max_client_resets",
            h.max_client_resets,
            hd.max_client_resets as usize,
            1,
            1_000_000,
        )? as u32,
    };
    let mut serving = listen.clone();
    if let Some(t) = &tls {
        serving.extend(&t.listen);
    }
    let admin_listen = admin_listen(
        overrides.admin_listen.clone().or(raw.admin.listen),
        &serving,
    )?;
    let admin_token = admin_token(raw.admin.token)?;
    let fill = fill::resolve(raw.fill, overrides)?;
    let report = report::resolve(raw.report, overrides, fill.as_ref())?;
    Ok(Config {
        listen,
        require_tokens,
        plain_cors,
        cors,
        cache_control,
        tls,
        http2,
        disks,
        open_file_cache,
        open_file_valid,
        fsck_mib_per_sec,
        failed_redirect,
        read_timeout,
        limits,
        log_level,
        log_json,
        access_log,
        tokens,
        admin_listen,
        admin_token,
        fill,
        report,
    })
}

/// `log.access`: `off`, `full` or `1/N`; a file is needed unless off.
fn access_log(
    mode: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<(PathBuf, crate::access_log::Sampling)>, ConfigError> {
    use crate::access_log::Sampling;
    let mode = mode.unwrap_or_else(|| defaults::ACCESS_LOG.to_owned());
    let sampling = match mode.as_str() {
        "off" => return Ok(None),
        "full" => Sampling::Full,
        other => match other.strip_prefix("1/").and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if (1..=1_000_000).contains(&n) => Sampling::OneIn(n),
            _ => {
                return Err(invalid(
                    "log.access",
                    format!("{other:?}"),
                    "must be \"off\", \"full\" or \"1/N\" (one request in N, N up to 1000000)",
                ))
            }
        },
    };
    match file {
        Some(f) if !f.as_os_str().is_empty() => Ok(Some((f, sampling))),
        _ => Err(invalid(
            "log.access_file",
            "(none)",
            "a file is required when log.access is on",
        )),
    }
}

/// The admin token: from `admin.token`, or the environment variable
/// `EDDY_ADMIN_TOKEN` (which keeps it out of a file), at least
/// [`defaults::ADMIN_TOKEN_MIN_BYTES`] long.
fn admin_token(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    std::env::var("EDDY_ADMIN_TOKEN")
        .ok()
        .or(raw)
        .map(|t| secret("admin.token", t, defaults::ADMIN_TOKEN_MIN_BYTES))
        .transpose()
}

/// A bearer token: at least `min` visible ASCII characters. The error names
/// the key and the token's length, never its value.
pub(crate) fn secret(key: &'static str, token: String, min: usize) -> Result<String, ConfigError> {
    if token.len() >= min && token.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(token);
    }
    Err(invalid(
        key,
        format!("({} characters)", token.len()),
        format!("must be at least {min} visible ASCII characters (for example 32 hex digits)"),
    ))
}

/// A control-plane URL: `https://`, or `http://` only when `insecure` (the
/// `insecure_key` setting, for tests and the demo).
pub(crate) fn control_plane_url(
    key: &'static str,
    url: &str,
    insecure: bool,
    insecure_key: &str,
) -> Result<(), ConfigError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || (insecure && lower.starts_with("http://")) {
        return Ok(());
    }
    let reason = if lower.starts_with("http://") {
        format!("plain http is refused for the control plane; use https, or set {insecure_key} for tests")
    } else {
        "must be an https:// URL".to_owned()
    };
    Err(invalid(key, format!("{url:?}"), reason))
}

/// An appliance id (`eddy_proto::wire::check_appliance_id`); `None` takes
/// the host name.
pub(crate) fn appliance_id(key: &'static str, id: Option<String>) -> Result<String, ConfigError> {
    let id = id
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
        })
        .unwrap_or_default();
    eddy_proto::wire::check_appliance_id(&id).map_err(|reason| {
        invalid(
            key,
            format!("{id:?}"),
            format!("{reason} (default: the host name)"),
        )
    })?;
    Ok(id)
}

/// The admin address: `off` or empty disables it; otherwise an `IP:PORT` that
/// no serving listener uses, so admin routes are never reachable through a
/// serving port (port 0 asks for an ephemeral port and never collides).
fn admin_listen(
    text: Option<String>,
    serving: &[SocketAddr],
) -> Result<Option<SocketAddr>, ConfigError> {
    let text = text.unwrap_or_else(|| defaults::ADMIN_LISTEN.to_owned());
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr: SocketAddr = trimmed.parse().map_err(|_| {
        invalid(
            "admin.listen",
            format!("{text:?}"),
            "not an IP:PORT address (for example 127.0.0.1:9180), or \"off\"",
        )
    })?;
    let overlaps = |s: &SocketAddr| {
        addr.port() != 0
            && s.port() == addr.port()
            && s.is_ipv4() == addr.is_ipv4()
            && (s.ip() == addr.ip() || s.ip().is_unspecified() || addr.ip().is_unspecified())
    };
    if let Some(s) = serving.iter().find(|s| overlaps(s)) {
        return Err(invalid(
            "admin.listen",
            format!("{text:?}"),
            format!(
                "overlaps the serving listener {s} (serve.listen or tls.listen); the admin listener needs its own port"
            ),
        ));
    }
    Ok(Some(addr))
}

fn tokens(raw: RawTokens) -> Result<Tokens, ConfigError> {
    let mut keys: Vec<eddy_proto::token::SigningKey> = Vec::new();
    for k in raw.keys.unwrap_or_default() {
        let id_ok = (1..=32).contains(&k.id.len())
            && k.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(invalid(
                "tokens.keys.id",
                format!("{:?}", k.id),
                "1 to 32 characters of A-Z, a-z, 0-9, - and _",
            ));
        }
        if keys.iter().any(|have| have.id == k.id) {
            return Err(invalid(
                "tokens.keys.id",
                format!("{:?}", k.id),
                "listed twice",
            ));
        }
        // The value is a secret: the error names the key id, never the value.
        let secret = decode_hex(&k.secret_hex)
            .filter(|s| s.len() >= 16)
            .ok_or_else(|| {
                invalid(
                    "tokens.keys.secret_hex",
                    format!("<secret of key {:?}>", k.id),
                    "must be hex, at least 32 digits (16 bytes)",
                )
            })?;
        keys.push(eddy_proto::token::SigningKey { id: k.id, secret });
    }
    let expiry = param_name(
        "tokens.expiry_param",
        raw.expiry_param,
        defaults::TOKEN_EXPIRY_PARAM,
    )?;
    let token = param_name("tokens.token_param", raw.token_param, defaults::TOKEN_PARAM)?;
    if expiry == token {
        return Err(invalid(
            "tokens.token_param",
            format!("{token:?}"),
            "must differ from tokens.expiry_param",
        ));
    }
    Ok(Tokens {
        keys,
        names: eddy_proto::token::ParamNames { expiry, token },
    })
}

fn param_name(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let name = value.unwrap_or_else(|| default.to_owned());
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(name)
    } else {
        Err(invalid(
            key,
            format!("{name:?}"),
            "1 to 32 characters of A-Z, a-z, 0-9, -, _ and . (no escaping needed in a query)",
        ))
    }
}

/// A listener that requires tokens with no key to check them refuses everyone.
fn needs_keys(key: &'static str, required: bool, tokens: &Tokens) -> Result<(), ConfigError> {
    if required && tokens.keys.is_empty() {
        return Err(invalid(
            key,
            "true",
            "needs at least one [[tokens.keys]] entry (or set it to false)",
        ));
    }
    Ok(())
}

/// Parses listen addresses; none may repeat, within the list or in `taken`.
fn addresses(
    key: &'static str,
    texts: &[String],
    taken: &[SocketAddr],
) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut listen = Vec::new();
    for text in texts {
        let addr: SocketAddr = text.parse().map_err(|_| {
            invalid(
                key,
                format!("{text:?}"),
                "not an IP:PORT address (for example 0.0.0.0:80 or [::]:80)",
            )
        })?;
        if listen.contains(&addr) {
            return Err(invalid(key, format!("{text:?}"), "listed twice"));
        }
        if addr.port() != 0 && taken.contains(&addr) {
            return Err(invalid(
                key,
                format!("{text:?}"),
                "already a plain HTTP listener (serve.listen)",
            ));
        }
        listen.push(addr);
    }
    Ok(listen)
}

fn tls(raw: RawTls, plain: &[SocketAddr], tokens: &Tokens) -> Result<Option<Tls>, ConfigError> {
    let listen = addresses("tls.listen", &raw.listen.unwrap_or_default(), plain)?;
    let ktls = match raw.ktls.as_deref().unwrap_or(defaults::KTLS) {
        "auto" => KtlsSetting::Auto,
        "off" => KtlsSetting::Off,
        other => {
            return Err(invalid(
                "tls.ktls",
                format!("{other:?}"),
                "must be \"auto\" or \"off\"",
            ))
        }
    };
    let reload_check = duration(
        "tls.reload_check",
        raw.reload_check,
        defaults::TLS_RELOAD_CHECK,
    )?;
    let frame_bytes = count(
        "tls.frame_bytes",
        raw.frame_bytes,
        defaults::TLS_FRAME_BYTES,
        16 * 1024,
        64 << 20,
    )?;
    let require_tokens = raw.require_tokens.unwrap_or(defaults::TLS_REQUIRE_TOKENS);
    let cors = raw.cors.unwrap_or(defaults::LISTENER_CORS);
    if listen.is_empty() {
        return Ok(None);
    }
    let file = |key: &'static str, path: Option<PathBuf>| match path {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Err(invalid(
            key,
            "(none)",
            "a PEM file is required when tls.listen is set",
        )),
    };
    let cert = file("tls.cert", raw.cert)?;
    let key = file("tls.key", raw.key)?;
    needs_keys("tls.require_tokens", require_tokens, tokens)?;
    Ok(Some(Tls {
        listen,
        cert,
        key,
        require_tokens,
        cors,
        ktls,
        reload_check,
        frame_bytes,
    }))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn count(
    key: &'static str,
    value: Option<i64>,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    match usize::try_from(v) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(key, v, format!("must be between {min} and {max}"))),
    }
}

pub(crate) fn duration(
    key: &'static str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let d = humantime::parse_duration(&text).map_err(|e| {
        invalid(
            key,
            format!("{text:?}"),
            format!("not a duration such as \"10s\" or \"2m\" ({e})"),
        )
    })?;
    if d.is_zero() {
        return Err(invalid(
            key,
            format!("{text:?}"),
            "must be longer than zero",
        ));
    }
    if d > Duration::from_secs(24 * 3600) {
        return Err(invalid(key, format!("{text:?}"), "must be at most 24h"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_disk() -> Overrides {
        Overrides {
            listen: vec![],
            disks: vec!["/srv/d0".into()],
            ..Overrides::default()
        }
    }

    fn err(text: &str) -> String {
        let raw = match parse_toml(text) {
            Ok(raw) => raw,
            Err(message) => return message,
        };
        match resolve(raw, &with_disk()) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_need_only_a_disk() {
        let c = resolve(RawConfig::default(), &with_disk()).expect("valid");
        assert_eq!(
            c.listen,
            vec!["127.0.0.1:8080".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(c.limits, Limits::default());
        assert!(resolve(RawConfig::default(), &Overrides::default()).is_err());
    }

    #[test]
    fn errors_name_key_value_and_reason() {
        let e = err("[limits]\nmax_ranges = 0\n");
        assert!(
            e.contains("limits.max_ranges = 0: must be between 1 and 1024"),
            "{e}"
        );
        let e = err("[limits]\nidle_timeout = \"soon\"\n");
        assert!(e.contains("limits.idle_timeout = \"soon\""), "{e}");
        let e = err("[serve]\nlisten = [\"localhost\"]\n");
        assert!(
            e.contains("serve.listen = \"localhost\": not an IP:PORT"),
            "{e}"
        );
        let e = err("[log]\nlevel = \"loud\"\n");
        assert!(e.contains("log.level = \"loud\""), "{e}");
        let e = err("[limits]\nmax_head_bytes = 2048\nmax_target_bytes = 4096\n");
        assert!(e.contains("limits.max_target_bytes = 4096"), "{e}");
        for bad in [
            "ftp://f.example",
            "https://",
            "https:///x",
            "https://f.example/?a=1",
            "https://f example",
        ] {
            let e = err(&format!("[store]\nfailed_redirect = \"{bad}\"\n"));
            assert!(
                e.contains("store.failed_redirect") && e.contains("must be an http"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = err("[limits]\nmax_rangez = 3\n");
        assert!(e.contains("max_rangez"), "{e}");
        let e = err("[nope]\n");
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn overrides_replace_the_file() {
        let raw = parse_toml("[serve]\nlisten=[\"0.0.0.0:80\"]\n[store]\ndisks=[\"/a\"]\n")
            .expect("toml");
        let o = Overrides {
            listen: vec!["127.0.0.1:0".into()],
            disks: vec!["/b".into(), "/c".into()],
            ..Overrides::default()
        };
        let c = resolve(raw, &o).expect("valid");
        assert_eq!(
            c.listen,
            vec!["127.0.0.1:0".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(c.disks, vec![PathBuf::from("/b"), PathBuf::from("/c")]);
    }

    fn admin(file: &str, flag: Option<&str>) -> Result<Option<SocketAddr>, String> {
        let raw = parse_toml(file)?;
        let o = Overrides {
            admin_listen: flag.map(str::to_owned),
            ..with_disk()
        };
        resolve(raw, &o)
            .map(|c| c.admin_listen)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn admin_listen_defaults_to_loopback_and_can_be_turned_off() {
        let addr = |s: &str| Some(s.parse::<SocketAddr>().expect("addr"));
        assert_eq!(admin("", None), Ok(addr(defaults::ADMIN_LISTEN)));
        assert_eq!(
            admin("[admin]\nlisten = \"127.0.0.1:9999\"\n", None),
            Ok(addr("127.0.0.1:9999"))
        );
        assert_eq!(admin("[admin]\nlisten = \"off\"\n", None), Ok(None));
        assert_eq!(admin("[admin]\nlisten = \"\"\n", None), Ok(None));
        assert_eq!(
            admin("[admin]\nlisten = \"off\"\n", Some("[::1]:9180")),
            Ok(addr("[::1]:9180"))
        );
        assert_eq!(
            admin("[admin]\nlisten = \"127.0.0.1:9999\"\n", Some("off")),
            Ok(None)
        );
        // Port 0 is an ephemeral port each: never the same socket.
        assert_eq!(
            admin("[serve]\nlisten = [\"127.0.0.1:0\"]\n", Some("127.0.0.1:0")),
            Ok(addr("127.0.0.1:0"))
        );
    }

    #[test]
    fn admin_listen_errors_name_the_key() {
        let e = admin("[admin]\nlisten = \"x\"\n", None).expect_err("bad address");
        assert!(
            e.contains("admin.listen = \"x\": not an IP:PORT address"),
            "{e}"
        );
        let e = admin("", Some("localhost:9180")).expect_err("bad flag");
        assert!(e.contains("admin.listen = \"localhost:9180\""), "{e}");
        for (serve, admin_addr) in [
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("127.0.0.1:8080", "0.0.0.0:8080"),
            ("[::]:8080", "[::1]:8080"),
        ] {
            let file = format!("[serve]\nlisten = [\"{serve}\"]\n");
            let e = admin(&file, Some(admin_addr)).expect_err("overlap");
            assert!(
                e.contains("admin.listen") && e.contains("serve.listen"),
                "{serve} vs {admin_addr}: {e}"
            );
        }
        let file = "[serve]\nlisten = [\"127.0.0.1:8080\"]\n";
        assert!(admin(file, Some("127.0.0.2:8080")).is_ok());
        assert!(admin(file, Some("127.0.0.1:8081")).is_ok());
    }
}

#[cfg(test)]
mod doc_tests {
    /// Every key the file accepts appears in docs/config.md, and vice versa.
    #[test]
    fn docs_config_lists_every_key() {
        let source = include_str!("mod.rs");
        let doc = include_str!("../../docs/config.md");
        let mut keys = Vec::new();
        for (section, strukt) in [
            ("serve", "RawServe"),
            ("store", "RawStore"),
            ("limits", "RawLimits"),
            ("log", "RawLog"),
            ("tokens", "RawTokens"),
            ("tokens.keys", "RawKey"),
            ("tls", "RawTls"),
            ("http2", "RawHttp2"),
            ("admin", "RawAdmin"),
            ("fill", "RawFill"),
            ("report", "RawReport"),
            ("cors", "RawCors"),
            ("cache_control", "RawCacheControl"),
            ("cache_control.rules", "RawCacheRule"),
        ] {
            let start = source
                .find(&format!("pub struct {strukt} {{"))
                .unwrap_or_else(|| panic!("struct {strukt} not found"));
            let body = &source[start..];
            let body = &body[..body.find('}').unwrap_or(0)];
            for line in body.lines() {
                if let Some(field) = line
                    .trim()
                    .strip_prefix("pub ")
                    .and_then(|l| l.split(':').next())
                {
                    if !field.contains(' ') {
                        keys.push(format!("{section}.{field}"));
                    }
                }
            }
        }
        assert!(keys.len() >= 15, "found only {keys:?}");
        for key in &keys {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "docs/config.md lacks {key}"
            );
        }
        let documented = doc.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(
            documented,
            keys.len(),
            "docs/config.md lists keys the config does not have"
        );
    }
}
