//! The TLS transport: HTTP/2 and HTTP/1.1 over TLS, through rustls and hyper.
//!
//! Owns: certificates and their reload (`certs`, with `x509` for the notAfter),
//! one TLS connection (`conn`: handshake, hyper, h2 limits, rapid-reset rule,
//! idle and send deadlines), the bytes moving on its socket that those
//! deadlines are measured from (`watch`, with `frame_clock` for HTTP/2 heads),
//! and the response body stream (`stream`, reading through the reused buffers
//! of `read_buf`). It must never decide a status or a header (the planner
//! does) nor check a token (`answer` does).

pub mod certs;
pub mod conn;
mod frame_clock;
pub mod read_buf;
pub mod stream;
mod watch;
pub mod x509;
