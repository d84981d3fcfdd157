//! Results: the record of every run, the per-scenario summary (medians over rounds and eddy/nginx ratios), the
//! table printed on stdout, and the JSON file written under `--out`.
//!
//! Scoring: a run scores its req/s and Gbit/s only when its server passed the body checks before and after the
//! round, the load generator's byte count fits the expected body size, and (in (g), where the client compares
//! every body itself) no body was wrong; otherwise both are 0. Socket errors and responses with status >= 400 are
//! counted as failures (and error responses are not counted as requests). The JSON's `summary` is what the chart
//! of the ratios per scenario (`chart.rs`) is drawn from.
//!
//! Scenario (i) adds a third column per round: eddy's runs while it fills are its "eddy" figures, its runs
//! without a fill (same instance, same round) are summarized apart, and the figure that counts there is the
//! ratio eddy while filling / eddy without a fill. The fill measurements (`fill.rs`) get a block of their own.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cli::Config;
use crate::content::Manifest;
use crate::error::{IoContext, Result};
use crate::fill::{FillDuring, FillReport};
use crate::idle::IdleStats;
use crate::measure::Errors;
use crate::measure::Sample;
use crate::scenario::{Load, Scenario, Transport};
use crate::server::Kind;
use crate::tls::Negotiated;

/// Response-head bytes allowed per response when checking wrk's byte count.
const HEAD_ALLOWANCE: u64 = 4096;

/// Other load (cores) above which a run is flagged as having competed for CPU.
pub const OTHER_LOAD_LIMIT: f64 = 0.2;

/// One measured run, with its derived figures.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub round: u32,
    pub scenario: String,
    pub server: Kind,
    pub started_at: String,
    /// Responses the load generator completed, less those with status >= 400.
    pub good_responses: u64,
    pub duration_s: f64,
    /// Scored requests per second (0 when the run does not score).
    pub req_s: f64,
    /// Scored throughput in Gbit/s, from all bytes the client read (0 when the run does not score).
    pub gbps: f64,
    /// Unscored figures, for diagnosis.
    pub raw_req_s: f64,
    pub raw_gbps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub server_cores: f64,
    pub client_cores: f64,
    /// Server CPU per good response, microseconds (None when none completed), and its user-space (utime) and
    /// kernel (stime) parts.
    pub server_us_per_req: Option<f64>,
    pub server_user_us_per_req: Option<f64>,
    pub server_system_us_per_req: Option<f64>,
    /// Server cores per 10 Gbit/s of raw throughput (None when nothing moved).
    pub server_cores_per_10gbps: Option<f64>,
    /// Server plus client cores per 10 Gbit/s. On loopback the kernel's work of moving a byte is
    /// charged to whichever side's context runs it (the sender's sendfile, or the receiver's ACK
    /// processing pushing queued segments), and on a saturated machine that split shifts between
    /// servers; the sum does not.
    pub pair_cores_per_10gbps: Option<f64>,
    pub server_rss_mib: f64,
    /// Peak of the summed RssAnon: VmRSS less the file pages the server maps.
    pub server_rss_anon_mib: f64,
    /// Cores busy with other work on the machine during the run (see [`Sample::other_cores`]).
    pub other_cores: f64,
    /// The client's socket errors and error responses.
    pub failures: Errors,
    pub failures_total: u64,
    /// The client's byte count fits `good_responses` bodies of the expected size plus heads and in-flight tails.
    pub bytes_ok: bool,
    /// The first body-check failure of this server in this round, or the first wrong body the client saw in
    /// this run, if any.
    pub body_error: Option<String>,
    pub scored: bool,
    /// (i): whether a fill ran during this run of eddy, and what it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<FillDuring>,
    pub sample: Sample,
}

