//! The `eddy-origin` binary for black-box tests: a key, a running control plane over a content
//! directory, its answers and its stats.
//!
//! [`Origin::start`] makes a fresh signing key in a temp dir and waits for the one
//! `eddy-origin: listening on http://ADDR` line (never a sleep); [`Origin::restart`] starts it again
//! with the same key, content and arguments (and so the same `--db`). Requests go through the
//! raw HTTP/1.1 client of [`super`]; [`Origin::post_report`] posts a report as an appliance
//! would, and [`Origin::appliances`], [`Origin::appliance_view`] read back what was kept.
//! Dropping an `Origin` kills its process.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use super::{request_bytes, wait_output, wait_timeout, Conn, Response};

/// The binary under test.
pub const EDDY_ORIGIN: &str = env!("CARGO_BIN_EXE_eddy-origin");

/// The line `eddy-origin serve` prints when it is ready.
pub const LISTENING_PREFIX: &str = "eddy-origin: listening on http://";

/// How long we wait for the listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `eddy-origin ARGS` to its exit (killed after 60 s), capturing its output.
pub fn run_origin<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let child = Command::new(EDDY_ORIGIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eddy-origin");
    wait_output(child, Duration::from_secs(60))
}

/// `eddy-origin keygen --out PATH`; panics unless it succeeds. Returns the public key text.
pub fn keygen(path: &Path) -> String {
    let out = run_origin(&["keygen".as_ref(), "--out".as_ref(), path.as_os_str()]);
    assert!(
        out.status.success(),
        "eddy-origin keygen failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("keygen prints UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "keygen prints one line: {text:?}");
    lines[0].to_owned()
}

/// Writes `bytes` as `dir/key`, creating directories.
pub fn write_object(dir: &Path, key: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(key);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("mkdir content parent");
    }
    fs::write(&p, bytes).expect("write content file");
    p
}

