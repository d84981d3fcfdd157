//! The fill plan: from a verified manifest, what the store holds and how
//! much room each disk has, decide what to fetch (in priority order, onto
//! which disk, resumed from how many staged bytes), what to keep, what to
//! evict and which staged leftovers to discard.
//!
//! Owns: the space rule (a disk is never planned past its free space minus
//! the reserve, counting the room that evictions and discarded leftovers
//! give back), the priority rule (most popular first, so a short disk drops
//! the tail), placement by rendezvous over the usable disks (falling down
//! the order when the first choice is full), and resuming on the disk that
//! already holds a staged part. It is pure: values in, a [`Plan`] out. It
//! must never look at a disk or decide how to download.

use std::collections::HashMap;

use eddy_proto::manifest::Entry;
use eddy_proto::{rendezvous, Digest, ObjectKey};

/// A disk as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Its identity for placement (the root as configured).
    pub id: String,
    /// Bytes available to the fill now.
    pub free: u64,
    /// False for a disk that must not receive content (failed, draining).
    pub usable: bool,
}

/// An object the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub key: ObjectKey,
    pub len: u64,
    /// The recorded content digest.
    pub digest: Digest,
    pub disk: usize,
}

/// A staged part left by an earlier fill: `staging/<digest>.part`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub disk: usize,
    pub digest: Digest,
    pub len: u64,
}

/// One object to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub entry: Entry,
    pub disk: usize,
    /// Bytes already staged for it on that disk (resume from here).
    pub staged: u64,
}

/// Why an object of the manifest is not fetched in this fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// No usable disk has room for it after the reserve.
    NoSpace,
    /// No disk is usable at all.
    NoDisk,
}

/// What a fill will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In priority order (rank, then key).
    pub fetch: Vec<Fetch>,
    pub keep: Vec<ObjectKey>,
    /// Held objects the manifest no longer names.
    pub evict: Vec<Held>,
    /// Staged parts no fetch resumes.
    pub discard: Vec<Staged>,
    pub skipped: Vec<(Entry, SkipReason)>,
}

impl Plan {
    /// Bytes the fetches still have to download.
    pub fn bytes_to_fetch(&self) -> u64 {
        self.fetch
            .iter()
            .map(|f| f.entry.size.saturating_sub(f.staged))
            .sum()
    }
}

