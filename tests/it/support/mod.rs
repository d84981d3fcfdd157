//! Shared helpers for the black-box tests: a temp store of three disk roots, a deterministic content
//! generator, the `eddy` CLI, a served instance on an ephemeral loopback port, a raw HTTP/1.1 client
//! and a multipart/byteranges parser.
//!
//! Nothing here sleeps to wait for readiness: the server is ready when it prints its listening line
//! (its admin line, when the admin listener is on, comes before it).

#![allow(dead_code)]

pub mod drives;
pub mod fill;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary under test.
pub const EDDY: &str = env!("CARGO_BIN_EXE_eddy");

/// How long we wait for the server to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Default socket read timeout, so a silent server fails a test instead of hanging it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Deterministic content
// ---------------------------------------------------------------------------------------------

/// `n` bytes from a seeded xorshift64*: the same seed always gives the same bytes.
pub fn gen_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        out.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

// ---------------------------------------------------------------------------------------------
// Temp store
// ---------------------------------------------------------------------------------------------

/// A temp directory laid out as:
/// ```text
/// TMP/src/            source tree for `eddy store import`
/// TMP/store/d0..d2/   the three disk roots
/// TMP/store/secret.txt, TMP/secret.txt   files next to the store that must never be served
/// ```
pub struct Store {
    pub tmp: tempfile::TempDir,
    pub src: PathBuf,
    pub disks: Vec<PathBuf>,
}

/// Content of the secret files placed next to the store.
pub const SECRET: &[u8] = b"EDDY-TEST-SECRET-7f3a9c1e-do-not-serve\n";

impl Store {
    pub fn new() -> Store {
        Store::in_dir(&std::env::temp_dir())
    }

    /// A store under cargo's target directory, which is on a disk filesystem wherever the build
    /// is (a tmpfs /tmp keeps every page in memory, so nothing there can be made cold).
    pub fn on_disk() -> Store {
        Store::in_dir(Path::new(env!("CARGO_TARGET_TMPDIR")))
    }

