//! One deadline per plain connection, kept by one sweeper.
//!
//! Owns: the table of the plain connections' deadlines (one word in a slot
//! that a connection holds from its accept to its close), the coarse clock
//! they are written in, and the sweeper that ends every connection whose
//! deadline has passed, and every idle one once a drain begins. It ends a
//! connection by shutting its socket down: the connection's pending read or
//! write then wakes with end-of-file or `EPIPE`, and its slot says that the
//! deadline, not the client, ended it.
//!
//! A connection arms its deadline with one atomic store, with no timer and
//! no clock read, so a request costs no timer-wheel insert or removal, and an
//! idle connection's future holds no timer. The price is precision: a
//! deadline is kept to within two ticks ([`DEADLINE_TICK`]), never early.
//!
//! It must never shut down a socket that is not its slot's: a slot is
//! emptied under the table's lock, which the sweeper holds while it sweeps,
//! before the socket is closed ([`Slot`] owns the socket for that reason).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::defaults::DEADLINE_TICK;

/// Slots per lazily allocated chunk: a table sized for the connection cap
/// costs memory only for the connections it has held at once.
const CHUNK: usize = 256;

/// A word with this bit waits for a first byte (between requests, or on a
/// fresh connection): a drain ends it at once.
const IDLE: u64 = 1 << 63;
/// The word of a slot the sweeper has ended.
const EXPIRED: u64 = u64::MAX;
/// Deadlines are milliseconds below this (the bits above are flags).
const MAX_AT: u64 = (1 << 62) - 1;

#[derive(Default)]
struct Entry {
    /// The socket's descriptor plus one; 0: the slot is free.
    fd: AtomicU64,
    /// 0: no deadline (the connection is working); else a deadline in
    /// table milliseconds, maybe with [`IDLE`]; or [`EXPIRED`].
    word: AtomicU64,
}

/// The deadlines of every plain connection (and refusal).
pub struct Deadlines {
    chunks: Box<[OnceLock<Box<[Entry]>>]>,
    /// Free slot numbers, lowest first, so that the slots in use stay
    /// packed at the front (and the chunks allocated are always the first
    /// ones: a sweep stops at the first chunk not allocated). Its lock is
    /// also what keeps a slot from being freed (and its descriptor reused)
    /// during a sweep.
    free: Mutex<BinaryHeap<Reverse<usize>>>,
    /// Milliseconds since `epoch`, as of the sweeper's last tick.
    now: AtomicU64,
    epoch: Instant,
}

/// A connection's place in the table. It owns the socket, so that the slot
/// is freed before the socket is closed whatever ends the connection.
pub struct Slot {
    table: Arc<Deadlines>,
    index: usize,
    stream: TcpStream,
}

