//! One plain HTTP/1.1 connection: read request heads, plan each answer, carry it
//! out, in order, until the client or a limit ends the connection.
//!
//! Owns: the read buffer, when the header-read, idle, send and linger
//! deadlines apply (each armed in the connection's [`Slot`], which the
//! sweeper in `deadline` enforces, also on a connection that never sends a
//! byte), keep-alive, pipelining depth,
//! the lingering close on every close after an answer (a request body,
//! requests pipelined past the depth limit or after `Connection: close`), and
//! reacting to a drain. It must not decide statuses or headers (`respond` does) nor build file
//! paths (`store` does); it only moves bytes in the order the plan says.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::deadline::Slot;
use super::head::{self, Parsed, RequestHead};
use super::response::HeadBuf;
use super::sendfile::{self, WriteError};
use crate::clock::unix_secs;
use crate::serve::answer::{self, Answer, Ask, Policy};
use crate::serve::metrics::{ServeMetrics, Transport};
use crate::serve::plan::respond::{self, Method, Payload};
use crate::serve::Shared;
use crate::store::OpenObject;

/// Starting size of a connection's read buffer; it grows up to the head limit.
/// Small, so that idle keep-alive connections cost little memory.
const INITIAL_READ_BUFFER: usize = 2048;

/// Why a connection ended (for logs).
#[derive(Debug)]
enum End {
    ClientClosed,
    Timeout,
    Done,
    Write(WriteError),
}

/// Serves one accepted connection (in its deadline slot) to its end.
pub async fn serve(
    slot: Slot,
    peer: IpAddr,
    shared: Arc<Shared>,
    policy: Policy,
    drain: watch::Receiver<bool>,
) {
    let _ = slot.stream().set_nodelay(true);
    match run(&slot, peer, &shared, policy, &drain).await {
        End::Write(error) => tracing::debug!(%error, "connection closed on a write error"),
        end => tracing::debug!(?end, "connection closed"),
    }
}

async fn run(
    slot: &Slot,
    peer: IpAddr,
    shared: &Shared,
    policy: Policy,
    drain: &watch::Receiver<bool>,
) -> End {
    let stream = slot.stream();
    // Each limit is read where it is used, not copied: the connection's
    // future holds what lives across its idle wait, and a copy of every
    // limit is 150 bytes of it. Reading them per request is also what lets
    // a reload reach a kept-alive connection.
    let mut buf: Vec<u8> = Vec::new();
    // Requests answered since the last read from the socket (pipelining depth).
    let mut answered_from_buffer = 0usize;
    let mut first_request = true;
    loop {
        // 1. Get one complete request head into the buffer.
        // The first request must arrive within the header timeout of the accept,
        // so a connection that never sends a byte is closed too.
        let mut head_deadline =
            first_request.then(|| slot.after(shared.limits().header_read_timeout));
        // The parsed head goes straight into the request's boxed future (as
        // an unanswerable head's error goes into the refusal's): a head held
        // in this loop's own state would be ~280 bytes of every idle
        // connection's future.
        let (answering, consumed) = loop {
            // Not awaited inside the match: its scrutinee (280 bytes) would
            // be kept across the await.
            let unanswerable = match shared.live.with(|live| head::parse(&buf, &live.limits)) {
                Parsed::Complete(head) => {
                    answered_from_buffer += 1;
                    let consumed = head.len;
                    // The last answer on this connection: the pipelining depth
                    // is reached with more requests queued, or the server is
                    // draining.
                    let last = (answered_from_buffer >= shared.limits().max_pipeline_depth
                        && buf.len() > consumed)
                        || *drain.borrow();
                    // Boxed: a request's state (its head, plan and writers)
                    // lives only while it is answered, and the connection's
                    // future holds a pointer to it, not its bytes, through the
                    // idle wait between requests.
                    let answering =
                        Box::pin(answer_one(slot, peer, shared, policy, head, &buf, last));
                    break (answering, consumed);
                }
                Parsed::Invalid(err) => Some(err),
                Parsed::Partial => None,
            };
            if let Some(err) = unanswerable {
                Box::pin(refuse(slot, shared, err, &buf)).await;
                return End::Done;
            }
            if buf.is_empty() && *drain.borrow() {
                return End::Done;
            }
            // Between requests we wait up to the idle timeout for a first byte;
            // once a byte has come, the whole head must arrive in time. A
            // wait with no byte yet is idle: a drain ends it.
            let deadline = match head_deadline {
                Some(d) => d,
                None if buf.is_empty() => slot.after(shared.limits().idle_timeout),
                None => *head_deadline.insert(slot.after(shared.limits().header_read_timeout)),
            };
            slot.arm(deadline, buf.is_empty());
            let max_head_bytes = shared.limits().max_head_bytes;
            // An idle connection holds no read buffer: it is made once the
            // next request's bytes are ready to read. `poll_read_ready`
            // keeps the waker in the socket's own reader slot: `readable()`'s
            // future would add its 152-byte waiter to every idle connection.
            let read = async {
                loop {
                    std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await?;
                    if let Some(n) = read_now(stream, &mut buf, max_head_bytes)? {
                        break Ok::<usize, std::io::Error>(n);
                    }
                }
            }
            .await;
            slot.disarm();
            match read {
                // The sweeper shut the socket down: the deadline passed, or
                // the connection was idle when a drain began.
                _ if slot.expired() => return End::Timeout,
                Ok(0) | Err(_) => return End::ClientClosed,
                Ok(_) => answered_from_buffer = 0,
            }
        };
        first_request = false;
        if let Some(end) = answering.await {
            return end;
        }
        buf.drain(..consumed);
        if buf.is_empty() {
            // Free it while the connection idles (see `make_room`).
            buf = Vec::new();
        }
    }
}

