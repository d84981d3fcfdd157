//! eddy: an edge cache appliance for video.
//!
//! The map, in data-flow order (see `docs/ARCHITECTURE.md` for the whole of it):
//! - [`config`]: the TOML file and overrides, checked before anything binds.
//! - [`clock`]: the one source of wall time, injected everywhere it matters.
//! - [`store`]: content on N disks, placed by rendezvous hashing, installed atomically.
//! - [`serve`]: listener → HTTP/1.1 head → route → store → plan → sendfile.
//! - [`access_log`]: one line per request, off by default, never written from a serving thread.
//! - [`metrics`]: the Prometheus registry each area registers its own families in.
//! - [`admin`]: the admin listener: `/metrics`, `/healthz`, the status page.
//! - [`cli`]: the command-line surface of the `eddy` binary.
//! - [`demo`]: sample content for `eddy demo`.
//! - [`notify`]: systemd readiness and watchdog.
//! - [`report`]: health, popularity and inventory to the control plane.
//! - [`reload`]: SIGHUP: the config re-read, live keys applied, the rest kept for a restart.
//! - [`cmd`]: subcommand glue; [`cmd::fill`] starts the fill (`eddy-fill`) over the store.

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod config;
pub mod demo;
pub mod metrics;
pub mod notify;
pub mod reload;
pub mod report;
pub mod serve;
pub mod store;
