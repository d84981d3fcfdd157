//! Metrics wiring: the process's one Prometheus registry, the families that
//! describe the process itself (`eddy_build_info`, `eddy_start_time_seconds`),
//! and the scrape in the text exposition format, version 0.0.4.
//!
//! Owns: [`Registry`] (created in `main`, shared as `Arc<Registry>`), the
//! constructors every area uses to declare a family and register it in one
//! step, and [`Registry::render`]. It knows no area's families: each area
//! declares, registers and records its own (`serve::metrics` for requests,
//! connections and TLS, `store::metrics` for disks, `eddy_fill::metrics` for
//! the fill, `report` for reports, `access_log` for its lines), as
//! linkerd2-proxy does. Hot-path series are label handles resolved once when
//! the area starts, so recording stays one relaxed atomic add with no lock, no
//! allocation and no map lookup. Every label value comes from a fixed set
//! known to its area, never from a client, so the number of series is
//! bounded. It must never be called per request, and a scrape must never block
//! the serve path: collectors that read the store run on the admin listener's
//! blocking pool.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    TextEncoder,
};

/// A family could not be declared or registered: a name or label clash, a
/// programming error found at start-up, never at run time.
#[derive(Debug, thiserror::Error)]
#[error("cannot register the metric family {name}: {source}")]
pub struct MetricsError {
    name: String,
    #[source]
    source: prometheus::Error,
}

impl MetricsError {
    /// A family `name` that `source` refused.
    pub fn new(name: &str, source: prometheus::Error) -> MetricsError {
        MetricsError {
            name: name.to_owned(),
            source,
        }
    }
}

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry of one process.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: prometheus::Registry,
    started_unix: i64,
}

impl Registry {
    /// A registry holding the process families; `started` (from the injected
    /// clock) is rendered as `eddy_start_time_seconds`.
    pub fn new(started: SystemTime) -> Result<Registry, MetricsError> {
        let started_unix = started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let registry = Registry {
            inner: prometheus::Registry::new(),
            started_unix,
        };
        registry
            .gauge_vec(
                "eddy_build_info",
                "The running version of eddy (always 1).",
                &["version"],
            )?
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry
            .gauge(
                "eddy_start_time_seconds",
                "When this eddy process started, in Unix seconds.",
            )?
            .set(started_unix);
        Ok(registry)
    }

    /// The process's start, in Unix seconds.
    pub fn started_unix(&self) -> i64 {
        self.started_unix
    }

    /// Registers a collector of the caller's (one that reads values held
    /// elsewhere at scrape time).
    pub fn register(&self, name: &str, collector: Box<dyn Collector>) -> Result<(), MetricsError> {
        self.inner
            .register(collector)
            .map_err(|source| MetricsError::new(name, source))
    }

    /// Declares and registers a counter without labels.
    pub fn counter(&self, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
        let c = IntCounter::with_opts(Opts::new(name, help)).map_err(|e| err(name, e))?;
        self.register(name, Box::new(c.clone()))?;
        Ok(c)
    }

    /// Declares and registers a counter family with `labels`.
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let c = IntCounterVec::new(Opts::new(name, help), labels).map_err(|e| err(name, e))?;
        self.register(name, Box::new(c.clone()))?;
        Ok(c)
    }

    /// Declares and registers a gauge without labels.
    pub fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        let g = IntGauge::with_opts(Opts::new(name, help)).map_err(|e| err(name, e))?;
        self.register(name, Box::new(g.clone()))?;
        Ok(g)
    }

    /// Declares and registers a gauge family with `labels`.
    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        let g = IntGaugeVec::new(Opts::new(name, help), labels).map_err(|e| err(name, e))?;
        self.register(name, Box::new(g.clone()))?;
        Ok(g)
    }

    /// Declares and registers a histogram family with `labels` and the upper
    /// bounds `buckets` (seconds, ascending).
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let h = HistogramVec::new(opts, labels).map_err(|e| err(name, e))?;
        self.register(name, Box::new(h.clone()))?;
        Ok(h)
    }

    /// Every registered family in the text format 0.0.4, sorted by name. A
    /// family with no series yet (a gauge set only once something happened)
    /// is left out. Collectors may read the store: call it off the event loop.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only for a family the registry already
        // refused to register; render what was encoded either way.
        if let Err(e) = TextEncoder::new().encode(&self.inner.gather(), &mut out) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn err(name: &str, source: prometheus::Error) -> MetricsError {
    MetricsError::new(name, source)
}

#[cfg(test)]
pub mod testing {
    //! Reading a rendered exposition back, for the areas' unit tests.

    /// The value of the one sample named exactly `series` (name and labels as
    /// rendered, for example `eddy_requests_total{status="200",transport="http"}`).
    pub fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_owned)
    }

    /// Asserts `series` renders as `want`.
    pub fn assert_value(text: &str, series: &str, want: &str) {
        assert_eq!(
            value(text, series).as_deref(),
            Some(want),
            "{series} in:\n{text}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testing::assert_value;
    use super::*;
    use std::time::Duration;

    #[test]
    fn process_families_render() -> Result<(), MetricsError> {
        let r = Registry::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))?;
        let text = r.render();
        assert_value(&text, "eddy_start_time_seconds", "1700000000");
        assert_value(
            &text,
            &format!(
                "eddy_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            ),
            "1",
        );
        assert!(text.contains("# TYPE eddy_build_info gauge"));
        Ok(())
    }

    #[test]
    fn a_family_registered_twice_is_refused_with_its_name() -> Result<(), MetricsError> {
        let r = Registry::new(UNIX_EPOCH)?;
        r.counter("eddy_x_total", "x")?;
        let e = r.counter("eddy_x_total", "x");
        assert!(e.is_err_and(|e| e.to_string().contains("eddy_x_total")));
        Ok(())
    }

    #[test]
    fn label_values_and_help_are_escaped() -> Result<(), MetricsError> {
        let r = Registry::new(UNIX_EPOCH)?;
        r.gauge_vec("eddy_y", "a \\ help\nline", &["disk"])?
            .with_label_values(&["/srv/\"d\"\\0\n"])
            .set(1);
        let text = r.render();
        assert!(text.contains("# HELP eddy_y a \\\\ help\\nline"), "{text}");
        assert!(
            text.contains("eddy_y{disk=\"/srv/\\\"d\\\"\\\\0\\n\"} 1"),
            "{text}"
        );
        Ok(())
    }
}
