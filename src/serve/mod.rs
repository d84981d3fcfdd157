//! The request path: listener → HTTP/1.1 head → route → store → plan → body.
//!
//! Owns: binding the serving listeners, the accept loops, the connection cap,
//! and the drain on shutdown. The sub-modules split the path: `http1` parses,
//! `route` names the object, `range` and `conditional` decide what part of it,
//! `respond` turns all of that (and every error) into one [`respond::Plan`],
//! `conn` and `body` carry the plan out with sendfile. Serving never writes to a
//! disk and never contacts an origin: a miss is a 404.

pub mod body;
pub mod conditional;
pub mod conn;
pub mod http1;
pub mod range;
pub mod respond;
pub mod route;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::clock::Clock;
use crate::config::Limits;
use crate::metrics::Listener;
use crate::store::Store;

/// Listen backlog: room for a burst of players reconnecting at once.
const LISTEN_BACKLOG: u32 = 4096;

/// What every connection reads: the store, the limits, the clock.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    pub limits: Limits,
    pub tokens: crate::config::Tokens,
    pub clock: Box<dyn Clock>,
    /// Mixed into multipart boundaries so that they differ between processes.
    pub boundary_salt: u64,
    /// Counters and gauges, rendered by the admin listener.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Binds every address (before anything is served, so that a bad address fails
/// start-up as a whole). Must run inside the tokio runtime.
pub fn bind(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    addrs
        .iter()
        .map(|addr| {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket
                .bind(*addr)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
            socket.listen(LISTEN_BACKLOG)
        })
        .collect()
}

/// Serves on `listeners` until `shutdown` resolves, then drains: stops
/// accepting, lets in-flight responses finish up to `limits.drain_timeout`.
/// Returns the number of connections that were still open at the deadline.
pub async fn run(
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> usize {
    let max = shared.limits.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut accept_loops = Vec::new();
    for listener in listeners {
        accept_loops.push(tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            slots.clone(),
            drain_rx.clone(),
        )));
    }
    shutdown.await;
    tracing::info!(timeout = ?shared.limits.drain_timeout, "draining: no new connections, finishing in-flight responses");
    let _ = drain_tx.send(true);
    for handle in accept_loops {
        let _ = handle.await;
    }
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(shared.limits.drain_timeout, slots.acquire_many(all)).await;
    match drained {
        Ok(_) => 0,
        Err(_) => max - slots.available_permits(),
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    mut drain: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = drain.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => (stream, peer),
            Err(e) => {
                // EMFILE/ENFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let open = shared.metrics.track_connection(Listener::Plain);
                let shared = shared.clone();
                let drain = drain.clone();
                tokio::spawn(async move {
                    conn::serve(stream, peer.ip(), shared, drain).await;
                    drop(open);
                    drop(permit);
                });
            }
            Err(_) => {
                shared.metrics.connection_rejected(Listener::Plain);
                tokio::spawn(reject(stream, shared.clone()));
            }
        }
    }
}

/// Over the connection cap: a short 503 so the player moves on at once, then a
/// brief lingering close so that it reads the answer rather than a reset.
async fn reject(stream: TcpStream, shared: Arc<Shared>) {
    let plan = respond::error(&respond::ServeError::Overloaded);
    let head = plan.head(shared.clock.now(), false, false);
    if conn::write_response(&stream, head, &plan.body, None, Duration::from_secs(1))
        .await
        .is_ok()
    {
        conn::linger(&stream, &[], 0, Duration::from_secs(1)).await;
    }
}
