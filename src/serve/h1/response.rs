//! The response head of the plain transport, written without a heap
//! allocation per request (issue 13).
//!
//! Owns: the head buffer each worker thread lends to the request it writes
//! ([`HeadBuf`]: taken for one response, cleared and given back when it is
//! dropped, whichever thread drops it), and the Date value, rendered once per
//! whole second of the injected clock and kept per thread. A buffer per
//! thread rather than per connection: an idle keep-alive connection then
//! holds no head buffer (docs/ARCHITECTURE.md, known gaps: idle connections'
//! memory). It must never decide a field (`Plan::write_head` writes the
//! plan's) nor keep more than [`KEEP_BYTES`] per thread.

use std::cell::{Cell, RefCell};
use std::ops::{Deref, DerefMut};

use crate::serve::plan::date;
use crate::serve::plan::respond::Plan;

/// A new head buffer's room: a head with CORS fields fits.
const START_BYTES: usize = 512;

/// A buffer that grew past this (a long error text) is not kept.
pub const KEEP_BYTES: usize = 4096;

thread_local! {
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static DATE: Cell<(u64, [u8; date::LEN])> = const { Cell::new((u64::MAX, [0; date::LEN])) };
}

/// The IMF-fixdate of `secs`, rendered once per second on each thread.
pub fn date(secs: u64) -> [u8; date::LEN] {
    DATE.try_with(|cached| {
        let (at, text) = cached.get();
        if at == secs {
            return text;
        }
        let text = date::imf_fixdate(secs);
        cached.set((secs, text));
        text
    })
    .unwrap_or_else(|_| date::imf_fixdate(secs))
}

/// A response head being written: the thread's spare buffer while it lasts.
#[derive(Debug)]
pub struct HeadBuf(Vec<u8>);

impl HeadBuf {
    /// The thread's spare buffer (empty), or a new one if it is lent out.
    pub fn take() -> HeadBuf {
        let spare = SPARE
            .try_with(|spare| std::mem::take(&mut *spare.borrow_mut()))
            .unwrap_or_default();
        if spare.capacity() == 0 {
            return HeadBuf(Vec::with_capacity(START_BYTES));
        }
        HeadBuf(spare)
    }

    /// `plan`'s head at `secs` (seconds since the epoch), in a lent buffer.
    pub fn of(plan: &Plan, secs: u64, keep_alive: bool, http10: bool) -> HeadBuf {
        let mut head = HeadBuf::take();
        plan.write_head(&date(secs), keep_alive, http10, &mut head);
        head
    }
}

impl Deref for HeadBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for HeadBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for HeadBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() > KEEP_BYTES {
            return;
        }
        buf.clear();
        // During thread teardown the slot may be gone: the buffer is freed.
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.capacity() == 0 {
                *spare = buf;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::plan::respond::{error, ServeError};

    #[test]
    fn the_buffer_comes_back_and_the_date_follows_the_second() {
        let plan = error(&ServeError::NotFound);
        let first = HeadBuf::of(&plan, 1_700_000_000, true, false);
        let at = first.as_ptr();
        assert_eq!(&first[..], &plan.head(1_700_000_000, true, false)[..]);
        drop(first);
        let again = HeadBuf::of(&plan, 1_700_000_001, true, false);
        assert_eq!(again.as_ptr(), at, "the same buffer, reused");
        assert!(String::from_utf8_lossy(&again).contains("Date: Tue, 14 Nov 2023 22:13:21 GMT\r\n"));
        // Lent out: another head gets a buffer of its own.
        let other = HeadBuf::take();
        assert_ne!(other.as_ptr(), at);
        assert_eq!(&date(1_700_000_000), b"Tue, 14 Nov 2023 22:13:20 GMT");
    }
}
