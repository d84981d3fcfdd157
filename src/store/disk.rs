//! One drive of the store: its root, the file system it was found on, and
//! its state.
//!
//! Owns: [`Disk`] (the root, its `objects/` directory handle, the device id
//! seen at start-up, the counts the index keeps for it) and its [`DiskState`]
//! with the reason and the time it changed: active (serving, in placement),
//! draining (serving, out of placement, for maintenance) or failed (out of
//! service: an I/O error on one of its objects, a root that vanished or now
//! lies on another file system). It also decides which I/O errors are a
//! drive's fault ([`is_drive_fault`]) rather than a client's. It must never
//! do I/O on the serving path beyond what it is asked to probe, and never
//! bring back by itself a drive that failed by I/O errors: an operator
//! (`eddy store enable`) or a restart does. One that vanished comes back
//! once its root is back (`Store::probe_disks`, after re-verifying it).

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// What a drive is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskState {
    /// Serving its objects and receiving new ones.
    Active,
    /// Serving its objects, receiving none (maintenance).
    Draining,
    /// Out of service: its objects are answered as misses.
    Failed,
}

impl DiskState {
    /// Every state, in label order.
    pub const ALL: [DiskState; 3] = [DiskState::Active, DiskState::Draining, DiskState::Failed];

    /// The fixed label (`eddy_disk_state`, the admin API, the health report).
    pub fn label(self) -> &'static str {
        match self {
            DiskState::Active => "active",
            DiskState::Draining => "draining",
            DiskState::Failed => "failed",
        }
    }

    fn from_u8(v: u8) -> DiskState {
        match v {
            0 => DiskState::Active,
            1 => DiskState::Draining,
            _ => DiskState::Failed,
        }
    }
}

/// A drive's state as the admin API and reports show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStatus {
    pub root: PathBuf,
    pub state: DiskState,
    /// Why it is in that state (`None` for a drive active since start-up).
    pub reason: Option<String>,
    /// When it entered that state, in Unix seconds (0: since start-up).
    pub since_unix: u64,
    /// Drive faults counted on it since start-up.
    pub errors: u64,
}

/// One drive: a root directory holding `objects/` and `staging/`.
#[derive(Debug)]
pub struct Disk {
    /// The root as configured; also the disk's identity for placement.
    pub root: PathBuf,
    /// The `objects/` directory every open is made beneath; opened again
    /// when a failed drive comes back (a remount is a new directory).
    objects: std::sync::RwLock<std::sync::Arc<File>>,
    /// The device id of the root's file system when the store opened (or
    /// when an operator enabled the drive again).
    dev: AtomicU64,
    /// Failed by the probe (its root vanished or moved), not by an I/O
    /// error: it comes back by itself once its root is back.
    recoverable: std::sync::atomic::AtomicBool,
    /// What the index holds on this disk, kept with every index change so
    /// that reading it is O(1), not a walk of the index.
    pub(super) held: Held,
    state: AtomicU8,
    since_unix: AtomicU64,
    errors: AtomicU64,
    reason: Mutex<Option<String>>,
}

/// Objects and bytes the index holds on one disk.
#[derive(Debug, Default)]
pub(super) struct Held {
    pub(super) objects: AtomicU64,
    pub(super) bytes: AtomicU64,
}

impl Held {
    pub(super) fn add(&self, len: u64) {
        self.objects.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len, Relaxed);
    }

    pub(super) fn sub(&self, len: u64) {
        self.objects.fetch_sub(1, Relaxed);
        self.bytes.fetch_sub(len, Relaxed);
    }

    pub(super) fn clear(&self) {
        self.objects.store(0, Relaxed);
        self.bytes.store(0, Relaxed);
    }
}

impl Disk {
    pub(super) fn open(root: &Path) -> Result<Disk, super::StoreError> {
        let objects_path = root.join(super::OBJECTS_DIR);
        let objects =
            File::open(&objects_path).map_err(|e| super::StoreError::io(&objects_path, e))?;
        let dev = std::fs::metadata(root)
            .map_err(|e| super::StoreError::io(root, e))?
            .dev();
        Ok(Disk {
            root: root.to_owned(),
            objects: std::sync::RwLock::new(std::sync::Arc::new(objects)),
            dev: AtomicU64::new(dev),
            recoverable: std::sync::atomic::AtomicBool::new(false),
            held: Held::default(),
            state: AtomicU8::new(0),
            since_unix: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            reason: Mutex::new(None),
        })
    }

    /// Its state now: one relaxed load.
    pub fn state(&self) -> DiskState {
        DiskState::from_u8(self.state.load(Relaxed))
    }

    /// Whether its objects are served (active or draining).
    pub fn serves(&self) -> bool {
        self.state() != DiskState::Failed
    }

    /// Moves it to `to` for `reason` at `now_unix`; false if it already was
    /// in that state (the first reason is kept).
    pub(super) fn set(&self, to: DiskState, reason: &str, now_unix: u64) -> bool {
        let mut held = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if self.state() == to {
            return false;
        }
        self.state.store(to as u8, Relaxed);
        self.since_unix.store(now_unix, Relaxed);
        *held = Some(reason.to_owned());
        true
    }

