//! One measured run: wrk against one server for one scenario, with the server's CPU (utime+stime of its process
//! tree from /proc), wrk's CPU (this process's reaped-children times), the server's peak resident memory, and the
//! machine's CPU split, all over the same wall-clock window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Result;
use crate::procstat::{self, CpuSplit, SysCpu};
use crate::scenario::Scenario;
use crate::server::Server;
use crate::wrk::{Outcome, Wrk};

/// Raw measurements of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub wrk: Outcome,
    /// Wall time of the measured window (wrk's whole life), seconds.
    pub wall_s: f64,
    /// Server CPU over the window, in cores.
    pub server_cores: f64,
    /// wrk's CPU over the window, in cores.
    pub wrk_cores: f64,
    /// Peak of the summed VmRSS of the server's processes, KiB (sampled every 100 ms).
    pub server_rss_kib: u64,
    /// Processes counted as the server.
    pub server_procs: usize,
    /// The whole machine's CPU split.
    pub sys: CpuSplit,
    /// Cores busy with anything but the server and wrk (other jobs on the machine; the bench's own sampling).
    /// More than a few tenths of a core means the run competed for CPU and its figures are suspect.
    pub other_cores: f64,
    /// The processes (outside the server) that used the most CPU during the run, largest first, each with the
    /// children it reaped meanwhile (see [`procstat::all_ticks`]). The bench itself (credited with wrk) is left out.
    pub other_top: Vec<OtherProc>,
}

/// A process that ran beside the server and wrk.
#[derive(Debug, Clone, Serialize)]
pub struct OtherProc {
    pub pid: u32,
    pub comm: String,
    pub cores: f64,
}

/// Run wrk for `scenario` against `server` and measure.
pub fn run(
    wrk: &Wrk,
    server: &Server,
    scenario: &Scenario,
    seed: u64,
    ticks_per_s: f64,
) -> Result<Sample> {
    let pids = server.pids();
    let url = scenario.url(server.addr);
    let (script, args) = scenario.wrk_script(seed);
    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(procstat::rss_kib_sum(&pids));

    let all0 = procstat::all_ticks();
    let sys0 = SysCpu::sample();
    let wrk0 = procstat::reaped_children_ticks();
    let srv0 = procstat::cpu_ticks_sum(&pids);
    let t0 = Instant::now();
    let (outcome, srv1, wrk1, t1, sys1, all1) = thread::scope(|sc| {
        sc.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(procstat::rss_kib_sum(&pids), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(100));
            }
        });
        let outcome = wrk.run(script, &url, &args);
        let end = (
            procstat::cpu_ticks_sum(&pids),
            procstat::reaped_children_ticks(),
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
    let (server_cores, wrk_cores) = (cores(srv0, srv1), cores(wrk0, wrk1));
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
        wrk: outcome,
        wall_s,
        server_cores,
        wrk_cores,
        server_rss_kib: peak.load(Ordering::Relaxed),
        server_procs: pids.len(),
        sys,
        other_cores: (busy - server_cores - wrk_cores).max(0.0),
        other_top,
    })
}
