//! The serve path's metric families: requests, body bytes, request durations,
//! range requests, signed-URL refusals, connections, misses, cold windows,
//! memory trims, and the TLS listener's handshakes, certificate and kTLS mode.
//!
//! Owns: the declaration of each of these families (name, help, type, label
//! set) and their registration in the process [`Registry`], and the recording
//! methods the serve path calls. Every series with a fixed label set is
//! resolved to a handle here, once, when [`ServeMetrics::new`] runs, so that
//! recording is one relaxed atomic add (a histogram observation a few): no
//! lock, no allocation, no map lookup per request. Label values come from the
//! fixed sets below (statuses eddy does not emit count as `other`), never from
//! a client. It must never block, fail or do I/O.

use std::time::Duration;

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use crate::metrics::{MetricsError, Registry};
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
        self as usize
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
        self as usize
    }
}

/// What became of a request that asked for part of an object (the `kind`
/// label of `eddy_range_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeKind {
    /// A Range field answered with one part (206).
    Single,
    /// A Range field answered with multipart/byteranges (206).
    Multipart,
    /// A Range field no part of which the object has (416).
    Unsatisfiable,
    /// A Range field answered with the whole object or a precondition's
    /// status: unparseable, too many parts, or an If-Range that did not match
    /// (RFC 9110 §14.2 lets a server ignore a Range it will not honour).
    Ignored,
    /// The `/range/START-END` path form.
    Path,
}

impl RangeKind {
    /// Every kind, in slot order.
    pub const ALL: [RangeKind; 5] = [
        RangeKind::Single,
        RangeKind::Multipart,
        RangeKind::Unsatisfiable,
        RangeKind::Ignored,
        RangeKind::Path,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RangeKind::Single => "single",
            RangeKind::Multipart => "multipart",
            RangeKind::Unsatisfiable => "unsatisfiable",
            RangeKind::Ignored => "ignored",
            RangeKind::Path => "path",
        }
    }
}

/// The statuses eddy emits, each with its own series; anything else is `other`.
const STATUSES: [u16; 17] = [
    200, 204, 206, 302, 304, 400, 403, 404, 405, 412, 414, 416, 431, 500, 501, 503, 505,
];
/// The `status` label of each slot: the statuses above, then `other`.
const STATUS_LABELS: [&str; STATUS_SLOTS] = [
    "200", "204", "206", "302", "304", "400", "403", "404", "405", "412", "414", "416", "431",
    "500", "501", "503", "505", "other",
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

/// Upper bounds of the request-duration buckets, in seconds: from a warm
/// small range on loopback (well under a millisecond) to a multi-gigabyte
/// body to a slow player (a minute); past that only the count and sum move.
const DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// TLS versions and ALPN results with their own series, present from the
/// start; anything else is counted as `other`, a series made on first use.
const TLS_VERSIONS: [&str; 2] = ["1.2", "1.3"];
const TLS_ALPNS: [&str; 3] = ["h2", "http/1.1", "none"];
const OTHER: &str = "other";

/// The open, total and rejected connection counts of one listener kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionCounts {
    pub open: i64,
    pub total: u64,
    pub rejected: u64,
}

/// The serve path's handles. Create one in `main`, share it as `Arc`.
#[derive(Debug)]
pub struct ServeMetrics {
    version: &'static str,
    started_unix: i64,
    requests: [[IntCounter; STATUS_SLOTS]; 3],
    body_bytes: [IntCounter; 3],
    duration: [Histogram; 3],
    ranges: [IntCounter; RangeKind::ALL.len()],
    refusals: [IntCounter; REASONS.len()],
    connections_open: [IntGauge; 2],
    connections_total: [IntCounter; 2],
    connections_rejected: [IntCounter; 2],
    /// `[content, health]`.
    misses: [IntCounter; 2],
    /// `[accepted, refused]`.
    preflights: [IntCounter; 2],
    cold_windows: IntCounter,
    memory_trims: IntCounter,
    /// The TLS listener's families.
    pub tls: TlsMetrics,
}

