//! eddy as the candidate: its store (the source tree imported into two disk roots under the content directory,
//! reused while `eddy store ls` shows every object at its size) and starting `eddy serve` on an ephemeral
//! loopback port, read back from the `eddy: listening on http://IP:PORT` line (docs/dev/serve-contract.md).

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::content::{remove_dir_if_exists, remove_if_exists, Content, Manifest};
use crate::error::{Error, IoContext, Result};
use crate::server::{Kind, Server};

const READY_PREFIX: &str = "eddy: listening on http://";

/// `eddy version`, e.g. "eddy 0.1.0".
pub fn version(eddy: &Path) -> Result<String> {
    let out = Command::new(eddy)
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .ctx(|| format!("run {} version", eddy.display()))?;
    if !out.status.success() {
        return Err(Error::tool(
            "eddy",
            format!(
                "`{} version` failed ({}): {}",
                eddy.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The store's disk roots.
pub fn disks(content: &Content) -> Vec<PathBuf> {
    let store = content.dir.join("store");
    vec![store.join("d0"), store.join("d1")]
}

fn disk_args(cmd: &mut Command, disks: &[PathBuf]) {
    for d in disks {
        cmd.arg("--disk").arg(d);
    }
}

/// Make sure eddy's store holds the source tree; import it if not. Returns the disk roots and whether it imported.
pub fn ensure_store(eddy: &Path, content: &Content) -> Result<(Vec<PathBuf>, bool)> {
    let disks = disks(content);
    let marker = content.dir.join("store.json");
    let marked = fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        .is_some_and(|m| m == content.manifest);
    if marked && listing(eddy, &disks).is_ok_and(|l| l == content.objects()) {
        return Ok((disks, false));
    }
    eprintln!(
        "store: importing {} into {}",
        content.src.display(),
        content.dir.join("store").display()
    );
    remove_if_exists(&marker)?;
    remove_dir_if_exists(&content.dir.join("store"))?;
    for d in &disks {
        fs::create_dir_all(d).at("create", d)?;
    }
    let t = Instant::now();
    let mut cmd = Command::new(eddy);
    cmd.args(["store", "import"]);
    disk_args(&mut cmd, &disks);
    cmd.arg(&content.src).stdin(Stdio::null());
    let out = cmd
        .output()
        .ctx(|| format!("run {} store import", eddy.display()))?;
    if !out.status.success() {
        return Err(Error::tool(
            "eddy",
            format!(
                "store import failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let got = listing(eddy, &disks)?;
    let want = content.objects();
    if got != want {
        return Err(Error::tool(
            "eddy",
            format!(
                "after import, `store ls` lists {} objects, expected {} (first listed: {:?})",
                got.len(),
                want.len(),
                got.first()
            ),
        ));
    }
    fs::write(&marker, serde_json::to_vec_pretty(&content.manifest)?).at("write", &marker)?;
    eprintln!("store: imported in {:.1} s", t.elapsed().as_secs_f64());
    Ok((disks, true))
}

/// `eddy store ls` as sorted (key, size) pairs.
fn listing(eddy: &Path, disks: &[PathBuf]) -> Result<Vec<(String, u64)>> {
    let mut cmd = Command::new(eddy);
    cmd.args(["store", "ls"]);
    disk_args(&mut cmd, disks);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .ctx(|| format!("run {} store ls", eddy.display()))?;
    if !out.status.success() {
        return Err(Error::tool(
            "eddy",
            format!(
                "store ls failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.split('\t');
        let (Some(key), Some(size)) = (f.next(), f.next()) else {
            return Err(Error::tool(
                "eddy",
                format!("store ls: unexpected line {line:?}"),
            ));
        };
        let size = size
            .trim()
            .parse()
            .map_err(|_| Error::tool("eddy", format!("store ls: bad size in {line:?}")))?;
        v.push((key.to_string(), size));
    }
    v.sort();
    Ok(v)
}

/// Start `eddy serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --disk ...` and wait for its
/// listening line.
pub fn start(eddy: &Path, disks: &[PathBuf], run_dir: &Path) -> Result<Server> {
    let log = run_dir.join("eddy.log");
    let stderr = File::create(&log).at("create", &log)?;
    let mut cmd = Command::new(eddy);
    // The admin listener stays on, as in production, but on an ephemeral port: its default is fixed.
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    disk_args(&mut cmd, disks);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .ctx(|| format!("start {} serve", eddy.display()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::server("eddy", "no stdout pipe"))?;
    // A thread reads stdout for the whole life of the server, so that eddy never blocks on a full pipe.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix(READY_PREFIX) {
                // The receiver is gone once the first line is taken; later lines are just drained.
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    // Until the listening line is parsed, a placeholder address; the child is owned by `Server` from here so that
    // any early return below stops it.
    let placeholder = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut server = Server::new(Kind::Eddy, placeholder, log, child, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => break line,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline && server.alive() => {
            }
            Err(_) if !server.alive() => return Err(server.died()),
            Err(_) => {
                return Err(Error::server(
                    "eddy",
                    format!(
                        "no `{READY_PREFIX}...` line on stdout within 30 s; see {}",
                        server.log.display()
                    ),
                ))
            }
        }
    };
    server.addr = line.trim_end_matches('/').parse().map_err(|_| {
        Error::server(
            "eddy",
            format!("cannot parse the listening address {line:?}"),
        )
    })?;
    server.wait_accepting(Duration::from_secs(10))?;
    Ok(server)
}
