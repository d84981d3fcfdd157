//! Rendezvous (highest random weight) hashing: which of several places (the
//! disks in a box, later the appliances in a site) an object belongs on, by
//! its key and the places' identities.
//!
//! Owns: the stable hash, the first choice and the full order of preference
//! (the fill falls back down it when a disk is full or lost). Adding or losing
//! a place moves only the objects that place wins or held. It is pure: it never
//! looks at a filesystem, and lookups never depend on it (the store's index
//! records where each object really is).

/// A stable 64-bit hash (FNV-1a followed by a SplitMix64 finaliser). It must never
/// change: it decides where existing content lives.
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate parts so that ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The index in `disk_ids` of the disk that `key` is placed on, or `None` when
/// there is no disk. Ties (astronomically rare) go to the lower index.
pub fn place(key: &str, disk_ids: &[&str]) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, id) in disk_ids.iter().enumerate() {
        let score = stable_hash(&[id.as_bytes(), key.as_bytes()]);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Every index of `ids`, best first: the order in which `key` prefers them.
/// The first is [`place`]'s choice; losing it promotes the second, and so on.
pub fn rank(key: &str, ids: &[&str]) -> Vec<usize> {
    let mut scored: Vec<(u64, usize)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (stable_hash(&[id.as_bytes(), key.as_bytes()]), i))
        .collect();
    // Highest score first; ties to the lower index, as in `place`.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PINNED_D0_K: u64 = 9_156_246_437_908_124_892;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("titles/{i}/video.mp4")).collect()
    }

    #[test]
    fn no_disk_no_place() {
        assert_eq!(place("a", &[]), None);
        assert_eq!(place("a", &["d0"]), Some(0));
    }

    #[test]
    fn the_hash_is_stable_across_releases() {
        // Pinned values: if these change, every existing store would be re-placed.
        assert_eq!(stable_hash(&[b"/d0", b"k"]), PINNED_D0_K);
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
    }

    #[test]
    fn spread_is_even_within_ten_percent() {
        let disks = ["/srv/d0", "/srv/d1", "/srv/d2", "/srv/d3"];
        let mut counts = [0usize; 4];
        for k in keys(20_000) {
            if let Some(i) = place(&k, &disks) {
                counts[i] += 1;
            }
        }
        for c in counts {
            assert!((4500..=5500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn removing_a_disk_moves_only_its_objects() {
        let four = ["/srv/d0", "/srv/d1", "/srv/d2", "/srv/d3"];
        let three = ["/srv/d0", "/srv/d1", "/srv/d3"];
        for k in keys(5_000) {
            let before = place(&k, &four).map(|i| four[i]);
            let after = place(&k, &three).map(|i| three[i]);
            if before != Some("/srv/d2") {
                assert_eq!(before, after, "{k}");
            }
        }
    }

    proptest! {
        #[test]
        fn rank_starts_with_place_and_names_every_id_once(key in "[a-z0-9/]{1,30}", n in 0usize..6) {
            let ids: Vec<String> = (0..n).map(|i| format!("/srv/d{i}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let order = rank(&key, &refs);
            prop_assert_eq!(order.first().copied(), place(&key, &refs));
            let mut sorted = order.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        }

        #[test]
        fn adding_a_disk_moves_objects_only_onto_it(key in "[a-z0-9/]{1,30}") {
            let three = ["a", "b", "c"];
            let four = ["a", "b", "c", "d"];
            let before = place(&key, &three).map(|i| three[i]);
            let after = place(&key, &four).map(|i| four[i]);
            prop_assert!(after == before || after == Some("d"));
        }
    }
}
