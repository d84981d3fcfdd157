//! The body check: a minimal HTTP/1.1 client over a raw `TcpStream` that sends sample requests (see
//! [`crate::scenario::Scenario::probes`]) on one keep-alive connection and compares status, `Content-Length`,
//! `Content-Range` and every body byte with the source file; and the same check over TLS (HTTP/1.1 or HTTP/2)
//! through `curl`, which verifies the bench's certificate and reports the HTTP version it really spoke.
//! A server that fails it scores 0 for that round.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 64 * 1024;
const CHUNK: usize = 256 * 1024;

/// One sample request and the source file its body must equal.
#[derive(Debug, Clone)]
pub struct Probe {
    /// URL path, e.g. `/big.bin`.
    pub path: String,
    /// Inclusive byte range to ask for; `None` asks for the whole object (expects 200).
    pub range: Option<(u64, u64)>,
    /// The source file the object was made from.
    pub file: PathBuf,
    /// Its size.
    pub file_size: u64,
}

impl Probe {
    /// `GET /path bytes=A-B`, for messages.
    pub fn describe(&self) -> String {
        match self.range {
            Some((a, b)) => format!("GET {} bytes={a}-{b}", self.path),
            None => format!("GET {}", self.path),
        }
    }
}

/// Run every probe against `addr`. Ok: body bytes compared. Err: what was wrong, for the report.
pub fn run(addr: SocketAddr, probes: &[Probe]) -> Result<u64, String> {
    let mut conn: Option<Conn> = None;
    let mut compared = 0;
    for p in probes {
        let c = match conn.take() {
            Some(c) => c,
            None => Conn::open(addr).map_err(|e| format!("connect {addr}: {e}"))?,
        };
        let (c, keep, n) = one(c, p).map_err(|e| format!("{}: {e}", p.describe()))?;
        compared += n;
        if keep {
            conn = Some(c);
        }
    }
    Ok(compared)
}

/// The probes over TLS with `curl` (one process, `--next` between requests, so it reuses one connection):
/// HTTP/2 when `http2`, else HTTP/1.1. Checks status, HTTP version, `Content-Range`, size and every body byte.
/// `scratch` is a directory for the bodies, emptied again afterwards.
pub fn run_curl(
    curl: &Path,
    addr: SocketAddr,
    cacert: &Path,
    http2: bool,
    probes: &[Probe],
    scratch: &Path,
) -> Result<u64, String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("create {}: {e}", scratch.display()))?;
    let (flag, want_version) = if http2 {
        ("--http2", "2")
    } else {
        ("--http1.1", "1.1")
    };
    let mut cmd = Command::new(curl);
    let bodies: Vec<PathBuf> = (0..probes.len())
        .map(|i| scratch.join(format!("body{i}")))
        .collect();
    for (i, (p, body)) in probes.iter().zip(&bodies).enumerate() {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args(["-s", flag, "--connect-timeout", "10", "--max-time", "60"])
            .arg("--cacert")
            .arg(cacert)
            .arg("-o")
            .arg(body)
            .args([
                "-w",
                "%{http_code} %{http_version} %{size_download} [%header{content-range}]\\n",
            ]);
        if let Some((a, b)) = p.range {
            cmd.arg("-r").arg(format!("{a}-{b}"));
        }
        cmd.arg(format!("https://{addr}{}", p.path));
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {}: {e}", curl.display()))?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let result = judge_curl(&report, want_version, probes, &bodies);
    for b in &bodies {
        let _ = std::fs::remove_file(b);
    }
    result.map_err(|e| {
        if out.status.success() {
            e
        } else {
            format!(
                "{e} (curl {}: {})",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
        }
    })
}

/// Compare curl's `-w` lines and the bodies it saved with what each probe expects.
fn judge_curl(
    report: &str,
    want_version: &str,
    probes: &[Probe],
    bodies: &[PathBuf],
) -> Result<u64, String> {
    let lines: Vec<&str> = report.lines().collect();
    let mut compared = 0;
    for (i, p) in probes.iter().enumerate() {
        let what = p.describe();
        let line = lines
            .get(i)
            .ok_or_else(|| format!("{what}: curl reported nothing"))?;
        let mut f = line.splitn(4, ' ');
        let (code, version, size, range) = (
            f.next().unwrap_or_default(),
            f.next().unwrap_or_default(),
            f.next().unwrap_or_default(),
            f.next().unwrap_or_default(),
        );
        let (want_code, first, len) = match p.range {
            Some((a, b)) => ("206", a, b - a + 1),
            None => ("200", 0, p.file_size),
        };
        if code != want_code {
            return Err(format!("{what}: status {code} (expected {want_code})"));
        }
        if version != want_version {
            return Err(format!(
                "{what}: spoke HTTP/{version} (expected HTTP/{want_version})"
            ));
        }
        if let Some((a, b)) = p.range {
            let want = format!("[bytes {a}-{b}/{}]", p.file_size);
            if range.trim() != want {
                return Err(format!("{what}: Content-Range {range} (expected {want})"));
            }
        }
        if size.parse::<u64>().ok() != Some(len) {
            return Err(format!("{what}: {size} body bytes (expected {len})"));
        }
        let got = std::fs::read(&bodies[i]).map_err(|e| format!("{what}: read body: {e}"))?;
        let file = File::open(&p.file).map_err(|e| format!("open {}: {e}", p.file.display()))?;
        let mut want = vec![0u8; got.len()];
        file.read_exact_at(&mut want, first)
            .map_err(|e| format!("read {}: {e}", p.file.display()))?;
        if got.len() as u64 != len || got != want {
            let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!(
                "{what}: body differs from {} at body byte {at}",
                p.file.display()
            ));
        }
        compared += len;
    }
    Ok(compared)
}

