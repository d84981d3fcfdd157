//! The fill's driver: it runs on a thread of its own (never on a serving
//! thread), fetches the signed manifest on a schedule, checks it, and inside
//! the window (or when told `fill now`) plans and carries out a fill.
//!
//! Owns: the loop (poll, kick, stop), keeping the accepted manifest durable
//! so that the generation never goes back across restarts, several
//! downloads at once, making room by evicting dropped objects on a disk just
//! before an install needs it and evicting the rest at the end, stopping a
//! disk that is full (the server goes on), and the progress counters. A
//! fill is convergent: each run plans from what the store holds now, so a
//! run cut short by a crash, the window's end or a fault is finished by the
//! next. It must never install what the downloader did not verify, and
//! never act on a manifest that [`eddy_proto::manifest::check`] refused.

use std::collections::{HashSet, VecDeque};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_proto::manifest::{self, Manifest};
use eddy_proto::wire::VerifyKey;

use crate::client::Client;
use crate::download::{Downloader, FetchError, Outcome, Retry};
use crate::plan::{self, Fetch};
use crate::progress::{ErrorKind, Progress, State};
use crate::rate::TokenBucket;
use crate::target::Target;
use crate::window::Window;

/// Worker threads of the fill's runtime.
const FILL_WORKERS: usize = 2;

/// The state file holding the last accepted signed manifest.
pub const MANIFEST_STATE: &str = "manifest.signed";

/// How a fill runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the manifest is fetched (`GET`).
    pub manifest_url: String,
    /// This appliance's id, as manifests name it.
    pub appliance: String,
    /// The control plane's public keys (several during a rotation).
    pub keys: Vec<VerifyKey>,
    pub window: Window,
    /// How often the manifest is fetched.
    pub poll: Duration,
    /// Downloads at once.
    pub parallel: usize,
    /// The appliance's fill rate cap in bits per second (0 = none).
    pub rate_bits_per_sec: u64,
    /// Bytes kept free on every disk.
    pub reserve_bytes: u64,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub retry: Retry,
    /// The manifest may come over plain http (tests, the demo).
    pub insecure_plain_http: bool,
    /// The largest manifest read.
    pub max_manifest_bytes: usize,
    /// Each download's socket receive buffer; `None` sizes it from the rate
    /// cap ([`recv_buffer`]).
    pub recv_buffer: Option<u32>,
}

/// The clocks the driver reads, injected.
pub struct Clocks {
    /// Unix seconds now.
    pub unix_now: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Minutes after local midnight now.
    pub local_minute: Arc<dyn Fn() -> u32 + Send + Sync>,
}

/// The running fill: its progress and its controls.
pub struct Handle {
    pub progress: Arc<Progress>,
    /// The shared rate cap, so that a new cap applies to downloads at once.
    bucket: Arc<Mutex<TokenBucket>>,
    /// New settings, taken by the driver before its next pass.
    pending: Arc<Mutex<Option<Settings>>>,
    kick: Arc<tokio::sync::Notify>,
    forced: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// Fetches the manifest now and fills even outside the window.
    pub fn fill_now(&self) {
        self.forced.store(true, Ordering::SeqCst);
        self.kick.notify_one();
    }

    /// Changes the settings of a running fill (a configuration reload). The
    /// rate cap applies to the downloads at once; the rest (manifest URL,
    /// keys, window, poll interval, parallel downloads, reserve, plain http)
    /// before the next pass, which starts now unless a run is in progress
    /// (that run finishes under its window). The HTTP client's timeouts,
    /// receive buffers, retries and the appliance id stay as they started.
    pub fn reconfigure(&self, settings: Settings) {
        {
            let mut bucket = match self.bucket.lock() {
                Ok(b) => b,
                Err(poisoned) => poisoned.into_inner(),
            };
            bucket.set_rate(
                settings.rate_bits_per_sec,
                burst(settings.rate_bits_per_sec),
            );
        }
        let mut pending = match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        *pending = Some(settings);
        drop(pending);
        self.kick.notify_one();
    }