impl ServeMetrics {
    /// Declares the serve and TLS families in `registry`, every fixed series
    /// at zero (so that `rate()` and alerts see them from the start).
    pub fn new(registry: &Registry) -> Result<ServeMetrics, MetricsError> {
        let requests = registry.counter_vec(
            "eddy_requests_total",
            "Responses sent, by transport and status (statuses eddy does not emit count as other).",
            &["transport", "status"],
        )?;
        let body_bytes = registry.counter_vec(
            "eddy_response_body_bytes_total",
            "Response body bytes sent (heads excluded), by transport.",
            &["transport"],
        )?;
        let duration = registry.histogram_vec(
            "eddy_request_duration_seconds",
            "From a request's head parsed to its last body byte handed to the kernel (or the response cut short), by transport.",
            &["transport"],
            &DURATION_BUCKETS,
        )?;
        let ranges = registry.counter_vec(
            "eddy_range_requests_total",
            "Requests for part of an object, by what became of them: single (206), multipart (206 multipart/byteranges), unsatisfiable (416), ignored (the whole object or a precondition's status), path (the /range/START-END form).",
            &["kind"],
        )?;
        let refusals = registry.counter_vec(
            "eddy_token_refusals_total",
            "Requests refused by the signed-URL check, by reason.",
            &["reason"],
        )?;
        let open = registry.gauge_vec(
            "eddy_connections_open",
            "Client connections being served now, by listener.",
            &["listener"],
        )?;
        let total = registry.counter_vec(
            "eddy_connections_total",
            "Client connections accepted and served, by listener.",
            &["listener"],
        )?;
        let rejected = registry.counter_vec(
            "eddy_connections_rejected_total",
            "Client connections turned away with 503 at the connection cap, by listener.",
            &["listener"],
        )?;
        let misses = registry.counter_vec(
            "eddy_misses_total",
            "Requests this appliance could not serve, by kind: content (a key it does not hold, 404) and health (an object on a failed drive, 404, or a connection turned away at the cap).",
            &["kind"],
        )?;
        let preflights = registry.counter_vec(
            "eddy_cors_preflights_total",
            "CORS preflight requests (OPTIONS with Origin and Access-Control-Request-Method), by result: accepted (204 with the CORS fields) or refused (answered as with CORS off).",
            &["result"],
        )?;
        let t = |t: usize| Transport::ALL[t].label();
        let l = |l: usize| Listener::ALL[l].label();
        Ok(ServeMetrics {
            version: env!("CARGO_PKG_VERSION"),
            started_unix: registry.started_unix(),
            requests: std::array::from_fn(|tr| {
                std::array::from_fn(|s| requests.with_label_values(&[t(tr), STATUS_LABELS[s]]))
            }),
            body_bytes: std::array::from_fn(|tr| body_bytes.with_label_values(&[t(tr)])),
            duration: std::array::from_fn(|tr| duration.with_label_values(&[t(tr)])),
            ranges: std::array::from_fn(|k| ranges.with_label_values(&[RangeKind::ALL[k].label()])),
            refusals: std::array::from_fn(|r| refusals.with_label_values(&[REASONS[r].label()])),
            connections_open: std::array::from_fn(|i| open.with_label_values(&[l(i)])),
            connections_total: std::array::from_fn(|i| total.with_label_values(&[l(i)])),
            connections_rejected: std::array::from_fn(|i| rejected.with_label_values(&[l(i)])),
            misses: [
                misses.with_label_values(&["content"]),
                misses.with_label_values(&["health"]),
            ],
            preflights: [
                preflights.with_label_values(&["accepted"]),
                preflights.with_label_values(&["refused"]),
            ],
            cold_windows: registry.counter(
                "eddy_disk_wait_windows_total",
                "Body windows (up to 2 MiB) sent or read on the blocking pool because they may need a disk read; a rising rate means the page cache does not hold what clients ask for.",
            )?,
            memory_trims: registry.counter(
                "eddy_memory_trims_total",
                "Times freed memory was given back to the kernel (malloc_trim) after many connections closed.",
            )?,
            tls: TlsMetrics::new(registry)?,
        })
    }

