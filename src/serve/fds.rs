//! The descriptor budget: what eddy may need open at once, against what the
//! process may open (`RLIMIT_NOFILE`).
//!
//! Owns: raising the soft limit to the hard one at start-up, and the check
//! that `limits.max_connections`, `store.open_file_cache`,
//! `limits.max_refusals` and the fixed reserve fit under it (a warning naming
//! the keys when they do not: the defaults are sized for the systemd unit's
//! LimitNOFILE of 65536, and a lab box with less still serves). It must never
//! open or close a descriptor, nor change a limit other than the soft
//! `RLIMIT_NOFILE`.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::config::defaults::{ADMIN_MAX_CONNECTIONS, DISK_READS_PER_DRIVE, FD_RESERVE};
use crate::config::Config;

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Descriptors the configuration may need at once.
    pub need: u64,
    /// The soft limit after raising it (what the process may open).
    pub limit: u64,
    /// The soft limit found at start.
    pub was: u64,
}

impl Budget {
    pub fn fits(&self) -> bool {
        self.need <= self.limit
    }
}

/// Descriptors `config` may need at once: connections, cached objects,
/// refusals in flight, and what eddy holds besides.
pub fn need(config: &Config) -> u64 {
    let parts = [
        config.limits.max_connections,
        config.open_file_cache,
        config.limits.max_refusals,
        FD_RESERVE,
        DISK_READS_PER_DRIVE * config.disks.len(),
        ADMIN_MAX_CONNECTIONS,
    ];
    parts.iter().map(|&n| n as u64).sum()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (when it is lower and
/// the budget needs more) and logs how the budget compares: a warning naming
/// the keys when it does not fit. Returns what it found; `None` when the limit
/// cannot be read.
pub fn check(config: &Config) -> Option<Budget> {
    let need = need(config);
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read RLIMIT_NOFILE; descriptor budget not checked");
            return None;
        }
    };
    let mut limit = soft;
    if soft < need && soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => limit = hard,
            Err(error) => tracing::warn!(%error, soft, hard, "cannot raise RLIMIT_NOFILE"),
        }
    }
    let budget = Budget {
        need,
        limit,
        was: soft,
    };
    if budget.fits() {
        tracing::info!(need, limit, was = soft, "descriptor budget");
    } else {
        tracing::warn!(
            need,
            limit,
            hard,
            "descriptor budget over RLIMIT_NOFILE: limits.max_connections ({}) + \
             store.open_file_cache ({}) + limits.max_refusals ({}) + {} reserved = {need} > {limit}; \
             lower these keys or raise LimitNOFILE, or accepts may fail with EMFILE",
            config.limits.max_connections,
            config.open_file_cache,
            config.limits.max_refusals,
            FD_RESERVE + DISK_READS_PER_DRIVE * config.disks.len() + ADMIN_MAX_CONNECTIONS,
        );
    }
    Some(budget)
}
