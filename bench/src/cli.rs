//! Command-line flags and the resolved run configuration (defaults, `--smoke` sizes, paths).
//!
//! Default paths are relative to the workspace root (found from this crate's manifest directory at build time),
//! so `cargo run -p eddy-bench --release` works from any directory of the workspace; paths given as flags are
//! taken relative to the current directory, as usual.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Serialize;

use crate::error::{Error, Result};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Side-by-side benchmark of eddy against nginx, interleaved round by round on the same files.
#[derive(Debug, Parser)]
#[command(name = "eddy-bench", version, about)]
pub struct Args {
    /// The eddy binary [default: target/release/eddy of the workspace].
    #[arg(long, value_name = "PATH")]
    pub eddy: Option<PathBuf>,
    /// The nginx binary (looked up in PATH, then /usr/sbin).
    #[arg(long, value_name = "PATH", default_value = "nginx")]
    pub nginx: PathBuf,
    /// The wrk binary (looked up in PATH).
    #[arg(long, value_name = "PATH", default_value = "wrk")]
    pub wrk: PathBuf,
    /// The h2load binary, HTTP/2 load generator of scenario e (looked up in PATH).
    #[arg(long, value_name = "PATH", default_value = "h2load")]
    pub h2load: PathBuf,
    /// The openssl binary: makes the certificate and checks the negotiated cipher of scenarios d and e.
    #[arg(long, value_name = "PATH", default_value = "openssl")]
    pub openssl: PathBuf,
    /// The curl binary: checks the bodies over TLS and HTTP/2 in scenarios d and e.
    #[arg(long, value_name = "PATH", default_value = "curl")]
    pub curl: PathBuf,
    /// Content directory: src/ (served by nginx), store/d0, store/d1 (eddy's store); reused when it matches
    /// [default: bench/content, or bench/content-smoke with --smoke].
    #[arg(long, value_name = "DIR")]
    pub content: Option<PathBuf>,
    /// Size of big.bin, e.g. 4GiB, 512MiB, 1000000 [default: 4GiB; 8MiB with --smoke].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub big_size: Option<u64>,
    /// Number of segment files seg/segNNN.bin [default: 200; 4 with --smoke].
    #[arg(long, value_name = "N")]
    pub segments: Option<u32>,
    /// Size of each segment and of the ranges of scenario (a) [default: 2MiB; 256KiB with --smoke].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub segment_size: Option<u64>,
    /// Number of small objects obj/objNNNNN.bin of scenario h [default: 10000; 20 with --smoke].
    #[arg(long, value_name = "N")]
    pub objects: Option<u32>,
    /// Size of each small object of scenario h [default: 256KiB; 16KiB with --smoke].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub object_size: Option<u64>,
    /// Idle keep-alive connections held open in scenario g [default: 10000; 200 with --smoke].
    #[arg(long, value_name = "N")]
    pub idle_connections: Option<u32>,
    /// Requests per second sent on randomly chosen idle connections in scenario g [default: 200; 50 with --smoke].
    #[arg(long, value_name = "N")]
    pub trickle_rate: Option<u32>,
    /// Interleaved rounds; every round runs every scenario on nginx, then on eddy [default: 3; 1 with --smoke].
    #[arg(long, value_name = "N")]
    pub rounds: Option<u32>,
    /// Seconds of load per run [default: 10; 1 with --smoke].
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u32>,
    /// wrk connections [default: 64; 8 with --smoke].
    #[arg(long, value_name = "N")]
    pub connections: Option<u32>,
    /// wrk threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub threads: u32,
    /// Scenarios to run, comma-separated (a: 2 MiB ranges, b: whole segments, c: 64 KiB ranges, d: (a) over
    /// TLS 1.3, e: (a) over HTTP/2 with TLS, f: (a) from a cold page cache, g: many idle connections with a
    /// trickle of requests, h: many small objects, i: (c) on eddy while it fills, against eddy without a fill).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "a,b,c,d,e,f,g,h,i"
    )]
    pub scenarios: Vec<String>,
    /// Fill measurements from nginx into empty disks, comma-separated rate caps in Mbit/s: each cap N > 0 is a
    /// rate-cap run (achieved rate against N), and 0 is the uncapped run (next to the disk's write speed).
    /// `none` runs none of them.
    #[arg(long, value_name = "LIST", default_value = "100,1200,0")]
    pub fill_caps: String,
    /// Seconds of the steady window of each rate-cap run [default: 60; 1 with --smoke].
    #[arg(long, value_name = "SECONDS")]
    pub fill_duration: Option<u32>,
    /// The fill's rate cap during scenario i, Mbit/s.
    #[arg(long, value_name = "MBPS", default_value_t = 1200)]
    pub fill_serving_mbps: u64,
    /// Drive measurements on eddy alone, after the rounds, comma-separated: `stall` (the healthy drives' p99 while
    /// a FUSE drive hangs, against no fault; needs root, /dev/fuse and python3-fusepy) and `startup` (start-up time
    /// on a generated store of --startup-objects objects over 4 roots, cold and warm). `none` runs neither.
    #[arg(long, value_name = "LIST", default_value = "stall,startup")]
    pub drives: String,
    /// Objects of the start-up measurement's store [default: 1000000; 2000 with --smoke].
    #[arg(long, value_name = "N")]
    pub startup_objects: Option<u64>,
    /// Where the JSON of every round and the SVG chart go [default: bench/results, or bench/results/smoke with
    /// --smoke].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// CI mode: tiny sizes and 1-second runs; checks only that everything runs and bodies are right.
    #[arg(long)]
    pub smoke: bool,
    /// Keep the temporary run directory (nginx.conf, logs, wrk scripts) instead of removing it.
    #[arg(long)]
    pub keep_run_dir: bool,
}