    // ---- recording (the serve path calls these) ----------------------------

    /// One response sent: its status, the bytes of its body (not the head),
    /// and how long it took from its head parsed. Call once per response,
    /// after the body went out (or was cut short: count what was sent).
    pub fn request(&self, transport: Transport, status: u16, body_bytes: u64, took: Duration) {
        let t = transport.slot();
        self.requests[t][status_slot(status)].inc();
        self.body_bytes[t].inc_by(body_bytes);
        self.duration[t].observe(took.as_secs_f64());
    }

    /// A request asked for part of an object; `kind` says what became of it.
    pub fn range(&self, kind: RangeKind) {
        self.ranges[kind as usize].inc();
    }

    /// A body window was sent or read off the event loop because it may need
    /// the disk (`serve::prefetch`).
    pub fn cold_window(&self) {
        self.cold_windows.inc();
    }

    /// A request for a key the store does not hold (404): a content miss.
    pub fn content_miss(&self) {
        self.misses[0].inc();
    }

    /// A request for an object on a failed drive (404): a health miss.
    pub fn health_miss(&self) {
        self.misses[1].inc();
    }

    /// A CORS preflight, accepted or refused.
    pub fn preflight(&self, accepted: bool) {
        self.preflights[usize::from(!accepted)].inc();
    }

    /// A request refused by the signed-URL check.
    pub fn token_refused(&self, reason: Denied) {
        self.refusals[reason_slot(reason)].inc();
    }

    /// Counts a connection as opened now and as closed when the returned guard
    /// is dropped, so that an early return or a panic cannot leak the gauge.
    pub fn track_connection(&self, listener: Listener) -> OpenConnection {
        let l = listener.slot();
        self.connections_total[l].inc();
        let open = self.connections_open[l].clone();
        open.inc();
        OpenConnection { open }
    }

    /// A connection was accepted over the connection cap and turned away (503):
    /// a health miss. It is not counted as opened.
    pub fn connection_rejected(&self, listener: Listener) {
        self.connections_rejected[listener.slot()].inc();
        self.misses[1].inc();
    }

    /// Freed memory was given back to the kernel after a flood receded.
    pub fn memory_trimmed(&self) {
        self.memory_trims.inc();
    }

    // ---- reading (the status page, the reporter, the trimmer) --------------

    /// The version in `eddy_build_info`.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The start time in Unix seconds.
    pub fn started_unix(&self) -> i64 {
        self.started_unix
    }

    /// Misses by kind, `(content, health)`, since the process started.
    pub fn misses(&self) -> (u64, u64) {
        (self.misses[0].get(), self.misses[1].get())
    }

    /// Responses sent, over every status and transport.
    pub fn requests_total(&self) -> u64 {
        self.requests.iter().flatten().map(IntCounter::get).sum()
    }

    /// Responses per status label (`"200"`, …, `"other"`), summed over transports.
    pub fn requests_by_status(&self) -> Vec<(&'static str, u64)> {
        STATUS_LABELS
            .iter()
            .enumerate()
            .map(|(s, label)| (*label, self.requests.iter().map(|t| t[s].get()).sum()))
            .collect()
    }

    /// Response body bytes per transport.
    pub fn body_bytes(&self) -> Vec<(Transport, u64)> {
        Transport::ALL
            .iter()
            .map(|t| (*t, self.body_bytes[t.slot()].get()))
            .collect()
    }

    /// Token refusals per reason label.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        REASONS
            .iter()
            .map(|r| (r.label(), self.refusals[reason_slot(*r)].get()))
            .collect()
    }

    /// Connection counts of one listener kind.
    pub fn connections(&self, listener: Listener) -> ConnectionCounts {
        let l = listener.slot();
        ConnectionCounts {
            open: self.connections_open[l].get(),
            total: self.connections_total[l].get(),
            rejected: self.connections_rejected[l].get(),
        }
    }

    /// The kTLS `(mode, reason)` label values.
    pub fn ktls(&self) -> (&'static str, &'static str) {
        self.tls.ktls()
    }
}

