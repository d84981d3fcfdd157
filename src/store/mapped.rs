//! Read-only memory maps of stored objects, for the transports that cannot use
//! sendfile (TLS in userspace, HTTP/2): rustls reads the plaintext straight
//! from the page cache through the map, with no read(2) copy in between.
//!
//! Owns: the only `unsafe` code in eddy, the `mmap` call, and the argument for
//! why it is sound. It must never map a file that eddy itself might truncate or
//! write in place, and never hand out a mutable view.

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
}
