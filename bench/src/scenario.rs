//! The scenarios: what each one asks for, how the load generator is told to ask for it, and which sample
//! requests check the bodies around its runs.
//!
//! A scenario is a [`Transport`] (how the client reaches the server) and a [`Load`] (which objects and ranges it
//! asks for). New kinds of scenario come in as new variants there: TLS and HTTP/2 as transports (with their
//! load generator), cold cache and many idle connections as loads with their own preparation. Everything
//! downstream (measurement, report) works per scenario key and does not care which variant it runs.

use std::net::SocketAddr;

use serde::Serialize;

use crate::check::Probe;
use crate::cli::fmt_size;
use crate::content::{Content, Xoshiro};
use crate::error::{Error, Result};

/// Keys and one-line descriptions of the scenarios this build knows.
pub const KNOWN: &[(&str, &str)] = &[
    (
        "a",
        "2 MiB (--segment-size) ranges of big.bin at uniform unaligned offsets",
    ),
    ("b", "whole segments seg/segNNN.bin, uniform"),
    ("c", "64 KiB ranges of big.bin at uniform unaligned offsets"),
];

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// HTTP/1.1 over plain TCP, driven by wrk.
    Http,
}

impl Transport {
    fn scheme(self) -> &'static str {
        match self {
            Transport::Http => "http",
        }
    }
}

/// Which requests the client sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Load {
    /// `Range: bytes=OFF-(OFF+len-1)` of `key`, OFF uniform in `0..=file_size-len` (unaligned).
    Ranges {
        key: String,
        file_size: u64,
        len: u64,
    },
    /// Whole objects `seg/segNNN.bin`, NNN uniform in `0..count`.
    Segments { count: u32, width: usize, size: u64 },
}

/// One scenario of the bench.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub key: String,
    pub title: String,
    pub transport: Transport,
    pub load: Load,
}

/// Build the scenarios named by `keys` for this content.
pub fn resolve(keys: &[String], content: &Content) -> Result<Vec<Scenario>> {
    let m = &content.manifest;
    let mut out: Vec<Scenario> = Vec::new();
    for key in keys {
        if out.iter().any(|s| &s.key == key) {
            continue;
        }
        let ranges = |len: u64| {
            let len = len.min(m.big_size);
            (
                format!(
                    "{} ranges of big.bin ({}) at uniform unaligned offsets",
                    fmt_size(len),
                    fmt_size(m.big_size)
                ),
                Load::Ranges {
                    key: "big.bin".into(),
                    file_size: m.big_size,
                    len,
                },
            )
        };
        let (title, load) = match key.as_str() {
            "a" => ranges(m.segment_size),
            "b" => (
                format!(
                    "whole {} segments, {} files",
                    fmt_size(m.segment_size),
                    m.segments
                ),
                Load::Segments {
                    count: m.segments,
                    width: content.seg_width(),
                    size: m.segment_size,
                },
            ),
            "c" => ranges(64 * 1024),
            other => {
                let known: Vec<String> = KNOWN.iter().map(|(k, d)| format!("{k} ({d})")).collect();
                return Err(Error::Usage(format!(
                    "unknown scenario {other:?}; known: {}",
                    known.join(", ")
                )));
            }
        };
        out.push(Scenario {
            key: key.clone(),
            title,
            transport: Transport::Http,
            load,
        });
    }
    Ok(out)
}

impl Scenario {
    /// The URL the load generator is pointed at.
    pub fn url(&self, addr: SocketAddr) -> String {
        let path = match &self.load {
            Load::Ranges { key, .. } => format!("/{key}"),
            Load::Segments { .. } => "/".into(),
        };
        format!("{}://{addr}{path}", self.transport.scheme())
    }

    /// Body bytes of every successful response.
    pub fn body_len(&self) -> u64 {
        match &self.load {
            Load::Ranges { len, .. } => *len,
            Load::Segments { size, .. } => *size,
        }
    }

    /// Sample requests whose bodies are compared with the source files: the ends of the file, offsets straddling
    /// 2^31 and 2^32 where the file reaches them, and a few random ones drawn from `rng`.
    pub fn probes(&self, content: &Content, rng: &mut Xoshiro) -> Vec<Probe> {
        match &self.load {
            Load::Ranges {
                key,
                file_size,
                len,
            } => {
                let max_off = file_size - len;
                let mut offs = vec![0, max_off];
                for edge in [1u64 << 31, 1u64 << 32] {
                    if let Some(off) = edge.checked_sub(len / 2 + 1) {
                        if off <= max_off {
                            offs.push(off);
                        }
                    }
                }
                offs.extend((0..3).map(|_| rng.below(max_off + 1)));
                offs.into_iter()
                    .map(|off| Probe {
                        path: format!("/{key}"),
                        range: Some((off, off + len - 1)),
                        file: content.src.join(key),
                        file_size: *file_size,
                    })
                    .collect()
            }
            Load::Segments { count, size, .. } => {
                let picks = [0, count - 1, rng.below(u64::from(*count)) as u32];
                picks
                    .iter()
                    .map(|&i| {
                        let key = content.seg_key(i);
                        Probe {
                            path: format!("/{key}"),
                            range: None,
                            file: content.src.join(&key),
                            file_size: *size,
                        }
                    })
                    .collect()
            }
        }
    }

    /// The wrk script (from [`crate::wrk::SCRIPTS`]) and its arguments for this scenario.
    pub fn wrk_script(&self, seed: u64) -> (&'static str, Vec<String>) {
        match &self.load {
            Load::Ranges { file_size, len, .. } => (
                "range.lua",
                vec![file_size.to_string(), len.to_string(), seed.to_string()],
            ),
            Load::Segments { count, width, .. } => (
                "seg.lua",
                vec![count.to_string(), width.to_string(), seed.to_string()],
            ),
        }
    }
}