/// Counts one connection as open while it lives (see
/// [`ServeMetrics::track_connection`]).
#[derive(Debug)]
pub struct OpenConnection {
    open: IntGauge,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// The TLS listener's families.
#[derive(Debug)]
pub struct TlsMetrics {
    handshakes: IntCounterVec,
    known_handshakes: [[IntCounter; TLS_ALPNS.len()]; TLS_VERSIONS.len()],
    handshake_failures: IntCounter,
    /// `[ok, failed]`.
    cert_reloads: [IntCounter; 2],
    /// No labels; its one series exists once a certificate is loaded.
    cert_not_after: IntGaugeVec,
    ktls_info: IntGaugeVec,
    ktls: std::sync::Mutex<(&'static str, &'static str)>,
}

/// `eddy_ktls_info` before [`TlsMetrics::set_ktls`]: there is no TLS
/// listener, so there is nothing for kTLS to do.
const KTLS_DEFAULT: (&str, &str) = ("off", "no_tls_listener");

impl TlsMetrics {
    fn new(registry: &Registry) -> Result<TlsMetrics, MetricsError> {
        let handshakes = registry.counter_vec(
            "eddy_tls_handshakes_total",
            "Completed TLS handshakes, by protocol version and negotiated ALPN.",
            &["version", "alpn"],
        )?;
        let reloads = registry.counter_vec(
            "eddy_tls_cert_reloads_total",
            "Certificate reloads, by result.",
            &["result"],
        )?;
        let ktls_info = registry.gauge_vec(
            "eddy_ktls_info",
            "How TLS records are sealed (always 1): mode kernel, userspace or off, and a fixed reason word.",
            &["mode", "reason"],
        )?;
        ktls_info
            .with_label_values(&[KTLS_DEFAULT.0, KTLS_DEFAULT.1])
            .set(1);
        Ok(TlsMetrics {
            known_handshakes: std::array::from_fn(|v| {
                std::array::from_fn(|a| {
                    handshakes.with_label_values(&[TLS_VERSIONS[v], TLS_ALPNS[a]])
                })
            }),
            handshakes,
            handshake_failures: registry.counter(
                "eddy_tls_handshake_failures_total",
                "TLS handshakes that failed.",
            )?,
            cert_reloads: [
                reloads.with_label_values(&["ok"]),
                reloads.with_label_values(&["failed"]),
            ],
            cert_not_after: registry.gauge_vec(
                "eddy_tls_cert_not_after_seconds",
                "The serving certificate's notAfter in Unix seconds (absent until one is loaded).",
                &[],
            )?,
            ktls_info,
            ktls: std::sync::Mutex::new(KTLS_DEFAULT),
        })
    }

    /// A completed TLS handshake: `version` is `"1.2"` or `"1.3"`, `alpn` is
    /// `"h2"`, `"http/1.1"` or `"none"` (other values count as `other`).
    pub fn handshake(&self, version: &'static str, alpn: &'static str) {
        let v = TLS_VERSIONS.iter().position(|k| *k == version);
        let a = TLS_ALPNS.iter().position(|k| *k == alpn);
        match (v, a) {
            (Some(v), Some(a)) => self.known_handshakes[v][a].inc(),
            _ => self
                .handshakes
                .with_label_values(&[v.map_or(OTHER, |_| version), a.map_or(OTHER, |_| alpn)])
                .inc(),
        }
    }

    /// A TLS handshake that failed (bad client hello, no shared cipher, timeout).
    pub fn handshake_failed(&self) {
        self.handshake_failures.inc();
    }

    /// A certificate reload was attempted; `ok` when the new one is in use.
    pub fn cert_reloaded(&self, ok: bool) {
        self.cert_reloads[usize::from(!ok)].inc();
    }

