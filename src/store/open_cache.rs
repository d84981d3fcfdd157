//! A bounded cache of opened objects, so that a hot object costs no open,
//! stat or xattr call per request.
//!
//! Owns: the map from key to an opened [`OpenObject`] and when it was last
//! checked, the bound on entries (file descriptors), and expiry. An entry older
//! than the validity interval is handed out as stale, for the store to check
//! against the file now at its path (and reopen it if it changed), so a
//! version installed by another process (`eddy store import` while serving)
//! is served within that interval;
//! installs in this process invalidate their key at once. When full, the
//! oldest insertion makes room (FIFO, O(1) amortised: a working set larger than
//! the cache must not turn every miss into a scan of the whole cache). It never
//! opens files itself and never decides what is valid content: the store does
//! both.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{ObjectKey, OpenObject};

#[derive(Debug)]
struct Entry {
    object: Arc<OpenObject>,
    checked: Instant,
}

/// The map, and the order in which entries went in. `order` may hold stale
/// items (for keys since replaced or invalidated): an item is live only while
/// the map holds that key with that `checked` time.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<ObjectKey, Entry>,
    order: VecDeque<(ObjectKey, Instant)>,
}

impl Entries {
    fn is_live(&self, key: &ObjectKey, checked: Instant) -> bool {
        self.map.get(key).is_some_and(|e| e.checked == checked)
    }

    /// Removes the oldest live entry.
    fn evict_oldest(&mut self) {
        while let Some((key, checked)) = self.order.pop_front() {
            if self.is_live(&key, checked) {
                self.map.remove(&key);
                return;
            }
        }
    }

    /// Drops stale order items once they outnumber the entries, so that the
    /// queue stays within twice the capacity (each item is dropped once: O(1)
    /// amortised per insertion).
    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len().max(16) {
            let order = std::mem::take(&mut self.order);
            self.order = order
                .into_iter()
                .filter(|(k, c)| self.is_live(k, *c))
                .collect();
        }
    }
}

/// What the cache holds for a key.
#[derive(Debug)]
pub enum Cached {
    /// Checked within the validity interval.
    Fresh(Arc<OpenObject>),
    /// Checked longer ago: the file at its path may have changed since.
    Stale(Arc<OpenObject>),
}

impl Cached {
    /// The object, if fresh.
    pub fn fresh(self) -> Option<Arc<OpenObject>> {
        match self {
            Cached::Fresh(o) => Some(o),
            Cached::Stale(_) => None,
        }
    }
}

/// The cache. `capacity` 0 turns it off.
#[derive(Debug)]
pub struct OpenCache {
    entries: RwLock<Entries>,
    capacity: usize,
    valid_for: Duration,
}

impl OpenCache {
    pub fn new(capacity: usize, valid_for: Duration) -> Self {
        OpenCache {
            entries: RwLock::new(Entries::default()),
            capacity,
            valid_for,
        }
    }

    /// The object kept for the key `key` (a valid key's text: no copy is
    /// made to look it up), fresh if it was checked within the validity
    /// interval. A stale one is to be checked and then put again.
    pub fn get(&self, key: &str, now: Instant) -> Option<Cached> {
        let entries = self.entries.read().ok()?;
        let entry = entries.map.get(key)?;
        let object = entry.object.clone();
        Some(
            if now.saturating_duration_since(entry.checked) < self.valid_for {
                Cached::Fresh(object)
            } else {
                Cached::Stale(object)
            },
        )
    }

    /// Remembers `object` for `key`. When full, the oldest entry goes.
    pub fn put(&self, key: &ObjectKey, object: Arc<OpenObject>, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if !entries.map.contains_key(key) {
            while entries.map.len() >= self.capacity {
                entries.evict_oldest();
            }
        }
        entries.map.insert(
            key.clone(),
            Entry {
                object,
                checked: now,
            },
        );
        entries.order.push_back((key.clone(), now));
        entries.compact();
    }

