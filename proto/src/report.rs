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

/// The major version of the report messages.
pub const MAJOR: u32 = 1;
/// The version this build writes.
pub const VERSION: &str = "1.0";

/// What an appliance posts to the control plane: `POST
/// /v1/report/{appliance}` with `Authorization: Bearer <token>` and one of
/// these as the JSON body (`"kind"` names it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Report {
    Health(Health),
    Popularity(Popularity),
    Inventory(Inventory),
}

impl Report {
    /// The fixed name of the kind, as in the JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Health(_) => "health",
            Report::Popularity(_) => "popularity",
            Report::Inventory(_) => "inventory",
        }
    }

    /// The appliance it is from.
    pub fn appliance(&self) -> &str {
        match self {
            Report::Health(h) => &h.appliance,
            Report::Popularity(p) => &p.appliance,
            Report::Inventory(i) => &i.appliance,
        }
    }

    /// Its `MAJOR.MINOR`.
    pub fn version(&self) -> &str {
        match self {
            Report::Health(h) => &h.version,
            Report::Popularity(p) => &p.version,
            Report::Inventory(i) => &i.version,
        }
    }
}

/// Every few seconds: whether the appliance can take players, and how busy it is.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub version: String,
    pub appliance: String,
    /// Unix seconds at the appliance.
    pub sent_at: u64,
    /// `eddy` version.
    pub software: String,
    /// False once draining: steer players elsewhere.
    pub serving: bool,
    pub disks: Vec<DiskHealth>,
    pub connections_open: u64,
    /// Responses sent since the process started.
    pub requests_total: u64,
    /// Response body bytes sent since the process started.
    pub bytes_total: u64,
    /// Body bytes per second since the previous health report.
    pub throughput_bps: u64,
    /// The 1-minute load average of the host.
    pub load1: f64,
    /// The generation of the fill manifest held, if any.
    pub generation: Option<u64>,
}

/// One drive in a health report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiskHealth {
    /// The root as configured (its identity for placement).
    pub id: String,
    /// `active`, `draining` or `failed`.
    pub state: String,
    pub free_bytes: u64,
    /// What the index holds on it; on a failed drive, what was lost (the
    /// next fill places it on the others).
    pub objects: u64,
    pub bytes: u64,
    /// Why it is in that state (absent for a drive active since start-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A snapshot of what players asked for since the previous one (counters
/// reset at each snapshot).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Popularity {
    pub version: String,
    pub appliance: String,
    /// Unix seconds: the window the counts cover.
    pub from: u64,
    pub to: u64,
    /// Objects asked for at least once in the window.
    pub objects: Vec<ObjectCounts>,
    /// Requests for keys the appliance does not hold (a content miss: the
    /// player was steered to content that is not here).
    pub content_misses: u64,
    /// Requests refused for want of capacity (a health miss: connection cap).
    pub health_misses: u64,
}

/// Requests and body bytes for one object in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectCounts {
    pub key: String,
    pub requests: u64,
    pub bytes: u64,
}

/// What the appliance holds, after every change and in full on a schedule.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Inventory {
    pub version: String,
    pub appliance: String,
    pub sent_at: u64,
    /// The manifest generation the holdings were filled against, if any.
    pub generation: Option<u64>,
    /// Every object held, sorted by key.
    pub objects: Vec<Held>,
}

/// One object held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    pub key: String,
    pub size: u64,
    pub sha256: crate::Digest,
    /// The disk it is on (its id).
    pub disk: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_carry_their_kind_and_ignore_unknown_fields() -> Result<(), serde_json::Error> {
        let h = Report::Health(Health {
            version: VERSION.into(),
            appliance: "oca-1".into(),
            serving: true,
            ..Health::default()
        });
        let text = serde_json::to_string(&h)?;
        assert!(text.contains("\"kind\":\"health\""), "{text}");
        let back: Report = serde_json::from_str(&text)?;
        assert_eq!(back, h);
        let newer = r#"{"kind":"popularity","version":"1.4","appliance":"a","from":1,"to":2,
            "objects":[{"key":"k","requests":3,"bytes":4,"p95_ms":7}],"content_misses":0,"health_misses":0,"future":true}"#;
        let p: Report = serde_json::from_str(newer)?;
        assert_eq!(p.kind(), "popularity");
        assert_eq!(p.appliance(), "a");
        Ok(())
    }
}
