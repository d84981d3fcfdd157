//! eddy as the candidate: its stores (a source tree imported into two disk roots, reused while `eddy store ls`
//! shows every object at its size) and starting `eddy serve` with a config file written into the run directory,
//! on ephemeral loopback ports read back from its `eddy: listening on http://IP:PORT` (and `https://`) lines
//! (docs/dev/serve-contract.md).
//!
//! eddy also opens its admin listener (metrics, health, `/fill/status`) on an ephemeral port
//! (`--admin-listen 127.0.0.1:0`); its `eddy: admin on ...` line is not a serving listener, and is kept as
//! [`Started::admin`] for the fill measurements (`fill.rs`), which also pass extra flags (the `--fill-*` ones).
//!
//! The config holds the disks, `[limits] max_connections` for the instance of scenario (g), and a `[tls]` section
//! with the bench's certificate when (d) or (e) runs. An eddy without TLS support refuses that section (it refuses
//! unknown keys): `eddy check-config` tells before the start, and eddy then runs without it, and (d) and (e) are
//! skipped on eddy with the reason instead of failing the whole run.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;

use crate::content::{remove_dir_if_exists, remove_if_exists};
use crate::error::{Error, IoContext, Result};
use crate::server::{Kind, Server};
use crate::tls::TlsFiles;

const READY_PREFIX: &str = "eddy: listening on ";
const ADMIN_PREFIX: &str = "eddy: admin on http://";

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

/// The disk roots of the store under `store_dir`.
pub fn disks(store_dir: &Path) -> Vec<PathBuf> {
    disks_n(store_dir, 2)
}

/// `n` disk roots `<store_dir>/d0` .. `d<n-1>`.
pub fn disks_n(store_dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| store_dir.join(format!("d{i}"))).collect()
}

fn disk_args(cmd: &mut Command, disks: &[PathBuf]) {
    for d in disks {
        cmd.arg("--disk").arg(d);
    }
}

/// Make sure the store in `<dir>/store` holds the tree `<dir>/src` (whose `manifest` and objects are given); import
/// it if not. `<dir>/store.json` holds the manifest the store was imported from. Returns the disk roots and whether
/// it imported.
pub fn ensure_store<M: Serialize>(
    eddy: &Path,
    dir: &Path,
    manifest: &M,
    want: &[(String, u64)],
) -> Result<(Vec<PathBuf>, bool)> {
    ensure_store_on(eddy, dir, manifest, want, 2)
}

/// [`ensure_store`] on `n` disk roots.
pub fn ensure_store_on<M: Serialize>(
    eddy: &Path,
    dir: &Path,
    manifest: &M,
    want: &[(String, u64)],
    n: usize,
) -> Result<(Vec<PathBuf>, bool)> {
    let (src, store) = (dir.join("src"), dir.join("store"));
    let disks = disks_n(&store, n);
    let marker = dir.join("store.json");
    let manifest = serde_json::to_value(manifest)?;
    let marked = fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|m| m == manifest);
    if marked && listing(eddy, &disks).is_ok_and(|l| l == want) {
        return Ok((disks, false));
    }
    eprintln!(
        "store: importing {} into {}",
        src.display(),
        store.display()
    );
    remove_if_exists(&marker)?;
    remove_dir_if_exists(&store)?;
    for d in &disks {
        fs::create_dir_all(d).at("create", d)?;
    }
    let t = Instant::now();
    let mut cmd = Command::new(eddy);
    cmd.args(["store", "import"]);
    disk_args(&mut cmd, &disks);
    cmd.arg(&src).stdin(Stdio::null());
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
    fs::write(&marker, serde_json::to_vec_pretty(&manifest)?).at("write", &marker)?;
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

