//! eddy-bench: eddy against nginx on the same box, on the same files, interleaved round by round.
//!
//! This file owns the sequence of a bench run: flags, tools, content, eddy's store, page-cache warm-up, both
//! servers up, then for each round the body checks, every scenario on nginx then on eddy, the body checks again;
//! finally the servers stopped, the JSON written and the table printed. Exit status: 0 when every body check
//! passed (and, with `--smoke`, wrk saw no failure), 1 when a check failed, 2 when the bench itself could not run.
//!
//! Usage: `bench/setup.sh` once, `cargo build --release -p eddy`, then `cargo run -p eddy-bench --release -- [flags]`
//! (see `--help` and bench/README.md).

mod check;
mod cli;
mod content;
mod eddy;
mod error;
mod measure;
mod nginx;
mod procstat;
mod report;
mod scenario;
mod server;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::Parser;

use crate::check::Probe;
use crate::cli::{Args, Config};
use crate::content::{Content, Xoshiro};
use crate::error::{Error, IoContext, Result};
use crate::report::{CheckRecord, Machine, Report, RunRecord, Tools};
use crate::scenario::Scenario;
use crate::server::{find_tool, Server};
use crate::wrk::Wrk;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("eddy-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// The whole bench. Ok(false): it ran, but a server failed a body check (or, in smoke mode, wrk saw failures).
fn run(args: Args) -> Result<bool> {
    let started_at = report::utc_now();
    let command: Vec<String> = std::env::args().collect();
    let mut cfg = Config::from_args(args)?;
    for key in &cfg.scenarios {
        if !scenario::KNOWN.iter().any(|(k, _)| k == key) {
            let known: Vec<&str> = scenario::KNOWN.iter().map(|(k, _)| *k).collect();
            return Err(Error::Usage(format!(
                "unknown scenario {key:?} (known: {})",
                known.join(",")
            )));
        }
    }
    let missing = |tool: &str, p: &Path| {
        Error::tool(
            tool,
            format!(
                "{} not found; run bench/setup.sh (apt-get installs nginx-light and wrk)",
                p.display()
            ),
        )
    };
    cfg.nginx = find_tool(&cfg.nginx, &["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .ok_or_else(|| missing("nginx", &cfg.nginx))?;
    cfg.wrk = find_tool(&cfg.wrk, &[]).ok_or_else(|| missing("wrk", &cfg.wrk))?;
    if !cfg.eddy.is_file() {
        return Err(Error::tool(
            "eddy",
            format!(
                "{} not found; build it with `cargo build --release -p eddy`",
                cfg.eddy.display()
            ),
        ));
    }
    let tools = Tools {
        nginx: nginx::version(&cfg.nginx)?,
        wrk: wrk_version(&cfg.wrk),
        eddy: eddy::version(&cfg.eddy)?,
    };
    eprintln!("tools: {} | {} | {}", tools.nginx, tools.wrk, tools.eddy);

    let (content, _) = content::ensure(&cfg)?;
    let scenarios = scenario::resolve(&cfg.scenarios, &content)?;
    let (disks, _) = eddy::ensure_store(&cfg.eddy, &content)?;
    let t = Instant::now();
    let warmed = content::warm(&[content.src.clone(), content.dir.join("store")])?;
    eprintln!(
        "warm: read {:.2} GiB of content and store into the page cache in {:.1} s",
        warmed as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64()
    );

    let run_dir = std::env::temp_dir().join(format!(
        "eddy-bench-{}-{}",
        std::process::id(),
        started_at.replace([':', '-'], "")
    ));
    std::fs::create_dir_all(&run_dir).at("create", &run_dir)?;
    wrk::write_scripts(&run_dir)?;

    let nginx = nginx::start(&cfg.nginx, &content.src, &run_dir, cfg.connections)?;
    eprintln!(
        "nginx: listening on {} (pid {}, {} processes)",
        nginx.addr,
        nginx.pid(),
        nginx.pids().len()
    );
    let eddy = eddy::start(&cfg.eddy, &disks, &run_dir)?;
    eprintln!("eddy: listening on {} (pid {})", eddy.addr, eddy.pid());

    let base_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let mut bench = Bench {
        cfg: &cfg,
        content: &content,
        scenarios: &scenarios,
        wrk: Wrk {
            bin: &cfg.wrk,
            threads: cfg.threads,
            connections: cfg.connections,
            duration_s: cfg.duration_s,
            script_dir: run_dir.clone(),
        },
        ticks: procstat::clock_ticks(),
        rng: Xoshiro::new(base_seed),
        base_seed,
        checks: Vec::new(),
        runs: Vec::new(),
    };
    let mut servers = [nginx, eddy];
    let outcome = bench.rounds(&mut servers);

    let mut notes = Vec::new();
    if let Err(e) = &outcome {
        notes.push(format!("the bench stopped early: {e}"));
    }
    notes.push(format!("wrk request seeds start at {base_seed}"));
    for s in servers {
        let name = s.kind.name();
        match s.stop() {
            Ok(st) if st.success() => {}
            Ok(st) => notes.push(format!("{name} exited with {st} when stopped")),
            Err(e) => notes.push(e.to_string()),
        }
    }

    let summary = report::summarize(&scenarios, &bench.runs);
    let contended = bench
        .runs
        .iter()
        .filter(|r| r.other_cores > report::OTHER_LOAD_LIMIT)
        .count();
    if contended > 0 {
        notes.push(format!(
            "{contended} of {} runs shared the machine with more than {} cores of other load; \
             their figures (and ratios taken with them) are suspect: rerun on a quiet machine",
            bench.runs.len(),
            report::OTHER_LOAD_LIMIT
        ));
    }
    let body_failures = bench.checks.iter().filter(|c| c.error.is_some()).count();
    if body_failures > 0 {
        notes.push(format!(
            "{body_failures} body check(s) failed; those servers' runs in those rounds score 0"
        ));
    }
    let report = Report {
        tool: "eddy-bench",
        tool_version: env!("CARGO_PKG_VERSION"),
        started_at,
        finished_at: report::utc_now(),
        command,
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            clock_ticks: bench.ticks,
        },
        tools,
        config: cfg.clone(),
        content: content.manifest.clone(),
        scenarios: scenarios.clone(),
        checks: bench.checks,
        runs: bench.runs,
        summary,
        notes,
    };
    let json = report::write_json(&report, &cfg.out)?;
    print!("{}", report::table(&report));
    println!("results: {}", json.display());
    outcome?;

    let wrk_failures: u64 = report.runs.iter().map(|r| r.failures_total).sum();
    let bad_bytes = report.runs.iter().filter(|r| !r.bytes_ok).count();
    let ok = body_failures == 0 && (!cfg.smoke || (wrk_failures == 0 && bad_bytes == 0));
    if cfg.smoke {
        eprintln!(
            "smoke: {} body check failure(s), {wrk_failures} wrk failure(s), {bad_bytes} run(s) with unexpected byte counts: {}",
            body_failures,
            if ok { "ok" } else { "FAILED" }
        );
    }
    if ok && !cfg.keep_run_dir {
        if let Err(e) = std::fs::remove_dir_all(&run_dir) {
            eprintln!("warning: could not remove {}: {e}", run_dir.display());
        }
    } else {
        eprintln!("run directory kept: {}", run_dir.display());
    }
    Ok(ok)
}

/// First line of `wrk -v` (which exits non-zero after printing its usage).
fn wrk_version(wrk: &PathBuf) -> String {
    Command::new(wrk)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout);
            s.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// State of the measuring part of a run.
struct Bench<'a> {
    cfg: &'a Config,
    content: &'a Content,
    scenarios: &'a [Scenario],
    wrk: Wrk<'a>,
    ticks: f64,
    rng: Xoshiro,
    base_seed: u64,
    checks: Vec<CheckRecord>,
    runs: Vec<RunRecord>,
}

impl Bench<'_> {
    /// Every round: checks, each scenario on each server in turn (nginx first), checks again.
    fn rounds(&mut self, servers: &mut [Server]) -> Result<()> {
        let rounds = self.cfg.rounds;
        for round in 1..=rounds {
            let first_run = self.runs.len();
            let first_check = self.checks.len();
            self.check(round, "before", servers);
            for (si, sc) in self.scenarios.iter().enumerate() {
                let seed = self
                    .base_seed
                    .wrapping_add(u64::from(round) * 1000 + si as u64);
                for server in servers.iter_mut() {
                    if !server.alive() {
                        return Err(server.died());
                    }
                    let started_at = report::utc_now();
                    let sample = measure::run(&self.wrk, server, sc, seed, self.ticks)?;
                    let r = RunRecord::new(
                        round,
                        sc,
                        server.kind,
                        self.cfg.connections,
                        started_at,
                        sample,
                    );
                    eprintln!(
                        "round {round}/{rounds} ({}) {:<5}: {:>9.1} req/s {:>6.2} Gbit/s  p50 {:>7.2} ms  p99 {:>7.2} ms  \
                         server {:.3} cores  wrk {:.3} cores  other {:.2} cores  rss {:.1} MiB  failures {}{}",
                        sc.key,
                        server.kind.name(),
                        r.raw_req_s,
                        r.raw_gbps,
                        r.p50_ms,
                        r.p99_ms,
                        r.server_cores,
                        r.wrk_cores,
                        r.other_cores,
                        r.server_rss_mib,
                        r.failures_total,
                        if r.bytes_ok { "" } else { "  BYTE COUNT OFF" }
                    );
                    if r.other_cores > report::OTHER_LOAD_LIMIT {
                        let top: Vec<String> = r
                            .sample
                            .other_top
                            .iter()
                            .map(|o| format!("{} ({}) {:.2}", o.comm, o.pid, o.cores))
                            .collect();
                        let top = if top.is_empty() {
                            "(processes that ended before the run did)".to_string()
                        } else {
                            top.join(", ")
                        };
                        eprintln!("    other load: {top}");
                    }
                    self.runs.push(r);
                }
            }
            self.check(round, "after", servers);
            // A server that failed either check in this round scores 0 in all of this round's runs.
            for run in &mut self.runs[first_run..] {
                let err = self.checks[first_check..]
                    .iter()
                    .filter(|c| c.server == run.server)
                    .find_map(|c| c.error.clone());
                run.set_body_error(err);
            }
        }
        Ok(())
    }

    /// Body checks of every server with the same sample requests (drawn fresh for each check point).
    fn check(&mut self, round: u32, when: &'static str, servers: &mut [Server]) {
        let probes: Vec<Probe> = self
            .scenarios
            .iter()
            .flat_map(|s| s.probes(self.content, &mut self.rng))
            .collect();
        for server in servers.iter_mut() {
            let result = if server.alive() {
                check::run(server.addr, &probes)
            } else {
                Err(server.died().to_string())
            };
            let (bytes, error) = match result {
                Ok(n) => (n, None),
                Err(e) => {
                    eprintln!(
                        "round {round} {when}: {} body check FAILED: {e}",
                        server.kind.name()
                    );
                    (0, Some(e))
                }
            };
            self.checks.push(CheckRecord {
                round,
                server: server.kind,
                when,
                probes: probes.len(),
                bytes_compared: bytes,
                error,
            });
        }
    }
}
