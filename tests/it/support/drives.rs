//! Real drives for the drive-fault tests: ext4 images on loop devices, read
//! with direct I/O so that the loop device answers EIO for blocks past the
//! end of a truncated image (a failing drive), and mounted as the store's
//! disk roots. Needs root, `losetup`, `mkfs.ext4` and `mount`; where any is
//! missing, [`LoopDisk::make`] says "skipped" with the reason.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One mounted ext4 image on a loop device.
pub struct LoopDisk {
    pub image: PathBuf,
    pub device: String,
    pub mount: PathBuf,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl LoopDisk {
    /// `n` images of `mib` MiB under `dir`, each made a file system, attached
    /// with direct I/O and mounted at `dir/mntI`; `None` (with the reason
    /// printed) where this machine cannot.
    pub fn make(dir: &Path, n: usize, mib: u64) -> Option<Vec<LoopDisk>> {
        let mut disks = Vec::new();
        for i in 0..n {
            match LoopDisk::one(dir, i, mib) {
                Ok(d) => disks.push(d),
                Err(why) => {
                    eprintln!("skipped: cannot make a loop-mounted drive: {why}");
                    return None;
                }
            }
        }
        Some(disks)
    }

    fn one(dir: &Path, i: usize, mib: u64) -> Result<LoopDisk, String> {
        let image = dir.join(format!("drive{i}.img"));
        let f = fs::File::create(&image).map_err(|e| e.to_string())?;
        f.set_len(mib << 20).map_err(|e| e.to_string())?;
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
        let device = run(Command::new("losetup")
            .args(["--direct-io=on", "-f", "--show"])
            .arg(&image))?;
        // Without direct I/O the loop device reads a truncated image as zeros
        // (rotten bytes), not as EIO (a failing drive): not what these tests make.
        let dio = run(Command::new("losetup").args(["-l", "-n", "-O", "DIO", &device]));
        if dio.as_deref() != Ok("1") {
            let _ = Command::new("losetup").arg("-d").arg(&device).status();
            return Err(format!(
                "{device} has no direct I/O (its image is on a file system without O_DIRECT): {dio:?}"
            ));
        }
        let mount = dir.join(format!("mnt{i}"));
        fs::create_dir_all(&mount).map_err(|e| e.to_string())?;
        let d = LoopDisk {
            image,
            device,
            mount,
        };
        run(Command::new("mount").arg(&d.device).arg(&d.mount))?;
        Ok(d)
    }

    /// The store's disk root on this drive.
    pub fn root(&self) -> PathBuf {
        self.mount.join("root")
    }

    /// Makes the drive fail the way a dying one does: every block past the
    /// first MiB of the image is gone (reads of them are EIO), and the page
    /// cache forgets the files under `root`, so that their next reads go to
    /// the drive.
    pub fn fail(&self) {
        fs::OpenOptions::new()
            .write(true)
            .open(&self.image)
            .and_then(|f| f.set_len(1 << 20))
            .expect("truncate the image");
        forget_pages(&self.root());
    }
}

/// Drops the page cache's copy of every file under `dir`.
fn forget_pages(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            forget_pages(&p);
        } else if let Ok(f) = fs::File::open(&p) {
            let _ = nix::fcntl::posix_fadvise(
                &f,
                0,
                0,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
        }
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        // Already unmounted when a test made the drive vanish: quietly.
        let quiet = |c: &mut Command| {
            let _ = c
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        };
        quiet(Command::new("umount").arg("-l").arg(&self.mount));
        quiet(Command::new("losetup").arg("-d").arg(&self.device));
    }
}
