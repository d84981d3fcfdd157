//! One TLS connection: the handshake, then HTTP/2 or HTTP/1.1 through hyper,
//! with every answer decided by the same planner as the plain path.
//!
//! Owns: the handshake deadline, picking the HTTP version by ALPN, hyper's
//! settings (HTTP/2 stream and header-list limits, the rapid-reset defences),
//! the header deadline (hyper's for HTTP/1.1; for HTTP/2 eddy's own, clocked
//! by following the client's frames), the idle deadline (no byte either way
//! for `limits.idle_timeout` closes the connection), the send deadline (the
//! socket full for `limits.send_timeout` while a write waits), the drain, turning a hyper
//! request into an [`Ask`] and a [`Plan`] into a hyper response whose body is
//! slices of the memory-mapped object. It must not decide a status or a header
//! (`respond` does) nor check a token (`answer` does).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::certs::Certs;
use crate::config::defaults::DISK_WINDOW;
use crate::config::Http2Limits;
use crate::serve::answer::{self, Answer, Ask, Policy};
use crate::serve::h1::gate::{Gate, Refusal};
use crate::serve::metrics::{ServeMetrics, Transport};
use crate::serve::plan::fields::Fields;
use crate::serve::plan::respond::{self, Body, FieldValue, Method, Plan, ServeError};
use crate::serve::{prefetch, Shared};
use crate::store::OpenObject;

/// What every TLS connection of a listener shares.
#[derive(Debug)]
pub struct TlsListener {
    pub certs: Arc<Certs>,
    pub policy: Policy,
    pub http2: Http2Limits,
    /// Body chunk size (`tls.frame_bytes`).
    pub frame_bytes: usize,
}

/// Serves one accepted TCP connection on a TLS listener to its end.
pub async fn serve(
    stream: TcpStream,
    peer: IpAddr,
    shared: Arc<Shared>,
    tls: Arc<TlsListener>,
    mut drain: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.certs.current());
    // The handshake counts against the header deadline, as the head of the
    // first request does on the plain path: a silent client is closed.
    // The limits as they are at the accept hold for the whole connection
    // (hyper's are set once); a reload reaches new connections.
    let limits = shared.limits();
    let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await;
    let stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(error)) => {
            shared.metrics.tls.handshake_failed();
            tracing::debug!(%error, %peer, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.tls.handshake_failed();
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let session = stream.get_ref().1;
    let h2 = session.alpn_protocol() == Some(b"h2");
    let version = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "other",
    };
    let alpn = match session.alpn_protocol() {
        Some(b"h2") => "h2",
        Some(b"http/1.1") => "http/1.1",
        Some(_) => "other",
        None => "none",
    };
    shared.metrics.tls.handshake(version, alpn);
    let conn_state = Arc::new(ConnState {
        completed: AtomicU32::new(0),
        abandoned: AtomicU32::new(0),
        flood: Notify::new(),
        metrics: shared.metrics.clone(),
        store: shared.store.clone(),
        transport: if h2 { Transport::H2 } else { Transport::Https1 },
        refusal: Arc::new(Refusal::default()),
    });
    // HTTP/1.1 heads are clocked by hyper (`header_read_timeout`), after the
    // gate has put them through the plain listener's parser; HTTP/2 heads are
    // clocked by eddy, from here.
    let activity = Arc::new(Activity::new(h2));
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        frames: h2.then(FrameClock::new),
        gate: (!h2).then(|| Gate::new(limits, conn_state.refusal.clone())),
    });
    let service = {
        let shared = shared.clone();
        let tls = tls.clone();
        let conn_state = conn_state.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let response = handle(&req, peer, &shared, &tls, &conn_state);
            std::future::ready(Ok::<_, Infallible>(response))
        })
    };
    let deadlines = Deadlines {
        idle: limits.idle_timeout,
        head: limits.header_read_timeout,
        send: limits.send_timeout,
    };
    if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(tls.http2.max_concurrent_streams)
            .max_header_list_size(tls.http2.max_header_list_bytes)
            .max_pending_accept_reset_streams(tls.http2.max_pending_resets)
            .max_send_buf_size(crate::config::defaults::H2_SEND_BUFFER_BYTES)
            // Our Date header is the one sent: one clock read per request.
            .auto_date_header(false);
        let conn = builder.serve_connection(io, service);
        drive(conn, &activity, &conn_state, deadlines, &mut drain, |c| {
            c.graceful_shutdown()
        })
        .await;
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            // Twice the head limits: eddy's own check (and its 431 with the
            // usual fields) decides; hyper's bare 431 only guards memory.
            .max_buf_size((2 * limits.max_head_bytes).max(8192))
            .max_headers(2 * limits.max_headers)
            .auto_date_header(false);
        let conn = builder.serve_connection(io, service);
        drive(conn, &activity, &conn_state, deadlines, &mut drain, |c| {
            c.graceful_shutdown()
        })
        .await;
    }
}

