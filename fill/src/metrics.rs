//! The fill's metric families (`eddy_fill_*`), read from its [`Progress`]
//! when the appliance's `/metrics` is scraped.
//!
//! Owns: the declaration of every `eddy_fill_*` family (name, help, type and
//! the fixed label values: states, [`ErrorKind`] labels, manifest refusal
//! labels) and [`FillCollector`], the Prometheus collector the appliance
//! registers. The fill records nothing here: it bumps its progress counters,
//! and a scrape copies them. It must never block the fill for longer than
//! the progress lock's small fields take to read.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use crate::progress::{ErrorKind, Progress};

/// The fill's states as the `state` label (one series each; 1 for the current).
const STATES: [&str; 3] = ["idle", "waiting", "filling"];

/// Gauges without labels, in the order [`FillCollector::collect`] sets them.
const GAUGES: [(&str, &str); 7] = [
    (
        "eddy_fill_generation",
        "The generation of the manifest held (0: none yet).",
    ),
    (
        "eddy_fill_objects_planned",
        "Objects to download in the current or last run.",
    ),
    (
        "eddy_fill_objects_done",
        "Objects installed in the current or last run.",
    ),
    (
        "eddy_fill_bytes_planned",
        "Bytes to download in the current or last run (staged bytes excluded).",
    ),
    (
        "eddy_fill_bytes_done",
        "Bytes downloaded in the current or last run.",
    ),
    (
        "eddy_fill_skipped_objects",
        "Manifest objects left out of the current or last run for lack of room.",
    ),
    (
        "eddy_fill_rate_bytes_per_second",
        "Download rate of the current or last run.",
    ),
];

/// Counters without labels, in the order [`FillCollector::collect`] sets them.
const COUNTERS: [(&str, &str); 4] = [
    ("eddy_fill_runs_total", "Fill runs started."),
    (
        "eddy_fill_downloaded_bytes_total",
        "Bytes received from fill sources, retries and rejected bytes included.",
    ),
    (
        "eddy_fill_installed_objects_total",
        "Objects installed by the fill.",
    ),
    (
        "eddy_fill_evicted_objects_total",
        "Objects evicted because the manifest dropped them.",
    ),
];

/// The fill's families, refreshed from its progress at every scrape.
#[derive(Debug)]
pub struct FillCollector {
    progress: Arc<Progress>,
    state: IntGaugeVec,
    gauges: Vec<IntGaugeVec>,
    counters: Vec<IntCounterVec>,
    errors: IntCounterVec,
    refused: IntCounterVec,
    /// One scrape's refresh and collection at a time: a counter is copied by
    /// a reset and an add, which another scrape must not see halfway.
    scrape: Mutex<()>,
}

impl FillCollector {
    /// The collector of `progress`'s families.
    pub fn new(progress: Arc<Progress>) -> Result<FillCollector, prometheus::Error> {
        let gauges = GAUGES
            .iter()
            .map(|(name, help)| IntGaugeVec::new(Opts::new(*name, *help), &[]))
            .collect::<Result<Vec<_>, _>>()?;
        let counters = COUNTERS
            .iter()
            .map(|(name, help)| IntCounterVec::new(Opts::new(*name, *help), &[]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FillCollector {
            progress,
            state: IntGaugeVec::new(
                Opts::new(
                    "eddy_fill_state",
                    "The fill's state (1 for the current one): idle, waiting (work outside the window), filling.",
                ),
                &["state"],
            )?,
            gauges,
            counters,
            errors: IntCounterVec::new(
                Opts::new(
                    "eddy_fill_errors_total",
                    "Fill errors by kind: network, status, corrupt (hash mismatch), io, disk_full, manifest, exhausted.",
                ),
                &["kind"],
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "eddy_fill_manifest_refused_total",
                    "Manifests refused, by reason; nothing changes on disk for any of them.",
                ),
                &["reason"],
            )?,
            scrape: Mutex::new(()),
        })
    }

    fn all(&self) -> impl Iterator<Item = &dyn Collector> {
        let gauges = self.gauges.iter().map(|g| g as &dyn Collector);
        let counters = self.counters.iter().map(|c| c as &dyn Collector);
        std::iter::once(&self.state as &dyn Collector)
            .chain(gauges)
            .chain(counters)
            .chain([&self.errors as &dyn Collector, &self.refused])
    }

