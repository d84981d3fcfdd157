//! The store: content on N disk roots, one filesystem per drive, no RAID.
//!
//! Owns: the on-disk layout (`<root>/objects/<key>` for visible objects,
//! `<root>/staging/` for files being written), the in-memory index rebuilt from
//! the disks at start, opening an object for serving, and installing new objects
//! atomically (write to staging, fsync, rename into place, fsync the directory).
//! It never speaks HTTP and never rewrites a visible file in place: a new version
//! is always a new inode renamed over the old path, so a reader that has the old
//! file open keeps reading consistent bytes.
//!
//! Serving opens only paths the index produced, and opens them with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` relative to the disk's
//! `objects/` directory, so even a symlink planted later cannot lead outside.

pub mod disk;
pub mod fsck;
pub mod import;
pub mod install;
pub mod mapped;
pub mod metrics;
pub mod open_cache;
pub mod page_cache;
pub mod popularity;
pub mod tree;

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

pub use disk::{Disk, DiskState, DiskStatus};
pub use eddy_proto::key::{KeyError, ObjectKey};
use eddy_proto::Digest;

/// Name of the directory below a disk root that holds visible objects.
pub const OBJECTS_DIR: &str = "objects";
/// Name of the directory below a disk root that holds files being written.
pub const STAGING_DIR: &str = "staging";
/// Extended attribute holding the hex SHA-256 of an object's content, written
/// on the staged inode before it becomes visible.
pub const DIGEST_XATTR: &str = "user.eddy.sha256";

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No disk root was given.
    #[error("no disk is configured")]
    NoDisks,
    /// Every configured disk failed to open.
    #[error("no disk is usable: {0}")]
    NoUsableDisk(String),
    /// The object is not in the index, or vanished between index and open.
    #[error("object not found")]
    NotFound,
    /// The object is on a drive that is out of service.
    #[error("the object's drive has failed")]
    DiskFailed,
    /// An I/O error on a disk, with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A name in an import source is not a valid key.
    #[error("{path}: not a valid object key: {reason}")]
    BadKey { path: PathBuf, reason: String },
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// An object opened for serving, with the metadata read from the open file
/// itself (so headers and bytes always describe the same inode).
#[derive(Debug)]
pub struct OpenObject {
    pub file: File,
    pub len: u64,
    /// Modification time, the basis of Last-Modified and the ETag.
    pub modified: SystemTime,
    /// Opaque part of the strong ETag (no quotes).
    pub etag: String,
    /// The file mapped into memory, made on first use by a transport that
    /// needs it and kept while the object stays open (see [`mapped`]).
    mapping: std::sync::OnceLock<bytes::Bytes>,
    /// When a window of this object was last found not in memory, on the
    /// serving clock of `serve::prefetch` (0: never). The store only keeps
    /// the value; what it means for sending is decided there.
    last_cold: std::sync::atomic::AtomicU64,
    /// Reads of this object running on the blocking pool, counted by
    /// `serve::prefetch`. While one runs, the pages it reads are in the page
    /// cache but locked until the drive answers: residency checks call them
    /// resident, and a send from them waits for the drive. The store only
    /// keeps the count.
    reads_in_flight: std::sync::atomic::AtomicU32,
    /// The key's request counters (see [`popularity`]).
    pub counts: Arc<popularity::Counts>,
    /// Index into [`Store::disks`] of the drive it was opened from.
    pub disk: usize,
    /// Which file this is (from the open file's metadata): a cached object
    /// whose path still names the same file is not reopened.
    identity: Option<Identity>,
    /// What a reader derives once from this object's metadata and keeps while
    /// it stays open (the serving path: its rendered response fields,
    /// `serve::plan::respond::ObjectFields`). Opaque here: the store never
    /// reads it, so it knows nothing of serving.
    derived: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
}

/// Which file an open object is, as far as a stat of its path can tell: a
/// replaced file has another inode, and a file changed in place another
/// size or change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt as _;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    #[allow(clippy::unnecessary_cast)] // the stat fields' types vary by target
    fn of_stat(st: &nix::sys::stat::FileStat) -> Identity {
        Identity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }
}