/// Answers a request head that cannot be served (the error says how), then
/// closes with a lingering close.
async fn refuse(slot: &Slot, shared: &Shared, err: respond::ServeError, buf: &[u8]) {
    let limits = shared.limits();
    let plan = respond::error(&err);
    let response_head = HeadBuf::of(&plan, unix_secs(shared.clock.now()), false, false);
    let started = Instant::now();
    let written = write_response(
        slot,
        response_head,
        &plan.payload,
        None,
        limits.send_timeout,
        &shared.metrics,
    )
    .await;
    count(shared, &plan, &plan.payload, written.is_ok(), started);
    linger(slot, buf, 0, limits.linger_timeout).await;
}

/// Plans and writes the answer to one parsed request (`last`: the connection
/// closes after it whatever the request says): `None` when the connection
/// stays open for the next one.
async fn answer_one(
    slot: &Slot,
    peer: IpAddr,
    shared: &Shared,
    policy: Policy,
    head: RequestHead<'_>,
    buf: &[u8],
    last: bool,
) -> Option<End> {
    let limits = shared.limits();
    // The request-duration histogram's start: the head is parsed.
    let started = Instant::now();
    // 2. Plan the answer.
    let head_only = Method::parse(head.method) == Method::Head;
    let has_body = head.body.has_body();
    // One instant per request: token expiry, the If-Range age rule and the
    // Date header all see the same time.
    let now = shared.clock.now();
    let ask = Ask {
        method: head.method,
        target: head.target,
        fields: &head.fields,
    };
    let Answer { plan, object } = answer::answer(shared, policy, peer, &ask, now);
    let keep_alive = head.keep_alive && !plan.close && !has_body && !last;

    // 3. Carry it out.
    let response_head = HeadBuf::of(
        &plan,
        unix_secs(now),
        keep_alive && !plan.close,
        head.http10,
    );
    let payload = if head_only {
        &Payload::Empty
    } else {
        &plan.payload
    };
    let result = write_response(
        slot,
        response_head,
        payload,
        object.as_ref(),
        limits.send_timeout,
        &shared.metrics,
    )
    .await;
    count(shared, &plan, payload, result.is_ok(), started);
    if let Err(e) = result {
        if let Some(object) = &object {
            let fault = match &e {
                WriteError::Io(io) => shared.store.drive_fault(object.disk, io),
                WriteError::ShortFile => shared
                    .store
                    .drive_fault(object.disk, &std::io::ErrorKind::UnexpectedEof.into()),
                WriteError::Stalled(_) => false,
            };
            if fault {
                tracing::warn!(error = %e, "a drive failed under a response; closing its connection");
                // A read given up on still holds a duplicate of the socket
                // on its pool thread: shut the socket itself, so the client
                // sees the end now rather than when the drive answers.
                let _ = nix::sys::socket::shutdown(
                    std::os::fd::AsRawFd::as_raw_fd(slot.stream()),
                    nix::sys::socket::Shutdown::Both,
                );
            }
        }
        return Some(End::Write(e));
    }
    if has_body {
        linger(
            slot,
            &buf[head.len..],
            discard_budget(&head, shared),
            limits.linger_timeout,
        )
        .await;
        return Some(End::Done);
    }
    if !keep_alive {
        // The client may have sent more (requests pipelined past this last
        // answer, or after its own `Connection: close`), or may still be
        // sending: a close with unread input is a reset, which destroys the
        // answer bytes still in the kernel's send buffer. Linger instead.
        linger(
            slot,
            &buf[head.len..],
            limits.max_discard_body_bytes,
            limits.linger_timeout,
        )
        .await;
        return Some(End::Done);
    }
    None
}

