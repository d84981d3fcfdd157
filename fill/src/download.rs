//! Downloading one object: from its sources in order, resumed from the
//! bytes already staged, rate-capped, hashed as the bytes arrive, and handed
//! to the store's install only when the digest matches the manifest's.
//!
//! Owns: the `Range: bytes=N-` / `If-Range` resume rule (a 206 must continue
//! exactly where the part ends; a 200 restarts the part), the streaming
//! SHA-256 (no second read, except re-hashing a part left by an earlier
//! process), retries with exponential backoff and jitter, moving to the next
//! source on any failure, and the error kinds counted in [`Progress`]. It must
//! never install bytes it has not verified, never write anywhere but the
//! part the store gave it, and never keep a part whose bytes are known bad.

use std::fs::File;
use std::io::{self, ErrorKind as IoKind};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::client::{Client, ClientError};
use crate::plan::Fetch;
use crate::progress::{ErrorKind, Progress};
use crate::rate::TokenBucket;
use crate::target::Target;

/// The read buffer for re-hashing a part left by an earlier process.
const REHASH_CHUNK: usize = 1 << 20;

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The first backoff; each round doubles it, up to `max`.
    pub base: Duration,
    pub max: Duration,
    /// Rounds over all sources before the object is given up for this run.
    pub rounds: u32,
}

impl Retry {
    /// The wait after failed round `round` (0-based): exponential, capped,
    /// with full jitter in its upper half so that appliances that failed
    /// together do not retry together.
    pub fn backoff(&self, round: u32, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << round.min(20))
            .min(self.max);
        exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// What a fetch ended with, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    /// Stopped on request (window closed, shutdown); the part is kept.
    Stopped,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("disk {disk} is full")]
    DiskFull { disk: usize },
    #[error("disk {disk}: {source}")]
    Io {
        disk: usize,
        #[source]
        source: io::Error,
    },
    #[error("every source failed {rounds} times; last: {last}")]
    Exhausted { rounds: u32, last: String },
}

/// Why one attempt at one source failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("status {0}")]
    Status(u16),
    #[error("bad answer: {0}")]
    Protocol(String),
    #[error("the content does not match the manifest's SHA-256")]
    Corrupt,
    #[error("disk: {0}")]
    Disk(io::Error),
}

/// Shared by every download of a fill.
#[derive(Debug, Clone)]
pub struct Downloader {
    pub client: Client,
    pub bucket: Arc<Mutex<TokenBucket>>,
    /// The bucket's clock: time since this instant.
    pub epoch: Instant,
    pub retry: Retry,
    pub progress: Arc<Progress>,
    /// Bytes gathered before one write to the part (see [`write_batch`]).
    pub write_batch: usize,
}

/// The largest write batch: few system calls per MiB, little memory per download.
pub const MAX_WRITE_BATCH: usize = 256 << 10;

/// Bytes gathered before one write: no more than one receive window (what
/// a crash loses in the kernel anyway), at least 4 KiB, at most
/// [`MAX_WRITE_BATCH`] (when the kernel sizes the window).
pub fn write_batch(recv_buffer: Option<u32>) -> usize {
    recv_buffer.map_or(MAX_WRITE_BATCH, |b| {
        (b as usize).clamp(4 << 10, MAX_WRITE_BATCH)
    })
}

/// The part being written: its file, its length and the hash of its bytes.
struct Part {
    file: File,
    len: u64,
    hasher: Sha256,
    buf: Vec<u8>,
    /// The source's Last-Modified, kept on the installed object.
    modified: Option<SystemTime>,
}

impl Part {
    /// Writes out what is buffered.
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.len)?;
            self.len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.file.set_len(0)?;
        self.len = 0;
        self.hasher = Sha256::new();
        Ok(())
    }

    fn total(&self) -> u64 {
        self.len + self.buf.len() as u64
    }
}

fn disk_error(disk: usize, e: io::Error) -> FetchError {
    if e.kind() == IoKind::StorageFull {
        FetchError::DiskFull { disk }
    } else {
        FetchError::Io { disk, source: e }
    }
}

