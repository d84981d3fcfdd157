//! Clocking HTTP/2 request heads by following the client's frames.
//!
//! Owns: [`FrameClock`], a reader of frame headers (length, type, flags) over
//! the bytes the client sends, that tells [`Activity`] when a request head
//! (the preface, SETTINGS and first HEADERS; later, any frame from its first
//! byte) began and when it ended. It must never parse a frame's payload nor
//! judge a frame: hyper's h2 does.

use super::watch::Activity;

/// Follows the frames of the client's side of an HTTP/2 connection as its
/// bytes are read, to clock request heads: the preface, the client's SETTINGS
/// and the first request's HEADERS must arrive within the header deadline of
/// the handshake, and after that every frame from its first byte (a header
/// block with its CONTINUATION frames). hyper only ever sees a request once
/// its head is whole, and every byte read resets the idle deadline, so without
/// this a client dribbling the preface, or a HEADERS frame, would hold its
/// connection (and its slot) for ever.
#[derive(Debug)]
pub(super) struct FrameClock {
    /// Preface bytes still to come.
    preface_left: usize,
    /// The frame header being read (9 bytes), and how much of it has come.
    header: [u8; 9],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// The current frame is HEADERS or CONTINUATION with END_HEADERS.
    ends_block: bool,
    /// A HEADERS frame without END_HEADERS was read: CONTINUATION follows.
    in_block: bool,
    /// The first request's head has arrived.
    requested: bool,
}

impl FrameClock {
    const PREFACE: usize = 24;
    const HEADERS: u8 = 0x1;
    const CONTINUATION: u8 = 0x9;
    const END_HEADERS: u8 = 0x4;

    pub(super) fn new() -> FrameClock {
        FrameClock {
            preface_left: Self::PREFACE,
            header: [0; 9],
            header_len: 0,
            payload_left: 0,
            ends_block: false,
            in_block: false,
            requested: false,
        }
    }

    /// Bytes the client sent, in order.
    pub(super) fn feed(&mut self, mut bytes: &[u8], activity: &Activity) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.header_len < self.header.len() {
                if self.header_len == 0 {
                    activity.head_started();
                }
                let n = (self.header.len() - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len == self.header.len() {
                    let h = self.header;
                    self.payload_left = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                    let (ty, flags) = (h[3], h[4]);
                    let header_frame = ty == Self::HEADERS || ty == Self::CONTINUATION;
                    self.ends_block = header_frame && flags & Self::END_HEADERS != 0;
                    if ty == Self::HEADERS && !self.ends_block {
                        self.in_block = true;
                    }
                    if self.payload_left == 0 {
                        self.frame_done(activity);
                    }
                }
            } else {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
                if self.payload_left == 0 {
                    self.frame_done(activity);
                }
            }
        }
    }

    fn frame_done(&mut self, activity: &Activity) {
        self.header_len = 0;
        if self.ends_block {
            self.ends_block = false;
            self.in_block = false;
            self.requested = true;
        }
        if self.requested && !self.in_block {
            activity.head_done();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut v = u32::try_from(len).expect("small").to_be_bytes()[1..].to_vec();
        v.extend([ty, flags, 0, 0, 0, 1]);
        v.extend(std::iter::repeat_n(0u8, len));
        v
    }

    fn awaiting(a: &Activity) -> bool {
        a.awaiting_head()
    }

    #[test]
    fn the_first_head_is_awaited_until_a_header_block_ends_whatever_the_split() {
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x4, 0, 6)); // SETTINGS
        bytes.extend(frame(0x8, 0, 4)); // WINDOW_UPDATE
        bytes.extend(frame(0x1, 0, 10)); // HEADERS without END_HEADERS
        let block_end = bytes.len();
        bytes.extend(frame(0x9, 0x4, 3)); // CONTINUATION with END_HEADERS
        for split in 1..=bytes.len() {
            let a = Activity::new(true);
            let mut clock = FrameClock::new();
            for chunk in bytes[..block_end].chunks(split) {
                clock.feed(chunk, &a);
                assert!(awaiting(&a), "split {split}: head awaited before it ends");
            }
            clock.feed(&bytes[block_end..], &a);
            assert!(!awaiting(&a), "split {split}: head arrived");
            // A later frame is awaited from its first byte until it is whole.
            let ping = frame(0x6, 0, 8);
            clock.feed(&ping[..1], &a);
            assert!(awaiting(&a), "split {split}: a frame begun is awaited");
            clock.feed(&ping[1..], &a);
            assert!(!awaiting(&a), "split {split}: a whole frame is not");
        }
    }

    #[test]
    fn a_connection_without_a_request_stays_awaited() {
        let a = Activity::new(true);
        let mut clock = FrameClock::new();
        clock.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &a);
        clock.feed(&frame(0x4, 0, 0), &a);
        clock.feed(&frame(0x6, 0, 8), &a);
        assert!(awaiting(&a), "SETTINGS and PING are not a request");
        assert!(!awaiting(&Activity::new(false)), "HTTP/1.1: hyper's clock");
    }
}
