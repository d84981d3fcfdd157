//! Keeping disk reads off the event loop.
//!
//! Owns: the decision, for each window of a body about to be sent, whether
//! sending it may have to wait for a disk, and the off-loop ways of sending or
//! loading such a window on tokio's blocking pool, at most
//! [`DISK_READS_PER_DRIVE`] at once per drive, each given up on after
//! `store.read_timeout`. Without it, a page-cache miss blocks the
//! worker thread inside sendfile or a page fault, and every connection on that
//! thread waits for the disk. It must not decide what to send.
//!
//! The decision: the kernel counts how many pages of the window are cached
//! (`cachestat`, Linux 6.5+, about 1 µs for a 2 MiB window held in the large
//! folios that readahead makes), and a window with any page missing is cold.
//! Checking only the first page would not do: a file that is warming up is
//! partly in memory, so its first page says "resident" while later pages
//! still need the disk. On kernels without `cachestat`, a window is judged by
//! its first page (one-page `mincore`), and once a cold window is found, the
//! object's windows are checked page by page with `mincore` (about 50 µs for
//! 2 MiB) for the next [`COLD_MEMORY`].

use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::metrics::ServeMetrics;
use crate::config::defaults::{COLD_MEMORY, DISK_READS_PER_DRIVE};
use crate::store::OpenObject;

/// Drives with permits of their own; a store of more shares them round.
const DRIVES: usize = 256;

/// The cold-read permits of drive `disk`.
fn permits(disk: usize) -> &'static Semaphore {
    static READS: OnceLock<Vec<Semaphore>> = OnceLock::new();
    let all = READS.get_or_init(|| {
        (0..DRIVES)
            .map(|_| Semaphore::new(DISK_READS_PER_DRIVE))
            .collect()
    });
    &all[disk % DRIVES]
}

/// The read deadline (`store.read_timeout`), in milliseconds; set once at
/// start-up by [`set_read_deadline`].
static READ_DEADLINE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(
    crate::config::defaults::DISK_READ_DEADLINE.as_millis() as u64,
);

/// Sets the deadline of every cold read (`store.read_timeout`).
pub fn set_read_deadline(d: Duration) {
    READ_DEADLINE_MS.store(
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Runs `read` on the blocking pool under the permits of `object`'s drive,
/// giving up after the read deadline (`store.read_timeout`) with `TimedOut`
/// (the caller fails the drive: `store::disk::is_drive_fault`). A read given
/// up on keeps its pool thread until the drive answers; the permit goes back
/// at once, and the drive, failed, is asked nothing more. The read counts as
/// in flight on the object until the pool thread is done with it, given up on
/// or not: meanwhile [`may_block`] sends every window of the object to the
/// pool too, since the pages it is reading look resident while they wait for
/// the drive, and a send from them on the event loop would wait with them.
async fn off_loop<T: Send + 'static>(
    object: &Arc<OpenObject>,
    read: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let _permit = permits(object.disk)
        .acquire()
        .await
        .map_err(|_| io::Error::other("the disk read permits are gone"))?;
    let deadline =
        Duration::from_millis(READ_DEADLINE_MS.load(std::sync::atomic::Ordering::Relaxed));
    let in_flight = InFlight::new(object.clone());
    let job = move || {
        let _in_flight = in_flight;
        read()
    };
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(job)).await {
        Ok(joined) => joined.map_err(io::Error::other)?,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("a drive read took longer than {deadline:?} (store.read_timeout)"),
        )),
    }
}

/// One read of an object on the blocking pool, counted while it lives.
struct InFlight(Arc<OpenObject>);

impl InFlight {
    fn new(object: Arc<OpenObject>) -> InFlight {
        object.read_began();
        InFlight(object)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.read_ended();
    }
}

/// The serving clock of cold marks: milliseconds since the first call, plus
/// one so that 0 stays "never".
fn clock() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// Whether a mark made at `last_cold` (0: never) still counts at `now`.
fn recently_cold(last_cold: u64, now: u64, memory: Duration) -> bool {
    let memory = u64::try_from(memory.as_millis()).unwrap_or(u64::MAX);
    last_cold != 0 && now.saturating_sub(last_cold) < memory
}

/// Whether sending bytes `first..first + len` of `object` may have to wait for
/// a disk (see the module doc). Marks the object when it finds a cold page,
/// and counts each window it sends off the event loop.
pub fn may_block(object: &OpenObject, first: u64, len: u64, metrics: &ServeMetrics) -> bool {
    // A read of this object on the pool holds the pages it reads locked
    // until its drive answers, and they look resident meanwhile.
    let resident = object.reads_in_flight() == 0
        && match object.is_all_resident_counted(first, len) {
            Some(all) => all,
            None if recently_cold(object.last_cold(), clock(), COLD_MEMORY) => {
                object.is_all_resident_mapped(first, len)
            }
            // The first page only.
            None => object.is_all_resident_mapped(first, len.min(1)),
        };
    if resident {
        return false;
    }
    object.note_cold(clock());
    metrics.cold_window();
    true
}

/// Sends up to `count` bytes of `object` from `offset` with sendfile(2) on the
/// blocking pool, so that the page-cache misses it meets block a pool thread
/// rather than the event loop. Returns the bytes sent, or `WouldBlock` when the
/// socket has no room; the caller waits for it as for any send.
///
/// The pool thread sends on its own duplicate of the socket's descriptor: if
/// the connection is dropped while the call runs, the number can never come to
/// name another connection's socket.
pub async fn sendfile_off_loop(
    stream: &TcpStream,
    object: &Arc<OpenObject>,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    // A pool call that meets a full socket leaves tokio believing the socket
    // writable; asking the kernel here, inside `try_io`, clears that belief
    // when it is wrong, so the caller's wait is a real one.
    stream.try_io(Interest::WRITABLE, || {
        let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
        match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    })?;
    let mut at = i64::try_from(offset).map_err(|_| io::Error::other("offset beyond i64"))?;
    let socket = stream.as_fd().try_clone_to_owned()?;
    let file = object.clone();
    off_loop(object, move || {
        nix::sys::sendfile::sendfile64(&socket, &file.file, Some(&mut at), count)
            .map_err(io::Error::from)
    })
    .await
}

/// Makes bytes `first..first + len` of `object` resident, reading them on
/// the blocking pool if sending them may block. For transports that copy
/// object bytes out of the page cache (TLS) rather than sending them with
/// sendfile. A drive's read error is returned, for the caller to end the
/// response with.
pub async fn ensure_resident(
    object: &Arc<OpenObject>,
    first: u64,
    len: u64,
    metrics: &ServeMetrics,
) -> io::Result<()> {
    if !may_block(object, first, len, metrics) {
        return Ok(());
    }
    let reader = object.clone();
    off_loop(object, move || reader.load(first, len)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cold_mark_counts_for_its_memory_and_no_longer() {
        let memory = Duration::from_secs(2);
        assert!(!recently_cold(0, 5, memory), "0 means never");
        assert!(recently_cold(1000, 1000, memory));
        assert!(recently_cold(1000, 2999, memory));
        assert!(!recently_cold(1000, 3000, memory));
        assert!(
            recently_cold(1000, 999, memory),
            "a mark from a racing thread"
        );
    }

    #[test]
    fn the_clock_never_reads_never() {
        assert!(clock() >= 1);
    }
}
