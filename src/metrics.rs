//! Metrics: the counters and gauges of a running server, and their rendering in
//! the Prometheus text exposition format, version 0.0.4.
//!
//! Owns: the registry [`Metrics`] (shared as `Arc<Metrics>`), the name, help
//! text, type and label set of every family, and the renderer. Recording is one
//! relaxed atomic add on a slot fixed at compile time: no lock, no allocation,
//! no map lookup, so the serve path may count every request and connection.
//! Every label value comes from a fixed set known here (statuses outside the set
//! fall into `other`), never from a client, so the number of series is bounded.
//! It must never block or fail the serve path and never do I/O: the store's
//! figures come in as values at scrape time ([`Metrics::render`]).
//!
//! Families (all names start with `eddy_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `eddy_build_info` | gauge (1) | `version` |
//! | `eddy_start_time_seconds` | gauge | |
//! | `eddy_requests_total` | counter | `transport`, `status` |
//! | `eddy_response_body_bytes_total` | counter | `transport` |
//! | `eddy_token_refusals_total` | counter | `reason` |
//! | `eddy_connections_open` | gauge | `listener` |
//! | `eddy_connections_total` | counter | `listener` |
//! | `eddy_connections_rejected_total` | counter | `listener` |
//! | `eddy_misses_total` | counter | `kind` (`content`, `health`) |
//! | `eddy_tls_handshakes_total` | counter | `version`, `alpn` |
//! | `eddy_tls_handshake_failures_total` | counter | |
//! | `eddy_tls_cert_reloads_total` | counter | `result` |
//! | `eddy_tls_cert_not_after_seconds` | gauge (absent until a certificate is loaded) | |
//! | `eddy_ktls_info` | gauge (1) | `mode`, `reason` |
//! | `eddy_disk_wait_windows_total` | counter | |
//! | `eddy_memory_trims_total` | counter | |
//! | `eddy_store_objects` | gauge | `disk` |
//! | `eddy_store_bytes` | gauge | `disk` |
//!
//! With a fill configured, [`render_fill`] adds the fill's families from its
//! progress counters (`eddy_fill::progress`), rendered at scrape time:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `eddy_fill_state` | gauge (1 for the current) | `state` (`idle`, `waiting`, `filling`) |
//! | `eddy_fill_generation` | gauge | |
//! | `eddy_fill_runs_total` | counter | |
//! | `eddy_fill_objects_planned`, `eddy_fill_objects_done` | gauge | |
//! | `eddy_fill_bytes_planned`, `eddy_fill_bytes_done` | gauge | |
//! | `eddy_fill_downloaded_bytes_total` | counter | |
//! | `eddy_fill_installed_objects_total`, `eddy_fill_evicted_objects_total` | counter | |
//! | `eddy_fill_skipped_objects` | gauge | |
//! | `eddy_fill_rate_bytes_per_second` | gauge | |
//! | `eddy_fill_errors_total` | counter | `kind` (`network`, `status`, `corrupt`, `io`, `disk_full`, `manifest`, `exhausted`) |
//! | `eddy_fill_manifest_refused_total` | counter | `reason` (`eddy_proto::manifest::Refusal::LABELS`) |
//!
//! With reports configured, [`render_report`] adds `eddy_report_sent_total`
//! (counter, `kind`), `eddy_report_dropped_total`, `eddy_report_errors_total`
//! (counters) and `eddy_report_queued` (gauge).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::DiskStats;
use eddy_proto::token::Denied;

/// How a request reached eddy (the `transport` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/1.x over plain TCP: `transport="http"`.
    Http1,
    /// HTTP/1.1 over TLS: `transport="https"`.
    Https1,
    /// HTTP/2 (over TLS): `transport="h2"`.
    H2,
}

impl Transport {
    /// Every transport, in slot order.
    pub const ALL: [Transport; 3] = [Transport::Http1, Transport::Https1, Transport::H2];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Http1 => "http",
            Transport::Https1 => "https",
            Transport::H2 => "h2",
        }
    }

    fn slot(self) -> usize {
        match self {
            Transport::Http1 => 0,
            Transport::Https1 => 1,
            Transport::H2 => 2,
        }
    }
}

/// Which serving listener a connection arrived on (the `listener` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The plain HTTP listeners (`serve.listen`): `listener="plain"`.
    Plain,
    /// The TLS listeners: `listener="tls"`.
    Tls,
}

impl Listener {
    /// Every listener kind, in slot order.
    pub const ALL: [Listener; 2] = [Listener::Plain, Listener::Tls];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Listener::Plain => "plain",
            Listener::Tls => "tls",
        }
    }

    fn slot(self) -> usize {
        match self {
            Listener::Plain => 0,
            Listener::Tls => 1,
        }
    }
}