    /// Asks the fill to stop: downloads stop at their next chunk and keep
    /// their parts. Does not wait.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.kick.notify_one();
    }

    /// Stops the fill and waits for its thread to end.
    pub fn stop_and_wait(mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why the fill could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the fill thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Starts the fill on its own thread.
pub fn start(
    settings: Settings,
    client: Client,
    target: Arc<dyn Target>,
    clocks: Clocks,
) -> Result<Handle, StartError> {
    let progress = Arc::new(Progress::default());
    let bucket = Arc::new(Mutex::new(TokenBucket::new(
        settings.rate_bits_per_sec,
        burst(settings.rate_bits_per_sec),
        Duration::ZERO,
    )));
    let pending = Arc::new(Mutex::new(None));
    let kick = Arc::new(tokio::sync::Notify::new());
    let forced = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // Until the first pass decides, the fill counts as busy: a manifest
    // saved before a restart may have work left.
    progress.set_state(State::Filling);
    let driver = Driver {
        settings,
        bucket: bucket.clone(),
        pending: pending.clone(),
        client,
        target,
        clocks,
        progress: progress.clone(),
        kick: kick.clone(),
        forced: forced.clone(),
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("eddy-fill".into())
        .spawn(move || {
            // Two workers: an uncapped fill is bound by one core's receive,
            // hash and write; under a cap it uses a fraction of one.
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(FILL_WORKERS)
                .thread_name("eddy-fill")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "fill: cannot build its runtime; no fill will run");
                    return;
                }
            };
            rt.block_on(driver.run());
        })
        .map_err(StartError::Thread)?;
    Ok(Handle {
        progress,
        bucket,
        pending,
        kick,
        forced,
        stop,
        thread: Some(thread),
    })
}

/// The round trip a fill source is assumed to be within, for sizing
/// receive buffers: a continent away.
const SOURCE_RTT: Duration = Duration::from_millis(100);

/// Each download's receive buffer under a rate cap: its share of the rate
/// over [`SOURCE_RTT`], within 64 KiB..8 MiB; `None` (the kernel's
/// autotuning) without a cap.
pub fn recv_buffer(rate_bits_per_sec: u64, parallel: usize) -> Option<u32> {
    if rate_bits_per_sec == 0 {
        return None;
    }
    let share = rate_bits_per_sec / 8 / parallel.max(1) as u64;
    let bytes = (share as f64 * SOURCE_RTT.as_secs_f64()) as u64;
    Some(bytes.clamp(64 << 10, 8 << 20) as u32)
}

/// A burst of 50 ms at the rate (at least 256 KiB).
fn burst(rate_bits_per_sec: u64) -> u64 {
    (rate_bits_per_sec / 8 / 20).max(256 * 1024)
}

