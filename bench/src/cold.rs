//! The cold page cache of scenario (f): evicting a server's copies of a file from the page cache with
//! `posix_fadvise(POSIX_FADV_DONTNEED)` before each of its runs, showing that the eviction took effect (resident
//! bytes per file from util-linux `fincore`, when installed, and the drop of `Cached:` in /proc/meminfo), and
//! reading the files back in afterwards so that the scenarios after (f) start warm again.
//!
//! DONTNEED drops only clean pages that no process maps; a server that keeps the file mapped keeps its pages,
//! and `resident_after` then shows it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::procstat;
use crate::server::find_tool;

/// One evicted file.
#[derive(Debug, Clone, Serialize)]
pub struct ColdFile {
    pub path: PathBuf,
    pub size: u64,
    /// Bytes of the file in the page cache before and after the eviction (None without `fincore`).
    pub resident_before: Option<u64>,
    pub resident_after: Option<u64>,
}

/// What one eviction did.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStats {
    pub files: Vec<ColdFile>,
    /// How much `Cached:` of /proc/meminfo fell over the eviction, KiB (other activity moves it too).
    pub page_cache_drop_kib: Option<i64>,
}

impl ColdStats {
    /// Bytes of all the files still resident after the eviction, when `fincore` could tell.
    pub fn resident_after(&self) -> Option<u64> {
        self.files.iter().map(|f| f.resident_after).sum()
    }

    /// Total size of the files.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Evict every page of `paths` from the page cache.
pub fn evict(paths: &[PathBuf]) -> Result<ColdStats> {
    let cached0 = procstat::page_cache_kib();
    let before = fincore(paths);
    let mut sizes = Vec::new();
    for p in paths {
        let f = File::open(p).at("open", p)?;
        // Dirty pages cannot be dropped: write them back first (content written moments ago may still be dirty).
        f.sync_all().at("fsync", p)?;
        sizes.push(f.metadata().at("stat", p)?.len());
        posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).map_err(|e| {
            Error::io(
                format!("posix_fadvise(DONTNEED) {}", p.display()),
                std::io::Error::from(e),
            )
        })?;
    }
    let after = fincore(paths);
    let cached1 = procstat::page_cache_kib();
    let at = |v: &Option<Vec<u64>>, i: usize| v.as_ref().and_then(|v| v.get(i).copied());
    Ok(ColdStats {
        files: paths
            .iter()
            .zip(sizes)
            .enumerate()
            .map(|(i, (p, size))| ColdFile {
                path: p.clone(),
                size,
                resident_before: at(&before, i),
                resident_after: at(&after, i),
            })
            .collect(),
        page_cache_drop_kib: match (cached0, cached1) {
            (Some(a), Some(b)) => Some(a as i64 - b as i64),
            _ => None,
        },
    })
}

/// Resident bytes of each of `paths` in order, from `fincore --bytes`; None when fincore is missing or fails.
fn fincore(paths: &[PathBuf]) -> Option<Vec<u64>> {
    let tool = find_tool(Path::new("fincore"), &["/usr/bin", "/bin"])?;
    let out = Command::new(tool)
        .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
        .args(paths)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    (v.len() == paths.len()).then_some(v)
}

/// Read every byte of `paths` so their pages are back in the page cache. Returns bytes read.
pub fn rewarm(paths: &[PathBuf]) -> Result<u64> {
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0;
    for p in paths {
        let mut f = File::open(p).at("open", p)?;
        loop {
            let n = f.read(&mut buf).at("read", p)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_a_file_and_reads_it_back() {
        let dir = std::env::temp_dir().join(format!("eddy-bench-cold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join("f.bin");
        std::fs::write(&p, vec![7u8; 1 << 20]).expect("write");
        let stats = evict(std::slice::from_ref(&p)).expect("evict");
        assert_eq!(stats.size(), 1 << 20);
        assert_eq!(stats.files[0].path, p);
        // When fincore exists, it reads both sides; the value after depends on the filesystem (tmpfs keeps pages).
        assert_eq!(
            stats.files[0].resident_before.is_some(),
            stats.files[0].resident_after.is_some()
        );
        assert_eq!(rewarm(std::slice::from_ref(&p)).expect("rewarm"), 1 << 20);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