    fn refresh(&self) {
        let s = self.progress.snapshot();
        for state in STATES {
            self.state
                .with_label_values(&[state])
                .set(i64::from(s.state == state));
        }
        let gauges = [
            s.generation.unwrap_or(0),
            s.objects_planned,
            s.objects_done,
            s.bytes_planned,
            s.bytes_done,
            s.objects_skipped,
            s.rate_bytes_per_sec,
        ];
        for (g, v) in self.gauges.iter().zip(gauges) {
            g.with_label_values::<&str>(&[])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        let counters = [
            s.runs,
            s.bytes_downloaded,
            s.objects_installed,
            s.objects_evicted,
        ];
        for (c, v) in self.counters.iter().zip(counters) {
            set_counter(c, &[], v);
        }
        for k in ErrorKind::ALL {
            set_counter(&self.errors, &[k.label()], self.progress.errors(k));
        }
        let refusals = self.progress.refusals();
        for reason in eddy_proto::manifest::Refusal::LABELS {
            let n = refusals.get(reason).copied().unwrap_or(0);
            set_counter(&self.refused, &[reason], n);
        }
    }
}

/// Copies `value` into the counter series `labels` of `vec`.
fn set_counter(vec: &IntCounterVec, labels: &[&str], value: u64) {
    let c = vec.with_label_values(labels);
    c.reset();
    c.inc_by(value);
}

impl Collector for FillCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.all().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh();
        self.all().flat_map(|c| c.collect()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    fn render(c: FillCollector) -> Result<String, prometheus::Error> {
        let r = prometheus::Registry::new();
        r.register(Box::new(c))?;
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&r.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn every_family_renders_and_follows_the_progress() -> Result<(), prometheus::Error> {
        let p = Arc::new(Progress::default());
        p.run_started(3, 3000, 1);
        p.set_generation(7);
        p.error(ErrorKind::Corrupt);
        p.error(ErrorKind::Corrupt);
        p.bytes_downloaded
            .fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
        p.refused(eddy_proto::manifest::Refusal::LABELS[0], "why".into());
        let text = render(FillCollector::new(p.clone())?)?;
        for (name, _) in GAUGES.iter().chain(COUNTERS.iter()) {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}:\n{text}");
        }
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has("eddy_fill_state{state=\"filling\"} 1"), "{text}");
        assert!(has("eddy_fill_state{state=\"idle\"} 0"), "{text}");
        assert!(has("eddy_fill_generation 7"), "{text}");
        assert!(has("eddy_fill_objects_planned 3"), "{text}");
        assert!(has("eddy_fill_skipped_objects 1"), "{text}");
        assert!(has("eddy_fill_runs_total 1"), "{text}");
        assert!(has("eddy_fill_downloaded_bytes_total 4096"), "{text}");
        assert!(has("eddy_fill_errors_total{kind=\"corrupt\"} 2"), "{text}");
        assert!(has("eddy_fill_errors_total{kind=\"network\"} 0"), "{text}");
        let first = eddy_proto::manifest::Refusal::LABELS[0];
        assert!(
            has(&format!(
                "eddy_fill_manifest_refused_total{{reason=\"{first}\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains("# TYPE eddy_fill_runs_total counter"));
        Ok(())
    }

    #[test]
    fn a_second_scrape_reads_the_counters_again_not_twice() -> Result<(), prometheus::Error> {
        let p = Arc::new(Progress::default());
        p.error(ErrorKind::Io);
        let c = FillCollector::new(p.clone())?;
        let count = |c: &FillCollector| {
            c.collect()
                .iter()
                .filter(|f| f.name() == "eddy_fill_errors_total")
                .flat_map(|f| f.get_metric().to_vec())
                .map(|m| m.get_counter().get_value())
                .sum::<f64>()
        };
        assert_eq!(count(&c), 1.0);
        p.error(ErrorKind::Io);
        assert_eq!(count(&c), 2.0);
        assert_eq!(count(&c), 2.0);
        Ok(())
    }
}
