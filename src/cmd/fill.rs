//! The appliance's side of the fill: starting `eddy-fill` inside `eddy
//! serve` over the store, and the clients of the admin listener's control
//! endpoints: `eddy fill now`, `eddy fill status` and `eddy drain`.
//!
//! Owns: building the fill's settings, HTTP client (the CA bundle is read
//! here) and clocks from the config (the local minute of day from the
//! system's time zone), sweeping a crashed import's leftovers before the
//! first plan, and the admin client with its progress bar. It must never
//! run the fill on a serving thread (the fill has a thread of its own) and
//! never print the admin token.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Timelike as _;
use eddy_fill::download::Retry;
use eddy_proto::report::FillStatus;

use crate::config::{Config, Fill};
use crate::metrics::{MetricsError, Registry};
use crate::store::Store;

/// Why a fill command failed.
#[derive(Debug, thiserror::Error)]
pub enum FillCmdError {
    #[error("cannot read the CA bundle {path} (fill.ca_file): {reason}")]
    Ca { path: String, reason: String },
    #[error("cannot start the fill: {0}")]
    Start(#[from] eddy_fill::run::StartError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("the admin listener is off (admin.listen); `eddy fill` talks to it")]
    NoAdmin,
    #[error("admin listener {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("admin listener {addr} answered {status}: {body}")]
    Refused {
        addr: SocketAddr,
        status: u16,
        body: String,
    },
    #[error("the admin listener's fill status is not JSON: {0}")]
    BadStatus(String),
}

/// Starts the fill over `store` on a thread of its own.
pub fn start(
    fill: &Fill,
    store: Arc<Store>,
    registry: &Registry,
) -> Result<eddy_fill::Handle, FillCmdError> {
    let roots = roots(fill)?;
    let client =
        eddy_fill::client::Client::new(roots, fill.connect_timeout, fill.idle_timeout, true);
    let swept = store.sweep_import_leftovers();
    if swept > 0 {
        tracing::info!(
            files = swept,
            "removed staged leftovers of a crashed import"
        );
    }
    let settings = settings(fill);
    let clocks = eddy_fill::Clocks {
        unix_now: Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        }),
        local_minute: Arc::new(|| {
            let now = chrono::Local::now();
            now.hour() * 60 + now.minute()
        }),
    };
    tracing::info!(
        manifest = %fill.manifest_url,
        appliance = %fill.appliance,
        window = %fill.window,
        max_rate_mbps = fill.max_rate_mbps,
        "fill on"
    );
    let handle = eddy_fill::start(settings, client, store, clocks)?;
    let families = eddy_fill::metrics::FillCollector::new(handle.progress.clone())
        .map_err(|e| MetricsError::new("eddy_fill_*", e))?;
    registry.register("eddy_fill_*", Box::new(families))?;
    Ok(handle)
}

/// The fill's settings from the checked config (at start, and again on a
/// reload: `eddy_fill::Handle::reconfigure`).
pub fn settings(fill: &Fill) -> eddy_fill::Settings {
    eddy_fill::Settings {
        manifest_url: fill.manifest_url.clone(),
        appliance: fill.appliance.clone(),
        keys: fill.keys.clone(),
        window: fill.window,
        poll: fill.poll_interval,
        parallel: fill.parallel,
        rate_bits_per_sec: fill.max_rate_mbps.saturating_mul(1_000_000),
        reserve_bytes: fill.reserve_bytes,
        connect_timeout: fill.connect_timeout,
        idle_timeout: fill.idle_timeout,
        retry: Retry {
            base: fill.retry_base,
            max: fill.retry_max,
            rounds: fill.retry_rounds,
        },
        insecure_plain_http: fill.insecure_plain_http,
        max_manifest_bytes: crate::config::defaults::FILL_MAX_MANIFEST_BYTES,
        recv_buffer: fill.recv_buffer,
    }
}

/// The trusted roots: the CA bundle when it can be read. A plain-http-only
/// setup (tests, the demo) may have none.
fn roots(fill: &Fill) -> Result<rustls::RootCertStore, FillCmdError> {
    let err = |reason: String| FillCmdError::Ca {
        path: fill.ca_file.display().to_string(),
        reason,
    };
    let pem = match std::fs::read(&fill.ca_file) {
        Ok(pem) => pem,
        Err(e) if fill.manifest_url.starts_with("http://") => {
            tracing::debug!(error = %e, "no CA bundle; only plain http sources can be used");
            return Ok(rustls::RootCertStore::empty());
        }
        Err(e) => return Err(err(e.to_string())),
    };
    eddy_fill::client::roots_from_pem(&pem).map_err(err)
}