/// Runs a hyper connection until it ends, a drain asks it to finish, one of its
/// deadlines passes (idle, or a request head that does not arrive), or a reset
/// flood was seen on it.
async fn drive<C, E>(
    conn: C,
    activity: &Activity,
    state: &ConnState,
    deadlines: Deadlines,
    drain: &mut watch::Receiver<bool>,
    shutdown: impl Fn(Pin<&mut C>),
) where
    C: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let mut draining = *drain.borrow();
    if draining {
        shutdown(conn.as_mut());
    }
    // One timer, set for the earliest deadline. Bytes moving push the idle
    // deadline later, which the timer learns when it fires (it is then set
    // again); a deadline that became earlier (a head began) moves it at once.
    let timer = tokio::time::sleep_until(activity.deadline(&deadlines).0);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            // The connection first: what it reads may set an earlier deadline,
            // which the timer branch below then sees.
            biased;
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "TLS connection ended with an error");
                }
                return;
            }
            _ = drain.changed(), if !draining => {
                draining = true;
                shutdown(conn.as_mut());
            }
            _ = state.flood.notified() => {
                tracing::warn!("HTTP/2 reset flood: closing the connection");
                return;
            }
            why = std::future::poll_fn(|cx| {
                let (at, why) = activity.deadline(&deadlines);
                if at < timer.deadline() {
                    timer.as_mut().reset(at);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) if Instant::now() >= at => Poll::Ready(Some(why)),
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            }) => match why {
                Some(Expired::Idle) => {
                    tracing::debug!("TLS connection idle: closing");
                    return;
                }
                Some(Expired::Head) => {
                    tracing::debug!("HTTP/2 request head not complete within the header deadline: closing");
                    return;
                }
                Some(Expired::Send) => {
                    tracing::debug!("TLS client took no byte within the send deadline: closing");
                    return;
                }
                // Fired early (the deadline moved later): set it again.
                None => timer.as_mut().reset(activity.deadline(&deadlines).0),
            },
        }
    }
}

/// Per connection: responses completed and streams the client abandoned.
#[derive(Debug)]
struct ConnState {
    completed: AtomicU32,
    abandoned: AtomicU32,
    flood: Notify,
    metrics: Arc<ServeMetrics>,
    /// Told of a drive's read error on a body.
    store: Arc<crate::store::Store>,
    transport: Transport,
    /// HTTP/1.1: the head the gate refused, answered in its place.
    refusal: Arc<Refusal>,
}

