//! SHA-256 throughput on one core, as the fill hashes while downloading
//! (`sha2`, which uses the SHA-NI instructions where the CPU has them).
//!
//! `cargo run --release -p eddy-fill --example sha256_rate [MIB]` hashes MIB
//! MiB (default 2048) in 16 KiB chunks, the size the fill hashes as the
//! bytes arrive, and prints the rate.

use sha2::{Digest as _, Sha256};

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2048);
    let chunk = vec![0x5au8; 16 << 10];
    let chunks = (mib << 20) / chunk.len() as u64;
    let mut h = Sha256::new();
    let start = std::time::Instant::now();
    for _ in 0..chunks {
        h.update(&chunk);
    }
    let digest = h.finalize();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sha256: {mib} MiB in {secs:.3} s = {:.0} MB/s = {:.2} Gbit/s on one core (digest {:02x}{:02x}..)",
        (mib << 20) as f64 / secs / 1e6,
        (mib << 20) as f64 * 8.0 / secs / 1e9,
        digest[0],
        digest[1]
    );
}
