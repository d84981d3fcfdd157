//! The TLS transport: HTTP/2 and HTTP/1.1 over TLS, through rustls and hyper.
//!
//! Owns: certificates and their reload (`certs`, with `x509` for the notAfter),
//! one TLS connection (`conn`), and the response body stream (`read_buf` for
//! the reused read buffers). It must never decide a status or a header (the
//! planner does) nor check a token (`answer` does).

pub mod certs;
pub mod conn;
pub mod read_buf;
pub mod x509;
