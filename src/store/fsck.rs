//! Finding bit rot: re-hashing stored objects against the digest recorded
//! when they were installed, and quarantining the ones that no longer match,
//! so that they are never served again.
//!
//! Owns: the check of one object (SHA-256 over its bytes, read with `pread`
//! in [`CHUNK`] pieces, paced by the caller), the pass over one drive, the
//! quarantine (out of the index first, then renamed into `quarantine/` on the
//! same drive, outside `objects/`, where nothing serves from), and the
//! counts `/metrics` shows. Pages it reads that were not in the page cache
//! are dropped from it again, so a pass does not push hot content out. It
//! must never change an object's bytes, never delete one (a quarantined file
//! stays for the operator to look at), and never run on the event loop.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sha2::{Digest as _, Sha256};

use super::{ObjectKey, Store, StoreError, OBJECTS_DIR};
use eddy_proto::Digest;

/// Name of the directory below a disk root that holds quarantined objects.
pub const QUARANTINE_DIR: &str = "quarantine";

/// The read size of a check: large enough for readahead to stream, small
/// enough that pacing is smooth.
const CHUNK: usize = 1 << 20;

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The bytes hash to the recorded digest.
    Good,
    /// They do not: bit rot, or a file changed behind eddy's back.
    Mismatch { got: Digest },
}

/// What a pass over one drive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub checked: u64,
    pub bytes: u64,
    /// Objects whose bytes did not match, with where they went when repaired.
    pub mismatches: Vec<(ObjectKey, Option<PathBuf>)>,
    /// Objects that could not be read (the drive is told; a drive fault
    /// fails it and ends the pass).
    pub errors: u64,
}

/// Counts over every pass since the start, for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub checked: AtomicU64,
    pub bytes: AtomicU64,
    pub mismatches: AtomicU64,
    pub errors: AtomicU64,
}

/// SHA-256 of the first `len` bytes of `file`, read in [`CHUNK`] pieces;
/// `pace(n)` is called after each piece of `n` bytes (the caller's rate cap
/// sleeps there). Pages that were not cached before are dropped after.
pub fn hash(file: &File, len: u64, pace: &mut dyn FnMut(u64)) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK)).max(1)];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from(len - at).map_or(buf.len(), |n| n.min(buf.len()));
        let was_cached = super::page_cache::cached_pages(file, at, n as u64).is_some_and(|p| p > 0);
        file.read_exact_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        if !was_cached {
            let _ = nix::fcntl::posix_fadvise(
                file,
                i64::try_from(at).unwrap_or(i64::MAX),
                i64::try_from(n).unwrap_or(i64::MAX),
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
        }
        at += n as u64;
        pace(n as u64);
    }
    Ok(Digest(hasher.finalize().into()))
}

