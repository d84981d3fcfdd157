//! What the origin has done, for `GET /v1/stats` (tests read it back).
//!
//! Owns: content requests and body bytes sent per key, manifests issued per
//! appliance with the last generation, and the JSON snapshot of those plus
//! the fault counts. Keys are counted only once a file was found, so a client
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
}

#[derive(Debug, Default)]
struct Inner {
    objects: BTreeMap<String, KeyStats>,
    manifests: BTreeMap<String, ApplianceStats>,
    generation: u64,
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

    pub fn snapshot(&self, faults: Vec<Applied>) -> Snapshot {
        let inner = self.lock();
        Snapshot {
            requests: inner.objects.values().map(|k| k.requests).sum(),
            body_bytes: inner.objects.values().map(|k| k.body_bytes).sum(),
            objects: inner.objects.clone(),
            faults_applied: faults.iter().map(|f| f.applied).sum(),
            faults,
            manifests_issued: inner.manifests.values().map(|m| m.issued).sum(),
            manifests: inner.manifests.clone(),
            generation: inner.generation,
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
    }
}
