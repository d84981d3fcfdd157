//! Helpers for the fill tests: a content library on disk, manifests sealed
//! with a fixed test key, nginx as a fill source we did not write, `eddy
//! serve` with the fill flags, and waiting on `/fill/status`.
//!
//! Waiting polls the admin listener with a deadline; nothing sleeps for a
//! fixed time to let something happen.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eddy_proto::manifest::{self, Entry, Manifest};
use eddy_proto::report::FillStatus;
use eddy_proto::wire::SignKey;
use eddy_proto::{Digest, ObjectKey};
use sha2::Digest as _;

use super::{gen_bytes, Server, Store};

/// The appliance id the fill tests use.
pub const APPLIANCE: &str = "oca-test";

/// A fixed Ed25519 test key (PKCS#8 v1 of a seed of `seed` bytes).
pub fn test_key(seed: u8) -> SignKey {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    SignKey::from_pkcs8(&der).expect("test key")
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Objects written below a content directory.
pub struct Library {
    pub dir: PathBuf,
    pub objects: Vec<(String, Vec<u8>)>,
}

impl Library {
    pub fn new(dir: &Path) -> Library {
        fs::create_dir_all(dir).expect("mkdir library");
        Library {
            dir: dir.to_owned(),
            objects: Vec::new(),
        }
    }

    /// Writes object `key` of `len` deterministic bytes.
    pub fn add(&mut self, key: &str, seed: u64, len: usize) -> &[u8] {
        let bytes = gen_bytes(seed, len);
        let p = self.dir.join(key);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, &bytes).expect("write object");
        self.objects.retain(|(k, _)| k != key);
        self.objects.push((key.to_owned(), bytes));
        &self.objects.last().expect("just pushed").1
    }

    pub fn bytes(&self, key: &str) -> &[u8] {
        &self
            .objects
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no object {key}"))
            .1
    }

    /// Manifest entries for `keys` (rank in order), each with `sources(key)`.
    pub fn entries(&self, keys: &[&str], sources: impl Fn(&str) -> Vec<String>) -> Vec<Entry> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                let bytes = self.bytes(k);
                Entry {
                    key: ObjectKey::parse(k).expect("key"),
                    size: bytes.len() as u64,
                    sha256: Digest(sha2::Sha256::digest(bytes).into()),
                    rank: i as u32 + 1,
                    sources: sources(k),
                }
            })
            .collect()
    }
}

/// A v1 manifest for [`APPLIANCE`], valid for an hour.
pub fn manifest(generation: u64, objects: Vec<Entry>) -> Manifest {
    let now = unix_now();
    Manifest {
        version: manifest::VERSION.into(),
        appliance: APPLIANCE.into(),
        generation,
        issued_at: now,
        expires_at: now + 3600,
        fill_start: None,
        objects,
    }
}

/// Seals `m` with test key `seed`.
pub fn seal(m: &Manifest, seed: u8) -> Vec<u8> {
    manifest::seal(m, &test_key(seed)).expect("seal")
}

/// A free loopback port (bound, then released for a server we do not control).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// nginx serving a directory, killed on drop.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Nginx {
    /// Starts nginx over `root`, or `None` (with a "skipped" line) when it is not installed.
    pub fn start(root: &Path, work: &Path) -> Option<Nginx> {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(nginx) = nginx else {
            eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
            return None;
        };
        let dir = work.join("nginx");
        fs::create_dir_all(dir.join("tmp")).expect("mkdir nginx");
        let port = free_port();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  log_format bytes '$uri $body_bytes_sent';\n  access_log {d}/access.log bytes;\n  sendfile on;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n  types {{ }}\n  default_type application/octet-stream;\n\
             server {{ listen 127.0.0.1:{port} sndbuf=4k; root {root}; }}\n}}\n",
            d = dir.display(),
            root = root.display()
        );
        fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx { child, addr, dir })
    }
}

impl Nginx {
    /// Body bytes nginx has sent so far for paths under `prefix`, from its access log (one line
    /// per request, written when the request ends, also when the client went away). nginx counts
    /// what it wrote into its socket, so the listener's send buffer is small (`sndbuf=4k`): what
    /// is counted is what reached the client, within 8 KiB per request.
    pub fn bytes_sent(&self, prefix: &str) -> u64 {
        fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(uri, _)| uri.starts_with(prefix))
            .filter_map(|(_, n)| n.trim().parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `eddy serve` flags for a fill from `manifest_url`, checked with test key `seed`.
pub fn fill_flags(manifest_url: &str, seed: u8) -> Vec<String> {
    fill_flags_with_key(manifest_url, &test_key(seed).public().to_text())
}

/// `eddy serve` flags for a fill from `manifest_url`, checked with the public key `key_text`.
pub fn fill_flags_with_key(manifest_url: &str, key_text: &str) -> Vec<String> {
    [
        "--fill-manifest",
        manifest_url,
        "--fill-key",
        key_text,
        "--fill-window",
        "always",
        "--fill-appliance",
        APPLIANCE,
        "--fill-insecure-plain-http",
        "--fill-poll",
        "300ms",
        "--fill-max-rate-mbps",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `eddy serve --listen 127.0.0.1:0 --disk ..` with `extra` flags.
pub fn serve_filling(store: &Store, extra: &[String]) -> Server {
    let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(store.disk_args());
    args.extend(extra.iter().cloned());
    Server::spawn(store.path(), &args, 1)
}

/// The fill's status from the admin listener.
pub fn status(server: &Server) -> FillStatus {
    let r = server.admin_request("GET", "/fill/status");
    assert_eq!(r.status, 200, "{}", r.describe());
    serde_json::from_slice(&r.body).expect("fill status JSON")
}

/// Polls `/fill/status` until `done` holds, or panics after `within` with the last status and
/// the server's log.
pub fn wait_status(
    server: &Server,
    within: Duration,
    what: &str,
    done: impl Fn(&FillStatus) -> bool,
) -> FillStatus {
    let deadline = Instant::now() + within;
    loop {
        let s = status(server);
        if done(&s) {
            return s;
        }
        if Instant::now() > deadline {
            panic!(
                "fill did not reach: {what} within {within:?}\nlast status: {s:#?}\nstderr:\n{}",
                server.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Idle (nothing left to do) at generation `g`.
pub fn idle_at(g: u64) -> impl Fn(&FillStatus) -> bool {
    move |s| s.state == "idle" && s.generation == Some(g)
}

/// A tmpfs of a fixed size mounted for one test (a small, really full disk), unmounted on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts `size_mib` MiB at `dir`, or `None` (with a "skipped" line) where mounting is not
    /// allowed (not root, no mount namespace).
    pub fn mount(dir: &Path, size_mib: u64) -> Option<Tmpfs> {
        fs::create_dir_all(dir).expect("mkdir mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_owned(),
            }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// One `GET` with `Connection: close`, read to the end without panicking: the status, the
/// Content-Length, and the body bytes that arrived (fewer when the server died mid-body).
/// `None` when no status line arrived.
pub fn raw_get(addr: SocketAddr, path: &str) -> Option<(u16, Option<u64>, Vec<u8>)> {
    raw_get_with(addr, path, &[])
}

/// [`raw_get`] with `extra` header lines (each without CRLF).
pub fn raw_get_with(
    addr: SocketAddr,
    path: &str,
    extra: &[&str],
) -> Option<(u16, Option<u64>, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let fields: String = extra.iter().map(|f| format!("{f}\r\n")).collect();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{fields}Connection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    });
    Some((status, len, raw[end + 4..].to_vec()))
}
