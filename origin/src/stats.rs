//! What the origin has done, for `GET /v1/stats` (tests read it back).
//!
//! Owns: content requests and body bytes sent per key, manifests issued per
//! appliance with the last generation, reports received by kind and refused
//! by reason (since the process started; what is kept lives in the
//! database), and the JSON snapshot of those plus the fault counts. Keys are counted only once a file was found, so a client
//! cannot grow the table with made-up names. It must never decide an answer.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::fault::Applied;

/// Counters of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyStats {
    /// GET and HEAD requests answered for this key (faulted ones included).
    pub requests: u64,
    /// Body bytes handed to the connection.
    pub body_bytes: u64,
}

/// Manifests of one appliance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApplianceStats {
    pub issued: u64,
    pub generation: u64,
}

/// The `/v1/stats` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub objects: BTreeMap<String, KeyStats>,
    /// Content requests over all keys.
    pub requests: u64,
    /// Body bytes over all keys.
    pub body_bytes: u64,
    /// Faults applied over all specs.
    pub faults_applied: u64,
    pub faults: Vec<Applied>,
    pub manifests_issued: u64,
    pub manifests: BTreeMap<String, ApplianceStats>,
    /// The generation the catalogue is at (0 before the first manifest).
    pub generation: u64,
    /// Reports accepted by kind (every kind listed).
    pub reports_received: BTreeMap<String, u64>,
    /// Reports refused by reason, the error code (every code listed).
    pub reports_refused: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, KeyStats>,
    manifests: BTreeMap<String, ApplianceStats>,
    generation: u64,
    reports_received: BTreeMap<&'static str, u64>,
    reports_refused: BTreeMap<&'static str, u64>,
}

/// The live counters.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn request(&self, key: &str) {
        self.lock()
            .objects
            .entry(key.to_owned())
            .or_default()
            .requests += 1;
    }

    pub fn body_bytes(&self, key: &str, n: u64) {
        self.lock()
            .objects
            .entry(key.to_owned())
            .or_default()
            .body_bytes += n;
    }

    pub fn manifest(&self, appliance: &str, generation: u64) {
        let mut inner = self.lock();
        inner.generation = generation;
        let a = inner.manifests.entry(appliance.to_owned()).or_default();
        a.issued += 1;
        a.generation = generation;
    }

    /// A report of `kind` (one of `report::KINDS`) was kept.
    pub fn report_received(&self, kind: &'static str) {
        *self.lock().reports_received.entry(kind).or_default() += 1;
    }

    /// A report was refused with `code` (one of `Refusal::CODES`).
    pub fn report_refused(&self, code: &'static str) {
        *self.lock().reports_refused.entry(code).or_default() += 1;
    }

    pub fn snapshot(&self, faults: Vec<Applied>) -> Snapshot {
        let inner = self.lock();
        let listed = |names: &[&'static str], counts: &BTreeMap<&'static str, u64>| {
            let mut out: BTreeMap<String, u64> = names.iter().map(|n| (n.to_string(), 0)).collect();
            for (name, n) in counts {
                *out.entry(name.to_string()).or_default() += n;
            }
            out
        };
        Snapshot {
            requests: inner.objects.values().map(|k| k.requests).sum(),
            body_bytes: inner.objects.values().map(|k| k.body_bytes).sum(),
            objects: inner.objects.clone(),
            faults_applied: faults.iter().map(|f| f.applied).sum(),
            faults,
            manifests_issued: inner.manifests.values().map(|m| m.issued).sum(),
            manifests: inner.manifests.clone(),
            generation: inner.generation,
            reports_received: listed(&crate::report::KINDS, &inner.reports_received),
            reports_refused: listed(&crate::report::Refusal::CODES, &inner.reports_refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_the_parts() {
        let s = Stats::default();
        s.request("a");
        s.request("a");
        s.body_bytes("a", 10);
        s.request("b");
        s.body_bytes("b", 5);
        s.manifest("oca-1", 7);
        s.manifest("oca-1", 8);
        s.manifest("oca-2", 8);
        let snap = s.snapshot(vec![Applied {
            spec: "*=corrupt".into(),
            applied: 2,
        }]);
        assert_eq!((snap.requests, snap.body_bytes), (3, 15));
        assert_eq!(snap.objects["a"].requests, 2);
        assert_eq!(snap.faults_applied, 2);
        assert_eq!(snap.manifests_issued, 3);
        assert_eq!(snap.manifests["oca-1"].generation, 8);
        assert_eq!(snap.generation, 8);
        assert_eq!(
            snap.reports_received["inventory"], 0,
            "every kind is listed"
        );
        assert_eq!(
            snap.reports_refused["bad_token"], 0,
            "every reason is listed"
        );
    }

    #[test]
    fn reports_are_counted_by_kind_and_reason() {
        let s = Stats::default();
        s.report_received("health");
        s.report_received("health");
        s.report_refused("bad_token");
        let snap = s.snapshot(Vec::new());
        assert_eq!(snap.reports_received["health"], 2);
        assert_eq!(snap.reports_received["popularity"], 0);
        assert_eq!(snap.reports_refused["bad_token"], 1);
        assert_eq!(
            snap.reports_refused.len(),
            crate::report::Refusal::CODES.len()
        );
    }
}
