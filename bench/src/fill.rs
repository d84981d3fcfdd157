//! The fill measurements: eddy filling empty disks from nginx (a server we did not write) through a manifest the
//! bench seals with a fixed test key, exactly as `eddy serve --fill-manifest URL --fill-key ... --fill-window
//! always` does in production, with the progress read from `GET /fill/status` on eddy's admin listener.
//!
//! Owns: the fill's source (the SHA-256 of every content file, cached in `<content>/digests.json`; manifests of N
//! copies of the content under `fill/<prefix><n>/` keys whose sources are nginx's URLs of the original files,
//! sealed and written into `<run>/fill-www/manifest`, which nginx serves at `/_fill/manifest`), eddy started with
//! the `--fill-*` flags on fresh disk roots in the run directory, the rate-cap runs (the rate achieved over the
//! steady window against the cap), the uncapped run next to the disk's sequential write speed (a file of the same
//! size written with O_DIRECT and fsynced), and the store of scenario (i) (big.bin linked in from the bench's
//! store; copies filled at the cap while wrk runs). It must never point a fill at the bench's content store (a
//! manifest that does not list an object evicts it), and never depend on the eddy crate: it speaks to eddy
//! through its flags and its admin listener only.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eddy_proto::manifest::{self, Entry, Manifest};
use eddy_proto::report::FillStatus;
use eddy_proto::wire::SignKey;
use eddy_proto::{Digest, ObjectKey};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::check::{self, Probe};
use crate::content::{Content, Xoshiro};
use crate::eddy;
use crate::error::{Error, IoContext, Result};
use crate::procstat;
use crate::server::Server;

/// The appliance id of every manifest the bench seals.
pub const APPLIANCE: &str = "eddy-bench";
/// Where nginx serves the run directory's `fill-www/`.
pub const WWW_PREFIX: &str = "/_fill/";
/// In a failure's text: a filled object came back wrong (fails any run, not only a smoke run).
pub const WRONG_BODY: &str = "a filled object is wrong";
/// The seed byte of the bench's fixed Ed25519 key.
const KEY_SEED: u8 = 0xeb;

/// The bench's fixed signing key (PKCS#8 v1 of a constant seed): a test key, like the integration tests' one.
fn sign_key() -> Result<SignKey> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[KEY_SEED; 32]);
    SignKey::from_pkcs8(&der)
        .map_err(|_| Error::tool("eddy-proto", "the bench's fixed Ed25519 key does not load"))
}

/// One content file as a manifest names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Object {
    /// Its key (and nginx's URL path without the leading `/`).
    pub key: String,
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// The file.
    #[serde(skip)]
    pub file: PathBuf,
}

/// What `<content>/digests.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct DigestFile {
    content: serde_json::Value,
    objects: Vec<Object>,
}

/// SHA-256 of every file of the content, read from `<content>/digests.json` when it describes this content, else
/// computed (about 2 s per GiB) and saved there.
pub fn digests(content: &Content) -> Result<Vec<Object>> {
    let path = content.dir.join("digests.json");
    let want = serde_json::to_value(&content.manifest)?;
    let keys = content.objects();
    let with_files = |mut v: Vec<Object>| {
        for o in &mut v {
            o.file = content.src.join(&o.key);
        }
        v
    };
    if let Some(d) = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<DigestFile>(&b).ok())
    {
        let listed: Vec<(String, u64)> =
            d.objects.iter().map(|o| (o.key.clone(), o.size)).collect();
        if d.content == want && listed == keys {
            return Ok(with_files(d.objects));
        }
    }
    let t = Instant::now();
    let mut objects = Vec::with_capacity(keys.len());
    let mut buf = vec![0u8; 1 << 20];
    for (key, size) in keys {
        let file = content.src.join(&key);
        let mut f = File::open(&file).at("open", &file)?;
        let mut h = sha2::Sha256::new();
        loop {
            let n = f.read(&mut buf).at("read", &file)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let sha256 = Digest(h.finalize().into()).to_hex();
        objects.push(Object {
            key,
            size,
            sha256,
            file,
        });
    }
    let text = serde_json::to_vec_pretty(&DigestFile {
        content: want,
        objects: objects.clone(),
    })?;
    fs::write(&path, text).at("write", &path)?;
    eprintln!(
        "fill: SHA-256 of {} content files in {:.1} s",
        objects.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(objects)
}

/// The fill's source: nginx's URLs of the content, and the manifests the bench publishes.
pub struct Source {
    /// `<run>/fill-www`, served by nginx at [`WWW_PREFIX`].
    pub www: PathBuf,
    /// `http://ADDR` of nginx's plain block.
    pub base: String,
    pub objects: Vec<Object>,
    key: SignKey,
    generation: u64,
}

/// A published manifest.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub generation: u64,
    pub objects: usize,
    pub bytes: u64,
}

