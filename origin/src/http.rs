//! The server: bind, accept, HTTP/1.1 connections (hyper, keep-alive),
//! routing, error bodies, signals.
//!
//! Owns: the order of start-up (key, content directory, catalogue and
//! database checked before the bind, then the ready callback with the bound
//! address), the routes (`GET /v1/manifest/{appliance}`, `GET /v1/stats`,
//! `GET`/`HEAD /content/{key}`, `POST /v1/report/{appliance}`, `GET
//! /v1/appliances[/{id}/health|inventory|popularity]`), the one shape of every
//! error answer (a JSON [`ErrorBody`] with a fixed code), the clock read for
//! manifest and report times, and stopping on SIGTERM or SIGINT. It must never
//! build a manifest, a content answer or a report's verdict itself (that is
//! `issue`, `object` and `report`), and never answer an error without a JSON
//! body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eddy_proto::wire::ErrorBody;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::catalogue;
use crate::content::{Content, ContentError};
use crate::fault::Faults;
use crate::issue::{self, IssueError, Issuer};
use crate::keyfile::{self, KeyFileError};
use crate::object;
use crate::options::ServeOptions;
use crate::report::{self, Refusal, Sink, Tokens, ViewError};
use crate::sqlite::{OpenError, SqliteStore};
use crate::stats::Stats;
use crate::store::{self, LatestKind, Shared, StoreError};
use crate::Class;

/// The body of every answer.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// The media type of a signed manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.eddy.manifest+json";

/// Why `serve` could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error("--content {source}")]
    Content { source: ContentError },
    #[error("--catalogue {source}")]
    Catalogue { source: IssueError },
    #[error(transparent)]
    Db(#[from] OpenError),
    #[error("--db: {0}")]
    Store(#[from] StoreError),
    #[error("--listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

impl ServeError {
    pub fn class(&self) -> Class {
        match self {
            ServeError::Key(e) => e.class(),
            ServeError::Content { .. } => Class::Usage,
            ServeError::Catalogue {
                source: IssueError::CatalogueIo { .. },
            } => Class::Io,
            ServeError::Catalogue { .. } => Class::Usage,
            ServeError::Db(e) => e.class(),
            ServeError::Store(_) => Class::Io,
            ServeError::Bind { .. } | ServeError::Io { .. } => Class::Io,
        }
    }
}

/// Everything a request may need.
#[derive(Debug)]
struct App {
    issuer: Issuer,
    content: Arc<Content>,
    faults: Faults,
    stats: Arc<Stats>,
    store: Shared,
    tokens: Tokens,
}

/// Builds a runtime and serves until a signal.
pub fn run(
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServeError::Io {
            what: "starting the runtime",
            source,
        })?;
    let result = runtime.block_on(serve(options, ready));
    // Stalled answers and hashing in progress are not waited for.
    runtime.shutdown_background();
    result
}

async fn serve(
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr) + Send + 'static,
) -> Result<(), ServeError> {
    let key = keyfile::load(&options.key)?;
    let content =
        Arc::new(Content::open(&options.content).map_err(|source| ServeError::Content { source })?);
    if let Some(path) = &options.catalogue {
        issue::read_catalogue(path).map_err(|source| ServeError::Catalogue { source })?;
    }
    let store = open_store(options.db.clone()).await?;
    let last = store::blocking(&store, |s| s.last_generation()).await?;
    if let (Some(given), Some(last)) = (options.generation_start, last) {
        if given < last.generation {
            tracing::warn!(
                given,
                kept = last.generation,
                "--generation-start is below the generation the database holds: it goes on from there"
            );
        }
    }
    let mut term = signal(SignalKind::terminate()).map_err(|source| ServeError::Io {
        what: "installing the SIGTERM handler",
        source,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|source| ServeError::Io {
        what: "installing the SIGINT handler",
        source,
    })?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: options.listen,
        source,
    })?;
    let sources = if options.sources.is_empty() {
        let public = options
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        vec![format!("{public}/content/")]
    } else {
        options.sources.clone()
    };
    let issuer = Issuer::new(
        content.clone(),
        store.clone(),
        last,
        key,
        issue::Config {
            catalogue: options.catalogue.clone(),
            sources,
            ttl: options.manifest_ttl,
            fill_start: options.fill_start.clone(),
            generation_start: match options.generation_start {
                Some(n) => issue::Start::Given(n),
                None => issue::Start::Clock(unix_now()),
            },
        },
    )
    .map_err(|source| ServeError::Catalogue { source })?;
    let app = Arc::new(App {
        issuer,
        content,
        faults: Faults::new(options.faults.clone()),
        stats: Arc::new(Stats::default()),
        store,
        tokens: Tokens::new(&options.report_tokens),
    });
    tracing::info!(
        %addr,
        faults = options.faults.len(),
        report_tokens = options.report_tokens.len(),
        "serving"
    );
    ready(addr);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(app.clone(), stream, peer));
                }
                // A full descriptor table or a reset before accept: keep going.
                Err(e) => tracing::warn!("accept: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping on a signal");
    Ok(())
}

