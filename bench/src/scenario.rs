//! The scenarios: what each one asks for, how the load generator is told to ask for it, and which sample
//! requests check the bodies around its runs.
//!
//! A scenario is a [`Transport`] (how the client reaches the server) and a [`Load`] (which objects and ranges it
//! asks for). New kinds of scenario come in as new variants there: TLS and HTTP/2 as transports (with their
//! load generator), cold cache and many idle connections as loads with their own preparation. Everything
//! downstream (measurement, report) works per scenario key and does not care which variant it runs.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::check::Probe;
use crate::cli::{fmt_size, Config};
use crate::content::{Content, Small, Xoshiro};
use crate::error::{Error, Result};

/// Keys and one-line descriptions of the scenarios this build knows.
pub const KNOWN: &[(&str, &str)] = &[
    (
        "a",
        "2 MiB (--segment-size) ranges of big.bin at uniform unaligned offsets",
    ),
    ("b", "whole segments seg/segNNN.bin, uniform"),
    ("c", "64 KiB ranges of big.bin at uniform unaligned offsets"),
    ("d", "(a) over TLS 1.3 (TLS_AES_256_GCM_SHA384), wrk"),
    ("e", "(a) over HTTP/2 with TLS 1.3, h2load"),
    (
        "f",
        "(a) from a cold page cache (posix_fadvise DONTNEED before each run; nginx with aio threads)",
    ),
    (
        "g",
        "10,000 (--idle-connections) idle keep-alive connections and a trickle of 64 KiB ranges: RSS and p99",
    ),
    (
        "h",
        "10,000 (--objects) small objects of 256 KiB (--object-size), whole, uniform",
    ),
    (
        "i",
        "(c) while eddy fills from nginx at 1.2 Gbit/s (--fill-serving-mbps); eddy also without a fill, same round",
    ),
];

/// Size of the ranges the trickle of scenario (g) asks for.
pub const TRICKLE_LEN: u64 = 64 * 1024;

/// How the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// HTTP/1.1 over plain TCP, driven by wrk (or by the bench's own idle-connection client in (g)).
    Http,
    /// HTTP/1.1 over TLS 1.3, driven by wrk.
    Https,
    /// HTTP/2 over TLS 1.3 (ALPN h2), driven by h2load.
    H2,
}

impl Transport {
    fn scheme(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Https | Transport::H2 => "https",
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
    /// Whole objects `<prefix>NNN.bin`, NNN uniform in `0..count`, zero-padded to `width` digits (the segments
    /// of (b), the small objects of (h)).
    Objects {
        prefix: String,
        count: u32,
        width: usize,
        size: u64,
    },
    /// `connections` keep-alive connections that each ask for one range of `len` bytes of `key` and then mostly
    /// idle, while `rate` requests per second (ranges of `len` bytes at uniform offsets) go out on connections
    /// chosen at random (see `idle.rs`).
    Idle {
        connections: u32,
        rate: u32,
        key: String,
        file_size: u64,
        len: u64,
    },
}

/// One scenario of the bench.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub key: String,
    pub title: String,
    pub transport: Transport,
    pub load: Load,
    /// The page cache holds none of the file's pages when each run starts (see `cold.rs`).
    pub cold: bool,
    /// The source tree the objects were made from (the content's `src/`, or the small objects' for (h)).
    pub src: PathBuf,
    /// (i): eddy's runs happen while its fill downloads at this cap (Mbit/s), each next to a run of the same
    /// eddy without a fill; nginx's runs are (c)'s (nginx has no fill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill_mbps: Option<u64>,
}

/// Build the scenarios named by `keys` for this content. `small` is the content of (h), when (h) is asked for.
pub fn resolve(
    keys: &[String],
    content: &Content,
    small: Option<&Small>,
    cfg: &Config,
) -> Result<Vec<Scenario>> {
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
        let (mut transport, mut cold, mut src) = (Transport::Http, false, content.src.clone());
        let mut fill_mbps = None;
        let (title, load) = match key.as_str() {
            "a" => ranges(m.segment_size),
            "b" => (
                format!(
                    "whole {} segments, {} files",
                    fmt_size(m.segment_size),
                    m.segments
                ),
                Load::Objects {
                    prefix: "seg/seg".into(),
                    count: m.segments,
                    width: content.seg_width(),
                    size: m.segment_size,
                },
            ),
            "c" => ranges(64 * 1024),
            "i" => {
                fill_mbps = Some(cfg.fill_serving_mbps);
                let (t, l) = ranges(64 * 1024);
                (
                    format!(
                        "{t}; eddy while it fills from nginx at {} Mbit/s, and without a fill",
                        cfg.fill_serving_mbps
                    ),
                    l,
                )
            }
            "d" => {
                transport = Transport::Https;
                let (t, l) = ranges(m.segment_size);
                (format!("{t}, HTTP/1.1 over TLS 1.3"), l)
            }
            "e" => {
                transport = Transport::H2;
                let (t, l) = ranges(m.segment_size);
                (format!("{t}, HTTP/2 over TLS 1.3"), l)
            }
            "f" => {
                cold = true;
                let (t, l) = ranges(m.segment_size);
                (format!("{t}, cold page cache"), l)
            }
            "g" => {
                let len = TRICKLE_LEN.min(m.big_size);
                (
                    format!(
                        "{} idle keep-alive connections, {} req/s of {} ranges on random ones",
                        cfg.idle_connections,
                        cfg.trickle_rate,
                        fmt_size(len)
                    ),
                    Load::Idle {
                        connections: cfg.idle_connections,
                        rate: cfg.trickle_rate,
                        key: "big.bin".into(),
                        file_size: m.big_size,
                        len,
                    },
                )
            }
            "h" => {
                let small = small.ok_or_else(|| {
                    Error::Usage("scenario h needs its small objects (internal)".into())
                })?;
                src = small.src.clone();
                (
                    format!(
                        "whole {} objects, {} files",
                        fmt_size(small.manifest.size),
                        small.manifest.count
                    ),
                    Load::Objects {
                        prefix: "obj/obj".into(),
                        count: small.manifest.count,
                        width: small.width(),
                        size: small.manifest.size,
                    },
                )
            }
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
            transport,
            load,
            cold,
            src,
            fill_mbps,
        });
    }
    Ok(out)
}

