//! Installing objects into the store: `eddy store import SRC` today, the fill
//! pipeline's install step later.
//!
//! Owns: the atomic install sequence (copy into `staging/`, keep holes, record
//! the SHA-256 of the content in an xattr, set the source's modification time, fsync, rename into `objects/`, fsync the
//! directories) and walking an import source. A crash at any instant leaves
//! either the old object or the new one visible, never a partial file; at worst
//! a stray file in `staging/`. It must never write below `objects/` except by
//! `rename`, and never follow symlinks in a source tree.

use std::fs::{File, FileTimes, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::unistd::Whence;
use sha2::{Digest, Sha256};
use xattr::FileExt as _;

use eddy_proto::rendezvous as placement;

use super::{ObjectKey, Store, StoreError, DIGEST_XATTR, OBJECTS_DIR, STAGING_DIR};

/// Size of the copy buffer: large enough for few system calls, small enough to stay in cache.
const COPY_BUFFER: usize = 1 << 20;

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
    let digest = copy_and_hash(source, &dest, len).map_err(|e| StoreError::io(staging, e))?;
    dest.set_len(len).map_err(|e| StoreError::io(staging, e))?;
    // The digest travels with the inode, so it can never describe other bytes.
    if let Err(e) = dest.set_xattr(DIGEST_XATTR, hex(&digest).as_bytes()) {
        tracing::warn!(path = %staging.display(), error = %e, "cannot store the content digest (no user xattrs on this filesystem?); the ETag falls back to size, time and inode");
    }
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

/// Copies `src` into `dst` at the same offsets and returns the SHA-256 of the
/// content. Data extents (found with `SEEK_DATA`/`SEEK_HOLE`) are copied through
/// one buffer that also feeds the digest; holes are hashed as the zeros they
/// read as but not written, so a sparse source stays sparse. Offsets are u64-safe
/// (files over 4 GiB).
fn copy_and_hash(src: &File, dst: &File, len: u64) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    let zeros = vec![0u8; COPY_BUFFER];
    let end = i64::try_from(len).map_err(|_| std::io::Error::other("file too large"))?;
    let mut pos: i64 = 0;
    while pos < end {
        let data = match nix::unistd::lseek64(src.as_fd(), pos, Whence::SeekData) {
            Ok(off) => off.min(end),
            // ENXIO: no data at or after pos; the rest is a hole.
            Err(Errno::ENXIO) => end,
            Err(e) => return Err(e.into()),
        };
        hash_zeros(&mut hasher, &zeros, (data - pos) as u64);
        if data >= end {
            break;
        }
        let hole = nix::unistd::lseek64(src.as_fd(), data, Whence::SeekHole)?.min(end);
        let mut off = data as u64;
        while off < hole as u64 {
            let want = ((hole as u64 - off) as usize).min(buf.len());
            let n = src.read_at(&mut buf[..want], off)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "source shrank during import",
                ));
            }
            hasher.update(&buf[..n]);
            dst.write_all_at(&buf[..n], off)?;
            off += n as u64;
        }
        pos = hole;
    }
    Ok(hasher.finalize().into())
}

fn hash_zeros(hasher: &mut Sha256, zeros: &[u8], mut n: u64) {
    while n > 0 {
        let take = n.min(zeros.len() as u64) as usize;
        hasher.update(&zeros[..take]);
        n -= take as u64;
    }
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_hash_as_zeros_and_stay_holes() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sparse = dir.path().join("sparse");
        let dense = dir.path().join("dense");
        let f = File::create(&sparse)?;
        f.set_len(3 << 20)?;
        f.write_all_at(b"middle", 1 << 20)?;
        let mut content = vec![0u8; 3 << 20];
        content[1 << 20..(1 << 20) + 6].copy_from_slice(b"middle");
        std::fs::write(&dense, &content)?;
        let out = File::create(dir.path().join("out"))?;
        let a = copy_and_hash(&File::open(&sparse)?, &out, 3 << 20)?;
        out.set_len(3 << 20)?;
        let b = copy_and_hash(
            &File::open(&dense)?,
            &File::create(dir.path().join("out2"))?,
            3 << 20,
        )?;
        assert_eq!(a, b);
        let want: [u8; 32] = Sha256::digest(&content).into();
        assert_eq!(a, want);
        assert_eq!(std::fs::read(dir.path().join("out"))?, content);
        Ok(())
    }
}