impl Store {
    /// Checks every object the index holds on `disk` (in key order), paced
    /// by `pace`; with `repair`, quarantines each mismatch. A drive fault
    /// fails the drive and ends the pass; a drive out of service is skipped.
    pub fn fsck_disk(
        &self,
        disk: usize,
        repair: bool,
        counters: &Counters,
        pace: &mut dyn FnMut(u64),
    ) -> Pass {
        let mut pass = Pass::default();
        let mut keys: Vec<(ObjectKey, super::Location)> = match self.index.read() {
            Ok(index) => index
                .iter()
                .filter(|(_, l)| l.disk == disk)
                .map(|(k, l)| (k.clone(), l.clone()))
                .collect(),
            Err(_) => return pass,
        };
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, loc) in keys {
            if !self.disks.get(disk).is_some_and(super::Disk::serves) {
                break;
            }
            match self.fsck_object(&key, &loc, pace) {
                Ok(None) => {}
                Ok(Some(verdict)) => {
                    pass.checked += 1;
                    pass.bytes += loc.len;
                    counters.checked.fetch_add(1, Relaxed);
                    counters.bytes.fetch_add(loc.len, Relaxed);
                    let Verdict::Mismatch { got } = verdict else {
                        continue;
                    };
                    counters.mismatches.fetch_add(1, Relaxed);
                    tracing::error!(key = %key, want = %loc.digest.to_hex(), got = %got.to_hex(), "fsck: the bytes do not match their digest");
                    let moved = if repair {
                        match self.quarantine(&key, &loc) {
                            Ok(to) => {
                                tracing::warn!(key = %key, to = %to.display(), "fsck: quarantined; never served again");
                                Some(to)
                            }
                            Err(e) => {
                                tracing::error!(key = %key, error = %e, "fsck: cannot quarantine");
                                None
                            }
                        }
                    } else {
                        None
                    };
                    pass.mismatches.push((key, moved));
                }
                Err(e) => {
                    pass.errors += 1;
                    counters.errors.fetch_add(1, Relaxed);
                    tracing::warn!(key = %key, error = %e, "fsck: cannot read an object");
                    if self.drive_fault(disk, &e) {
                        break;
                    }
                }
            }
        }
        pass
    }

    /// Checks one object against `loc`'s digest: `None` when it is no longer
    /// the indexed version (replaced or evicted meanwhile).
    fn fsck_object(
        &self,
        key: &ObjectKey,
        loc: &super::Location,
        pace: &mut dyn FnMut(u64),
    ) -> io::Result<Option<Verdict>> {
        let object = match self.open_uncached(key) {
            Ok(o) => o,
            Err(StoreError::NotFound | StoreError::DiskFailed) => return Ok(None),
            Err(StoreError::Io { source, .. }) => return Err(source),
            Err(other) => return Err(io::Error::other(other.to_string())),
        };
        if object.disk != loc.disk || object.len != loc.len {
            return Ok(None);
        }
        let got = hash(&object.file, object.len, pace)?;
        // Still the version that was checked? An install may have replaced it.
        match self.location(key) {
            Some(now) if now.disk == loc.disk && now.digest == loc.digest => {}
            _ => return Ok(None),
        }
        Ok(Some(if got == loc.digest {
            Verdict::Good
        } else {
            Verdict::Mismatch { got }
        }))
    }

    /// Takes `key` out of service: out of the index (from this instant no
    /// request finds it), then its file renamed into `quarantine/` on its
    /// drive. The next fill fetches it again. Returns where it went.
    pub fn quarantine(
        &self,
        key: &ObjectKey,
        loc: &super::Location,
    ) -> Result<PathBuf, StoreError> {
        let disk = self.disks.get(loc.disk).ok_or(StoreError::NotFound)?;
        if let Some(now) = self.location(key) {
            if now.disk == loc.disk && now.digest == loc.digest {
                self.remove(key);
            }
        }
        let from = disk.root.join(OBJECTS_DIR).join(key.as_str());
        let dir = disk.root.join(QUARANTINE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let flat: String = key
            .as_str()
            .chars()
            .map(|c| if c == '/' { '_' } else { c })
            .collect();
        let to = dir.join(format!("{flat}.{}", loc.digest.to_hex()));
        std::fs::rename(&from, &to).map_err(|e| StoreError::io(&from, e))?;
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{import, CachePolicy};
    use std::time::{Duration, Instant};

    #[test]
    fn a_flipped_byte_is_found_and_quarantined_and_never_served(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("t"))?;
        for i in 0..6u8 {
            std::fs::write(
                src.join(format!("t/{i}.ts")),
                vec![i; 300_000 + usize::from(i)],
            )?;
        }
        let roots = vec![dir.path().join("d0"), dir.path().join("d1")];
        import::prepare_disks(&roots)?;
        let cache = CachePolicy {
            entries: 0,
            valid_for: Duration::ZERO,
        };
        let (store, _) = Store::open(&roots, cache)?;
        import::import_tree(&store, &src)?;
        let key = ObjectKey::parse("t/3.ts")?;
        let loc = store.location(&key).ok_or("indexed")?;
        // Flip one byte in place, as rot would (same inode, same length).
        let path = roots[loc.disk].join(OBJECTS_DIR).join("t/3.ts");
        let f = std::fs::OpenOptions::new().write(true).open(&path)?;
        f.write_all_at(&[0xff], 123_456)?;
        drop(f);
        let counters = Counters::default();
        let mut paced = 0u64;
        let mut all = Pass::default();
        for d in 0..roots.len() {
            let pass = store.fsck_disk(d, true, &counters, &mut |n| paced += n);
            all.checked += pass.checked;
            all.mismatches.extend(pass.mismatches);
        }
        assert_eq!(all.checked, 6);
        assert_eq!(all.mismatches.len(), 1);
        assert_eq!(all.mismatches[0].0, key);
        let moved = all.mismatches[0].1.clone().ok_or("quarantined")?;
        assert!(moved.starts_with(roots[loc.disk].join(QUARANTINE_DIR)));
        assert!(moved.exists() && !path.exists());
        assert_eq!(counters.mismatches.load(Relaxed), 1);
        assert!(paced >= 6 * 300_000, "every byte was paced: {paced}");
        assert!(matches!(
            store.object(key.as_str(), Instant::now()),
            Err(StoreError::NotFound)
        ));
        // A second pass finds nothing more.
        let again: usize = (0..roots.len())
            .map(|d| {
                store
                    .fsck_disk(d, true, &counters, &mut |_| {})
                    .mismatches
                    .len()
            })
            .sum();
        assert_eq!(again, 0);
        Ok(())
    }
}