/// One admin request: `METHOD PATH`, returns (status, body).
fn admin_call(config: &Config, method: &str, path: &str) -> Result<(u16, String), FillCmdError> {
    let addr = config.admin_listen.ok_or(FillCmdError::NoAdmin)?;
    let io = |source| FillCmdError::Admin { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let auth = config
        .admin_token
        .as_deref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// [`admin_call`] that expects `want`; any other status is refused with
/// the admin listener's answer. Returns the body.
fn admin_expect(
    config: &Config,
    method: &str,
    path: &str,
    want: u16,
) -> Result<String, FillCmdError> {
    let (status, body) = admin_call(config, method, path)?;
    if status == want {
        return Ok(body);
    }
    Err(FillCmdError::Refused {
        addr: config.admin_listen.ok_or(FillCmdError::NoAdmin)?,
        status,
        body: body.trim().to_owned(),
    })
}

/// `eddy drain`: the running server drains and exits 0, as on SIGTERM.
pub fn drain(config: &Config) -> Result<(), FillCmdError> {
    admin_expect(config, "POST", "/drain", 202)?;
    println!("draining");
    Ok(())
}

/// `eddy store drain DISK` (`action` "drain") and `eddy store enable DISK`
/// ("enable"): the running server changes the drive's state.
pub fn set_disk(config: &Config, action: &str, disk: &std::path::Path) -> Result<(), FillCmdError> {
    let root = disk.to_string_lossy();
    let mut query = String::with_capacity(root.len());
    for b in root.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            query.push(char::from(b));
        } else {
            query.push_str(&format!("%{b:02X}"));
        }
    }
    let body = admin_expect(
        config,
        "POST",
        &format!("/store/{action}?disk={query}"),
        200,
    )?;
    print!("{body}");
    Ok(())
}

/// `eddy store disks`: each drive's state, one line each:
/// ROOT, STATE, OBJECTS, BYTES, and the reason when there is one.
pub fn disks(config: &Config) -> Result<(), FillCmdError> {
    let body = admin_expect(config, "GET", "/store/disks", 200)?;
    let rows: Vec<eddy_proto::report::DiskHealth> =
        serde_json::from_str(&body).map_err(|e| FillCmdError::BadStatus(e.to_string()))?;
    for d in rows {
        let reason = d.reason.map(|r| format!("\t{r}")).unwrap_or_default();
        println!("{}\t{}\t{}\t{}{reason}", d.id, d.state, d.objects, d.bytes);
    }
    Ok(())
}

/// `eddy fill now`.
pub fn now(config: &Config) -> Result<(), FillCmdError> {
    admin_expect(config, "POST", "/fill/now", 202)?;
    println!("fill started");
    Ok(())
}

fn fetch_status(config: &Config) -> Result<FillStatus, FillCmdError> {
    let body = admin_expect(config, "GET", "/fill/status", 200)?;
    serde_json::from_str(&body).map_err(|e| FillCmdError::BadStatus(e.to_string()))
}

/// `eddy fill status`: JSON once, or a live progress bar on a terminal
/// until the run ends, or one summary line when not on a terminal.
pub fn status(config: &Config, json: bool) -> Result<(), FillCmdError> {
    let s = fetch_status(config)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        return Ok(());
    }
    use std::io::IsTerminal as _;
    if s.state != "filling" || !std::io::stdout().is_terminal() {
        println!("{}", summary(&s));
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(s.bytes_planned);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut s = s;
    loop {
        bar.set_length(s.bytes_planned);
        bar.set_position(s.bytes_done.min(s.bytes_planned));
        bar.set_message(format!("objects {}/{}", s.objects_done, s.objects_planned));
        if s.state != "filling" {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        s = fetch_status(config)?;
    }
    bar.finish();
    println!("{}", summary(&s));
    Ok(())
}

fn summary(s: &FillStatus) -> String {
    let errors: u64 = s.errors.values().sum();
    format!(
        "fill {}: generation {}, objects {}/{}, bytes {}/{}, evicted {}, skipped {}, errors {}, rate {} B/s",
        s.state,
        s.generation.map_or("none".to_owned(), |g| g.to_string()),
        s.objects_done,
        s.objects_planned,
        s.bytes_done,
        s.bytes_planned,
        s.objects_evicted,
        s.objects_skipped,
        errors,
        s.rate_bytes_per_sec,
    )
}
