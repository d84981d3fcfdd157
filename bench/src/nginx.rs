//! nginx as the anchor: the config a fair expert would write for this test, written into the run directory, and
//! nginx started on it as a child process (`daemon off; master_process on;`, so master and workers are ours).
//!
//! The settings and why (shared/research/perf-baseline.md): `sendfile on` (zero copy), `tcp_nopush off` (on
//! loopback, `on` stalls 64 KiB answers for 40 ms and would flatter eddy 18-20x in scenario c), `tcp_nodelay on`,
//! `worker_processes` = cores, no access log, keep-alive practically unlimited. One nginx serves scenarios
//! (a)-(f) and (h) from separate `server` blocks:
//! - plain: `root` = the content's `src/`, `location /obj/` rooted at the small objects' tree for (h), and
//!   `location /_fill/` aliased to the run directory's `fill-www/`, where the fill measurements (`fill.rs`)
//!   write the sealed manifest that eddy's fill fetches (the fill's sources are the plain block's files);
//! - cold (f): the same, plus `aio threads;` (the default thread pool, 32 threads), which moves reads and
//!   sendfile calls that would block on the disk off the event loop;
//! - TLS (d, e): `listen ... ssl http2;` with the bench's certificate, `ssl_protocols TLSv1.3`, only
//!   `TLS_AES_256_GCM_SHA384` (`ssl_conf_command Ciphersuites`), `ssl_buffer_size 16k` (the default, written out),
//!   `output_buffers 2 1m` (sendfile does nothing under SSL, so nginx reads the file into these buffers; 1 MiB
//!   buffers measured ~12% faster than the default 2 x 32k) and `http2_chunk_size 16k` (one TLS record per DATA
//!   frame instead of the default 8k).
//!
//! Scenario (g) gets an nginx of its own (see [`Options::idle`]): `worker_connections` above the idle connection
//! count in each worker (the kernel may hand every connection to one worker), and `worker_rlimit_nofile` to match.
//! It is a separate instance because nginx preallocates its connection table, and that table would inflate its
//! resident memory in every other scenario.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::{Error, IoContext, Result};
use crate::server::{free_port, Kind, Server};
use crate::tls::{TlsFiles, CIPHER};

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

/// What one nginx instance serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The content's `src/`.
    pub root: PathBuf,
    /// The small objects' `src/` of (h), served under `/obj/`.
    pub small_root: Option<PathBuf>,
    /// A server block with `aio threads` for (f).
    pub cold: bool,
    /// A TLS server block for (d) and (e).
    pub tls: Option<TlsFiles>,
    /// `worker_connections` (per worker).
    pub worker_connections: u32,
    /// The instance of scenario (g) (only names its directory differently).
    pub idle: bool,
    /// Served under `/_fill/` (the fill's manifest), when a fill is measured.
    pub fill_root: Option<PathBuf>,
}

/// The ports of one instance.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    pub plain: SocketAddr,
    pub cold: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
}

/// The config file's text.
pub fn config_text(
    workers: usize,
    o: &Options,
    ports: &Listeners,
    run: &Path,
    as_root: bool,
) -> String {
    let q = |p: &Path| format!("\"{}\"", p.display());
    let user = if as_root { "user root;\n" } else { "" };
    let root = q(&o.root);
    let small = o.small_root.as_ref().map_or(String::new(), |r| {
        format!(
            "        location /obj/ {{\n            root {};\n        }}\n",
            q(r)
        )
    });
    let fill = o.fill_root.as_ref().map_or(String::new(), |r| {
        format!(
            "        location /_fill/ {{\n            alias \"{}/\";\n        }}\n",
            r.display()
        )
    });
    let mut servers = format!(
        "    server {{
        listen {plain};
        root {root};
        location / {{
        }}
{small}{fill}    }}
",
        plain = ports.plain
    );
    if let Some(cold) = ports.cold {
        servers.push_str(&format!(
            "
    # Scenario (f), cold page cache: reads and sendfile calls that would block go to the thread pool.
    server {{
        listen {cold};
        root {root};
        aio threads;
        location / {{
        }}
    }}
"
        ));
    }
    if let (Some(tls), Some(files)) = (ports.tls, &o.tls) {
        servers.push_str(&format!(
            "
    # Scenarios (d) and (e): TLS 1.3 with one cipher suite, HTTP/1.1 or HTTP/2 by ALPN.
    server {{
        listen {tls} ssl http2;
        root {root};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_conf_command Ciphersuites {CIPHER};
        ssl_buffer_size 16k;
        output_buffers 2 1m;
        http2_chunk_size 16k;
        location / {{
        }}
{small}    }}
",
            cert = q(&files.cert),
            key = q(&files.key),
        ));
    }
    format!(
        "# Written by eddy-bench for one run: nginx serving the bench content as a fair expert would set it up.
worker_processes {workers};
daemon off;
master_process on;
{user}pid {pid};
error_log {err} warn;
worker_rlimit_nofile {nofile};

events {{
    worker_connections {wc};
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

{servers}}}
",
        pid = q(&run.join("nginx.pid")),
        err = q(&run.join("error.log")),
        t_body = q(&run.join("tmp/body")),
        t_proxy = q(&run.join("tmp/proxy")),
        t_fastcgi = q(&run.join("tmp/fastcgi")),
        t_uwsgi = q(&run.join("tmp/uwsgi")),
        t_scgi = q(&run.join("tmp/scgi")),
        wc = o.worker_connections,
        nofile = u64::from(o.worker_connections) * 2 + 64,
    )
}