    /// The `objects/` directory handle opens are made beneath.
    pub(super) fn objects_dir(&self) -> std::sync::Arc<File> {
        self.objects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Opens `objects/` again and, with `accept_new_device` (an operator
    /// vouches for a replaced drive), takes the root's device id as it is now.
    pub(super) fn reopen(&self, accept_new_device: bool) -> std::io::Result<()> {
        let dir = File::open(self.root.join(super::OBJECTS_DIR))?;
        if accept_new_device {
            self.dev
                .store(std::fs::metadata(&self.root)?.dev(), Relaxed);
        }
        *self.objects.write().unwrap_or_else(PoisonError::into_inner) = std::sync::Arc::new(dir);
        Ok(())
    }

    /// Marks whether a failure may heal by itself (see `recoverable`).
    pub(super) fn set_recoverable(&self, yes: bool) {
        self.recoverable.store(yes, Relaxed);
    }

    /// Whether it failed by the probe and may come back by itself.
    pub fn recoverable(&self) -> bool {
        self.state() == DiskState::Failed && self.recoverable.load(Relaxed)
    }

    /// Counts one drive fault.
    pub(super) fn count_error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// Its state with the reason and time.
    pub fn status(&self) -> DiskStatus {
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        DiskStatus {
            root: self.root.clone(),
            state: self.state(),
            reason,
            since_unix: self.since_unix.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    /// Looks at the root: `Some(reason)` when it vanished, cannot be read, or
    /// now lies on another file system than at start-up (a drive unmounted
    /// under eddy leaves the mount point on the root file system). Blocks on
    /// a slow drive: call it off the event loop.
    pub fn probe(&self) -> Option<String> {
        match std::fs::metadata(&self.root) {
            Err(e) => Some(format!("the root cannot be read: {e}")),
            Ok(m) if m.dev() != self.dev.load(Relaxed) => Some(format!(
                "the root is on another file system now (device {:#x}, was {:#x})",
                m.dev(),
                self.dev.load(Relaxed)
            )),
            Ok(_) => match std::fs::read_dir(self.root.join(super::OBJECTS_DIR)) {
                Err(e) => Some(format!("objects/ cannot be listed: {e}")),
                Ok(mut entries) => match entries.next() {
                    Some(Err(e)) => Some(format!("objects/ cannot be listed: {e}")),
                    _ => None,
                },
            },
        }
    }
}

/// Whether `error`, met reading or opening an object, is the drive's fault
/// (the drive or its file system failing) rather than the client's or the
/// network's: EIO and its kin, and FUSE's "transport endpoint not connected".
/// A socket error from sendfile (EPIPE, ECONNRESET) is not.
pub fn is_drive_fault(error: &std::io::Error) -> bool {
    use nix::errno::Errno;
    let Some(code) = error.raw_os_error() else {
        // A file shorter than its recorded length (the drive lost bytes), or
        // a read past the serving path's deadline (the drive hangs). A
        // socket's ETIMEDOUT has an errno, and is not this.
        return matches!(
            error.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::TimedOut
        );
    };
    matches!(
        Errno::from_raw(code),
        Errno::EIO
            | Errno::ENXIO
            | Errno::ENODEV
            | Errno::ENOTCONN
            | Errno::ESTALE
            | Errno::EUCLEAN
            | Errno::EBADMSG
            | Errno::ENOMEDIUM
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_faults_are_told_from_client_errors() {
        use nix::errno::Errno;
        for e in [Errno::EIO, Errno::ENXIO, Errno::ENOTCONN, Errno::EUCLEAN] {
            assert!(is_drive_fault(&std::io::Error::from(e)), "{e}");
        }
        for e in [
            Errno::EPIPE,
            Errno::ECONNRESET,
            Errno::EAGAIN,
            Errno::ENOENT,
        ] {
            assert!(!is_drive_fault(&std::io::Error::from(e)), "{e}");
        }
        assert!(is_drive_fault(&std::io::ErrorKind::UnexpectedEof.into()));
        assert!(
            is_drive_fault(&std::io::ErrorKind::TimedOut.into()),
            "our read deadline"
        );
        assert!(
            !is_drive_fault(&std::io::Error::from(Errno::ETIMEDOUT)),
            "a socket's"
        );
        assert!(!is_drive_fault(&std::io::Error::other("x")));
    }

    #[test]
    fn a_state_change_keeps_its_first_reason_and_time() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join(super::super::OBJECTS_DIR))?;
        let d = Disk::open(dir.path())?;
        assert_eq!(d.state(), DiskState::Active);
        assert!(d.probe().is_none());
        assert!(d.set(DiskState::Failed, "read error", 100));
        assert!(!d.set(DiskState::Failed, "another", 200));
        let s = d.status();
        assert_eq!(
            (s.state, s.reason.as_deref(), s.since_unix),
            (DiskState::Failed, Some("read error"), 100)
        );
        assert!(!d.serves());
        assert!(d.set(DiskState::Active, "enabled", 300));
        assert!(d.serves());
        std::fs::remove_dir_all(dir.path().join(super::super::OBJECTS_DIR))?;
        assert!(
            d.probe().is_some_and(|r| r.contains("objects/")),
            "{:?}",
            d.probe()
        );
        Ok(())
    }
}