impl ConnState {
    /// A response ended: counted by status and body bytes sent, and as whole
    /// or abandoned for the reset-flood rule.
    fn finished(&self, status: u16, sent: u64, whole: bool, took: std::time::Duration) {
        self.metrics.request(self.transport, status, sent, took);
        if whole {
            self.completed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection that has abandoned more than `max` responses, and more
    /// than it completed, is resetting streams as an attack does.
    fn is_flood(&self, max: u32) -> bool {
        let abandoned = self.abandoned.load(Ordering::Relaxed);
        abandoned > max && abandoned > self.completed.load(Ordering::Relaxed)
    }
}

fn handle(
    req: &Request<Incoming>,
    peer: IpAddr,
    shared: &Shared,
    tls: &TlsListener,
    state: &Arc<ConnState>,
) -> Response<ResponseBody> {
    let now = shared.clock.now();
    // The request-duration histogram's start: the head is parsed.
    let started = std::time::Instant::now();
    let h2 = req.version() == Version::HTTP_2;
    if h2 && state.is_flood(tls.http2.max_client_resets) {
        state.flood.notify_one();
    }
    if !h2 {
        if let Some(err) = state.refusal.next_request() {
            // The stand-in for a head the gate refused: the plain listener's
            // answer to it (which closes the connection).
            let plan = respond::error(&err);
            let body = ResponseBody::new(
                plan.status,
                &plan.body,
                None,
                tls.frame_bytes,
                state,
                started,
            )
            .unwrap_or_else(|_| ResponseBody::empty());
            return response(&plan, now, h2, body);
        }
    }
    let head_only = Method::parse(req.method().as_str()) == Method::Head;
    let Answer { plan, object } = match check_head(req, &shared.limits()) {
        Err(err) => Answer {
            plan: respond::error(&err),
            object: None,
        },
        Ok(target) => {
            let mut fields = Fields::default();
            for (name, value) in req.headers() {
                fields.add(name.as_str(), value.as_bytes());
            }
            let ask = Ask {
                method: req.method().as_str(),
                target: target.as_bytes(),
                fields: &fields,
            };
            answer::answer(shared, tls.policy, peer, &ask, now)
        }
    };
    let body = if head_only { &Body::Empty } else { &plan.body };
    let body = match ResponseBody::new(
        plan.status,
        body,
        object.as_ref(),
        tls.frame_bytes,
        state,
        started,
    ) {
        Ok(b) => b,
        Err(error) => {
            tracing::error!(%error, "cannot map an object for a TLS response");
            let plan = respond::error(&ServeError::Internal(error.to_string()));
            let body = ResponseBody::new(
                plan.status,
                &plan.body,
                None,
                tls.frame_bytes,
                state,
                started,
            )
            .unwrap_or_else(|_| ResponseBody::empty());
            return response(&plan, now, h2, body);
        }
    };
    response(&plan, now, h2, body)
}

/// The checks hyper leaves to us, so that a request refused here gets the
/// same answer as on the plain listener: the head limits (`limits.*`, measured
/// as the head would be written in HTTP/1.1; hyper's own, larger limits only
/// guard memory), the target length, and one Host in HTTP/1.1.
fn check_head<'r>(
    req: &'r Request<Incoming>,
    limits: &crate::config::Limits,
) -> Result<&'r str, ServeError> {
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    if target.len() > limits.max_target_bytes {
        return Err(ServeError::TargetTooLong);
    }
    let headers = req.headers();
    if headers.len() > limits.max_headers {
        return Err(ServeError::HeadTooLarge);
    }
    // "METHOD TARGET HTTP/1.1\r\n", "name: value\r\n" each, "\r\n".
    let line = req.method().as_str().len() + 1 + target.len() + 11;
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if line + fields + 2 > limits.max_head_bytes {
        return Err(ServeError::HeadTooLarge);
    }
    if req.version() == Version::HTTP_11 && headers.get_all(http::header::HOST).iter().count() != 1
    {
        return Err(ServeError::BadRequest(
            "HTTP/1.1 needs exactly one Host field",
        ));
    }
    Ok(target)
}