impl RunRecord {
    pub fn new(
        round: u32,
        scenario: &Scenario,
        server: Kind,
        connections: u32,
        started_at: String,
        s: Sample,
    ) -> Self {
        let w = &s.load;
        let duration_s = (w.duration_us as f64 / 1e6).max(1e-6);
        let good = w.requests.saturating_sub(w.errors.status);
        let len = scenario.body_len();
        // A run may end with a response in flight on every connection; (e)'s
        // run is many h2load runs (its slices), each of which may.
        let runs = s.h2.as_ref().map_or(1, |h| h.ranges.len().max(1)) as u64;
        let upper = (w.requests + u64::from(connections) * runs) * (len + HEAD_ALLOWANCE);
        let bytes_ok = w.requests > 0 && w.bytes >= good * len && w.bytes <= upper;
        let raw_gbps = w.bytes as f64 * 8.0 / duration_s / 1e9;
        let body_error = s.load.body_error.clone();
        let per_req = |cores: f64| (good > 0).then(|| cores * s.wall_s * 1e6 / good as f64);
        let mut r = RunRecord {
            round,
            scenario: scenario.key.clone(),
            server,
            started_at,
            good_responses: good,
            duration_s,
            req_s: 0.0,
            gbps: 0.0,
            raw_req_s: good as f64 / duration_s,
            raw_gbps,
            p50_ms: w.p50_us as f64 / 1e3,
            p99_ms: w.p99_us as f64 / 1e3,
            mean_ms: w.mean_us as f64 / 1e3,
            max_ms: w.max_us as f64 / 1e3,
            server_cores: s.server_cores,
            client_cores: s.client_cores,
            server_us_per_req: per_req(s.server_cores),
            server_user_us_per_req: per_req(s.server_user_cores),
            server_system_us_per_req: per_req(s.server_system_cores),
            server_cores_per_10gbps: (raw_gbps > 0.0).then(|| s.server_cores / (raw_gbps / 10.0)),
            pair_cores_per_10gbps: (raw_gbps > 0.0)
                .then(|| (s.server_cores + s.client_cores) / (raw_gbps / 10.0)),
            server_rss_mib: s.server_rss_kib as f64 / 1024.0,
            server_rss_anon_mib: s.server_rss_anon_kib as f64 / 1024.0,
            other_cores: s.other_cores,
            failures: w.errors,
            failures_total: w.errors.total(),
            bytes_ok,
            body_error,
            scored: false,
            fill: None,
            sample: s,
        };
        r.rescore();
        r
    }

    /// Record the round's body-check verdict for this server and recompute the score.
    pub fn set_body_error(&mut self, e: Option<String>) {
        self.body_error = e.or_else(|| self.sample.load.body_error.clone());
        self.rescore();
    }

    fn rescore(&mut self) {
        self.scored = self.bytes_ok && self.body_error.is_none();
        let k = if self.scored { 1.0 } else { 0.0 };
        self.req_s = k * self.raw_req_s;
        self.gbps = k * self.raw_gbps;
    }
}

/// One body check of one server.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRecord {
    pub round: u32,
    pub server: Kind,
    /// "before" or "after" the round's runs.
    pub when: &'static str,
    pub probes: usize,
    pub bytes_compared: u64,
    /// Scenarios this server cannot serve (no TLS listener), whose probes were not sent to it.
    pub skipped_scenarios: Vec<String>,
    pub error: Option<String>,
}

/// Reads one figure of a server's summary.
type Figure = fn(&ServerSummary) -> Option<f64>;

/// Medians over rounds of one server in one scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerSummary {
    pub req_s: f64,
    pub gbps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub server_cores: f64,
    pub client_cores: f64,
    pub server_us_per_req: Option<f64>,
    pub server_user_us_per_req: Option<f64>,
    pub server_system_us_per_req: Option<f64>,
    pub server_cores_per_10gbps: Option<f64>,
    pub pair_cores_per_10gbps: Option<f64>,
    pub server_rss_mib: f64,
    pub server_rss_anon_mib: f64,
    /// (g): medians of the idle connections open, the server's RSS before and with them, and KiB per connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_open: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_mib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_loaded_mib: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kib_per_connection: Option<f64>,
    /// (f): the most that stayed resident (MiB) of the evicted files after any eviction of these runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident_after_evict_mib: Option<f64>,
    /// (e): the cipher suite and protocol h2load reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2: Option<String>,
    /// The largest other load of any of the runs.
    pub other_cores_max: f64,
    pub failures: u64,
    pub unscored_runs: usize,
    pub runs: usize,
}