    fn in_dir(dir: &Path) -> Store {
        let tmp = tempfile::Builder::new()
            .prefix("eddy-it-")
            .tempdir_in(dir)
            .expect("create temp dir");
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).expect("mkdir src");
        let store = tmp.path().join("store");
        let disks: Vec<PathBuf> = (0..3).map(|i| store.join(format!("d{i}"))).collect();
        for d in &disks {
            fs::create_dir_all(d).expect("mkdir disk root");
        }
        fs::write(store.join("secret.txt"), SECRET).expect("write secret");
        fs::write(tmp.path().join("secret.txt"), SECRET).expect("write secret");
        Store { tmp, src, disks }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `bytes` as source file `key` (a `/`-separated relative path), creating directories.
    pub fn write(&self, key: &str, bytes: &[u8]) -> PathBuf {
        let p = self.src.join(key);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir source parent");
        }
        fs::write(&p, bytes).expect("write source file");
        p
    }

    /// Writes a source file and sets its mtime to `mtime` seconds since the epoch.
    pub fn write_with_mtime(&self, key: &str, bytes: &[u8], mtime: u64) -> PathBuf {
        let p = self.write(key, bytes);
        let f = File::options().write(true).open(&p).expect("open source");
        f.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
            .expect("set mtime");
        p
    }

    /// `--disk D` for each disk root.
    pub fn disk_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        for d in &self.disks {
            v.push("--disk".to_string());
            v.push(d.to_str().expect("utf-8 temp path").to_string());
        }
        v
    }

    /// `eddy store import --disk .. SRC`; panics unless it exits 0.
    pub fn import(&self) {
        let out = run_eddy(
            &[
                &["store".to_string(), "import".to_string()][..],
                &self.disk_args(),
                &[self.src.to_str().expect("utf-8").to_string()],
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "eddy store import failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Drops every stored object's pages from the page cache (`posix_fadvise(DONTNEED)`), so that
    /// serving them reads the disk. Pages a process has mapped stay: call it before serving.
    pub fn evict(&self) {
        fn walk(dir: &Path) {
            for entry in fs::read_dir(dir).expect("read a store directory").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path);
                } else {
                    let f = File::open(&path).expect("open a stored object");
                    f.sync_all().expect("fsync before evicting");
                    nix::fcntl::posix_fadvise(
                        &f,
                        0,
                        0,
                        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                    )
                    .expect("posix_fadvise(DONTNEED)");
                }
            }
        }
        for d in &self.disks {
            walk(d);
        }
    }

    /// `eddy store ls --disk ..`; panics unless it exits 0. Returns stdout.
    pub fn ls(&self) -> String {
        let out = run_eddy(
            &[
                &["store".to_string(), "ls".to_string()][..],
                &self.disk_args(),
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "eddy store ls failed: {:?}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("store ls prints UTF-8")
    }

    /// Writes a config file into the temp dir and returns its path.
    pub fn config(&self, name: &str, toml: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::write(&p, toml).expect("write config");
        p
    }

    /// Starts `eddy serve --listen 127.0.0.1:0 --disk ..` (with `--config` when given).
    pub fn serve(&self) -> Server {
        Server::start(self, None)
    }

    /// Starts the server with a config file holding `toml` (typically only `[limits]`).
    pub fn serve_with(&self, toml: &str) -> Server {
        let p = self.config("eddy.toml", toml);
        Server::start(self, Some(&p))
    }

    /// Starts the server with a config file holding `toml`, which names one TLS listener
    /// (`[tls] listen = ["127.0.0.1:0"]`); waits for its plain and its `https://` line.
    pub fn serve_tls(&self, toml: &str) -> Server {
        let p = self.config("eddy.toml", toml);
        Server::start_tls(self, &p, 1)
    }
}

/// Runs `eddy ARGS..` to completion (with a generous timeout), capturing its output.
/// Runs `eddy token sign --config CONFIG ARGS` and returns the query string it prints first.
pub fn token_sign(config: &Path, args: &[&str]) -> String {
    token_sign_both(config, args).0
}

/// Runs `eddy token sign --config CONFIG ARGS` and returns both forms it prints: the query
/// string (line 1) and the path-form URL prefix `/t/<token>/<prefix>` (line 2).
pub fn token_sign_both(config: &Path, args: &[&str]) -> (String, String) {
    let mut all = vec![
        "token",
        "sign",
        "--config",
        config.to_str().expect("utf-8 path"),
    ];
    all.extend_from_slice(args);
    let out = run_eddy(&all);
    assert!(
        out.status.success(),
        "token sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "token sign prints two lines: {text:?}");
    (lines[0].to_owned(), lines[1].to_owned())
}

pub fn run_eddy<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    run_eddy_within(args, Duration::from_secs(60))
}

/// Runs `eddy ARGS` to its exit, killing it after `timeout` (for a command,
/// such as a `serve` that must fail at start, that should end quickly).
pub fn run_eddy_within<S: AsRef<std::ffi::OsStr>>(args: &[S], timeout: Duration) -> Output {
    let child = Command::new(EDDY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eddy");
    wait_output(child, timeout)
}

/// Waits for a child with piped stdout/stderr, killing it after `timeout`.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = match wait_timeout(&mut child, timeout) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("eddy did not exit within {timeout:?}");
        }
    };
    Output {
        status,
        stdout: t1.join().expect("stdout reader"),
        stderr: t2.join().expect("stderr reader"),
    }
}

/// Polls `try_wait` until the child exits or `timeout` passes (bounded, not sleep-and-hope).
/// Polls `f` every 50 ms until it returns `Some`, for at most `within`; `None`
/// when it never did (the caller panics with what it waited for).
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Served instance
// ---------------------------------------------------------------------------------------------

/// The line `eddy serve` prints for its admin listener (before the listening lines).
pub const ADMIN_PREFIX: &str = "eddy: admin on http://";

