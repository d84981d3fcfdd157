//! Subcommands whose work is more than a call into one module: one file per
//! subcommand (the rest still live in `main.rs` until they move here).
//!
//! Owns: the glue between the checked config and the crates that do the
//! work. It must never decide an exit code (that is `main`).

pub mod fill;
pub mod token;
