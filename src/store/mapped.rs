//! Read-only memory maps of stored objects, for the transports that cannot use
//! sendfile (TLS in userspace, HTTP/2): rustls reads the plaintext straight
//! from the page cache through the map, with no read(2) copy in between.
//!
//! Also answers whether a part of a mapped object is in the page cache
//! (`mincore`), so that the serve path can read cold parts on a blocking
//! thread instead of stalling its event loop.
//!
//! Owns: the `unsafe` `mmap` and `mincore` calls (the only other `unsafe` is
//! `page_cache`'s `cachestat`), and
//! the argument for why each is sound. It must never map a file that eddy
//! itself might truncate or write in place, and never hand out a mutable view.

use bytes::Bytes;

/// Maps all `len` bytes of `file` read-only and shares them as [`Bytes`]
/// (slices of it are reference-counted views of the one map; the map is
/// removed when the last slice is dropped).
pub fn map(file: &std::fs::File, len: u64) -> std::io::Result<Bytes> {
    if len == 0 {
        // mmap refuses a zero length; an empty object needs no map.
        return Ok(Bytes::new());
    }
    // SAFETY: `memmap2::Mmap::map` is unsafe because the program has undefined
    // behaviour if the mapped file is modified or truncated while mapped (a
    // truncation turns reads past the new end into SIGBUS). The files mapped
    // here are objects under a disk's `objects/` directory, and the store never
    // writes or truncates a visible object: a new version is a new inode renamed
    // over the old path (see `store::import`), and eviction unlinks, which keeps
    // the inode and therefore the map alive. Nothing else is meant to write
    // there: the systemd unit gives only eddy write access to the disks. The
    // map is read-only (PROT_READ, MAP_SHARED) and is only ever read through
    // `Bytes`. Exercised by `tests::maps_what_the_file_holds` here and by every
    // TLS body in `tests/it/tls.rs`.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::MmapOptions::new().len(len_usize(len)?).map(file)? };
    // Sequential access: let the kernel read ahead generously.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Bytes::from_owner(map))
}

/// Whether every page of `map[offset..offset + len]` is in the page cache. On
/// any doubt (an error from the kernel, a range outside the map) it says yes,
/// which only means the caller reads as it would without this check.
pub fn resident(map: &Bytes, offset: usize, len: usize) -> bool {
    let page = page_size();
    let Some(end) = offset.checked_add(len) else {
        return true;
    };
    if len == 0 || end > map.len() {
        return true;
    }
    let base = map.as_ptr() as usize;
    let start = (base + offset) / page * page;
    let span = base + end - start;
    let mut pages = vec![0u8; span.div_ceil(page)];
    // SAFETY: mincore(2) only reports on the pages of [start, start + span); it
    // reads no memory of ours and writes exactly one byte per page into
    // `pages`, which has span.div_ceil(page) bytes. `start` is page-aligned
    // (rounded down; the map itself starts on a page boundary, so it stays
    // inside the same mapping) and the range lies within the mapping that
    // `map` keeps alive for the duration of the call. Exercised by
    // `tests::residency_follows_the_page_cache`.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, span, pages.as_mut_ptr()) };
    rc != 0 || pages.iter().all(|p| p & 1 == 1)
}

pub fn page_size() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as usize,
        _ => 4096,
    }
}

fn len_usize(len: u64) -> std::io::Result<usize> {
    usize::try_from(len).map_err(|_| std::io::Error::other("object larger than the address space"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn maps_what_the_file_holds() {
        let mut f = tempfile::tempfile().expect("tempfile");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).expect("write");
        let bytes = map(&f, data.len() as u64).expect("maps");
        assert_eq!(&bytes[..], &data[..]);
        // Slices share the map and outlive the file handle.
        let tail = bytes.slice(99_000..);
        drop(bytes);
        drop(f);
        assert_eq!(&tail[..], &data[99_000..]);
        assert!(map(&tempfile::tempfile().expect("tempfile"), 0)
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn residency_follows_the_page_cache() {
        // A file on disk (not tmpfs, where pages cannot be dropped): a
        // written-then-fsynced-then-evicted file is cold; reading it warms it.
        let dir = tempfile::tempdir().expect("tempdir");
        // tmpfs pages are the file itself and cannot be dropped.
        let on_tmpfs = nix::sys::statfs::statfs(dir.path())
            .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
            .unwrap_or(true);
        let path = dir.path().join("cold.bin");
        let data = vec![7u8; 4 << 20];
        std::fs::write(&path, &data).expect("write");
        let f = std::fs::File::open(&path).expect("open");
        f.sync_all().expect("fsync");
        let bytes = map(&f, data.len() as u64).expect("maps");
        // Just written: in the page cache.
        assert!(resident(&bytes, 0, data.len()));
        assert!(resident(&bytes, 4095, 2));
        nix::fcntl::posix_fadvise(
            &f,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .expect("fadvise");
        let evicted = !resident(&bytes, 1 << 20, 1 << 20);
        // Reading a part brings that part in.
        let mut buf = vec![0u8; 1 << 20];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 1 << 20).expect("read");
        assert!(resident(&bytes, 1 << 20, 1 << 20));
        // So does its first page alone.
        assert!(resident(&bytes, 1 << 20, 1));
        // Out-of-map or empty ranges are never called cold.
        assert!(resident(&bytes, data.len(), 1));
        assert!(resident(&bytes, 0, 0));
        if on_tmpfs {
            eprintln!("note: temp dir is tmpfs; the cold branch was not observed");
        } else {
            assert!(evicted, "DONTNEED of a clean file left its pages resident");
        }
    }
}
