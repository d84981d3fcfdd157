//! What an appliance tells about itself: today the fill's progress, as the
//! admin API (`GET /fill/status`, `eddy fill status --json`) shows it; the
//! health, popularity and inventory reports to the control plane join here.
//!
//! Owns: the shapes, versioned like every v1 message (unknown fields are
//! ignored by readers). It must never compute them: the fill fills them in.

/// The fill's state and counters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FillStatus {
    pub version: String,
    /// `idle` (nothing to do), `waiting` (work, outside the window),
    /// `filling`, or `stopped` (no fill configured).
    pub state: String,
    /// The generation of the manifest held, if any.
    pub generation: Option<u64>,
    /// Fills started since the process started.
    pub runs: u64,
    pub objects_planned: u64,
    pub objects_done: u64,
    pub bytes_planned: u64,
    /// Bytes downloaded towards the plan (resumed bytes count once).
    pub bytes_done: u64,
    /// Bytes received from sources in all, retries and discarded ones included.
    pub bytes_downloaded: u64,
    /// Objects installed since the process started.
    pub objects_installed: u64,
    pub objects_evicted: u64,
    /// Manifest objects left out for lack of room.
    pub objects_skipped: u64,
    /// Bytes per second over the current or last run.
    pub rate_bytes_per_sec: u64,
    /// Seconds until the current run is done at its rate.
    pub eta_secs: Option<u64>,
    /// Errors by kind (`network`, `status`, `corrupt`, `io`, `disk_full`,
    /// `manifest`, `exhausted`).
    pub errors: std::collections::BTreeMap<String, u64>,
    /// The last refused manifest's reason, if any.
    pub last_refusal: Option<String>,
    /// The last run's end, unix seconds.
    pub last_finished_at: Option<u64>,
}