/// A [`Plan`] as a hyper response: the same fields as the plain path sends.
fn response(plan: &Plan, now: SystemTime, h2: bool, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(plan.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in plan.fields(now) {
        // Static values are eddy's own literals (visible ASCII): no copy.
        let value = match value {
            FieldValue::Static(s) => Ok(HeaderValue::from_static(s)),
            FieldValue::Shared(s) => HeaderValue::try_from(&*s),
            FieldValue::Owned(s) => HeaderValue::try_from(s),
        };
        if let Ok(value) = value {
            headers.append(name, value);
        }
    }
    // Connection is an HTTP/1 field; HTTP/2 must not send it (RFC 9113 §8.2.2).
    if plan.close && !h2 {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// One piece of a response body.
#[derive(Debug)]
enum Piece {
    /// Generated bytes (error text, multipart framing).
    Small(Bytes),
    /// Bytes `at..at + len` of the object's file, read in chunks of `frame`
    /// bytes when they are sent.
    File { at: u64, len: u64 },
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::Small(b) => b.len() as u64,
            Piece::File { len, .. } => *len,
        }
    }
}

type Warming = Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;

/// A response body: pieces sent in order, file ranges read (`pread`) in
/// chunks of `frame` bytes, each window brought into the page cache
/// (`prefetch`) on the blocking pool first when it may need the disk, so that
/// a read on the event loop never waits for a drive. The object's bytes are
/// read with system calls, never through a memory map: a drive's read error
/// is an error value (the stream or connection is closed, the drive's error
/// counted), never a signal. Reports to the connection whether it was sent
/// whole.
pub struct ResponseBody {
    pieces: VecDeque<Piece>,
    remaining: u64,
    frame: usize,
    object: Option<Arc<OpenObject>>,
    /// Object bytes known resident: `at..warm_end` of the front piece.
    warm_end: u64,
    warming: Option<Warming>,
    /// Counted once, when the body ends or is dropped.
    state: Option<Arc<ConnState>>,
    status: u16,
    sent: u64,
    /// When the request's head was parsed (the request-duration histogram).
    started: std::time::Instant,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("pieces", &self.pieces.len())
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    fn empty() -> ResponseBody {
        ResponseBody {
            pieces: VecDeque::new(),
            remaining: 0,
            frame: 1,
            object: None,
            warm_end: 0,
            warming: None,
            state: None,
            status: 0,
            sent: 0,
            started: std::time::Instant::now(),
        }
    }

    /// A read of the object failed: its drive is told (a drive fault takes
    /// it out of service), and the error ends the body, which closes the
    /// stream (HTTP/2) or the connection (HTTP/1.1) before its declared end.
    fn read_failed(&self, object: &OpenObject, e: std::io::Error) -> std::io::Error {
        if let Some(state) = &self.state {
            state.store.drive_fault(object.disk, &e);
        }
        tracing::warn!(error = %e, "reading a TLS response body failed; closing it");
        e
    }

    fn finish(&mut self) {
        if let Some(state) = self.state.take() {
            state.finished(
                self.status,
                self.sent,
                self.remaining == 0,
                self.started.elapsed(),
            );
        }
    }

    fn new(
        status: u16,
        body: &Body,
        object: Option<&Arc<OpenObject>>,
        frame: usize,
        state: &Arc<ConnState>,
        started: std::time::Instant,
    ) -> std::io::Result<ResponseBody> {
        let mut pieces = VecDeque::new();
        let file = |first: u64, last: u64| -> std::io::Result<Piece> {
            let obj = object.ok_or_else(|| std::io::Error::other("file body without an object"))?;
            if last >= obj.len || first > last {
                return Err(std::io::Error::other("range beyond the object"));
            }
            Ok(Piece::File {
                at: first,
                len: last - first + 1,
            })
        };
        match body {
            Body::Empty => {}
            Body::Text(text) => pieces.push_back(Piece::Small(Bytes::from_static(text.as_bytes()))),
            Body::File(r) => pieces.push_back(file(r.first, r.last)?),
            Body::Multipart { parts, trailer } => {
                for (head, r) in parts {
                    pieces.push_back(Piece::Small(Bytes::copy_from_slice(head)));
                    pieces.push_back(file(r.first, r.last)?);
                }
                pieces.push_back(Piece::Small(Bytes::copy_from_slice(trailer)));
            }
        }
        let remaining = pieces.iter().map(Piece::len).sum();
        Ok(ResponseBody {
            pieces,
            remaining,
            frame,
            object: object.cloned(),
            warm_end: 0,
            warming: None,
            state: Some(state.clone()),
            status,
            sent: 0,
            started,
        })
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        let chunk = match this.pieces.front_mut() {
            None => return Poll::Ready(None),
            Some(Piece::Small(_)) => match this.pieces.pop_front() {
                Some(Piece::Small(b)) => b,
                _ => return Poll::Ready(None),
            },
            Some(Piece::File { at, len }) => {
                let Some(object) = this.object.clone() else {
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "file body without an object",
                    ))));
                };
                // The next window must be in the page cache before it is read
                // on the event loop; a window being read is waited for on
                // every poll until it is.
                if this.warming.is_none() && *at >= this.warm_end {
                    let window = (*len).min(DISK_WINDOW);
                    this.warm_end = *at + window;
                    if let Some(state) = this.state.clone() {
                        let first = *at;
                        let object = object.clone();
                        this.warming = Some(Box::pin(async move {
                            prefetch::ensure_resident(&object, first, window, &state.metrics).await
                        }));
                    }
                }
                if let Some(warming) = this.warming.as_mut() {
                    match warming.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => {
                            this.warming = None;
                            return Poll::Ready(Some(Err(this.read_failed(&object, e))));
                        }
                        Poll::Ready(Ok(())) => this.warming = None,
                    }
                }
                let take = (this.warm_end - *at).min(this.frame as u64).min(*len);
                // Resident (or just read in): a copy from the page cache that
                // does not wait for a drive.
                let chunk = match super::read_buf::read(&object, *at, take as usize, this.frame) {
                    Ok(chunk) => chunk,
                    Err(e) => return Poll::Ready(Some(Err(this.read_failed(&object, e)))),
                };
                *at += take;
                *len -= take;
                if *len == 0 {
                    this.pieces.pop_front();
                    this.warm_end = 0;
                }
                chunk
            }
        };
        this.remaining -= chunk.len() as u64;
        this.sent += chunk.len() as u64;
        if this.remaining == 0 {
            this.finish();
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Not yet counted: empty, or dropped before its last byte went out.
        self.finish();
    }
}

