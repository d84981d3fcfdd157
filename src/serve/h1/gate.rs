//! The head gate of HTTP/1.1 over TLS: every request head is read by
//! [`head::parse`], the plain listener's parser, before hyper sees a byte of
//! it, so that both transports refuse the same malformed heads (smuggling
//! framings, unsupported versions, Host rules, 414 and 431) with the same
//! answer: one rule, in one place.
//!
//! Owns: holding a request's bytes back until its head is complete and valid,
//! and replacing an invalid head with a stand-in request that hyper answers in
//! order, after the requests before it, with the refusal (which closes the
//! connection). It must not decide the refusal's status or fields (`head` and
//! `respond` do), and it stops looking once a request has a body: from there on
//! bytes pass through, as the connection ends after that request's answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::ReadBuf;

use super::head::{self, Parsed};
use crate::config::Limits;
use crate::serve::plan::respond::ServeError;

/// What hyper is handed in place of an invalid head: a request it accepts,
/// which the service recognises by its position (see [`Refusal`]).
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nHost: refused\r\n\r\n";

/// No refusal is due.
const NONE: u64 = u64::MAX;

/// The refusal the gate found, shared with the connection's service: which
/// request (counted from 0) is the stand-in, and what it stands for.
#[derive(Debug)]
pub struct Refusal {
    at: AtomicU64,
    error: Mutex<Option<ServeError>>,
    requests: AtomicU64,
}

impl Default for Refusal {
    fn default() -> Refusal {
        Refusal {
            at: AtomicU64::new(NONE),
            error: Mutex::new(None),
            requests: AtomicU64::new(0),
        }
    }
}

impl Refusal {
    /// The service got its next request: the refusal it stands for, when it
    /// is the stand-in.
    pub fn next_request(&self) -> Option<ServeError> {
        let index = self.requests.fetch_add(1, Ordering::Relaxed);
        if self.at.load(Ordering::Acquire) != index {
            return None;
        }
        self.error.lock().ok()?.take()
    }

    fn set(&self, at: u64, error: ServeError) {
        if let Ok(mut slot) = self.error.lock() {
            *slot = Some(error);
        }
        self.at.store(at, Ordering::Release);
    }
}

/// Where the gate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading heads.
    Heads,
    /// A request with a body went through: everything after it passes.
    Through,
    /// An invalid head was replaced by the stand-in: what the client still
    /// sends is read and dropped.
    Refused,
}

/// One connection's gate.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    refusal: Arc<Refusal>,
    /// Bytes of heads not yet complete.
    gathered: Vec<u8>,
    /// Checked bytes for hyper, from `ready_from` on.
    ready: Vec<u8>,
    ready_from: usize,
    /// Heads handed to hyper.
    passed: u64,
    state: State,
}

impl Gate {
    pub fn new(limits: Limits, refusal: Arc<Refusal>) -> Gate {
        Gate {
            limits,
            refusal,
            gathered: Vec::new(),
            ready: Vec::new(),
            ready_from: 0,
            passed: 0,
            state: State::Heads,
        }
    }

    /// True once bytes from the client go to hyper unchecked (and nothing
    /// checked is waiting).
    pub fn passes_through(&self) -> bool {
        self.state == State::Through && self.ready_from == self.ready.len()
    }

    /// True once the stand-in has been handed out: the client's bytes are
    /// dropped.
    pub fn discards(&self) -> bool {
        self.state == State::Refused && self.ready_from == self.ready.len()
    }

    /// Moves checked bytes into `buf`: false when there are none.
    pub fn hand_out(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let left = &self.ready[self.ready_from..];
        let n = left.len().min(buf.remaining());
        if n == 0 {
            return false;
        }
        buf.put_slice(&left[..n]);
        self.ready_from += n;
        if self.ready_from == self.ready.len() {
            // Freed while the connection idles.
            self.ready = Vec::new();
            self.ready_from = 0;
        }
        true
    }

    /// Bytes the client sent, in order.
    pub fn take_in(&mut self, bytes: &[u8]) {
        match self.state {
            State::Refused => return,
            State::Through => {
                self.ready.extend_from_slice(bytes);
                return;
            }
            State::Heads => self.gathered.extend_from_slice(bytes),
        }
        while !self.gathered.is_empty() {
            match head::parse(&self.gathered, &self.limits) {
                Parsed::Partial => return,
                Parsed::Complete(head) => {
                    let (len, has_body) = (head.len, head.body.has_body());
                    self.ready.extend(self.gathered.drain(..len));
                    self.passed += 1;
                    if has_body {
                        self.ready.append(&mut self.gathered);
                        self.state = State::Through;
                    }
                }
                Parsed::Invalid(error) => {
                    self.refusal.set(self.passed, error);
                    self.gathered = Vec::new();
                    self.ready.extend_from_slice(STAND_IN);
                    self.state = State::Refused;
                }
            }
            if self.state != State::Heads {
                return;
            }
        }
        if self.gathered.capacity() > 0 {
            self.gathered = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(gate: &mut Gate) -> Vec<u8> {
        let mut all = Vec::new();
        let mut space = [0u8; 7];
        loop {
            let mut buf = ReadBuf::new(&mut space);
            if !gate.hand_out(&mut buf) {
                return all;
            }
            all.extend_from_slice(buf.filled());
        }
    }

    #[test]
    fn valid_heads_pass_whole_and_an_invalid_one_becomes_the_stand_in_in_its_place() {
        let refusal = Arc::new(Refusal::default());
        let mut gate = Gate::new(Limits::default(), refusal.clone());
        let good = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut wire = good.repeat(2);
        wire.extend_from_slice(b"GET /b HTTP/1.2\r\nHost: x\r\n\r\n");
        wire.extend_from_slice(good);
        let mut handed = Vec::new();
        for byte in &wire {
            gate.take_in(std::slice::from_ref(byte));
            handed.extend(out(&mut gate));
        }
        let mut want = good.repeat(2);
        want.extend_from_slice(STAND_IN);
        assert_eq!(
            String::from_utf8_lossy(&handed),
            String::from_utf8_lossy(&want)
        );
        assert!(gate.discards());
        assert!(refusal.next_request().is_none());
        assert!(refusal.next_request().is_none());
        assert!(matches!(
            refusal.next_request(),
            Some(ServeError::VersionNotSupported)
        ));
        assert!(refusal.next_request().is_none());
    }

    #[test]
    fn a_partial_head_is_held_back_and_a_body_passes_through() {
        let mut gate = Gate::new(Limits::default(), Arc::new(Refusal::default()));
        gate.take_in(b"POST /a HTTP/1.1\r\nHost: x\r\n");
        assert!(out(&mut gate).is_empty(), "a partial head is held back");
        gate.take_in(b"Content-Length: 3\r\n\r\nabcGET");
        assert_eq!(
            out(&mut gate),
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET"
        );
        assert!(gate.passes_through());
    }
}