/// `GET path` on eddy's admin listener: the body of a 200, or an error naming the status.
pub fn admin_get(admin: SocketAddr, path: &str) -> Result<Vec<u8>> {
    use std::io::{Read, Write};
    let fail = |m: String| Error::server("eddy", format!("GET {admin}{path}: {m}"));
    let mut s = std::net::TcpStream::connect_timeout(&admin, Duration::from_secs(2))
        .map_err(|e| fail(e.to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| fail(e.to_string()))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: eddy-bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| fail(e.to_string()))?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("no response head".into()))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    if head.split_whitespace().nth(1) != Some("200") {
        return Err(fail(head.lines().next().unwrap_or_default().to_string()));
    }
    Ok(raw.split_off(end + 4))
}

/// How to run one eddy instance.
#[derive(Debug, Clone)]
pub struct Options {
    pub disks: Vec<PathBuf>,
    /// Add a TLS listener with these files.
    pub tls: Option<TlsFiles>,
    /// `[limits] max_connections`; None keeps eddy's default.
    pub max_connections: Option<u32>,
    /// The instance of scenario (g) (only names its files differently).
    pub idle: bool,
    /// Names the config and log files instead of `eddy` / `eddy-idle` (the fill's instances).
    pub name: Option<String>,
    /// Flags added after `--config FILE` (the fill's `--fill-*` flags).
    pub extra: Vec<String>,
    /// Lines added to the `[store]` section, e.g. `read_timeout = "300s"` (the drive measurements).
    pub store_keys: Vec<String>,
}

/// A started eddy.
pub struct Started {
    pub server: Server,
    /// The TLS listener, or why there is none (not asked for, or this eddy cannot).
    pub tls: std::result::Result<SocketAddr, String>,
    /// The admin listener (eddy prints it before the listening lines).
    pub admin: Option<SocketAddr>,
}

/// Quote a string for TOML (basic string).
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The config file's text. With TLS, both listeners are opened to everyone (`require_tokens = false`), as the
/// bench has no tokens; without TLS, that key is left out (an eddy without TLS does not know it).
pub fn config_text(o: &Options, tls: bool) -> String {
    let list = |v: Vec<String>| v.join(", ");
    let disks = list(
        o.disks
            .iter()
            .map(|d| toml_str(&d.display().to_string()))
            .collect(),
    );
    let mut t =
        String::from("# Written by eddy-bench for one run.\n[serve]\nlisten = [\"127.0.0.1:0\"]\n");
    if tls {
        t.push_str("require_tokens = false\n");
    }
    t.push_str(&format!("\n[store]\ndisks = [{disks}]\n"));
    for line in &o.store_keys {
        t.push_str(line);
        t.push('\n');
    }
    if let (true, Some(f)) = (tls, &o.tls) {
        t.push_str(&format!(
            "\n[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = {}\nkey = {}\nrequire_tokens = false\n",
            toml_str(&f.cert.display().to_string()),
            toml_str(&f.key.display().to_string())
        ));
    }
    if let Some(m) = o.max_connections {
        t.push_str(&format!("\n[limits]\nmax_connections = {m}\n"));
    }
    t
}

/// `eddy check-config --config FILE`: Err with eddy's message when it refuses the file.
fn check_config(eddy: &Path, conf: &Path) -> std::result::Result<(), String> {
    let out = Command::new(eddy)
        .args(["check-config", "--config"])
        .arg(conf)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {} check-config: {e}", eddy.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    // eddy's TOML errors span lines (message, a source excerpt, the reason): keep the text, drop the gutter.
    let lines: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains(" | "))
        .collect();
    Err(format!("{} ({})", lines.join(" / "), out.status))
}