/// eddy/nginx ratios of one scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    /// Median of the per-round ratios of req/s.
    pub req_s: Option<f64>,
    pub per_round_req_s: Vec<f64>,
    /// The rest: ratio of the medians.
    pub gbps: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub server_cores: Option<f64>,
    /// Server CPU per request, all of it and its user-space and kernel parts.
    pub server_us_per_req: Option<f64>,
    pub server_user_us_per_req: Option<f64>,
    pub server_system_us_per_req: Option<f64>,
    pub server_cores_per_10gbps: Option<f64>,
    pub pair_cores_per_10gbps: Option<f64>,
    pub server_rss_mib: Option<f64>,
    pub server_rss_anon_mib: Option<f64>,
}

/// (i): eddy while it fills against the same eddy without a fill, in the same rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FillServing {
    pub cap_mbps: u64,
    /// eddy's runs without a fill.
    pub eddy_no_fill: ServerSummary,
    /// Median of the per-round ratios of req/s, eddy while filling / eddy without a fill.
    pub req_s: Option<f64>,
    pub per_round_req_s: Vec<f64>,
    /// Ratios of the medians.
    pub p99_ms: Option<f64>,
    pub server_cores: Option<f64>,
    /// Median of the fill's rate during the runs with a fill, Mbit/s.
    pub fill_mbps: Option<f64>,
    /// Runs whose fill ran out of work before the load ended.
    pub fill_ended_early: usize,
    /// Median CPU of the fill's source (nginx, on the same machine) during the runs with a fill, cores.
    pub source_cores: Option<f64>,
    /// Median other load of the runs with and without a fill, cores (the source's CPU taken out).
    pub other_cores_fill: Option<f64>,
    pub other_cores_no_fill: Option<f64>,
}

/// Summary of one scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioSummary {
    pub scenario: String,
    pub title: String,
    pub nginx: ServerSummary,
    /// In (i): eddy while it fills.
    pub eddy: ServerSummary,
    pub eddy_over_nginx: Ratios,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill_serving: Option<FillServing>,
}

/// Versions of what ran.
#[derive(Debug, Clone, Serialize)]
pub struct Tools {
    pub nginx: String,
    pub wrk: String,
    pub eddy: String,
    /// Only when a scenario needs them.
    pub h2load: Option<String>,
    pub openssl: Option<String>,
    pub curl: Option<String>,
}

/// A server side of a scenario that did not run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub round: u32,
    pub scenario: String,
    pub server: Kind,
    pub reason: String,
    /// The run was tried and failed (rather than not possible with this server, like TLS on an eddy without it).
    pub failed: bool,
}

/// The machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub clock_ticks: f64,
}

/// Everything a run produced: the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub tool_version: &'static str,
    pub started_at: String,
    pub finished_at: String,
    pub command: Vec<String>,
    pub machine: Machine,
    pub tools: Tools,
    pub config: Config,
    pub content: Manifest,
    pub scenarios: Vec<Scenario>,
    /// What each server negotiated with a default OpenSSL client, once per run ((d): no ALPN, (e): ALPN h2).
    pub tls: Vec<Negotiated>,
    pub checks: Vec<CheckRecord>,
    pub runs: Vec<RunRecord>,
    pub skipped: Vec<Skip>,
    pub summary: Vec<ScenarioSummary>,
    /// The fill measurements, when any ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<FillReport>,
    /// The drive measurements, when any ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drives: Option<crate::drives::DriveReport>,
    /// The SVG chart of the summary, when it was drawn.
    pub chart: Option<PathBuf>,
    pub notes: Vec<String>,
}