/// The statuses eddy emits, each with its own series; anything else is `other`.
const STATUSES: [u16; 15] = [
    200, 206, 304, 400, 403, 404, 405, 412, 414, 416, 431, 500, 501, 503, 505,
];
/// The `status` label of each slot: the statuses above, then `other`.
const STATUS_LABELS: [&str; STATUS_SLOTS] = [
    "200", "206", "304", "400", "403", "404", "405", "412", "414", "416", "431", "500", "501",
    "503", "505", "other",
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;

fn status_slot(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len())
}

/// Every refusal reason, in slot order (one series each, present from the start).
const REASONS: [Denied; 7] = [
    Denied::Missing,
    Denied::Malformed,
    Denied::UnknownKey,
    Denied::Tampered,
    Denied::Expired,
    Denied::WrongPrefix,
    Denied::WrongClient,
];

/// The slot of a reason. Exhaustive on purpose: a new [`Denied`] variant does
/// not compile until it has a slot here and a place in [`REASONS`].
fn reason_slot(reason: Denied) -> usize {
    match reason {
        Denied::Missing => 0,
        Denied::Malformed => 1,
        Denied::UnknownKey => 2,
        Denied::Tampered => 3,
        Denied::Expired => 4,
        Denied::WrongPrefix => 5,
        Denied::WrongClient => 6,
    }
}

/// TLS versions and ALPN results with their own series; anything else goes to
/// an `other` slot that is rendered only once it has counted something.
const TLS_VERSIONS: [&str; 2] = ["1.2", "1.3"];
const TLS_ALPNS: [&str; 3] = ["h2", "http/1.1", "none"];
const OTHER: &str = "other";

fn slot_of(known: &[&str], value: &str) -> usize {
    known
        .iter()
        .position(|k| *k == value)
        .unwrap_or(known.len())
}

/// `eddy_ktls_info` before [`Metrics::set_ktls`] is called: there is no TLS
/// listener, so there is nothing for kTLS to do.
const KTLS_DEFAULT: (&str, &str) = ("off", "no_tls_listener");

/// Stands for "no certificate loaded yet" in the not-after gauge.
const UNSET: i64 = i64::MIN;

/// The open, total and rejected connection counts of one listener kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionCounts {
    pub open: i64,
    pub total: u64,
    pub rejected: u64,
}

/// The registry. Create one in `main`, share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    version: &'static str,
    started_unix: i64,
    requests: [[AtomicU64; STATUS_SLOTS]; 3],
    body_bytes: [AtomicU64; 3],
    refusals: [AtomicU64; REASONS.len()],
    connections_open: [AtomicI64; 2],
    connections_total: [AtomicU64; 2],
    connections_rejected: [AtomicU64; 2],
    content_misses: AtomicU64,
    handshakes: [[AtomicU64; TLS_ALPNS.len() + 1]; TLS_VERSIONS.len() + 1],
    handshake_failures: AtomicU64,
    memory_trims: AtomicU64,
    /// `[ok, failed]`.
    cert_reloads: [AtomicU64; 2],
    cert_not_after: AtomicI64,
    cold_windows: AtomicU64,
    /// Set at start-up and on a kTLS fallback, never per request: a lock is fine.
    ktls: Mutex<(&'static str, &'static str)>,
}

impl Metrics {
    /// A registry with every counter at zero; `started` is the process's start
    /// (from the injected clock), rendered as `eddy_start_time_seconds`.
    pub fn new(started: SystemTime) -> Metrics {
        let started_unix = match started.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        Metrics {
            version: env!("CARGO_PKG_VERSION"),
            started_unix,
            requests: [const { [const { AtomicU64::new(0) }; STATUS_SLOTS] }; 3],
            body_bytes: [const { AtomicU64::new(0) }; 3],
            refusals: [const { AtomicU64::new(0) }; REASONS.len()],
            connections_open: [const { AtomicI64::new(0) }; 2],
            connections_total: [const { AtomicU64::new(0) }; 2],
            connections_rejected: [const { AtomicU64::new(0) }; 2],
            content_misses: AtomicU64::new(0),
            handshakes: [const { [const { AtomicU64::new(0) }; TLS_ALPNS.len() + 1] };
                TLS_VERSIONS.len() + 1],
            handshake_failures: AtomicU64::new(0),
            memory_trims: AtomicU64::new(0),
            cert_reloads: [const { AtomicU64::new(0) }; 2],
            cert_not_after: AtomicI64::new(UNSET),
            cold_windows: AtomicU64::new(0),
            ktls: Mutex::new(KTLS_DEFAULT),
        }
    }

