//! Popularity: how often each object was asked for, counted on the serving
//! path and read by the reporter as a snapshot that resets the counts (and
//! by the status page without resetting them).
//!
//! Owns: the per-object counters. Each indexed key has one [`Counts`],
//! shared by its index entry and every opened copy of the object, so a
//! request records with two relaxed atomic adds on memory it already holds:
//! no lock, no allocation, no map lookup. A new version of a key keeps its
//! counters; an evicted key's last counts go with it. It must never do I/O.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Requests and body bytes of one object since the last snapshot.
#[derive(Debug, Default)]
pub struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Counts {
    /// One request that will send `bytes` of body.
    pub fn record(&self, bytes: u64) {
        self.requests.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    /// The counts so far, left as they are (the status page reads them; the
    /// reporter's [`Counts::take`] still gets every request).
    pub fn peek(&self) -> (u64, u64) {
        (self.requests.load(Relaxed), self.bytes.load(Relaxed))
    }

    /// The counts so far, and zero from now on.
    pub fn take(&self) -> (u64, u64) {
        (self.requests.swap(0, Relaxed), self.bytes.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_resets() {
        let c = Counts::default();
        c.record(10);
        c.record(5);
        assert_eq!(c.peek(), (2, 15));
        assert_eq!(c.peek(), (2, 15), "a peek resets nothing");
        assert_eq!(c.take(), (2, 15));
        assert_eq!(c.take(), (0, 0));
        assert_eq!(c.peek(), (0, 0));
    }
}
