//! Giving memory back after a flood: glibc keeps the memory that thousands of
//! closed connections freed in its arenas (issue 15 measured 0.9 MB of
//! anonymous memory growing to 62 MB after a TLS handshake flood, and staying
//! there); `malloc_trim(0)` returns the free pages of every arena to the
//! kernel. See docs/decisions/0001-allocator.md for the options measured.
//!
//! Owns: the rule for when to trim (many connections closed since the last
//! trim, and at most half of the connections open that were open at the
//! peak: the flood has receded), the periodic check, and the one `malloc_trim`
//! call, with its SAFETY argument. It must never trim on the event loop (a
//! trim takes every arena's lock for up to a few milliseconds; it runs on the
//! blocking pool) nor while the connection count is at its peak.

use std::sync::Arc;

use super::metrics::{Listener, ServeMetrics};
use crate::config::defaults::{TRIM_AFTER_CLOSED, TRIM_CHECK};

/// What the rule remembers between checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rule {
    /// Connections closed (ever) at the last trim.
    closed_at_trim: u64,
    /// The most connections seen open at a check since the last trim.
    peak_open: i64,
}

impl Rule {
    /// One check: `open` connections now, `closed` ever. True when a trim is
    /// due (and the rule then starts counting afresh). Pure.
    pub fn due(&mut self, open: i64, closed: u64) -> bool {
        self.peak_open = self.peak_open.max(open);
        let churned = closed.saturating_sub(self.closed_at_trim) >= TRIM_AFTER_CLOSED;
        let receded = open <= self.peak_open / 2;
        if churned && receded {
            self.closed_at_trim = closed;
            self.peak_open = open;
            true
        } else {
            false
        }
    }
}

/// Checks every [`TRIM_CHECK`] and trims (on the blocking pool) when
/// [`Rule::due`] says so. Runs until the runtime ends.
pub async fn run(metrics: Arc<ServeMetrics>) {
    let mut rule = Rule::default();
    let mut tick = tokio::time::interval(TRIM_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (mut open, mut closed) = (0i64, 0u64);
        for listener in [Listener::Plain, Listener::Tls] {
            let c = metrics.connections(listener);
            open += c.open;
            closed += c.total.saturating_sub(u64::try_from(c.open).unwrap_or(0));
        }
        if rule.due(open, closed) {
            let metrics = metrics.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let released = trim();
                metrics.memory_trimmed();
                tracing::debug!(released, "memory trimmed after connections closed");
            })
            .await;
        }
    }
}

/// Returns the free memory of every malloc arena to the kernel; true when
/// some was released.
#[allow(unsafe_code)]
pub fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointer and touches only the allocator's own
    // state, under the arenas' locks, so it is sound to call from any thread at
    // any time (glibc documents it MT-Safe). Exercised by this module's test
    // and by tests/it/hostile.rs, which makes the server trim.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_that_recedes_is_trimmed_once_and_steady_churn_is_not() {
        let mut rule = Rule::default();
        let n = TRIM_AFTER_CLOSED;
        // A flood: thousands open, then closed.
        assert!(!rule.due(5000, 0), "at the peak");
        assert!(!rule.due(5000, n), "closed but still at the peak");
        assert!(rule.due(10, n + 5000), "receded after the churn");
        assert!(!rule.due(10, n + 5000), "nothing new since");
        // Steady churn at a steady level: never trimmed.
        let mut steady = Rule::default();
        for i in 1..10 {
            assert!(!steady.due(4000, i * n), "steady at 4000 open, check {i}");
        }
        // Short connections that never pile up: trimmed once per batch of closes.
        let mut short = Rule::default();
        assert!(!short.due(0, n - 1));
        assert!(short.due(0, n));
    }

    #[test]
    fn trim_can_be_called_from_any_thread() {
        let big: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 64 * 1024]).collect();
        drop(big);
        let handles: Vec<_> = (0..2).map(|_| std::thread::spawn(trim)).collect();
        for h in handles {
            h.join().expect("trim on a thread");
        }
        trim();
    }
}