    // ---- recording (the serve path calls these) ----------------------------

    /// One response sent: its status and the bytes of its body (not the head).
    /// Call once per response, after the body went out (or was cut short: count
    /// what was sent).
    pub fn request(&self, transport: Transport, status: u16, body_bytes: u64) {
        let t = transport.slot();
        self.requests[t][status_slot(status)].fetch_add(1, Relaxed);
        self.body_bytes[t].fetch_add(body_bytes, Relaxed);
    }

    /// A body window was sent or read off the event loop because it may need
    /// the disk (`serve::prefetch`).
    pub fn cold_window(&self) {
        self.cold_windows.fetch_add(1, Relaxed);
    }

    /// A request for a key the store does not hold (404): a content miss.
    pub fn content_miss(&self) {
        self.content_misses.fetch_add(1, Relaxed);
    }

    /// Misses by kind: content (a key not held) and health (a connection
    /// turned away at the cap), since the process started.
    pub fn misses(&self) -> (u64, u64) {
        let health = Listener::ALL
            .iter()
            .map(|l| self.connections_rejected[l.slot()].load(Relaxed))
            .sum();
        (self.content_misses.load(Relaxed), health)
    }

    /// Responses sent, over every status and transport.
    pub fn requests_total(&self) -> u64 {
        self.requests
            .iter()
            .flatten()
            .map(|c| c.load(Relaxed))
            .sum()
    }

    /// A request refused by the signed-URL check.
    pub fn token_refused(&self, reason: Denied) {
        self.refusals[reason_slot(reason)].fetch_add(1, Relaxed);
    }

    /// A connection got a slot and is being served.
    pub fn connection_opened(&self, listener: Listener) {
        let l = listener.slot();
        self.connections_open[l].fetch_add(1, Relaxed);
        self.connections_total[l].fetch_add(1, Relaxed);
    }

    /// A connection counted by [`Metrics::connection_opened`] is closed.
    pub fn connection_closed(&self, listener: Listener) {
        self.connections_open[listener.slot()].fetch_sub(1, Relaxed);
    }

    /// A connection was accepted over the connection cap and turned away (503).
    /// It is not counted as opened.
    pub fn connection_rejected(&self, listener: Listener) {
        self.connections_rejected[listener.slot()].fetch_add(1, Relaxed);
    }

    /// Counts a connection as opened now and as closed when the returned guard
    /// is dropped, so that an early return or a panic cannot leak the gauge.
    pub fn track_connection(self: &Arc<Self>, listener: Listener) -> OpenConnection {
        self.connection_opened(listener);
        OpenConnection {
            metrics: self.clone(),
            listener,
        }
    }

    /// A completed TLS handshake: `version` is `"1.2"` or `"1.3"`, `alpn` is
    /// `"h2"`, `"http/1.1"` or `"none"` (other values count as `other`).
    pub fn tls_handshake(&self, version: &'static str, alpn: &'static str) {
        self.handshakes[slot_of(&TLS_VERSIONS, version)][slot_of(&TLS_ALPNS, alpn)]
            .fetch_add(1, Relaxed);
    }

