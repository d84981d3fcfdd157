//! The drive measurements: eddy alone (nginx has neither drive states nor an index), after the rounds.
//!
//! - **stall**: a drive that hangs instead of failing. eddy serves three drives, two plain directories and one
//!   FUSE file system (`tests/fuse/stall.py`, Debian's python3-fusepy) whose reads block while a flag file exists.
//!   wrk asks for 64 KiB ranges of the two healthy drives' objects (their pages evicted before each run, so that
//!   the reads go through eddy's cold-read permits) while [`STALLERS`] clients wait on the hung drive's objects.
//!   Each round runs that next to a no-fault run of the same eddy (no flag, no stallers), the order alternating by
//!   round; the goal is the healthy drives' p99 under the stall within [`STALL_P99_GOAL`] of the no-fault run. The
//!   read deadline (`store.read_timeout`) is set past the run, so that the drive stays hung (not failed) for all of
//!   it; the stallers' bodies that arrive while the flag exists are counted (a real stall completes none).
//! - **startup**: a store of `--startup-objects` (1,000,000) 16-byte objects on four drives (loop-mounted ext4
//!   images), each with its digest record, generated once under `<content>/drives/` and reused. Each round starts eddy on it after
//!   `drop_caches` (cold) and again (warm), timed from the spawn to the accepting listener, and checks through
//!   `/metrics` that every object is indexed; the goal is [`STARTUP_GOAL_S`].
//!
//! It must never touch the rounds' stores, and never depend on the eddy crate: it speaks to eddy through its
//! config, stdout and admin listener only.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::cli::Config;
use crate::content::{remove_dir_if_exists, remove_if_exists, Xoshiro};
use crate::eddy;
use crate::error::{Error, IoContext, Result};
use crate::measure::{self, Loaded, Outcome};
use crate::report::median;
use crate::server::Server;
use crate::wrk::Wrk;

/// Clients that wait on the hung drive during a stall run.
pub const STALLERS: u32 = 40;
/// The stall goal: healthy drives' p99 under the stall at most this many times the no-fault run's.
pub const STALL_P99_GOAL: f64 = 2.0;
/// The start-up goal, seconds.
pub const STARTUP_GOAL_S: f64 = 10.0;
/// Ranges the stall runs ask for.
const RANGE_LEN: u64 = 64 * 1024;
/// The digest record's extended attribute (docs/ARCHITECTURE.md: every object carries one, its 32 raw bytes).
const DIGEST_XATTR: &str = "user.eddy.sha256";
/// Disk roots of the start-up store.
const STARTUP_DISKS: usize = 4;
/// Objects per directory of the start-up store.
const PER_DIR: u64 = 1000;

/// Which drive measurements to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    Stall,
    Startup,
}

/// Parse `--drives`: `stall,startup`, either one, or `none`.
pub fn parse(list: &str) -> std::result::Result<Vec<Which>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let w = match item {
            "none" => continue,
            "stall" => Which::Stall,
            "startup" => Which::Startup,
            other => {
                return Err(format!(
                    "--drives: unknown measurement {other:?} (known: stall, startup, none)"
                ))
            }
        };
        if !out.contains(&w) {
            out.push(w);
        }
    }
    Ok(out)
}

/// Everything the drive measurements produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DriveReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall: Option<StallReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup: Option<StartupReport>,
    /// Measurements that could not run here (root, FUSE, tools missing), with the reason.
    pub skipped: Vec<String>,
    /// Measurements that failed, or whose fault was not real (a hung drive that answered), with what went wrong
    /// (a smoke run fails on any).
    pub failures: Vec<String>,
}

/// One run of the stall measurement.
#[derive(Debug, Clone, Serialize)]
pub struct StallRun {
    pub round: u32,
    /// Whether the FUSE drive was hung (flag present, stallers waiting) during this run.
    pub stalled: bool,
    pub req_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub failures: u64,
    pub server_cores: f64,
    /// Stallers' bodies completed while the drive was hung (a real stall: 0), and once it was released.
    pub staller_bodies_while_hung: u64,
    pub staller_bodies_after: u64,
    /// Bytes of the healthy objects still resident after the eviction before the run.
    pub resident_after_evict: u64,
    pub load: Outcome,
}