/// A running `eddy serve`; killed on drop. Its stderr goes to a file shown when a test panics.
pub struct Server {
    pub child: Option<Child>,
    pub addrs: Vec<SocketAddr>,
    pub addr: SocketAddr,
    /// The admin listener, from the `eddy: admin on http://` line; `None` when it is off.
    pub admin: Option<SocketAddr>,
    /// The TLS listeners, from the `eddy: listening on https://ADDR` lines (after the plain ones).
    pub https_addrs: Vec<SocketAddr>,
    /// The stdout lines printed up to the last listening line waited for, in order.
    pub startup_lines: Vec<String>,
    pub stderr_path: PathBuf,
    /// Every stdout line so far, also after the listening lines.
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _stdout_drain: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// `eddy serve --listen 127.0.0.1:0 --disk ..` plus `--config` when given.
    pub fn start(store: &Store, config: Option<&Path>) -> Server {
        let mut args: Vec<String> = vec!["serve".into()];
        if let Some(c) = config {
            args.push("--config".into());
            args.push(c.to_str().expect("utf-8").into());
        }
        args.push("--listen".into());
        args.push("127.0.0.1:0".into());
        args.push("--admin-listen".into());
        args.push("127.0.0.1:0".into());
        args.extend(store.disk_args());
        Server::spawn(store.path(), &args, 1)
    }

    /// Like [`Server::start`], with `ulimit ULIMIT` applied to the process before eddy runs (for
    /// example `-n 256`, which sets the soft and hard descriptor limits, or `-Sn 128`).
    pub fn start_with_ulimit(store: &Store, config: Option<&Path>, ulimit: &str) -> Server {
        let mut args: Vec<String> = vec!["serve".into()];
        if let Some(c) = config {
            args.push("--config".into());
            args.push(c.to_str().expect("utf-8").into());
        }
        args.push("--listen".into());
        args.push("127.0.0.1:0".into());
        args.push("--admin-listen".into());
        args.push("127.0.0.1:0".into());
        args.extend(store.disk_args());
        Server::spawn_with(store.path(), &args, 1, 0, Some(ulimit))
    }

    /// Like [`Server::start`], also waiting for `https` TLS listening lines (the config file
    /// names the TLS listeners; `--listen` only replaces the plain ones).
    pub fn start_tls(store: &Store, config: &Path, https: usize) -> Server {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--config".into(),
            config.to_str().expect("utf-8").into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(store.disk_args());
        Server::spawn_tls(store.path(), &args, 1, https)
    }

    /// Spawns `eddy ARGS` and waits for `listeners` listening lines on stdout. Unless ARGS name
    /// `--admin-listen`, `eddy serve` gets `--admin-listen 127.0.0.1:0`: tests run in parallel and
    /// the default admin port is a fixed one.
    pub fn spawn(dir: &Path, args: &[String], listeners: usize) -> Server {
        Server::spawn_tls(dir, args, listeners, 0)
    }

    /// Like [`Server::spawn`], also waiting for `https` TLS (`https://`) listening lines.
    pub fn spawn_tls(dir: &Path, args: &[String], listeners: usize, https: usize) -> Server {
        let mut args = args.to_vec();
        let names_admin = args
            .iter()
            .any(|a| a == "--admin-listen" || a.starts_with("--admin-listen="));
        if args.first().map(String::as_str) == Some("serve") && !names_admin {
            args.push("--admin-listen".into());
            args.push("127.0.0.1:0".into());
        }
        Server::spawn_raw(dir, &args, listeners, https)
    }

    /// Like [`Server::spawn`], but runs ARGS exactly as given (for a test of the config file's
    /// `admin.listen`; it must not name a fixed port).
    pub fn spawn_as_is(dir: &Path, args: &[String], listeners: usize) -> Server {
        Server::spawn_raw(dir, args, listeners, 0)
    }

    /// Spawns `eddy ARGS` as given and waits for `listeners` plain and `https` TLS listening lines.
    fn spawn_raw(dir: &Path, args: &[String], listeners: usize, https: usize) -> Server {
        Server::spawn_with(dir, args, listeners, https, None)
    }