    /// A TLS handshake that failed (bad client hello, no shared cipher, timeout).
    pub fn tls_handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Relaxed);
    }

    /// Freed memory was given back to the kernel after a flood receded.
    pub fn memory_trimmed(&self) {
        self.memory_trims.fetch_add(1, Relaxed);
    }

    /// A certificate reload was attempted; `ok` when the new one is in use.
    pub fn cert_reloaded(&self, ok: bool) {
        self.cert_reloads[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    /// The serving certificate's notAfter, in Unix seconds.
    pub fn set_cert_not_after(&self, unix_secs: i64) {
        self.cert_not_after.store(unix_secs, Relaxed);
    }

    /// How TLS records are sealed: `mode` is `"kernel"`, `"userspace"` or
    /// `"off"`; `reason` a short snake_case word saying why (for example
    /// `"probe_failed"`). Rendered as `eddy_ktls_info{mode,reason} 1`.
    pub fn set_ktls(&self, mode: &'static str, reason: &'static str) {
        *self.ktls.lock().unwrap_or_else(PoisonError::into_inner) = (mode, reason);
    }

    // ---- reading (the admin status page) -----------------------------------

    /// The version in `eddy_build_info`.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The start time in Unix seconds.
    pub fn started_unix(&self) -> i64 {
        self.started_unix
    }

    /// Responses per status label (`"200"`, …, `"other"`), summed over transports.
    pub fn requests_by_status(&self) -> Vec<(&'static str, u64)> {
        STATUS_LABELS
            .iter()
            .enumerate()
            .map(|(s, label)| {
                let n = self.requests.iter().map(|t| t[s].load(Relaxed)).sum();
                (*label, n)
            })
            .collect()
    }

    /// Response body bytes per transport.
    pub fn body_bytes(&self) -> Vec<(Transport, u64)> {
        Transport::ALL
            .iter()
            .map(|t| (*t, self.body_bytes[t.slot()].load(Relaxed)))
            .collect()
    }

    /// Token refusals per reason label.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        REASONS
            .iter()
            .map(|r| (r.label(), self.refusals[reason_slot(*r)].load(Relaxed)))
            .collect()
    }

    /// Connection counts of one listener kind.
    pub fn connections(&self, listener: Listener) -> ConnectionCounts {
        let l = listener.slot();
        ConnectionCounts {
            open: self.connections_open[l].load(Relaxed),
            total: self.connections_total[l].load(Relaxed),
            rejected: self.connections_rejected[l].load(Relaxed),
        }
    }

    /// The kTLS `(mode, reason)`.
    pub fn ktls(&self) -> (&'static str, &'static str) {
        *self.ktls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- rendering ---------------------------------------------------------

    /// Every family in the text format 0.0.4, with the store's figures `disks`
    /// read by the caller at scrape time. Every series with a fixed label set is
    /// present from the start (at zero), so that `rate()` and alerts see it.
    pub fn render(&self, disks: &[DiskStats]) -> String {
        let mut out = Exposition::default();

        out.family(
            "eddy_build_info",
            "gauge",
            "The running version of eddy (always 1).",
        );
        out.sample("eddy_build_info", &[("version", self.version)], 1);
        out.family(
            "eddy_start_time_seconds",
            "gauge",
            "When this eddy process started, in Unix seconds.",
        );
        out.sample("eddy_start_time_seconds", &[], self.started_unix);

        out.family(
            "eddy_requests_total",
            "counter",
            "Responses sent, by transport and status (statuses eddy does not emit count as other).",
        );
        for t in Transport::ALL {
            for (s, status) in STATUS_LABELS.iter().enumerate() {
                out.sample(
                    "eddy_requests_total",
                    &[("transport", t.label()), ("status", status)],
                    self.requests[t.slot()][s].load(Relaxed),
                );
            }
        }
        out.family(
            "eddy_response_body_bytes_total",
            "counter",
            "Response body bytes sent (heads excluded), by transport.",
        );
        for t in Transport::ALL {
            out.sample(
                "eddy_response_body_bytes_total",
                &[("transport", t.label())],
                self.body_bytes[t.slot()].load(Relaxed),
            );
        }
        out.family(
            "eddy_token_refusals_total",
            "counter",
            "Requests refused by the signed-URL check, by reason.",
        );
        for (reason, n) in self.refusals() {
            out.sample("eddy_token_refusals_total", &[("reason", reason)], n);
        }

        out.family(
            "eddy_connections_open",
            "gauge",
            "Client connections being served now, by listener.",
        );
        for l in Listener::ALL {
            out.sample(
                "eddy_connections_open",
                &[("listener", l.label())],
                self.connections(l).open,
            );
        }
        out.family(
            "eddy_connections_total",
            "counter",
            "Client connections accepted and served, by listener.",
        );
        for l in Listener::ALL {
            out.sample(
                "eddy_connections_total",
                &[("listener", l.label())],
                self.connections(l).total,
            );
        }
        out.family(
            "eddy_connections_rejected_total",
            "counter",
            "Client connections turned away with 503 at the connection cap, by listener.",
        );
        for l in Listener::ALL {
            out.sample(
                "eddy_connections_rejected_total",
                &[("listener", l.label())],
                self.connections(l).rejected,
            );
        }

        out.family(
            "eddy_misses_total",
            "counter",
            "Requests this appliance could not serve, by kind: content (a key it does not hold, 404) and health (a connection turned away at the cap).",
        );
        let (content, health) = self.misses();
        out.sample("eddy_misses_total", &[("kind", "content")], content);
        out.sample("eddy_misses_total", &[("kind", "health")], health);
        out.family(
            "eddy_tls_handshakes_total",
            "counter",
            "Completed TLS handshakes, by protocol version and negotiated ALPN.",
        );
        for (v, row) in self.handshakes.iter().enumerate() {
            for (a, n) in row.iter().enumerate() {
                let n = n.load(Relaxed);
                let version = TLS_VERSIONS.get(v).copied();
                let alpn = TLS_ALPNS.get(a).copied();
                if (version.is_none() || alpn.is_none()) && n == 0 {
                    continue;
                }
                out.sample(
                    "eddy_tls_handshakes_total",
                    &[
                        ("version", version.unwrap_or(OTHER)),
                        ("alpn", alpn.unwrap_or(OTHER)),
                    ],
                    n,
                );
            }
        }
        out.family(
            "eddy_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed.",
        );
        out.sample(
            "eddy_tls_handshake_failures_total",
            &[],
            self.handshake_failures.load(Relaxed),
        );
        out.family(
            "eddy_tls_cert_reloads_total",
            "counter",
            "Certificate reloads, by result.",
        );
        for (i, result) in ["ok", "failed"].iter().enumerate() {
            out.sample(
                "eddy_tls_cert_reloads_total",
                &[("result", result)],
                self.cert_reloads[i].load(Relaxed),
            );
        }
        out.family(
            "eddy_tls_cert_not_after_seconds",
            "gauge",
            "The serving certificate's notAfter in Unix seconds (absent until one is loaded).",
        );
        let not_after = self.cert_not_after.load(Relaxed);
        if not_after != UNSET {
            out.sample("eddy_tls_cert_not_after_seconds", &[], not_after);
        }
        out.family(
            "eddy_ktls_info",
            "gauge",
            "How TLS records are sealed: kernel (kTLS), userspace, or off (always 1).",
        );
        let (mode, reason) = self.ktls();
        out.sample("eddy_ktls_info", &[("mode", mode), ("reason", reason)], 1);

        out.family(
            "eddy_disk_wait_windows_total",
            "counter",
            "Body windows (up to 2 MiB) sent or read on the blocking pool because they may need a disk read; a rising rate means the page cache does not hold what clients ask for.",
        );
        out.sample(
            "eddy_disk_wait_windows_total",
            &[],
            self.cold_windows.load(Relaxed),
        );
        out.family(
            "eddy_memory_trims_total",
            "counter",
            "Times freed memory was given back to the kernel (malloc_trim) after many connections closed.",
        );
        out.sample(
            "eddy_memory_trims_total",
            &[],
            self.memory_trims.load(Relaxed),
        );

        out.family(
            "eddy_store_objects",
            "gauge",
            "Objects in the store's index, by disk root.",
        );
        for d in disks {
            let root = d.root.to_string_lossy();
            out.sample("eddy_store_objects", &[("disk", &root)], d.objects);
        }
        out.family(
            "eddy_store_bytes",
            "gauge",
            "Bytes of the indexed objects (their lengths), by disk root.",
        );
        for d in disks {
            let root = d.root.to_string_lossy();
            out.sample("eddy_store_bytes", &[("disk", &root)], d.bytes);
        }
        out.text
    }
}

/// Counts one connection as open while it lives (see [`Metrics::track_connection`]).
#[derive(Debug)]
pub struct OpenConnection {
    metrics: Arc<Metrics>,
    listener: Listener,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connection_closed(self.listener);
    }
}