/// Everything a run needs, with defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub eddy: PathBuf,
    pub nginx: PathBuf,
    pub wrk: PathBuf,
    pub h2load: PathBuf,
    pub openssl: PathBuf,
    pub curl: PathBuf,
    pub content: PathBuf,
    pub big_size: u64,
    pub segments: u32,
    pub segment_size: u64,
    pub objects: u32,
    pub object_size: u64,
    pub idle_connections: u32,
    pub trickle_rate: u32,
    pub rounds: u32,
    pub duration_s: u32,
    pub connections: u32,
    pub threads: u32,
    pub scenarios: Vec<String>,
    pub fill_caps: Vec<u64>,
    pub fill_duration_s: u32,
    pub fill_serving_mbps: u64,
    pub drives: Vec<crate::drives::Which>,
    pub startup_objects: u64,
    pub out: PathBuf,
    pub smoke: bool,
    pub keep_run_dir: bool,
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

impl Config {
    /// Apply defaults (plain or smoke) and validate.
    pub fn from_args(a: Args) -> Result<Config> {
        let root = workspace_root();
        let smoke = a.smoke;
        let pick = |full: u64, tiny: u64| if smoke { tiny } else { full };
        let cfg = Config {
            eddy: a.eddy.unwrap_or_else(|| root.join("target/release/eddy")),
            nginx: a.nginx,
            wrk: a.wrk,
            h2load: a.h2load,
            openssl: a.openssl,
            curl: a.curl,
            content: a.content.unwrap_or_else(|| {
                root.join(if smoke {
                    "bench/content-smoke"
                } else {
                    "bench/content"
                })
            }),
            big_size: a.big_size.unwrap_or(pick(4 * GIB, 8 * MIB)),
            segments: a.segments.unwrap_or(if smoke { 4 } else { 200 }),
            segment_size: a.segment_size.unwrap_or(pick(2 * MIB, 256 * KIB)),
            objects: a.objects.unwrap_or(if smoke { 20 } else { 10_000 }),
            object_size: a.object_size.unwrap_or(pick(256 * KIB, 16 * KIB)),
            idle_connections: a
                .idle_connections
                .unwrap_or(if smoke { 200 } else { 10_000 }),
            trickle_rate: a.trickle_rate.unwrap_or(if smoke { 50 } else { 200 }),
            rounds: a.rounds.unwrap_or(if smoke { 1 } else { 3 }),
            duration_s: a.duration.unwrap_or(if smoke { 1 } else { 10 }),
            connections: a.connections.unwrap_or(if smoke { 8 } else { 64 }),
            threads: a.threads,
            scenarios: a
                .scenarios
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            fill_caps: parse_caps(&a.fill_caps).map_err(Error::Usage)?,
            fill_duration_s: a.fill_duration.unwrap_or(if smoke { 1 } else { 60 }),
            fill_serving_mbps: a.fill_serving_mbps,
            drives: crate::drives::parse(&a.drives).map_err(Error::Usage)?,
            startup_objects: a
                .startup_objects
                .unwrap_or(if smoke { 2_000 } else { 1_000_000 }),
            out: a.out.unwrap_or_else(|| {
                root.join(if smoke {
                    "bench/results/smoke"
                } else {
                    "bench/results"
                })
            }),
            smoke,
            keep_run_dir: a.keep_run_dir,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Usage(m));
        if self.big_size == 0 {
            return bad("--big-size must be at least 1 byte".into());
        }
        if self.segments == 0 {
            return bad("--segments must be at least 1".into());
        }
        if self.segment_size == 0 {
            return bad("--segment-size must be at least 1 byte".into());
        }
        if self.objects == 0 || self.object_size == 0 {
            return bad("--objects and --object-size must be at least 1".into());
        }
        if self.idle_connections == 0 || self.trickle_rate == 0 {
            return bad("--idle-connections and --trickle-rate must be at least 1".into());
        }
        if self.rounds == 0 || self.duration_s == 0 {
            return bad("--rounds and --duration must be at least 1".into());
        }
        if self.threads == 0 || self.connections < self.threads {
            return bad(format!(
                "--connections ({}) must be at least --threads ({}), which must be at least 1",
                self.connections, self.threads
            ));
        }
        if self.scenarios.is_empty() {
            return bad("--scenarios is empty".into());
        }
        if self.fill_duration_s == 0 || self.fill_serving_mbps == 0 {
            return bad("--fill-duration and --fill-serving-mbps must be at least 1".into());
        }
        Ok(())
    }
}

