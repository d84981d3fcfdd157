//! nginx as the anchor: the config a fair expert would write for this test, written into the run directory, and
//! nginx started on it as a child process (`daemon off; master_process on;`, so master and workers are ours).
//!
//! The settings and why (shared/research/perf-baseline.md): `sendfile on` (zero copy), `tcp_nopush off` (on
//! loopback, `on` stalls 64 KiB answers for 40 ms and would flatter eddy 18-20x in scenario c), `tcp_nodelay on`,
//! `worker_processes` = cores, no access log, keep-alive practically unlimited.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::{Error, IoContext, Result};
use crate::server::{free_port, Kind, Server};

/// `nginx -v`, e.g. "nginx version: nginx/1.22.1".
pub fn version(nginx: &Path) -> Result<String> {
    let out = Command::new(nginx)
        .arg("-v")
        .output()
        .ctx(|| format!("run {} -v", nginx.display()))?;
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        return Err(Error::tool("nginx", format!("-v failed: {text}")));
    }
    Ok(text)
}

/// The config file's text.
pub fn config_text(
    workers: usize,
    worker_connections: u32,
    port: u16,
    root: &Path,
    run: &Path,
    as_root: bool,
) -> String {
    let q = |p: PathBuf| format!("\"{}\"", p.display());
    let user = if as_root { "user root;\n" } else { "" };
    format!(
        "# Written by eddy-bench for one run: nginx serving the bench content as a fair expert would set it up.
worker_processes {workers};
daemon off;
master_process on;
{user}pid {pid};
error_log {err} warn;
worker_rlimit_nofile {nofile};

events {{
    worker_connections {worker_connections};
}}

http {{
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path {t_body};
    proxy_temp_path {t_proxy};
    fastcgi_temp_path {t_fastcgi};
    uwsgi_temp_path {t_uwsgi};
    scgi_temp_path {t_scgi};

    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
        }}
    }}
}}
",
        pid = q(run.join("nginx.pid")),
        err = q(run.join("error.log")),
        t_body = q(run.join("tmp/body")),
        t_proxy = q(run.join("tmp/proxy")),
        t_fastcgi = q(run.join("tmp/fastcgi")),
        t_uwsgi = q(run.join("tmp/uwsgi")),
        t_scgi = q(run.join("tmp/scgi")),
        root = q(root.to_path_buf()),
        nofile = u64::from(worker_connections) * 2 + 64,
    )
}

/// Write the config into `<run_dir>/nginx` and start nginx serving `root`, sized for `connections` clients.
///
/// `worker_connections` follows the load (at least 1024) rather than a large fixed number: nginx preallocates
/// its connection table, and an oversized one would inflate its resident memory in the comparison.
pub fn start(nginx: &Path, root: &Path, run_dir: &Path, connections: u32) -> Result<Server> {
    let dir = run_dir.join("nginx");
    fs::create_dir_all(dir.join("tmp")).at("create", &dir.join("tmp"))?;
    let root = fs::canonicalize(root).at("resolve", root)?;
    let addr = free_port()?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let as_root = nix::unistd::geteuid().is_root();
    let conf = dir.join("nginx.conf");
    let worker_connections = connections.saturating_mul(2).max(1024);
    let text = config_text(
        workers,
        worker_connections,
        addr.port(),
        &root,
        &dir,
        as_root,
    );
    fs::write(&conf, text).at("write", &conf)?;

    let log = dir.join("error.log");
    let out_path = dir.join("stdout.log");
    let stdout = File::create(&out_path).at("create", &out_path)?;
    let stderr = stdout.try_clone().at("open", &out_path)?;
    let child = Command::new(nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .ctx(|| format!("start {}", nginx.display()))?;
    let mut server = Server::new(Kind::Nginx, addr, log, child, Signal::SIGQUIT);
    server.wait_accepting(Duration::from_secs(15))?;
    // The master forks its workers before it listens, but give them a moment to show up in /proc.
    for _ in 0..50 {
        if server.pids().len() > workers {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_fair_settings() {
        let c = config_text(
            2,
            1024,
            18001,
            Path::new("/c/src"),
            Path::new("/r/nginx"),
            true,
        );
        for want in [
            "worker_processes 2;",
            "sendfile on;",
            "tcp_nopush off;",
            "tcp_nodelay on;",
            "access_log off;",
            "keepalive_requests 1000000;",
            "listen 127.0.0.1:18001;",
            "root \"/c/src\";",
            "daemon off;",
            "user root;",
        ] {
            assert!(c.contains(want), "missing {want}");
        }
    }
}
