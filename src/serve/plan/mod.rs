//! The planner: what a request is answered with, decided as a value.
//!
//! Owns: the request fields the planner reads (`fields`), the target → key
//! rule (`route`), Range (`range`), preconditions (`conditional`), media
//! types (`media`), Cache-Control (`freshness`), CORS (`cors`), and the one
//! planning layer that turns all of that, and every error, into a
//! [`respond::Plan`] (`respond`). Everything here is pure: bytes and values in,
//! values out, the time as a value the caller read from the injected clock.
//! It must never name tokio, `std::fs`, `Instant` or `SystemTime`, touch a
//! socket or a file, or read a clock (`tests/it/tidy.rs` fails if a file here
//! names one of them).

pub mod conditional;
pub mod cors;
pub mod date;
pub mod fields;
pub mod freshness;
pub mod inline;
pub mod media;
pub mod range;
pub mod respond;
pub mod route;
