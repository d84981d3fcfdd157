//! One measured run: a load generator (wrk, h2load, or the bench's own idle-connection client) against one server
//! for one scenario, with the server's CPU (utime and stime of its process tree from /proc, apart), the client's CPU (this
//! process's reaped-children times plus its own), the server's peak resident memory, and the machine's CPU split,
//! all over the same wall-clock window. Also owns [`Outcome`], what every load generator reports.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cold::ColdStats;
use crate::error::Result;
use crate::h2load::H2Info;
use crate::idle::IdleStats;
use crate::procstat::{self, CpuSplit, SysCpu};

/// Socket errors and error responses as the load generator counts them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Errors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
    /// Responses with status >= 400.
    pub status: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout + self.status
    }
}

/// What one load generator run reported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub requests: u64,
    pub bytes: u64,
    pub duration_us: u64,
    pub errors: Errors,
    pub p50_us: u64,
    pub p99_us: u64,
    pub mean_us: u64,
    pub max_us: u64,
    /// The first wrong body the load generator itself saw (only the idle client of (g) compares bodies while it
    /// loads; wrk and h2load rely on the body checks around the round and on the byte count).
    pub body_error: Option<String>,
}

impl Outcome {
    /// Sets p50, p99, max and mean from per-request latencies in microseconds
    /// (nearest-rank percentiles; all zero when there are none).
    pub fn set_latencies(&mut self, mut latencies: Vec<u64>) {
        latencies.sort_unstable();
        let pct = |p: f64| -> u64 {
            if latencies.is_empty() {
                return 0;
            }
            let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i]
        };
        self.p50_us = pct(0.50);
        self.p99_us = pct(0.99);
        self.max_us = latencies.last().copied().unwrap_or(0);
        self.mean_us = if latencies.is_empty() {
            0
        } else {
            latencies.iter().sum::<u64>() / latencies.len() as u64
        };
    }
}

/// What the load closure of [`run`] returns: the outcome and what the load generator adds to it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub outcome: Outcome,
    pub idle: Option<IdleStats>,
    pub h2: Option<H2Info>,
}

/// Raw measurements of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// What the load generator reported.
    pub load: Outcome,
    /// Wall time of the measured window (the load generator's whole life), seconds.
    pub wall_s: f64,
    /// Server CPU over the window, in cores.
    pub server_cores: f64,
    /// Of it, user space (utime) and the kernel (stime), in cores.
    pub server_user_cores: f64,
    pub server_system_cores: f64,
    /// The client's CPU over the window, in cores: the children the bench reaped (wrk, h2load) and the bench's
    /// own process (the idle client of (g) runs inside it; otherwise it only samples /proc).
    pub client_cores: f64,
    /// Peak of the summed VmRSS of the server's processes, KiB (sampled every 100 ms).
    pub server_rss_kib: u64,
    /// Peak of the summed RssAnon (VmRSS less mapped file pages), KiB.
    pub server_rss_anon_kib: u64,
    /// Processes counted as the server.
    pub server_procs: usize,
    /// The whole machine's CPU split.
    pub sys: CpuSplit,
    /// Cores busy with anything but the server and the client (other jobs on the machine).
    /// More than a few tenths of a core means the run competed for CPU and its figures are suspect.
    pub other_cores: f64,
    /// The processes (outside the server) that used the most CPU during the run, largest first, each with the
    /// children it reaped meanwhile (see [`procstat::all_ticks`]). The bench itself (credited as the client) is
    /// left out.
    pub other_top: Vec<OtherProc>,
    /// Scenario (g): connections, memory before and with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleStats>,
    /// Scenario (e): h2load's slices, cipher and protocol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2: Option<H2Info>,
    /// Scenario (f): what the eviction before this run achieved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold: Option<ColdStats>,
}

/// A process that ran beside the server and wrk.
#[derive(Debug, Clone, Serialize)]
pub struct OtherProc {
    pub pid: u32,
    pub comm: String,
    pub cores: f64,
}

/// Run `load` (which blocks for the run) against the server made of `pids` and measure over its whole life.
pub fn run(
    pids: &[u32],
    ticks_per_s: f64,
    load: impl FnOnce() -> Result<Loaded>,
) -> Result<Sample> {
    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(procstat::rss_kib_sum(pids));
    let peak_anon = AtomicU64::new(procstat::rss_anon_kib_sum(pids));

    let all0 = procstat::all_ticks();
    let sys0 = SysCpu::sample();
    let cli0 = procstat::client_ticks();
    let srv0 = procstat::split_ticks_sum(pids);
    let t0 = Instant::now();
    let (outcome, srv1, cli1, t1, sys1, all1) = thread::scope(|sc| {
        sc.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(procstat::rss_kib_sum(pids), Ordering::Relaxed);
                peak_anon.fetch_max(procstat::rss_anon_kib_sum(pids), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(100));
            }
        });
        let outcome = load();
        let end = (
            procstat::split_ticks_sum(pids),
            procstat::client_ticks(),
            Instant::now(),
            SysCpu::sample(),
        );
        let all1 = procstat::all_ticks();
        stop.store(true, Ordering::Relaxed);
        (outcome, end.0, end.1, end.2, end.3, all1)
    });
    let outcome = outcome?;
    let wall_s = t1.duration_since(t0).as_secs_f64().max(1e-6);
    let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / ticks_per_s / wall_s;
    let srv = srv0.until(srv1);
    let per_s = |t: u64| t as f64 / ticks_per_s / wall_s;
    let (server_cores, client_cores) = (per_s(srv.total()), cores(cli0, cli1));
    let sys = sys0.split_until(&sys1);
    let ncpu = thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let busy = (100.0 - sys.idle_pct) / 100.0 * ncpu;
    let mut other_top: Vec<OtherProc> = all1
        .iter()
        .filter(|(pid, _)| !pids.contains(pid) && **pid != std::process::id())
        .filter_map(|(&pid, (comm, t1))| {
            let t0 = all0.get(&pid).map_or(0, |(_, t)| *t);
            let c = cores(t0, *t1);
            (c >= 0.01).then(|| OtherProc {
                pid,
                comm: comm.clone(),
                cores: c,
            })
        })
        .collect();
    other_top.sort_by(|a, b| b.cores.total_cmp(&a.cores));
    other_top.truncate(5);
    Ok(Sample {
        load: outcome.outcome,
        wall_s,
        server_cores,
        server_user_cores: per_s(srv.user),
        server_system_cores: per_s(srv.system),
        client_cores,
        server_rss_kib: peak.load(Ordering::Relaxed),
        server_rss_anon_kib: peak_anon.load(Ordering::Relaxed),
        server_procs: pids.len(),
        sys,
        other_cores: (busy - server_cores - client_cores).max(0.0),
        other_top,
        idle: outcome.idle,
        h2: outcome.h2,
        cold: None,
    })
}
