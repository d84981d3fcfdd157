//! Keeping disk reads off the event loop.
//!
//! Owns: the decision, for each window of a body about to be sent, whether its
//! pages are already in memory (`OpenObject::is_resident`, a `mincore`), and if
//! not, reading them in on tokio's blocking pool, at most
//! [`DISK_READS_IN_FLIGHT`] at once, before the event loop's sendfile (plain)
//! or rustls (TLS) touches them. Without it, a page-cache miss blocks the
//! worker thread inside sendfile or a page fault, and every connection on that
//! thread waits for the disk. It must not send anything or decide what to send.

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use crate::config::defaults::DISK_READS_IN_FLIGHT;
use crate::store::OpenObject;

fn permits() -> &'static Semaphore {
    static READS: OnceLock<Semaphore> = OnceLock::new();
    READS.get_or_init(|| Semaphore::new(DISK_READS_IN_FLIGHT))
}

/// Makes bytes `first..first + len` of `object` resident, reading them on the
/// blocking pool if any page is missing. A read error is left for the send to
/// meet (and report) on its own.
pub async fn ensure_resident(object: &Arc<OpenObject>, first: u64, len: u64) {
    if object.is_resident(first, len) {
        return;
    }
    let Ok(_permit) = permits().acquire().await else {
        return;
    };
    let object = object.clone();
    let loaded = tokio::task::spawn_blocking(move || object.load(first, len)).await;
    if let Ok(Err(error)) = loaded {
        tracing::warn!(%error, "reading a cold window failed");
    }
}
