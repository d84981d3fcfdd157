//! The fill's progress: counters the fill bumps and everyone else reads (the
//! admin API, `/metrics`, `eddy fill status`).
//!
//! Owns: the counters (relaxed atomics; the fill is the only writer of most)
//! and the snapshot into the wire shape [`FillStatus`]. It must never block a
//! reader for long: the one lock guards only small fields.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use eddy_proto::report::FillStatus;

/// The kinds of error the fill counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Connect, reset, timeout, or a truncated body.
    Network,
    /// A source answered a status other than 200/206.
    Status,
    /// The bytes did not hash to the manifest's digest.
    Corrupt,
    /// A disk read or write failed.
    Io,
    /// A disk ran out of room.
    DiskFull,
    /// The manifest could not be fetched or was refused.
    Manifest,
    /// Every source and retry failed for an object in a run.
    Exhausted,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Network,
        ErrorKind::Status,
        ErrorKind::Corrupt,
        ErrorKind::Io,
        ErrorKind::DiskFull,
        ErrorKind::Manifest,
        ErrorKind::Exhausted,
    ];

    /// The fixed label.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Network => "network",
            ErrorKind::Status => "status",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Io => "io",
            ErrorKind::DiskFull => "disk_full",
            ErrorKind::Manifest => "manifest",
            ErrorKind::Exhausted => "exhausted",
        }
    }
}

/// The fill's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Waiting,
    Filling,
}

#[derive(Debug, Default)]
struct Small {
    state: Option<State>,
    generation: Option<u64>,
    last_refusal: Option<String>,
    refusals: BTreeMap<&'static str, u64>,
    run_started: Option<Instant>,
    run_bytes_at_start: u64,
    last_finished_at: Option<u64>,
    last_rate: u64,
}

/// Shared progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub runs: AtomicU64,
    pub objects_planned: AtomicU64,
    pub objects_done: AtomicU64,
    pub bytes_planned: AtomicU64,
    pub bytes_done: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub objects_evicted: AtomicU64,
    pub objects_skipped: AtomicU64,
    pub installs: AtomicU64,
    errors: [AtomicU64; 7],
    small: Mutex<Small>,
}

impl Progress {
    pub fn error(&self, kind: ErrorKind) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize].load(Relaxed)
    }

    fn small(&self) -> std::sync::MutexGuard<'_, Small> {
        self.small.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_state(&self, s: State) {
        self.small().state = Some(s);
    }

    pub fn state(&self) -> Option<State> {
        self.small().state
    }

    pub fn set_generation(&self, g: u64) {
        self.small().generation = Some(g);
    }

    /// The generation of the manifest held, if any.
    pub fn generation(&self) -> Option<u64> {
        self.small().generation
    }

    /// Records a refused manifest.
    pub fn refused(&self, label: &'static str, why: String) {
        let mut s = self.small();
        *s.refusals.entry(label).or_default() += 1;
        s.last_refusal = Some(why);
    }

    /// Refused manifests by reason label.
    pub fn refusals(&self) -> BTreeMap<&'static str, u64> {
        self.small().refusals.clone()
    }

    /// A run starts with this plan.
    pub fn run_started(&self, objects: u64, bytes: u64, skipped: u64) {
        self.runs.fetch_add(1, Relaxed);
        self.objects_planned.store(objects, Relaxed);
        self.bytes_planned.store(bytes, Relaxed);
        self.objects_done.store(0, Relaxed);
        self.bytes_done.store(0, Relaxed);
        self.objects_skipped.store(skipped, Relaxed);
        let mut s = self.small();
        s.state = Some(State::Filling);
        s.run_started = Some(Instant::now());
        s.run_bytes_at_start = self.bytes_downloaded.load(Relaxed);
    }

    /// The run ended at `unix_now`.
    pub fn run_finished(&self, unix_now: u64) {
        let rate = self.rate();
        let mut s = self.small();
        s.last_rate = rate;
        s.run_started = None;
        s.last_finished_at = Some(unix_now);
    }

    fn rate(&self) -> u64 {
        let s = self.small();
        match s.run_started {
            Some(t) => {
                let secs = t.elapsed().as_secs_f64();
                let bytes = self
                    .bytes_downloaded
                    .load(Relaxed)
                    .saturating_sub(s.run_bytes_at_start);
                if secs > 0.0 {
                    (bytes as f64 / secs) as u64
                } else {
                    0
                }
            }
            None => s.last_rate,
        }
    }

    /// The wire shape.
    pub fn snapshot(&self) -> FillStatus {
        let rate = self.rate();
        let planned = self.bytes_planned.load(Relaxed);
        let done = self.bytes_done.load(Relaxed);
        let s = self.small();
        let state = match s.state {
            None => "stopped",
            Some(State::Idle) => "idle",
            Some(State::Waiting) => "waiting",
            Some(State::Filling) => "filling",
        };
        let eta = (s.state == Some(State::Filling) && rate > 0)
            .then(|| planned.saturating_sub(done) / rate);
        FillStatus {
            version: eddy_proto::manifest::VERSION.to_owned(),
            state: state.to_owned(),
            generation: s.generation,
            runs: self.runs.load(Relaxed),
            objects_planned: self.objects_planned.load(Relaxed),
            objects_done: self.objects_done.load(Relaxed),
            bytes_planned: planned,
            bytes_done: done,
            bytes_downloaded: self.bytes_downloaded.load(Relaxed),
            objects_installed: self.installs.load(Relaxed),
            objects_evicted: self.objects_evicted.load(Relaxed),
            objects_skipped: self.objects_skipped.load(Relaxed),
            rate_bytes_per_sec: rate,
            eta_secs: eta,
            errors: ErrorKind::ALL
                .iter()
                .map(|k| (k.label().to_owned(), self.errors(*k)))
                .collect(),
            last_refusal: s.last_refusal.clone(),
            last_finished_at: s.last_finished_at,
        }
    }
}