/// When the connection last moved a byte either way, and since when a request
/// head has been awaited without arriving (HTTP/2: see [`FrameClock`]).
#[derive(Debug)]
struct Activity {
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
enum Expired {
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
    fn new(awaiting_head: bool) -> Activity {
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

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A head began arriving (kept if one already is).
    fn head_started(&self) {
        if self.head_since_ms.load(Ordering::Relaxed) == NONE {
            self.head_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// The head being waited for has arrived whole.
    fn head_done(&self) {
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

    fn at(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// The earliest instant at which one of the deadlines may pass, and which.
    fn deadline(&self, limits: &Deadlines) -> (Instant, Expired) {
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
struct Deadlines {
    idle: Duration,
    head: Duration,
    send: Duration,
}

/// Follows the frames of the client's side of an HTTP/2 connection as its
/// bytes are read, to clock request heads: the preface, the client's SETTINGS
/// and the first request's HEADERS must arrive within the header deadline of
/// the handshake, and after that every frame from its first byte (a header
/// block with its CONTINUATION frames). hyper only ever sees a request once
/// its head is whole, and every byte read resets the idle deadline, so without
/// this a client dribbling the preface, or a HEADERS frame, would hold its
/// connection (and its slot) for ever.
#[derive(Debug)]
struct FrameClock {
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

    fn new() -> FrameClock {
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
    fn feed(&mut self, mut bytes: &[u8], activity: &Activity) {
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

/// An I/O stream that records progress in an [`Activity`] (and, for HTTP/2,
/// follows the client's frames with a [`FrameClock`]; for HTTP/1.1, reads
/// through a [`Gate`]).
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    frames: Option<FrameClock>,
    gate: Option<Gate>,
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
        a.head_since_ms.load(Ordering::Relaxed) != NONE
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