impl Deadlines {
    /// A table for at most `capacity` connections at once.
    pub fn new(capacity: usize) -> Arc<Deadlines> {
        let chunks = capacity.div_ceil(CHUNK).max(1);
        Arc::new(Deadlines {
            chunks: (0..chunks).map(|_| OnceLock::new()).collect(),
            free: Mutex::new((0..capacity).map(Reverse).collect()),
            now: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    fn entry(&self, index: usize) -> Option<&Entry> {
        self.chunks
            .get(index / CHUNK)?
            .get()
            .and_then(|c| c.get(index % CHUNK))
    }

    /// Gives `stream` a slot; `None` (the socket is closed) when the table is
    /// full, which the connection caps rule out.
    pub fn enter(self: &Arc<Self>, stream: TcpStream) -> Option<Slot> {
        let fd = u64::try_from(stream.as_raw_fd()).ok()?;
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let Reverse(index) = free.pop()?;
        let chunk = self.chunks[index / CHUNK]
            .get_or_init(|| (0..CHUNK).map(|_| Entry::default()).collect());
        // Its word is 0: new, or cleared by `leave`.
        chunk[index % CHUNK].fd.store(fd + 1, Ordering::Release);
        drop(free);
        Some(Slot {
            table: self.clone(),
            index,
            stream,
        })
    }

    /// The table's time now, as of the last tick.
    fn now(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// Sets the clock to `now` (table milliseconds) and ends every connection
    /// past its deadline, and, when `draining`, every idle one. Returns how
    /// many it ended.
    fn sweep(&self, now: u64, draining: bool) -> usize {
        let now = now.min(MAX_AT);
        self.now.store(now, Ordering::Release);
        let _held = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let mut ended = 0;
        let allocated = self.chunks.iter().map_while(OnceLock::get);
        for entry in allocated.flat_map(|chunk| chunk.iter()) {
            let fd = entry.fd.load(Ordering::Acquire);
            let word = entry.word.load(Ordering::Acquire);
            if fd == 0 || !due(word, now, draining) {
                continue;
            }
            if entry
                .word
                .compare_exchange(word, EXPIRED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // The slot is held (its fd is set, and it cannot be freed
                // while we hold the lock): the descriptor is its socket's.
                if let Ok(fd) = i32::try_from(fd - 1) {
                    let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
                }
                ended += 1;
            }
        }
        ended
    }

    /// Sweeps every tick until dropped (abort the task), and at once when a
    /// drain begins.
    pub async fn run(self: Arc<Self>, mut drain: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(DEADLINE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = *drain.borrow();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = drain.changed(), if !draining => {
                    draining = changed.is_err() || *drain.borrow();
                }
            }
            let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(MAX_AT);
            let ended = self.sweep(now, draining);
            if ended > 0 {
                tracing::debug!(ended, draining, "connections ended by their deadline");
            }
        }
    }

    fn leave(&self, index: usize) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = self.entry(index) {
            entry.fd.store(0, Ordering::Release);
            entry.word.store(0, Ordering::Release);
        }
        free.push(Reverse(index));
    }
}

/// Whether a slot with `word` is to be ended at `now`.
fn due(word: u64, now: u64, draining: bool) -> bool {
    if word == 0 || word == EXPIRED {
        return false;
    }
    (word & !IDLE) <= now || (draining && word & IDLE != 0)
}

impl Slot {
    /// The connection's socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    fn entry(&self) -> &Entry {
        self.table
            .entry(self.index)
            .expect("a held slot's chunk exists")
    }

    /// The deadline `within` from now, rounded up to the next tick so that
    /// it is never early.
    pub fn after(&self, within: Duration) -> u64 {
        let ms = u64::try_from(within.as_millis()).unwrap_or(MAX_AT);
        let tick = u64::try_from(DEADLINE_TICK.as_millis()).unwrap_or(0);
        self.table
            .now()
            .saturating_add(ms)
            .saturating_add(tick)
            .min(MAX_AT)
    }

    /// Waits from now on are bounded by `at` (from [`Slot::after`]); `idle`:
    /// the connection waits for a first byte, and a drain ends it.
    pub fn arm(&self, at: u64, idle: bool) {
        // 0 would read as "no deadline".
        let at = at.clamp(1, MAX_AT);
        self.set(if idle { at | IDLE } else { at });
    }

    /// The connection is working: nothing bounds it until the next `arm`.
    pub fn disarm(&self) {
        self.set(0);
    }

    fn set(&self, word: u64) {
        // An ended slot stays ended: its socket is already shut down.
        let _ = self
            .entry()
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                (old != EXPIRED).then_some(word)
            });
    }

    /// Whether the sweeper ended this connection.
    pub fn expired(&self) -> bool {
        self.entry().word.load(Ordering::Acquire) == EXPIRED
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Before `stream` is dropped (fields drop after this), so that the
        // descriptor is closed only once no sweep can name it.
        self.table.leave(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_is_past_the_deadline_or_idle_in_a_drain() {
        assert!(!due(0, 10_000, true), "a working connection is never due");
        assert!(
            !due(EXPIRED, 10_000, true),
            "an ended one is not ended twice"
        );
        assert!(!due(500, 499, false));
        assert!(due(500, 500, false));
        assert!(!due(500 | IDLE, 499, false));
        assert!(
            due(500 | IDLE, 499, true),
            "a drain ends an idle connection"
        );
        assert!(!due(500, 499, true), "a drain lets a working one finish");
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server, client)
    }

    #[tokio::test]
    async fn a_passed_deadline_shuts_the_socket_and_only_its_own() {
        use tokio::io::AsyncReadExt;
        let table = Deadlines::new(4);
        let (a, mut a_client) = pair().await;
        let (b, mut b_client) = pair().await;
        let a = table.enter(a).expect("a slot");
        let b = table.enter(b).expect("a slot");
        a.arm(1_000, false);
        b.arm(a.after(Duration::from_secs(60)), false);
        assert_eq!(table.sweep(999, false), 0, "not yet");
        assert_eq!(table.sweep(1_000, false), 1);
        assert!(a.expired() && !b.expired());
        // The sweep shut a's socket down: its client reads the end at once.
        let mut byte = [0u8; 1];
        assert_eq!(a_client.read(&mut byte).await.expect("read"), 0);
        // An ended slot stays ended, and is not ended twice.
        a.disarm();
        assert!(a.expired());
        assert_eq!(table.sweep(2_000, false), 0);
        // b is untouched: its client sees no end.
        let pending =
            tokio::time::timeout(Duration::from_millis(50), b_client.read(&mut byte)).await;
        assert!(pending.is_err(), "b's socket was shut down too");
    }

    #[tokio::test]
    async fn a_drain_ends_the_idle_and_a_freed_slot_is_reused_clean() {
        let table = Deadlines::new(2);
        let (a, _ac) = pair().await;
        let (b, _bc) = pair().await;
        let a = table.enter(a).expect("a slot");
        let b = table.enter(b).expect("a slot");
        let later = a.after(Duration::from_secs(60));
        a.arm(later, true);
        b.arm(later, false);
        assert_eq!(table.sweep(0, true), 1);
        assert!(a.expired() && !b.expired());
        let index = a.index;
        drop(a);
        let (c, _cc) = pair().await;
        let c = table.enter(c).expect("a slot");
        assert_eq!(c.index, index, "the lowest free slot is taken first");
        assert!(!c.expired(), "a reused slot starts clean");
        assert_eq!(table.sweep(0, true), 0);
    }

    #[tokio::test]
    async fn a_full_table_refuses_and_a_deadline_is_never_early() {
        let table = Deadlines::new(1);
        let (s, _c) = pair().await;
        let slot = table.enter(s).expect("a slot");
        let (s, _c2) = pair().await;
        assert!(table.enter(s).is_none(), "the table is full");
        let at = slot.after(Duration::from_millis(300));
        assert!(at >= table.now() + 300 + DEADLINE_TICK.as_millis() as u64);
    }
}