/// Parse `--fill-caps`: Mbit/s, comma-separated; `none` (or nothing) is the empty list.
pub fn parse_caps(s: &str) -> std::result::Result<Vec<u64>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    t.split(',')
        .map(|x| {
            x.trim()
                .parse::<u64>()
                .map_err(|_| format!("--fill-caps: {x:?} is not a rate in Mbit/s"))
        })
        .collect()
}

/// Parse a byte size: a number with an optional binary suffix (K, KiB, M, MiB, G, GiB; case-insensitive).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with an optional unit (KiB, MiB, GiB)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))
}

/// Human form of a byte size, exact when it is a whole number of KiB/MiB/GiB.
pub fn fmt_size(n: u64) -> String {
    for (unit, m) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{} {unit}", n / m);
        }
    }
    format!("{n} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4GiB"), Ok(4 * GIB));
        assert_eq!(parse_size("2MiB"), Ok(2 * MIB));
        assert_eq!(parse_size("64k"), Ok(64 * KIB));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("x").is_err());
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
    }

    #[test]
    fn caps_parse() {
        assert_eq!(parse_caps("100,1200,0"), Ok(vec![100, 1200, 0]));
        assert_eq!(parse_caps("none"), Ok(vec![]));
        assert!(parse_caps("fast").is_err());
    }

    #[test]
    fn sizes_format() {
        assert_eq!(fmt_size(4 * GIB), "4 GiB");
        assert_eq!(fmt_size(64 * KIB), "64 KiB");
        assert_eq!(fmt_size(1000), "1000 B");
    }
}
