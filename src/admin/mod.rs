//! The admin listener: what an operator and a Prometheus server ask of a box,
//! on an address of its own (`admin.listen`, loopback by default).
//!
//! Endpoints (HTTP/1.1 via hyper; GET and HEAD):
//! - `/metrics`: every family of the process registry ([`Registry`]) in the Prometheus text format 0.0.4,
//!   each area's own, with the store's per-disk figures read at scrape time.
//! - `/healthz`: 200 `ok` while serving; 503 `draining` once the drain has
//!   begun, so that whoever steers players stops sending them here.
//! - `/status` (and `/`): the operator's HTML status page ([`status_page`]:
//!   disks, fill progress, top objects, connections, a throughput chart from
//!   [`throughput`]); every value HTML-escaped, no JavaScript, no external
//!   assets.
//!
//! - `/livez`: 200 while the process answers; `/readyz`: 200 `ready` while it
//!   serves from at least one disk, 503 once the drain has begun.
//! - `/fill/status`: the fill's progress as JSON (`eddy_proto::report::FillStatus`).
//! - `POST /fill/now`: start a fill now, even outside the window (`eddy fill
//!   now`). The one mutating endpoint: it needs `Authorization: Bearer
//!   <admin.token>`, and is refused (403) when no token is configured.
//!
//! - `POST /drain`: begin the drain, as SIGTERM does (`eddy drain`); same token.
//!
//! Any other path is a 404; another method on one of these paths is a 405 with
//! `Allow: GET, HEAD` (or `POST` for `/fill/now`).
//!
//! Owns: binding the admin socket, its accept loop and its own small limits
//! (`config::defaults::ADMIN_*`), the drain flag behind `/healthz`
//! ([`Health`]), the throughput sampler's task (started and stopped with the
//! listener), and the answers. It must never serve store
//! content, never be reachable through a serving listener (config refuses a
//! shared port, and the serve path knows none of these routes), never change
//! the server's state without the admin token (only `POST /fill/now` does,
//! and it only asks the fill to run), and never hold up serving: it is
//! capped, times out, and reads the store's figures off the event loop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

pub mod status_page;
pub mod throughput;

use crate::config::defaults;
use crate::metrics::Registry;
use crate::serve::Shared;
use status_page::DiskRow;
use throughput::Throughput;

/// The status page loads nothing: its only style is inline.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

// hyper panics on a buffer below its 8 KiB floor; refuse to build instead.
const _: () = assert!(defaults::ADMIN_MAX_HEAD_BYTES >= 8192);

/// Whether the server has begun to drain; `/healthz` answers from it. Cheap to
/// clone; `main` begins the drain when the shutdown signal arrives.
#[derive(Debug, Clone, Default)]
pub struct Health {
    draining: Arc<AtomicBool>,
}

impl Health {
    /// From now on `/healthz` answers 503 `draining`.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// What the admin answers from.
#[derive(Debug)]
pub struct State {
    /// The serve path's shared state: the store (for per-disk figures), the
    /// clock (for uptime) and the metrics.
    pub shared: Arc<Shared>,
    pub health: Health,
    /// The serving listeners as URLs (`http://203.0.113.7:80`), for the page.
    pub serving: Vec<String>,
    /// The admin listener's own bound address.
    pub admin: SocketAddr,
    /// One scrape at a time, however many scrapers ask at once: a scrape
    /// reads every disk's file system figures.
    walk: tokio::sync::Mutex<()>,
    /// The running fill, if one is configured.
    pub fill: Option<Arc<eddy_fill::Handle>>,
    /// The bearer token of the mutating endpoints (`admin.token`).
    pub token: Option<String>,
    /// Every area's metric families, rendered by `/metrics`.
    pub registry: Option<Arc<Registry>>,
    /// Whether reports to the control plane are on (the status page says so).
    pub reports_on: bool,
    /// The background integrity check, when it is on (`POST /store/fsck`).
    pub fsck: Option<Arc<crate::store::fsck::Schedule>>,
    /// Told by `POST /drain`; `main` begins the drain when it is.
    pub drain: Arc<tokio::sync::Notify>,
    /// The last minutes of throughput, sampled while the listener runs.
    pub throughput: Arc<Throughput>,
    /// The disks as configured (those the store could not open are shown
    /// out of service).
    pub configured_disks: Vec<PathBuf>,
    /// The reload counters, for the status page.
    pub reloads: Option<Arc<crate::reload::Reloads>>,
}

impl State {
    pub fn new(
        shared: Arc<Shared>,
        health: Health,
        serving: Vec<String>,
        admin: SocketAddr,
    ) -> State {
        State {
            shared,
            health,
            serving,
            admin,
            walk: tokio::sync::Mutex::new(()),
            fill: None,
            token: None,
            registry: None,
            reports_on: false,
            fsck: None,
            drain: Arc::new(tokio::sync::Notify::new()),
            throughput: Arc::new(Throughput::new(defaults::STATUS_SAMPLES)),
            configured_disks: Vec::new(),
            reloads: None,
        }
    }

