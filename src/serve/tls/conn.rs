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
//! the plan's payload as a [`PayloadStream`] (`stream`). It must not decide a
//! status or a header (`respond` does) nor check a token (`answer` does).

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::SystemTime;

use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::certs::Certs;
use super::frame_clock::FrameClock;
use super::stream::PayloadStream;
use super::watch::{Activity, Deadlines, Expired, Watched};
use crate::config::Http2Limits;
use crate::serve::answer::{self, Answer, Ask, Policy};
use crate::serve::h1::gate::{Gate, Refusal};
use crate::serve::limits::{self, HeadSize};
use crate::serve::metrics::{ServeMetrics, Transport};
use crate::serve::plan::date;
use crate::serve::plan::fields::Fields;
use crate::serve::plan::respond::{self, FieldValue, Method, Payload, Plan, ServeError};
use crate::serve::Shared;

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
pub(super) struct ConnState {
    completed: AtomicU32,
    abandoned: AtomicU32,
    flood: Notify,
    pub(super) metrics: Arc<ServeMetrics>,
    /// Told of a drive's read error on a body.
    pub(super) store: Arc<crate::store::Store>,
    transport: Transport,
    /// HTTP/1.1: the head the gate refused, answered in its place.
    refusal: Arc<Refusal>,
}

impl ConnState {
    /// A response ended: counted by status and body bytes sent, and as whole
    /// or abandoned for the reset-flood rule.
    pub(super) fn finished(&self, status: u16, sent: u64, whole: bool, took: std::time::Duration) {
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
) -> Response<PayloadStream> {
    let now = shared.clock.now();
    // The request-duration histogram's start: the head is parsed.
    let started = std::time::Instant::now();
    let h2 = req.version() == Version::HTTP_2;
    // An answer that sends no object: its generated payload, or none.
    let error_response = |plan: &Plan| {
        let body = PayloadStream::new(
            plan.status,
            &plan.payload,
            None,
            tls.frame_bytes,
            state,
            started,
        )
        .unwrap_or_else(|_| PayloadStream::empty());
        response(plan, now, h2, body)
    };
    if h2 && state.is_flood(tls.http2.max_client_resets) {
        state.flood.notify_one();
    }
    if !h2 {
        if let Some(err) = state.refusal.next_request() {
            // The stand-in for a head the gate refused: the plain listener's
            // answer to it (which closes the connection).
            return error_response(&respond::error(&err));
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
    let payload = if head_only {
        &Payload::Empty
    } else {
        &plan.payload
    };
    let body = match PayloadStream::new(
        plan.status,
        payload,
        object.as_ref(),
        tls.frame_bytes,
        state,
        started,
    ) {
        Ok(b) => b,
        Err(error) => {
            tracing::error!(%error, "cannot plan the body of a TLS response");
            return error_response(&respond::error(&ServeError::Internal(error.to_string())));
        }
    };
    response(&plan, now, h2, body)
}

/// The checks hyper leaves to us, so that a request refused here gets the
/// same answer as on the plain listener: the head limits and the Host rule of
/// `serve::limits`, the head measured as it would be written in HTTP/1.1
/// (hyper's own, larger limits only guard memory).
fn check_head<'r>(
    req: &'r Request<Incoming>,
    limits: &crate::config::Limits,
) -> Result<&'r str, ServeError> {
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let headers = req.headers();
    let bytes = limits::h1_bytes(
        req.method().as_str().len(),
        target.len(),
        headers
            .iter()
            .map(|(name, value)| (name.as_str().len(), value.len())),
    );
    let size = HeadSize {
        fields: headers.len(),
        bytes,
        target: target.len(),
    };
    limits::check(size, limits)?;
    let version = match req.version() {
        Version::HTTP_10 | Version::HTTP_09 => limits::Version::Http10,
        Version::HTTP_11 => limits::Version::Http11,
        _ => limits::Version::Http2,
    };
    limits::check_hosts(version, headers.get_all(http::header::HOST).iter().count())?;
    Ok(target)
}

/// A [`Plan`] as a hyper response: the same fields as the plain path sends.
fn response(
    plan: &Plan,
    now: SystemTime,
    h2: bool,
    body: PayloadStream,
) -> Response<PayloadStream> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(plan.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    let date = date::imf_fixdate(crate::clock::unix_secs(now));
    plan.for_each_field(&date, |name, value| {
        // Static values are eddy's own literals (visible ASCII): no copy.
        let value = match value {
            FieldValue::Static(s) => Ok(HeaderValue::from_static(s)),
            other => HeaderValue::from_str(other.as_str()),
        };
        if let Ok(value) = value {
            headers.append(name, value);
        }
    });
    // Connection is an HTTP/1 field; HTTP/2 must not send it (RFC 9113 §8.2.2).
    if plan.close && !h2 {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