/// Median (mean of the middle two for an even count); None when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn summarize_server(runs: &[&RunRecord]) -> ServerSummary {
    let m = |f: fn(&RunRecord) -> f64| {
        median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or(0.0)
    };
    let idle = |f: fn(&IdleStats) -> f64| {
        median(
            &runs
                .iter()
                .filter_map(|r| r.sample.idle.as_ref().map(f))
                .collect::<Vec<_>>(),
        )
    };
    ServerSummary {
        req_s: m(|r| r.req_s),
        gbps: m(|r| r.gbps),
        p50_ms: m(|r| r.p50_ms),
        p99_ms: m(|r| r.p99_ms),
        server_cores: m(|r| r.server_cores),
        client_cores: m(|r| r.client_cores),
        server_us_per_req: median_of(runs, |r| r.server_us_per_req),
        server_user_us_per_req: median_of(runs, |r| r.server_user_us_per_req),
        server_system_us_per_req: median_of(runs, |r| r.server_system_us_per_req),
        server_cores_per_10gbps: median_of(runs, |r| r.server_cores_per_10gbps),
        pair_cores_per_10gbps: median_of(runs, |r| r.pair_cores_per_10gbps),
        server_rss_mib: m(|r| r.server_rss_mib),
        server_rss_anon_mib: m(|r| r.server_rss_anon_mib),
        idle_open: idle(|i| f64::from(i.connections_open)),
        rss_before_mib: idle(|i| i.rss_before_kib as f64 / 1024.0),
        rss_loaded_mib: idle(|i| i.rss_loaded_kib as f64 / 1024.0),
        kib_per_connection: median(
            &runs
                .iter()
                .filter_map(|r| r.sample.idle.as_ref()?.kib_per_connection)
                .collect::<Vec<_>>(),
        ),
        resident_after_evict_mib: runs
            .iter()
            .filter_map(|r| r.sample.cold.as_ref()?.resident_after())
            .max()
            .map(|b| b as f64 / (1u64 << 20) as f64),
        h2: runs.iter().find_map(|r| {
            let h = r.sample.h2.as_ref()?;
            Some(format!(
                "{} {} {}",
                h.protocol.as_deref().unwrap_or("?"),
                h.cipher.as_deref().unwrap_or("?"),
                h.application_protocol.as_deref().unwrap_or("?")
            ))
        }),
        other_cores_max: runs.iter().map(|r| r.other_cores).fold(0.0, f64::max),
        failures: runs.iter().map(|r| r.failures_total).sum(),
        unscored_runs: runs.iter().filter(|r| !r.scored).count(),
        runs: runs.len(),
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite()).then(|| a / b)
}

