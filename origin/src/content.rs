//! The content directory: what is in it, opening a file of it safely, and
//! the SHA-256 of each file.
//!
//! Owns: walking the directory for regular files whose relative path is a
//! valid key (symlinks and other names are skipped), opening `DIR/{key}` with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` so that no key reaches
//! outside the directory or through a link, and the digest cache keyed by
//! (key, length, mtime in ns, device, inode), so that an unchanged file is
//! hashed once. Hashing and walking block, so their async forms run on the
//! blocking pool. It must never write to the directory, never speak HTTP and
//! never decide which objects a manifest lists (that is `catalogue`).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use eddy_proto::{Digest, ObjectKey};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use sha2::Digest as _;

/// Bytes read per call while hashing.
const HASH_CHUNK: usize = 1 << 20;

/// Why content could not be listed, opened or hashed.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("no such object")]
    NotFound,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the blocking pool is gone: {0}")]
    Join(String),
}

/// The identity of one version of a file: a change to any field means new
/// content may be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub len: u64,
    pub mtime_ns: i128,
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// An object opened for reading, with the facts of that open file.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub id: FileId,
    pub modified: SystemTime,
}

/// The content directory and its digest cache.
#[derive(Debug)]
pub struct Content {
    root: PathBuf,
    dir: File,
    digests: Mutex<HashMap<ObjectKey, (FileId, Digest)>>,
}

impl Content {
    /// Opens the directory (it must exist).
    pub fn open(root: &Path) -> Result<Content, ContentError> {
        let io = |source| ContentError::Io {
            path: root.to_owned(),
            source,
        };
        let dir = File::open(root).map_err(io)?;
        if !dir.metadata().map_err(io)?.is_dir() {
            return Err(io(std::io::Error::new(
                ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        Ok(Content {
            root: root.to_owned(),
            dir,
            digests: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every key of a regular file below the directory (blocking).
    pub fn scan(&self) -> Result<BTreeSet<ObjectKey>, ContentError> {
        let mut keys = BTreeSet::new();
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let io = |source| ContentError::Io {
                path: dir.clone(),
                source,
            };
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let entry = entry.map_err(io)?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    tracing::warn!(dir = %dir.display(), "skipping a file name that is not UTF-8");
                    continue;
                };
                let rel = format!("{prefix}{name}");
                let kind = match entry.file_type() {
                    Ok(t) => t,
                    // Removed while we looked: not content any more.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(e)),
                };
                if kind.is_dir() {
                    stack.push((entry.path(), format!("{rel}/")));
                } else if kind.is_file() {
                    match ObjectKey::parse(&rel) {
                        Ok(k) => {
                            keys.insert(k);
                        }
                        Err(e) => tracing::warn!(file = %rel, "skipping a file: {e}"),
                    }
                }
            }
        }
        Ok(keys)
    }

    /// Opens `key` beneath the directory, refusing symlinks (blocking).
    pub fn open_object(&self, key: &ObjectKey) -> Result<Opened, ContentError> {
        let path = self.root.join(key.as_str());
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .mode(Mode::empty())
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        let fd: OwnedFd = match nix::fcntl::openat2(&self.dir, key.as_str(), how) {
            Ok(fd) => fd,
            // Absent, a symlink on the way (ELOOP), or a file as a directory.
            Err(
                nix::errno::Errno::ENOENT
                | nix::errno::Errno::ELOOP
                | nix::errno::Errno::ENOTDIR
                | nix::errno::Errno::EXDEV,
            ) => return Err(ContentError::NotFound),
            Err(e) => {
                return Err(ContentError::Io {
                    path,
                    source: e.into(),
                })
            }
        };
        let file = File::from(fd);
        let io = |source| ContentError::Io {
            path: path.clone(),
            source,
        };
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(ContentError::NotFound);
        }
        Ok(Opened {
            id: FileId::of(&meta),
            modified: meta.modified().map_err(io)?,
            file,
        })
    }

    /// The digest of an opened object: from the cache when this version was
    /// hashed before, else by reading it (blocking).
    pub fn digest(&self, key: &ObjectKey, opened: &Opened) -> Result<Digest, ContentError> {
        if let Some(d) = self.cached(key, opened.id) {
            return Ok(d);
        }
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; HASH_CHUNK];
        let mut at = 0u64;
        loop {
            let n = match opened.file.read_at(&mut buf, at) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ContentError::Io {
                        path: self.root.join(key.as_str()),
                        source,
                    })
                }
            };
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        let digest = Digest(hasher.finalize().into());
        // A file that changed length while read is hashed again next time.
        if at == opened.id.len {
            self.lock().insert(key.clone(), (opened.id, digest));
        }
        Ok(digest)
    }

    fn cached(&self, key: &ObjectKey, id: FileId) -> Option<Digest> {
        match self.lock().get(key) {
            Some((cached_id, d)) if *cached_id == id => Some(*d),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, (FileId, Digest)>> {
        self.digests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops cached digests of keys no longer present.
    pub fn forget_except(&self, present: &BTreeSet<ObjectKey>) {
        self.lock().retain(|k, _| present.contains(k));
    }
}

/// Runs blocking content work on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    content: &Arc<Content>,
    work: impl FnOnce(&Content) -> Result<T, ContentError> + Send + 'static,
) -> Result<T, ContentError> {
    let content = content.clone();
    tokio::task::spawn_blocking(move || work(&content))
        .await
        .map_err(|e| ContentError::Join(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).unwrap_or_else(|e| panic!("{k}: {e}"))
    }

    #[test]
    fn scan_open_and_digest() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().join("content");
        std::fs::create_dir_all(root.join("a/b"))?;
        std::fs::write(root.join("a/b/x.mp4"), b"")?;
        std::fs::write(root.join("top.txt"), b"hello")?;
        std::fs::write(tmp.path().join("secret"), b"no")?;
        std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("link"))?;
        std::os::unix::fs::symlink(tmp.path(), root.join("dirlink"))?;
        let c = Content::open(&root)?;
        let keys: Vec<String> = c.scan()?.iter().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["a/b/x.mp4", "top.txt"]);
        let empty = c.open_object(&key("a/b/x.mp4"))?;
        assert_eq!(
            c.digest(&key("a/b/x.mp4"), &empty)?.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let top = c.open_object(&key("top.txt"))?;
        assert_eq!(top.id.len, 5);
        assert_eq!(
            c.digest(&key("top.txt"), &top)?.to_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            c.cached(&key("top.txt"), top.id),
            c.digest(&key("top.txt"), &top).ok()
        );
        for refused in ["link", "dirlink/secret", "a/b", "missing"] {
            assert!(
                matches!(c.open_object(&key(refused)), Err(ContentError::NotFound)),
                "{refused}"
            );
        }
        Ok(())
    }
}
