//! h2load, the HTTP/2 load generator of scenario (e): running it for one measured run and reading its report and
//! its per-request log.
//!
//! h2load cannot vary a header per request, and a range is a header. So a run is a sequence of one-second slices
//! (`h2load -D 1`), each with its own `Range: bytes=OFF-(OFF+LEN-1)`, OFF drawn uniformly (unaligned) from the
//! run's seed; nginx and eddy get the same offsets in the same round. Within a slice every stream asks for the same
//! range: the file is in the page cache either way, so that only changes which pages are copied, for both servers
//! alike. Each slice opens its connections anew (a TLS handshake per connection per second, also alike).
//! Latency percentiles come from `--log-file` (one line per request: start, status, duration in µs); h2load's
//! own report gives only min/mean/max.
//!
//! h2load offers TLS_AES_128_GCM_SHA256 first by default, and eddy's rustls follows the client's order, so h2load
//! is told to offer only [`CIPHER`] (`--tls13-ciphers`); a slice that reports another cipher, or no h2, fails the
//! run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::content::Xoshiro;
use crate::error::{Error, IoContext, Result};
use crate::measure::Outcome;
use crate::tls::CIPHER;

/// What h2load said about the connection, and the slices of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct H2Info {
    pub protocol: Option<String>,
    pub cipher: Option<String>,
    pub application_protocol: Option<String>,
    /// The ranges asked for, one per slice, in order.
    pub ranges: Vec<(u64, u64)>,
}

/// How to run h2load.
pub struct H2load<'a> {
    pub bin: &'a Path,
    pub threads: u32,
    pub connections: u32,
    pub duration_s: u32,
    pub dir: PathBuf,
}

/// One slice's figures, from h2load's report.
#[derive(Debug, Default, PartialEq)]
struct Report {
    duration_us: u64,
    succeeded: u64,
    failed: u64,
    errored: u64,
    timeout: u64,
    status_4xx_5xx: u64,
    bytes: u64,
    protocol: Option<String>,
    cipher: Option<String>,
    alpn: Option<String>,
}

