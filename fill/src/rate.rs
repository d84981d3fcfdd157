//! The fill's rate cap: one token bucket shared by every download of the
//! appliance (Open Connect caps a storage appliance at 1.2 Gbit/s).
//!
//! Owns: the arithmetic of the bucket on an injected clock (time since the
//! fill started, as a `Duration`), so that tests check the rate without
//! sleeping. A taker may run into debt: it is told how long to wait before
//! sending what it took, so one large read is paid for by one wait and the
//! long-run rate is exact (sent bytes never exceed `rate x elapsed + burst`).
//! It must never sleep or read a clock itself.

use std::time::Duration;

/// A token bucket in bytes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second; `None` = unlimited.
    rate: Option<f64>,
    burst: f64,
    /// Available bytes; negative while in debt.
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A bucket allowing `bits_per_sec` (0 = unlimited) with up to `burst`
    /// bytes sent at once after an idle period, full at `now`.
    pub fn new(bits_per_sec: u64, burst: u64, now: Duration) -> TokenBucket {
        TokenBucket {
            rate: (bits_per_sec > 0).then_some(bits_per_sec as f64 / 8.0),
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    /// A new rate (0 = unlimited) and burst from now on; the tokens held (or
    /// the debt) carry over, capped at the new burst.
    pub fn set_rate(&mut self, bits_per_sec: u64, burst: u64) {
        self.rate = (bits_per_sec > 0).then_some(bits_per_sec as f64 / 8.0);
        self.burst = burst as f64;
        self.tokens = self.tokens.min(self.burst);
    }

    /// Takes `n` bytes at `now`; returns how long to wait before sending them.
    pub fn take(&mut self, n: u64, now: Duration) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * rate).min(self.burst);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_new_rate_applies_to_the_next_take() {
        let mut b = TokenBucket::new(8_000, 1_000, Duration::ZERO);
        assert_eq!(b.take(1_000, Duration::ZERO), Duration::ZERO);
        // 1000 bytes/s: another 1000 bytes cost a second.
        assert_eq!(b.take(1_000, Duration::ZERO), Duration::from_secs(1));
        // Ten times the rate: the debt is paid ten times faster.
        b.set_rate(80_000, 1_000);
        assert_eq!(b.take(0, Duration::ZERO), Duration::from_millis(100));
        b.set_rate(0, 0);
        assert_eq!(b.take(u64::MAX / 2, Duration::ZERO), Duration::ZERO);
        // From unlimited back to a cap: the burst, then the rate.
        b.set_rate(8_000, 1_000);
        let later = Duration::from_secs(10);
        assert_eq!(b.take(1_000, later), Duration::ZERO);
        assert_eq!(b.take(500, later), Duration::from_millis(500));
    }

    #[test]
    fn unlimited_never_waits() {
        let mut b = TokenBucket::new(0, 0, Duration::ZERO);
        assert_eq!(b.take(u64::MAX / 2, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_minute_at_1_2_gbit_is_exact_within_the_burst() {
        // Takers that wait as told, in 64 KiB reads: the bytes sent in 60 s
        // are the rate's, plus at most one burst.
        let rate = 1_200_000_000u64;
        let burst = 1 << 20;
        let mut b = TokenBucket::new(rate, burst, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut sent = 0u64;
        while now < Duration::from_secs(60) {
            now += b.take(65_536, now);
            sent += 65_536;
        }
        let ideal = rate as f64 / 8.0 * 60.0;
        let err = (sent as f64 - ideal).abs() / ideal;
        assert!(err < 0.001, "sent {sent}, ideal {ideal}, error {err}");
    }

    proptest! {
        #[test]
        fn sent_never_exceeds_rate_times_time_plus_burst(
            rate in 1_000u64..10_000_000_000,
            reads in proptest::collection::vec((1u64..4_000_000, 0u64..50_000), 1..200),
        ) {
            let burst = 256 * 1024;
            let mut b = TokenBucket::new(rate, burst, Duration::ZERO);
            let mut now = Duration::ZERO;
            let mut sent = 0u64;
            for (n, idle_us) in reads {
                now += Duration::from_micros(idle_us);
                now += b.take(n, now);
                sent += n;
                let allowed = rate as f64 / 8.0 * now.as_secs_f64() + burst as f64;
                prop_assert!(sent as f64 <= allowed * 1.000_001 + 1.0, "sent {} allowed {}", sent, allowed);
            }
        }
    }
}
