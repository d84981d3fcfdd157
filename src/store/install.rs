//! Installing and evicting objects: the one sequence by which bytes become
//! visible, shared by `eddy store import` and the fill, and the store's side
//! of [`eddy_fill::Target`].
//!
//! Owns: staging names (`staging/<sha256>.part` for the fill, named by the
//! content digest so that a restarted fill finds and resumes them;
//! `staging/import-<pid>-<n>.part` for an import), publishing a staged file
//! (digest xattr, modification time, fsync, rename into `objects/`, fsync of
//! every directory up to `objects/`), the index update that makes it served
//! at that instant and not before, eviction (out of the index first, then
//! unlinked, so a reader mid-body keeps its bytes), free space, and the
//! fill's small state files. A crash at any instant leaves the old object
//! or the new one visible, never a partial file. It must never write below
//! `objects/` except by `rename`, never follow a symlink, and never publish a
//! file whose digest record it did not just write.

use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use eddy_fill::plan::{Disk as PlanDisk, Held, Staged};
use eddy_proto::Digest;
use xattr::FileExt as _;

use super::{Location, ObjectKey, Store, StoreError, DIGEST_XATTR, OBJECTS_DIR, STAGING_DIR};

/// The extended attribute on a fill part naming the source's validator.
const VALIDATOR_XATTR: &str = "user.eddy.fill.validator";
/// The directory below a disk root holding the fill's state files.
pub const FILL_STATE_DIR: &str = "fill-state";
/// The suffix of every staged file.
const PART_SUFFIX: &str = ".part";
/// The prefix of an import's staged files (never resumed).
const IMPORT_PREFIX: &str = "import-";

/// The fill's staged part for `digest` below `root`.
pub fn part_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join(STAGING_DIR)
        .join(format!("{}{PART_SUFFIX}", digest.to_hex()))
}

/// An import's staged file below `root`.
pub fn import_part_path(root: &Path, seq: u64) -> PathBuf {
    root.join(STAGING_DIR).join(format!(
        "{IMPORT_PREFIX}{}-{seq}{PART_SUFFIX}",
        std::process::id()
    ))
}

/// Creates `objects/` and `staging/` below each root that exists, for a
/// fill onto new drives. A root that does not exist is left alone (an
/// unmounted drive's mount point must not fill the system disk); the store
/// then reports it out of service.
pub fn prepare_existing(roots: &[PathBuf]) {
    for root in roots.iter().filter(|r| r.is_dir()) {
        for dir in [OBJECTS_DIR, STAGING_DIR] {
            if let Err(e) = std::fs::create_dir_all(root.join(dir)) {
                tracing::warn!(root = %root.display(), error = %e, "cannot prepare a disk for the fill");
            }
        }
    }
}

/// Makes a complete staged file visible as `key` below `root`: records
/// `digest` on the inode, sets `modified` (now when `None`), flushes the
/// bytes, renames it into `objects/` and flushes every directory it touched.
pub fn publish(
    root: &Path,
    key: &ObjectKey,
    staged: &Path,
    digest: &Digest,
    modified: Option<SystemTime>,
) -> Result<u64, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(staged)
        .map_err(|e| StoreError::io(staged, e))?;
    // The digest travels with the inode, so it can never describe other
    // bytes; without it the object would never be served, so failing to
    // write it fails the install.
    file.set_xattr(DIGEST_XATTR, &digest.to_record())
        .map_err(|e| StoreError::io(staged, e))?;
    let modified = modified.unwrap_or_else(SystemTime::now);
    file.set_times(FileTimes::new().set_modified(modified))
        .map_err(|e| StoreError::io(staged, e))?;
    file.sync_all().map_err(|e| StoreError::io(staged, e))?;
    let len = file
        .metadata()
        .map_err(|e| StoreError::io(staged, e))?
        .len();
    drop(file);
    let objects = root.join(OBJECTS_DIR);
    let target = objects.join(key.as_str());
    let parent = target.parent().unwrap_or(&objects).to_owned();
    std::fs::create_dir_all(&parent).map_err(|e| StoreError::io(&parent, e))?;
    std::fs::rename(staged, &target).map_err(|e| StoreError::io(&target, e))?;
    // Make the rename and any new directories durable, innermost first.
    let mut dir = Some(parent.as_path());
    while let Some(d) = dir {
        let handle = File::open(d).map_err(|e| StoreError::io(d, e))?;
        handle.sync_all().map_err(|e| StoreError::io(d, e))?;
        if d == objects {
            break;
        }
        dir = d.parent();
    }
    Ok(len)
}