    /// [`Server::spawn_raw`], under `sh -c 'ulimit ULIMIT && exec eddy ARGS'` when `ulimit` is
    /// given (the process keeps its id: `exec`).
    fn spawn_with(
        dir: &Path,
        args: &[String],
        listeners: usize,
        https: usize,
        ulimit: Option<&str>,
    ) -> Server {
        let stderr_path = tempfile::Builder::new()
            .prefix("serve-stderr-")
            .suffix(".log")
            .tempfile_in(dir)
            .expect("stderr file")
            .into_temp_path()
            .keep()
            .expect("keep stderr file");
        let stderr = File::create(&stderr_path).expect("create stderr log");
        let mut command = match ulimit {
            None => Command::new(EDDY),
            Some(limit) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit {limit} && exec \"$0\" \"$@\""))
                    .arg(EDDY);
                c
            }
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn eddy serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        let all = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = all.clone();
        // Keep reading stdout for the whole life of the server so it never blocks on a full pipe.
        let drain = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if let Ok(mut k) = kept.lock() {
                            k.push(line.trim_end().to_string());
                        }
                        let _ = tx.send(line.trim_end().to_string());
                    }
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut addrs = Vec::new();
        let mut admin = None;
        let mut https_addrs = Vec::new();
        let mut seen = Vec::new();
        while addrs.len() < listeners || https_addrs.len() < https {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("eddy: listening on http://") {
                        addrs.push(rest.parse::<SocketAddr>().unwrap_or_else(|e| {
                            panic!("bad address in listening line {line:?}: {e}")
                        }));
                    } else if let Some(rest) = line.strip_prefix("eddy: listening on https://") {
                        https_addrs.push(rest.parse::<SocketAddr>().unwrap_or_else(|e| {
                            panic!("bad address in listening line {line:?}: {e}")
                        }));
                    }
                    if let Some(rest) = line.strip_prefix(ADMIN_PREFIX) {
                        admin =
                            Some(rest.parse::<SocketAddr>().unwrap_or_else(|e| {
                                panic!("bad address in admin line {line:?}: {e}")
                            }));
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    let err = fs::read_to_string(&stderr_path).unwrap_or_default();
                    panic!(
                        "eddy serve did not print {listeners} http and {https} https listening \
                         line(s) within {START_TIMEOUT:?} \
                         (exit: {status:?})\nargs: {args:?}\nstdout: {seen:?}\nstderr:\n{err}"
                    );
                }
            }
        }
        Server {
            child: Some(child),
            addr: addrs[0],
            addrs,
            admin,
            https_addrs,
            startup_lines: seen,
            stderr_path,
            stdout: all,
            _stdout_drain: Some(drain),
        }
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr)
    }

    /// The admin listener's address; panics when it is off.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .expect("this server printed no `eddy: admin on http://` line")
    }

    /// One request to the admin listener, as [`Server::request`] does to the serving one.
    pub fn admin_request(&self, method: &str, target: &str) -> Response {
        let mut c = Conn::connect(self.admin_addr());
        c.send(&request_bytes(method, target, &[], true));
        c.read_response(method == "HEAD")
    }

    /// The first TLS listener; panics when the server was started without one.
    pub fn https_addr(&self) -> SocketAddr {
        *self
            .https_addrs
            .first()
            .expect("no TLS listener: start the server with Server::start_tls")
    }

    /// Sends one request `METHOD TARGET HTTP/1.1` with `Host` and `Connection: close` plus `extra`
    /// header lines (each without CRLF), reads one response.
    pub fn request(&self, method: &str, target: &str, extra: &[&str]) -> Response {
        let mut c = self.connect();
        c.send(&request_bytes(method, target, extra, true));
        c.read_response(method == "HEAD")
    }

    pub fn get(&self, target: &str, extra: &[&str]) -> Response {
        self.request("GET", target, extra)
    }

    pub fn head(&self, target: &str, extra: &[&str]) -> Response {
        self.request("HEAD", target, extra)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// How many descriptors the server has open now (`/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// The server's (soft, hard) descriptor limits, from `/proc/PID/limits`.
    pub fn fd_limits(&self) -> (String, String) {
        let text = fs::read_to_string(format!("/proc/{}/limits", self.pid())).expect("limits");
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("a Max open files line");
        let mut f = line["Max open files".len()..].split_whitespace();
        let soft = f.next().expect("soft").to_string();
        (soft, f.next().expect("hard").to_string())
    }

    /// Sends a signal with `kill(1)` (the workspace forbids unsafe code, so no libc::kill).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Waits for the server to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_timeout(self.child.as_mut().expect("child"), timeout)
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Every line the server printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Polls stderr until `needle` occurs at least `count` times, for at most `within`;
    /// panics naming `what` otherwise.
    #[track_caller]
    pub fn wait_stderr(&self, needle: &str, count: usize, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            let n = self.stderr().matches(needle).count();
            if n >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: stderr has {n} of {count} {needle:?} after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let err = self.stderr();
            let lines: Vec<&str> = err.lines().collect();
            let shown = if lines.len() <= 120 {
                lines.join("\n")
            } else {
                format!(
                    "{}\n[... {} lines ...]\n{}",
                    lines[..60].join("\n"),
                    lines.len() - 100,
                    lines[lines.len() - 40..].join("\n")
                )
            };
            eprintln!("---- eddy serve stderr ----\n{shown}\n----");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// Request bytes: `METHOD TARGET HTTP/1.1`, `Host: eddy.test`, optional `Connection: close`, `extra`.
pub fn request_bytes(method: &str, target: &str, extra: &[&str], close: bool) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: eddy.test\r\n");
    if close {
        s.push_str("Connection: close\r\n");
    }
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[derive(Debug, Clone)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The single value of header `name` (case-insensitive); panics if it occurs more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.headers_all(name);
        assert!(
            all.len() <= 1,
            "header {name} occurs {} times: {:?}",
            all.len(),
            self.headers
        );
        all.first().copied()
    }

    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The header's value, panicking with the whole head when it is missing.
    pub fn must(&self, name: &str) -> &str {
        match self.header(name) {
            Some(v) => v,
            None => panic!(
                "missing header {name} in {} {:?}",
                self.status, self.headers
            ),
        }
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .map(|v| v.trim().parse().expect("numeric Content-Length"))
    }

    /// True when a `Connection` header lists `close`.
    pub fn closes(&self) -> bool {
        self.headers_all("connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// A short description for assertion messages (head plus body length).
    pub fn describe(&self) -> String {
        format!(
            "{} {} {:?} body {} bytes",
            self.status,
            self.reason,
            self.headers,
            self.body.len()
        )
    }
}

/// Asserts status, with the whole response head in the message.
#[track_caller]
/// `GET /metrics` on the admin listener: its text, after checking it answered 200.
pub fn scrape(server: &Server) -> String {
    let r = server.admin_request("GET", "/metrics");
    assert_status(&r, 200);
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The value of the sample `series`: a name and its labels as the text
/// format writes them (`name{a="x",b="y"}`), in any label order.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    let want = parse_series(series).unwrap_or_else(|| panic!("not a series: {series}"));
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (got, value) = l.rsplit_once(' ')?;
        (parse_series(got)? == want).then(|| value.parse().expect("numeric sample"))
    })
}

/// A series' name and its label pairs, sorted; `None` if it is malformed.
fn parse_series(series: &str) -> Option<(String, Vec<(String, String)>)> {
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_owned(), Vec::new()));
    };
    let mut labels = Vec::new();
    let mut rest = rest.strip_suffix('}')?;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    labels.sort();
    Some((name.to_owned(), labels))
}

