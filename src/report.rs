//! Reports to the control plane: health every few seconds, popularity as a
//! snapshot that resets the counts, inventory after every change and in full
//! on a schedule (protocol v1, `eddy_proto::report`, `docs/protocol.md`).
//!
//! Owns: building each message from what the server already counts (the
//! metrics' atomics, the store's index and per-object counters, the fill's
//! progress, the drain flag), the bounded queue that drops the oldest report
//! (counted) while the control plane is unreachable, the backoff with
//! jitter, and posting with the appliance's bearer token, on a thread of
//! its own. It must never block or slow serving: it only reads atomics and
//! takes the index's read lock, off the serving threads, and never waits on
//! the serving path.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eddy_proto::report::{self as wire, Report};

use crate::config;
use prometheus::{IntCounter, IntGauge};

use crate::metrics::{MetricsError, Registry};
use crate::serve::metrics::Listener;
use crate::serve::Shared;

/// The first backoff after a failed post; doubled per failure up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the reporter wakes to see what is due.
const TICK: Duration = Duration::from_millis(200);

/// What the reporter has done: its metric families (`eddy_report_*`),
/// declared here and recorded by the reporter thread alone.
#[derive(Debug)]
pub struct Counters {
    /// Reports accepted by the control plane, by kind: health, popularity, inventory.
    sent: [IntCounter; 3],
    /// Reports dropped from the full queue.
    dropped: IntCounter,
    /// Failed posts (unreachable, or a status other than 2xx).
    errors: IntCounter,
    /// Reports waiting.
    queued: IntGauge,
}

impl Counters {
    /// Declares the reporter's families in `registry`, at zero.
    pub fn new(registry: &Registry) -> Result<Counters, MetricsError> {
        let sent = registry.counter_vec(
            "eddy_report_sent_total",
            "Reports the control plane accepted, by kind.",
            &["kind"],
        )?;
        Ok(Counters {
            sent: std::array::from_fn(|i| sent.with_label_values(&[KINDS[i]])),
            dropped: registry.counter(
                "eddy_report_dropped_total",
                "Reports dropped because the queue was full while the control plane was unreachable.",
            )?,
            errors: registry.counter(
                "eddy_report_errors_total",
                "Failed report posts (unreachable, or refused).",
            )?,
            queued: registry.gauge("eddy_report_queued", "Reports waiting to be posted.")?,
        })
    }

    /// Reports the control plane accepted, by kind (in [`KINDS`] order).
    pub fn sent(&self) -> [u64; 3] {
        std::array::from_fn(|i| self.sent[i].get())
    }

    /// Reports dropped from the full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Failed posts.
    pub fn errors(&self) -> u64 {
        self.errors.get()
    }
}

/// The kinds, in the order of [`Counters::sent`].
pub const KINDS: [&str; 3] = ["health", "popularity", "inventory"];

fn kind_slot(r: &Report) -> usize {
    match r {
        Report::Health(_) => 0,
        Report::Popularity(_) => 1,
        Report::Inventory(_) => 2,
    }
}

/// The queue of reports waiting to be posted, and when the next attempt
/// may be made. Pure: time comes in as a `Duration` on the caller's clock.
#[derive(Debug)]
pub struct Queue {
    items: VecDeque<Report>,
    cap: usize,
    failures: u32,
    next_attempt: Duration,
}

impl Queue {
    pub fn new(cap: usize) -> Queue {
        Queue {
            items: VecDeque::new(),
            cap: cap.max(1),
            failures: 0,
            next_attempt: Duration::ZERO,
        }
    }

    /// Adds a report; returns true when the oldest had to be dropped.
    pub fn push(&mut self, r: Report) -> bool {
        let dropped = self.items.len() >= self.cap;
        if dropped {
            self.items.pop_front();
        }
        self.items.push_back(r);
        dropped
    }

    /// The report to post now, if one waits and the backoff allows.
    pub fn next(&self, now: Duration) -> Option<&Report> {
        (now >= self.next_attempt)
            .then(|| self.items.front())
            .flatten()
    }

    /// The front report was accepted.
    pub fn sent(&mut self) {
        self.items.pop_front();
        self.failures = 0;
    }

