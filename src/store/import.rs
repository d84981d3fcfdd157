//! Installing objects into the store: `eddy store import SRC` today, the fill
//! pipeline's install step later.
//!
//! Owns: the atomic install sequence (copy into `staging/`, keep holes, set the
//! source's modification time, fsync, rename into `objects/`, fsync the
//! directories) and walking an import source. A crash at any instant leaves
//! either the old object or the new one visible, never a partial file; at worst
//! a stray file in `staging/`. It must never write below `objects/` except by
//! `rename`, and never follow symlinks in a source tree.

use std::fs::{File, FileTimes, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::unistd::Whence;

use super::{placement, ObjectKey, Store, StoreError, OBJECTS_DIR, STAGING_DIR};

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub objects: u64,
    pub bytes: u64,
    /// Symlinks and other non-regular files that were left out.
    pub skipped: Vec<PathBuf>,
}

/// Creates the layout below each root (used by commands that install content).
pub fn prepare_disks(roots: &[PathBuf]) -> Result<(), StoreError> {
    for root in roots {
        for dir in [OBJECTS_DIR, STAGING_DIR] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Imports every regular file below `src` (key = relative path).
pub fn import_tree(store: &Store, src: &Path) -> Result<ImportReport, StoreError> {
    let mut files = Vec::new();
    let mut report = ImportReport::default();
    walk(src, src, &mut files, &mut report.skipped)?;
    files.sort();
    for (key, path) in files {
        let len = install_file(store, &key, &path)?;
        report.objects += 1;
        report.bytes += len;
    }
    Ok(report)
}

fn walk(
    base: &Path,
    dir: &Path,
    out: &mut Vec<(ObjectKey, PathBuf)>,
    skipped: &mut Vec<PathBuf>,
) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
        if file_type.is_dir() {
            walk(base, &path, out, skipped)?;
        } else if file_type.is_file() {
            let rel = path.strip_prefix(base).unwrap_or(&path);
            let name = rel
                .to_str()
                .ok_or_else(|| StoreError::BadKey {
                    path: path.clone(),
                    reason: "the name is not UTF-8".into(),
                })?
                .replace(std::path::MAIN_SEPARATOR, "/");
            let key = ObjectKey::parse(&name).map_err(|e| StoreError::BadKey {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            out.push((key, path));
        } else {
            skipped.push(path);
        }
    }
    Ok(())
}

static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

/// Installs one file as `key` on the disk placement picks; returns its length.
pub fn install_file(store: &Store, key: &ObjectKey, src: &Path) -> Result<u64, StoreError> {
    let ids: Vec<&str> = store
        .disks
        .iter()
        .map(|d| d.root.to_str().unwrap_or_default())
        .collect();
    let disk_index = placement::place(key.as_str(), &ids).ok_or(StoreError::NoDisks)?;
    let disk = &store.disks[disk_index];
    let source = File::open(src).map_err(|e| StoreError::io(src, e))?;
    let meta = source.metadata().map_err(|e| StoreError::io(src, e))?;
    let modified = meta.modified().map_err(|e| StoreError::io(src, e))?;

    let staging = disk.root.join(STAGING_DIR).join(format!(
        "{}-{}.part",
        std::process::id(),
        STAGING_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_staged(&source, meta.len(), modified, &staging)
        .and_then(|()| publish(&disk.root, key, &staging));
    if result.is_err() {
        // Best effort: the staged copy is garbage now; a leftover is harmless.
        let _ = std::fs::remove_file(&staging);
    }
    result?;
    // An older copy on another disk (placement moved) is now shadowed: remove it.
    for (i, other) in store.disks.iter().enumerate() {
        if i != disk_index {
            let stale = other.root.join(OBJECTS_DIR).join(key.as_str());
            match std::fs::remove_file(&stale) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&stale, e)),
            }
        }
    }
    store.insert(key.clone(), disk_index);
    Ok(meta.len())
}

fn write_staged(
    source: &File,
    len: u64,
    modified: SystemTime,
    staging: &Path,
) -> Result<(), StoreError> {
    let dest = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(staging)
        .map_err(|e| StoreError::io(staging, e))?;
    copy_sparse(source, &dest, len).map_err(|e| StoreError::io(staging, e))?;
    dest.set_len(len).map_err(|e| StoreError::io(staging, e))?;
    dest.set_times(FileTimes::new().set_modified(modified))
        .map_err(|e| StoreError::io(staging, e))?;
    dest.sync_all().map_err(|e| StoreError::io(staging, e))
}

fn publish(root: &Path, key: &ObjectKey, staging: &Path) -> Result<(), StoreError> {
    let objects = root.join(OBJECTS_DIR);
    let target = objects.join(key.as_str());
    let parent = target.parent().unwrap_or(&objects).to_owned();
    std::fs::create_dir_all(&parent).map_err(|e| StoreError::io(&parent, e))?;
    std::fs::rename(staging, &target).map_err(|e| StoreError::io(&target, e))?;
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
    Ok(())
}

/// Copies the data extents of `src` into `dst` at the same offsets with
/// `copy_file_range`, skipping holes found with `SEEK_DATA`/`SEEK_HOLE`, so a
/// sparse source stays sparse. Offsets are u64-safe (files over 4 GiB).
fn copy_sparse(src: &File, dst: &File, len: u64) -> std::io::Result<()> {
    let end = i64::try_from(len).map_err(|_| std::io::Error::other("file too large"))?;
    let mut pos: i64 = 0;
    while pos < end {
        let data = match nix::unistd::lseek64(src.as_fd(), pos, Whence::SeekData) {
            Ok(off) => off,
            // ENXIO: no data at or after pos; the rest is a hole.
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = match nix::unistd::lseek64(src.as_fd(), data, Whence::SeekHole) {
            Ok(off) => off.min(end),
            Err(e) => return Err(e.into()),
        };
        let mut off_in = data;
        let mut off_out = data;
        while off_in < hole {
            let want = usize::try_from(hole - off_in)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            let n = match nix::fcntl::copy_file_range(
                src.as_fd(),
                Some(&mut off_in),
                dst.as_fd(),
                Some(&mut off_out),
                want,
            ) {
                Ok(n) => n,
                // Across filesystems (or on ones without support) copy through a buffer.
                Err(Errno::EXDEV | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                    let n = copy_through_buffer(src, dst, off_in, want)?;
                    off_in += n as i64;
                    off_out += n as i64;
                    n
                }
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "source shrank during import",
                ));
            }
        }
        pos = hole;
    }
    Ok(())
}

/// The fallback of [`copy_sparse`]: up to `want` bytes at `off` through a 1 MiB buffer.
fn copy_through_buffer(src: &File, dst: &File, off: i64, want: usize) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; want.min(1 << 20)];
    let off = u64::try_from(off).map_err(|_| std::io::Error::other("negative offset"))?;
    let n = src.read_at(&mut buf, off)?;
    dst.write_all_at(&buf[..n], off)?;
    Ok(n)
}
