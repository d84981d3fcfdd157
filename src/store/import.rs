//! `eddy store import SRC`: an operator's tree copied into the store.
//!
//! Owns: walking the source (the walk of [`super::tree`], shared with the
//! index scan), copying each file into `staging/` with its holes kept while
//! hashing it, and handing it to [`super::install::publish`], the one install
//! sequence the fill uses too. A crash at any instant leaves either the old
//! object or the new one visible, never a partial file; at worst an
//! `import-*.part` file in `staging/`, removed once its process is gone. It
//! must never write below `objects/` except through `publish`, and never
//! follow symlinks in a source tree.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use eddy_proto::rendezvous as placement;
use eddy_proto::Digest;
use nix::errno::Errno;
use nix::unistd::Whence;
use sha2::{Digest as _, Sha256};

use super::{install, tree, ObjectKey, Store, StoreError, OBJECTS_DIR, STAGING_DIR};

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
    let found = tree::walk(src)?;
    if let Some((path, reason)) = found.invalid.into_iter().next() {
        return Err(StoreError::BadKey { path, reason });
    }
    let mut report = ImportReport {
        skipped: found.other,
        ..ImportReport::default()
    };
    for tree::Found { key, path, .. } in found.files {
        let len = install_file(store, &key, &path)?;
        report.objects += 1;
        report.bytes += len;
    }
    Ok(report)
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

    let staging =
        install::import_part_path(&disk.root, STAGING_SEQ.fetch_add(1, Ordering::Relaxed));
    let result = write_staged(&source, meta.len(), &staging).and_then(|digest| {
        install::publish(&disk.root, key, &staging, &digest, Some(modified))
            .map(|len| (len, digest))
    });
    let (len, digest) = match result {
        Ok(done) => done,
        Err(e) => {
            // Best effort: the staged copy is garbage now; a leftover is harmless.
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    };
    store.commit(disk_index, key, len, digest)?;
    Ok(len)
}

/// Copies `source` into a new staged file and returns the content digest.
fn write_staged(source: &File, len: u64, staging: &Path) -> Result<Digest, StoreError> {
    let dest = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(staging)
        .map_err(|e| StoreError::io(staging, e))?;
    let digest = copy_and_hash(source, &dest, len).map_err(|e| StoreError::io(staging, e))?;
    dest.set_len(len).map_err(|e| StoreError::io(staging, e))?;
    Ok(Digest(digest))
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
