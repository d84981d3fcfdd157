//! `eddy demo`: sample content for a first look on loopback.
//!
//! Owns: writing a small, deterministic sample library (per-bitrate files of a
//! title, whole segments, a playlist) into a directory, which the demo's
//! control plane (`eddy-origin`) offers and the real appliance fills itself
//! from. It must not serve or install anything itself: `main` runs the real
//! commands.

use std::fs;
use std::io::Write as _;
use std::path::Path;

/// The objects of the sample library: key and size in bytes.
pub const SAMPLE: &[(&str, u64)] = &[
    ("titles/81/video-1080.mp4", 48 << 20),
    ("titles/81/video-480.mp4", 12 << 20),
    ("titles/81/audio-en.m4a", 3 << 20),
];

/// Segments of the sample's segmented rendition.
pub const SEGMENTS: usize = 20;
/// Size of one segment.
pub const SEGMENT_BYTES: u64 = 2 << 20;

/// Writes the sample library below `dir` and returns the keys written.
pub fn write_sample(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut keys = Vec::new();
    for (i, (key, len)) in SAMPLE.iter().enumerate() {
        write_pseudo_random(&dir.join(key), *len, i as u64 + 1)?;
        keys.push((*key).to_owned());
    }
    let mut playlist = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n");
    for n in 0..SEGMENTS {
        let key = format!("titles/81/hls/seg{n:03}.ts");
        write_pseudo_random(&dir.join(&key), SEGMENT_BYTES, 100 + n as u64)?;
        playlist.push_str(&format!("#EXTINF:4.0,\nseg{n:03}.ts\n"));
        keys.push(key);
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    let key = "titles/81/hls/index.m3u8";
    fs::write(dir.join(key), playlist)?;
    keys.push(key.to_owned());
    Ok(keys)
}

/// Deterministic bytes (xorshift64*), written in 1 MiB blocks.
fn write_pseudo_random(path: &Path, len: u64, seed: u64) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_deterministic() -> std::io::Result<()> {
        let a = tempfile::tempdir()?;
        let b = tempfile::tempdir()?;
        write_pseudo_random(&a.path().join("x"), 3000, 7)?;
        write_pseudo_random(&b.path().join("x"), 3000, 7)?;
        assert_eq!(fs::read(a.path().join("x"))?, fs::read(b.path().join("x"))?);
        assert_eq!(fs::metadata(a.path().join("x"))?.len(), 3000);
        Ok(())
    }
}
