//! eddy-bench: eddy against nginx on the same box, on the same files, interleaved round by round.
//!
//! This file owns the sequence of a bench run: flags, tools, content, eddy's stores, page-cache warm-up, the
//! certificate, both sides' servers up (see `fleet.rs`) and the ciphers they negotiate, then for each round the
//! body checks, every scenario on nginx then on eddy (for (f), the page cache emptied of big.bin before each run
//! and filled again after both), the body checks again; finally the servers stopped, the JSON and the SVG chart
//! written and the table printed. Scenario (i) runs eddy twice per round on an instance of its own (with and
//! without a fill, the order alternating by round), and after the rounds the fill measurements (`fill.rs`:
//! rate caps, uncapped fill and disk write speed) run against nginx as the fill's source. Exit status: 0 when every body check passed (and, with `--smoke`, the clients
//! saw no failure and no run failed), 1 when a check failed, 2 when the bench itself could not run.
//!
//! Usage: `bench/setup.sh` once, `cargo build --release -p eddy`, then `cargo run -p eddy-bench --release -- [flags]`
//! (see `--help` and bench/README.md).

mod chart;
mod check;
mod cli;
mod cold;
mod content;
mod drives;
mod eddy;
mod error;
mod fill;
mod fleet;
mod h2load;
mod idle;
mod measure;
mod nginx;
mod procstat;
mod report;
mod scenario;
mod server;
mod tls;
mod wrk;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::check::Probe;
use crate::cli::{Args, Config};
use crate::content::{Content, Small, Xoshiro};
use crate::error::{Error, IoContext, Result};
use crate::fleet::{IdleRecipe, Side, Via};
use crate::h2load::H2load;
use crate::measure::Loaded;
use crate::report::{CheckRecord, Machine, Report, RunRecord, Skip, Tools};
use crate::scenario::{Load, Scenario, Transport};
use crate::server::{find_tool, Kind};
use crate::tls::TlsFiles;
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

/// What the chosen scenarios need.
struct Needs {
    wrk: bool,
    h2load: bool,
    tls: bool,
    cold: bool,
    idle: bool,
    small: bool,
    /// Scenario (i) or a fill measurement: the fill's source (digests, manifests served by nginx).
    fill: bool,
}

impl Needs {
    fn of(keys: &[String]) -> Needs {
        let has = |k: &str| keys.iter().any(|x| x == k);
        Needs {
            wrk: ["a", "b", "c", "d", "f", "h", "i"].iter().any(|k| has(k)),
            h2load: has("e"),
            tls: has("d") || has("e"),
            cold: has("f"),
            idle: has("g"),
            small: has("h"),
            fill: has("i"),
        }
    }
}

/// Find a tool or say how to get it.
fn tool(path: &Path, name: &str, package: &str, extra: &[&str]) -> Result<PathBuf> {
    find_tool(path, extra).ok_or_else(|| {
        Error::tool(
            name,
            format!(
                "{} not found; run bench/setup.sh (apt-get installs {package})",
                path.display()
            ),
        )
    })
}

/// First line of a tool's version output (stdout, or stderr when stdout is empty).
fn tool_version(bin: &Path, arg: &str) -> String {
    Command::new(bin)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            let out = if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            };
            let s = String::from_utf8_lossy(out);
            s.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// Raise RLIMIT_NOFILE to at least `want` (children inherit it); returns the soft limit in force.
fn raise_nofile(want: u64) -> Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|e| Error::io("getrlimit(RLIMIT_NOFILE)", e.into()))?;
    if soft >= want {
        return Ok(soft);
    }
    // Root may raise the hard limit too; anyone may raise the soft one up to the hard one.
    if setrlimit(Resource::RLIMIT_NOFILE, want, hard.max(want)).is_ok() {
        return Ok(want);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
        .map_err(|e| Error::io("setrlimit(RLIMIT_NOFILE)", e.into()))?;
    Ok(hard)
}