impl Store {
    /// Serves `key` from disk `disk` from now on, then removes any older copy
    /// on another disk (placement moved): the index switches first, so no
    /// request ever finds neither copy.
    pub fn commit(
        &self,
        disk: usize,
        key: &ObjectKey,
        len: u64,
        digest: Digest,
    ) -> Result<(), StoreError> {
        self.insert(
            key.clone(),
            Location {
                disk,
                len,
                digest,
                counts: Default::default(),
            },
        );
        for (i, other) in self.disks.iter().enumerate() {
            if i != disk {
                let stale = other.root.join(OBJECTS_DIR).join(key.as_str());
                match std::fs::remove_file(&stale) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(&stale, e)),
                }
            }
        }
        Ok(())
    }

    /// Stops serving `key` and unlinks it. Connections that have it open
    /// finish their bodies from the unlinked inode.
    pub fn evict_object(&self, key: &ObjectKey) -> Result<(), StoreError> {
        let Some(was) = self.remove(key) else {
            return Ok(());
        };
        let Some(disk) = self.disks.get(was.disk) else {
            return Ok(());
        };
        let path = disk.root.join(OBJECTS_DIR).join(key.as_str());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Bytes available to unprivileged writers on disk `disk`.
    pub fn free_bytes(&self, disk: usize) -> Option<u64> {
        let d = self.disks.get(disk)?;
        let st = nix::sys::statvfs::statvfs(&d.root).ok()?;
        Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
    }

    /// Removes an import's staged leftovers whose process is gone (a crashed
    /// `eddy store import`); a running import's files are left alone.
    pub fn sweep_import_leftovers(&self) -> usize {
        let mut removed = 0;
        for d in &self.disks {
            let Ok(entries) = std::fs::read_dir(d.root.join(STAGING_DIR)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(IMPORT_PREFIX)) else {
                    continue;
                };
                let pid = rest.split('-').next().unwrap_or("");
                let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
                if !alive && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    fn disk_root(&self, disk: usize) -> io::Result<&Path> {
        self.disks
            .get(disk)
            .map(|d| d.root.as_path())
            .ok_or_else(|| io::Error::new(ErrorKind::NotFound, format!("no disk {disk}")))
    }
}

fn to_io(e: StoreError) -> io::Error {
    match e {
        StoreError::Io { source, path } => {
            io::Error::new(source.kind(), format!("{}: {source}", path.display()))
        }
        other => io::Error::other(other.to_string()),
    }
}

impl eddy_fill::Target for Store {
    fn disks(&self) -> Vec<PlanDisk> {
        (0..self.disks.len())
            .map(|i| {
                let d = &self.disks[i];
                // Only an active drive receives content; a failed one is
                // not even asked for its free space.
                let active = d.state() == super::DiskState::Active;
                let free = if active { self.free_bytes(i) } else { None };
                PlanDisk {
                    id: d.root.to_string_lossy().into_owned(),
                    free: free.unwrap_or(0),
                    usable: active && free.is_some(),
                }
            })
            .collect()
    }

    fn inventory(&self) -> Vec<Held> {
        match self.index.read() {
            // What a failed drive held is lost: left out, so that the plan
            // fetches it again onto the drives in service.
            Ok(index) => index
                .iter()
                .filter(|(_, l)| self.disks.get(l.disk).is_some_and(|d| d.serves()))
                .map(|(k, l)| Held {
                    key: k.clone(),
                    len: l.len,
                    digest: l.digest,
                    disk: l.disk,
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn staged(&self) -> Vec<Staged> {
        let mut out = Vec::new();
        for (i, d) in self.disks.iter().enumerate() {
            let Ok(entries) = std::fs::read_dir(d.root.join(STAGING_DIR)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(PART_SUFFIX)) else {
                    continue;
                };
                let (Ok(digest), Ok(meta)) = (Digest::from_hex(hex), entry.metadata()) else {
                    continue;
                };
                if meta.is_file() {
                    out.push(Staged {
                        disk: i,
                        digest,
                        len: meta.len(),
                    });
                }
            }
        }
        out
    }

    fn open_part(&self, disk: usize, digest: &Digest) -> io::Result<File> {
        let path = part_path(self.disk_root(disk)?, digest);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags_nofollow()
            .open(path)
    }

    fn remove_part(&self, disk: usize, digest: &Digest) -> io::Result<()> {
        match std::fs::remove_file(part_path(self.disk_root(disk)?, digest)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn part_validator(&self, disk: usize, digest: &Digest) -> Option<String> {
        let path = part_path(self.disk_root(disk).ok()?, digest);
        let v = xattr::get(path, VALIDATOR_XATTR).ok().flatten()?;
        String::from_utf8(v).ok()
    }

    fn set_part_validator(&self, disk: usize, digest: &Digest, validator: &str) -> io::Result<()> {
        let path = part_path(self.disk_root(disk)?, digest);
        match xattr::set(path, VALIDATOR_XATTR, validator.as_bytes()) {
            // Without user xattrs a resume goes without If-Range; the digest
            // still guards every byte.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
            other => other,
        }
    }

    fn install(
        &self,
        disk: usize,
        key: &ObjectKey,
        digest: &Digest,
        modified: Option<SystemTime>,
    ) -> io::Result<()> {
        let root = self.disk_root(disk)?;
        let part = part_path(root, digest);
        let len = publish(root, key, &part, digest, modified).map_err(to_io)?;
        self.commit(disk, key, len, *digest).map_err(to_io)
    }

    fn evict(&self, key: &ObjectKey) -> io::Result<()> {
        self.evict_object(key).map_err(to_io)
    }

    fn load_state(&self, name: &str) -> Vec<Vec<u8>> {
        self.disks
            .iter()
            .filter_map(|d| std::fs::read(d.root.join(FILL_STATE_DIR).join(name)).ok())
            .collect()
    }

    fn save_state(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut saved = 0;
        let mut last_err = None;
        for d in &self.disks {
            match write_durably(&d.root.join(FILL_STATE_DIR), name, bytes) {
                Ok(()) => saved += 1,
                Err(e) => last_err = Some(e),
            }
        }
        match (saved, last_err) {
            (0, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// Writes `dir/name` by a temporary file, fsync and rename.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        use std::io::Write as _;
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Opening parts never follows a symlink planted in `staging/`.
trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt as _;
        self.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
    }
}