/// The text being built.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the text format wants it: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text as the text format wants it: `\` → `\\`, newline → `\n`.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Appends the fill's families (`eddy_fill_*`) from its progress counters.
pub fn render_fill(body: &mut String, p: &eddy_fill::progress::Progress) {
    use eddy_fill::progress::ErrorKind;
    let s = p.snapshot();
    let mut out = Exposition::default();
    out.family("eddy_fill_state", "gauge", "The fill's state (1 for the current one): idle, waiting (work outside the window), filling.");
    for state in ["idle", "waiting", "filling"] {
        out.sample(
            "eddy_fill_state",
            &[("state", state)],
            u8::from(s.state == state),
        );
    }
    out.family(
        "eddy_fill_generation",
        "gauge",
        "The generation of the manifest held (0: none yet).",
    );
    out.sample("eddy_fill_generation", &[], s.generation.unwrap_or(0));
    out.family("eddy_fill_runs_total", "counter", "Fill runs started.");
    out.sample("eddy_fill_runs_total", &[], s.runs);
    out.family(
        "eddy_fill_objects_planned",
        "gauge",
        "Objects to download in the current or last run.",
    );
    out.sample("eddy_fill_objects_planned", &[], s.objects_planned);
    out.family(
        "eddy_fill_objects_done",
        "gauge",
        "Objects installed in the current or last run.",
    );
    out.sample("eddy_fill_objects_done", &[], s.objects_done);
    out.family(
        "eddy_fill_bytes_planned",
        "gauge",
        "Bytes to download in the current or last run (staged bytes excluded).",
    );
    out.sample("eddy_fill_bytes_planned", &[], s.bytes_planned);
    out.family(
        "eddy_fill_bytes_done",
        "gauge",
        "Bytes downloaded in the current or last run.",
    );
    out.sample("eddy_fill_bytes_done", &[], s.bytes_done);
    out.family(
        "eddy_fill_downloaded_bytes_total",
        "counter",
        "Bytes received from fill sources, retries and rejected bytes included.",
    );
    out.sample("eddy_fill_downloaded_bytes_total", &[], s.bytes_downloaded);
    out.family(
        "eddy_fill_installed_objects_total",
        "counter",
        "Objects installed by the fill.",
    );
    out.sample(
        "eddy_fill_installed_objects_total",
        &[],
        p.installs.load(Relaxed),
    );
    out.family(
        "eddy_fill_evicted_objects_total",
        "counter",
        "Objects evicted because the manifest dropped them.",
    );
    out.sample("eddy_fill_evicted_objects_total", &[], s.objects_evicted);
    out.family(
        "eddy_fill_skipped_objects",
        "gauge",
        "Manifest objects left out of the current or last run for lack of room.",
    );
    out.sample("eddy_fill_skipped_objects", &[], s.objects_skipped);
    out.family(
        "eddy_fill_rate_bytes_per_second",
        "gauge",
        "Download rate of the current or last run.",
    );
    out.sample("eddy_fill_rate_bytes_per_second", &[], s.rate_bytes_per_sec);
    out.family("eddy_fill_errors_total", "counter", "Fill errors by kind: network, status, corrupt (hash mismatch), io, disk_full, manifest, exhausted.");
    for k in ErrorKind::ALL {
        out.sample(
            "eddy_fill_errors_total",
            &[("kind", k.label())],
            p.errors(k),
        );
    }
    out.family(
        "eddy_fill_manifest_refused_total",
        "counter",
        "Manifests refused, by reason; nothing changes on disk for any of them.",
    );
    let refusals = p.refusals();
    for reason in eddy_proto::manifest::Refusal::LABELS {
        out.sample(
            "eddy_fill_manifest_refused_total",
            &[("reason", reason)],
            refusals.get(reason).copied().unwrap_or(0),
        );
    }
    body.push_str(&out.text);
}

