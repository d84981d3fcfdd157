//! The store's metric families: what each disk holds, its free space and its
//! state.
//!
//! Owns: the declaration of `eddy_store_objects`, `eddy_store_bytes`,
//! `eddy_disk_free_bytes`, `eddy_disk_state` and the integrity check's
//! `eddy_fsck_*` counters, and [`StoreCollector`], which
//! reads them from the store when `/metrics` is scraped: the per-disk counts
//! the index keeps (O(disks), no lock) and one `statvfs` per disk. Label
//! values are the configured disk roots, never anything a client sent. It
//! must never be read on the event loop (statvfs may wait on a slow drive)
//! and never change the store.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use super::Store;
use crate::metrics::{MetricsError, Registry};

/// Reads the store's figures at scrape time.
#[derive(Debug)]
pub struct StoreCollector {
    store: Arc<Store>,
    objects: IntGaugeVec,
    bytes: IntGaugeVec,
    free: IntGaugeVec,
    state: IntGaugeVec,
    /// The integrity check's counts (`store::fsck`), copied at each scrape.
    fsck: [IntCounterVec; 4],
    /// One scrape's refresh and collection at a time, so that concurrent
    /// scrapes never see each other's half-set values.
    scrape: Mutex<()>,
}

impl StoreCollector {
    /// Declares the store's families and registers them in `registry`.
    pub fn register(store: Arc<Store>, registry: &Registry) -> Result<(), MetricsError> {
        let counter = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &[])
                .map_err(|source| MetricsError::new(name, source))
        };
        let vec = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels)
                .map_err(|source| MetricsError::new(name, source))
        };
        let collector = StoreCollector {
            store,
            objects: vec(
                "eddy_store_objects",
                "Objects in the store's index, by disk root.",
                &["disk"],
            )?,
            bytes: vec(
                "eddy_store_bytes",
                "Bytes of the indexed objects (their lengths), by disk root.",
                &["disk"],
            )?,
            free: vec(
                "eddy_disk_free_bytes",
                "Bytes available to eddy on each disk's file system (statvfs), by disk root; absent for a disk whose statvfs failed.",
                &["disk"],
            )?,
            state: vec(
                "eddy_disk_state",
                "Each disk's state (1 for the current one): active (serving and filled), draining (serving, out of placement), failed (out of service).",
                &["disk", "state"],
            )?,
            fsck: [
                counter(
                    "eddy_fsck_checked_objects_total",
                    "Objects re-hashed by the integrity check (background or eddy store fsck).",
                )?,
                counter(
                    "eddy_fsck_checked_bytes_total",
                    "Bytes re-hashed by the integrity check.",
                )?,
                counter(
                    "eddy_fsck_mismatches_total",
                    "Objects whose bytes no longer hash to their recorded digest (bit rot), quarantined and never served again.",
                )?,
                counter(
                    "eddy_fsck_errors_total",
                    "Objects the integrity check could not read (a drive fault fails the drive).",
                )?,
            ],
            scrape: Mutex::new(()),
        };
        registry.register("eddy_store_*", Box::new(collector))
    }

    fn refresh(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let f = &self.store.fsck;
        let counts = [&f.checked, &f.bytes, &f.mismatches, &f.errors];
        for (vec, n) in self.fsck.iter().zip(counts) {
            let c = vec.with_label_values::<&str>(&[]);
            c.reset();
            c.inc_by(n.load(Relaxed));
        }
        let states = self.store.disk_statuses();
        for (i, d) in self.store.stats().into_iter().enumerate() {
            let root = d.root.to_string_lossy();
            let root = root.as_ref();
            self.objects
                .with_label_values(&[root])
                .set(i64::try_from(d.objects).unwrap_or(i64::MAX));
            self.bytes
                .with_label_values(&[root])
                .set(i64::try_from(d.bytes).unwrap_or(i64::MAX));
            let state = states.get(i).map(|s| s.state);
            let free = self.store.free_bytes_in_service(i);
            match free {
                Some(free) => self
                    .free
                    .with_label_values(&[root])
                    .set(i64::try_from(free).unwrap_or(i64::MAX)),
                None => {
                    let _ = self.free.remove_label_values(&[root]);
                }
            }
            for s in super::DiskState::ALL {
                self.state
                    .with_label_values(&[root, s.label()])
                    .set(i64::from(state == Some(s)));
            }
        }
    }
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        [&self.objects, &self.bytes, &self.free, &self.state]
            .into_iter()
            .flat_map(|v| v.desc())
            .chain(self.fsck.iter().flat_map(|v| v.desc()))
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh();
        [&self.objects, &self.bytes, &self.free, &self.state]
            .into_iter()
            .flat_map(|v| v.collect())
            .chain(self.fsck.iter().flat_map(|v| v.collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::{assert_value, value};
    use crate::store::{import, CachePolicy};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_scrape_shows_each_disk() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("t"))?;
        std::fs::write(src.join("t/a.ts"), vec![1u8; 300])?;
        let roots = vec![dir.path().join("d0"), dir.path().join("d1")];
        import::prepare_disks(&roots)?;
        let cache = CachePolicy {
            entries: 0,
            valid_for: Duration::ZERO,
        };
        let (store, _) = Store::open(&roots, cache)?;
        let store = Arc::new(store);
        import::import_tree(&store, &src)?;
        let registry = Registry::new(UNIX_EPOCH)?;
        StoreCollector::register(store.clone(), &registry)?;
        let text = registry.render();
        let d: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        let objects: u64 = d
            .iter()
            .filter_map(|r| value(&text, &format!("eddy_store_objects{{disk=\"{r}\"}}")))
            .map(|v| v.parse::<u64>())
            .sum::<Result<u64, _>>()?;
        assert_eq!(objects, 1);
        for r in &d {
            assert_value(
                &text,
                &format!("eddy_disk_state{{disk=\"{r}\",state=\"active\"}}"),
                "1",
            );
            assert_value(
                &text,
                &format!("eddy_disk_state{{disk=\"{r}\",state=\"failed\"}}"),
                "0",
            );
            let free = value(&text, &format!("eddy_disk_free_bytes{{disk=\"{r}\"}}"));
            assert!(
                free.is_some_and(|f| f.parse::<u64>().is_ok_and(|f| f > 0)),
                "{text}"
            );
        }
        Ok(())
    }
}
