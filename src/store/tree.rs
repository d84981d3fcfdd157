//! Walking a directory tree of objects: the one walk that the index scan at
//! start (below a disk's `objects/`) and `eddy store import` (an operator's
//! source tree) share.
//!
//! Owns: turning relative paths into keys and sorting what is found into
//! regular files with valid keys, names that are not valid keys, and entries
//! that are not regular files (symlinks, devices). It never follows a
//! symlink and never opens a file: it only reads directories.

use std::os::unix::fs::DirEntryExt as _;
use std::path::{Path, PathBuf};

use super::{ObjectKey, StoreError};

/// A regular file with a valid key.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub key: ObjectKey,
    pub path: PathBuf,
    /// Its inode number, as the directory entry gives it (no stat): reading
    /// inodes in this order reads a cold inode table front to back.
    pub ino: u64,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Regular files with valid keys, sorted by key.
    pub files: Vec<Found>,
    /// Regular files whose relative path is not a valid key, with the reason.
    pub invalid: Vec<(PathBuf, String)>,
    /// Symlinks and other entries that are not regular files or directories.
    pub other: Vec<PathBuf>,
}

/// Walks everything below `base`.
pub fn walk(base: &Path) -> Result<Walk, StoreError> {
    let mut out = Walk::default();
    walk_dir(base, base, &mut out)?;
    out.files.sort();
    Ok(out)
}

fn walk_dir(base: &Path, dir: &Path, out: &mut Walk) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
        if file_type.is_dir() {
            walk_dir(base, &path, out)?;
        } else if file_type.is_file() {
            match key_for(base, &path) {
                Ok(key) => out.files.push(Found {
                    key,
                    path,
                    ino: entry.ino(),
                }),
                Err(reason) => out.invalid.push((path, reason)),
            }
        } else {
            out.other.push(path);
        }
    }
    Ok(())
}

/// The key of `path` relative to `base`.
fn key_for(base: &Path, path: &Path) -> Result<ObjectKey, String> {
    let rel = path
        .strip_prefix(base)
        .map_err(|_| "outside the tree".to_owned())?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(s) => parts.push(
                s.to_str()
                    .ok_or_else(|| "the name is not UTF-8".to_owned())?,
            ),
            _ => return Err("not a plain relative path".to_owned()),
        }
    }
    ObjectKey::parse(&parts.join("/")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_invalid_names_and_symlinks_are_told_apart() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("t/81"))?;
        std::fs::write(dir.path().join("t/81/b.mp4"), b"b")?;
        std::fs::write(dir.path().join("a.mp4"), b"a")?;
        std::fs::write(dir.path().join("bad\\name"), b"x")?;
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link"))?;
        let w = walk(dir.path())?;
        let keys: Vec<&str> = w.files.iter().map(|f| f.key.as_str()).collect();
        use std::os::unix::fs::MetadataExt as _;
        for f in &w.files {
            assert_eq!(f.ino, std::fs::metadata(&f.path)?.ino());
        }
        assert_eq!(keys, vec!["a.mp4", "t/81/b.mp4"]);
        assert_eq!(w.invalid.len(), 1);
        assert_eq!(w.other, vec![dir.path().join("link")]);
        Ok(())
    }
}