/// The text of a catalogue file: the known `appliances` (`None`: any id), then each object as
/// (key, rank, its appliances or `None` for every appliance).
pub fn catalogue_toml(
    appliances: Option<&[&str]>,
    objects: &[(&str, u32, Option<&[&str]>)],
) -> String {
    let list = |ids: &[&str]| {
        let quoted: Vec<String> = ids.iter().map(|a| format!("{a:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut s = String::new();
    if let Some(ids) = appliances {
        s.push_str(&format!("appliances = {}\n", list(ids)));
    }
    for (key, rank, ids) in objects {
        s.push_str(&format!("\n[[object]]\nkey = {key:?}\nrank = {rank}\n"));
        if let Some(ids) = ids {
            s.push_str(&format!("appliances = {}\n", list(ids)));
        }
    }
    s
}

/// A running `eddy-origin serve`; killed on drop.
pub struct Origin {
    /// The bound address, from the listening line.
    pub addr: SocketAddr,
    /// `ed25519:<base64url>`, as an appliance's config holds it.
    pub public_key_text: String,
    pub key_file: PathBuf,
    pub content_dir: PathBuf,
    /// The arguments after `--listen ADDR --content DIR --key FILE`.
    pub extra_args: Vec<String>,
    pub child: Option<Child>,
    /// Its stderr (logs), appended to across restarts.
    pub stderr_path: PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    /// The address a restart listens on (the first start's), unless the arguments name one.
    relisten: Option<SocketAddr>,
    /// Holds the key file when [`Origin::start`] made it.
    _key_dir: Option<Arc<tempfile::TempDir>>,
}

impl Origin {
    /// `eddy-origin serve --listen 127.0.0.1:0 --content DIR --key NEWKEY EXTRA..`, with a fresh
    /// key in a temp dir.
    pub fn start(content_dir: &Path, extra_args: &[&str]) -> Origin {
        let dir = tempfile::Builder::new()
            .prefix("eddy-origin-key-")
            .tempdir()
            .expect("key temp dir");
        let key_file = dir.path().join("origin.key");
        let public = keygen(&key_file);
        let mut o = Origin::start_with_key(content_dir, &key_file, extra_args);
        assert_eq!(o.public_key_text, public, "pubkey agrees with keygen");
        o._key_dir = Some(Arc::new(dir));
        o
    }

    /// Like [`Origin::start`] with an existing key file (its public text is read with
    /// `eddy-origin pubkey`). `extra_args` may hold `--listen ADDR` to choose the port.
    pub fn start_with_key(content_dir: &Path, key_file: &Path, extra_args: &[&str]) -> Origin {
        let out = run_origin(&["pubkey".as_ref(), "--key".as_ref(), key_file.as_os_str()]);
        assert!(
            out.status.success(),
            "eddy-origin pubkey failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public_key_text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let stderr_path = tempfile::Builder::new()
            .prefix("eddy-origin-stderr-")
            .suffix(".log")
            .tempfile()
            .expect("stderr file")
            .into_temp_path()
            .keep()
            .expect("keep stderr file");
        let mut o = Origin {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_key_text,
            key_file: key_file.to_owned(),
            content_dir: content_dir.to_owned(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            stderr_path,
            stdout: Arc::new(Mutex::new(Vec::new())),
            relisten: None,
            _key_dir: None,
        };
        o.spawn();
        o
    }

    /// The full argument list of `serve`.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec!["serve".into()];
        if !self.extra_args.iter().any(|a| a == "--listen") {
            let listen = self
                .relisten
                .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
            args.extend(["--listen".into(), listen]);
        }
        args.push("--content".into());
        args.push(self.content_dir.to_str().expect("utf-8 path").into());
        args.push("--key".into());
        args.push(self.key_file.to_str().expect("utf-8 path").into());
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        let args = self.args();
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open stderr log");
        let mut child = Command::new(EDDY_ORIGIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn eddy-origin serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        let lines = self.stdout.clone();
        // Read stdout for the whole life of the process, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let l = line.trim_end().to_string();
                        lines
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(l.clone());
                        let _ = tx.send(l);
                    }
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(LISTENING_PREFIX) {
                        self.addr = rest
                            .parse()
                            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
                        self.child = Some(child);
                        return;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    panic!(
                        "eddy-origin serve did not print its listening line within \
                         {START_TIMEOUT:?} (exit: {status:?})\nargs: {args:?}\nstderr:\n{}",
                        fs::read_to_string(&self.stderr_path).unwrap_or_default()
                    );
                }
            }
        }
    }

    /// Kills the process (SIGKILL) and starts it again with the same key, content, arguments
    /// and address (so manifest and source URLs stay valid).
    pub fn restart(&mut self) {
        self.kill();
        self.relisten = Some(self.addr);
        self.spawn();
    }

    /// Like [`Origin::restart`] on a new ephemeral port.
    pub fn restart_on_new_port(&mut self) {
        self.kill();
        self.relisten = None;
        self.spawn();
    }

    /// Like [`Origin::restart`] (same address) with other extra arguments.
    pub fn restart_with(&mut self, extra_args: &[&str]) {
        self.extra_args = extra_args.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    /// SIGKILL and reap, if running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_timeout(self.child.as_mut().expect("running"), timeout);
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The manifest URL an appliance is configured with.
    pub fn manifest_url(&self, appliance: &str) -> String {
        self.url(&format!("/v1/manifest/{appliance}"))
    }

    /// The URL of an object on this origin, as its manifests name it (the key percent-encoded
    /// per segment).
    pub fn content_url(&self, key: &str) -> String {
        self.url(&format!(
            "/content/{}",
            eddy_origin::sources::encode_key(key)
        ))
    }

    /// The public key, parsed.
    pub fn verify_key(&self) -> eddy_proto::wire::VerifyKey {
        eddy_proto::wire::VerifyKey::parse(&self.public_key_text).expect("public key parses")
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr)
    }

    /// One request with `Connection: close` and `extra` header lines.
    pub fn request(&self, method: &str, target: &str, extra: &[&str]) -> Response {
        let mut c = self.connect();
        c.send(&request_bytes(method, target, extra, true));
        c.read_response(method == "HEAD")
    }

    pub fn get(&self, target: &str) -> Response {
        self.request("GET", target, &[])
    }

    pub fn get_with(&self, target: &str, extra: &[&str]) -> Response {
        self.request("GET", target, extra)
    }

    /// `POST target` with `Connection: close`, `extra` header lines, a `Content-Length` and
    /// `body`.
    pub fn post(&self, target: &str, extra: &[&str], body: &[u8]) -> Response {
        let length = format!("Content-Length: {}", body.len());
        let mut headers: Vec<&str> = extra.to_vec();
        headers.push(&length);
        let mut bytes = request_bytes("POST", target, &headers, true);
        bytes.extend_from_slice(body);
        let mut c = self.connect();
        c.send(&bytes);
        c.read_response(false)
    }

    /// `POST /v1/report/{appliance}` with `json` as the body and, when given,
    /// `Authorization: Bearer {token}`.
    pub fn post_report(
        &self,
        appliance: &str,
        token: Option<&str>,
        json: &serde_json::Value,
    ) -> Response {
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let mut extra = vec!["Content-Type: application/json"];
        extra.extend(auth.as_deref());
        let body = serde_json::to_vec(json).expect("serialise a report");
        self.post(&format!("/v1/report/{appliance}"), &extra, &body)
    }

    /// `GET /v1/appliances`; panics unless 200.
    pub fn appliances(&self) -> serde_json::Value {
        let r = self.get("/v1/appliances");
        super::assert_status(&r, 200);
        serde_json::from_slice(&r.body).expect("appliances are JSON")
    }

    /// `GET /v1/appliances/{appliance}/{what}` (`health`, `inventory`, `popularity`); panics
    /// unless 200.
    pub fn appliance_view(&self, appliance: &str, what: &str) -> serde_json::Value {
        let r = self.get(&format!("/v1/appliances/{appliance}/{what}"));
        super::assert_status(&r, 200);
        serde_json::from_slice(&r.body).expect("an appliance view is JSON")
    }

    /// The signed manifest bytes for `appliance`; panics unless 200.
    pub fn manifest_bytes(&self, appliance: &str) -> Vec<u8> {
        let r = self.get(&format!("/v1/manifest/{appliance}"));
        super::assert_status(&r, 200);
        r.body
    }

    /// The manifest for `appliance`, verified with this origin's key at the current time.
    pub fn manifest(&self, appliance: &str) -> eddy_proto::manifest::Manifest {
        let body = self.manifest_bytes(appliance);
        eddy_proto::manifest::check(
            &body,
            &[self.verify_key()],
            &eddy_proto::manifest::Expect {
                appliance,
                held_generation: None,
                now: super::now_secs(),
            },
        )
        .unwrap_or_else(|e| panic!("manifest refused: {e}"))
    }

    /// `GET /v1/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let r = self.get("/v1/stats");
        super::assert_status(&r, 200);
        serde_json::from_slice(&r.body).expect("stats are JSON")
    }

    /// Body bytes sent for `key` so far.
    pub fn body_bytes(&self, key: &str) -> u64 {
        self.stats()["objects"][key]["body_bytes"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Content requests answered for `key` so far.
    pub fn requests(&self, key: &str) -> u64 {
        self.stats()["objects"][key]["requests"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Faults applied so far, over all specs.
    pub fn faults_applied(&self) -> u64 {
        self.stats()["faults_applied"].as_u64().unwrap_or(0)
    }

    /// The stdout lines printed so far (across restarts).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- eddy-origin stderr ----\n{}\n----", self.stderr());
        }
    }
}