/// The stall measurement.
#[derive(Debug, Clone, Serialize)]
pub struct StallReport {
    pub objects: usize,
    pub object_size: u64,
    pub healthy_objects: usize,
    pub hung_objects: usize,
    pub stallers: u32,
    pub runs: Vec<StallRun>,
    /// Medians of the healthy drives' p99 and req/s, without and with the stall.
    pub p99_no_fault_ms: Option<f64>,
    pub p99_stalled_ms: Option<f64>,
    pub req_s_no_fault: Option<f64>,
    pub req_s_stalled: Option<f64>,
    /// p99 stalled / no-fault, and whether it is within [`STALL_P99_GOAL`].
    pub p99_ratio: Option<f64>,
    pub goal_met: bool,
    /// The FUSE drive's state in `/metrics` after the runs (it stays `active`: hung, never failed).
    pub hung_drive_state: String,
}

/// One start of the start-up measurement.
#[derive(Debug, Clone, Serialize)]
pub struct StartupRun {
    pub round: u32,
    /// After `drop_caches`.
    pub cold: bool,
    /// From the spawn to the accepting listener.
    pub seconds: f64,
    /// Objects in the index (the sum of `eddy_store_objects`).
    pub indexed: u64,
    /// eddy's resident memory once ready.
    pub rss_mib: f64,
}

/// The start-up measurement.
#[derive(Debug, Clone, Serialize)]
pub struct StartupReport {
    pub objects: u64,
    pub disks: usize,
    /// Seconds it took to generate the store (None when it was reused).
    pub generated_s: Option<f64>,
    pub runs: Vec<StartupRun>,
    pub warm_s: Option<f64>,
    pub cold_s: Option<f64>,
    /// Why there are no cold runs, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_skipped: Option<String>,
    /// The slowest start of all.
    pub worst_s: f64,
    pub goal_s: f64,
    /// The medians, warm and cold, within the goal.
    pub goal_met: bool,
}

/// What the measurements need from the bench.
pub struct Params<'a> {
    pub cfg: &'a Config,
    pub run_dir: &'a Path,
    pub ticks: f64,
    pub seed: u64,
}

/// Run the chosen measurements; a measurement that cannot run here is skipped with the reason, one that fails is
/// listed with its error (the rounds' results stand either way).
pub fn run(p: &Params<'_>, which: &[Which]) -> DriveReport {
    let mut out = DriveReport::default();
    for w in which {
        match w {
            Which::Stall => match stall_missing() {
                Some(why) => out.skipped.push(format!("stall: {why}")),
                None => match stall(p) {
                    Ok(r) => {
                        let answered: u64 =
                            r.runs.iter().map(|x| x.staller_bodies_while_hung).sum();
                        if answered > 0 || r.hung_drive_state != "active" {
                            out.failures.push(format!(
                                "stall: the hung drive answered {answered} requests while hung and was {} afterwards",
                                r.hung_drive_state
                            ));
                        }
                        out.stall = Some(r);
                    }
                    Err(e) => out.failures.push(format!("stall: {e}")),
                },
            },
            Which::Startup => match startup_missing() {
                Some(why) => out.skipped.push(format!("startup: {why}")),
                None => match startup(p) {
                    Ok(r) => out.startup = Some(r),
                    Err(e) => out.failures.push(format!("startup: {e}")),
                },
            },
        }
    }
    out
}

/// The FUSE script of the integration tests.
fn stall_script() -> PathBuf {
    crate::cli::workspace_root().join("tests/fuse/stall.py")
}

/// Why the stall measurement cannot run here, if it cannot.
fn stall_missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("FUSE mounts need root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse".into());
    }
    let fusepy = Command::new("/usr/bin/python3")
        .args(["-c", "import fusepy"])
        .stdin(Stdio::null())
        .output();
    if !fusepy.is_ok_and(|o| o.status.success()) {
        return Some("needs /usr/bin/python3 with fusepy (apt-get install python3-fusepy)".into());
    }
    (!stall_script().is_file()).then(|| format!("{} is missing", stall_script().display()))
}

/// What `drives/stall/content.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StallManifest {
    generator: String,
    count: u32,
    size: u64,
}

fn stall_key(i: u32) -> String {
    format!("stall/o{i:05}.bin")
}

