//! The access log: one line per answered request, off by default.
//!
//! Owns: the sampling rule (every request, or one in N), the line's format
//! (a subset of the common log format plus the transport-independent facts:
//! time, peer, method, target, status, body bytes), the writer thread, and
//! its metric family (`eddy_access_log_lines_total`).
//! The serving path only formats a line and hands it over with a
//! non-blocking `try_send` into a bounded channel: when the writer falls
//! behind, the line is dropped and counted, never waited for. It must never
//! write to the file from a serving thread.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::SystemTime;

use prometheus::IntCounter;

use crate::metrics::{MetricsError, Registry};

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 16_384;

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Every request.
    Full,
    /// One request in N.
    OneIn(u64),
}

/// The access log's handle on the serving path.
#[derive(Debug)]
pub struct AccessLog {
    tx: SyncSender<String>,
    sampling: Sampling,
    seen: AtomicU64,
    /// Lines handed to the writer (`eddy_access_log_lines_total{result="written"}`).
    written: IntCounter,
    /// Lines dropped because the writer fell behind (`result="dropped"`).
    dropped: IntCounter,
}

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("cannot open the access log {path} (log.access_file): {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

impl AccessLog {
    /// Opens `path` for appending, starts its writer thread, and declares
    /// its family in `registry`.
    pub fn open(
        path: &Path,
        sampling: Sampling,
        registry: &Registry,
    ) -> Result<AccessLog, AccessLogError> {
        let lines = registry.counter_vec(
            "eddy_access_log_lines_total",
            "Access log lines, by result: written (handed to the writer) or dropped (the writer fell behind).",
            &["result"],
        )?;
        let err = |source| AccessLogError::Open {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let (tx, rx) = sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("eddy-access-log".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
                while let Ok(line) = rx.recv() {
                    let _ = out.write_all(line.as_bytes());
                    // Flush when the queue is empty: lines reach the file
                    // promptly without a write per line under load.
                    while let Ok(more) = rx.try_recv() {
                        let _ = out.write_all(more.as_bytes());
                    }
                    let _ = out.flush();
                }
            })
            .map_err(err)?;
        Ok(AccessLog {
            tx,
            sampling,
            seen: AtomicU64::new(0),
            written: lines.with_label_values(&["written"]),
            dropped: lines.with_label_values(&["dropped"]),
        })
    }

    /// Records one answered request, if the sampling picks it.
    pub fn record(
        &self,
        now: SystemTime,
        peer: IpAddr,
        method: &str,
        target: &[u8],
        status: u16,
        bytes: u64,
    ) {
        let n = self.seen.fetch_add(1, Relaxed);
        if let Sampling::OneIn(k) = self.sampling {
            if !n.is_multiple_of(k.max(1)) {
                return;
            }
        }
        let line = line(
            now,
            peer,
            method,
            &String::from_utf8_lossy(target),
            status,
            bytes,
        );
        match self.tx.try_send(line) {
            Ok(()) => {
                self.written.inc();
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }

    /// Lines `(written, dropped)` since the start.
    pub fn lines(&self) -> (u64, u64) {
        (self.written.get(), self.dropped.get())
    }
}

/// `<rfc3339 time> <peer> "<method> <target>" <status> <bytes>\n`, with the
/// target's control characters and quotes escaped (it comes from a client).
pub fn line(
    now: SystemTime,
    peer: IpAddr,
    method: &str,
    target: &str,
    status: u16,
    bytes: u64,
) -> String {
    let mut t = String::with_capacity(target.len());
    for c in target.chars() {
        match c {
            '"' => t.push_str("\\\""),
            '\\' => t.push_str("\\\\"),
            c if c.is_control() => t.push_str(&format!("\\x{:02x}", c as u32)),
            c => t.push(c),
        }
    }
    let m: String = method
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(16)
        .collect();
    format!(
        "{} {peer} \"{m} {t}\" {status} {bytes}\n",
        httpdate::fmt_http_date(now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_escapes_what_the_client_sent() {
        let l = line(
            SystemTime::UNIX_EPOCH,
            "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            "GET",
            "/a\"b\n",
            200,
            5,
        );
        assert_eq!(
            l,
            "Thu, 01 Jan 1970 00:00:00 GMT 192.0.2.1 \"GET /a\\\"b\\x0a\" 200 5\n"
        );
    }

    #[test]
    fn one_in_n_samples_and_full_drops_are_counted() -> Result<(), AccessLogError> {
        let dir = tempfile::tempdir().map_err(|source| AccessLogError::Open {
            path: "tmp".into(),
            source,
        })?;
        let registry = Registry::new(SystemTime::UNIX_EPOCH)?;
        let log = AccessLog::open(&dir.path().join("a.log"), Sampling::OneIn(10), &registry)?;
        for _ in 0..100 {
            log.record(
                SystemTime::now(),
                IpAddr::from([127, 0, 0, 1]),
                "GET",
                b"/x",
                200,
                1,
            );
        }
        let (written, dropped) = log.lines();
        assert_eq!(written + dropped, 10);
        let text = registry.render();
        let n = |result: &str| {
            crate::metrics::testing::value(
                &text,
                &format!("eddy_access_log_lines_total{{result=\"{result}\"}}"),
            )
        };
        assert_eq!(n("written"), Some(written.to_string()));
        assert_eq!(n("dropped"), Some(dropped.to_string()));
        Ok(())
    }
}