/// Write the config into `<run_dir>/nginx` (or `nginx-idle`) and start nginx on it.
pub fn start(nginx: &Path, o: &Options, run_dir: &Path) -> Result<(Server, Listeners)> {
    let dir = run_dir.join(if o.idle { "nginx-idle" } else { "nginx" });
    fs::create_dir_all(dir.join("tmp")).at("create", &dir.join("tmp"))?;
    let mut o = o.clone();
    o.root = fs::canonicalize(&o.root).at("resolve", &o.root)?;
    if let Some(r) = &o.small_root {
        o.small_root = Some(fs::canonicalize(r).at("resolve", r)?);
    }
    let ports = Listeners {
        plain: free_port()?,
        cold: if o.cold { Some(free_port()?) } else { None },
        tls: if o.tls.is_some() {
            Some(free_port()?)
        } else {
            None
        },
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let as_root = nix::unistd::geteuid().is_root();
    let conf = dir.join("nginx.conf");
    fs::write(&conf, config_text(workers, &o, &ports, &dir, as_root)).at("write", &conf)?;

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
    let mut server = Server::new(Kind::Nginx, ports.plain, log, child, Signal::SIGQUIT);
    server.wait_accepting(Duration::from_secs(15))?;
    // The master forks its workers before it listens, but give them a moment to show up in /proc.
    for _ in 0..50 {
        if server.pids().len() > workers {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((server, ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_fair_settings() {
        let o = Options {
            root: "/c/src".into(),
            small_root: Some("/c/small/src".into()),
            cold: true,
            tls: Some(TlsFiles {
                cert: "/r/cert.pem".into(),
                key: "/r/key.pem".into(),
            }),
            worker_connections: 1024,
            idle: false,
            fill_root: Some("/r/fill-www".into()),
        };
        let ports = Listeners {
            plain: "127.0.0.1:18001".parse().expect("addr"),
            cold: Some("127.0.0.1:18002".parse().expect("addr")),
            tls: Some("127.0.0.1:18003".parse().expect("addr")),
        };
        let c = config_text(2, &o, &ports, Path::new("/r/nginx"), true);
        for want in [
            "worker_processes 2;",
            "worker_connections 1024;",
            "sendfile on;",
            "tcp_nopush off;",
            "tcp_nodelay on;",
            "access_log off;",
            "keepalive_requests 1000000;",
            "listen 127.0.0.1:18001;",
            "root \"/c/src\";",
            "location /obj/ {\n            root \"/c/small/src\";",
            "location /_fill/ {\n            alias \"/r/fill-www/\";",
            "listen 127.0.0.1:18002;",
            "aio threads;",
            "listen 127.0.0.1:18003 ssl http2;",
            "ssl_protocols TLSv1.3;",
            "ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384;",
            "ssl_certificate \"/r/cert.pem\";",
            "ssl_buffer_size 16k;",
            "daemon off;",
            "user root;",
        ] {
            assert!(c.contains(want), "missing {want}");
        }
        assert_eq!(c.matches("aio threads").count(), 1);
        let plain = Listeners {
            plain: ports.plain,
            cold: None,
            tls: None,
        };
        let c = config_text(2, &o, &plain, Path::new("/r/nginx"), false);
        assert!(!c.contains("aio threads") && !c.contains("ssl"));
    }
}
