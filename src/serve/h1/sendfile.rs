//! The sendfile writer: response bytes to a plain TCP socket, header blocks with `send`
//! (held for the body with `MSG_MORE` when the body is long, pushed at once
//! when it is short: see `config::defaults::MSG_MORE_MIN_BODY`) and file ranges with
//! `sendfile(2)`, so content bytes never pass through user space.
//!
//! Owns: the zero-copy write loops, offsets as u64 end to end (files over 4 GiB),
//! the 0x7ffff000-byte cap of one sendfile call, sending in windows (each on
//! the event loop or, when `prefetch` says it may need the disk, from the
//! blocking pool), and arming the connection's deadline for each wait for
//! room (`deadline`). It must
//! never decide what to send (that is the plan's [`Payload`](crate::serve::plan::respond::Payload)). It contains no `unsafe`: the
//! system calls go through `nix`'s safe wrappers.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::MsgFlags;
use tokio::io::Interest;

use super::deadline::Slot;

use crate::config::defaults::{DISK_WINDOW, SENDFILE_MAX_CHUNK};
use crate::serve::metrics::ServeMetrics;
use crate::serve::plan::range::ByteRange;
use crate::serve::prefetch;
use crate::store::OpenObject;

/// Why a write stopped.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("client made no progress for {0:?}")]
    Stalled(Duration),
    #[error("the file ended early (it was truncated while being served)")]
    ShortFile,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Sends all of `bytes`; `more` sets `MSG_MORE` because a long body follows
/// (see [`MSG_MORE_MIN_BODY`](crate::config::defaults::MSG_MORE_MIN_BODY)). The last write of a response must pass
/// `more = false`, or the kernel may hold the tail back.
pub async fn send_all(
    slot: &Slot,
    mut bytes: &[u8],
    more: bool,
    stall: Duration,
) -> Result<(), WriteError> {
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if more {
        // nix has no name for MSG_MORE; the bit comes from libc.
        flags |= MsgFlags::from_bits_retain(libc::MSG_MORE);
    }
    let stream = slot.stream();
    let fd = stream.as_raw_fd();
    // Write first, wait only when the socket says it is full (see
    // [`wait_writable`]): a socket with room costs no timer.
    while !bytes.is_empty() {
        match stream.try_io(Interest::WRITABLE, || {
            nix::sys::socket::send(fd, bytes, flags).map_err(io::Error::from)
        }) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(slot, stall).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Sends `range` of the object with sendfile(2), looping until every byte is
/// out, in windows of [`DISK_WINDOW`] bytes. A window that may need the disk
/// (`prefetch::may_block`) is sent from the blocking pool, so sendfile on the
/// event loop never waits for a disk.
pub async fn send_file(
    slot: &Slot,
    object: &Arc<OpenObject>,
    range: ByteRange,
    stall: Duration,
    metrics: &ServeMetrics,
) -> Result<(), WriteError> {
    let stream = slot.stream();
    let file: &File = &object.file;
    let mut offset =
        i64::try_from(range.first).map_err(|_| io::Error::other("offset beyond i64"))?;
    let mut remaining = range.len();
    // Bytes from `offset` on that the current window still holds, and whether
    // they go out from the blocking pool.
    let mut window: u64 = 0;
    let mut cold = false;
    while remaining > 0 {
        if window == 0 {
            window = remaining.min(DISK_WINDOW);
            cold = prefetch::may_block(object, offset as u64, window, metrics);
        }
        let count = usize::try_from(window)
            .unwrap_or(usize::MAX)
            .min(SENDFILE_MAX_CHUNK);
        let sent = if cold {
            // Asks the kernel for room before the trip to the pool: a full
            // socket is a `WouldBlock` here, as on the event loop.
            prefetch::sendfile_off_loop(stream, object, offset as u64, count).await
        } else {
            stream.try_io(Interest::WRITABLE, || {
                nix::sys::sendfile::sendfile64(stream, file, Some(&mut offset), count)
                    .map_err(io::Error::from)
            })
        };
        match sent {
            Ok(0) => return Err(WriteError::ShortFile),
            Ok(n) => {
                if cold {
                    offset += n as i64;
                }
                remaining -= n as u64;
                window -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(slot, stall).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Waits until the socket has room, up to `stall` (the connection's deadline
/// is armed for the wait: the sweeper shuts a socket that stays full down,
/// which wakes this). Called only after a write (or the pool path's check)
/// said the socket is full: tokio's readiness for the socket is then cleared,
/// so this waits for a real event. (`try_io` itself calls nothing while the
/// readiness is cleared, so a write attempt on a full socket is free.)
async fn wait_writable(slot: &Slot, stall: Duration) -> Result<(), WriteError> {
    slot.arm(slot.after(stall), false);
    let ready = slot.stream().writable().await;
    slot.disarm();
    if slot.expired() {
        return Err(WriteError::Stalled(stall));
    }
    Ok(ready?)
}
