//! eddy-fill: how an appliance fills itself from its control plane.
//!
//! Owns: the fill window ([`window`]), the plan ([`plan`]: pure), the rate
//! cap ([`rate`]: pure, on an injected clock), the HTTP(S) client
//! ([`client`]), resumable verified downloads ([`download`]), the progress
//! counters ([`progress`]) and their metric families ([`metrics`]), the
//! driver that ties them together on a thread of its own ([`run`]), and the
//! trait the store implements ([`target`]).
//! It depends on `eddy-proto` and on no other eddy crate: it never imports
//! anything from the serving crate, and serving never waits on it.

pub mod client;
pub mod download;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod rate;
pub mod run;
pub mod target;
pub mod window;

pub use run::{start, Clocks, Handle, Settings};
pub use target::Target;
