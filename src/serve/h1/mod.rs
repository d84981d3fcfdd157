//! The plain transport: HTTP/1.1 over TCP.
//!
//! Owns: reading request heads (`head`, with `httparse`), one connection's
//! loop (`conn`: read buffer, keep-alive, pipelining, lingering close), the
//! connections' deadlines, one word each, kept by one sweeper (`deadline`), the response head written into a reused buffer with a Date
//! rendered once a second (`response`), and the sendfile writer (`sendfile`: heads with `MSG_MORE`, file
//! ranges with `sendfile(2)`). `gate` puts the heads of HTTP/1.1 over TLS
//! through the same `head::parse` before hyper sees them: it is the one copy
//! of the HTTP/1.1 head rules lent to the TLS transport, so it lives with
//! them. It must never decide a status or a header (the planner does) nor
//! check a token (`answer` does).

pub mod conn;
pub mod deadline;
pub mod gate;
pub mod head;
pub mod response;
pub mod sendfile;