/// Summaries per scenario, in scenario order.
pub fn summarize(scenarios: &[Scenario], runs: &[RunRecord]) -> Vec<ScenarioSummary> {
    scenarios
        .iter()
        .map(|s| {
            // In (i), eddy's figures are its runs while filling; its runs without a fill are the baseline.
            let filling = |r: &RunRecord| r.fill.as_ref().is_none_or(|f| f.filling);
            let of = |k: Kind, fill: bool| {
                runs.iter()
                    .filter(|r| r.scenario == s.key && r.server == k && filling(r) == fill)
                    .collect::<Vec<_>>()
            };
            let (n, e, base) = (
                of(Kind::Nginx, true),
                of(Kind::Eddy, true),
                of(Kind::Eddy, false),
            );
            let fill_serving = s.fill_mbps.map(|cap| {
                let per_round: Vec<f64> = e
                    .iter()
                    .filter_map(|er| {
                        let br = base.iter().find(|b| b.round == er.round)?;
                        ratio(er.req_s, br.req_s)
                    })
                    .collect();
                let (es, bs) = (summarize_server(&e), summarize_server(&base));
                let ok = !e.is_empty() && !base.is_empty();
                FillServing {
                    cap_mbps: cap,
                    req_s: median(&per_round),
                    per_round_req_s: per_round,
                    p99_ms: ok.then(|| ratio(es.p99_ms, bs.p99_ms)).flatten(),
                    server_cores: ok
                        .then(|| ratio(es.server_cores, bs.server_cores))
                        .flatten(),
                    fill_mbps: median(
                        &e.iter()
                            .filter_map(|r| r.fill.as_ref()?.achieved_mbps)
                            .collect::<Vec<_>>(),
                    ),
                    source_cores: median(
                        &e.iter()
                            .filter_map(|r| Some(r.fill.as_ref()?.source_cores))
                            .collect::<Vec<_>>(),
                    ),
                    other_cores_fill: median(&e.iter().map(|r| r.other_cores).collect::<Vec<_>>()),
                    other_cores_no_fill: median(
                        &base.iter().map(|r| r.other_cores).collect::<Vec<_>>(),
                    ),
                    fill_ended_early: e
                        .iter()
                        .filter(|r| r.fill.as_ref().is_some_and(|f| f.ended_early))
                        .count(),
                    eddy_no_fill: bs,
                }
            });
            let per_round: Vec<f64> = n
                .iter()
                .filter_map(|nr| {
                    let er = e.iter().find(|er| er.round == nr.round)?;
                    ratio(er.req_s, nr.req_s)
                })
                .collect();
            let (ns, es) = (summarize_server(&n), summarize_server(&e));
            // A side that did not run (skipped) has no figures to compare.
            let both = !n.is_empty() && !e.is_empty();
            let ratio = |a: f64, b: f64| if both { ratio(a, b) } else { None };
            let opt_ratio = |a: Option<f64>, b: Option<f64>| ratio(a?, b?);
            ScenarioSummary {
                scenario: s.key.clone(),
                title: s.title.clone(),
                eddy_over_nginx: Ratios {
                    req_s: median(&per_round),
                    per_round_req_s: per_round,
                    gbps: ratio(es.gbps, ns.gbps),
                    p50_ms: ratio(es.p50_ms, ns.p50_ms),
                    p99_ms: ratio(es.p99_ms, ns.p99_ms),
                    server_cores: ratio(es.server_cores, ns.server_cores),
                    server_us_per_req: opt_ratio(es.server_us_per_req, ns.server_us_per_req),
                    server_user_us_per_req: opt_ratio(
                        es.server_user_us_per_req,
                        ns.server_user_us_per_req,
                    ),
                    server_system_us_per_req: opt_ratio(
                        es.server_system_us_per_req,
                        ns.server_system_us_per_req,
                    ),
                    server_cores_per_10gbps: opt_ratio(
                        es.server_cores_per_10gbps,
                        ns.server_cores_per_10gbps,
                    ),
                    pair_cores_per_10gbps: opt_ratio(
                        es.pair_cores_per_10gbps,
                        ns.pair_cores_per_10gbps,
                    ),
                    server_rss_mib: ratio(es.server_rss_mib, ns.server_rss_mib),
                    server_rss_anon_mib: ratio(es.server_rss_anon_mib, ns.server_rss_anon_mib),
                },
                nginx: ns,
                eddy: es,
                fill_serving,
            }
        })
        .collect()
}