/// Write the config and start `eddy serve --config FILE`; wait for its listening lines.
pub fn start(eddy: &Path, o: &Options, run_dir: &Path) -> Result<Started> {
    let name = o
        .name
        .as_deref()
        .unwrap_or(if o.idle { "eddy-idle" } else { "eddy" });
    let conf = run_dir.join(format!("{name}.toml"));
    let mut tls: std::result::Result<(), String> = Err("not asked for".into());
    if o.tls.is_some() {
        fs::write(&conf, config_text(o, true)).at("write", &conf)?;
        tls = check_config(eddy, &conf).map_err(|e| format!("eddy has no TLS listener: {e}"));
    }
    if tls.is_err() {
        fs::write(&conf, config_text(o, false)).at("write", &conf)?;
        if let Err(e) = check_config(eddy, &conf) {
            return Err(Error::tool(
                "eddy",
                format!("refuses {}: {e}", conf.display()),
            ));
        }
    }
    let log = run_dir.join(format!("{name}.log"));
    let stderr = File::create(&log).at("create", &log)?;
    // The admin listener stays on, as in production, but on an ephemeral port: its default is fixed, and two
    // instances (main and (g)) run at once.
    let mut child = Command::new(eddy)
        .args(["serve", "--admin-listen", "127.0.0.1:0", "--config"])
        .arg(&conf)
        .args(&o.extra)
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
                // The receiver is gone once the listeners are known; later lines are just drained.
                let _ = tx.send(rest.trim().to_string());
            } else if let Some(rest) = line.strip_prefix(ADMIN_PREFIX) {
                let _ = tx.send(format!("admin://{}", rest.trim()));
            }
        }
    });
    // Until the listening line is parsed, a placeholder address; the child is owned by `Server` from here so that
    // any early return below stops it.
    let placeholder = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut server = Server::new(Kind::Eddy, placeholder, log, child, Signal::SIGTERM);
    let (mut plain, mut secure, mut admin) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while plain.is_none() || (tls.is_ok() && secure.is_none()) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let (scheme, addr) = line.split_once("://").unwrap_or(("", &line));
                let addr: SocketAddr = addr.trim_end_matches('/').parse().map_err(|_| {
                    Error::server(
                        "eddy",
                        format!("cannot parse the listening address {line:?}"),
                    )
                })?;
                match scheme {
                    "http" => plain = plain.or(Some(addr)),
                    "https" => secure = secure.or(Some(addr)),
                    "admin" => admin = admin.or(Some(addr)),
                    _ => {}
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline && server.alive() => {
            }
            Err(_) if !server.alive() => return Err(server.died()),
            Err(_) => {
                return Err(Error::server(
                    "eddy",
                    format!(
                        "no `{READY_PREFIX}http://...`{} line on stdout within 30 s; see {}",
                        if tls.is_ok() {
                            " and `https://...`"
                        } else {
                            ""
                        },
                        server.log.display()
                    ),
                ))
            }
        }
    }
    if let Some(addr) = plain {
        server.addr = addr;
    }
    server.wait_accepting(Duration::from_secs(10))?;
    let tls = match (tls, secure) {
        (Ok(()), Some(addr)) => Ok(addr),
        (Ok(()), None) => Err("eddy printed no https listener".to_string()),
        (Err(e), _) => Err(e),
    };
    Ok(Started { server, tls, admin })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_tls_only_when_asked() {
        let o = Options {
            disks: vec!["/c/store/d0".into(), "/c/my \"disk\"".into()],
            tls: Some(TlsFiles {
                cert: "/r/cert.pem".into(),
                key: "/r/key.pem".into(),
            }),
            max_connections: Some(20000),
            idle: false,
            name: None,
            extra: Vec::new(),
            store_keys: vec!["fsck_mib_per_sec = 0".into()],
        };
        let with = config_text(&o, true);
        assert!(with.contains("[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"/r/cert.pem\""));
        assert!(with.contains("require_tokens = false"));
        assert!(with.contains(r#"disks = ["/c/store/d0", "/c/my \"disk\""]"#));
        assert!(with.contains("[limits]\nmax_connections = 20000"));
        assert!(with
            .contains("disks = [\"/c/store/d0\", \"/c/my \\\"disk\\\"\"]\nfsck_mib_per_sec = 0\n"));
        let without = config_text(&o, false);
        assert!(!without.contains("tls") && !without.contains("require_tokens"));
    }
}
