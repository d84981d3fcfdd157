//! The clock: the only place eddy reads the wall time for protocol decisions.
//!
//! Owns: [`Clock`], passed to whatever needs "now", so that pure logic takes
//! time as a value and tests use a fixed clock instead of sleeping. Timeouts
//! (tokio's monotonic timers) are not protocol decisions and do not go through it.

use std::time::SystemTime;

/// Seconds since the Unix epoch, 0 for times before it: how the planner
/// (`serve::plan`) takes the time, as a value.
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A source of the current wall time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock stuck at one instant, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}
