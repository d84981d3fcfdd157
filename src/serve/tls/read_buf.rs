//! Reusable buffers for the bytes a TLS response copies out of the page cache.
//!
//! Owns: a small pool of read buffers per worker thread, and [`read`], which
//! fills one from an object (`pread`) and hands it out as [`Bytes`] that
//! give the buffer back to the pool of whichever thread drops them. A fresh
//! allocation per chunk costs a memset and, above glibc's mmap threshold,
//! page faults and an munmap every time: together about a tenth of the
//! server's CPU under HTTP/2 load (perf, bench (e); see
//! docs/decisions/0002-tls-body-reads.md). It must never hand out bytes that
//! were not all read for this chunk, and never hold more than
//! [`POOL_BYTES`] per thread.

use std::cell::RefCell;

use bytes::Bytes;

use crate::store::OpenObject;

/// The most buffer bytes one thread keeps for reuse.
const POOL_BYTES: usize = 8 << 20;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer on loan; back to a pool when the last `Bytes` of it goes.
struct Loan {
    buf: Vec<u8>,
    len: usize,
}

impl AsRef<[u8]> for Loan {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let size = buf.len();
        if size == 0 {
            return;
        }
        // During thread teardown the pool may be gone: then the buffer is freed.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if (pool.len() + 1) * size <= POOL_BYTES {
                pool.push(buf);
            }
        });
    }
}

/// Bytes `first..first + len` of `object`, read into a pooled buffer of
/// `size` bytes (`len <= size`; buffers of one size are reused). Waits for
/// a drive if the bytes are not resident: call it after the window is loaded.
pub fn read(object: &OpenObject, first: u64, len: usize, size: usize) -> std::io::Result<Bytes> {
    let size = size.max(len);
    let mut buf = POOL
        .try_with(|pool| pool.borrow_mut().pop())
        .ok()
        .flatten()
        // A buffer of another size (a larger last chunk) is let go.
        .filter(|b| b.len() == size)
        .unwrap_or_else(|| vec![0u8; size]);
    object.read_into(first, &mut buf[..len])?;
    Ok(Bytes::from_owner(Loan { buf, len }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::time::SystemTime;

    fn object(bytes: &[u8]) -> std::io::Result<OpenObject> {
        let mut f = tempfile::tempfile()?;
        f.write_all(bytes)?;
        Ok(OpenObject::new(
            f,
            bytes.len() as u64,
            SystemTime::UNIX_EPOCH,
            "e".into(),
        ))
    }

    #[test]
    fn chunks_are_exact_and_buffers_come_back() -> std::io::Result<()> {
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let o = object(&content)?;
        let a = read(&o, 0, 4096, 8192)?;
        assert_eq!(&a[..], &content[..4096]);
        drop(a);
        assert_eq!(POOL.with(|p| p.borrow().len()), 1, "returned on drop");
        // The reused buffer holds old bytes past `len`: never shown.
        let b = read(&o, 50_000, 100, 8192)?;
        assert_eq!(&b[..], &content[50_000..50_100]);
        assert_eq!(POOL.with(|p| p.borrow().len()), 0, "taken again");
        let slice = b.slice(10..20);
        drop(b);
        assert_eq!(POOL.with(|p| p.borrow().len()), 0, "a slice still holds it");
        assert_eq!(&slice[..], &content[50_010..50_020]);
        drop(slice);
        assert_eq!(POOL.with(|p| p.borrow().len()), 1);
        // Past the end of the file: an error, not short bytes.
        assert!(read(&o, 99_990, 100, 8192).is_err());
        Ok(())
    }

    #[test]
    fn the_pool_is_bounded() -> std::io::Result<()> {
        let o = object(&[7u8; 1 << 20])?;
        let size = 1 << 20;
        let loans: Vec<Bytes> = (0..20)
            .map(|_| read(&o, 0, size, size))
            .collect::<Result<_, _>>()?;
        drop(loans);
        assert_eq!(POOL.with(|p| p.borrow().len()), POOL_BYTES / size);
        Ok(())
    }
}
