//! Asking the kernel how much of a file's byte range is in the page cache,
//! exactly, with `cachestat(2)` (Linux 6.5 and later).
//!
//! Owns: the one `cachestat` call and its kernel structs. It must not read or
//! map file contents; `mapped` owns the `mincore` fallback for older kernels.
//! It walks the cache's folios, so its cost follows their number: about 1 µs
//! for a 2 MiB range read in by the kernel's readahead (large folios), 15 µs
//! when the same range is held in 4 KiB pages; a one-page `mincore` costs
//! 1.5 µs on the same machine.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// `cachestat`'s number: the same on every architecture (it came after the
/// syscall tables were unified at 424); the `libc` crate does not name it for
/// every target.
const SYS_CACHESTAT: libc::c_long = 451;

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct Range {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`.
#[repr(C)]
#[derive(Default)]
struct Stat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Set once the kernel answered ENOSYS: it is not asked again.
static MISSING: AtomicBool = AtomicBool::new(false);

/// Pages of `file[offset..offset + len]` in the page cache, or `None` when the
/// kernel cannot say (no `cachestat`, or any error). A zero `len` would mean
/// "to the end of the file" to the kernel, so it is answered here: 0 pages.
pub fn cached_pages(file: &File, offset: u64, len: u64) -> Option<u64> {
    if len == 0 {
        return Some(0);
    }
    if MISSING.load(Ordering::Relaxed) {
        return None;
    }
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: cachestat(2) reads exactly one `struct cachestat_range` from
    // the second argument and writes exactly one `struct cachestat` to the
    // third; both are `#[repr(C)]` structs of u64 fields laid out as the
    // kernel's, live on this stack frame for the whole call, and are not
    // otherwise borrowed. The descriptor is borrowed from `file`, open for the
    // call. Flags must be 0. Exercised by `tests::counts_follow_the_page_cache`.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if rc != 0 {
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            MISSING.store(true, Ordering::Relaxed);
        }
        return None;
    }
    Some(stat.nr_cache)
}

/// Pages that bytes `offset..offset + len` touch.
pub fn pages_spanned(offset: u64, len: u64, page: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    let end = offset.saturating_add(len);
    end.div_ceil(page) - offset / page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_spanned_counts_partial_pages() {
        assert_eq!(pages_spanned(0, 0, 4096), 0);
        assert_eq!(pages_spanned(0, 1, 4096), 1);
        assert_eq!(pages_spanned(4095, 2, 4096), 2);
        assert_eq!(pages_spanned(4096, 4096, 4096), 1);
        assert_eq!(pages_spanned(1, 2 << 20, 4096), 513);
    }

    #[test]
    fn counts_follow_the_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        // tmpfs pages are the file itself and cannot be dropped.
        let on_tmpfs = nix::sys::statfs::statfs(dir.path())
            .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
            .unwrap_or(true);
        let path = dir.path().join("cold.bin");
        std::fs::write(&path, vec![7u8; 4 << 20]).expect("write");
        let f = File::open(&path).expect("open");
        f.sync_all().expect("fsync");
        let Some(all) = cached_pages(&f, 0, 4 << 20) else {
            eprintln!("note: this kernel has no cachestat; callers fall back to mincore");
            return;
        };
        assert_eq!(all, 1024, "a file just written is in memory");
        assert_eq!(cached_pages(&f, 4095, 2), Some(2));
        assert_eq!(cached_pages(&f, 0, 0), Some(0));
        nix::fcntl::posix_fadvise(
            &f,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .expect("fadvise");
        let after = cached_pages(&f, 0, 4 << 20).expect("cachestat");
        let mut buf = vec![0u8; 1 << 20];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 1 << 20).expect("read");
        assert_eq!(cached_pages(&f, 1 << 20, 1 << 20), Some(256));
        if on_tmpfs {
            eprintln!("note: temp dir is tmpfs; the cold branch was not observed");
        } else {
            assert!(after < 1024, "DONTNEED of a clean file left {after} pages");
        }
    }
}
