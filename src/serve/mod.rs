//! The request path: listener → request head → route → token → store → plan →
//! the bytes out.
//!
//! Owns: [`Shared`], what every connection reads (the store, the live limits
//! and keys, the clock, metrics, the access log, the CORS and Cache-Control
//! rules), and the layout of the path, each layer a module that must not reach
//! past its neighbours:
//! - `listen` binds the serving listeners, runs the accept loops, the one
//!   connection cap for both transports, the bound on refusals, the drain.
//! - `plan/` is the pure planner: request fields, route, Range,
//!   preconditions, media types, Cache-Control, CORS, and `respond`, which
//!   turns all of that (and every error) into one [`plan::respond::Plan`]. It
//!   names no runtime, file system or clock.
//! - `answer` runs the planner's steps in order for every transport, with the
//!   token check and the store lookup between them: the only caller of the
//!   store on the serving path.
//! - `limits` holds the request-head limits and the Host rule, one copy for
//!   both transports.
//! - `h1/` is the plain transport (HTTP/1.1: heads, the connection loop, the
//!   sendfile writer, and the head gate it lends to TLS).
//! - `tls/` is the TLS transport (certificates, the connection over hyper,
//!   HTTP/2 and HTTP/1.1, the body stream).
//! - `prefetch` keeps disk reads off the event loop for both transports;
//!   `metrics`, `fds`, `trim` and `drive_probe` serve the whole path.
//!
//! Serving never writes to a disk and never contacts an origin: a miss is a
//! 404.

pub mod answer;
pub mod drive_probe;
pub mod fds;
pub mod h1;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod plan;
pub mod prefetch;
pub mod tls;
pub mod trim;

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Limits;
use crate::store::Store;

/// What every connection reads: the store, the limits, the clock.
#[derive(Debug)]
pub struct Shared {
    pub store: Arc<Store>,
    /// The limits, signing keys and parameter names, swapped by a reload
    /// (whether a listener requires tokens is its [`answer::Policy`]).
    pub live: crate::reload::Live,
    pub clock: Box<dyn Clock>,
    /// Mixed into multipart boundaries so that they differ between processes.
    pub boundary_salt: u64,
    /// Counters and gauges, rendered by the admin listener.
    pub metrics: Arc<metrics::ServeMetrics>,
    /// The access log, when `log.access` is on.
    pub access_log: Option<crate::access_log::AccessLog>,
    /// The CORS rules (`[cors]`), `None` when no origin is allowed; each
    /// listener's [`answer::Policy`] says whether it applies them.
    pub cors: Option<plan::cors::Cors>,
    /// The Cache-Control rules (`[cache_control]`).
    pub cache_control: plan::freshness::CacheControl,
    /// Where requests for objects on a failed drive are sent (302), from
    /// `store.failed_redirect`; `None`: they are 404s.
    pub failed_redirect: Option<String>,
}

impl Shared {
    /// The limits now (a reload may change them between two requests).
    pub fn limits(&self) -> Limits {
        self.live.limits()
    }
}