struct Conn {
    s: TcpStream,
    /// Bytes read from the socket and not yet consumed.
    pending: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        s.set_read_timeout(Some(TIMEOUT))?;
        s.set_write_timeout(Some(TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            s,
            pending: Vec::new(),
        })
    }
}

/// Parsed response head.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request/response; returns the connection, whether it may be reused, and body bytes compared.
fn one(mut c: Conn, p: &Probe) -> Result<(Conn, bool, u64), String> {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: eddy-bench-check\r\n",
        p.path
    );
    if let Some((a, b)) = p.range {
        req.push_str(&format!("Range: bytes={a}-{b}\r\n"));
    }
    req.push_str("\r\n");
    c.s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;

    let head = read_head(&mut c)?;
    let (want_status, first, len) = match p.range {
        Some((a, b)) => (206, a, b - a + 1),
        None => (200, 0, p.file_size),
    };
    if head.status != want_status {
        return Err(format!("status {} (expected {want_status})", head.status));
    }
    let cl: u64 = head
        .get("content-length")
        .ok_or("no Content-Length")?
        .trim()
        .parse()
        .map_err(|_| "bad Content-Length")?;
    if cl != len {
        return Err(format!("Content-Length {cl} (expected {len})"));
    }
    if let Some((a, b)) = p.range {
        let want = format!("bytes {a}-{b}/{}", p.file_size);
        match head.get("content-range") {
            Some(v) if v.trim() == want => {}
            other => return Err(format!("Content-Range {other:?} (expected {want:?})")),
        }
    }
    let keep = !head
        .get("connection")
        .is_some_and(|v| v.to_ascii_lowercase().contains("close"));

    compare_body(&mut c, p, first, len)?;
    Ok((c, keep, len))
}

fn read_head(c: &mut Conn) -> Result<Head, String> {
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = c.pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if c.pending.len() > MAX_HEAD {
            return Err(format!("response head longer than {MAX_HEAD} bytes"));
        }
        let n = c.s.read(&mut buf).map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        c.pending.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8_lossy(&c.pending[..end]).into_owned();
    c.pending.drain(..end);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Ok(Head { status, headers })
}

/// Read exactly `len` body bytes and compare them with the file from `first` on.
fn compare_body(c: &mut Conn, p: &Probe, first: u64, len: u64) -> Result<(), String> {
    let file = File::open(&p.file).map_err(|e| format!("open {}: {e}", p.file.display()))?;
    let mut got = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut done: u64 = 0;
    while done < len {
        let room = (len - done).min(CHUNK as u64) as usize;
        let n = if !c.pending.is_empty() {
            let n = room.min(c.pending.len());
            got[..n].copy_from_slice(&c.pending[..n]);
            c.pending.drain(..n);
            n
        } else {
            let n =
                c.s.read(&mut got[..room])
                    .map_err(|e| format!("read body at byte {done} of {len}: {e}"))?;
            if n == 0 {
                return Err(format!(
                    "connection closed after {done} of {len} body bytes"
                ));
            }
            n
        };
        file.read_exact_at(&mut want[..n], first + done)
            .map_err(|e| format!("read {}: {e}", p.file.display()))?;
        if got[..n] != want[..n] {
            let i = got[..n]
                .iter()
                .zip(&want[..n])
                .position(|(a, b)| a != b)
                .unwrap_or(0) as u64;
            return Err(format!(
                "body differs from {} at body byte {} (file offset {})",
                p.file.display(),
                done + i,
                first + done + i
            ));
        }
        done += n as u64;
    }
    if !c.pending.is_empty() {
        return Err(format!("{} bytes after the body", c.pending.len()));
    }
    Ok(())
}
