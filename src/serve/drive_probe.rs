//! Watching the drives while serving: every [`DRIVE_PROBE_INTERVAL`], each
//! drive in service is looked at (its root stat'ed, its `objects/` listed,
//! its device id compared with the one seen at start-up) on the blocking
//! pool, so that a drive that vanished, was unmounted or was swapped for
//! another file system is taken out of service even while nobody asks for
//! its objects. I/O errors met while serving fail a drive at once, through
//! `Store::drive_fault`; this covers the drives nobody reads.
//!
//! Owns: the probe's schedule. It must never probe on the event loop (a
//! hung drive would hang a worker) and never run two probes at once (a hung
//! probe holds its pool thread; the next one waits for it).

use std::sync::Arc;

use crate::config::defaults::DRIVE_PROBE_INTERVAL;
use crate::store::Store;

/// Probes the drives until the task is dropped.
pub async fn run(store: Arc<Store>) {
    let mut tick = tokio::time::interval(DRIVE_PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = store.clone();
        // A probe of a hung drive blocks its pool thread; awaiting it here
        // keeps it the only one.
        let _ = tokio::task::spawn_blocking(move || store.probe_disks()).await;
    }
}