/// Makes sure `buf` has spare room: it starts at [`INITIAL_READ_BUFFER`] and
/// doubles up to one byte past the head limit, which lets the parser tell "too
/// large" from "complete" (the parser refuses a full buffer, so this always
/// grows when it is called with a full one).
fn make_room(buf: &mut Vec<u8>, max_head_bytes: usize) {
    if buf.capacity() == buf.len() {
        let want = (buf.capacity() * 2)
            .max(INITIAL_READ_BUFFER)
            .min(max_head_bytes + 1);
        buf.reserve_exact(want - buf.len());
    }
}

/// One read of request bytes into `buf`, if the socket has any: `Ok(None)`
/// when it has none, and tokio's cached readiness is then cleared, so that
/// the caller's next wait is for a real event.
///
/// Into an empty `buf`, the bytes are received on the stack and copied into a
/// buffer of exactly the size read, so that ten thousand connections that each
/// send a 200-byte request hold 200 bytes each, not [`INITIAL_READ_BUFFER`]
/// (which the allocator would keep after they are freed). A partial head is
/// continued in the spare room of `buf`, grown by [`make_room`].
///
/// A read that fills less than the room offered has drained the socket, so the
/// readiness is cleared right there (inside `try_io`, which only clears it if
/// no new event arrived meanwhile). Without that, the next request would begin
/// with a recv that can only say EAGAIN: one wasted system call per request,
/// which nginx avoids the same way. Synchronous, so that the connection's
/// future holds no read state across its idle wait.
fn read_now(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    max_head_bytes: usize,
) -> std::io::Result<Option<usize>> {
    use nix::sys::socket::{recv, MsgFlags};
    let fd = std::os::fd::AsRawFd::as_raw_fd(stream);
    let mut got = None;
    let attempt = stream.try_io(tokio::io::Interest::READABLE, || {
        let (n, room) = if buf.is_empty() {
            // Lives only inside this closure, never across an await.
            let mut scratch = [0u8; INITIAL_READ_BUFFER];
            let n = recv(fd, &mut scratch, MsgFlags::empty())?;
            buf.extend_from_slice(&scratch[..n]);
            (n, scratch.len())
        } else {
            make_room(buf, max_head_bytes);
            let start = buf.len();
            let room = buf.capacity() - start;
            buf.resize(start + room, 0);
            let received = recv(fd, &mut buf[start..], MsgFlags::empty());
            buf.truncate(start + *received.as_ref().unwrap_or(&0));
            (received?, room)
        };
        got = Some(n);
        if n > 0 && n < room {
            // Drained: clear readiness, but keep the bytes (see `got`).
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match (attempt, got) {
        (Ok(n), _) => Ok(Some(n)),
        (Err(e), Some(n)) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(Some(n)),
        (Err(e), _)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        (Err(e), _) => Err(e),
    }
}

/// Counts a plain answer: its status, its body bytes when it was all written,
/// and its duration since `started`.
pub(crate) fn count(
    shared: &Shared,
    plan: &respond::Plan,
    payload: &Payload,
    written: bool,
    started: Instant,
) {
    let bytes = match payload {
        Payload::Empty => 0,
        _ if written => plan.content_length,
        _ => 0,
    };
    shared
        .metrics
        .request(Transport::Http1, plan.status, bytes, started.elapsed());
}

/// Writes a serialised response head, then `payload` (file ranges from
/// `object`) with the sendfile writer. The head's buffer goes back to the
/// thread as soon as the head is out, not after the body: a body that waits
/// for a slow client must not make the next request on the thread allocate.
pub(crate) async fn write_response(
    slot: &Slot,
    mut head: HeadBuf,
    payload: &Payload,
    object: Option<&Arc<OpenObject>>,
    stall: Duration,
    metrics: &ServeMetrics,
) -> Result<(), WriteError> {
    let written = async {
        match (payload, object) {
            (Payload::Empty, _) => sendfile::send_all(slot, &head, false, stall).await,
            (Payload::Text(text), _) => {
                head.extend_from_slice(text.as_bytes());
                sendfile::send_all(slot, &head, false, stall).await
            }
            (Payload::File(range), Some(obj)) => {
                let more = range.len() >= crate::config::defaults::MSG_MORE_MIN_BODY;
                sendfile::send_all(slot, &head, more, stall).await?;
                drop(head);
                sendfile::send_file(slot, obj, *range, stall, metrics).await
            }
            (Payload::Multipart { parts, trailer }, Some(obj)) => {
                sendfile::send_all(slot, &head, false, stall).await?;
                drop(head);
                for (part_head, range) in parts {
                    sendfile::send_all(slot, part_head, false, stall).await?;
                    sendfile::send_file(slot, obj, *range, stall, metrics).await?;
                }
                sendfile::send_all(slot, trailer, false, stall).await
            }
            // A file body without an open file cannot be planned; close rather than lie.
            (Payload::File(_) | Payload::Multipart { .. }, None) => Err(WriteError::ShortFile),
        }
    }
    .await;
    // Whatever a write met after the sweeper shut the socket down (EPIPE, a
    // reset) is the stall that made it do so, not a drive's or client's fault.
    match written {
        Err(_) if slot.expired() => Err(WriteError::Stalled(stall)),
        other => other,
    }
}

/// How many body bytes to read and discard after answering.
fn discard_budget(head: &RequestHead<'_>, shared: &Shared) -> u64 {
    match head.body {
        head::BodyFraming::Length(n) => n.min(shared.limits().max_discard_body_bytes),
        _ => shared.limits().max_discard_body_bytes,
    }
}

/// Lingering close: stop sending, then read and discard what the client is still
/// sending (up to `budget` beyond what is already buffered, and up to the linger
/// timeout), so that our answer is not destroyed by a reset. Every close of a
/// connection that was answered goes through here: the write side is shut
/// down at once (the client reads our FIN after the last answer byte), and
/// the descriptor is closed only once the client has closed its side, the
/// budget is spent or the timeout passed, so that the kernel never sees
/// unread input at `close()` while the client is behaving.
pub(crate) async fn linger(slot: &Slot, already: &[u8], budget: u64, within: Duration) {
    let stream = slot.stream();
    let _ = nix::sys::socket::shutdown(
        std::os::fd::AsRawFd::as_raw_fd(stream),
        nix::sys::socket::Shutdown::Write,
    );
    let mut left = budget.saturating_sub(already.len() as u64);
    // The sweeper ends the linger at the deadline (idle or not: a drain
    // does not cut it short).
    slot.arm(slot.after(within), false);
    // Keep reading until EOF, the budget, or the deadline; a little slack past the
    // budget lets a client that sent exactly the body finish cleanly.
    let mut slack: u64 = 64 * 1024;
    loop {
        let read = async {
            stream.readable().await?;
            discard_now(stream)
        }
        .await;
        match read {
            _ if slot.expired() => return,
            Ok(0) => return,
            Ok(n) => {
                let n = n as u64;
                if n <= left {
                    left -= n;
                } else if n - left <= slack {
                    slack -= n - left;
                    left = 0;
                } else {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// One read of bytes to throw away. The scratch space lives on the stack of
/// this synchronous call, not in the lingering future: a flood of refused or
/// closing connections costs no buffer each.
fn discard_now(stream: &TcpStream) -> std::io::Result<usize> {
    let mut scratch = [0u8; 16 * 1024];
    stream.try_read(&mut scratch)
}