/// Checks every drive in service at once, one reader per drive, each capped
/// at `bytes_per_sec` (0: as fast as the drive goes); with `repair`,
/// quarantines what does not match. Blocks until every drive is done.
pub fn check_all(store: &Store, repair: bool, bytes_per_sec: u64) -> Vec<Pass> {
    std::thread::scope(|scope| {
        let passes: Vec<_> = (0..store.disks.len())
            .map(|disk| {
                scope.spawn(move || {
                    let start = std::time::Instant::now();
                    let mut bucket = eddy_fill::rate::TokenBucket::new(
                        bytes_per_sec.saturating_mul(8),
                        CHUNK as u64,
                        start.elapsed(),
                    );
                    let mut pace = |n: u64| {
                        let wait = bucket.take(n, start.elapsed());
                        if !wait.is_zero() {
                            std::thread::sleep(wait);
                        }
                    };
                    store.fsck_disk(disk, repair, &store.fsck, &mut pace)
                })
            })
            .collect();
        passes
            .into_iter()
            .map(|p| p.join().unwrap_or_default())
            .collect()
    })
}

/// The background check of a running server: a pass over every drive
/// `first_after` the start, then one each `every` after the previous ended,
/// and one at once when [`Schedule::now`] is called (`POST /store/fsck`).
#[derive(Debug, Default)]
pub struct Schedule {
    asked: std::sync::Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Schedule {
    /// Starts a pass now (or right after the one running).
    pub fn now(&self) {
        *self
            .asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Waits up to `d` or until asked; true when asked.
    fn wait(&self, d: std::time::Duration) -> bool {
        let guard = self
            .asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut asked, _) = self
            .wake
            .wait_timeout_while(guard, d, |asked| !*asked)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *asked, false)
    }
}

/// Starts the background check on a thread of its own.
pub fn start_background(
    store: std::sync::Arc<Store>,
    schedule: std::sync::Arc<Schedule>,
    bytes_per_sec: u64,
    first_after: std::time::Duration,
    every: std::time::Duration,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("eddy-fsck".into())
        .spawn(move || {
            let mut pause = first_after;
            loop {
                schedule.wait(pause);
                let passes = check_all(&store, true, bytes_per_sec);
                let found: usize = passes.iter().map(|p| p.mismatches.len()).sum();
                let checked: u64 = passes.iter().map(|p| p.checked).sum();
                tracing::info!(
                    checked,
                    mismatches = found,
                    "fsck: pass over every drive done"
                );
                pause = every;
            }
        })
        .map(|_| ())
}