    /// The serving certificate's notAfter, in Unix seconds.
    pub fn set_cert_not_after(&self, unix_secs: i64) {
        self.cert_not_after
            .with_label_values::<&str>(&[])
            .set(unix_secs);
    }

    /// How TLS records are sealed: `mode` is `"kernel"`, `"userspace"` or
    /// `"off"`; `reason` a fixed snake_case word (for example `"no_module"`).
    /// Called at start-up, never per request.
    pub fn set_ktls(&self, mode: &'static str, reason: &'static str) {
        let mut held = self
            .ktls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the current mode is rendered.
        let _ = self.ktls_info.remove_label_values(&[held.0, held.1]);
        self.ktls_info.with_label_values(&[mode, reason]).set(1);
        *held = (mode, reason);
    }

    /// The kTLS `(mode, reason)` label values.
    pub fn ktls(&self) -> (&'static str, &'static str) {
        *self
            .ktls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The handshakes counted for `version` and `alpn` (label values).
    pub fn handshakes(&self, version: &str, alpn: &str) -> u64 {
        self.handshakes
            .get_metric_with_label_values(&[version, alpn])
            .map_or(0, |c| c.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::{assert_value, value};
    use std::time::UNIX_EPOCH;

    fn fresh() -> Result<(Registry, ServeMetrics), MetricsError> {
        let r = Registry::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))?;
        let m = ServeMetrics::new(&r)?;
        Ok((r, m))
    }

    const FAMILIES: [&str; 17] = [
        "eddy_cors_preflights_total",
        "eddy_requests_total",
        "eddy_response_body_bytes_total",
        "eddy_request_duration_seconds",
        "eddy_range_requests_total",
        "eddy_token_refusals_total",
        "eddy_connections_open",
        "eddy_connections_total",
        "eddy_connections_rejected_total",
        "eddy_misses_total",
        "eddy_tls_handshakes_total",
        "eddy_tls_handshake_failures_total",
        "eddy_tls_cert_reloads_total",
        "eddy_ktls_info",
        "eddy_disk_wait_windows_total",
        "eddy_memory_trims_total",
        "eddy_start_time_seconds",
    ];

    #[test]
    fn a_fresh_registry_renders_every_fixed_series_at_zero() -> Result<(), MetricsError> {
        let (r, _m) = fresh()?;
        let text = r.render();
        for f in FAMILIES {
            assert!(text.contains(&format!("# HELP {f} ")), "HELP of {f}");
        }
        for t in ["http", "https", "h2"] {
            for s in STATUS_LABELS {
                assert_value(
                    &text,
                    &format!("eddy_requests_total{{status=\"{s}\",transport=\"{t}\"}}"),
                    "0",
                );
            }
            assert_value(
                &text,
                &format!("eddy_request_duration_seconds_count{{transport=\"{t}\"}}"),
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
        for k in RangeKind::ALL {
            assert_value(
                &text,
                &format!("eddy_range_requests_total{{kind=\"{}\"}}", k.label()),
                "0",
            );
        }
        assert_value(
            &text,
            "eddy_ktls_info{mode=\"off\",reason=\"no_tls_listener\"}",
            "1",
        );
        // Absent until a certificate is loaded.
        assert!(!text.contains("eddy_tls_cert_not_after_seconds"), "{text}");
        Ok(())
    }

    #[test]
    fn recording_moves_exactly_its_series() -> Result<(), MetricsError> {
        let (r, m) = fresh()?;
        m.request(Transport::Http1, 206, 1000, Duration::from_micros(700));
        m.request(Transport::H2, 299, 5, Duration::from_secs(90));
        m.range(RangeKind::Multipart);
        m.preflight(false);
        m.token_refused(Denied::Expired);
        m.content_miss();
        m.connection_rejected(Listener::Tls);
        let conn = m.track_connection(Listener::Plain);
        m.cold_window();
        m.memory_trimmed();
        m.tls.handshake("1.3", "h2");
        m.tls.handshake("1.1", "spdy");
        m.tls.handshake_failed();
        m.tls.cert_reloaded(false);
        m.tls.set_cert_not_after(1_800_000_000);
        m.tls.set_ktls("userspace", "no_module");
        let text = r.render();
        assert_value(
            &text,
            "eddy_requests_total{status=\"206\",transport=\"http\"}",
            "1",
        );
        assert_value(
            &text,
            "eddy_requests_total{status=\"other\",transport=\"h2\"}",
            "1",
        );
        assert_value(
            &text,
            "eddy_response_body_bytes_total{transport=\"http\"}",
            "1000",
        );
        assert_value(
            &text,
            "eddy_request_duration_seconds_bucket{transport=\"http\",le=\"0.0005\"}",
            "0",
        );
        assert_value(
            &text,
            "eddy_request_duration_seconds_bucket{transport=\"http\",le=\"0.001\"}",
            "1",
        );
        assert_value(
            &text,
            "eddy_request_duration_seconds_bucket{transport=\"h2\",le=\"60\"}",
            "0",
        );
        assert_value(
            &text,
            "eddy_request_duration_seconds_bucket{transport=\"h2\",le=\"+Inf\"}",
            "1",
        );
        assert_value(&text, "eddy_range_requests_total{kind=\"multipart\"}", "1");
        assert_value(&text, "eddy_cors_preflights_total{result=\"refused\"}", "1");
        assert_value(
            &text,
            "eddy_cors_preflights_total{result=\"accepted\"}",
            "0",
        );
        assert_value(&text, "eddy_range_requests_total{kind=\"single\"}", "0");
        assert_value(&text, "eddy_token_refusals_total{reason=\"expired\"}", "1");
        assert_value(&text, "eddy_misses_total{kind=\"content\"}", "1");
        assert_value(&text, "eddy_misses_total{kind=\"health\"}", "1");
        assert_value(
            &text,
            "eddy_connections_rejected_total{listener=\"tls\"}",
            "1",
        );
        assert_value(&text, "eddy_connections_open{listener=\"plain\"}", "1");
        assert_value(&text, "eddy_connections_total{listener=\"plain\"}", "1");
        assert_value(&text, "eddy_disk_wait_windows_total", "1");
        assert_value(&text, "eddy_memory_trims_total", "1");
        assert_value(
            &text,
            "eddy_tls_handshakes_total{alpn=\"h2\",version=\"1.3\"}",
            "1",
        );
        assert_value(
            &text,
            "eddy_tls_handshakes_total{alpn=\"other\",version=\"other\"}",
            "1",
        );
        assert_value(&text, "eddy_tls_handshake_failures_total", "1");
        assert_value(&text, "eddy_tls_cert_reloads_total{result=\"failed\"}", "1");
        assert_value(&text, "eddy_tls_cert_not_after_seconds", "1800000000");
        assert_value(
            &text,
            "eddy_ktls_info{mode=\"userspace\",reason=\"no_module\"}",
            "1",
        );
        assert_eq!(
            value(
                &text,
                "eddy_ktls_info{mode=\"off\",reason=\"no_tls_listener\"}"
            ),
            None
        );
        assert_eq!(m.requests_total(), 2);
        assert_eq!(m.misses(), (1, 1));
        drop(conn);
        assert_eq!(m.connections(Listener::Plain).open, 0);
        assert_eq!(m.tls.handshakes("1.3", "h2"), 1);
        Ok(())
    }

    #[test]
    fn every_status_and_reason_has_its_own_slot() {
        for (i, s) in STATUSES.iter().enumerate() {
            assert_eq!(status_slot(*s), i);
            assert_eq!(STATUS_LABELS[i], s.to_string());
        }
        assert_eq!(status_slot(299), STATUSES.len());
        for (i, r) in REASONS.iter().enumerate() {
            assert_eq!(reason_slot(*r), i);
        }
    }
}
