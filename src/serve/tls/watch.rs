//! What a TLS connection's deadlines are measured from: the bytes moving on
//! its socket.
//!
//! Owns: [`Activity`] (when a byte last moved either way, since when a request
//! head has been awaited, since when a write has found the socket full), the
//! [`Deadlines`] the connection enforces from it, and [`Watched`], the I/O
//! stream that records progress as hyper reads and writes (and, for HTTP/2,
//! follows the client's frames with a `FrameClock`; for HTTP/1.1, reads
//! through the h1 `Gate`). It must never change a byte that passes through it,
//! except what the gate holds back or stands in for.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::frame_clock::FrameClock;
use crate::serve::h1::gate::Gate;

/// When the connection last moved a byte either way, and since when a request
/// head has been awaited without arriving (HTTP/2: see [`FrameClock`]).
#[derive(Debug)]
pub(super) struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    /// Milliseconds since `base` at which the head being waited for began
    /// ([`NONE`] when none is): the connection's start until its first request
    /// has arrived, then the first byte of each frame until it is whole.
    head_since_ms: AtomicU64,
    /// Milliseconds since `base` at which a write to the client last found
    /// the socket full ([`NONE`] once a write went through).
    blocked_since_ms: AtomicU64,
}

/// No head is being waited for.
const NONE: u64 = u64::MAX;

/// Why a TLS connection is closed by its own deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    /// No byte either way for `limits.idle_timeout`.
    Idle,
    /// A request head (HTTP/2: the preface, SETTINGS and first request, or a
    /// later frame) did not arrive within `limits.header_read_timeout`.
    Head,
    /// The client took no byte for `limits.send_timeout` while a response
    /// waited to be written.
    Send,
}

impl Activity {
    /// `awaiting_head`: the connection must bring a request head within the
    /// header deadline from now (HTTP/2, whose heads eddy clocks itself).
    pub(super) fn new(awaiting_head: bool) -> Activity {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(if awaiting_head { 0 } else { NONE }),
            blocked_since_ms: AtomicU64::new(NONE),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    pub(super) fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A head began arriving (kept if one already is).
    pub(super) fn head_started(&self) {
        if self.head_since_ms.load(Ordering::Relaxed) == NONE {
            self.head_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// The head being waited for has arrived whole.
    pub(super) fn head_done(&self) {
        self.head_since_ms.store(NONE, Ordering::Relaxed);
    }

    /// A write found the socket full (kept if one already had).
    fn write_blocked(&self) {
        if self.blocked_since_ms.load(Ordering::Relaxed) == NONE {
            self.blocked_since_ms
                .store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// The socket took what was written (a flush that had nothing to send
    /// says so too, without moving the idle clock).
    fn write_done(&self) {
        self.blocked_since_ms.store(NONE, Ordering::Relaxed);
    }

    /// Whether a request head is being waited for.
    #[cfg(test)]
    pub(super) fn awaiting_head(&self) -> bool {
        self.head_since_ms.load(Ordering::Relaxed) != NONE
    }

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// The earliest instant at which one of the deadlines may pass, and which.
    pub(super) fn deadline(&self, limits: &Deadlines) -> (Instant, Expired) {
        let idle = self.at(self.last_ms.load(Ordering::Relaxed)) + limits.idle;
        let mut first = (idle, Expired::Idle);
        for (since, within, why) in [
            (&self.head_since_ms, limits.head, Expired::Head),
            (&self.blocked_since_ms, limits.send, Expired::Send),
        ] {
            let since = since.load(Ordering::Relaxed);
            if since != NONE {
                let at = self.at(since) + within;
                if at < first.0 {
                    first = (at, why);
                }
            }
        }
        first
    }
}

/// The deadlines `drive` enforces on a TLS connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub(super) idle: Duration,
    pub(super) head: Duration,
    pub(super) send: Duration,
}

/// An I/O stream that records progress in an [`Activity`] (and, for HTTP/2,
/// follows the client's frames with a [`FrameClock`]; for HTTP/1.1, reads
/// through a [`Gate`]).
pub(super) struct Watched<T> {
    pub(super) inner: T,
    pub(super) activity: Arc<Activity>,
    pub(super) frames: Option<FrameClock>,
    pub(super) gate: Option<Gate>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Watched {
            inner,
            activity,
            frames,
            gate,
        } = &mut *self;
        let Some(gate) = gate.as_mut() else {
            let before = buf.filled().len();
            let polled = Pin::new(&mut *inner).poll_read(cx, buf);
            if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                activity.touch();
                if let Some(frames) = frames.as_mut() {
                    frames.feed(&buf.filled()[before..], activity);
                }
            }
            return polled;
        };
        // Through the gate: hyper gets checked heads only.
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if gate.hand_out(buf) {
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            std::task::ready!(Pin::new(&mut *inner).poll_read(cx, buf))?;
            if buf.filled().len() == before {
                // EOF (a partial head is dropped, as on the plain path).
                return Poll::Ready(Ok(()));
            }
            activity.touch();
            if gate.passes_through() {
                return Poll::Ready(Ok(()));
            }
            if !gate.discards() {
                gate.take_in(&buf.filled()[before..]);
            }
            buf.set_filled(before);
        }
    }
}

impl<T> Watched<T> {
    /// Records what a write (`wrote`: the bytes it took) or a flush found:
    /// progress, or a full socket.
    fn saw<R>(&self, polled: &Poll<std::io::Result<R>>, wrote: impl Fn(&R) -> usize) {
        match polled {
            Poll::Ready(Ok(r)) => {
                if wrote(r) > 0 {
                    self.activity.touch();
                }
                self.activity.write_done();
            }
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.saw(&polled, |&n| n);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.saw(&polled, |&n| n);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.saw(&polled, |()| 0);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