/// The database file, or memory (with a warning) without one; opened on the
/// blocking pool.
async fn open_store(path: Option<std::path::PathBuf>) -> Result<Shared, ServeError> {
    if path.is_none() {
        tracing::warn!(
            "no --db: reports, manifests issued and the generation are kept in memory \
             and lost on restart"
        );
    }
    let opened = tokio::task::spawn_blocking(move || match path {
        Some(p) => SqliteStore::open(&p),
        None => SqliteStore::in_memory(),
    })
    .await
    .map_err(|e| ServeError::Store(StoreError::Join(e.to_string())))??;
    Ok(Arc::new(opened))
}

async fn connection(app: Arc<App>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let service = hyper::service::service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(route(&app, req).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

async fn route(app: &App, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if let Some(raw_key) = path.strip_prefix("/content/") {
        if method != Method::GET && method != Method::HEAD {
            return not_allowed("GET, HEAD");
        }
        let env = object::Env {
            content: &app.content,
            faults: &app.faults,
            stats: &app.stats,
        };
        return object::answer(env, &method, raw_key, req.headers()).await;
    }
    if let Some(appliance) = path.strip_prefix("/v1/manifest/") {
        if method != Method::GET {
            return not_allowed("GET");
        }
        return manifest(app, appliance).await;
    }
    if let Some(appliance) = path.strip_prefix(report::PATH_PREFIX) {
        if method != Method::POST {
            return not_allowed("POST");
        }
        let appliance = appliance.to_owned();
        let (parts, body) = req.into_parts();
        let sink = Sink {
            tokens: &app.tokens,
            store: &app.store,
        };
        return match report::accept(sink, &appliance, &parts.headers, body, unix_now()).await {
            Ok(kind) => {
                app.stats.report_received(kind);
                tracing::debug!(appliance, kind, "report kept");
                Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(empty())
                    .unwrap_or_else(|_| internal())
            }
            Err(refusal) => {
                app.stats.report_refused(refusal.code());
                tracing::info!(
                    appliance,
                    code = refusal.code(),
                    "report refused: {refusal}"
                );
                refused(&refusal)
            }
        };
    }
    if path == "/v1/appliances" {
        if method != Method::GET {
            return not_allowed("GET");
        }
        return view(report::appliances(&app.store).await);
    }
    if let Some(rest) = path.strip_prefix("/v1/appliances/") {
        if method != Method::GET {
            return not_allowed("GET");
        }
        let Some((appliance, what)) = rest.split_once('/') else {
            return not_found(&path);
        };
        if let Err(reason) = catalogue::check_appliance_id(appliance) {
            return error(StatusCode::BAD_REQUEST, "bad_appliance", &reason);
        }
        return match what {
            "health" => view(report::latest(&app.store, appliance, LatestKind::Health).await),
            "inventory" => view(report::latest(&app.store, appliance, LatestKind::Inventory).await),
            "popularity" => view(report::popularity(&app.store, appliance).await),
            _ => not_found(&path),
        };
    }
    if path == "/v1/stats" {
        if method != Method::GET {
            return not_allowed("GET");
        }
        let snapshot = app.stats.snapshot(app.faults.applied());
        return json(StatusCode::OK, &snapshot);
    }
    not_found(&path)
}

fn not_found(path: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no route for {path}"),
    )
}

fn refused(refusal: &Refusal) -> Response<Body> {
    let mut r = error(refusal.status(), refusal.code(), &refusal.to_string());
    if *refusal == Refusal::BadToken {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// A read-side answer: the value as JSON, or its error.
fn view<T: serde::Serialize>(result: Result<T, ViewError>) -> Response<Body> {
    match result {
        Ok(value) => json(StatusCode::OK, &value),
        Err(e @ ViewError::UnknownAppliance(_)) => {
            error(StatusCode::NOT_FOUND, "unknown_appliance", &e.to_string())
        }
        Err(e @ ViewError::NoReport { .. }) => {
            error(StatusCode::NOT_FOUND, "no_report", &e.to_string())
        }
        Err(e) => {
            tracing::error!("reading the store: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_error",
                "the store could not be read",
            )
        }
    }
}

async fn manifest(app: &App, appliance: &str) -> Response<Body> {
    if let Err(reason) = catalogue::check_appliance_id(appliance) {
        return error(StatusCode::BAD_REQUEST, "bad_appliance", &reason);
    }
    match app.issuer.issue(appliance, unix_now(), &app.faults).await {
        Ok(issued) => {
            app.stats.manifest(appliance, issued.generation);
            tracing::info!(
                appliance,
                generation = issued.generation,
                objects = issued.objects,
                "manifest issued"
            );
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, MANIFEST_MEDIA_TYPE)
                .header(header::CACHE_CONTROL, "no-store")
                .body(full(issued.body))
                .unwrap_or_else(|_| internal())
        }
        Err(IssueError::UnknownAppliance(id)) => error(
            StatusCode::NOT_FOUND,
            "unknown_appliance",
            &format!("appliance {id:?} is not in the catalogue"),
        ),
        Err(e) => {
            tracing::error!(appliance, "manifest: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "manifest_unavailable",
                "the manifest could not be built",
            )
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(full(body))
            .unwrap_or_else(|_| internal()),
        Err(_) => internal(),
    }
}

/// An error answer: `status` with a JSON [`ErrorBody`] of fixed `code`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            error: code.to_owned(),
            message: message.to_owned(),
        },
    )
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this path answers {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

/// The answer when an answer could not be built: still a JSON error body.
fn internal() -> Response<Body> {
    let mut r = Response::new(full(
        &br#"{"error":"internal","message":"the answer could not be built"}"#[..],
    ));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