#[track_caller]
pub fn must_sample(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[track_caller]
pub fn assert_status(r: &Response, status: u16) {
    assert_eq!(r.status, status, "unexpected status: {}", r.describe());
}

/// Asserts two byte strings are equal without dumping megabytes into the log.
#[track_caller]
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    panic!(
        "{what}: bodies differ: actual {} bytes, expected {} bytes, first difference at byte {first}",
        actual.len(),
        expected.len()
    );
}

/// A status-line + headers without the body.
pub struct Head {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

/// One client connection: exact bytes out, responses parsed in, pipelining supported.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        Conn::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("write timeout");
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Connects, then sets the socket's receive buffer to `rcvbuf` bytes (which also locks it
    /// against autotuning), as a slow player's would be.
    pub fn connect_with_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> Conn {
        use nix::sys::socket::{setsockopt, sockopt};
        let c = Conn::connect(addr);
        setsockopt(&c.stream, sockopt::RcvBuf, &rcvbuf).expect("SO_RCVBUF");
        c
    }

    /// Reads until the server closes, at most `chunk` bytes per read with `pause` between reads
    /// (a slow reader). Returns every byte received and how the stream ended: `Ok` for an orderly
    /// close (FIN), `Err` for a reset or a read timeout.
    pub fn read_slowly(
        &mut self,
        chunk: usize,
        pause: Duration,
    ) -> (Vec<u8>, Result<(), std::io::Error>) {
        let mut got = std::mem::take(&mut self.buf);
        let mut tmp = vec![0u8; chunk];
        loop {
            match read_some(&mut self.stream, &mut tmp) {
                Ok(0) => return (got, Ok(())),
                Ok(n) => got.extend_from_slice(&tmp[..n]),
                Err(e) => return (got, Err(e)),
            }
            std::thread::sleep(pause);
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send request bytes");
    }

    /// Like `send` but returns the error instead of panicking.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("read timeout");
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 65536];
        let n = read_some(&mut self.stream, &mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads and parses one response head; `Err` on EOF/error before a full head.
    pub fn try_read_head(&mut self) -> Result<Head, String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return parse_head(&head[..end]);
            }
            match self.fill() {
                Ok(0) => {
                    return Err(format!(
                        "connection closed before a full response head ({} bytes buffered: {:?})",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("reading response head: {e}")),
            }
        }
    }

