//! eddy-proto: the vocabulary that the appliance (`eddy`), its fill pipeline
//! (`eddy-fill`) and the control plane (`eddy-origin`) share.
//!
//! Owns: object keys ([`key`]), byte range-specs and their resolution against
//! a length ([`range`]), signed-URL tokens ([`token`]: the control plane
//! signs, the appliance verifies), rendezvous hashing ([`rendezvous`]), content
//! digests and the ETag-from-digest rule ([`digest`]), and the versioned wire
//! messages of protocol v1 with their signature checks ([`manifest`],
//! [`wire`]). It is pure: no async runtime, no filesystem, no clock (times come
//! in as values), and it depends on no other eddy crate. `docs/protocol.md`
//! is its specification.

pub mod digest;
pub mod key;
pub mod manifest;
pub mod range;
pub mod rendezvous;
pub mod report;
pub mod token;
pub mod wire;

pub use digest::Digest;
pub use key::{KeyError, ObjectKey};