/// The stall content (`<content>/drives/stall/src`) and its store on three roots.
fn ensure_stall_store(p: &Params<'_>, count: u32, size: u64) -> Result<Vec<PathBuf>> {
    let dir = p.cfg.content.join("drives/stall");
    let src = dir.join("src");
    let m = StallManifest {
        generator: "xoshiro256++ v1".into(),
        count,
        size,
    };
    let mpath = dir.join("content.json");
    let current = fs::read(&mpath)
        .ok()
        .and_then(|b| serde_json::from_slice::<StallManifest>(&b).ok())
        .is_some_and(|have| have == m);
    if !current {
        eprintln!(
            "drives: generating {count} objects of {size} bytes in {}",
            src.display()
        );
        remove_if_exists(&mpath)?;
        remove_dir_if_exists(&src)?;
        fs::create_dir_all(src.join("stall")).at("create", &src)?;
        let mut buf = vec![0u8; size as usize];
        for i in 0..count {
            Xoshiro::new(p.seed ^ u64::from(i)).fill(&mut buf);
            let path = src.join(stall_key(i));
            fs::write(&path, &buf).at("write", &path)?;
        }
        fs::write(&mpath, serde_json::to_vec_pretty(&m)?).at("write", &mpath)?;
    }
    let want: Vec<(String, u64)> = {
        let mut v: Vec<_> = (0..count).map(|i| (stall_key(i), size)).collect();
        v.sort();
        v
    };
    let (disks, _) = eddy::ensure_store_on(&p.cfg.eddy, &dir, &m, &want, 3)?;
    Ok(disks)
}

/// Keys of the objects under `<root>/objects/stall/`.
fn keys_on(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("objects/stall");
    let mut out = Vec::new();
    for e in fs::read_dir(&dir).at("list", &dir)? {
        let e = e.at("list", &dir)?;
        if let Some(name) = e.file_name().to_str() {
            out.push(format!("stall/{name}"));
        }
    }
    out.sort();
    Ok(out)
}

/// The FUSE drive: `stall.py SOURCE MOUNT FLAG`, unmounted and stopped on drop.
struct Fuse {
    child: Child,
    mount: PathBuf,
    flag: PathBuf,
}