    /// The post failed at `now`: wait 1 s, 2 s, 4 s … up to a minute, with
    /// full jitter in the upper half (`jitter` in 0..1), so that appliances
    /// that lost the control plane together do not come back together.
    pub fn failed(&mut self, now: Duration, jitter: f64) {
        let exp = BASE_BACKOFF
            .saturating_mul(1u32 << self.failures.min(10))
            .min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        self.next_attempt = now + exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The running reporter.
#[derive(Debug)]
pub struct Handle {
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl Handle {
    /// Asks the reporter to stop at its next tick.
    pub fn stop(&self) {
        self.stop.store(true, Relaxed);
    }
}

/// Why the reporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the CA bundle {path} (report.ca_file): {reason}")]
    Ca { path: String, reason: String },
    #[error("cannot start the reporter thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// What a message is built from.
struct Sources {
    shared: Arc<Shared>,
    draining: Arc<dyn Fn() -> bool + Send + Sync>,
    fill: Option<Arc<eddy_fill::Handle>>,
    appliance: String,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sources {
    fn generation(&self) -> Option<u64> {
        self.fill.as_ref().and_then(|f| f.progress.generation())
    }

    fn health(&self, throughput_bps: u64) -> wire::Health {
        let m = &self.shared.metrics;
        let store = &self.shared.store;
        let stats = store.stats();
        let states = store.disk_statuses();
        let disks = stats
            .iter()
            .zip(&states)
            .enumerate()
            .map(|(i, (d, s))| wire::DiskHealth {
                id: d.root.display().to_string(),
                state: s.state.label().into(),
                free_bytes: store.free_bytes_in_service(i).unwrap_or(0),
                objects: d.objects,
                bytes: d.bytes,
                reason: s.reason.clone(),
            })
            .collect();
        wire::Health {
            version: wire::VERSION.into(),
            appliance: self.appliance.clone(),
            sent_at: unix_now(),
            software: m.version().to_owned(),
            serving: !(self.draining)(),
            disks,
            connections_open: Listener::ALL
                .iter()
                .map(|l| m.connections(*l).open.max(0) as u64)
                .sum(),
            requests_total: m.requests_total(),
            bytes_total: self.bytes_total(),
            throughput_bps,
            load1: load1(),
            generation: self.generation(),
        }
    }

    fn bytes_total(&self) -> u64 {
        self.shared
            .metrics
            .body_bytes()
            .iter()
            .map(|(_, n)| n)
            .sum()
    }

    fn inventory(&self) -> wire::Inventory {
        wire::Inventory {
            version: wire::VERSION.into(),
            appliance: self.appliance.clone(),
            sent_at: unix_now(),
            generation: self.generation(),
            objects: self
                .shared
                .store
                .list()
                .into_iter()
                .map(|l| wire::Held {
                    key: l.key.as_str().to_owned(),
                    size: l.len,
                    sha256: l.digest,
                    disk: l.disk_root.display().to_string(),
                })
                .collect(),
        }
    }
}

/// The host's 1-minute load average (0 where it cannot be read).
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Starts the reporter on a thread of its own.
pub fn start(
    settings: &config::Report,
    shared: Arc<Shared>,
    draining: Arc<dyn Fn() -> bool + Send + Sync>,
    fill: Option<Arc<eddy_fill::Handle>>,
    registry: &Registry,
) -> Result<Handle, ReportError> {
    let roots = if settings.url.starts_with("https://") {
        let err = |reason: String| ReportError::Ca {
            path: settings.ca_file.display().to_string(),
            reason,
        };
        let pem = std::fs::read(&settings.ca_file).map_err(|e| err(e.to_string()))?;
        eddy_fill::client::roots_from_pem(&pem).map_err(err)?
    } else {
        rustls::RootCertStore::empty()
    };
    let client = eddy_fill::client::Client::new(
        roots,
        Duration::from_secs(5),
        Duration::from_secs(10),
        settings.insecure_plain_http,
    );
    let counters = Arc::new(Counters::new(registry)?);
    let stop = Arc::new(AtomicBool::new(false));
    let sources = Sources {
        shared,
        draining,
        fill,
        appliance: settings.appliance.clone(),
    };
    let run = Run {
        sources,
        client,
        settings: settings.clone(),
        counters: counters.clone(),
        stop: stop.clone(),
    };
    std::thread::Builder::new()
        .name("eddy-report".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run.run()),
                Err(e) => {
                    tracing::error!(error = %e, "report: cannot build its runtime; no reports")
                }
            }
        })
        .map_err(ReportError::Thread)?;
    tracing::info!(url = %settings.url, appliance = %settings.appliance, "reports on");
    Ok(Handle { counters, stop })
}

struct Run {
    sources: Sources,
    client: eddy_fill::client::Client,
    settings: config::Report,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl Run {
    async fn run(self) {
        let epoch = Instant::now();
        let mut queue = Queue::new(self.settings.buffer);
        let s = &self.settings;
        let mut last_health: Option<(Instant, u64)> = None;
        let mut last_draining = false;
        let mut last_popularity = (
            Instant::now(),
            unix_now(),
            self.sources.shared.metrics.misses(),
        );
        let mut last_inventory: Option<(Instant, u64)> = None;
        let auth = format!("Bearer {}", s.token);
        while !self.stop.load(Relaxed) {
            let now = Instant::now();
            let draining = (self.sources.draining)();
            // Health: on its interval, and at once when the drain begins.
            if last_health.is_none_or(|(t, _)| now - t >= s.health_interval)
                || draining != last_draining
            {
                let bytes = self.sources.bytes_total();
                let bps = last_health.map_or(0, |(t, b)| {
                    let secs = (now - t).as_secs_f64();
                    if secs > 0.0 {
                        (bytes.saturating_sub(b) as f64 / secs) as u64
                    } else {
                        0
                    }
                });
                let h = self.sources.health(bps);
                self.push(&mut queue, Report::Health(h));
                last_health = Some((now, bytes));
                last_draining = draining;
            }
            if now - last_popularity.0 >= s.popularity_interval {
                let to = unix_now();
                let misses = self.sources.shared.metrics.misses();
                let objects = self
                    .sources
                    .shared
                    .store
                    .popularity_snapshot()
                    .into_iter()
                    .map(|(k, requests, bytes)| wire::ObjectCounts {
                        key: k.as_str().to_owned(),
                        requests,
                        bytes,
                    })
                    .collect();
                let p = wire::Popularity {
                    version: wire::VERSION.into(),
                    appliance: self.sources.appliance.clone(),
                    from: last_popularity.1,
                    to,
                    objects,
                    content_misses: misses.0.saturating_sub(last_popularity.2 .0),
                    health_misses: misses.1.saturating_sub(last_popularity.2 .1),
                };
                self.push(&mut queue, Report::Popularity(p));
                last_popularity = (now, to, misses);
            }
            let changes = self.sources.shared.store.changes();
            if last_inventory.is_none_or(|(t, c)| c != changes || now - t >= s.inventory_interval) {
                let inv = self.sources.inventory();
                self.push(&mut queue, Report::Inventory(inv));
                last_inventory = Some((now, changes));
            }
            // Post what waits, oldest first, until one fails.
            while let Some(r) = queue.next(epoch.elapsed()) {
                let slot = kind_slot(r);
                let body = match serde_json::to_vec(r) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "report: cannot encode; dropped");
                        queue.sent();
                        continue;
                    }
                };
                let posted = self
                    .client
                    .post(
                        &s.url,
                        &[
                            ("authorization", &auth),
                            ("content-type", "application/json"),
                        ],
                        body.into(),
                    )
                    .await;
                match posted {
                    Ok(resp) if (200..300).contains(&resp.status) => {
                        queue.sent();
                        self.counters.sent[slot].inc();
                    }
                    Ok(resp) => {
                        self.counters.errors.inc();
                        tracing::warn!(status = resp.status, url = %s.url, "report: refused by the control plane; retrying with backoff");
                        queue.failed(epoch.elapsed(), fastrand::f64());
                        break;
                    }
                    Err(e) => {
                        self.counters.errors.inc();
                        tracing::debug!(error = %e, "report: control plane unreachable; retrying with backoff");
                        queue.failed(epoch.elapsed(), fastrand::f64());
                        break;
                    }
                }
            }
            self.counters
                .queued
                .set(i64::try_from(queue.len()).unwrap_or(i64::MAX));
            tokio::time::sleep(TICK).await;
        }
    }

    fn push(&self, queue: &mut Queue, r: Report) {
        if queue.push(r) {
            self.counters.dropped.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(n: u64) -> Report {
        Report::Health(wire::Health {
            requests_total: n,
            ..wire::Health::default()
        })
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let mut q = Queue::new(2);
        assert!(!q.push(health(1)));
        assert!(!q.push(health(2)));
        assert!(q.push(health(3)));
        assert_eq!(q.len(), 2);
        assert_eq!(q.next(Duration::ZERO), Some(&health(2)));
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_and_success_resets() {
        let mut q = Queue::new(8);
        q.push(health(1));
        q.failed(Duration::from_secs(10), 1.0);
        assert_eq!(q.next(Duration::from_secs(10)), None);
        assert!(q.next(Duration::from_secs(11)).is_some());
        q.failed(Duration::from_secs(11), 1.0);
        assert_eq!(q.next(Duration::from_millis(12_999)), None);
        assert!(q.next(Duration::from_secs(13)).is_some());
        for _ in 0..20 {
            q.failed(Duration::ZERO, 1.0);
        }
        assert!(q.next(MAX_BACKOFF).is_some(), "capped at a minute");
        q.failed(Duration::ZERO, 0.0);
        assert!(q.next(MAX_BACKOFF / 2).is_some(), "jitter 0 waits half");
        q.sent();
        assert!(q.is_empty());
    }
}