/// The median of a figure that some runs lack.
fn median_of(runs: &[&RunRecord], f: impl Fn(&RunRecord) -> Option<f64>) -> Option<f64> {
    median(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

/// The stdout table: one block per scenario, then a one-line overview of the req/s ratios.
pub fn table(report: &Report) -> String {
    let c = &report.config;
    let mut t = String::new();
    for s in &report.summary {
        let (n, e, r) = (&s.nginx, &s.eddy, &s.eddy_over_nginx);
        // A side that did not run shows no figures.
        let v = |side: &ServerSummary, text: String| {
            if side.runs == 0 {
                "-".to_string()
            } else {
                text
            }
        };
        let _ = writeln!(t, "({}) {}", s.scenario, s.title);
        let sc = report.scenarios.iter().find(|x| x.key == s.scenario);
        let client = match sc.map(|x| (&x.load, x.transport)) {
            Some((Load::Idle { .. }, _)) => "the bench's idle-connection client".to_string(),
            Some((_, Transport::H2)) => format!(
                "h2load -t{} -c{} -m1, {} one-second slices of one range each",
                c.threads, c.connections, c.duration_s
            ),
            _ => format!("wrk -t{} -c{}", c.threads, c.connections),
        };
        let _ = writeln!(
            t,
            "    {} round(s) x {} s, {client}; medians over rounds",
            c.rounds, c.duration_s
        );
        let _ = writeln!(
            t,
            "    {:<32}{:>12}{:>12}{:>13}",
            "", "nginx", "eddy", "eddy/nginx"
        );
        let row = |t: &mut String, label: &str, a: String, b: String, q: String| {
            let _ = writeln!(t, "    {label:<32}{a:>12}{b:>12}{q:>13}");
        };
        let rounds: Vec<String> = r
            .per_round_req_s
            .iter()
            .map(|x| format!("{x:.3}"))
            .collect();
        row(
            &mut t,
            "req/s",
            v(n, format!("{:.1}", n.req_s)),
            v(e, format!("{:.1}", e.req_s)),
            fmt_opt(r.req_s, 3),
        );
        let _ = writeln!(
            t,
            "    {:<32}{:>37}",
            "  req/s ratio per round",
            rounds.join(" ")
        );
        row(
            &mut t,
            "Gbit/s",
            v(n, format!("{:.2}", n.gbps)),
            v(e, format!("{:.2}", e.gbps)),
            fmt_opt(r.gbps, 3),
        );
        row(
            &mut t,
            "latency p50 ms",
            v(n, format!("{:.2}", n.p50_ms)),
            v(e, format!("{:.2}", e.p50_ms)),
            fmt_opt(r.p50_ms, 3),
        );
        row(
            &mut t,
            "latency p99 ms",
            v(n, format!("{:.2}", n.p99_ms)),
            v(e, format!("{:.2}", e.p99_ms)),
            fmt_opt(r.p99_ms, 3),
        );
        row(
            &mut t,
            "server cores",
            v(n, format!("{:.3}", n.server_cores)),
            v(e, format!("{:.3}", e.server_cores)),
            fmt_opt(r.server_cores, 3),
        );
        let per_req: [(&str, Figure, Option<f64>); 3] = [
            (
                "server CPU us / request",
                |x| x.server_us_per_req,
                r.server_us_per_req,
            ),
            (
                "  of it user space",
                |x| x.server_user_us_per_req,
                r.server_user_us_per_req,
            ),
            (
                "  of it kernel",
                |x| x.server_system_us_per_req,
                r.server_system_us_per_req,
            ),
        ];
        for (label, of, ratio) in per_req {
            row(
                &mut t,
                label,
                fmt_opt(of(n), 2),
                fmt_opt(of(e), 2),
                fmt_opt(ratio, 3),
            );
        }
        row(
            &mut t,
            "server cores / 10 Gbit/s",
            fmt_opt(n.server_cores_per_10gbps, 3),
            fmt_opt(e.server_cores_per_10gbps, 3),
            fmt_opt(r.server_cores_per_10gbps, 3),
        );
        row(
            &mut t,
            "server+client cores / 10 Gbit/s",
            fmt_opt(n.pair_cores_per_10gbps, 3),
            fmt_opt(e.pair_cores_per_10gbps, 3),
            fmt_opt(r.pair_cores_per_10gbps, 3),
        );
        row(
            &mut t,
            "client cores",
            v(n, format!("{:.3}", n.client_cores)),
            v(e, format!("{:.3}", e.client_cores)),
            String::new(),
        );
        row(
            &mut t,
            "server RSS MiB (peak)",
            v(n, format!("{:.1}", n.server_rss_mib)),
            v(e, format!("{:.1}", e.server_rss_mib)),
            fmt_opt(r.server_rss_mib, 3),
        );
        row(
            &mut t,
            "  of it anonymous (peak)",
            v(n, format!("{:.1}", n.server_rss_anon_mib)),
            v(e, format!("{:.1}", e.server_rss_anon_mib)),
            fmt_opt(r.server_rss_anon_mib, 3),
        );
        let opt_row = |t: &mut String, label: &str, a: Option<f64>, b: Option<f64>, prec: usize| {
            if a.is_some() || b.is_some() {
                let q = match (a, b) {
                    (Some(a), Some(b)) => ratio(b, a),
                    _ => None,
                };
                row(t, label, fmt_opt(a, prec), fmt_opt(b, prec), fmt_opt(q, 3));
            }
        };
        opt_row(&mut t, "idle connections open", n.idle_open, e.idle_open, 0);
        opt_row(
            &mut t,
            "RSS MiB before them",
            n.rss_before_mib,
            e.rss_before_mib,
            1,
        );
        opt_row(
            &mut t,
            "RSS MiB with them",
            n.rss_loaded_mib,
            e.rss_loaded_mib,
            1,
        );
        opt_row(
            &mut t,
            "KiB per idle connection",
            n.kib_per_connection,
            e.kib_per_connection,
            2,
        );
        opt_row(
            &mut t,
            "resident MiB after evict",
            n.resident_after_evict_mib,
            e.resident_after_evict_mib,
            1,
        );
        for (side, h2) in [("nginx", &n.h2), ("eddy", &e.h2)] {
            if let Some(h2) = h2 {
                let _ = writeln!(t, "    h2load with {side}: {h2}");
            }
        }
        if matches!(
            sc.map(|x| x.transport),
            Some(Transport::Https | Transport::H2)
        ) {
            let alpn = sc.is_some_and(|x| x.transport == Transport::H2);
            for neg in report
                .tls
                .iter()
                .filter(|x| x.alpn_offered.is_some() == alpn)
            {
                let _ = writeln!(
                    t,
                    "    openssl s_client with {}: {} {}{}{}",
                    neg.server.name(),
                    neg.protocol.as_deref().unwrap_or("?"),
                    neg.cipher.as_deref().unwrap_or("?"),
                    neg.alpn
                        .as_deref()
                        .map_or(String::new(), |a| format!(" ALPN {a}")),
                    neg.error
                        .as_deref()
                        .map_or(String::new(), |e| format!("  WRONG: {e}"))
                );
            }
        }
        let mut reasons: Vec<String> = report
            .skipped
            .iter()
            .filter(|k| k.scenario == s.scenario)
            .map(|k| format!("{}: {}", k.server.name(), k.reason))
            .collect();
        reasons.dedup();
        for r in reasons {
            let _ = writeln!(t, "    skipped on {r}");
        }
        row(
            &mut t,
            "other load cores (max)",
            v(n, format!("{:.2}", n.other_cores_max)),
            v(e, format!("{:.2}", e.other_cores_max)),
            String::new(),
        );
        row(
            &mut t,
            "failures (client)",
            n.failures.to_string(),
            e.failures.to_string(),
            String::new(),
        );
        row(
            &mut t,
            "unscored runs",
            format!("{}/{}", n.unscored_runs, n.runs),
            format!("{}/{}", e.unscored_runs, e.runs),
            String::new(),
        );
        if let Some(f) = &s.fill_serving {
            let b = &f.eddy_no_fill;
            let _ = writeln!(
                t,
                "    eddy above ran while its fill downloaded at {} Mbit/s (cap {}); the same eddy without a fill:",
                fmt_opt(f.fill_mbps, 1),
                f.cap_mbps
            );
            let _ = writeln!(
                t,
                "    {:<32}{:>12}{:>12}{:>13}",
                "", "no fill", "filling", "fill/no fill"
            );
            row(
                &mut t,
                "req/s",
                v(b, format!("{:.1}", b.req_s)),
                v(e, format!("{:.1}", e.req_s)),
                fmt_opt(f.req_s, 3),
            );
            let per: Vec<String> = f
                .per_round_req_s
                .iter()
                .map(|x| format!("{x:.3}"))
                .collect();
            let _ = writeln!(
                t,
                "    {:<32}{:>37}",
                "  req/s ratio per round",
                per.join(" ")
            );
            row(
                &mut t,
                "latency p99 ms",
                v(b, format!("{:.2}", b.p99_ms)),
                v(e, format!("{:.2}", e.p99_ms)),
                fmt_opt(f.p99_ms, 3),
            );
            row(
                &mut t,
                "server cores",
                v(b, format!("{:.3}", b.server_cores)),
                v(e, format!("{:.3}", e.server_cores)),
                fmt_opt(f.server_cores, 3),
            );
            row(
                &mut t,
                "other load cores (median)",
                fmt_opt(f.other_cores_no_fill, 2),
                fmt_opt(f.other_cores_fill, 2),
                String::new(),
            );
            row(
                &mut t,
                "fill source (nginx) cores",
                String::new(),
                fmt_opt(f.source_cores, 3),
                String::new(),
            );
            if f.fill_ended_early > 0 {
                let _ = writeln!(
                    t,
                    "    {} run(s): the fill ran out of work before the load ended",
                    f.fill_ended_early
                );
            }
        }
        t.push('\n');
    }
    let parts: Vec<String> = report
        .summary
        .iter()
        .map(|s| format!("({}) {}", s.scenario, fmt_opt(s.eddy_over_nginx.req_s, 3)))
        .collect();
    let worst = report
        .summary
        .iter()
        .filter_map(|s| s.eddy_over_nginx.req_s)
        .min_by(f64::total_cmp);
    let _ = writeln!(
        t,
        "req/s eddy/nginx: {}   worst {}",
        parts.join("  "),
        fmt_opt(worst, 3)
    );
    for s in &report.summary {
        if let Some(f) = &s.fill_serving {
            let _ = writeln!(
                t,
                "req/s eddy filling/eddy not filling ({}): {}",
                s.scenario,
                fmt_opt(f.req_s, 3)
            );
        }
    }
    if let Some(fill) = &report.fill {
        t.push_str(&fill_table(fill));
    }
    if let Some(d) = &report.drives {
        t.push_str(&crate::drives::table(d));
    }
    for note in &report.notes {
        let _ = writeln!(t, "note: {note}");
    }
    t
}

/// The block of the fill measurements.
pub fn fill_table(f: &FillReport) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n(fill) eddy filling empty disks from nginx (`--fill-window always`), read from /fill/status"
    );
    for c in &f.caps {
        let _ = writeln!(
            t,
            "    cap {:>5} Mbit/s: achieved {:>8.1} Mbit/s over {:.1} s (after {:.1} s), error {:+.2}%, \
             per-interval {:.1}..{:.1}, eddy {:.3} cores{}{}",
            c.cap_mbps,
            c.achieved_mbps,
            c.window_s,
            c.skip_s,
            c.error_pct,
            c.interval_min_mbps,
            c.interval_max_mbps,
            c.cores,
            if c.ended_early {
                "  ENDED EARLY (ran out of work)"
            } else {
                ""
            },
            if c.errors.values().any(|&n| n > 0) {
                format!("  errors {:?}", c.errors)
            } else {
                String::new()
            }
        );
    }
    if let Some(u) = &f.uncapped {
        let _ = writeln!(
            t,
            "    uncapped: {} objects, {:.2} GiB in {:.2} s = {:.1} MiB/s ({:.2} Gbit/s), eddy {:.3} cores, \
             {:.2} CPU s per GiB",
            u.objects,
            u.bytes as f64 / (1u64 << 30) as f64,
            u.seconds,
            u.mib_s,
            u.gbps,
            u.cores,
            u.cpu_s_per_gib
        );
        let _ = writeln!(
            t,
            "    disk write ({}, fsync): {:.2} GiB in {:.2} s = {:.1} MiB/s; fill/disk {:.3}",
            if u.disk.direct {
                "O_DIRECT"
            } else {
                "buffered"
            },
            u.disk.bytes as f64 / (1u64 << 30) as f64,
            u.disk.seconds,
            u.disk.mib_s,
            u.of_disk
        );
    }
    for e in &f.failures {
        let _ = writeln!(t, "    FAILED: {e}");
    }
    t
}

/// `<out>/bench-<UTC time>[-smoke].<ext>`: where a run's results go (the directory is created).
pub fn result_path(cfg: &Config, started_at: &str, ext: &str) -> Result<PathBuf> {
    fs::create_dir_all(&cfg.out).at("create", &cfg.out)?;
    let stamp = compact_stamp(started_at);
    let suffix = if cfg.smoke { "-smoke" } else { "" };
    Ok(cfg.out.join(format!("bench-{stamp}{suffix}.{ext}")))
}

/// Write the report as JSON into `path`.
pub fn write_json(report: &Report, path: &Path) -> Result<()> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    fs::write(path, text).at("write", path)
}

/// `2026-11-24T20:41:07Z` -> `20261124T204107Z`.
fn compact_stamp(iso: &str) -> String {
    iso.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// Now in UTC as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_from_unix(secs)
}

fn utc_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(compact_stamp("2023-11-14T22:13:20Z"), "20231114T221320Z");
    }
}
