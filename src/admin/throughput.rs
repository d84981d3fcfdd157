//! The status page's throughput over the last minutes: the request and body
//! byte counters sampled every few seconds into a ring, and drawn as a small
//! inline SVG chart.
//!
//! Owns: the ring of samples (bounded by `config::defaults::STATUS_SAMPLES`),
//! the sampling task (one wake-up per `STATUS_SAMPLE_EVERY`, on the admin
//! listener's runtime), turning samples into rates, and the chart (pure:
//! rates in, SVG out, numbers only, no script). It reads the metrics through
//! their accessors and must never record into them, nor run on a serving
//! path: serving never waits for it.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::serve::metrics::{Listener, ServeMetrics as Metrics};

/// The counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub at: f64,
    /// Responses so far (every transport).
    pub requests: u64,
    /// Body bytes sent so far (every transport).
    pub bytes: u64,
    /// Connections open now (plain and TLS).
    pub open: u64,
}

/// The rates between two samples, at the later one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Seconds since the sampler started.
    pub at: f64,
    pub requests_per_sec: f64,
    pub bits_per_sec: f64,
    pub open: u64,
}

/// The last samples, oldest first.
#[derive(Debug)]
pub struct Throughput {
    samples: Mutex<VecDeque<Sample>>,
    capacity: usize,
}

impl Throughput {
    /// A ring of at most `capacity` samples (at least 2: one rate).
    pub fn new(capacity: usize) -> Throughput {
        let capacity = capacity.max(2);
        Throughput {
            samples: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    /// Adds a sample, dropping the oldest when full.
    pub fn record(&self, sample: Sample) {
        let mut samples = match self.samples.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if samples.len() == self.capacity {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The rates between consecutive samples, oldest first.
    pub fn rates(&self) -> Vec<Rate> {
        let mut samples = match self.samples.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        rates(samples.make_contiguous())
    }
}

/// The counters of `metrics` now.
pub fn sample(metrics: &Metrics, at: f64) -> Sample {
    Sample {
        at,
        requests: metrics.requests_total(),
        bytes: metrics.body_bytes().iter().map(|(_, n)| n).sum(),
        open: Listener::ALL
            .iter()
            .map(|l| u64::try_from(metrics.connections(*l).open).unwrap_or(0))
            .sum(),
    }
}

/// Samples `metrics` into `ring` every `every`, until the task is dropped.
pub async fn run(metrics: Arc<Metrics>, ring: Arc<Throughput>, every: Duration) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        ring.record(sample(&metrics, started.elapsed().as_secs_f64()));
    }
}

/// Rates from samples (a counter that went back, as after a reset, counts 0).
pub fn rates(samples: &[Sample]) -> Vec<Rate> {
    samples
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].at - w[0].at;
            (dt > 0.0).then(|| Rate {
                at: w[1].at,
                requests_per_sec: w[1].requests.saturating_sub(w[0].requests) as f64 / dt,
                bits_per_sec: w[1].bytes.saturating_sub(w[0].bytes) as f64 * 8.0 / dt,
                open: w[1].open,
            })
        })
        .collect()
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 140.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 12.0;

/// A rate for people: `12.3 Mbit/s`.
pub fn bits(bits_per_sec: f64) -> String {
    const UNITS: [&str; 5] = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
    let mut v = bits_per_sec.max(0.0);
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn collecting(mut s: String, plot_w: f64, plot_h: f64) -> String {
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#666\">\
         collecting samples…</text>\n</svg>",
        LEFT + plot_w / 2.0,
        TOP + plot_h / 2.0
    );
    s
}

