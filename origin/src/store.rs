//! The control plane's state behind one interface: reports received, what is
//! derived from them, manifests issued and the generation counter.
//!
//! Owns: the [`Storage`] trait, the plain values that cross it (no SQL, no
//! connection, no row type: a replicated store can implement it later), the
//! backend-neutral [`StoreError`], and [`blocking`], the one way async code
//! calls a store (on the blocking pool, never on a runtime thread). The
//! SQLite implementation is [`crate::sqlite`]. It must never decide whether a
//! report is acceptable (that is [`crate::report`]) or which generation comes
//! next (that is [`crate::issue`]); it only keeps what it is given, and never
//! lets the kept generation go down.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_proto::report::Report;

/// A store shared by the server's tasks.
pub type Shared = Arc<dyn Storage>;

/// Why a store could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk, lock, constraint): its own words.
    #[error("the store failed while {what}: {message}")]
    Backend { what: &'static str, message: String },
    /// Something kept does not read back as what was written.
    #[error("the store holds a bad value: {0}")]
    Corrupt(String),
    /// The blocking pool went away (the runtime is stopping).
    #[error("the blocking pool is gone: {0}")]
    Join(String),
}

/// One accepted report, with the exact JSON body it came as.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub report: Report,
    /// Unix seconds at the control plane.
    pub received_at: u64,
    /// The body as posted (unknown fields included).
    pub json: String,
}

/// The kinds of report whose latest one is kept whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatestKind {
    Health,
    Inventory,
}

impl LatestKind {
    /// The report kind's name, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            LatestKind::Health => "health",
            LatestKind::Inventory => "inventory",
        }
    }
}

/// The latest report of a kind, as posted. "Latest" is by the appliance's
/// `sent_at` (a later receipt of an older report never replaces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub received_at: u64,
    pub json: String,
}

/// The last health of an appliance, in short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HealthSeen {
    pub serving: bool,
    pub sent_at: u64,
    pub received_at: u64,
}

/// Reports received from one appliance, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReportCounts {
    pub health: u64,
    pub popularity: u64,
    pub inventory: u64,
}

/// The last manifest issued to an appliance, and how many were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ManifestSeen {
    pub issued: u64,
    pub generation: u64,
    pub issued_at: u64,
    pub objects: u64,
}

/// What the control plane knows of one appliance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApplianceSummary {
    pub appliance: String,
    /// The latest health report, if any.
    pub health: Option<HealthSeen>,
    pub reports: ReportCounts,
    /// When the last report of any kind arrived.
    pub last_report_at: Option<u64>,
    /// Manifests issued to it, if any.
    pub manifests: Option<ManifestSeen>,
}

/// Requests and bytes summed over snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub requests: u64,
    pub bytes: u64,
}

/// Popularity of one appliance, summed over every snapshot received.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PopularityTotals {
    pub appliance: String,
    pub snapshots: u64,
    /// The earliest `from` and the latest `to` of the snapshots' windows.
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub content_misses: u64,
    pub health_misses: u64,
    /// Per key.
    pub objects: BTreeMap<String, Counts>,
}

/// One manifest handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestIssued {
    pub appliance: String,
    pub generation: u64,
    /// The catalogue content the generation stands for (see `issue::fingerprint`).
    pub fingerprint: [u8; 32],
    pub issued_at: u64,
    pub objects: u64,
}

/// The highest generation issued and the content it stood for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerationMark {
    pub generation: u64,
    pub fingerprint: [u8; 32],
}

/// Where the control plane keeps its state. Every call is one atomic step
/// (a transaction in SQLite) and blocks: async code goes through
/// [`blocking`].
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Keeps an accepted report: the report itself, the latest health or
    /// inventory of its appliance, and popularity sums.
    fn put_report(&self, received: &Received) -> Result<(), StoreError>;

    /// Every appliance a report was received from or a manifest issued to,
    /// sorted by id.
    fn appliances(&self) -> Result<Vec<ApplianceSummary>, StoreError>;

    /// Reports received from `appliance` by kind (all zero when none).
    fn report_counts(&self, appliance: &str) -> Result<ReportCounts, StoreError>;

    /// The latest report of `kind` from `appliance`, if any.
    fn latest(&self, appliance: &str, kind: LatestKind) -> Result<Option<Kept>, StoreError>;

    /// The popularity sums of `appliance` (zero snapshots when none).
    fn popularity(&self, appliance: &str) -> Result<PopularityTotals, StoreError>;

    /// Records a manifest issued, and its generation as the highest one
    /// when it is not lower than the one kept.
    fn put_manifest(&self, issued: &ManifestIssued) -> Result<(), StoreError>;

    /// The highest generation issued, if any was.
    fn last_generation(&self) -> Result<Option<GenerationMark>, StoreError>;
}

/// Runs `work` against `store` on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    store: &Shared,
    work: impl FnOnce(&dyn Storage) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || work(store.as_ref()))
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
}
