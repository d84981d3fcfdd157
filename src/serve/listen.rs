//! The serving listeners: binding, the accept loops, the connection cap, the
//! drain.
//!
//! Owns: binding every serving address before anything is served, one accept
//! loop per listener, the one connection cap for plain and TLS connections
//! (over it: a plain client gets a 503, a TLS one is closed before the
//! handshake), the bound on 503 refusals in flight (over it: closed at once),
//! spawning each connection as a task of its transport's own type, the
//! periodic tasks of serving (`trim`, `drive_probe`), and the drain on
//! shutdown. It must never parse HTTP or decide an answer: the 503 is the
//! planner's (`respond::error`), written by the plain transport.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Semaphore};

use super::h1::deadline::{Deadlines, Slot};
use super::metrics::Listener;
use super::{answer, drive_probe, h1, plan, tls, trim, Shared};
use crate::config::defaults::{REFUSAL_LINGER, REFUSAL_SEND_TIMEOUT};

/// Listen backlog: room for a burst of players reconnecting at once.
const LISTEN_BACKLOG: u32 = 4096;

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

/// A bound listener and how its connections are served.
#[derive(Debug)]
pub struct Listening {
    pub listener: TcpListener,
    pub kind: Kind,
}

/// Plain HTTP/1.1 or TLS.
#[derive(Debug, Clone)]
pub enum Kind {
    Plain(answer::Policy),
    Tls(Arc<tls::conn::TlsListener>),
}

impl Kind {
    /// The metrics label of this kind of listener.
    pub fn listener(&self) -> Listener {
        match self {
            Kind::Plain(_) => Listener::Plain,
            Kind::Tls(_) => Listener::Tls,
        }
    }
}

/// Serves on `listeners` until `shutdown` resolves, then drains: stops
/// accepting, lets in-flight responses finish up to `limits.drain_timeout`.
/// Returns the number of connections that were still open at the deadline.
pub async fn run(
    listeners: Vec<Listening>,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) -> usize {
    // Polled once before anything is accepted: a future that installs signal
    // handlers when first polled (as `main`'s does) has them in place before
    // any client can be answered, so a SIGTERM that follows an answer is
    // always a drain, never the signal's default action.
    let mut shutdown = std::pin::pin!(shutdown);
    let stopped =
        std::future::poll_fn(|cx| std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_ready()))
            .await;
    // Sized once: a reload leaves these two limits for the next start.
    let limits = shared.limits();
    let max = limits.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let refusals = Arc::new(Semaphore::new(limits.max_refusals));
    // A slot for every plain connection and refusal the caps let in.
    let deadlines = Deadlines::new(max + limits.max_refusals);
    let (drain_tx, drain_rx) = watch::channel(false);
    let sweeping = tokio::spawn(deadlines.clone().run(drain_rx.clone()));
    let mut accept_loops = Vec::new();
    for listening in listeners {
        accept_loops.push(tokio::spawn(accept_loop(
            listening,
            shared.clone(),
            Caps {
                slots: slots.clone(),
                refusals: refusals.clone(),
                deadlines: deadlines.clone(),
            },
            drain_rx.clone(),
        )));
    }
    // Freed memory goes back to the kernel once a flood of connections recedes.
    let trimming = tokio::spawn(trim::run(shared.metrics.clone()));
    let probing = tokio::spawn(drive_probe::run(shared.store.clone()));
    if !stopped {
        shutdown.await;
    }
    trimming.abort();
    probing.abort();
    let drain_timeout = shared.limits().drain_timeout;
    tracing::info!(timeout = ?drain_timeout, "draining: no new connections, finishing in-flight responses");
    let _ = drain_tx.send(true);
    for handle in accept_loops {
        let _ = handle.await;
    }
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(drain_timeout, slots.acquire_many(all)).await;
    sweeping.abort();
    match drained {
        Ok(_) => 0,
        Err(_) => max - slots.available_permits(),
    }
}

/// What an accept loop takes a permit from: a connection slot, or else a
/// place among the refusals being answered.
struct Caps {
    slots: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    /// Where every plain connection and refusal keeps its deadline.
    deadlines: Arc<Deadlines>,
}

async fn accept_loop(
    Listening { listener, kind }: Listening,
    shared: Arc<Shared>,
    Caps {
        slots,
        refusals,
        deadlines,
    }: Caps,
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
                let open = shared.metrics.track_connection(kind.listener());
                let shared = shared.clone();
                let drain = drain.clone();
                // One task type per transport: a task's size is its future's,
                // and the TLS future (hyper, rustls) is five times the plain
                // one, which every idle plain connection would otherwise pay.
                match &kind {
                    Kind::Plain(policy) => {
                        let policy = *policy;
                        let Some(slot) = deadlines.enter(stream) else {
                            // Sized for the caps: cannot happen.
                            tracing::error!("no deadline slot for a plain connection; closed");
                            continue;
                        };
                        tokio::spawn(async move {
                            h1::conn::serve(slot, peer.ip(), shared, policy, drain).await;
                            drop((open, permit));
                        });
                    }
                    Kind::Tls(tls) => {
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            tls::conn::serve(stream, peer.ip(), shared, tls, drain).await;
                            drop((open, permit));
                        });
                    }
                }
            }
            // Over the cap a plain client gets a 503, as long as fewer than
            // `max_refusals` are being answered; otherwise (and always for a
            // TLS client, before the handshake) it is closed at once, the
            // cheapest refusal there is: a flood of connects that never read
            // must not spend the descriptors the next accept needs.
            Err(_) => {
                shared.metrics.connection_rejected(kind.listener());
                let refusal = match kind {
                    Kind::Plain(_) => refusals.clone().try_acquire_owned().ok(),
                    Kind::Tls(_) => None,
                };
                // Without a permit the stream is closed here, with the closure.
                if let Some((permit, slot)) =
                    refusal.and_then(|permit| Some((permit, deadlines.enter(stream)?)))
                {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        reject(slot, shared).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// Over the connection cap: a short 503 so the player moves on at once, then a
/// brief lingering close so that it reads the answer rather than a reset.
async fn reject(slot: Slot, shared: Arc<Shared>) {
    let started = tokio::time::Instant::now();
    let plan = plan::respond::error(&plan::respond::ServeError::Overloaded);
    let head = h1::response::HeadBuf::of(
        &plan,
        crate::clock::unix_secs(shared.clock.now()),
        false,
        false,
    );
    let written = h1::conn::write_response(
        &slot,
        head,
        &plan.payload,
        None,
        REFUSAL_SEND_TIMEOUT,
        &shared.metrics,
    )
    .await
    .is_ok();
    h1::conn::count(&shared, &plan, &plan.payload, written, started);
    if written {
        h1::conn::linger(&slot, &[], 0, REFUSAL_LINGER).await;
    }
}