impl Source {
    pub fn new(www: PathBuf, nginx: SocketAddr, objects: Vec<Object>) -> Result<Source> {
        fs::create_dir_all(&www).at("create", &www)?;
        Ok(Source {
            www,
            base: format!("http://{nginx}"),
            objects,
            key: sign_key()?,
            generation: 0,
        })
    }

    /// Bytes of one copy of the content.
    pub fn copy_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum::<u64>().max(1)
    }

    /// Copies of the content that hold at least `bytes`.
    pub fn copies_for(&self, bytes: f64) -> u32 {
        ((bytes / self.copy_bytes() as f64).ceil() as u32).max(1)
    }

    /// Seal and publish the next generation: `keep` under their own keys (ranked first), then `copies` copies
    /// of the content under `fill/<prefix><n>/<key>`, copy by copy, each with nginx's URL of the original file.
    pub fn publish(&mut self, keep: &[Object], prefix: &str, copies: u32) -> Result<Published> {
        self.generation += 1;
        let mut entries = Vec::new();
        let mut entry = |key: String, o: &Object| -> Result<()> {
            let rank = entries.len() as u32 + 1;
            entries.push(Entry {
                key: ObjectKey::parse(&key)
                    .map_err(|e| Error::Usage(format!("fill: key {key:?}: {e}")))?,
                size: o.size,
                sha256: Digest::from_hex(&o.sha256)
                    .map_err(|e| Error::Usage(format!("fill: digest of {}: {e}", o.key)))?,
                rank,
                sources: vec![format!("{}/{}", self.base, o.key)],
            });
            Ok(())
        };
        for o in keep {
            entry(o.key.clone(), o)?;
        }
        for c in 0..copies {
            for o in &self.objects {
                entry(format!("fill/{prefix}{c}/{}", o.key), o)?;
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let published = Published {
            generation: self.generation,
            objects: entries.len(),
            bytes: entries.iter().map(|e| e.size).sum(),
        };
        let m = Manifest {
            version: manifest::VERSION.into(),
            appliance: APPLIANCE.into(),
            generation: self.generation,
            issued_at: now,
            expires_at: now + 7 * 86_400,
            fill_start: None,
            objects: entries,
        };
        let sealed = manifest::seal(&m, &self.key)?;
        let tmp = self.www.join(".manifest.tmp");
        fs::write(&tmp, sealed).at("write", &tmp)?;
        let path = self.www.join("manifest");
        fs::rename(&tmp, &path).at("rename into", &path)?;
        Ok(published)
    }

    /// The `eddy serve` flags of a fill from this source, capped at `cap_mbps` (0: no cap).
    pub fn flags(&self, cap_mbps: u64) -> Vec<String> {
        [
            "--fill-manifest",
            &format!("{}{WWW_PREFIX}manifest", self.base),
            "--fill-key",
            &self.key.public().to_text(),
            "--fill-window",
            "always",
            "--fill-appliance",
            APPLIANCE,
            "--fill-insecure-plain-http",
            "--fill-max-rate-mbps",
            &cap_mbps.to_string(),
            "--fill-poll",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// The fill's progress from eddy's admin listener.
pub fn status(admin: SocketAddr) -> Result<FillStatus> {
    let body = eddy::admin_get(admin, "/fill/status")?;
    serde_json::from_slice(&body).map_err(|e| {
        Error::server(
            "eddy",
            format!("GET {admin}/fill/status: not FillStatus JSON: {e}"),
        )
    })
}

/// Fresh disk roots `<dir>/d0` and `<dir>/d1` (whatever was there is removed).
pub fn fresh_roots(dir: &Path) -> Result<Vec<PathBuf>> {
    crate::content::remove_dir_if_exists(dir)?;
    let roots = eddy::disks(dir);
    for r in &roots {
        fs::create_dir_all(r).at("create", r)?;
    }
    Ok(roots)
}

/// One reading of `/fill/status` and of eddy's CPU.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Seconds since the first downloaded byte was seen.
    pub t_s: f64,
    pub bytes_downloaded: u64,
    pub bytes_done: u64,
    pub objects_done: u64,
    pub state: String,
    /// utime+stime of the eddy process, ticks.
    pub cpu_ticks: u64,
}

/// A rate-cap run.
#[derive(Debug, Clone, Serialize)]
pub struct CapRun {
    pub cap_mbps: u64,
    /// What the manifest asked for (enough that the fill outlasts the window).
    pub objects: usize,
    pub bytes_planned: u64,
    /// Seconds left out at the start (the bucket's burst, connections opening).
    pub skip_s: f64,
    /// Length of the steady window that was measured.
    pub window_s: f64,
    /// `bytes_downloaded` over the steady window, Mbit/s (10^6 bit/s, as the cap).
    pub achieved_mbps: f64,
    /// (achieved - cap) / cap, percent.
    pub error_pct: f64,
    /// Slowest and fastest sampling interval of the window, Mbit/s.
    pub interval_min_mbps: f64,
    pub interval_max_mbps: f64,
    /// eddy's CPU over the window, cores.
    pub cores: f64,
    /// The fill ran out of work before the window ended (the window is shorter than asked).
    pub ended_early: bool,
    pub errors: BTreeMap<String, u64>,
    pub samples: Vec<Point>,
}

/// The disk's sequential write speed: a file written in 1 MiB blocks and fsynced.
#[derive(Debug, Clone, Serialize)]
pub struct DiskWrite {
    pub path: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
    pub mib_s: f64,
    /// Written with O_DIRECT (false where the file system refuses it, e.g. tmpfs).
    pub direct: bool,
}

/// The uncapped run.
#[derive(Debug, Clone, Serialize)]
pub struct Uncapped {
    /// Objects the manifest asked for, and installed.
    pub objects_planned: u64,
    pub objects: u64,
    pub bytes: u64,
    /// From the last reading without a downloaded byte to the first with every object installed (so the
    /// installs' fsyncs count), seconds.
    pub seconds: f64,
    pub mib_s: f64,
    pub gbps: f64,
    /// eddy's CPU over the same time, cores, and CPU seconds per GiB filled.
    pub cores: f64,
    pub cpu_s_per_gib: f64,
    pub disk: DiskWrite,
    /// Fill speed / disk write speed.
    pub of_disk: f64,
    /// Body bytes compared after the fill (filled objects against their source files).
    pub bytes_compared: u64,
    pub errors: BTreeMap<String, u64>,
}

/// Everything the fill measurements produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FillReport {
    pub caps: Vec<CapRun>,
    pub uncapped: Option<Uncapped>,
    /// Runs that went wrong (no bytes, fill errors, wrong bodies); a smoke run fails on any.
    pub failures: Vec<String>,
}

/// How the fill measurements run.
pub struct Params<'a> {
    pub eddy: &'a Path,
    pub run_dir: &'a Path,
    pub ticks: f64,
    /// Seconds of the steady window of each rate-cap run.
    pub window: Duration,
    /// Left out at the start of each rate-cap run.
    pub skip: Duration,
    /// Between readings of `/fill/status`.
    pub interval: Duration,
    /// Read before each run, so that nginx serves the source from the page cache.
    pub warm: Vec<PathBuf>,
}

/// Start `eddy serve` over `disks` with `extra` flags; its admin listener is required.
pub fn start_eddy(
    bin: &Path,
    disks: &[PathBuf],
    name: &str,
    extra: Vec<String>,
    run_dir: &Path,
) -> Result<(Server, SocketAddr)> {
    let started = eddy::start(
        bin,
        &eddy::Options {
            disks: disks.to_vec(),
            tls: None,
            max_connections: None,
            idle: false,
            name: Some(name.to_string()),
            extra,
            store_keys: Vec::new(),
        },
        run_dir,
    )?;
    let admin = started
        .admin
        .ok_or_else(|| Error::server("eddy", "printed no `eddy: admin on http://...` line"))?;
    Ok((started.server, admin))
}

/// Poll `/fill/status` until a byte was downloaded; the instant of the last reading before it.
pub fn wait_first_bytes(
    server: &mut Server,
    admin: SocketAddr,
    limit: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    let mut before = Instant::now();
    loop {
        let at = Instant::now();
        let s = status(admin)?;
        if s.bytes_downloaded > 0 {
            return Ok(before);
        }
        before = at;
        if !server.alive() {
            return Err(server.died());
        }
        if Instant::now() > deadline {
            return Err(Error::server(
                "eddy",
                format!(
                    "the fill downloaded nothing within {limit:?} (state {}, errors {:?}, last refusal {:?}); see {}",
                    s.state,
                    s.errors,
                    s.last_refusal,
                    server.log.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn point(admin: SocketAddr, pid: u32, t0: Instant) -> Result<Point> {
    let s = status(admin)?;
    Ok(Point {
        t_s: t0.elapsed().as_secs_f64(),
        bytes_downloaded: s.bytes_downloaded,
        bytes_done: s.bytes_done,
        objects_done: s.objects_done,
        state: s.state,
        cpu_ticks: procstat::cpu_ticks(pid).unwrap_or(0),
    })
}

/// A rate-cap run at `cap_mbps`: fresh disks, a manifest that outlasts the window, readings every interval.
pub fn cap_run(p: &Params<'_>, src: &mut Source, cap_mbps: u64) -> Result<CapRun> {
    crate::content::warm(&p.warm)?;
    let roots = fresh_roots(&p.run_dir.join(format!("fill-cap-{cap_mbps}")))?;
    let total = p.skip + p.window + Duration::from_secs(5);
    let copies = src.copies_for(cap_mbps as f64 * 1e6 / 8.0 * total.as_secs_f64() * 1.1);
    let published = src.publish(&[], "c", copies)?;
    let (mut server, admin) = start_eddy(
        p.eddy,
        &roots,
        &format!("eddy-fill-cap-{cap_mbps}"),
        src.flags(cap_mbps),
        p.run_dir,
    )?;
    let t0 = wait_first_bytes(&mut server, admin, Duration::from_secs(30))?;
    let pid = server.pid();
    let mut samples = vec![point(admin, pid, t0)?];
    let end = p.skip + p.window;
    let mut ended_early = false;
    for k in 1.. {
        let due = p.interval * k;
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
        let pt = point(admin, pid, t0)?;
        let done = pt.state != "filling";
        samples.push(pt);
        if done {
            ended_early = due < end;
            break;
        }
        if due >= end {
            break;
        }
    }
    let last = status(admin)?;
    if let Err(e) = server.stop() {
        eprintln!("fill: {e}");
    }
    crate::content::remove_dir_if_exists(&p.run_dir.join(format!("fill-cap-{cap_mbps}")))?;
    let skip = p.skip.as_secs_f64();
    let first = samples
        .iter()
        .position(|s| s.t_s >= skip)
        .unwrap_or(0)
        .min(samples.len().saturating_sub(2));
    let (a, b) = (&samples[first], &samples[samples.len() - 1]);
    let window_s = (b.t_s - a.t_s).max(1e-6);
    let mbps = |bytes: u64, s: f64| bytes as f64 * 8.0 / s.max(1e-6) / 1e6;
    let achieved_mbps = mbps(
        b.bytes_downloaded.saturating_sub(a.bytes_downloaded),
        window_s,
    );
    let intervals: Vec<f64> = samples[first..]
        .windows(2)
        .map(|w| {
            mbps(
                w[1].bytes_downloaded.saturating_sub(w[0].bytes_downloaded),
                w[1].t_s - w[0].t_s,
            )
        })
        .collect();
    let cap = cap_mbps as f64;
    Ok(CapRun {
        cap_mbps,
        objects: published.objects,
        bytes_planned: published.bytes,
        skip_s: a.t_s,
        window_s,
        achieved_mbps,
        error_pct: if cap > 0.0 {
            (achieved_mbps - cap) / cap * 100.0
        } else {
            0.0
        },
        interval_min_mbps: intervals.iter().copied().fold(f64::INFINITY, f64::min),
        interval_max_mbps: intervals.iter().copied().fold(0.0, f64::max),
        cores: b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / p.ticks / window_s,
        ended_early,
        errors: last.errors,
        samples,
    })
}

/// The uncapped run: one copy of the content filled without a cap, timed until every object is installed, its
/// bodies checked, then the disk's write speed for the same number of bytes on the same file system.
pub fn uncapped_run(p: &Params<'_>, src: &mut Source, rng: &mut Xoshiro) -> Result<Uncapped> {
    crate::content::warm(&p.warm)?;
    let dir = p.run_dir.join("fill-uncapped");
    let roots = fresh_roots(&dir)?;
    let published = src.publish(&[], "c", 1)?;
    let (mut server, admin) = start_eddy(
        p.eddy,
        &roots,
        "eddy-fill-uncapped",
        src.flags(0),
        p.run_dir,
    )?;
    let pid = server.pid();
    let ticks0 = procstat::cpu_ticks(pid).unwrap_or(0);
    let t0 = wait_first_bytes(&mut server, admin, Duration::from_secs(30))?;
    // A loopback fill of the bench's content takes seconds; anything slower than 20 MB/s is a failure.
    let limit = Duration::from_secs(60 + published.bytes / 20_000_000);
    let (end, last) = loop {
        let s = status(admin)?;
        let at = Instant::now();
        if s.state != "filling" && s.generation == Some(published.generation) {
            break (at, s);
        }
        if !server.alive() {
            return Err(server.died());
        }
        if at.duration_since(t0) > limit {
            return Err(Error::server(
                "eddy",
                format!("the uncapped fill did not finish within {limit:?}: {s:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ticks1 = procstat::cpu_ticks(pid).unwrap_or(0);
    let seconds = end.duration_since(t0).as_secs_f64().max(1e-6);
    // Every filled object's bytes, sampled: big.bin's ends and a random range, the first and last segment.
    let mut probes = Vec::new();
    let (big, small): (Vec<&Object>, Vec<&Object>) =
        src.objects.iter().partition(|o| o.size > 1 << 20);
    for o in big {
        let len = 1u64 << 20;
        for off in [0, o.size - len, rng.below(o.size - len + 1)] {
            probes.push(Probe {
                path: format!("/fill/c0/{}", o.key),
                range: Some((off, off + len - 1)),
                file: o.file.clone(),
                file_size: o.size,
            });
        }
    }
    if !small.is_empty() {
        let picks = [0, small.len() - 1, rng.below(small.len() as u64) as usize];
        for o in picks.iter().map(|&i| small[i]) {
            probes.push(Probe {
                path: format!("/fill/c0/{}", o.key),
                range: None,
                file: o.file.clone(),
                file_size: o.size,
            });
        }
    }
    let checked = check::run(server.addr, &probes);
    if let Err(e) = server.stop() {
        eprintln!("fill: {e}");
    }
    let bytes_compared = checked
        .map_err(|e| Error::server("eddy", format!("{WRONG_BODY}: {e}; see {}", dir.display())))?;
    crate::content::remove_dir_if_exists(&dir)?;
    fs::create_dir_all(&dir).at("create", &dir)?;
    let disk = disk_write(&dir.join("write-test.bin"), published.bytes)?;
    crate::content::remove_dir_if_exists(&dir)?;
    let mib_s = last.bytes_done as f64 / seconds / (1u64 << 20) as f64;
    let cpu_s = ticks1.saturating_sub(ticks0) as f64 / p.ticks;
    Ok(Uncapped {
        objects_planned: published.objects as u64,
        objects: last.objects_done,
        bytes: last.bytes_done,
        seconds,
        mib_s,
        gbps: last.bytes_done as f64 * 8.0 / seconds / 1e9,
        cores: cpu_s / seconds,
        cpu_s_per_gib: cpu_s / (last.bytes_done.max(1) as f64 / (1u64 << 30) as f64),
        of_disk: mib_s / disk.mib_s.max(1e-9),
        disk,
        bytes_compared,
        errors: last.errors,
    })
}

/// Write `bytes` (rounded up to 1 MiB) of pseudo-random blocks into `path` with O_DIRECT (plain writes where the
/// file system refuses it), fsync, and time it; the file is removed afterwards.
pub fn disk_write(path: &Path, bytes: u64) -> Result<DiskWrite> {
    const BLOCK: usize = 1 << 20;
    const ALIGN: usize = 4096;
    let open = |direct: bool| {
        let mut o = OpenOptions::new();
        o.write(true).create(true).truncate(true);
        if direct {
            o.custom_flags(nix::fcntl::OFlag::O_DIRECT.bits());
        }
        o.open(path)
    };
    let (mut f, direct) = match open(true) {
        Ok(f) => (f, true),
        Err(_) => (open(false).at("create", path)?, false),
    };
    // An aligned block inside a larger buffer (O_DIRECT wants the memory aligned too).
    let mut raw = vec![0u8; BLOCK + ALIGN];
    let skew = raw.as_ptr() as usize % ALIGN;
    let start = if skew == 0 { 0 } else { ALIGN - skew };
    let block = &mut raw[start..start + BLOCK];
    Xoshiro::new(0x6464).fill(block);
    let blocks = bytes.div_ceil(BLOCK as u64).max(1);
    let t = Instant::now();
    for _ in 0..blocks {
        f.write_all(block).at("write", path)?;
    }
    f.sync_all().at("fsync", path)?;
    let seconds = t.elapsed().as_secs_f64().max(1e-6);
    drop(f);
    fs::remove_file(path).at("remove", path)?;
    let written = blocks * BLOCK as u64;
    Ok(DiskWrite {
        path: path.to_path_buf(),
        bytes: written,
        seconds,
        mib_s: written as f64 / seconds / BLOCK as f64,
        direct,
    })
}

/// The store of scenario (i): fresh disk roots whose `objects/big.bin` is a hard link to the bench store's copy
/// (a copy where a link cannot be made), so eddy serves (c)'s ranges from the same bytes while its fill adds
/// keys beside them.
pub fn serving_store(run_dir: &Path, store_disks: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let roots = fresh_roots(&run_dir.join("fill-serve"))?;
    for (from, to) in store_disks.iter().zip(&roots) {
        let src = from.join("objects").join("big.bin");
        if !src.is_file() {
            continue;
        }
        let dst = to.join("objects").join("big.bin");
        fs::create_dir_all(to.join("objects")).at("create", &to.join("objects"))?;
        if fs::hard_link(&src, &dst).is_err() {
            return Err(Error::tool(
                "eddy",
                format!(
                    "cannot link {} to {} (scenario i needs the run directory on the store's file system)",
                    src.display(),
                    dst.display()
                ),
            ));
        }
    }
    Ok(roots)
}

/// Remove what a fill left in (i)'s roots (installed copies, staged parts), keeping big.bin and the fill state.
pub fn wipe_fill(roots: &[PathBuf]) -> Result<()> {
    for r in roots {
        crate::content::remove_dir_if_exists(&r.join("objects").join("fill"))?;
        crate::content::remove_dir_if_exists(&r.join("staging"))?;
    }
    Ok(())
}

/// What the fill did while one run of (i) loaded eddy.
#[derive(Debug, Clone, Serialize)]
pub struct FillDuring {
    /// Whether a fill ran (false: the same instance's run without one, in the same round).
    pub filling: bool,
    pub cap_mbps: u64,
    /// `bytes_downloaded` over the load's run, Mbit/s.
    pub achieved_mbps: Option<f64>,
    /// The fill ran out of work before the load ended.
    pub ended_early: bool,
    pub errors: BTreeMap<String, u64>,
    /// CPU of the fill's source (nginx, on the same machine) over the run, cores; taken out of the run's
    /// `other_cores`.
    pub source_cores: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_verify_with_the_flags_key_and_name_nginx_sources() {
        let www = std::env::temp_dir().join(format!("eddy-bench-fill-test-{}", std::process::id()));
        let obj = Object {
            key: "seg/seg000.bin".into(),
            size: 3,
            sha256: Digest([7; 32]).to_hex(),
            file: PathBuf::new(),
        };
        let mut src = Source::new(
            www.clone(),
            "127.0.0.1:8080".parse().expect("addr"),
            vec![obj.clone()],
        )
        .expect("source");
        let p = src.publish(&[obj], "c", 2).expect("publish");
        assert_eq!((p.generation, p.objects, p.bytes), (1, 3, 9));
        let sealed = fs::read(www.join("manifest")).expect("manifest");
        let flags = src.flags(1200);
        let key = flags[flags.iter().position(|f| f == "--fill-key").expect("key") + 1].clone();
        let keys = [eddy_proto::wire::VerifyKey::parse(&key).expect("key text")];
        let m = manifest::check(
            &sealed,
            &keys,
            &manifest::Expect {
                appliance: APPLIANCE,
                held_generation: None,
                now: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("clock")
                    .as_secs(),
            },
        )
        .expect("verifies");
        let keys: Vec<&str> = m.objects.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "seg/seg000.bin",
                "fill/c0/seg/seg000.bin",
                "fill/c1/seg/seg000.bin"
            ]
        );
        assert_eq!(
            m.objects[2].sources,
            ["http://127.0.0.1:8080/seg/seg000.bin"]
        );
        assert_eq!(src.copies_for(10.0), 4);
        let _ = fs::remove_dir_all(&www);
    }
}
