//! The content both servers serve: `big.bin` and `seg/segNNN.bin` under `<content>/src`, generated from a fast
//! seeded PRNG (xoshiro256++), described by `<content>/content.json`, and reused when that manifest and the file
//! sizes match the requested sizes. Also warms the page cache so that warm-cache scenarios start warm.
//!
//! Layout of the content directory:
//! - `src/`: the source tree; nginx's root, and what is imported into eddy's store.
//! - `content.json`: the manifest of `src/` (written last, so a half-written tree is never reused).
//! - `store/d0`, `store/d1`, `store.json`: eddy's store (see `eddy.rs`).
//! - `small/`: the many small objects of scenario (h), a tree of its own with the same layout (`small/src/obj/`,
//!   `small/content.json`, `small/store/d0`, `small/store/d1`, `small/store.json`), so that changing their count
//!   or size never regenerates the GiBs of `src/`. nginx serves `small/src` for the `/obj/` location, and eddy
//!   serves its store disks beside the main ones.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cli::{fmt_size, Config};
use crate::error::{IoContext, Result};

/// Version tag of the generator; bump it when the bytes it produces change.
const GENERATOR: &str = "xoshiro256++/splitmix64 v1";
const SEED: u64 = 0x6564_6479_6265_6e63; // "eddybenc"

/// What `content.json` records; two manifests that compare equal describe the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub generator: String,
    pub seed: u64,
    pub big_size: u64,
    pub segments: u32,
    pub segment_size: u64,
}

/// The generated source tree.
#[derive(Debug, Clone)]
pub struct Content {
    pub dir: PathBuf,
    pub src: PathBuf,
    pub manifest: Manifest,
}

impl Content {
    /// Path of big.bin.
    pub fn big(&self) -> PathBuf {
        self.src.join("big.bin")
    }

    /// Object key (URL path without the leading `/`) of segment `i`.
    pub fn seg_key(&self, i: u32) -> String {
        format!(
            "seg/seg{:0w$}.bin",
            i,
            w = seg_width(self.manifest.segments)
        )
    }

    /// Digits in segment numbers (at least 3: seg000.bin).
    pub fn seg_width(&self) -> usize {
        seg_width(self.manifest.segments)
    }

    /// Every (key, size) of the source tree, sorted by key.
    pub fn objects(&self) -> Vec<(String, u64)> {
        let mut v = vec![("big.bin".to_string(), self.manifest.big_size)];
        v.extend(
            (0..self.manifest.segments).map(|i| (self.seg_key(i), self.manifest.segment_size)),
        );
        v.sort();
        v
    }
}

/// The small objects of scenario (h): `<content>/small/src/obj/objNNNNN.bin`, all of one size.
#[derive(Debug, Clone)]
pub struct Small {
    pub dir: PathBuf,
    pub src: PathBuf,
    pub manifest: SmallManifest,
}

/// What `small/content.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmallManifest {
    pub generator: String,
    pub seed: u64,
    pub count: u32,
    pub size: u64,
}

impl Small {
    /// Digits in object numbers (at least 5: obj00000.bin).
    pub fn width(&self) -> usize {
        self.manifest
            .count
            .saturating_sub(1)
            .to_string()
            .len()
            .max(5)
    }

    /// Object key of small object `i`.
    pub fn key(&self, i: u32) -> String {
        format!("obj/obj{:0w$}.bin", i, w = self.width())
    }

    /// Every (key, size), sorted by key.
    pub fn objects(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = (0..self.manifest.count)
            .map(|i| (self.key(i), self.manifest.size))
            .collect();
        v.sort();
        v
    }
}

/// Make sure `<content>/small/src` holds the requested small objects, generating them if not.
pub fn ensure_small(cfg: &Config) -> Result<Small> {
    let dir = cfg.content.join("small");
    let small = Small {
        src: dir.join("src"),
        dir,
        manifest: SmallManifest {
            generator: GENERATOR.into(),
            seed: SEED,
            count: cfg.objects,
            size: cfg.object_size,
        },
    };
    let manifest_path = small.dir.join("content.json");
    let current = fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<SmallManifest>(&b).ok())
        .is_some_and(|m| m == small.manifest)
        && small.objects().iter().all(|(key, size)| {
            fs::metadata(small.src.join(key)).is_ok_and(|md| md.is_file() && md.len() == *size)
        });
    if current {
        return Ok(small);
    }
    eprintln!(
        "content: generating {} small objects of {} in {}",
        cfg.objects,
        fmt_size(cfg.object_size),
        small.src.display()
    );
    remove_if_exists(&manifest_path)?;
    remove_if_exists(&small.dir.join("store.json"))?;
    remove_dir_if_exists(&small.dir.join("store"))?;
    remove_dir_if_exists(&small.src)?;
    fs::create_dir_all(small.src.join("obj")).at("create", &small.src.join("obj"))?;
    let t = Instant::now();
    for i in 0..cfg.objects {
        let key = small.key(i);
        write_random(
            &small.src.join(&key),
            cfg.object_size,
            SEED ^ fnv1a(key.as_bytes()),
        )?;
    }
    let json = serde_json::to_vec_pretty(&small.manifest)?;
    fs::write(&manifest_path, json).at("write", &manifest_path)?;
    eprintln!("content: generated in {:.1} s", t.elapsed().as_secs_f64());
    Ok(small)
}