impl H2load<'_> {
    /// Run `duration_s` one-second slices against `url` with ranges of `len` bytes of a `file_size`-byte object.
    pub fn run(&self, url: &str, file_size: u64, len: u64, seed: u64) -> Result<(Outcome, H2Info)> {
        let mut rng = Xoshiro::new(seed ^ 0x6832_6c6f_6164);
        let mut info = H2Info::default();
        let mut o = Outcome::default();
        let mut latencies: Vec<u64> = Vec::new();
        let log = self.dir.join("h2load.log");
        for _ in 0..self.duration_s.max(1) {
            let off = rng.below(file_size - len + 1);
            let range = (off, off + len - 1);
            info.ranges.push(range);
            let out = Command::new(self.bin)
                .arg("-t")
                .arg(self.threads.to_string())
                .arg("-c")
                .arg(self.connections.to_string())
                .args(["-m", "1", "-D", "1"])
                .arg(format!("--tls13-ciphers={CIPHER}"))
                .arg(format!("--log-file={}", log.display()))
                .arg("-H")
                .arg(format!("range: bytes={}-{}", range.0, range.1))
                .arg(url)
                .stdin(Stdio::null())
                .output()
                .ctx(|| format!("run {}", self.bin.display()))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let r = parse(&stdout).ok_or_else(|| {
                Error::tool(
                    "h2load",
                    format!(
                        "{url}: no report ({}): {} {}",
                        out.status,
                        stdout.trim(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                )
            })?;
            o.duration_us += r.duration_us;
            // h2load's "failed" holds the errored streams, the timed-out ones and the responses >= 400;
            // "succeeded" the responses < 400. Like wrk's, `requests` counts every response, errors included.
            o.requests += r.succeeded + r.status_4xx_5xx;
            o.bytes += r.bytes;
            o.errors.read += r.failed.saturating_sub(r.status_4xx_5xx + r.timeout);
            o.errors.timeout += r.timeout;
            o.errors.status += r.status_4xx_5xx;
            if r.cipher.as_deref() != Some(CIPHER) || r.alpn.as_deref() != Some("h2") {
                return Err(Error::tool(
                    "h2load",
                    format!(
                        "{url}: negotiated {} {} (expected {CIPHER} h2); the run does not compare",
                        r.cipher.as_deref().unwrap_or("no cipher"),
                        r.alpn.as_deref().unwrap_or("no ALPN")
                    ),
                ));
            }
            info.protocol = info.protocol.or(r.protocol);
            info.cipher = info.cipher.or(r.cipher);
            info.application_protocol = info.application_protocol.or(r.alpn);
            let text = fs::read_to_string(&log).at("read", &log)?;
            latencies.extend(parse_log(&text));
        }
        let _ = fs::remove_file(&log);
        o.set_latencies(latencies);
        Ok((o, info))
    }
}

/// Parse h2load's report (`finished in`, `requests:`, `status codes:`, `traffic:` and the TLS lines).
fn parse(stdout: &str) -> Option<Report> {
    let mut r = Report::default();
    let mut seen = 0;
    // "12 succeeded" -> 12 for the word after the number.
    let count = |line: &str, word: &str| -> Option<u64> {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let i = words.iter().position(|w| *w == word)?;
        words.get(i.checked_sub(1)?)?.parse().ok()
    };
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            let d = rest.split(',').next()?.trim();
            r.duration_us = parse_duration_us(d)?;
            seen += 1;
        } else if line.starts_with("requests:") {
            r.succeeded = count(line, "succeeded")?;
            r.failed = count(line, "failed")?;
            r.errored = count(line, "errored")?;
            r.timeout = count(line, "timeout")?;
            seen += 1;
        } else if line.starts_with("status codes:") {
            r.status_4xx_5xx = count(line, "4xx")? + count(line, "5xx")?;
            seen += 1;
        } else if let Some(rest) = line.strip_prefix("traffic:") {
            // traffic: 1.14GB (1227415182) total, ...
            let open = rest.find('(')?;
            let close = rest[open..].find(')')? + open;
            r.bytes = rest[open + 1..close].parse().ok()?;
            seen += 1;
        } else if let Some(p) = line.strip_prefix("TLS Protocol:") {
            r.protocol = Some(p.trim().to_string());
        } else if let Some(c) = line.strip_prefix("Cipher:") {
            r.cipher = Some(c.trim().to_string());
        } else if let Some(a) = line.strip_prefix("Application protocol:") {
            r.alpn = Some(a.trim().to_string());
        }
    }
    (seen == 4).then_some(r)
}

/// `2.00s`, `999.12ms`, `850us` -> microseconds.
fn parse_duration_us(s: &str) -> Option<u64> {
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    let v: f64 = num.trim().parse().ok()?;
    Some((v * mult).round() as u64)
}

/// Durations (µs) of the requests in an h2load `--log-file` (tab-separated: start µs, status, duration µs).
fn parse_log(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "starting benchmark...
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
Application protocol: h2

finished in 2.00s, 292.00 req/s, 585.28MB/s
requests: 584 total, 592 started, 584 done, 580 succeeded, 3 failed, 1 errored, 0 timeout
status codes: 585 2xx, 0 3xx, 2 4xx, 1 5xx
traffic: 1.14GB (1227415182) total, 80.55KB (82485) headers (space savings 37.61%), 1.14GB (1226653219) data
";

    #[test]
    fn reads_the_report() {
        let r = parse(REPORT).expect("parsed");
        assert_eq!(r.duration_us, 2_000_000);
        assert_eq!(r.succeeded, 580);
        assert_eq!(r.failed, 3);
        assert_eq!(r.errored, 1);
        assert_eq!(r.status_4xx_5xx, 3);
        assert_eq!(r.bytes, 1_227_415_182);
        assert_eq!(r.cipher.as_deref(), Some("TLS_AES_256_GCM_SHA384"));
        assert_eq!(r.alpn.as_deref(), Some("h2"));
        assert!(parse("finished in 1s").is_none());
        assert_eq!(parse_duration_us("999.5ms"), Some(999_500));
    }

    #[test]
    fn reads_the_log() {
        let v: Vec<u64> = parse_log("1\t206\t9800\n2\t206\t8097\nbad\n").collect();
        assert_eq!(v, vec![9800, 8097]);
    }
}