impl Downloader {
    /// Downloads, verifies and installs `f`. `go_on` is asked between
    /// chunks; when it says no, the part is kept and the fetch stops.
    pub async fn fetch(
        &self,
        target: &Arc<dyn Target>,
        f: &Fetch,
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<Outcome, FetchError> {
        let e = &f.entry;
        let disk = f.disk;
        let mut part = self
            .open_part(target, f)
            .map_err(|err| disk_error(disk, err))?;
        let mut last = String::from("no source was tried");
        for round in 0..self.retry.rounds.max(1) {
            for source in &e.sources {
                if !go_on() {
                    return Ok(Outcome::Stopped);
                }
                match self.attempt(target, f, source, &mut part, go_on).await {
                    Ok(done) => {
                        if !done {
                            return Ok(Outcome::Stopped);
                        }
                        return self
                            .install(target, f, &part)
                            .await
                            .map(|()| Outcome::Installed);
                    }
                    Err(AttemptError::Disk(err)) => {
                        let fe = disk_error(disk, err);
                        self.progress.error(match fe {
                            FetchError::DiskFull { .. } => ErrorKind::DiskFull,
                            _ => ErrorKind::Io,
                        });
                        return Err(fe);
                    }
                    Err(err) => {
                        let kind = match &err {
                            AttemptError::Status(_) => ErrorKind::Status,
                            AttemptError::Corrupt => ErrorKind::Corrupt,
                            _ => ErrorKind::Network,
                        };
                        self.progress.error(kind);
                        tracing::warn!(key = %e.key, %source, error = %err, kind = kind.label(), staged = part.len, "fill: attempt failed; trying the next source");
                        last = format!("{source}: {err}");
                        if matches!(err, AttemptError::Corrupt) {
                            // Known-bad bytes are never kept.
                            if let Err(io) = part.restart() {
                                return Err(disk_error(disk, io));
                            }
                        }
                    }
                }
            }
            if round + 1 < self.retry.rounds {
                tokio::time::sleep(self.retry.backoff(round, fastrand::f64())).await;
            }
        }
        self.progress.error(ErrorKind::Exhausted);
        Err(FetchError::Exhausted {
            rounds: self.retry.rounds,
            last,
        })
    }

    /// Opens the part and re-hashes what an earlier process staged.
    fn open_part(&self, target: &Arc<dyn Target>, f: &Fetch) -> io::Result<Part> {
        let file = target.open_part(f.disk, &f.entry.sha256)?;
        let mut len = file.metadata()?.len();
        if len > f.entry.size {
            file.set_len(0)?;
            len = 0;
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; REHASH_CHUNK];
        let mut at = 0u64;
        while at < len {
            let want = ((len - at) as usize).min(buf.len());
            let n = file.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        if at < len {
            file.set_len(at)?;
        }
        buf.clear();
        Ok(Part {
            file,
            len: at,
            hasher,
            buf,
            modified: None,
        })
    }

    /// One request to one source; Ok(true) when the part is complete and
    /// verified, Ok(false) when stopped on request.
    async fn attempt(
        &self,
        target: &Arc<dyn Target>,
        f: &Fetch,
        source: &str,
        part: &mut Part,
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<bool, AttemptError> {
        let size = f.entry.size;
        if part.len < size {
            let range = format!("bytes={}-", part.len);
            let validator = if part.len > 0 {
                target.part_validator(f.disk, &f.entry.sha256)
            } else {
                None
            };
            let mut extra: Vec<(&str, &str)> = Vec::new();
            if part.len > 0 {
                extra.push(("range", &range));
                if let Some(v) = validator.as_deref() {
                    extra.push(("if-range", v));
                }
            }
            let mut resp = self.client.get(source, &extra).await?;
            match resp.status {
                206 if part.len > 0 => {
                    let want = format!("bytes {}-{}/{}", part.len, size - 1, size);
                    let got = resp.header("content-range").unwrap_or("");
                    if got != want {
                        return Err(AttemptError::Protocol(format!(
                            "Content-Range {got:?}, expected {want:?}"
                        )));
                    }
                }
                200 => {
                    if part.len > 0 {
                        tracing::info!(key = %f.entry.key, %source, "fill: the source sent the whole object; restarting the part");
                        part.restart().map_err(AttemptError::Disk)?;
                    }
                    if let Some(v) = validator_of(&resp) {
                        target
                            .set_part_validator(f.disk, &f.entry.sha256, &v)
                            .map_err(AttemptError::Disk)?;
                    }
                }
                s => return Err(AttemptError::Status(s)),
            }
            if let Some(m) = resp
                .header("last-modified")
                .and_then(|v| httpdate::parse_http_date(v).ok())
            {
                part.modified = Some(m);
            }
            if let Some(len) = resp
                .header("content-length")
                .and_then(|v| v.parse::<u64>().ok())
            {
                if part.len + len != size {
                    return Err(AttemptError::Protocol(format!(
                        "{len} bytes from offset {} do not make {size}",
                        part.len
                    )));
                }
            }
            let result = self.stream(&mut resp, part, size, go_on).await;
            // Whatever arrived intact is kept for the next attempt.
            part.flush().map_err(AttemptError::Disk)?;
            if !result? {
                return Ok(false);
            }
        }
        let digest: [u8; 32] = part.hasher.clone().finalize().into();
        if digest != f.entry.sha256.0 {
            return Err(AttemptError::Corrupt);
        }
        Ok(true)
    }

    /// Streams the body into the part; Ok(false) when stopped on request.
    async fn stream(
        &self,
        resp: &mut crate::client::Response,
        part: &mut Part,
        size: u64,
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<bool, AttemptError> {
        while part.total() < size {
            if !go_on() {
                return Ok(false);
            }
            let Some(chunk) = resp.chunk().await? else {
                return Err(AttemptError::Protocol(format!(
                    "the body ended at {} of {size} bytes",
                    part.total()
                )));
            };
            if part.total() + chunk.len() as u64 > size {
                return Err(AttemptError::Protocol(
                    "the body is longer than the manifest's size".into(),
                ));
            }
            let wait = {
                let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                b.take(chunk.len() as u64, self.epoch.elapsed())
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            part.hasher.update(&chunk);
            part.buf.extend_from_slice(&chunk);
            self.progress
                .bytes_downloaded
                .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.progress
                .bytes_done
                .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if part.buf.len() >= self.write_batch {
                part.flush().map_err(AttemptError::Disk)?;
            }
        }
        Ok(true)
    }

    /// Installs off the fill's event loop: the fsyncs of a large object
    /// must not stall the other downloads.
    async fn install(
        &self,
        target: &Arc<dyn Target>,
        f: &Fetch,
        part: &Part,
    ) -> Result<(), FetchError> {
        let (t, disk, key, digest, modified) = (
            target.clone(),
            f.disk,
            f.entry.key.clone(),
            f.entry.sha256,
            part.modified,
        );
        let done = tokio::task::spawn_blocking(move || t.install(disk, &key, &digest, modified))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        done.map_err(|e| {
            self.progress.error(ErrorKind::Io);
            disk_error(f.disk, e)
        })?;
        self.progress
            .objects_done
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.progress
            .installs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// The validator to resume with: a strong ETag, else Last-Modified.
fn validator_of(resp: &crate::client::Response) -> Option<String> {
    match resp.header("etag") {
        Some(tag) if !tag.starts_with("W/") => Some(tag.to_owned()),
        _ => resp.header("last-modified").map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let r = Retry {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            rounds: 5,
        };
        assert_eq!(r.backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(r.backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(r.backoff(3, 1.0), Duration::from_millis(800));
        assert_eq!(r.backoff(10, 1.0), Duration::from_secs(2));
        assert_eq!(r.backoff(40, 0.5), Duration::from_millis(1500));
    }
}