fn seg_width(segments: u32) -> usize {
    segments.saturating_sub(1).to_string().len().max(3)
}

/// Make sure `<content>/src` holds the requested files, generating them if not. Returns whether it generated.
pub fn ensure(cfg: &Config) -> Result<(Content, bool)> {
    let dir = cfg.content.clone();
    let content = Content {
        src: dir.join("src"),
        dir,
        manifest: Manifest {
            generator: GENERATOR.into(),
            seed: SEED,
            big_size: cfg.big_size,
            segments: cfg.segments,
            segment_size: cfg.segment_size,
        },
    };
    let manifest_path = content.dir.join("content.json");
    if is_current(&content, &manifest_path) {
        return Ok((content, false));
    }
    eprintln!(
        "content: generating {} big.bin and {} x {} segments in {}",
        fmt_size(cfg.big_size),
        cfg.segments,
        fmt_size(cfg.segment_size),
        content.src.display()
    );
    // Anything derived from an old tree goes: the manifest first, so an interrupted run is never taken as whole.
    remove_if_exists(&manifest_path)?;
    remove_if_exists(&content.dir.join("store.json"))?;
    remove_dir_if_exists(&content.dir.join("store"))?;
    remove_dir_if_exists(&content.src)?;
    fs::create_dir_all(content.src.join("seg")).at("create", &content.src.join("seg"))?;
    let t = Instant::now();
    write_random(&content.big(), cfg.big_size, SEED ^ fnv1a(b"big.bin"))?;
    for i in 0..cfg.segments {
        let key = content.seg_key(i);
        write_random(
            &content.src.join(&key),
            cfg.segment_size,
            SEED ^ fnv1a(key.as_bytes()),
        )?;
    }
    let json = serde_json::to_vec_pretty(&content.manifest)?;
    fs::write(&manifest_path, json).at("write", &manifest_path)?;
    eprintln!("content: generated in {:.1} s", t.elapsed().as_secs_f64());
    Ok((content, true))
}

/// True when the manifest matches and every file has its size.
fn is_current(c: &Content, manifest_path: &Path) -> bool {
    let Ok(bytes) = fs::read(manifest_path) else {
        return false;
    };
    let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) else {
        return false;
    };
    m == c.manifest
        && c.objects().iter().all(|(key, size)| {
            fs::metadata(c.src.join(key)).is_ok_and(|md| md.is_file() && md.len() == *size)
        })
}

pub(crate) fn remove_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove", p),
        _ => Ok(()),
    }
}

pub(crate) fn remove_dir_if_exists(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove", p),
        _ => Ok(()),
    }
}

/// Write `size` pseudo-random bytes to `path` (through a temporary name, renamed when complete).
fn write_random(path: &Path, size: u64, seed: u64) -> Result<()> {
    let tmp = path.with_extension("bin.tmp");
    let mut f = File::create(&tmp).at("create", &tmp)?;
    let mut rng = Xoshiro::new(seed);
    let mut buf = vec![0u8; 4 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).at("write", &tmp)?;
        left -= n as u64;
    }
    f.flush().at("write", &tmp)?;
    drop(f);
    fs::rename(&tmp, path).at("rename into place", path)
}

/// Read every regular file under `dirs` once so its pages are in the page cache. Returns bytes read.
pub fn warm(dirs: &[PathBuf]) -> Result<u64> {
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).at("read directory", &d)? {
            let entry = entry.at("read directory", &d)?;
            let p = entry.path();
            let ft = entry.file_type().at("stat", &p)?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let mut f = File::open(&p).at("open", &p)?;
                loop {
                    let n = f.read(&mut buf).at("read", &p)?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
            }
        }
    }
    Ok(total)
}

/// FNV-1a, to derive one seed per file name.
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// xoshiro256++ (Blackman and Vigna), seeded through splitmix64: several GB/s, plenty random for content.
pub struct Xoshiro([u64; 4]);

impl Xoshiro {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Xoshiro([next(), next(), next(), next()])
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let r = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        r
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is negligible for the bench's small n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_fills_tails() {
        let mut a = Xoshiro::new(1);
        let mut b = Xoshiro::new(1);
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x[8..], [0u8; 5]);
    }

    #[test]
    fn segment_names_are_padded() {
        assert_eq!(seg_width(200), 3);
        assert_eq!(seg_width(1000), 3);
        assert_eq!(seg_width(1001), 4);
    }
}