/// Plans a fill. `reserve` is kept free on every disk.
pub fn plan(
    entries: &[Entry],
    held: &[Held],
    disks: &[Disk],
    staged: &[Staged],
    reserve: u64,
) -> Plan {
    let mut out = Plan::default();
    let held_by_key: HashMap<&str, &Held> = held.iter().map(|h| (h.key.as_str(), h)).collect();
    let wanted: HashMap<&str, &Entry> = entries.iter().map(|e| (e.key.as_str(), e)).collect();

    // Room per disk, with what evictions give back (they run before the
    // installs that need the room).
    let mut budget: Vec<i128> = disks
        .iter()
        .map(|d| i128::from(d.free) - i128::from(reserve))
        .collect();
    for h in held {
        if !wanted.contains_key(h.key.as_str()) {
            if let Some(b) = budget.get_mut(h.disk) {
                *b += i128::from(h.len);
            }
            out.evict.push(h.clone());
        }
    }

    // Staged parts by digest (the first one wins if two disks hold one).
    let mut parts: HashMap<Digest, &Staged> = HashMap::new();
    for s in staged {
        parts.entry(s.digest).or_insert(s);
    }

    let mut todo: Vec<&Entry> = Vec::new();
    for e in entries {
        match held_by_key.get(e.key.as_str()) {
            Some(h) if h.digest == e.sha256 && h.len == e.size => out.keep.push(e.key.clone()),
            _ => todo.push(e),
        }
    }
    todo.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.key.cmp(&b.key)));

    let usable: Vec<usize> = (0..disks.len()).filter(|&i| disks[i].usable).collect();
    let ids: Vec<&str> = usable.iter().map(|&i| disks[i].id.as_str()).collect();
    let mut resumed: Vec<Digest> = Vec::new();
    for e in todo {
        if usable.is_empty() {
            out.skipped.push((e.clone(), SkipReason::NoDisk));
            continue;
        }
        let part = parts
            .get(&e.sha256)
            .filter(|p| disks.get(p.disk).is_some_and(|d| d.usable) && !resumed.contains(&p.digest))
            .copied();
        // The disk holding a part first (its bytes are already paid for),
        // then the rendezvous order.
        let mut order: Vec<usize> = part.map(|p| p.disk).into_iter().collect();
        order.extend(
            rendezvous::rank(e.key.as_str(), &ids)
                .into_iter()
                .map(|i| usable[i])
                .filter(|&d| Some(d) != part.map(|p| p.disk)),
        );
        let choice = order.into_iter().find_map(|d| {
            let staged = part
                .filter(|p| p.disk == d)
                .map_or(0, |p| p.len.min(e.size));
            let need = i128::from(e.size - staged);
            (budget[d] >= need).then_some((d, staged, need))
        });
        match choice {
            Some((disk, staged, need)) => {
                budget[disk] -= need;
                if staged > 0 || part.is_some_and(|p| p.disk == disk) {
                    resumed.push(e.sha256);
                }
                out.fetch.push(Fetch {
                    entry: e.clone(),
                    disk,
                    staged,
                });
            }
            None => out.skipped.push((e.clone(), SkipReason::NoSpace)),
        }
    }
    for s in staged {
        if !resumed.contains(&s.digest) || parts.get(&s.digest).is_some_and(|p| p.disk != s.disk) {
            out.discard.push(s.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).unwrap_or_else(|e| panic!("{e}"))
    }

    fn entry(i: u32, size: u64) -> Entry {
        Entry {
            key: key(&format!("t/{i}.mp4")),
            size,
            sha256: Digest([i as u8; 32]),
            rank: i,
            sources: vec!["http://o/x".into()],
        }
    }

    fn disks(free: &[u64]) -> Vec<Disk> {
        free.iter()
            .enumerate()
            .map(|(i, &f)| Disk {
                id: format!("/srv/d{i}"),
                free: f,
                usable: true,
            })
            .collect()
    }

    #[test]
    fn an_empty_store_fetches_everything_by_rank() {
        let entries = vec![entry(3, 10), entry(1, 10), entry(2, 10)];
        let p = plan(&entries, &[], &disks(&[1000, 1000]), &[], 0);
        let ranks: Vec<u32> = p.fetch.iter().map(|f| f.entry.rank).collect();
        assert_eq!(ranks, vec![1, 2, 3]);
        assert_eq!(p.bytes_to_fetch(), 30);
        assert!(p.keep.is_empty() && p.evict.is_empty() && p.skipped.is_empty());
    }

    #[test]
    fn held_objects_are_kept_changed_ones_fetched_dropped_ones_evicted() {
        let entries = vec![entry(1, 10), entry(2, 10)];
        let held = vec![
            Held {
                key: key("t/1.mp4"),
                len: 10,
                digest: Digest([1; 32]),
                disk: 0,
            },
            Held {
                key: key("t/2.mp4"),
                len: 10,
                digest: Digest([9; 32]),
                disk: 0,
            },
            Held {
                key: key("t/old.mp4"),
                len: 50,
                digest: Digest([7; 32]),
                disk: 1,
            },
        ];
        let p = plan(&entries, &held, &disks(&[100, 100]), &[], 0);
        assert_eq!(p.keep, vec![key("t/1.mp4")]);
        assert_eq!(p.fetch.len(), 1);
        assert_eq!(p.fetch[0].entry.key, key("t/2.mp4"));
        assert_eq!(p.evict.len(), 1);
        assert_eq!(p.evict[0].key, key("t/old.mp4"));
    }

    #[test]
    fn a_staged_part_is_resumed_where_it_is_and_strays_are_discarded() {
        let entries = vec![entry(1, 100)];
        let staged = vec![
            Staged {
                disk: 1,
                digest: Digest([1; 32]),
                len: 40,
            },
            Staged {
                disk: 0,
                digest: Digest([42; 32]),
                len: 5,
            },
        ];
        let p = plan(&entries, &[], &disks(&[1000, 1000]), &staged, 0);
        assert_eq!(p.fetch[0].disk, 1);
        assert_eq!(p.fetch[0].staged, 40);
        assert_eq!(p.bytes_to_fetch(), 60);
        assert_eq!(p.discard, vec![staged[1].clone()]);
    }

    #[test]
    fn a_short_disk_drops_the_tail_and_the_reserve_is_kept() {
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 100)).collect();
        let p = plan(&entries, &[], &disks(&[550]), &[], 100);
        let ranks: Vec<u32> = p.fetch.iter().map(|f| f.entry.rank).collect();
        assert_eq!(ranks, vec![1, 2, 3, 4]);
        assert_eq!(p.skipped.len(), 6);
        assert!(p.skipped.iter().all(|(_, r)| *r == SkipReason::NoSpace));
    }

    #[test]
    fn evictions_make_room_and_no_disk_means_nothing() {
        let entries = vec![entry(1, 100)];
        let held = vec![Held {
            key: key("t/old.mp4"),
            len: 100,
            digest: Digest([7; 32]),
            disk: 0,
        }];
        let p = plan(&entries, &held, &disks(&[10]), &[], 0);
        assert_eq!(p.fetch.len(), 1);
        let mut none = disks(&[1000]);
        none[0].usable = false;
        let p = plan(&entries, &[], &none, &[], 0);
        assert_eq!(p.skipped[0].1, SkipReason::NoDisk);
    }

    proptest! {
        #[test]
        fn never_past_free_space_and_popular_first(
            sizes in proptest::collection::vec(1u64..500, 0..40),
            free in proptest::collection::vec(0u64..3000, 1..4),
            reserve in 0u64..200,
            held_n in 0usize..10,
        ) {
            let entries: Vec<Entry> = sizes.iter().enumerate().map(|(i, &s)| entry(i as u32 + 1, s)).collect();
            let held: Vec<Held> = (0..held_n).map(|i| Held {
                key: key(&format!("old/{i}")), len: 50, digest: Digest([200; 32]), disk: i % free.len(),
            }).collect();
            let ds = disks(&free);
            let p = plan(&entries, &held, &ds, &[], reserve);
            for (d, disk) in ds.iter().enumerate() {
                let used: u64 = p.fetch.iter().filter(|f| f.disk == d).map(|f| f.entry.size).sum();
                let back: u64 = p.evict.iter().filter(|h| h.disk == d).map(|h| h.len).sum();
                prop_assert!(i128::from(used) <= i128::from(disk.free) + i128::from(back) - i128::from(reserve) || used == 0);
            }
            // Every manifest object is fetched, kept or skipped, exactly once.
            prop_assert_eq!(p.fetch.len() + p.keep.len() + p.skipped.len(), entries.len());
            // With equal sizes, what is fetched is a popularity prefix.
            if sizes.iter().all(|&s| s == sizes[0]) && free.len() == 1 {
                let max_fetched = p.fetch.iter().map(|f| f.entry.rank).max().unwrap_or(0);
                let min_skipped = p.skipped.iter().map(|(e, _)| e.rank).min().unwrap_or(u32::MAX);
                prop_assert!(max_fetched < min_skipped);
            }
        }
    }
}