    /// With the configured disks and the reload counters (status page).
    pub fn with_status(
        mut self,
        configured_disks: Vec<PathBuf>,
        reloads: Arc<crate::reload::Reloads>,
    ) -> State {
        self.configured_disks = configured_disks;
        self.reloads = Some(reloads);
        self
    }

    /// With the notifier `POST /drain` tells.
    pub fn with_drain(mut self, drain: Arc<tokio::sync::Notify>) -> State {
        self.drain = drain;
        self
    }

    /// With the background integrity check's schedule.
    pub fn with_fsck(mut self, fsck: Option<Arc<crate::store::fsck::Schedule>>) -> State {
        self.fsck = fsck;
        self
    }

    /// Saying whether reports are on.
    pub fn with_reports_on(mut self, on: bool) -> State {
        self.reports_on = on;
        self
    }

    /// With the registry `/metrics` renders.
    pub fn with_registry(mut self, registry: Arc<Registry>) -> State {
        self.registry = Some(registry);
        self
    }

    /// With the fill's handle and the admin token.
    pub fn with_control(
        mut self,
        fill: Option<Arc<eddy_fill::Handle>>,
        token: Option<String>,
    ) -> State {
        self.fill = fill;
        self.token = token;
        self
    }
}

/// Binds the admin address (before anything is served, like the serving
/// listeners, so that a taken port fails start-up). Must run inside the runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind the admin listener {addr}: {e}"),
        )
    })?;
    socket.listen(u32::try_from(defaults::ADMIN_MAX_CONNECTIONS).unwrap_or(u32::MAX))
}

/// Answers on `listener` until `shutdown` resolves. Connections over
/// `ADMIN_MAX_CONNECTIONS` are closed at once.
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(defaults::ADMIN_MAX_CONNECTIONS));
    let sampler = tokio::spawn(throughput::run(
        state.shared.metrics.clone(),
        state.throughput.clone(),
        defaults::STATUS_SAMPLE_EVERY,
    ));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => {
                sampler.abort();
                return;
            }
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(defaults::ADMIN_ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!("admin connection cap reached; closing a new connection");
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            connection(stream, state).await;
            drop(permit);
        });
    }
}

/// One admin connection: keep-alive HTTP/1.1 under the admin limits.
async fn connection(stream: TcpStream, state: Arc<State>) {
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(answer(&state, &request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(defaults::ADMIN_HEADER_READ_TIMEOUT)
        .max_buf_size(defaults::ADMIN_MAX_HEAD_BYTES);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(defaults::ADMIN_CONNECTION_LIFETIME, served).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "admin connection ended"),
        Err(_) => tracing::debug!("admin connection reached its lifetime; closed"),
    }
}

/// The three routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
    Status,
    FillStatus,
    FillNow,
    Live,
    Ready,
    Drain,
    Disks,
    DiskDrain,
    DiskEnable,
    Fsck,
}

fn route(path: &str) -> Option<Route> {
    match path {
        "/metrics" => Some(Route::Metrics),
        "/healthz" => Some(Route::Health),
        "/" | "/status" => Some(Route::Status),
        "/fill/status" => Some(Route::FillStatus),
        "/fill/now" => Some(Route::FillNow),
        "/livez" => Some(Route::Live),
        "/readyz" => Some(Route::Ready),
        "/drain" => Some(Route::Drain),
        "/store/disks" => Some(Route::Disks),
        "/store/drain" => Some(Route::DiskDrain),
        "/store/enable" => Some(Route::DiskEnable),
        "/store/fsck" => Some(Route::Fsck),
        _ => None,
    }
}

