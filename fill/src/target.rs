//! The store as the fill sees it: the one trait the appliance's store
//! implements, so that this crate never depends on the serving crate.
//!
//! Owns: the contract. Every method is blocking (the fill calls them from its
//! own thread, never from a serving one) and must be crash-safe on the
//! store's side: a part is never visible, an install is one rename after the
//! digest is recorded and the bytes are durable, an eviction is one unlink.

use std::fs::File;
use std::io;
use std::time::SystemTime;

use eddy_proto::{Digest, ObjectKey};

use crate::plan::{Disk, Held, Staged};

/// What the fill needs from a store.
pub trait Target: Send + Sync + 'static {
    /// The disks, in the store's order, with their free bytes now.
    fn disks(&self) -> Vec<Disk>;
    /// Every object held with a verified digest record.
    fn inventory(&self) -> Vec<Held>;
    /// Every staged part (`staging/<digest>.part`) on every disk.
    fn staged(&self) -> Vec<Staged>;
    /// The staged part for `digest` on `disk`, opened for reading and
    /// writing and created empty if absent. Never visible to serving.
    fn open_part(&self, disk: usize, digest: &Digest) -> io::Result<File>;
    /// Removes a staged part (absent is fine).
    fn remove_part(&self, disk: usize, digest: &Digest) -> io::Result<()>;
    /// The validator (ETag or Last-Modified) of the source a part was
    /// downloaded from, for `If-Range` when it is resumed.
    fn part_validator(&self, disk: usize, digest: &Digest) -> Option<String>;
    /// Records the source's validator on a part.
    fn set_part_validator(&self, disk: usize, digest: &Digest, validator: &str) -> io::Result<()>;
    /// Publishes a complete, verified part as `key`: records the digest on
    /// the inode, sets `modified`, makes the bytes durable, renames it into
    /// place, makes the rename durable, and serves it from that instant.
    fn install(
        &self,
        disk: usize,
        key: &ObjectKey,
        digest: &Digest,
        modified: Option<SystemTime>,
    ) -> io::Result<()>;
    /// Stops serving `key` and removes it. A reader that has it open keeps
    /// reading the same bytes to the end.
    fn evict(&self, key: &ObjectKey) -> io::Result<()>;
    /// Every saved copy of the fill's state file `name` (one per disk that
    /// holds one; the fill picks among them).
    fn load_state(&self, name: &str) -> Vec<Vec<u8>>;
    /// Saves the fill's state file `name` durably (write, fsync, rename).
    fn save_state(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
}