/// Appends the reporter's families (`eddy_report_*`).
pub fn render_report(body: &mut String, c: &crate::report::Counters) {
    let mut out = Exposition::default();
    out.family(
        "eddy_report_sent_total",
        "counter",
        "Reports the control plane accepted, by kind.",
    );
    for (i, kind) in crate::report::KINDS.iter().enumerate() {
        out.sample(
            "eddy_report_sent_total",
            &[("kind", kind)],
            c.sent[i].load(Relaxed),
        );
    }
    out.family(
        "eddy_report_dropped_total",
        "counter",
        "Reports dropped because the queue was full while the control plane was unreachable.",
    );
    out.sample("eddy_report_dropped_total", &[], c.dropped.load(Relaxed));
    out.family(
        "eddy_report_errors_total",
        "counter",
        "Failed report posts (unreachable, or refused).",
    );
    out.sample("eddy_report_errors_total", &[], c.errors.load(Relaxed));
    out.family(
        "eddy_report_queued",
        "gauge",
        "Reports waiting to be posted.",
    );
    out.sample("eddy_report_queued", &[], c.queued.load(Relaxed));
    body.push_str(&out.text);
}

/// Appends the access log's family (`eddy_access_log_lines_total`).
pub fn render_access_log(body: &mut String, log: &crate::access_log::AccessLog) {
    let mut out = Exposition::default();
    out.family("eddy_access_log_lines_total", "counter", "Access log lines, by result: written (handed to the writer) or dropped (the writer fell behind).");
    out.sample(
        "eddy_access_log_lines_total",
        &[("result", "written")],
        log.written.load(Relaxed),
    );
    out.sample(
        "eddy_access_log_lines_total",
        &[("result", "dropped")],
        log.dropped.load(Relaxed),
    );
    body.push_str(&out.text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    const FAMILIES: [&str; 18] = [
        "eddy_build_info",
        "eddy_start_time_seconds",
        "eddy_requests_total",
        "eddy_response_body_bytes_total",
        "eddy_token_refusals_total",
        "eddy_connections_open",
        "eddy_connections_total",
        "eddy_connections_rejected_total",
        "eddy_misses_total",
        "eddy_tls_handshakes_total",
        "eddy_tls_handshake_failures_total",
        "eddy_tls_cert_reloads_total",
        "eddy_tls_cert_not_after_seconds",
        "eddy_ktls_info",
        "eddy_disk_wait_windows_total",
        "eddy_memory_trims_total",
        "eddy_store_objects",
        "eddy_store_bytes",
    ];

    fn fresh() -> Metrics {
        Metrics::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    }

    fn disks() -> Vec<DiskStats> {
        vec![
            DiskStats {
                root: PathBuf::from("/srv/d0"),
                objects: 3,
                bytes: 300,
            },
            DiskStats {
                root: PathBuf::from("/srv/d1"),
                objects: 0,
                bytes: 0,
            },
        ]
    }

    /// The value of the sample line `series` (name plus labels, as rendered).
    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_owned)
    }

    #[track_caller]
    fn assert_value(text: &str, series: &str, want: &str) {
        assert_eq!(
            value(text, series).as_deref(),
            Some(want),
            "{series} in:\n{text}"
        );
    }

    #[test]
    fn fresh_registry_renders_every_series() {
        let text = fresh().render(&disks());
        for f in FAMILIES {
            assert!(text.contains(&format!("# HELP {f} ")), "HELP of {f}");
            assert!(text.contains(&format!("# TYPE {f} ")), "TYPE of {f}");
        }
        assert_value(
            &text,
            &format!(
                "eddy_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            "1",
        );
        assert_value(&text, "eddy_start_time_seconds", "1700000000");
        for t in ["http", "https", "h2"] {
            for s in STATUS_LABELS {
                assert_value(
                    &text,
                    &format!("eddy_requests_total{{transport=\"{t}\",status=\"{s}\"}}"),
                    "0",
                );
            }
            assert_value(
                &text,
                &format!("eddy_response_body_bytes_total{{transport=\"{t}\"}}"),
                "0",
            );
        }
        for r in REASONS {
            assert_value(
                &text,
                &format!("eddy_token_refusals_total{{reason=\"{}\"}}", r.label()),
                "0",
            );
        }
        for l in ["plain", "tls"] {
            for f in [
                "eddy_connections_open",
                "eddy_connections_total",
                "eddy_connections_rejected_total",
            ] {
                assert_value(&text, &format!("{f}{{listener=\"{l}\"}}"), "0");
            }
        }
        for v in TLS_VERSIONS {
            for a in TLS_ALPNS {
                assert_value(
                    &text,
                    &format!("eddy_tls_handshakes_total{{version=\"{v}\",alpn=\"{a}\"}}"),
                    "0",
                );
            }
        }
        assert!(
            !text.contains("version=\"other\"") && !text.contains("alpn=\"other\""),
            "no other handshake series yet"
        );
        assert_value(&text, "eddy_tls_handshake_failures_total", "0");
        assert_value(&text, "eddy_tls_cert_reloads_total{result=\"ok\"}", "0");
        assert_value(&text, "eddy_tls_cert_reloads_total{result=\"failed\"}", "0");
        assert_eq!(value(&text, "eddy_tls_cert_not_after_seconds"), None);
        assert_value(
            &text,
            "eddy_ktls_info{mode=\"off\",reason=\"no_tls_listener\"}",
            "1",
        );
        assert_value(&text, "eddy_store_objects{disk=\"/srv/d0\"}", "3");
        assert_value(&text, "eddy_store_bytes{disk=\"/srv/d0\"}", "300");
        assert_value(&text, "eddy_store_objects{disk=\"/srv/d1\"}", "0");
    }

    #[test]
    fn every_line_is_well_formed_and_families_are_contiguous() {
        let m = fresh();
        m.tls_handshake("1.3", "h2");
        m.set_cert_not_after(1_800_000_000);
        let text = m.render(&disks());
        assert!(text.ends_with('\n'));
        let mut current = "";
        let mut seen = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert!(!seen.contains(&name), "{name} declared twice");
                seen.push(name);
                current = name;
            } else if line.starts_with("# HELP ") {
                continue;
            } else {
                let name = line
                    .split(['{', ' '])
                    .next()
                    .expect("a sample starts with its name");
                assert_eq!(name, current, "sample outside its family: {line}");
                let v = line.rsplit(' ').next().expect("value");
                assert!(v.parse::<f64>().is_ok(), "bad value in {line}");
            }
        }
        assert_eq!(seen.len(), FAMILIES.len());
    }

    #[test]
    fn counters_move_after_calls() {
        let m = Arc::new(fresh());
        m.request(Transport::Http1, 206, 1000);
        m.request(Transport::Http1, 206, 24);
        m.request(Transport::H2, 404, 0);
        m.request(Transport::Https1, 299, 7);
        m.token_refused(Denied::Expired);
        m.token_refused(Denied::Expired);
        m.token_refused(Denied::WrongClient);
        m.connection_opened(Listener::Plain);
        m.connection_opened(Listener::Plain);
        m.connection_closed(Listener::Plain);
        {
            let _open = m.track_connection(Listener::Tls);
            assert_eq!(m.connections(Listener::Tls).open, 1);
        }
        m.connection_rejected(Listener::Plain);
        m.tls_handshake("1.3", "h2");
        m.tls_handshake("1.2", "http/1.1");
        m.tls_handshake("1.0", "spdy/3");
        m.tls_handshake_failed();
        m.cert_reloaded(true);
        m.cert_reloaded(false);
        m.cert_reloaded(false);
        m.set_cert_not_after(1_800_000_000);
        m.set_ktls("kernel", "probe_ok");
        let text = m.render(&[]);
        let checks = [
            (
                "eddy_requests_total{transport=\"http\",status=\"206\"}",
                "2",
            ),
            (
                "eddy_requests_total{transport=\"http\",status=\"200\"}",
                "0",
            ),
            ("eddy_requests_total{transport=\"h2\",status=\"404\"}", "1"),
            (
                "eddy_requests_total{transport=\"https\",status=\"other\"}",
                "1",
            ),
            ("eddy_response_body_bytes_total{transport=\"http\"}", "1024"),
            ("eddy_response_body_bytes_total{transport=\"https\"}", "7"),
            ("eddy_response_body_bytes_total{transport=\"h2\"}", "0"),
            ("eddy_token_refusals_total{reason=\"expired\"}", "2"),
            ("eddy_token_refusals_total{reason=\"wrong_client\"}", "1"),
            ("eddy_token_refusals_total{reason=\"missing\"}", "0"),
            ("eddy_connections_open{listener=\"plain\"}", "1"),
            ("eddy_connections_total{listener=\"plain\"}", "2"),
            ("eddy_connections_open{listener=\"tls\"}", "0"),
            ("eddy_connections_total{listener=\"tls\"}", "1"),
            ("eddy_connections_rejected_total{listener=\"plain\"}", "1"),
            (
                "eddy_tls_handshakes_total{version=\"1.3\",alpn=\"h2\"}",
                "1",
            ),
            (
                "eddy_tls_handshakes_total{version=\"1.2\",alpn=\"http/1.1\"}",
                "1",
            ),
            (
                "eddy_tls_handshakes_total{version=\"other\",alpn=\"other\"}",
                "1",
            ),
            ("eddy_tls_handshake_failures_total", "1"),
            ("eddy_tls_cert_reloads_total{result=\"ok\"}", "1"),
            ("eddy_tls_cert_reloads_total{result=\"failed\"}", "2"),
            ("eddy_tls_cert_not_after_seconds", "1800000000"),
            ("eddy_ktls_info{mode=\"kernel\",reason=\"probe_ok\"}", "1"),
        ];
        for (series, want) in checks {
            assert_value(&text, series, want);
        }
        assert!(!text.contains("mode=\"off\""), "one kTLS info series");
        let by_status = m.requests_by_status();
        assert!(by_status.contains(&("206", 2)));
        assert!(by_status.contains(&("other", 1)));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("plain"), "plain");
        assert_eq!(escape_label(r"a\b"), r"a\\b");
        assert_eq!(escape_label("say \"hi\""), r#"say \"hi\""#);
        assert_eq!(escape_label("two\nlines"), r"two\nlines");
        let text = fresh().render(&[DiskStats {
            root: PathBuf::from("/srv/we\\ird \"disk\"\nname"),
            objects: 1,
            bytes: 2,
        }]);
        assert_value(
            &text,
            r#"eddy_store_objects{disk="/srv/we\\ird \"disk\"\nname"}"#,
            "1",
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("name")).count(), 0);
    }

    #[test]
    fn every_status_and_reason_has_its_own_slot() {
        for (i, s) in STATUSES.iter().enumerate() {
            assert_eq!(status_slot(*s), i);
            assert_eq!(STATUS_LABELS[i], s.to_string());
        }
        assert_eq!(status_slot(418), STATUSES.len());
        assert_eq!(STATUS_LABELS[STATUSES.len()], "other");
        for (i, r) in REASONS.iter().enumerate() {
            assert_eq!(reason_slot(*r), i);
        }
    }
}