impl OpenObject {
    /// An object opened from `file`, whose metadata the caller read from it.
    pub fn new(file: File, len: u64, modified: SystemTime, etag: String) -> OpenObject {
        OpenObject {
            file,
            len,
            modified,
            etag,
            mapping: std::sync::OnceLock::new(),
            last_cold: std::sync::atomic::AtomicU64::new(0),
            reads_in_flight: std::sync::atomic::AtomicU32::new(0),
            counts: Arc::default(),
            disk: 0,
            identity: None,
            derived: std::sync::OnceLock::new(),
        }
    }

    /// The value derived from this object by `make`, made on the first call
    /// and kept while the object stays open; `None` if another type was kept
    /// (one reader derives one type).
    pub fn derived<T: std::any::Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.derived
            .get_or_init(|| Box::new(make()))
            .downcast_ref::<T>()
    }

    /// Records that a window was found cold at `now` (serving clock).
    pub fn note_cold(&self, now: u64) {
        self.last_cold
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// When a window was last found cold (0: never).
    pub fn last_cold(&self) -> u64 {
        self.last_cold.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A read of this object began on the blocking pool (see
    /// [`OpenObject::reads_in_flight`]).
    pub fn read_began(&self) {
        self.reads_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A read counted by [`OpenObject::read_began`] ended.
    pub fn read_ended(&self) {
        self.reads_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Reads of this object running on the blocking pool now.
    pub fn reads_in_flight(&self) -> u32 {
        self.reads_in_flight
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The whole object as shared bytes over a read-only map (made once).
    pub fn bytes(&self) -> std::io::Result<bytes::Bytes> {
        if let Some(b) = self.mapping.get() {
            return Ok(b.clone());
        }
        let made = mapped::map(&self.file, self.len)?;
        // Two first users may race; either map is as good, keep the first.
        Ok(self.mapping.get_or_init(|| made).clone())
    }

    /// Whether every page of bytes `first..first + len` is in the page cache,
    /// counted exactly by the kernel ([`page_cache::cached_pages`]); `None`
    /// where the kernel cannot count (before Linux 6.5).
    pub fn is_all_resident_counted(&self, first: u64, len: u64) -> Option<bool> {
        let cached = page_cache::cached_pages(&self.file, first, len)?;
        let page = mapped::page_size() as u64;
        Some(cached >= page_cache::pages_spanned(first, len, page))
    }

    /// Whether every page of bytes `first..first + len` is in the page cache,
    /// by `mincore` over all of them on the object's map: exact, about 1.5 µs
    /// for one page and 50 µs for 2 MiB, for kernels that cannot count. Says
    /// yes when it cannot tell.
    pub fn is_all_resident_mapped(&self, first: u64, len: u64) -> bool {
        let (Ok(first), Ok(len)) = (usize::try_from(first), usize::try_from(len)) else {
            return true;
        };
        match self.bytes() {
            Ok(map) => mapped::resident(&map, first, len),
            Err(_) => true,
        }
    }

    /// Brings bytes `first..first + len` into the page cache by reading them
    /// (`pread`, in [`LOAD_CHUNK`] pieces into one scratch buffer). Blocks:
    /// call it on a blocking thread. Sequential reads go through the kernel's
    /// readahead, which reads in large folios (cheap for `cachestat` and for
    /// the reads and sendfile that follow). A drive's read error, or an object
    /// shorter than its recorded length, is returned as an error: nothing
    /// here can raise a signal.
    pub fn load(&self, first: u64, len: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let end = first.saturating_add(len).min(self.len);
        let mut scratch = vec![0u8; LOAD_CHUNK.min(usize::try_from(len).unwrap_or(LOAD_CHUNK))];
        let mut at = first;
        while at < end {
            let n = usize::try_from(end - at).map_or(scratch.len(), |n| n.min(scratch.len()));
            self.file.read_exact_at(&mut scratch[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Fills `buf` with the object's bytes from `first` on, copied out of
    /// the page cache (`pread`). Waits for a drive if they are not resident:
    /// call it where that is allowed, or after [`OpenObject::load`]. A read
    /// error, or an object shorter than its recorded length, is an error.
    pub fn read_into(&self, first: u64, buf: &mut [u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        self.file.read_exact_at(buf, first)
    }
}

/// The scratch buffer of [`OpenObject::load`]: large enough that a window is
/// a few system calls, small enough to be a passing allocation.
const LOAD_CHUNK: usize = 256 * 1024;

/// Where an indexed object lives, and what it is: its length and verified
/// content digest as recorded when it was installed, and its request
/// counters (shared with every opened copy, kept across a new version).
#[derive(Debug, Clone)]
pub struct Location {
    /// Index into [`Store::disks`].
    pub disk: usize,
    pub len: u64,
    pub digest: Digest,
    pub counts: Arc<popularity::Counts>,
}

/// The store: disks plus the index of what they hold.
#[derive(Debug)]
pub struct Store {
    disks: Vec<Disk>,
    index: RwLock<HashMap<ObjectKey, Location>>,
    open_cache: open_cache::OpenCache,
    /// Bumped on every install and eviction: the inventory report is sent
    /// again when it moved.
    changes: std::sync::atomic::AtomicU64,
    /// What the integrity checks found since the start ([`fsck`]).
    pub fsck: fsck::Counters,
}

/// How the store keeps opened objects (see [`open_cache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Most objects kept open at once (each holds one file descriptor); 0 = off.
    pub entries: usize,
    /// How long an opened object is served before it is opened again.
    pub valid_for: Duration,
}

/// What one disk holds, by the index: for metrics and the admin status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStats {
    /// The root as configured.
    pub root: PathBuf,
    /// Indexed objects on this disk.
    pub objects: u64,
    /// Sum of their lengths (what a full read would send, holes included).
    pub bytes: u64,
}

/// A listing row of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: ObjectKey,
    pub len: u64,
    pub disk_root: PathBuf,
    pub digest: Digest,
}

impl Store {
    /// Opens the disk roots and rebuilds the index from what they hold. A disk
    /// that cannot be opened is skipped and reported in the returned list; the
    /// store fails only when no disk is usable.
    pub fn open(
        roots: &[PathBuf],
        cache: CachePolicy,
    ) -> Result<(Store, Vec<StoreError>), StoreError> {
        if roots.is_empty() {
            return Err(StoreError::NoDisks);
        }
        let mut disks = Vec::new();
        let mut skipped = Vec::new();
        for root in roots {
            match Disk::open(root) {
                Ok(d) => disks.push(d),
                Err(e) => skipped.push(e),
            }
        }
        if disks.is_empty() {
            let why = skipped
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(StoreError::NoUsableDisk(why));
        }
        // One scan per drive, all at once: each drive's directory walk and
        // per-object stat and digest read wait on that drive alone.
        let scans: Vec<Result<Vec<(ObjectKey, Location)>, StoreError>> = std::thread::scope(|s| {
            let running: Vec<_> = disks
                .iter()
                .enumerate()
                .map(|(i, disk)| s.spawn(move || scan(i, &disk.root)))
                .collect();
            running
                .into_iter()
                .map(|r| {
                    r.join()
                        .unwrap_or_else(|_| Err(StoreError::NoUsableDisk("a scan panicked".into())))
                })
                .collect()
        });
        let total = scans.iter().map(|r| r.as_ref().map_or(0, Vec::len)).sum();
        let mut index: HashMap<ObjectKey, Location> = HashMap::with_capacity(total);
        for (i, scanned) in scans.into_iter().enumerate() {
            let found = match scanned {
                Ok(found) => found,
                Err(e) => {
                    skipped.push(e);
                    continue;
                }
            };
            for (key, loc) in found {
                if let Some(held) = index.get(&key) {
                    // Two copies (a crash between an install and the removal
                    // of the copy it replaced): the fill's next install of the
                    // key removes the other; until then the first disk wins.
                    tracing::warn!(key = %key, first = held.disk, other = i, "an object is on two disks; serving the first");
                    continue;
                }
                disks[i].held.add(loc.len);
                index.insert(key, loc);
            }
        }
        Ok((
            Store {
                disks,
                index: RwLock::new(index),
                open_cache: open_cache::OpenCache::new(cache.entries, cache.valid_for),
                changes: std::sync::atomic::AtomicU64::new(0),
                fsck: fsck::Counters::default(),
            },
            skipped,
        ))
    }

    /// The usable disks, in configuration order.
    pub fn disks(&self) -> &[Disk] {
        &self.disks
    }

    /// Number of objects in the index.
    pub fn len(&self) -> usize {
        self.index.read().map_or(0, |i| i.len())
    }

    /// True when the index holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The object named `key`, opened for reading: from the open cache when
    /// it was checked recently (looked up by the name as it is: no key is
    /// made), else opened afresh (see [`Store::open_uncached`]), a name that
    /// is not a valid key being absent. `now` is a monotonic instant, used
    /// only for the cache's expiry.
    pub fn object(
        &self,
        key: &str,
        now: std::time::Instant,
    ) -> Result<Arc<OpenObject>, StoreError> {
        let hit = match self.open_cache.get(key, now) {
            Some(open_cache::Cached::Fresh(hit)) => Some(hit),
            // Checked too long ago: kept if its path still names the same
            // file (one stat) and no install replaced it meanwhile, and
            // checked again from now.
            Some(open_cache::Cached::Stale(old))
                if self.is_unchanged(&old, key) && self.open_cache.refresh(key, &old, now) =>
            {
                Some(old)
            }
            _ => None,
        };
        if let Some(hit) = hit {
            // One relaxed load: a drive that failed since the open serves no more.
            return match self.disks.get(hit.disk) {
                Some(d) if d.serves() => Ok(hit),
                _ => Err(StoreError::DiskFailed),
            };
        }
        let key = ObjectKey::parse(key).map_err(|_| StoreError::NotFound)?;
        let object = Arc::new(self.open_uncached(&key)?);
        self.open_cache.put(&key, object.clone(), now);
        Ok(object)
    }

    /// Whether the path of `key` on the drive `object` came from still names
    /// the file `object` has open, with the same size, times and inode: one
    /// `fstatat`, which opens nothing (a symlink put in its place, or a path
    /// through one, names another file and fails the check; the reopen then
    /// refuses it). Anything it cannot tell is a change.
    fn is_unchanged(&self, object: &OpenObject, key: &str) -> bool {
        let (Some(identity), Some(disk)) = (object.identity, self.disks.get(object.disk)) else {
            return false;
        };
        let dir = disk.objects_dir();
        nix::sys::stat::fstatat(&*dir, key, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| Identity::of_stat(&st) == identity)
    }

    /// Opens `key` for reading. The file is opened beneath the disk's `objects/`
    /// directory with symlinks refused, and its metadata comes from the open file.
    pub fn open_uncached(&self, key: &ObjectKey) -> Result<OpenObject, StoreError> {
        let location = {
            let index = self.index.read().map_err(|_| StoreError::NotFound)?;
            index.get(key).cloned().ok_or(StoreError::NotFound)?
        };
        let disk = self.disks.get(location.disk).ok_or(StoreError::NotFound)?;
        if !disk.serves() {
            return Err(StoreError::DiskFailed);
        }
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .mode(Mode::empty())
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        let path = disk.root.join(OBJECTS_DIR).join(key.as_str());
        let dir = disk.objects_dir();
        let fd: OwnedFd = match nix::fcntl::openat2(&*dir, key.as_str(), how) {
            Ok(fd) => fd,
            // ELOOP: a symlink put in place of the object (RESOLVE_NO_SYMLINKS).
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ELOOP) => {
                return Err(StoreError::NotFound)
            }
            Err(e) => return Err(self.open_failed(location.disk, &path, e.into())),
        };
        let file = File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| self.open_failed(location.disk, &path, e))?;
        if !meta.is_file() {
            return Err(StoreError::NotFound);
        }
        let modified = meta.modified().map_err(|e| StoreError::io(&path, e))?;
        let digest = xattr::FileExt::get_xattr(&file, DIGEST_XATTR)
            .ok()
            .flatten();
        let mut object =
            OpenObject::new(file, meta.len(), modified, etag(digest.as_deref(), &meta));
        object.counts = location.counts;
        object.disk = location.disk;
        object.identity = Some(Identity::of(&meta));
        Ok(object)
    }

    /// An error opening an object on `disk`: the drive is failed when it is
    /// a drive fault, and the request is told so.
    fn open_failed(&self, disk: usize, path: &Path, e: std::io::Error) -> StoreError {
        if self.drive_fault(disk, &e) {
            StoreError::DiskFailed
        } else {
            StoreError::io(path, e)
        }
    }

    /// Reports an I/O error met on an object of `disk` (opening, reading,
    /// sending it). A drive fault ([`disk::is_drive_fault`]) takes the drive
    /// out of service at once: its objects are answered as misses from then
    /// on, the next fill places them on the other drives, and the drive comes
    /// back only through `eddy store enable` or a restart. Returns whether it
    /// was a drive fault.
    pub fn drive_fault(&self, disk: usize, error: &std::io::Error) -> bool {
        if !disk::is_drive_fault(error) {
            return false;
        }
        let Some(d) = self.disks.get(disk) else {
            return false;
        };
        d.count_error();
        let reason = format!("I/O error: {error}");
        if self.change_disk(d, DiskState::Failed, &reason) {
            // A drive that gave I/O errors is suspect: only an operator
            // brings it back (`eddy store enable`).
            d.set_recoverable(false);
            tracing::error!(disk = %d.root.display(), %reason, "drive failed: out of service; its objects are misses until `eddy store enable`");
        }
        true
    }

    /// Looks at every drive in service (blocking: off the event loop) and
    /// fails one whose root vanished, cannot be listed, or lies on another
    /// file system than at start-up. Returns the drives failed by this probe.
    pub fn probe_disks(&self) -> Vec<usize> {
        let mut failed = Vec::new();
        for (i, d) in self.disks.iter().enumerate() {
            if d.recoverable() && d.probe().is_none() {
                // Its root is back, on the same file system: re-verified
                // (re-indexed from what it holds now), then in service.
                match self.reverify(i, false) {
                    Ok(n) => {
                        self.change_disk(d, DiskState::Active, "its root is back");
                        tracing::info!(disk = %d.root.display(), objects = n, "drive back in service after its root returned");
                    }
                    Err(e) => {
                        tracing::warn!(disk = %d.root.display(), error = %e, "a returning drive cannot be re-verified; it stays failed")
                    }
                }
                continue;
            }
            if !d.serves() {
                continue;
            }
            if let Some(reason) = d.probe() {
                d.count_error();
                if self.change_disk(d, DiskState::Failed, &reason) {
                    d.set_recoverable(true);
                    tracing::error!(disk = %d.root.display(), %reason, "drive failed: out of service");
                    failed.push(i);
                }
            }
        }
        failed
    }

    /// Re-reads what drive `disk` holds before it serves again: the objects
    /// directory is opened again (unless `reopened`), every object's digest
    /// record is read again, and the index's entries for the drive are
    /// replaced by what was found (an object the fill has meanwhile placed on
    /// another drive keeps that copy). Blocking: off the event loop. Returns
    /// the objects it serves again. The background fsck re-hashes them.
    fn reverify(&self, disk: usize, reopened: bool) -> Result<usize, StoreError> {
        let d = self.disks.get(disk).ok_or(StoreError::NotFound)?;
        if !reopened {
            d.reopen(false).map_err(|e| StoreError::io(&d.root, e))?;
        }
        let found = scan(disk, &d.root)?;
        let mut index = self
            .index
            .write()
            .map_err(|_| StoreError::NoUsableDisk("the index lock is poisoned".into()))?;
        index.retain(|_, l| l.disk != disk);
        d.held.clear();
        let mut n = 0;
        for (key, loc) in found {
            if index.contains_key(&key) {
                continue;
            }
            d.held.add(loc.len);
            index.insert(key, loc);
            n += 1;
        }
        drop(index);
        self.open_cache.clear();
        Ok(n)
    }

    /// Moves drive `d` to `to` for `reason` (see `Disk::set`); when it
    /// changed, the open objects are forgotten (their descriptors may be on
    /// the drive that went) and the inventory is due again.
    fn change_disk(&self, d: &Disk, to: DiskState, reason: &str) -> bool {
        let changed = d.set(to, reason, unix_now());
        if changed {
            self.open_cache.clear();
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        changed
    }

    /// Bytes available on drive `disk` if it is in service; a failed drive
    /// is not asked (its statvfs may hang).
    pub fn free_bytes_in_service(&self, disk: usize) -> Option<u64> {
        if self.disks.get(disk)?.serves() {
            self.free_bytes(disk)
        } else {
            None
        }
    }

    /// Every drive's state, in configuration order.
    pub fn disk_statuses(&self) -> Vec<DiskStatus> {
        self.disks.iter().map(Disk::status).collect()
    }

    /// Whether any drive serves (the readiness rule).
    pub fn any_disk_serves(&self) -> bool {
        self.disks.iter().any(Disk::serves)
    }

    /// The index of the drive whose root is `root`.
    pub fn disk_index(&self, root: &Path) -> Option<usize> {
        self.disks.iter().position(|d| d.root == root)
    }

    /// Takes drive `disk` out of placement (`Draining`: it keeps serving) or
    /// puts it back (`Active`), for an operator. Bringing back a failed drive
    /// probes its root first and refuses when it still fails. Returns whether
    /// the state changed.
    pub fn set_disk_state(&self, disk: usize, to: DiskState) -> Result<bool, String> {
        let d = self
            .disks
            .get(disk)
            .ok_or_else(|| format!("no drive {disk}"))?;
        match to {
            DiskState::Failed => return Err("a drive is failed by its errors, not by hand".into()),
            DiskState::Active if d.state() == DiskState::Failed => {
                // A replaced drive is on a new file system: the operator
                // vouches for it, so its device id is taken as it is now.
                d.reopen(true)
                    .map_err(|e| format!("{} still fails: {e}", d.root.display()))?;
                if let Some(reason) = d.probe() {
                    return Err(format!("{} still fails: {reason}", d.root.display()));
                }
                self.reverify(disk, true)
                    .map_err(|e| format!("{} cannot be re-verified: {e}", d.root.display()))?;
            }
            _ => {}
        }
        let reason = match to {
            DiskState::Draining => "drained by the operator",
            _ => "enabled by the operator",
        };
        let changed = self.change_disk(d, to, reason);
        if changed {
            tracing::info!(disk = %d.root.display(), state = to.label(), "drive state changed by the operator");
        }
        Ok(changed)
    }

    /// Every indexed object with its size, sorted by key.
    pub fn list(&self) -> Vec<Listed> {
        let mut rows: Vec<Listed> = match self.index.read() {
            Ok(index) => index
                .iter()
                .filter_map(|(k, l)| {
                    Some(Listed {
                        key: k.clone(),
                        len: l.len,
                        disk_root: self.disks.get(l.disk)?.root.clone(),
                        digest: l.digest,
                    })
                })
                .collect(),
            Err(_) => return Vec::new(),
        };
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows
    }

    /// Objects and bytes per usable disk, in configuration order, as the
    /// index holds them (lengths are recorded at install and at the scan):
    /// O(disks), no lock, no I/O.
    pub fn stats(&self) -> Vec<DiskStats> {
        use std::sync::atomic::Ordering::Relaxed;
        self.disks
            .iter()
            .map(|d| DiskStats {
                root: d.root.clone(),
                objects: d.held.objects.load(Relaxed),
                bytes: d.held.bytes.load(Relaxed),
            })
            .collect()
    }

    /// Where `key` is, by the index.
    pub fn location(&self, key: &ObjectKey) -> Option<Location> {
        self.index.read().ok()?.get(key).cloned()
    }

    /// Records that `key` now lives at `loc` (after an install): served
    /// from this instant.
    fn insert(&self, key: ObjectKey, mut loc: Location) {
        if let Ok(mut index) = self.index.write() {
            // A new version of a key keeps its counters.
            if let Some(old) = index.get(&key) {
                loc.counts = old.counts.clone();
            }
            if let Some(d) = self.disks.get(loc.disk) {
                d.held.add(loc.len);
            }
            if let Some(old) = index.insert(key.clone(), loc) {
                if let Some(d) = self.disks.get(old.disk) {
                    d.held.sub(old.len);
                }
            }
        }
        self.open_cache.invalidate(&key);
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A number that moves on every install and eviction.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every object's requests and bytes since the previous snapshot, and
    /// zero after it (objects not asked for are left out). O(objects) under
    /// the index's read lock, off the serving path.
    pub fn popularity_snapshot(&self) -> Vec<(ObjectKey, u64, u64)> {
        let Ok(index) = self.index.read() else {
            return Vec::new();
        };
        let mut out: Vec<(ObjectKey, u64, u64)> = index
            .iter()
            .filter_map(|(k, l)| {
                let (requests, bytes) = l.counts.take();
                (requests > 0).then(|| (k.clone(), requests, bytes))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The `n` objects asked for most since the reporter's last snapshot
    /// (since start when reports are off), most requests first, as (key,
    /// requests, body bytes); nothing is reset. O(objects) under the index's
    /// read lock, off the serving path (the status page).
    pub fn top_objects(&self, n: usize) -> Vec<(ObjectKey, u64, u64)> {
        let Ok(index) = self.index.read() else {
            return Vec::new();
        };
        let mut out: Vec<(ObjectKey, u64, u64)> = index
            .iter()
            .filter_map(|(k, l)| {
                let (requests, bytes) = l.counts.peek();
                (requests > 0).then(|| (k.clone(), requests, bytes))
            })
            .collect();
        drop(index);
        out.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        out.truncate(n);
        out
    }

    /// Stops serving `key` (before its file is removed); returns where it was.
    fn remove(&self, key: &ObjectKey) -> Option<Location> {
        let was = self.index.write().ok()?.remove(key);
        if let Some(old) = &was {
            if let Some(d) = self.disks.get(old.disk) {
                d.held.sub(old.len);
            }
        }
        self.open_cache.invalidate(key);
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        was
    }
}

/// Threads reading inodes and digest records per drive in the start-up scan.
const SCAN_READERS: usize = 8;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every object of disk `disk` (root `root`) with a complete digest record,
/// and a warning for each file that is not one.
fn scan(disk: usize, root: &Path) -> Result<Vec<(ObjectKey, Location)>, StoreError> {
    let mut found = tree::walk(&root.join(OBJECTS_DIR))?;
    for (path, reason) in &found.invalid {
        tracing::warn!(path = %path.display(), %reason, "skipping a file whose name is not a valid object key");
    }
    for path in &found.other {
        tracing::warn!(path = %path.display(), "skipping a non-regular file in the store");
    }
    // Stat in inode order, not name order (the inode table is read front to
    // back), from SCAN_READERS threads: on a cold cache each object costs a
    // read of its inode and of its digest record, and a drive serves several
    // such small reads at once far faster than one after another.
    found.files.sort_unstable_by_key(|f| f.ino);
    let chunk = found.files.len().div_ceil(SCAN_READERS).max(1);
    // In no particular order: both callers put the result into the index.
    Ok(std::thread::scope(|s| {
        let workers: Vec<_> = found
            .files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|f| Some((f.key.clone(), verified_location(disk, &f.path)?)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    }))
}

/// The location of the object at `path` on disk `disk` if it carries a
/// complete, well-formed digest record; `None` (with a log line) otherwise:
/// an object without one is never served.
fn verified_location(disk: usize, path: &Path) -> Option<Location> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "skipping an object that cannot be read");
            return None;
        }
    };
    let record = xattr::get(path, DIGEST_XATTR).ok().flatten();
    let digest = record.as_deref().and_then(|r| Digest::from_record(r).ok());
    match digest {
        Some(digest) => Some(Location {
            disk,
            len: meta.len(),
            digest,
            counts: Arc::default(),
        }),
        None => {
            tracing::warn!(path = %path.display(), "skipping an object without a verified digest record (not installed by eddy?); it is not served");
            None
        }
    }
}

/// The strong ETag of an object: the first 128 bits of the SHA-256 of its
/// content, recorded at install. It changes whenever a byte changes, and two
/// appliances holding the same object give the same tag (a player switching
/// appliances can resume with If-Range). An object without a recorded digest
/// (copied in by hand, or a filesystem without user xattrs) falls back to size,
/// modification time and inode: installs always make a new inode, so that tag
/// still changes with every new version.
pub fn etag(digest: Option<&[u8]>, meta: &std::fs::Metadata) -> String {
    if let Some(tag) = digest.and_then(eddy_proto::digest::etag_from_record) {
        return tag;
    }
    let nanos = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    format!("{:x}-{nanos:x}-{:x}", meta.len(), meta.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_objects_and_bytes_per_disk() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("t"))?;
        let mut total = 0;
        for i in 0..20u64 {
            std::fs::write(src.join(format!("t/{i}.ts")), vec![7u8; 10 + i as usize])?;
            total += 10 + i;
        }
        let roots = vec![dir.path().join("d0"), dir.path().join("d1")];
        import::prepare_disks(&roots)?;
        let cache = CachePolicy {
            entries: 0,
            valid_for: Duration::ZERO,
        };
        let (store, _) = Store::open(&roots, cache)?;
        let empty = store.stats();
        assert_eq!(empty.len(), 2);
        assert!(empty.iter().all(|d| d.objects == 0 && d.bytes == 0));
        import::import_tree(&store, &src)?;
        let stats = store.stats();
        assert_eq!(
            stats.iter().map(|d| d.root.clone()).collect::<Vec<_>>(),
            roots
        );
        assert_eq!(stats.iter().map(|d| d.objects).sum::<u64>(), 20);
        assert_eq!(stats.iter().map(|d| d.bytes).sum::<u64>(), total);
        for d in &stats {
            let listed: Vec<Listed> = store
                .list()
                .into_iter()
                .filter(|l| l.disk_root == d.root)
                .collect();
            assert_eq!(d.objects, listed.len() as u64);
            assert_eq!(d.bytes, listed.iter().map(|l| l.len).sum::<u64>());
        }
        Ok(())
    }

    #[test]
    fn a_stale_cached_object_is_kept_while_its_path_names_the_same_file(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("t"))?;
        std::fs::write(src.join("t/a.ts"), b"first version")?;
        let roots = vec![dir.path().join("d0")];
        import::prepare_disks(&roots)?;
        let valid_for = Duration::from_secs(5);
        let cache = CachePolicy {
            entries: 16,
            valid_for,
        };
        let (store, _) = Store::open(&roots, cache)?;
        import::import_tree(&store, &src)?;
        let t0 = std::time::Instant::now();
        let first = store.object("t/a.ts", t0)?;
        // Past the validity interval, the path still names the same file:
        // the same open object, not a reopen.
        let later = t0 + valid_for * 2;
        assert!(Arc::ptr_eq(&first, &store.object("t/a.ts", later)?));
        // A new version installed behind the store's back (a rename over
        // the path: another inode) is opened once the entry is stale.
        let path = roots[0].join(OBJECTS_DIR).join("t/a.ts");
        let staged = roots[0].join(OBJECTS_DIR).join("t/a.ts.new");
        std::fs::write(&staged, b"second version!")?;
        std::fs::rename(&staged, &path)?;
        let fresh = store.object("t/a.ts", later + Duration::from_secs(1))?;
        assert!(Arc::ptr_eq(&first, &fresh), "still within the interval");
        let reopened = store.object("t/a.ts", later + valid_for * 2)?;
        assert!(!Arc::ptr_eq(&first, &reopened));
        assert_eq!(reopened.len, b"second version!".len() as u64);
        Ok(())
    }
}