/// Whether `request` carries the admin token (compared in constant time).
fn authorized<B>(state: &State, request: &Request<B>) -> bool {
    let Some(token) = &state.token else {
        return false;
    };
    let Some(given) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (token.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The checks every mutating endpoint makes: POST, a configured token, the
/// token sent. `None` when the request may go on.
fn refuse_mutation<B>(state: &State, request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if request.method() != Method::POST {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Some(r);
    }
    if state.token.is_none() {
        return Some(text(
            StatusCode::FORBIDDEN,
            "mutating admin endpoints are off: set admin.token (or EDDY_ADMIN_TOKEN)\n",
        ));
    }
    if !authorized(state, request) {
        let mut r = text(
            StatusCode::UNAUTHORIZED,
            "a valid admin token is required\n",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Some(r);
    }
    None
}

fn fill_now<B>(state: &State, request: &Request<B>) -> Response<Full<Bytes>> {
    if let Some(refused) = refuse_mutation(state, request) {
        return refused;
    }
    match &state.fill {
        Some(fill) => {
            fill.fill_now();
            text(StatusCode::ACCEPTED, "fill started\n")
        }
        None => text(
            StatusCode::CONFLICT,
            "no fill is configured (fill.manifest_url)\n",
        ),
    }
}

/// `POST /drain`: the same drain as SIGTERM (readiness false, in-flight
/// responses finish, exit 0).
fn drain<B>(state: &State, request: &Request<B>) -> Response<Full<Bytes>> {
    if let Some(refused) = refuse_mutation(state, request) {
        return refused;
    }
    state.drain.notify_one();
    text(StatusCode::ACCEPTED, "draining\n")
}

/// `GET /store/disks`: every drive's state, as JSON (`eddy store disks`).
fn disks(state: &State) -> Response<Full<Bytes>> {
    let store = &state.shared.store;
    let stats = store.stats();
    let rows: Vec<eddy_proto::report::DiskHealth> = store
        .disk_statuses()
        .into_iter()
        .zip(stats)
        .map(|(s, d)| eddy_proto::report::DiskHealth {
            id: s.root.display().to_string(),
            state: s.state.label().to_owned(),
            free_bytes: 0,
            objects: d.objects,
            bytes: d.bytes,
            reason: s.reason,
        })
        .collect();
    match serde_json::to_vec_pretty(&rows) {
        Ok(body) => respond(StatusCode::OK, "application/json", body),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the disks\n",
        ),
    }
}

/// `POST /store/drain?disk=ROOT` and `POST /store/enable?disk=ROOT`: take a
/// drive out of placement for maintenance (it keeps serving), or put a
/// drained or failed one back (a failed one is probed first).
fn set_disk<B>(
    state: &State,
    request: &Request<B>,
    to: crate::store::DiskState,
) -> Response<Full<Bytes>> {
    if let Some(refused) = refuse_mutation(state, request) {
        return refused;
    }
    let Some(root) = request.uri().query().and_then(|q| query_param(q, "disk")) else {
        return text(StatusCode::BAD_REQUEST, "name the drive: ?disk=ROOT\n");
    };
    let store = &state.shared.store;
    let Some(disk) = store.disk_index(std::path::Path::new(&root)) else {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            format!("no drive {root:?} in this store\n"),
        );
    };
    match store.set_disk_state(disk, to) {
        Ok(changed) => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!(
                "{root}: {}{}\n",
                to.label(),
                if changed { "" } else { " (already)" }
            ),
        ),
        Err(why) => respond(
            StatusCode::CONFLICT,
            "text/plain; charset=utf-8",
            format!("{why}\n"),
        ),
    }
}

/// `POST /store/fsck`: start a pass of the background integrity check now.
fn fsck_now<B>(state: &State, request: &Request<B>) -> Response<Full<Bytes>> {
    if let Some(refused) = refuse_mutation(state, request) {
        return refused;
    }
    match &state.fsck {
        Some(schedule) => {
            schedule.now();
            text(StatusCode::ACCEPTED, "fsck started\n")
        }
        None => text(
            StatusCode::CONFLICT,
            "the background check is off (store.fsck_mib_per_sec = 0)\n",
        ),
    }
}

/// The percent-decoded value of `name` in a query string; `None` when it is
/// absent or its encoding is broken.
fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn fill_status(state: &State) -> Response<Full<Bytes>> {
    let status = match &state.fill {
        Some(fill) => fill.progress.snapshot(),
        None => eddy_proto::report::FillStatus {
            version: eddy_proto::manifest::VERSION.to_owned(),
            state: "stopped".to_owned(),
            ..Default::default()
        },
    };
    match serde_json::to_vec_pretty(&status) {
        Ok(body) => respond(StatusCode::OK, "application/json", body),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the fill status\n",
        ),
    }
}