impl Fuse {
    fn mount(source: &Path, mount: &Path, flag: &Path) -> Result<Fuse> {
        fs::create_dir_all(mount).at("create", mount)?;
        remove_if_exists(flag)?;
        let child = Command::new("/usr/bin/python3")
            .arg(stall_script())
            .args([source, mount, flag])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .ctx(|| "start tests/fuse/stall.py".to_string())?;
        let fuse = Fuse {
            child,
            mount: mount.to_owned(),
            flag: flag.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !mount.join("objects").exists() {
            if Instant::now() > deadline {
                return Err(Error::tool("fuse", "stall.py did not mount within 10 s"));
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(fuse)
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.flag);
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clients that each ask, one request at a time on a fresh connection, for a 64 KiB range of a hung object, until
/// told to stop; counting the bodies that arrive.
struct Stallers {
    stop: Arc<AtomicBool>,
    bodies: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Stallers {
    fn start(addr: SocketAddr, keys: &[String], size: u64, n: u32, seed: u64) -> Stallers {
        let stop = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(AtomicU64::new(0));
        let threads = (0..n)
            .map(|t| {
                let (stop, bodies, keys) = (stop.clone(), bodies.clone(), keys.to_vec());
                thread::spawn(move || {
                    let mut rng = Xoshiro::new(seed ^ (u64::from(t) << 32));
                    while !stop.load(Ordering::Relaxed) {
                        let key = &keys[rng.below(keys.len() as u64) as usize];
                        let off = rng.below(size - RANGE_LEN + 1);
                        if one_range(addr, key, off, &stop) {
                            bodies.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Stallers {
            stop,
            bodies,
            threads,
        }
    }

    fn bodies(&self) -> u64 {
        self.bodies.load(Ordering::Relaxed)
    }

    /// Stops them once their requests are answered; the bodies that arrived in all.
    fn join(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.bodies.load(Ordering::Relaxed)
    }
}

/// One `Connection: close` range request; true when a whole 206 body arrived. Gives up (false) once `stop` is set
/// and 30 more seconds pass without the answer.
fn one_range(addr: SocketAddr, key: &str, off: u64, stop: &AtomicBool) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        thread::sleep(Duration::from_millis(100));
        return false;
    };
    let req = format!(
        "GET /{key} HTTP/1.1\r\nHost: eddy-bench\r\nRange: bytes={off}-{}\r\nConnection: close\r\n\r\n",
        off + RANGE_LEN - 1
    );
    if s.write_all(req.as_bytes()).is_err()
        || s.set_read_timeout(Some(Duration::from_millis(500)))
            .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut gave_up_at: Option<Instant> = None;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    let t = *gave_up_at.get_or_insert_with(Instant::now);
                    if t.elapsed() > Duration::from_secs(30) {
                        return false;
                    }
                }
            }
            Err(_) => return false,
        }
    }
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    got.starts_with(b"HTTP/1.1 206") && got.len() - (end + 4) == RANGE_LEN as usize
}

/// The stall measurement.
fn stall(p: &Params<'_>) -> Result<StallReport> {
    let (count, size) = if p.cfg.smoke {
        (30, 256 * 1024)
    } else {
        (1500, 1024 * 1024)
    };
    let disks = ensure_stall_store(p, count, size)?;
    let (healthy, hung) = (
        [keys_on(&disks[0])?, keys_on(&disks[1])?].concat(),
        keys_on(&disks[2])?,
    );
    if healthy.is_empty() || hung.is_empty() {
        return Err(Error::tool(
            "eddy",
            format!(
                "the import left {} objects on the healthy drives and {} on the third",
                healthy.len(),
                hung.len()
            ),
        ));
    }
    let mount = p.run_dir.join("stall-fuse");
    let flag = p.run_dir.join("stall-flag");
    let fuse = Fuse::mount(&disks[2], &mount, &flag)?;
    // The deadline lies past every run: the drive stays hung, never failed, and the stallers keep waiting.
    let deadline_s = p.cfg.duration_s + 120;
    let started = eddy::start(
        &p.cfg.eddy,
        &eddy::Options {
            disks: vec![disks[0].clone(), disks[1].clone(), mount.clone()],
            tls: None,
            max_connections: None,
            idle: false,
            name: Some("eddy-stall".into()),
            extra: Vec::new(),
            store_keys: vec![
                format!("read_timeout = \"{deadline_s}s\""),
                "fsck_mib_per_sec = 0".into(),
            ],
        },
        p.run_dir,
    )?;
    let admin = started
        .admin
        .ok_or_else(|| Error::server("eddy", "printed no admin line"))?;
    let server = started.server;
    let paths_file = p.run_dir.join("stall-paths.txt");
    let mut list = String::new();
    for k in &healthy {
        list.push('/');
        list.push_str(k);
        list.push('\n');
    }
    fs::write(&paths_file, list).at("write", &paths_file)?;
    let healthy_files: Vec<PathBuf> = healthy
        .iter()
        .map(|k| {
            let on0 = disks[0].join("objects").join(k);
            if on0.exists() {
                on0
            } else {
                disks[1].join("objects").join(k)
            }
        })
        .collect();
    let wrk = Wrk {
        bin: &p.cfg.wrk,
        threads: p.cfg.threads,
        connections: p.cfg.connections,
        duration_s: p.cfg.duration_s,
        script_dir: p.run_dir.to_path_buf(),
    };
    let url = format!("http://{}", server.addr);
    let mut runs = Vec::new();
    for round in 1..=p.cfg.rounds {
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for stalled in order {
            let run = stall_run(
                p,
                &server,
                &wrk,
                &url,
                &paths_file,
                &healthy_files,
                (&hung, size),
                (stalled, &flag),
                round,
            )?;
            eprintln!(
                "drives (stall) round {round}/{} {}: {:>9.1} req/s  p99 {:>7.2} ms  stallers' bodies while hung {}  failures {}",
                p.cfg.rounds,
                if stalled { "stalled " } else { "no fault" },
                run.req_s,
                run.p99_ms,
                run.staller_bodies_while_hung,
                run.failures
            );
            runs.push(run);
        }
    }
    let metrics = String::from_utf8_lossy(&eddy::admin_get(admin, "/metrics")?).into_owned();
    let hung_drive_state = disk_state(&metrics, &mount.display().to_string());
    let _ = server.stop();
    drop(fuse);
    let med = |stalled: bool, f: fn(&StallRun) -> f64| {
        median(
            &runs
                .iter()
                .filter(|r| r.stalled == stalled)
                .map(f)
                .collect::<Vec<_>>(),
        )
    };
    let (p99_no, p99_st) = (med(false, |r| r.p99_ms), med(true, |r| r.p99_ms));
    let p99_ratio = match (p99_no, p99_st) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => Some(b / a),
        _ => None,
    };
    let clean = runs
        .iter()
        .all(|r| r.failures == 0 && (!r.stalled || r.staller_bodies_while_hung == 0));
    Ok(StallReport {
        objects: count as usize,
        object_size: size,
        healthy_objects: healthy.len(),
        hung_objects: hung.len(),
        stallers: STALLERS,
        p99_no_fault_ms: p99_no,
        p99_stalled_ms: p99_st,
        req_s_no_fault: med(false, |r| r.req_s),
        req_s_stalled: med(true, |r| r.req_s),
        // A stalled run that served nothing has no p99 to compare: the healthy drives were held too.
        goal_met: clean
            && hung_drive_state == "active"
            && runs.iter().all(|r| r.load.requests > 0)
            && p99_ratio.is_some_and(|r| r > 0.0 && r <= STALL_P99_GOAL),
        p99_ratio,
        hung_drive_state,
        runs,
    })
}

/// The state whose `eddy_disk_state{disk="<disk>",state=...}` sample is 1, or "unknown".
fn disk_state(metrics: &str, disk: &str) -> String {
    let want = format!("disk=\"{disk}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("eddy_disk_state{") && l.contains(&want))
        .find(|l| l.split_whitespace().last() == Some("1"))
        .and_then(|l| l.split("state=\"").nth(1)?.split('"').next())
        .unwrap_or("unknown")
        .to_string()
}

#[allow(clippy::too_many_arguments)]
fn stall_run(
    p: &Params<'_>,
    server: &Server,
    wrk: &Wrk<'_>,
    url: &str,
    paths_file: &Path,
    healthy_files: &[PathBuf],
    (hung, size): (&[String], u64),
    (stalled, flag): (bool, &Path),
    round: u32,
) -> Result<StallRun> {
    let evicted = crate::cold::evict(healthy_files)?;
    let stallers = if stalled {
        File::create(flag).at("create", flag)?;
        Some(Stallers::start(
            server.addr,
            hung,
            size,
            STALLERS,
            p.seed ^ u64::from(round),
        ))
    } else {
        None
    };
    if stallers.is_some() {
        // Let every staller reach the hung drive before the load starts.
        thread::sleep(Duration::from_millis(500));
    }
    let args = [
        paths_file.display().to_string(),
        size.to_string(),
        RANGE_LEN.to_string(),
        (p.seed ^ u64::from(round) ^ u64::from(stalled)).to_string(),
    ];
    let sample = measure::run(&server.pids(), p.ticks, || {
        Ok(Loaded {
            outcome: wrk.run("paths.lua", url, &args)?,
            ..Loaded::default()
        })
    });
    let while_hung = stallers.as_ref().map_or(0, Stallers::bodies);
    remove_if_exists(flag)?;
    let after = stallers.map_or(0, |s| s.join() - while_hung);
    let sample = sample?;
    let w = &sample.load;
    let secs = (w.duration_us as f64 / 1e6).max(1e-6);
    Ok(StallRun {
        round,
        stalled,
        req_s: w.requests.saturating_sub(w.errors.status) as f64 / secs,
        p50_ms: w.p50_us as f64 / 1e3,
        p99_ms: w.p99_us as f64 / 1e3,
        failures: w.errors.total(),
        server_cores: sample.server_cores,
        staller_bodies_while_hung: while_hung,
        staller_bodies_after: after,
        resident_after_evict: evicted.resident_after().unwrap_or(0),
        load: sample.load.clone(),
    })
}

/// What `drives/startup-N/content.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StartupManifest {
    generator: String,
    objects: u64,
    disks: usize,
}

/// Object `i`'s key and content (16 bytes naming it).
fn startup_object(i: u64) -> (String, Vec<u8>) {
    (
        format!("m/{:04}/{i:07}.bin", i / PER_DIR),
        format!("object {i:07}\n\n").into_bytes(),
    )
}

/// Four loop-mounted ext4 images, unmounted on drop.
struct Images {
    mounts: Vec<PathBuf>,
}

impl Images {
    /// Mount each of `images` (read-write, as eddy runs its drives) at `<at>/d<i>`.
    fn mount(images: &[PathBuf], at: &Path) -> Result<Images> {
        let mut m = Images { mounts: Vec::new() };
        for (i, img) in images.iter().enumerate() {
            let dir = at.join(format!("d{i}"));
            fs::create_dir_all(&dir).at("create", &dir)?;
            run_tool(
                "mount",
                Command::new("mount")
                    .arg("-o")
                    .arg("loop")
                    .arg(img)
                    .arg(&dir),
            )?;
            m.mounts.push(dir);
        }
        Ok(m)
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for d in &self.mounts {
            let _ = Command::new("umount").arg(d).status();
        }
    }
}

/// Run a tool; Err with its stderr when it fails.
fn run_tool(name: &str, cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .ctx(|| format!("run {name}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::tool(
            name,
            format!(
                "failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ))
    }
}

/// Why the start-up measurement cannot run here, if it cannot.
fn startup_missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("loop mounts need root".into());
    }
    ["mkfs.ext4", "mount", "umount"]
        .into_iter()
        .find(|t| crate::server::find_tool(Path::new(t), &["/usr/sbin", "/sbin"]).is_none())
        .map(|t| format!("{t} not found (apt-get install e2fsprogs mount)"))
}

/// The start-up store: `n` objects spread over [`STARTUP_DISKS`] drives, each a loop-mounted ext4 image made by
/// `mkfs.ext4` with its defaults but 1 KiB blocks (so that a million 16-byte objects fit in little space), with
/// their digest records, written as eddy's install leaves them (`objects/<key>`, the SHA-256 in
/// `user.eddy.sha256`). Own file systems rather than directories of the machine's root: the inode size decides
/// whether a digest record lives in the inode or costs a block of its own (this machine's root has 128-byte
/// inodes), and a drive an operator formats gets mkfs's default (256-byte inodes, room for the record). Generated once, one thread per drive, and kept as
/// `<content>/drives/startup-N/d<i>.img`. Returns the images and the seconds it took (None when reused).
fn ensure_startup_store(p: &Params<'_>, n: u64) -> Result<(Vec<PathBuf>, Option<f64>)> {
    let dir = p.cfg.content.join(format!("drives/startup-{n}"));
    let images: Vec<PathBuf> = (0..STARTUP_DISKS)
        .map(|i| dir.join(format!("d{i}.img")))
        .collect();
    let m = StartupManifest {
        generator: "startup v3 (ext4 images, 1 KiB blocks, raw records)".into(),
        objects: n,
        disks: STARTUP_DISKS,
    };
    let mpath = dir.join("content.json");
    if fs::read(&mpath)
        .ok()
        .and_then(|b| serde_json::from_slice::<StartupManifest>(&b).ok())
        .is_some_and(|have| have == m)
        && images.iter().all(|i| i.is_file())
    {
        return Ok((images, None));
    }
    eprintln!(
        "drives: generating {n} objects on {STARTUP_DISKS} ext4 images in {}",
        dir.display()
    );
    remove_dir_if_exists(&dir)?;
    fs::create_dir_all(&dir).at("create", &dir)?;
    let t = Instant::now();
    let per_disk = n.div_ceil(STARTUP_DISKS as u64);
    for img in &images {
        // A 16-byte object takes one 1 KiB block and one inode; the rest is directories, the journal and slack.
        let size = per_disk * 1536 + (64 << 20);
        File::create(img)
            .and_then(|f| f.set_len(size))
            .at("create", img)?;
        run_tool(
            "mkfs.ext4",
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-b", "1024", "-N"])
                .arg((per_disk + 10_000).to_string())
                .arg(img),
        )?;
    }
    let mounted = Images::mount(&images, &p.run_dir.join("startup-gen"))?;
    let results: Vec<Result<()>> = thread::scope(|sc| {
        let handles: Vec<_> = mounted
            .mounts
            .iter()
            .enumerate()
            .map(|(d, root)| sc.spawn(move || write_startup_objects(root, d as u64, n)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::tool("drives", "a generator thread panicked")))
            })
            .collect()
    });
    drop(mounted);
    for r in results {
        r?;
    }
    fs::write(&mpath, serde_json::to_vec_pretty(&m)?).at("write", &mpath)?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!("drives: generated in {secs:.1} s");
    Ok((images, Some(secs)))
}

/// Objects `first`, `first + 4`, ... below `n` into the drive at `root`.
fn write_startup_objects(root: &Path, first: u64, n: u64) -> Result<()> {
    let mut i = first;
    let mut dir_made = None;
    while i < n {
        let (key, body) = startup_object(i);
        let path = root.join("objects").join(&key);
        if dir_made != Some(i / PER_DIR) {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).at("create", parent)?;
            }
            dir_made = Some(i / PER_DIR);
        }
        let mut f = File::create(&path).at("create", &path)?;
        f.write_all(&body).at("write", &path)?;
        // The record as eddy's install writes it: the 32 bytes of the SHA-256.
        let digest = sha2::Sha256::digest(&body);
        xattr::set(&path, DIGEST_XATTR, digest.as_slice()).at("set the digest record of", &path)?;
        i += STARTUP_DISKS as u64;
    }
    Ok(())
}

/// Empty the page cache, dentries and inodes (root only): `sync` then `3 > /proc/sys/vm/drop_caches`.
fn drop_caches() -> std::result::Result<(), String> {
    nix::unistd::sync();
    fs::write("/proc/sys/vm/drop_caches", b"3").map_err(|e| format!("drop_caches: {e}"))
}

/// The start-up measurement.
fn startup(p: &Params<'_>) -> Result<StartupReport> {
    let n = p.cfg.startup_objects;
    let (images, generated_s) = ensure_startup_store(p, n)?;
    let mounted = Images::mount(&images, &p.run_dir.join("startup"))?;
    let roots = mounted.mounts.clone();
    let mut runs = Vec::new();
    let mut cold_skipped = None;
    for round in 1..=p.cfg.rounds {
        for cold in [true, false] {
            if cold {
                if cold_skipped.is_some() {
                    continue;
                }
                if let Err(e) = drop_caches() {
                    cold_skipped = Some(e);
                    continue;
                }
            }
            let t = Instant::now();
            let started = eddy::start(
                &p.cfg.eddy,
                &eddy::Options {
                    disks: roots.clone(),
                    tls: None,
                    max_connections: None,
                    idle: false,
                    name: Some("eddy-startup".into()),
                    extra: Vec::new(),
                    store_keys: vec!["fsck_mib_per_sec = 0".into()],
                },
                p.run_dir,
            )?;
            let seconds = t.elapsed().as_secs_f64();
            let admin = started
                .admin
                .ok_or_else(|| Error::server("eddy", "printed no admin line"))?;
            let metrics =
                String::from_utf8_lossy(&eddy::admin_get(admin, "/metrics")?).into_owned();
            let indexed = sum_of(&metrics, "eddy_store_objects");
            let rss_mib =
                crate::procstat::rss_kib(started.server.pid()).unwrap_or(0) as f64 / 1024.0;
            let _ = started.server.stop();
            if indexed != n {
                return Err(Error::server(
                    "eddy",
                    format!("indexed {indexed} of the {n} objects at start-up"),
                ));
            }
            eprintln!(
                "drives (startup) round {round}/{} {}: ready in {seconds:.2} s with {indexed} objects, rss {rss_mib:.0} MiB",
                p.cfg.rounds,
                if cold { "cold" } else { "warm" }
            );
            runs.push(StartupRun {
                round,
                cold,
                seconds,
                indexed,
                rss_mib,
            });
        }
    }
    let med = |cold: bool| {
        median(
            &runs
                .iter()
                .filter(|r| r.cold == cold)
                .map(|r| r.seconds)
                .collect::<Vec<_>>(),
        )
    };
    let (warm_s, cold_s) = (med(false), med(true));
    let worst_s = runs.iter().map(|r| r.seconds).fold(0.0, f64::max);
    Ok(StartupReport {
        objects: n,
        disks: STARTUP_DISKS,
        generated_s,
        goal_met: [warm_s, cold_s]
            .iter()
            .flatten()
            .all(|&s| s <= STARTUP_GOAL_S)
            && warm_s.is_some(),
        worst_s,
        runs,
        warm_s,
        cold_s,
        cold_skipped,
        goal_s: STARTUP_GOAL_S,
    })
}

/// The sum of every sample of the family `name` (with or without labels).
fn sum_of(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The block of the drive measurements in the table.
pub fn table(d: &DriveReport) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let f = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |x| format!("{x:.prec$}"));
    if let Some(s) = &d.stall {
        let _ = writeln!(
            t,
            "\n(stall) eddy on 3 drives, one of them hung (FUSE, {} clients waiting on it): 64 KiB ranges of the {} \
             objects on the 2 healthy drives",
            s.stallers, s.healthy_objects
        );
        let _ = writeln!(
            t,
            "    healthy p99 ms: no fault {}, stalled {}, ratio {} (goal <= {STALL_P99_GOAL}){}",
            f(s.p99_no_fault_ms, 2),
            f(s.p99_stalled_ms, 2),
            f(s.p99_ratio, 3),
            if s.goal_met { "  met" } else { "  NOT MET" }
        );
        let _ = writeln!(
            t,
            "    healthy req/s: no fault {}, stalled {}{}; hung drive afterwards: {}; stallers' bodies while hung: {}",
            f(s.req_s_no_fault, 0),
            f(s.req_s_stalled, 0),
            if s.runs.iter().any(|r| r.load.requests == 0) {
                " (a run served NO request: the healthy drives were held too)"
            } else {
                ""
            },
            s.hung_drive_state,
            s.runs
                .iter()
                .map(|r| r.staller_bodies_while_hung)
                .sum::<u64>()
        );
    }
    if let Some(s) = &d.startup {
        let _ = writeln!(
            t,
            "\n(startup) eddy starting on {} objects over {} roots, spawn to accepting",
            s.objects, s.disks
        );
        let _ = writeln!(
            t,
            "    medians: warm {} s, cold {} s (goal <= {} s; slowest start {:.2} s){}{}",
            f(s.warm_s, 2),
            f(s.cold_s, 2),
            s.goal_s,
            s.worst_s,
            if s.goal_met { "  met" } else { "  NOT MET" },
            s.cold_skipped
                .as_ref()
                .map_or(String::new(), |w| format!("; no cold runs: {w}"))
        );
    }
    for why in &d.skipped {
        let _ = writeln!(t, "(drives) skipped {why}");
    }
    for what in &d.failures {
        let _ = writeln!(t, "(drives) FAILED {what}");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_list() {
        assert_eq!(
            parse("stall,startup"),
            Ok(vec![Which::Stall, Which::Startup])
        );
        assert_eq!(parse("none"), Ok(vec![]));
        assert_eq!(parse("startup, startup"), Ok(vec![Which::Startup]));
        assert!(parse("stal").is_err());
    }

    #[test]
    fn reads_states_and_sums_from_metrics() {
        let m = "# TYPE eddy_disk_state gauge\n\
                 eddy_disk_state{disk=\"/a\",state=\"active\"} 0\n\
                 eddy_disk_state{disk=\"/a\",state=\"failed\"} 1\n\
                 eddy_disk_state{disk=\"/b\",state=\"active\"} 1\n\
                 eddy_store_objects{disk=\"/a\"} 3\n\
                 eddy_store_objects{disk=\"/b\"} 4\n\
                 eddy_store_objects_other 100\n";
        assert_eq!(disk_state(m, "/a"), "failed");
        assert_eq!(disk_state(m, "/b"), "active");
        assert_eq!(disk_state(m, "/c"), "unknown");
        assert_eq!(sum_of(m, "eddy_store_objects"), 7);
    }

    #[test]
    fn startup_objects_are_valid_keys_of_fixed_size() {
        let (k, b) = startup_object(999_999);
        assert_eq!(k, "m/0999/0999999.bin");
        assert_eq!(b.len(), 16);
        assert_eq!(startup_object(0).1.len(), 16);
    }
}