    /// Marks the entry of `key` checked at `now`, if it still holds `object`
    /// (a stale entry its caller found unchanged). False when the entry went
    /// or was replaced meanwhile (an install invalidates its key): the caller
    /// must not serve `object` then.
    pub fn refresh(&self, key: &str, object: &Arc<OpenObject>, now: Instant) -> bool {
        let Ok(mut entries) = self.entries.write() else {
            return false;
        };
        let Some((stored, entry)) = entries.map.get_key_value(key) else {
            return false;
        };
        if !Arc::ptr_eq(&entry.object, object) {
            return false;
        }
        let stored = stored.clone();
        if let Some(entry) = entries.map.get_mut(key) {
            entry.checked = now;
        }
        entries.order.push_back((stored, now));
        entries.compact();
        true
    }

    /// Forgets `key` (after an install or eviction of it).
    pub fn invalidate(&self, key: &ObjectKey) {
        if let Ok(mut entries) = self.entries.write() {
            entries.map.remove(key);
        }
    }

    /// Forgets everything (a drive changed state: its descriptors go).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            *entries = Entries::default();
        }
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |e| e.map.len())
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
            .get("a", t0 + Duration::from_millis(999))
            .and_then(Cached::fresh)
            .is_some());
        assert!(cache
            .get("a", t0 + Duration::from_secs(1))
            .and_then(Cached::fresh)
            .is_none());
        assert!(
            matches!(
                cache.get("a", t0 + Duration::from_secs(1)),
                Some(Cached::Stale(_))
            ),
            "an expired entry is kept, to be checked"
        );
        cache.invalidate(&key("a"));
        assert!(cache.get("a", t0).is_none());
        Ok(())
    }

    #[test]
    fn a_refresh_keeps_only_the_object_still_cached() -> std::io::Result<()> {
        let cache = OpenCache::new(4, Duration::from_secs(1));
        let t0 = Instant::now();
        let first = object()?;
        cache.put(&key("a"), first.clone(), t0);
        let later = t0 + Duration::from_secs(2);
        assert!(cache.refresh("a", &first, later));
        assert!(cache.get("a", later).and_then(Cached::fresh).is_some());
        // Replaced (a newer open) or invalidated (an install) meanwhile: the
        // stale object is not put back.
        cache.put(&key("a"), object()?, later);
        assert!(!cache.refresh("a", &first, later));
        cache.invalidate(&key("a"));
        assert!(!cache.refresh("a", &first, later));
        assert!(cache.get("a", later).is_none());
        Ok(())
    }

    #[test]
    fn the_bound_holds_and_the_oldest_entry_makes_room() -> std::io::Result<()> {
        let cache = OpenCache::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        cache.put(&key("a"), object()?, t0);
        cache.put(&key("b"), object()?, t0);
        cache.put(&key("c"), object()?, t0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a", t0).is_none(), "the oldest went");
        assert!(cache.get("b", t0).is_some());
        assert!(cache.get("c", t0).is_some());
        // Putting a cached key again replaces it without evicting another.
        let t1 = t0 + Duration::from_millis(10);
        cache.put(&key("b"), object()?, t1);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("c", t1).is_some());
        // b was re-put after c, so c is now the oldest; an invalidated key's
        // stale order item is skipped.
        cache.invalidate(&key("c"));
        cache.put(&key("d"), object()?, t1);
        cache.put(&key("e"), object()?, t1);
        assert!(cache.get("b", t1).is_none());
        assert!(cache.get("d", t1).is_some() && cache.get("e", t1).is_some());
        let off = OpenCache::new(0, Duration::from_secs(1));
        off.put(&key("a"), object()?, t0);
        assert!(off.is_empty());
        Ok(())
    }

    #[test]
    fn the_order_queue_stays_bounded_under_reputs() -> std::io::Result<()> {
        let cache = OpenCache::new(8, Duration::from_secs(1));
        let t0 = Instant::now();
        let obj = object()?;
        for i in 0..10_000u64 {
            let k = key(&format!("k{}", i % 5));
            cache.put(&k, obj.clone(), t0 + Duration::from_micros(i));
            let entries = cache.entries.read().expect("lock");
            assert!(entries.order.len() <= 2 * entries.map.len().max(16) + 1);
        }
        assert_eq!(cache.len(), 5);
        Ok(())
    }
}