    pub fn read_head(&mut self) -> Head {
        self.try_read_head().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads exactly `n` body bytes, handing them to `sink` in chunks (for bodies too big to keep).
    pub fn read_body_with(&mut self, mut n: u64, mut sink: impl FnMut(&[u8])) {
        if !self.buf.is_empty() {
            let take = (self.buf.len() as u64).min(n) as usize;
            sink(&self.buf[..take]);
            self.buf.drain(..take);
            n -= take as u64;
        }
        let mut tmp = vec![0u8; 1 << 20];
        while n > 0 {
            let want = (tmp.len() as u64).min(n) as usize;
            let got = read_some(&mut self.stream, &mut tmp[..want])
                .unwrap_or_else(|e| panic!("reading body ({n} bytes left): {e}"));
            assert!(got > 0, "connection closed with {n} body bytes missing");
            sink(&tmp[..got]);
            n -= got as u64;
        }
    }

    pub fn read_exact_body(&mut self, n: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(n.min(1 << 28) as usize);
        self.read_body_with(n, |b| v.extend_from_slice(b));
        v
    }

    /// Reads one full response. `head_request` = the request was HEAD (no body follows).
    pub fn try_read_response(&mut self, head_request: bool) -> Result<Response, String> {
        let h = self.try_read_head()?;
        let mut r = Response {
            version: h.version,
            status: h.status,
            reason: h.reason,
            headers: h.headers,
            body: Vec::new(),
        };
        let bodyless = head_request || r.status == 304 || r.status == 204 || r.status < 200;
        if bodyless {
            return Ok(r);
        }
        let chunked = r
            .headers_all("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            r.body = self.read_chunked()?;
        } else if let Some(n) = r.content_length() {
            r.body = self.read_exact_body(n);
        } else {
            // No framing: the body runs to the close.
            r.body = self.read_to_eof()?;
        }
        Ok(r)
    }

    pub fn read_response(&mut self, head_request: bool) -> Response {
        self.try_read_response(head_request)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|e| format!("bad chunk size {line:?}: {e}"))?;
            if size == 0 {
                // trailers until empty line
                loop {
                    if self.read_line()?.is_empty() {
                        return Ok(body);
                    }
                }
            }
            body.extend(self.read_exact_body(size as u64));
            let crlf = self.read_line()?;
            if !crlf.is_empty() {
                return Err(format!("missing CRLF after chunk, got {crlf:?}"));
            }
        }
    }

    fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(p) = find(&self.buf, b"\r\n") {
                let l: Vec<u8> = self.buf.drain(..p + 2).collect();
                return Ok(String::from_utf8_lossy(&l[..p]).into_owned());
            }
            match self.fill() {
                Ok(0) => return Err("EOF in chunked body".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("reading chunked body: {e}")),
            }
        }
    }

    /// Reads everything until the peer closes; returns the bytes (after any buffered ones).
    pub fn read_to_eof(&mut self) -> Result<Vec<u8>, String> {
        let mut v = std::mem::take(&mut self.buf);
        loop {
            let mut tmp = [0u8; 65536];
            match read_some(&mut self.stream, &mut tmp) {
                Ok(0) => return Ok(v),
                Ok(n) => v.extend_from_slice(&tmp[..n]),
                Err(e) => return Err(format!("read until close: {e} (after {} bytes)", v.len())),
            }
        }
    }

    /// Waits up to `within` for the server to close: true when a read returns 0 (EOF) or the
    /// connection is reset. Any bytes that arrive meanwhile are returned in the second field.
    pub fn wait_closed(&mut self, within: Duration) -> (bool, Vec<u8>) {
        let deadline = Instant::now() + within;
        let mut got = std::mem::take(&mut self.buf);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (false, got);
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("read timeout");
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return (true, got),
                Ok(n) => got.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return (false, got)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return (true, got), // reset: closed too
            }
        }
    }

    /// True if nothing at all (no bytes, no close) arrives within `d`.
    pub fn stays_silent(&mut self, d: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.stream.set_read_timeout(Some(d)).expect("timeout");
        let mut tmp = [0u8; 1];
        let r = match read_some(&mut self.stream, &mut tmp) {
            Err(e) => e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut,
            Ok(0) => false,
            Ok(_) => {
                self.buf.push(tmp[0]);
                false
            }
        };
        self.stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        r
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Bytes already received but not consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// Splits raw bytes received on one connection into Content-Length framed responses (answers to
/// GET). Returns the responses whose head and body arrived whole, and how many bytes followed
/// them (a cut answer's part).
pub fn split_responses(mut bytes: &[u8]) -> (Vec<Response>, usize) {
    let mut out = Vec::new();
    loop {
        let Some(end) = find(bytes, b"\r\n\r\n") else {
            return (out, bytes.len());
        };
        let h = parse_head(&bytes[..end]).unwrap_or_else(|e| panic!("{e}"));
        let mut r = Response {
            version: h.version,
            status: h.status,
            reason: h.reason,
            headers: h.headers,
            body: Vec::new(),
        };
        let n = r.content_length().expect("a Content-Length framed answer") as usize;
        if bytes.len() < end + 4 + n {
            return (out, bytes.len());
        }
        r.body = bytes[end + 4..end + 4 + n].to_vec();
        bytes = &bytes[end + 4 + n..];
        out.push(r);
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|e| format!("response head is not UTF-8: {e}"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("").to_string();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line {l:?}"))?;
        if k.is_empty() || k.ends_with(' ') || k.ends_with('\t') {
            return Err(format!("bad header name in {l:?}"));
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Head {
        version,
        status,
        reason,
        headers,
    })
}

// ---------------------------------------------------------------------------------------------
// multipart/byteranges
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub first: u64,
    pub last: u64,
    pub complete_len: u64,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `Content-Range: bytes FIRST-LAST/LEN` into (first, last, len).
pub fn parse_content_range(v: &str) -> (u64, u64, u64) {
    let rest = v
        .strip_prefix("bytes ")
        .unwrap_or_else(|| panic!("Content-Range {v:?} does not start with `bytes `"));
    let (range, len) = rest
        .split_once('/')
        .unwrap_or_else(|| panic!("Content-Range {v:?} has no /"));
    let (a, b) = range
        .split_once('-')
        .unwrap_or_else(|| panic!("Content-Range {v:?} has no -"));
    let p = |s: &str| -> u64 {
        s.parse()
            .unwrap_or_else(|_| panic!("bad number in Content-Range {v:?}"))
    };
    (p(a), p(b), p(len))
}

/// The boundary from `multipart/byteranges; boundary=...` (quoted or not).
pub fn boundary_of(content_type: &str) -> String {
    let mut it = content_type.split(';');
    let media = it.next().unwrap_or("").trim();
    assert!(
        media.eq_ignore_ascii_case("multipart/byteranges"),
        "Content-Type {content_type:?} is not multipart/byteranges"
    );
    for p in it {
        let p = p.trim();
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                assert!(!v.is_empty(), "empty boundary");
                return v.to_string();
            }
        }
    }
    panic!("no boundary parameter in {content_type:?}")
}

/// Parses a multipart/byteranges body strictly (RFC 9110 §14.6, RFC 2046 §5.1.1): each part's
/// length is taken from its Content-Range, and must be followed by a delimiter.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = boundary_of(content_type);
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    // The first delimiter: at the start, or after a preamble ending in CRLF.
    let mut pos = if body.starts_with(d) {
        d.len()
    } else {
        let mut needle = b"\r\n".to_vec();
        needle.extend_from_slice(d);
        find(body, &needle).expect("no first multipart delimiter") + needle.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            // close-delimiter; anything after is an epilogue (only whitespace expected)
            let epi = &rest[2..];
            assert!(
                epi.iter().all(|b| b.is_ascii_whitespace()),
                "unexpected epilogue after close delimiter: {:?}",
                String::from_utf8_lossy(epi)
            );
            return parts;
        }
        // transport padding then CRLF
        let mut i = 0;
        while i < rest.len() && (rest[i] == b' ' || rest[i] == b'\t') {
            i += 1;
        }
        assert!(
            rest[i..].starts_with(b"\r\n"),
            "delimiter not followed by CRLF at byte {pos}"
        );
        let hstart = pos + i + 2;
        let hend = hstart
            + find(&body[hstart..], b"\r\n\r\n")
                .unwrap_or_else(|| panic!("part headers not terminated at byte {hstart}"));
        let htext = std::str::from_utf8(&body[hstart..hend]).expect("part headers UTF-8");
        let mut headers = Vec::new();
        if !htext.is_empty() {
            for l in htext.split("\r\n") {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad part header {l:?}"));
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let cr = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-range"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("part without Content-Range: {headers:?}"));
        let (first, last, complete_len) = parse_content_range(&cr);
        assert!(first <= last, "part Content-Range {cr:?} has first > last");
        let n = (last - first + 1) as usize;
        let bstart = hend + 4;
        assert!(
            bstart + n <= body.len(),
            "part {cr:?} runs past the end of the body"
        );
        let pbody = body[bstart..bstart + n].to_vec();
        let after = &body[bstart + n..];
        let mut needle = b"\r\n".to_vec();
        needle.extend_from_slice(d);
        assert!(
            after.starts_with(&needle),
            "part {cr:?} is not followed by CRLF--boundary: {:?}",
            String::from_utf8_lossy(&after[..after.len().min(80)])
        );
        parts.push(Part {
            headers,
            first,
            last,
            complete_len,
            body: pbody,
        });
        pos = bstart + n + needle.len();
    }
}

// ---------------------------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------------------------

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for `secs` since the epoch.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses an IMF-fixdate back to seconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let f: Vec<&str> = s.split(' ').collect();
    if f.len() != 6 || f[5] != "GMT" {
        return None;
    }
    let d: i64 = f[1].parse().ok()?;
    let m = MONTHS.iter().position(|x| *x == f[2])? as i64 + 1;
    let y: i64 = f[3].parse().ok()?;
    let t: Vec<u64> = f[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if t.len() != 3 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    Some(days as u64 * 86400 + t[0] * 3600 + t[1] * 60 + t[2])
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after epoch")
        .as_secs()
}

/// Checks the validators and common headers every object response must carry.
#[track_caller]
pub fn assert_object_headers(r: &Response) {
    let etag = r.must("etag");
    assert!(
        etag.len() >= 2 && etag.starts_with('"') && etag.ends_with('"'),
        "ETag {etag:?} is not a strong entity-tag"
    );
    let lm = r.must("last-modified");
    assert!(
        parse_http_date(lm).is_some(),
        "Last-Modified {lm:?} is not an IMF-fixdate"
    );
    let date = r.must("date");
    assert!(
        parse_http_date(date).is_some(),
        "Date {date:?} is not an IMF-fixdate"
    );
    assert_eq!(r.must("accept-ranges"), "bytes", "Accept-Ranges");
}

/// `read`, retried when a signal interrupts it (the test process gets SIGCHLD from
/// the servers other tests stop, and `Read::read` does not retry EINTR).
pub fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The `eddy-origin` control plane: keys, a spawned origin, its manifests and stats.
pub mod origin;
