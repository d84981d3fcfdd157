//! A bounded cache of opened objects, so that a hot object costs no open,
//! stat or xattr call per request.
//!
//! Owns: the map from key to an opened [`OpenObject`] and when it was last
//! checked, the bound on entries (file descriptors), and expiry. An entry older
//! than the validity interval is reopened, so a version installed by another
//! process (`eddy store import` while serving) is served within that interval;
//! installs in this process invalidate their key at once. It never opens files
//! itself and never decides what is valid content: the store does both.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{ObjectKey, OpenObject};

#[derive(Debug)]
struct Entry {
    object: Arc<OpenObject>,
    checked: Instant,
}

/// The cache. `capacity` 0 turns it off.
#[derive(Debug)]
pub struct OpenCache {
    entries: RwLock<HashMap<ObjectKey, Entry>>,
    capacity: usize,
    valid_for: Duration,
}

impl OpenCache {
    pub fn new(capacity: usize, valid_for: Duration) -> Self {
        OpenCache {
            entries: RwLock::new(HashMap::new()),
            capacity,
            valid_for,
        }
    }

    /// The cached object for `key` if it was checked less than the validity
    /// interval before `now`.
    pub fn get(&self, key: &ObjectKey, now: Instant) -> Option<Arc<OpenObject>> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        (now.saturating_duration_since(entry.checked) < self.valid_for)
            .then(|| entry.object.clone())
    }

    /// Remembers `object` for `key`. When full, expired entries are dropped
    /// first; if it is still full the object is simply not cached.
    pub fn put(&self, key: &ObjectKey, object: Arc<OpenObject>, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            let valid_for = self.valid_for;
            entries.retain(|_, e| now.saturating_duration_since(e.checked) < valid_for);
            if entries.len() >= self.capacity {
                return;
            }
        }
        entries.insert(
            key.clone(),
            Entry {
                object,
                checked: now,
            },
        );
    }

    /// Forgets `key` (after an install or eviction of it).
    pub fn invalidate(&self, key: &ObjectKey) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key);
        }
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |e| e.len())
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn object() -> std::io::Result<Arc<OpenObject>> {
        Ok(Arc::new(OpenObject::new(
            tempfile::tempfile()?,
            0,
            SystemTime::UNIX_EPOCH,
            "e".into(),
        )))
    }

    fn key(s: &str) -> ObjectKey {
        ObjectKey::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn entries_expire_and_are_invalidated() -> std::io::Result<()> {
        let cache = OpenCache::new(4, Duration::from_secs(1));
        let t0 = Instant::now();
        cache.put(&key("a"), object()?, t0);
        assert!(cache
            .get(&key("a"), t0 + Duration::from_millis(999))
            .is_some());
        assert!(cache.get(&key("a"), t0 + Duration::from_secs(1)).is_none());
        cache.invalidate(&key("a"));
        assert!(cache.get(&key("a"), t0).is_none());
        Ok(())
    }

    #[test]
    fn the_bound_holds_and_expired_entries_make_room() -> std::io::Result<()> {
        let cache = OpenCache::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        cache.put(&key("a"), object()?, t0);
        cache.put(&key("b"), object()?, t0);
        cache.put(&key("c"), object()?, t0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("c"), t0).is_none());
        let later = t0 + Duration::from_secs(2);
        cache.put(&key("c"), object()?, later);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key("c"), later).is_some());
        let off = OpenCache::new(0, Duration::from_secs(1));
        off.put(&key("a"), object()?, t0);
        assert!(off.is_empty());
        Ok(())
    }
}