/// The whole bench. Ok(false): it ran, but a server failed a body check (or, in smoke mode, a client saw failures
/// or a run failed).
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
    let mut needs = Needs::of(&cfg.scenarios);
    needs.fill |= !cfg.fill_caps.is_empty();
    needs.wrk |= cfg.drives.contains(&drives::Which::Stall);
    cfg.nginx = tool(
        &cfg.nginx,
        "nginx",
        "nginx-light",
        &["/usr/sbin", "/usr/local/sbin", "/sbin"],
    )?;
    if needs.wrk {
        cfg.wrk = tool(&cfg.wrk, "wrk", "wrk", &[])?;
    }
    if needs.h2load {
        cfg.h2load = tool(&cfg.h2load, "h2load", "nghttp2-client", &[])?;
    }
    if needs.tls {
        cfg.openssl = tool(&cfg.openssl, "openssl", "openssl", &[])?;
        cfg.curl = tool(&cfg.curl, "curl", "curl", &[])?;
    }
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
        wrk: if needs.wrk {
            tool_version(&cfg.wrk, "-v")
        } else {
            String::new()
        },
        eddy: eddy::version(&cfg.eddy)?,
        h2load: needs.h2load.then(|| tool_version(&cfg.h2load, "--version")),
        openssl: needs.tls.then(|| tool_version(&cfg.openssl, "version")),
        curl: needs.tls.then(|| tool_version(&cfg.curl, "--version")),
    };
    eprintln!("tools: {} | {} | {}", tools.nginx, tools.wrk, tools.eddy);
    if needs.idle {
        let want = u64::from(cfg.idle_connections) * 2 + 4096;
        let got = raise_nofile(want)?;
        if got < u64::from(cfg.idle_connections) + 1024 {
            return Err(Error::Usage(format!(
                "scenario g needs {} open files per process, and RLIMIT_NOFILE stops at {got}",
                u64::from(cfg.idle_connections) + 1024
            )));
        }
    }

    let (content, _) = content::ensure(&cfg)?;
    let small = if needs.small {
        Some(content::ensure_small(&cfg)?)
    } else {
        None
    };
    let scenarios = scenario::resolve(&cfg.scenarios, &content, small.as_ref(), &cfg)?;
    let digests = if needs.fill {
        fill::digests(&content)?
    } else {
        Vec::new()
    };
    let (mut disks, _) = eddy::ensure_store(
        &cfg.eddy,
        &content.dir,
        &content.manifest,
        &content.objects(),
    )?;
    if let Some(sm) = &small {
        let (d, _) = eddy::ensure_store(&cfg.eddy, &sm.dir, &sm.manifest, &sm.objects())?;
        disks.extend(d);
    }
    let t = Instant::now();
    let mut warm_dirs = vec![content.src.clone(), content.dir.join("store")];
    if let Some(sm) = &small {
        warm_dirs.extend([sm.src.clone(), sm.dir.join("store")]);
    }
    let warmed = content::warm(&warm_dirs)?;
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
    let fill_www = run_dir.join("fill-www");
    if needs.fill {
        std::fs::create_dir_all(&fill_www).at("create", &fill_www)?;
    }
    let tls_files = if needs.tls {
        Some(tls::make_cert(&cfg.openssl, &run_dir)?)
    } else {
        None
    };

    let sides = start_sides(
        &cfg,
        &content,
        small.as_ref(),
        &disks,
        tls_files.as_ref(),
        &needs,
        &run_dir,
        needs.fill.then_some(fill_www.as_path()),
    )?;
    let source = if needs.fill {
        Some(fill::Source::new(
            fill_www.clone(),
            sides[0].main.addr,
            digests,
        )?)
    } else {
        None
    };
    let serving_roots = if cfg.scenarios.iter().any(|k| k == "i") {
        fill::serving_store(&run_dir, &eddy::disks(&content.dir.join("store")))?
    } else {
        Vec::new()
    };
    let big_digest = source
        .as_ref()
        .and_then(|s| s.objects.iter().find(|o| o.key == "big.bin").cloned());
    let mut notes = Vec::new();
    let mut negotiated = Vec::new();
    for side in &sides {
        if let Err(reason) = &side.tls {
            if needs.tls {
                notes.push(format!(
                    "{}: (d) and (e) skipped: {reason}",
                    side.kind.name()
                ));
            }
            continue;
        }
        if let Ok(addr) = side.tls {
            let mut offers: Vec<Option<&str>> = Vec::new();
            if cfg.scenarios.iter().any(|k| k == "d") {
                offers.push(None);
            }
            if cfg.scenarios.iter().any(|k| k == "e") {
                offers.push(Some("h2"));
            }
            for alpn in offers {
                let n = tls::negotiated(&cfg.openssl, side.kind, addr, alpn);
                eprintln!(
                    "tls: {} at {addr}{}: {} {}{}",
                    side.kind.name(),
                    alpn.map_or(String::new(), |a| format!(" (ALPN {a})")),
                    n.protocol.as_deref().unwrap_or("?"),
                    n.cipher.as_deref().unwrap_or("?"),
                    n.error
                        .as_deref()
                        .map_or(String::new(), |e| format!(": {e}"))
                );
                if let Some(e) = &n.error {
                    notes.push(format!("{} TLS check: {e}", side.kind.name()));
                }
                negotiated.push(n);
            }
        }
    }

    let base_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let mut bench = Bench {
        cfg: &cfg,
        scenarios: &scenarios,
        wrk: Wrk {
            bin: &cfg.wrk,
            threads: cfg.threads,
            connections: cfg.connections,
            duration_s: cfg.duration_s,
            script_dir: run_dir.clone(),
        },
        h2load: H2load {
            bin: &cfg.h2load,
            threads: cfg.threads,
            connections: cfg.connections,
            duration_s: cfg.duration_s,
            dir: run_dir.clone(),
        },
        tls_files: tls_files.as_ref(),
        run_dir: &run_dir,
        ticks: procstat::clock_ticks(),
        rng: Xoshiro::new(base_seed),
        base_seed,
        checks: Vec::new(),
        runs: Vec::new(),
        skipped: Vec::new(),
        source,
        serving_roots,
        big_digest,
        content_src: content.src.clone(),
    };
    let mut sides = sides;
    let outcome = bench.rounds(&mut sides);
    let fill_report = match (&outcome, cfg.fill_caps.is_empty()) {
        (Ok(()), false) => Some(bench.fill_measurements()),
        _ => None,
    };
    let drive_report = match (&outcome, cfg.drives.is_empty()) {
        (Ok(()), false) => Some(drives::run(
            &drives::Params {
                cfg: &cfg,
                run_dir: &run_dir,
                ticks: bench.ticks,
                seed: base_seed,
            },
            &cfg.drives,
        )),
        _ => None,
    };

    if let Err(e) = &outcome {
        notes.push(format!("the bench stopped early: {e}"));
    }
    notes.push(format!("request seeds start at {base_seed}"));
    for side in sides {
        notes.extend(side.stop());
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
    let json = report::result_path(&cfg, &started_at, "json")?;
    let svg = json.with_extension("svg");
    let subtitle = format!(
        "{}, {} round(s) x {} s{}",
        started_at,
        cfg.rounds,
        cfg.duration_s,
        if cfg.smoke { ", smoke" } else { "" }
    );
    let chart = match chart::draw(&summary, &subtitle, &svg) {
        Ok(()) => Some(svg),
        Err(e) => {
            notes.push(format!("no chart: {e}"));
            None
        }
    };
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
        tls: negotiated,
        checks: bench.checks,
        runs: bench.runs,
        skipped: bench.skipped,
        summary,
        fill: fill_report,
        drives: drive_report,
        chart,
        notes,
    };
    report::write_json(&report, &json)?;
    print!("{}", report::table(&report));
    println!("results: {}", json.display());
    if let Some(svg) = &report.chart {
        println!("chart: {}", svg.display());
    }
    outcome?;

    let client_failures: u64 = report.runs.iter().map(|r| r.failures_total).sum();
    let bad_bytes = report.runs.iter().filter(|r| !r.bytes_ok).count();
    let failed_runs = report.skipped.iter().filter(|k| k.failed).count();
    // Wrong bytes from eddy's (i) instance, or from a filled object, fail any run, like a body check.
    let wrong_fill_bodies = report
        .runs
        .iter()
        .filter(|r| r.fill.is_some() && r.sample.load.body_error.is_some())
        .count()
        + report.fill.as_ref().map_or(0, |f| {
            f.failures
                .iter()
                .filter(|e| e.contains(fill::WRONG_BODY))
                .count()
        });
    let fill_failures = report.fill.as_ref().map_or(0, |f| f.failures.len());
    let drive_failures = report.drives.as_ref().map_or(0, |d| d.failures.len());
    let ok = body_failures == 0
        && wrong_fill_bodies == 0
        && (!cfg.smoke
            || (client_failures == 0
                && bad_bytes == 0
                && failed_runs == 0
                && fill_failures == 0
                && drive_failures == 0));
    if cfg.smoke {
        eprintln!(
            "smoke: {body_failures} body check failure(s), {client_failures} client failure(s), \
             {bad_bytes} run(s) with unexpected byte counts, {failed_runs} failed run(s), \
             {fill_failures} fill failure(s), {drive_failures} drive measurement failure(s): {}",
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

/// Start both sides: nginx (main and, for (g), its own instance) and eddy (the same).
#[allow(clippy::too_many_arguments)]
fn start_sides(
    cfg: &Config,
    content: &Content,
    small: Option<&Small>,
    disks: &[PathBuf],
    tls_files: Option<&TlsFiles>,
    needs: &Needs,
    run_dir: &Path,
    fill_root: Option<&Path>,
) -> Result<Vec<Side>> {
    let n_opts = nginx::Options {
        root: content.src.clone(),
        small_root: small.map(|s| s.src.clone()),
        cold: needs.cold,
        tls: tls_files.cloned(),
        // Enough for the load and the checks; nginx preallocates its connection table, so no more than that.
        worker_connections: cfg.connections.saturating_mul(2).max(1024),
        idle: false,
        fill_root: fill_root.map(Path::to_path_buf),
    };
    let (n_main, n_ports) = nginx::start(&cfg.nginx, &n_opts, run_dir)?;
    eprintln!(
        "nginx: listening on {} (pid {}, {} processes){}{}",
        n_ports.plain,
        n_main.pid(),
        n_main.pids().len(),
        n_ports
            .cold
            .map_or(String::new(), |a| format!(", aio threads on {a}")),
        n_ports
            .tls
            .map_or(String::new(), |a| format!(", TLS on {a}"))
    );
    let mut nginx_side = Side {
        kind: Kind::Nginx,
        main: n_main,
        idle: None,
        idle_recipe: None,
        cold: n_ports.cold,
        tls: n_ports
            .tls
            .ok_or_else(|| "no TLS scenario asked for".to_string()),
        big_files: vec![content.big()],
    };
    let e_opts = eddy::Options {
        disks: disks.to_vec(),
        tls: tls_files.cloned(),
        max_connections: None,
        idle: false,
        name: None,
        extra: Vec::new(),
        store_keys: Vec::new(),
    };
    let started = eddy::start(&cfg.eddy, &e_opts, run_dir)?;
    eprintln!(
        "eddy: listening on {} (pid {}){}",
        started.server.addr,
        started.server.pid(),
        match &started.tls {
            Ok(a) => format!(", TLS on {a}"),
            Err(e) if needs.tls => format!("; {e}"),
            Err(_) => String::new(),
        }
    );
    let mut eddy_side = Side {
        kind: Kind::Eddy,
        main: started.server,
        idle: None,
        idle_recipe: None,
        cold: None,
        tls: started.tls,
        big_files: disks
            .iter()
            .map(|d| d.join("objects").join("big.bin"))
            .filter(|p| p.is_file())
            .collect(),
    };
    if needs.idle {
        let wc = cfg.idle_connections.saturating_add(1024);
        let recipe = IdleRecipe::Nginx {
            bin: cfg.nginx.clone(),
            opts: nginx::Options {
                root: content.src.clone(),
                small_root: None,
                cold: false,
                tls: None,
                worker_connections: wc,
                idle: true,
                fill_root: None,
            },
            run_dir: run_dir.to_path_buf(),
        };
        let n_idle = recipe.start()?;
        eprintln!(
            "nginx (g): listening on {} (pid {}, worker_connections {wc}; restarted before each run of g)",
            n_idle.addr,
            n_idle.pid()
        );
        nginx_side.idle = Some(n_idle);
        nginx_side.idle_recipe = Some(recipe);
        let max = cfg.idle_connections.saturating_mul(2).max(20_000);
        let recipe = IdleRecipe::Eddy {
            bin: cfg.eddy.clone(),
            opts: eddy::Options {
                disks: disks.to_vec(),
                tls: None,
                max_connections: Some(max),
                idle: true,
                name: None,
                extra: Vec::new(),
                store_keys: Vec::new(),
            },
            run_dir: run_dir.to_path_buf(),
        };
        let e_idle = recipe.start()?;
        eprintln!(
            "eddy (g): listening on {} (pid {}, max_connections {max}; restarted before each run of g)",
            e_idle.addr,
            e_idle.pid()
        );
        eddy_side.idle = Some(e_idle);
        eddy_side.idle_recipe = Some(recipe);
    }
    Ok(vec![nginx_side, eddy_side])
}

/// State of the measuring part of a run.
struct Bench<'a> {
    cfg: &'a Config,
    scenarios: &'a [Scenario],
    wrk: Wrk<'a>,
    h2load: H2load<'a>,
    tls_files: Option<&'a TlsFiles>,
    run_dir: &'a Path,
    ticks: f64,
    rng: Xoshiro,
    base_seed: u64,
    checks: Vec<CheckRecord>,
    runs: Vec<RunRecord>,
    skipped: Vec<Skip>,
    /// The fill's source, when (i) or a fill measurement runs.
    source: Option<fill::Source>,
    /// (i)'s disk roots (big.bin linked in from the bench's store).
    serving_roots: Vec<PathBuf>,
    /// big.bin as a manifest names it, so that (i)'s fills keep it.
    big_digest: Option<fill::Object>,
    /// The content's `src/`, the fill's source files.
    content_src: PathBuf,
}

impl Bench<'_> {
    /// Every round: checks, each scenario on each side in turn (nginx first), checks again.
    fn rounds(&mut self, sides: &mut [Side]) -> Result<()> {
        let rounds = self.cfg.rounds;
        for round in 1..=rounds {
            let first_run = self.runs.len();
            let first_check = self.checks.len();
            self.check(round, "before", sides);
            // The fill's source in (i): nginx's main instance.
            let source_pids: Vec<u32> = sides
                .iter()
                .filter(|s| s.kind == Kind::Nginx)
                .flat_map(|s| s.main.pids())
                .collect();
            for (si, sc) in self.scenarios.iter().enumerate() {
                let seed = self
                    .base_seed
                    .wrapping_add(u64::from(round) * 1000 + si as u64);
                let evict: Vec<PathBuf> = if sc.cold {
                    sides.iter().flat_map(|s| s.big_files.clone()).collect()
                } else {
                    Vec::new()
                };
                for side in sides.iter_mut() {
                    side.alive()?;
                    if sc.fill_mbps.is_some() && side.kind == Kind::Eddy {
                        self.one_filling(round, sc, seed, &source_pids)?;
                    } else {
                        self.one(round, sc, side, seed, &evict)?;
                    }
                }
                if !evict.is_empty() {
                    let t = Instant::now();
                    let n = cold::rewarm(&evict)?;
                    eprintln!(
                        "round {round}/{rounds} ({}): read {:.2} GiB back into the page cache in {:.1} s",
                        sc.key,
                        n as f64 / (1u64 << 30) as f64,
                        t.elapsed().as_secs_f64()
                    );
                }
            }
            self.check(round, "after", sides);
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

    /// One measured run of `sc` on `side`. A side that cannot run the scenario, or whose load generator fails, is
    /// recorded as skipped; only a dead server stops the bench.
    fn one(
        &mut self,
        round: u32,
        sc: &Scenario,
        side: &mut Side,
        seed: u64,
        evict: &[PathBuf],
    ) -> Result<()> {
        let rounds = self.cfg.rounds;
        let name = side.kind.name();
        if matches!(sc.load, Load::Idle { .. }) {
            side.restart_idle()?;
        }
        let (server, addr) = match side.target(sc) {
            Ok(t) => t,
            Err(reason) => {
                eprintln!(
                    "round {round}/{rounds} ({}) {name:<5}: skipped: {reason}",
                    sc.key
                );
                self.skipped.push(Skip {
                    round,
                    scenario: sc.key.clone(),
                    server: side.kind,
                    reason,
                    failed: false,
                });
                return Ok(());
            }
        };
        let cold_stats = if evict.is_empty() {
            None
        } else {
            Some(cold::evict(evict)?)
        };
        let started_at = report::utc_now();
        let pids = server.pids();
        let mut sample = match self.load(sc, &pids, addr, seed) {
            Ok(s) => s,
            Err(e) => {
                side.alive()?;
                eprintln!("round {round}/{rounds} ({}) {name:<5}: FAILED: {e}", sc.key);
                self.skipped.push(Skip {
                    round,
                    scenario: sc.key.clone(),
                    server: side.kind,
                    reason: e.to_string(),
                    failed: true,
                });
                return Ok(());
            }
        };
        sample.cold = cold_stats;
        self.record(round, sc, side.kind, started_at, sample, None);
        Ok(())
    }

    /// Run `sc`'s load against `addr` (the server made of `pids`) and measure it.
    fn load(
        &self,
        sc: &Scenario,
        pids: &[u32],
        addr: SocketAddr,
        seed: u64,
    ) -> Result<measure::Sample> {
        let url = sc.url(addr);
        let cfg = self.cfg;
        let (wrk, h2load) = (&self.wrk, &self.h2load);
        measure::run(pids, self.ticks, || match (&sc.load, sc.transport) {
            (
                Load::Idle {
                    connections,
                    rate,
                    key,
                    file_size,
                    len,
                },
                _,
            ) => {
                let file = sc.src.join(key);
                let (outcome, stats) = idle::run(&idle::Params {
                    addr,
                    connections: *connections,
                    rate: *rate,
                    duration: Duration::from_secs(u64::from(cfg.duration_s)),
                    path: format!("/{key}"),
                    file: &file,
                    file_size: *file_size,
                    len: *len,
                    seed,
                    pids,
                })?;
                Ok(Loaded {
                    outcome,
                    idle: Some(stats),
                    h2: None,
                })
            }
            (Load::Ranges { file_size, len, .. }, Transport::H2) => {
                let (outcome, info) = h2load.run(&url, *file_size, *len, seed)?;
                Ok(Loaded {
                    outcome,
                    idle: None,
                    h2: Some(info),
                })
            }
            _ => {
                let (script, args) = sc.wrk_script(seed).ok_or_else(|| {
                    Error::Usage(format!("scenario {} has no wrk script", sc.key))
                })?;
                Ok(Loaded {
                    outcome: wrk.run(script, &url, &args)?,
                    idle: None,
                    h2: None,
                })
            }
        })
    }

    /// Record one measured run (and print its line).
    fn record(
        &mut self,
        round: u32,
        sc: &Scenario,
        kind: Kind,
        started_at: String,
        sample: measure::Sample,
        fill: Option<fill::FillDuring>,
    ) {
        let rounds = self.cfg.rounds;
        let name = match &fill {
            Some(f) if f.filling => "eddy+fill",
            _ => kind.name(),
        };
        let mut r = RunRecord::new(round, sc, kind, self.cfg.connections, started_at, sample);
        r.fill = fill;
        let extra = match (&r.sample.idle, &r.sample.cold) {
            (Some(i), _) => format!(
                "  conns {}/{} (setup {:.1} s) rss {:.1} -> {:.1} MiB",
                i.connections_open,
                i.connections_wanted,
                i.setup_s,
                i.rss_before_kib as f64 / 1024.0,
                i.rss_loaded_kib as f64 / 1024.0
            ),
            (_, Some(c)) => format!(
                "  evicted: {} of {} MiB left resident",
                c.resident_after()
                    .map_or("?".to_string(), |b| format!("{:.1}", b as f64 / 1048576.0)),
                c.size() / (1 << 20)
            ),
            _ => match &r.fill {
                Some(f) if f.filling => format!(
                    "  fill {} Mbit/s{}",
                    f.achieved_mbps
                        .map_or("?".to_string(), |m| format!("{m:.1}")),
                    if f.ended_early {
                        " (ran out of work)"
                    } else {
                        ""
                    }
                ),
                _ => String::new(),
            },
        };
        eprintln!(
            "round {round}/{rounds} ({}) {name:<5}: {:>9.1} req/s {:>6.2} Gbit/s  p50 {:>7.2} ms  p99 {:>7.2} ms  \
             server {:.3} cores  client {:.3} cores  other {:.2} cores  rss {:.1} MiB  failures {}{}{}{}",
            sc.key,
            r.raw_req_s,
            r.raw_gbps,
            r.p50_ms,
            r.p99_ms,
            r.server_cores,
            r.client_cores,
            r.other_cores,
            r.server_rss_mib,
            r.failures_total,
            if r.bytes_ok { "" } else { "  BYTE COUNT OFF" },
            r.body_error
                .as_deref()
                .map_or(String::new(), |e| format!("  WRONG BODY: {e}")),
            extra
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

    /// Scenario (i) on eddy: two runs of the load on (i)'s own instance, one while its fill downloads at the cap
    /// and one without a fill (odd rounds without first, even rounds with first), each on a freshly started
    /// instance over the same disk roots, with (c)'s body checks on that instance after the load.
    ///
    /// The fill's source (nginx) runs on the same machine: its CPU during the load is recorded with the run
    /// (`source_cores`) and taken out of the run's other load, so that only other jobs flag a run as contended.
    fn one_filling(
        &mut self,
        round: u32,
        sc: &Scenario,
        seed: u64,
        source_pids: &[u32],
    ) -> Result<()> {
        let rounds = self.cfg.rounds;
        let cap = sc.fill_mbps.unwrap_or(1200);
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        let lead = if self.cfg.smoke {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        };
        for filling in order {
            let roots = self.serving_roots.clone();
            fill::wipe_fill(&roots)?;
            let extra = match (filling, self.source.as_mut(), &self.big_digest) {
                (false, _, _) => Vec::new(),
                (true, Some(src), Some(big)) => {
                    // Enough copies that the fill outlasts the load.
                    let secs = lead.as_secs_f64() + f64::from(self.cfg.duration_s) + 5.0;
                    let copies = src.copies_for(cap as f64 * 1e6 / 8.0 * secs * 1.2);
                    src.publish(std::slice::from_ref(big), &format!("r{round}-"), copies)?;
                    src.flags(cap)
                }
                (true, _, _) => {
                    return Err(Error::Usage(
                        "scenario i needs the fill's source (internal)".into(),
                    ))
                }
            };
            let (mut server, admin) = fill::start_eddy(
                &self.cfg.eddy,
                &roots,
                &format!(
                    "eddy-fill-serve-r{round}-{}",
                    if filling { "fill" } else { "nofill" }
                ),
                extra,
                self.run_dir,
            )?;
            let mut before = None;
            if filling {
                fill::wait_first_bytes(&mut server, admin, Duration::from_secs(30))?;
                std::thread::sleep(lead);
                before = Some((Instant::now(), fill::status(admin)?));
            }
            let started_at = report::utc_now();
            let src0 = procstat::cpu_ticks_sum(source_pids);
            let measured = self.load(sc, &server.pids(), server.addr, seed);
            let src1 = procstat::cpu_ticks_sum(source_pids);
            let after = match before {
                Some(_) => Some((Instant::now(), fill::status(admin)?)),
                None => None,
            };
            let probes = sc.probes(&mut self.rng);
            let checked = check::run(server.addr, &probes);
            if let Err(e) = server.stop() {
                eprintln!("round {round}/{rounds} ({}) eddy: {e}", sc.key);
            }
            let mut sample = match measured {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "round {round}/{rounds} ({}) eddy{}: FAILED: {e}",
                        sc.key,
                        if filling { "+fill" } else { "" }
                    );
                    self.skipped.push(Skip {
                        round,
                        scenario: sc.key.clone(),
                        server: Kind::Eddy,
                        reason: format!(
                            "{}: {e}",
                            if filling {
                                "with a fill"
                            } else {
                                "without a fill"
                            }
                        ),
                        failed: true,
                    });
                    continue;
                }
            };
            if let Err(e) = checked {
                sample.load.body_error = Some(format!("(i) instance: {e}"));
            }
            let source_cores =
                src1.saturating_sub(src0) as f64 / self.ticks / sample.wall_s.max(1e-6);
            sample.other_cores = (sample.other_cores - source_cores).max(0.0);
            sample.other_top.retain(|o| !source_pids.contains(&o.pid));
            let during = match (before, after) {
                (Some((t0, s0)), Some((t1, s1))) => fill::FillDuring {
                    filling: true,
                    cap_mbps: cap,
                    achieved_mbps: Some(
                        s1.bytes_downloaded.saturating_sub(s0.bytes_downloaded) as f64 * 8.0
                            / t1.duration_since(t0).as_secs_f64().max(1e-6)
                            / 1e6,
                    ),
                    ended_early: s1.state != "filling",
                    errors: s1.errors,
                    source_cores,
                },
                _ => fill::FillDuring {
                    filling: false,
                    cap_mbps: cap,
                    achieved_mbps: None,
                    ended_early: false,
                    errors: Default::default(),
                    source_cores,
                },
            };
            self.record(round, sc, Kind::Eddy, started_at, sample, Some(during));
        }
        fill::wipe_fill(&self.serving_roots)?;
        Ok(())
    }

    /// The fill measurements after the rounds: each `--fill-caps` entry in turn, nginx the source. A run that
    /// fails is recorded as a failure and the next one runs.
    fn fill_measurements(&mut self) -> fill::FillReport {
        let mut out = fill::FillReport::default();
        let Some(src) = self.source.as_mut() else {
            out.failures
                .push("no fill source was set up (internal)".into());
            return out;
        };
        let smoke = self.cfg.smoke;
        let p = fill::Params {
            eddy: &self.cfg.eddy,
            run_dir: self.run_dir,
            ticks: self.ticks,
            window: Duration::from_secs(u64::from(self.cfg.fill_duration_s)),
            skip: if smoke {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(2)
            },
            interval: if smoke {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(1)
            },
            warm: vec![self.content_src.clone()],
        };
        for &cap in &self.cfg.fill_caps {
            if cap == 0 {
                match fill::uncapped_run(&p, src, &mut self.rng) {
                    Ok(u) => {
                        eprintln!(
                            "fill uncapped: {:.2} GiB in {:.2} s = {:.1} MiB/s, eddy {:.3} cores; disk write {:.1} MiB/s",
                            u.bytes as f64 / (1u64 << 30) as f64,
                            u.seconds,
                            u.mib_s,
                            u.cores,
                            u.disk.mib_s
                        );
                        if u.objects != u.objects_planned {
                            out.failures.push(format!(
                                "uncapped: {} of {} objects installed",
                                u.objects, u.objects_planned
                            ));
                        }
                        if u.errors.values().any(|&n| n > 0) {
                            out.failures
                                .push(format!("uncapped: fill errors {:?}", u.errors));
                        }
                        out.uncapped = Some(u);
                    }
                    Err(e) => out.failures.push(format!("uncapped: {e}")),
                }
                continue;
            }
            match fill::cap_run(&p, src, cap) {
                Ok(c) => {
                    eprintln!(
                        "fill cap {cap} Mbit/s: achieved {:.1} Mbit/s over {:.1} s, error {:+.2}%, eddy {:.3} cores{}",
                        c.achieved_mbps,
                        c.window_s,
                        c.error_pct,
                        c.cores,
                        if c.ended_early { " (ran out of work)" } else { "" }
                    );
                    if c.achieved_mbps <= 0.0 {
                        out.failures
                            .push(format!("cap {cap}: nothing downloaded in the window"));
                    }
                    if c.errors.values().any(|&n| n > 0) {
                        out.failures
                            .push(format!("cap {cap}: fill errors {:?}", c.errors));
                    }
                    out.caps.push(c);
                }
                Err(e) => out.failures.push(format!("cap {cap}: {e}")),
            }
        }
        out
    }

    /// Body checks of every side with the same sample requests (drawn fresh for each check point), each sent the
    /// way its scenario reaches the server.
    fn check(&mut self, round: u32, when: &'static str, sides: &mut [Side]) {
        let drawn: Vec<(&Scenario, Vec<Probe>)> = self
            .scenarios
            .iter()
            .map(|s| (s, s.probes(&mut self.rng)))
            .collect();
        for side in sides.iter_mut() {
            let mut groups: Vec<(SocketAddr, Via, Vec<Probe>)> = Vec::new();
            let mut skipped = Vec::new();
            for (sc, probes) in &drawn {
                match side.target(sc) {
                    Ok((_, addr)) => {
                        let via = Side::via(sc);
                        match groups.iter_mut().find(|g| g.0 == addr && g.1 == via) {
                            Some(g) => g.2.extend(probes.iter().cloned()),
                            None => groups.push((addr, via, probes.clone())),
                        }
                    }
                    Err(_) => skipped.push(sc.key.clone()),
                }
            }
            let (mut bytes, mut probes, mut error) = (0, 0, None);
            if let Err(e) = side.alive() {
                error = Some(e.to_string());
            } else {
                for (addr, via, ps) in &groups {
                    probes += ps.len();
                    let scratch = self.run_dir.join("check");
                    let result = match (via, self.tls_files) {
                        (Via::Plain, _) => check::run(*addr, ps),
                        (Via::Tls | Via::H2, Some(f)) => check::run_curl(
                            &self.cfg.curl,
                            *addr,
                            &f.cert,
                            *via == Via::H2,
                            ps,
                            &scratch,
                        ),
                        (_, None) => Err("no certificate (internal)".to_string()),
                    };
                    match result {
                        Ok(n) => bytes += n,
                        Err(e) => {
                            error.get_or_insert(format!("{addr}: {e}"));
                        }
                    }
                }
            }
            if let Some(e) = &error {
                eprintln!(
                    "round {round} {when}: {} body check FAILED: {e}",
                    side.kind.name()
                );
            }
            self.checks.push(CheckRecord {
                round,
                server: side.kind,
                when,
                probes,
                bytes_compared: bytes,
                skipped_scenarios: skipped,
                error,
            });
        }
    }
}