/// The chart: body throughput (line) and requests per second (second line,
/// its own scale), over the window the samples cover (pure).
pub fn chart(rates: &[Rate], window: Duration) -> String {
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        "<svg id=\"throughput\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"throughput-title\">\n<title id=\"throughput-title\">Body throughput \
         and requests per second, last {}</title>\n",
        humantime::format_duration(window)
    );
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"#f7f7f7\" \
         stroke=\"#bbb\"/>"
    );
    // Two rates make a line; until then, say so.
    let (Some(first), Some(last)) = (rates.first(), rates.last()) else {
        return collecting(s, plot_w, plot_h);
    };
    if rates.len() < 2 {
        return collecting(s, plot_w, plot_h);
    }
    // The chart spans the window, or what the samples cover while they
    // cover less (just after start), so that the lines use the width.
    let end = last.at;
    let start = (end - window.as_secs_f64()).max(first.at);
    let span = Duration::from_secs_f64((end - start).max(0.0).round());
    let max_bits = rates.iter().map(|r| r.bits_per_sec).fold(0.0, f64::max);
    let max_reqs = rates.iter().map(|r| r.requests_per_sec).fold(0.0, f64::max);
    let x = |at: f64| LEFT + ((at - start) / (end - start).max(1.0)).clamp(0.0, 1.0) * plot_w;
    let y = |v: f64, max: f64| TOP + plot_h - if max > 0.0 { v / max * plot_h } else { 0.0 };
    let line = |value: &dyn Fn(&Rate) -> f64, max: f64| {
        let mut points = String::new();
        for r in rates {
            let _ = write!(points, "{:.1},{:.1} ", x(r.at), y(value(r), max));
        }
        points.trim_end().to_owned()
    };
    let _ = writeln!(
        s,
        "<polyline class=\"bits\" fill=\"none\" stroke=\"#1f6fb2\" stroke-width=\"2\" points=\"{}\"/>",
        line(&|r| r.bits_per_sec, max_bits)
    );
    let _ = writeln!(
        s,
        "<polyline class=\"requests\" fill=\"none\" stroke=\"#d2691e\" stroke-width=\"1.5\" \
         stroke-dasharray=\"4 2\" points=\"{}\"/>",
        line(&|r| r.requests_per_sec, max_reqs)
    );
    let label = |s: &mut String, x: f64, y: f64, anchor: &str, fill: &str, text: &str| {
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"11\" text-anchor=\"{anchor}\" \
             fill=\"{fill}\">{text}</text>"
        );
    };
    label(
        &mut s,
        LEFT - 4.0,
        TOP + 10.0,
        "end",
        "#1f6fb2",
        &bits(max_bits),
    );
    label(
        &mut s,
        LEFT - 4.0,
        TOP + 24.0,
        "end",
        "#d2691e",
        &format!("{max_reqs:.1} req/s"),
    );
    label(&mut s, LEFT - 4.0, TOP + plot_h, "end", "#666", "0");
    label(
        &mut s,
        LEFT,
        HEIGHT - 5.0,
        "start",
        "#666",
        &format!("−{}", humantime::format_duration(span)),
    );
    label(&mut s, LEFT + plot_w, HEIGHT - 5.0, "end", "#666", "now");
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: f64, requests: u64, bytes: u64) -> Sample {
        Sample {
            at,
            requests,
            bytes,
            open: 1,
        }
    }

    #[test]
    fn the_ring_keeps_the_last_samples_and_gives_rates() {
        let ring = Throughput::new(3);
        assert!(ring.rates().is_empty());
        ring.record(at(0.0, 0, 0));
        assert!(ring.rates().is_empty(), "one sample is no rate");
        ring.record(at(2.0, 10, 1_000));
        ring.record(at(4.0, 30, 3_000));
        ring.record(at(6.0, 30, 3_000));
        let r = ring.rates();
        assert_eq!(r.len(), 2, "the oldest sample was dropped");
        assert_eq!(r[0].requests_per_sec, 10.0);
        assert_eq!(r[0].bits_per_sec, 8_000.0);
        assert_eq!((r[1].at, r[1].requests_per_sec), (6.0, 0.0));
    }

    #[test]
    fn a_counter_going_back_is_no_negative_rate() {
        let r = rates(&[at(0.0, 10, 10), at(1.0, 5, 5), at(1.0, 6, 6)]);
        assert_eq!(r.len(), 1, "no rate over zero seconds");
        assert_eq!((r[0].requests_per_sec, r[0].bits_per_sec), (0.0, 0.0));
    }

    #[test]
    fn the_chart_is_an_svg_of_two_lines_with_their_scales() {
        let empty = chart(&[], Duration::from_secs(300));
        assert!(empty.starts_with("<svg") && empty.trim_end().ends_with("</svg>"));
        assert!(empty.contains("collecting samples"), "{empty}");
        let r = rates(&[
            at(0.0, 0, 0),
            at(2.0, 20, 2_500_000),
            at(4.0, 40, 2_500_000),
        ]);
        let svg = chart(&r, Duration::from_secs(300));
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("10.0 Mbit/s"), "the peak: {svg}");
        assert!(svg.contains("10.0 req/s"), "{svg}");
        // Samples cover 2 s of the 5 minutes: the lines span what they cover.
        assert!(svg.contains("−2s"), "{svg}");
        let one = rates(&[at(0.0, 0, 0), at(2.0, 2, 2)]);
        assert!(chart(&one, Duration::from_secs(300)).contains("collecting samples"));
        assert!(!svg.contains("<script") && !svg.contains("href"));
        // The peak is at the top of the plot, the idle interval at its bottom.
        let bits = svg
            .split("class=\"bits\"")
            .nth(1)
            .and_then(|s| s.split("points=\"").nth(1))
            .and_then(|s| s.split('"').next())
            .expect("points");
        let ys: Vec<f64> = bits
            .split(' ')
            .filter_map(|p| p.split(',').nth(1)?.parse().ok())
            .collect();
        assert_eq!(ys, vec![TOP, HEIGHT - BOTTOM]);
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(bits(0.0), "0.0 bit/s");
        assert_eq!(bits(999.0), "999.0 bit/s");
        assert_eq!(bits(1.5e9), "1.5 Gbit/s");
    }
}