struct Driver {
    settings: Settings,
    bucket: Arc<Mutex<TokenBucket>>,
    pending: Arc<Mutex<Option<Settings>>>,
    client: Client,
    target: Arc<dyn Target>,
    clocks: Clocks,
    progress: Arc<Progress>,
    kick: Arc<tokio::sync::Notify>,
    forced: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Driver {
    async fn run(mut self) {
        let mut held = self.load_saved();
        if let Some(m) = &held {
            self.progress.set_generation(m.generation);
        }
        let window = self
            .settings
            .recv_buffer
            .or_else(|| recv_buffer(self.settings.rate_bits_per_sec, self.settings.parallel));
        let downloader = Arc::new(Downloader {
            client: self.client.with_recv_buffer(window),
            write_batch: crate::download::write_batch(window),
            bucket: self.bucket.clone(),
            epoch: Instant::now(),
            retry: self.settings.retry,
            progress: self.progress.clone(),
        });
        while !self.stop.load(Ordering::SeqCst) {
            self.take_pending();
            match self
                .fetch_manifest(held.as_ref().map(|m| m.generation))
                .await
            {
                Ok(m) => {
                    if held.as_ref().is_none_or(|h| h.generation != m.generation) {
                        tracing::info!(
                            generation = m.generation,
                            objects = m.objects.len(),
                            "fill: manifest accepted"
                        );
                    }
                    self.progress.set_generation(m.generation);
                    held = Some(m);
                }
                Err(why) => tracing::warn!(error = %why, "fill: no new manifest"),
            }
            let forced = self.forced.swap(false, Ordering::SeqCst);
            if let Some(m) = held
                .as_ref()
                .filter(|m| (self.clocks.unix_now)() < m.expires_at)
            {
                let window = self
                    .settings
                    .window
                    .starting_at(m.fill_start.as_deref().and_then(manifest::parse_hhmm));
                if forced || window.is_open((self.clocks.local_minute)()) {
                    self.fill(m, window, forced, &downloader).await;
                } else {
                    let p = self.plan(m);
                    let work = !(p.fetch.is_empty() && p.evict.is_empty() && p.discard.is_empty());
                    self.progress
                        .set_state(if work { State::Waiting } else { State::Idle });
                }
            } else {
                self.progress.set_state(State::Idle);
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let _ = tokio::time::timeout(self.settings.poll, self.kick.notified()).await;
        }
    }

    /// Settings given by [`Handle::reconfigure`] since the last pass.
    fn take_pending(&mut self) {
        let taken = match self.pending.lock() {
            Ok(mut p) => p.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(new) = taken {
            tracing::info!(manifest = %new.manifest_url, window = %new.window, "fill: new settings");
            self.settings = new;
        }
    }

    /// The highest-generation saved manifest whose signature still verifies.
    fn load_saved(&self) -> Option<Manifest> {
        self.target
            .load_state(MANIFEST_STATE)
            .into_iter()
            .filter_map(|bytes| {
                let m = manifest::check_saved(&bytes, &self.settings.keys, &self.settings.appliance);
                match m {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::warn!(reason = e.label(), error = %e, "fill: ignoring a saved manifest");
                        None
                    }
                }
            })
            .max_by_key(|m| m.generation)
    }

    async fn fetch_manifest(&self, held: Option<u64>) -> Result<Manifest, String> {
        let client = self.client.with_plain(self.settings.insecure_plain_http);
        let fail = |e: String| {
            self.progress.error(ErrorKind::Manifest);
            e
        };
        let mut resp = client
            .get(
                &self.settings.manifest_url,
                &[("accept", "application/vnd.eddy.manifest+json")],
            )
            .await
            .map_err(|e| fail(format!("{}: {e}", self.settings.manifest_url)))?;
        if resp.status != 200 {
            return Err(fail(format!(
                "{}: status {}",
                self.settings.manifest_url, resp.status
            )));
        }
        let bytes = resp
            .collect(self.settings.max_manifest_bytes)
            .await
            .map_err(|e| fail(format!("{}: {e}", self.settings.manifest_url)))?;
        let checked = manifest::check(
            &bytes,
            &self.settings.keys,
            &manifest::Expect {
                appliance: &self.settings.appliance,
                held_generation: held,
                now: (self.clocks.unix_now)(),
            },
        );
        match checked {
            Ok(m) => {
                if held != Some(m.generation) {
                    if let Err(e) = self.target.save_state(MANIFEST_STATE, &bytes) {
                        // Without it a restart could accept an older one.
                        return Err(fail(format!("cannot save the manifest: {e}")));
                    }
                }
                Ok(m)
            }
            Err(r) => {
                tracing::warn!(reason = r.label(), error = %r, "fill: manifest refused; nothing changes");
                self.progress.refused(r.label(), r.to_string());
                Err(fail(format!("refused: {r}")))
            }
        }
    }

    fn plan(&self, m: &Manifest) -> plan::Plan {
        plan::plan(
            &m.objects,
            &self.target.inventory(),
            &self.target.disks(),
            &self.target.staged(),
            self.settings.reserve_bytes,
        )
    }

    async fn fill(&self, m: &Manifest, window: Window, forced: bool, downloader: &Arc<Downloader>) {
        let p = self.plan(m);
        if p.fetch.is_empty() && p.evict.is_empty() && p.discard.is_empty() {
            self.progress.set_state(State::Idle);
            return;
        }
        self.progress.run_started(
            p.fetch.len() as u64,
            p.bytes_to_fetch(),
            p.skipped.len() as u64,
        );
        for s in &p.skipped {
            tracing::warn!(key = %s.0.key, size = s.0.size, rank = s.0.rank, reason = ?s.1, "fill: skipped for lack of room");
        }
        tracing::info!(
            generation = m.generation,
            fetch = p.fetch.len(),
            bytes = p.bytes_to_fetch(),
            keep = p.keep.len(),
            evict = p.evict.len(),
            skipped = p.skipped.len(),
            "fill: run starts"
        );
        for s in &p.discard {
            if let Err(e) = self.target.remove_part(s.disk, &s.digest) {
                tracing::warn!(disk = s.disk, error = %e, "fill: cannot remove a stray part");
            }
        }
        let mut evictions: Vec<VecDeque<plan::Held>> =
            vec![VecDeque::new(); self.target.disks().len()];
        for h in p.evict {
            if let Some(q) = evictions.get_mut(h.disk) {
                q.push_back(h);
            }
        }
        let go_on: Arc<dyn Fn() -> bool + Send + Sync> = {
            let stop = self.stop.clone();
            let minute = self.clocks.local_minute.clone();
            Arc::new(move || !stop.load(Ordering::SeqCst) && (forced || window.is_open(minute())))
        };
        let mut full: HashSet<usize> = HashSet::new();
        let mut running: HashSet<eddy_proto::Digest> = HashSet::new();
        let mut tasks: tokio::task::JoinSet<(Fetch, Result<Outcome, FetchError>)> =
            tokio::task::JoinSet::new();
        let mut queue: VecDeque<Fetch> = p.fetch.into();
        let parallel = self.settings.parallel.max(1);
        loop {
            // Start what may start, in priority order.
            let mut deferred = Vec::new();
            while tasks.len() < parallel {
                let Some(f) = queue.pop_front() else { break };
                if full.contains(&f.disk) {
                    self.progress
                        .objects_skipped
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if running.contains(&f.entry.sha256) {
                    // One part per digest: the same bytes under another key wait.
                    deferred.push(f);
                    continue;
                }
                if !go_on() {
                    queue.clear();
                    break;
                }
                self.make_room(f.disk, f.entry.size - f.staged, &mut evictions);
                let (d, t, g) = (downloader.clone(), self.target.clone(), go_on.clone());
                running.insert(f.entry.sha256);
                tasks.spawn(async move {
                    let r = d.fetch(&t, &f, &*g).await;
                    (f, r)
                });
            }
            for f in deferred.into_iter().rev() {
                queue.push_front(f);
            }
            let Some(ended) = tasks.join_next().await else {
                break;
            };
            match ended {
                Ok((f, result)) => {
                    running.remove(&f.entry.sha256);
                    match result {
                        Ok(Outcome::Installed) => {
                            tracing::info!(key = %f.entry.key, disk = f.disk, size = f.entry.size, "fill: installed")
                        }
                        Ok(Outcome::Stopped) => {
                            tracing::info!(key = %f.entry.key, "fill: stopped; the part is kept for the next run")
                        }
                        Err(FetchError::DiskFull { disk }) => {
                            tracing::warn!(key = %f.entry.key, disk, "fill: disk full; no more fetches to it in this run (serving goes on)");
                            full.insert(disk);
                        }
                        Err(e) => {
                            tracing::warn!(key = %f.entry.key, error = %e, "fill: object not filled in this run")
                        }
                    }
                }
                Err(join) => tracing::error!(error = %join, "fill: a download task failed"),
            }
        }
        // Dropped objects go once the installs are done.
        for q in &mut evictions {
            while let Some(h) = q.pop_front() {
                self.evict(&h);
            }
        }
        self.progress.run_finished((self.clocks.unix_now)());
        let left = self.plan(m);
        self.progress.set_state(if left.fetch.is_empty() {
            State::Idle
        } else {
            State::Waiting
        });
        tracing::info!(
            generation = m.generation,
            left = left.fetch.len(),
            "fill: run ends"
        );
    }

    /// Evicts dropped objects on `disk` until `need` bytes fit above the reserve.
    fn make_room(&self, disk: usize, need: u64, evictions: &mut [VecDeque<plan::Held>]) {
        let Some(q) = evictions.get_mut(disk) else {
            return;
        };
        while !q.is_empty() {
            let free = self.target.disks().get(disk).map_or(0, |d| d.free);
            if free >= need.saturating_add(self.settings.reserve_bytes) {
                break;
            }
            if let Some(h) = q.pop_front() {
                self.evict(&h);
            }
        }
    }

    fn evict(&self, h: &plan::Held) {
        match self.target.evict(&h.key) {
            Ok(()) => {
                self.progress
                    .objects_evicted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(key = %h.key, disk = h.disk, "fill: evicted");
            }
            Err(e) => {
                self.progress.error(ErrorKind::Io);
                tracing::warn!(key = %h.key, error = %e, "fill: cannot evict");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_buffers_follow_the_rate_share() {
        assert_eq!(recv_buffer(0, 4), None);
        // 1.2 Gbit/s over 4 downloads: 37.5 MB/s each, 3.75 MB in 100 ms.
        assert_eq!(recv_buffer(1_200_000_000, 4), Some(3_750_000));
        assert_eq!(recv_buffer(1_000_000, 4), Some(64 << 10));
        assert_eq!(recv_buffer(100_000_000_000, 1), Some(8 << 20));
    }
}