async fn answer<B>(state: &Arc<State>, request: &Request<B>) -> Response<Full<Bytes>> {
    let Some(route) = route(request.uri().path()) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if route == Route::FillNow {
        return fill_now(state, request);
    }
    if route == Route::Drain {
        return drain(state, request);
    }
    if route == Route::DiskDrain {
        return set_disk(state, request, crate::store::DiskState::Draining);
    }
    if route == Route::DiskEnable {
        return set_disk(state, request, crate::store::DiskState::Active);
    }
    if route == Route::Fsck {
        return fsck_now(state, request);
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match route {
        Route::Health if state.health.is_draining() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        }
        Route::Health => text(StatusCode::OK, "ok\n"),
        Route::FillStatus => fill_status(state),
        Route::Live => text(StatusCode::OK, "live\n"),
        // Ready: the index is loaded (it is, once this answers) and a disk is
        // in service; not ready from the moment the drain begins.
        Route::Ready if state.health.is_draining() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        }
        Route::Ready if !state.shared.store.any_disk_serves() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "no disk in service\n")
        }
        Route::Ready => text(StatusCode::OK, "ready\n"),
        Route::FillNow => fill_now(state, request),
        Route::Drain => drain(state, request),
        Route::Disks => disks(state),
        Route::DiskDrain => set_disk(state, request, crate::store::DiskState::Draining),
        Route::DiskEnable => set_disk(state, request, crate::store::DiskState::Active),
        Route::Fsck => fsck_now(state, request),
        Route::Metrics => match metrics(state).await {
            Some(body) => respond(StatusCode::OK, crate::metrics::CONTENT_TYPE, body),
            None => text(StatusCode::INTERNAL_SERVER_ERROR, "metrics failed\n"),
        },
        Route::Status => match status_figures(state).await {
            Some((disks, top)) => {
                let rates = state.throughput.rates();
                let page = status_page::render(&status_page::StatusView {
                    metrics: &state.shared.metrics,
                    draining: state.health.is_draining(),
                    now: state.shared.clock.now(),
                    serving: &state.serving,
                    admin: state.admin,
                    disks: &disks,
                    fill: state.fill.as_ref().map(|f| f.progress.snapshot()),
                    top: &top,
                    reports_on: state.reports_on,
                    rates: &rates,
                    window: defaults::STATUS_SAMPLE_EVERY
                        * u32::try_from(defaults::STATUS_SAMPLES).unwrap_or(u32::MAX),
                    reloads: state.reloads.as_ref().map(|r| r.reloads()),
                });
                let mut r = respond(StatusCode::OK, "text/html; charset=utf-8", page);
                r.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(PAGE_CSP),
                );
                r
            }
            None => text(StatusCode::INTERNAL_SERVER_ERROR, "store figures failed\n"),
        },
    }
}

/// Every family, rendered on a blocking thread (collectors read the store's
/// disks), one scrape at a time. `None` without a registry, or when that
/// thread panicked.
async fn metrics(state: &Arc<State>) -> Option<String> {
    let registry = state.registry.clone()?;
    let _one_walk = state.walk.lock().await;
    match tokio::task::spawn_blocking(move || registry.render()).await {
        Ok(text) => Some(text),
        Err(e) => {
            tracing::error!(error = %e, "rendering the metrics failed");
            None
        }
    }
}

/// The status page's store figures: every configured disk (objects, bytes,
/// free space; one not opened is out of service) and the top objects, on a
/// blocking thread (statvfs, a pass over the index), one walk at a time.
async fn status_figures(state: &Arc<State>) -> Option<(Vec<DiskRow>, Vec<(String, u64, u64)>)> {
    let _one_walk = state.walk.lock().await;
    let shared = state.shared.clone();
    let configured = state.configured_disks.clone();
    let figures = tokio::task::spawn_blocking(move || {
        let store = &shared.store;
        let states = store.disk_statuses();
        let mut rows: Vec<DiskRow> = store
            .stats()
            .into_iter()
            .zip(states)
            .enumerate()
            .map(|(i, (d, s))| DiskRow {
                root: d.root,
                state: s.state.label(),
                objects: d.objects,
                bytes: d.bytes,
                free: store.free_bytes_in_service(i),
            })
            .collect();
        for root in configured {
            if !rows.iter().any(|r| r.root == root) {
                rows.push(DiskRow {
                    root,
                    state: "out of service",
                    objects: 0,
                    bytes: 0,
                    free: None,
                });
            }
        }
        let top = store
            .top_objects(defaults::STATUS_TOP_OBJECTS)
            .into_iter()
            .map(|(k, requests, bytes)| (k.to_string(), requests, bytes))
            .collect::<Vec<_>>();
        (rows, top)
    });
    match figures.await {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(error = %e, "reading the store's figures failed");
            None
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_exact() {
        assert_eq!(route("/metrics"), Some(Route::Metrics));
        assert_eq!(route("/healthz"), Some(Route::Health));
        assert_eq!(route("/"), Some(Route::Status));
        assert_eq!(route("/status"), Some(Route::Status));
        assert_eq!(route("/livez"), Some(Route::Live));
        assert_eq!(route("/readyz"), Some(Route::Ready));
        assert_eq!(route("/fill/status"), Some(Route::FillStatus));
        assert_eq!(route("/fill/now"), Some(Route::FillNow));
        for other in [
            "/metrics/",
            "/Metrics",
            "/healthz/x",
            "//",
            "/index.html",
            "",
        ] {
            assert_eq!(route(other), None, "{other:?}");
        }
    }
}