impl Scenario {
    /// The URL the load generator is pointed at.
    pub fn url(&self, addr: SocketAddr) -> String {
        let path = match &self.load {
            Load::Ranges { key, .. } | Load::Idle { key, .. } => format!("/{key}"),
            Load::Objects { .. } => "/".into(),
        };
        format!("{}://{addr}{path}", self.transport.scheme())
    }

    /// Body bytes of every successful response.
    pub fn body_len(&self) -> u64 {
        match &self.load {
            Load::Ranges { len, .. } | Load::Idle { len, .. } => *len,
            Load::Objects { size, .. } => *size,
        }
    }

    /// Sample requests whose bodies are compared with the source files: the ends of the file, offsets straddling
    /// 2^31 and 2^32 where the file reaches them, and a few random ones drawn from `rng`; for objects, the first,
    /// the last and a random one.
    pub fn probes(&self, rng: &mut Xoshiro) -> Vec<Probe> {
        let src = &self.src;
        match &self.load {
            Load::Ranges {
                key,
                file_size,
                len,
            }
            | Load::Idle {
                key,
                file_size,
                len,
                ..
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
                        file: src.join(key),
                        file_size: *file_size,
                    })
                    .collect()
            }
            Load::Objects {
                prefix,
                count,
                width,
                size,
            } => {
                let picks = [0, count - 1, rng.below(u64::from(*count)) as u32];
                picks
                    .iter()
                    .map(|&i| {
                        let key = format!("{prefix}{i:0width$}.bin");
                        Probe {
                            path: format!("/{key}"),
                            range: None,
                            file: src.join(&key),
                            file_size: *size,
                        }
                    })
                    .collect()
            }
        }
    }

    /// The wrk script (from [`crate::wrk::SCRIPTS`]) and its arguments for this scenario; None for a load that wrk
    /// does not drive.
    pub fn wrk_script(&self, seed: u64) -> Option<(&'static str, Vec<String>)> {
        match &self.load {
            Load::Ranges { file_size, len, .. } => Some((
                "range.lua",
                vec![file_size.to_string(), len.to_string(), seed.to_string()],
            )),
            Load::Objects {
                prefix,
                count,
                width,
                ..
            } => Some((
                "objects.lua",
                vec![
                    count.to_string(),
                    width.to_string(),
                    seed.to_string(),
                    prefix.clone(),
                ],
            )),
            Load::Idle { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_probes_name_padded_keys_and_range_probes_stay_inside() {
        let s = Scenario {
            key: "h".into(),
            title: String::new(),
            transport: Transport::Http,
            load: Load::Objects {
                prefix: "obj/obj".into(),
                count: 12,
                width: 5,
                size: 100,
            },
            cold: false,
            src: "/s".into(),
            fill_mbps: None,
        };
        let mut rng = Xoshiro::new(3);
        let p = s.probes(&mut rng);
        assert_eq!(p[0].path, "/obj/obj00000.bin");
        assert_eq!(p[1].path, "/obj/obj00011.bin");
        assert_eq!(p[1].file, std::path::Path::new("/s/obj/obj00011.bin"));
        let r = Scenario {
            key: "a".into(),
            title: String::new(),
            transport: Transport::H2,
            load: Load::Ranges {
                key: "big.bin".into(),
                file_size: 1000,
                len: 100,
            },
            cold: false,
            src: "/s".into(),
            fill_mbps: None,
        };
        for p in r.probes(&mut rng) {
            let (a, b) = p.range.expect("ranged");
            assert_eq!(b - a + 1, 100);
            assert!(b < 1000);
        }
        assert!(r
            .url("127.0.0.1:1".parse().expect("addr"))
            .starts_with("https://"));
    }
}
