//! wrk, the HTTP/1.1 load generator: the Lua scripts the bench writes for it, running it for one measured run, and
//! parsing the machine-readable line its `done()` prints.
//!
//! The scripts define no `response()` callback on purpose: with one, wrk copies every body into Lua, which would
//! double its CPU per byte and cut the throughput it can absorb. Responses with status >= 400 come from wrk's own
//! `errors.status` count, and the byte count is checked against the expected body size instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::measure::Outcome;

/// Prefix of the line `done()` prints.
const MARK: &str = "EDDY_BENCH_RESULT";

/// The `done()` shared by every script: one line of `key=value` pairs.
const DONE: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "EDDY_BENCH_RESULT requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d mean_us=%d max_us=%d\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    math.floor(latency.mean), math.floor(latency.max)))
end
"#;

/// Gives every wrk thread its own id, so that each seeds its own random sequence.
const SETUP: &str = r#"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
"#;

/// args: FILE_SIZE LEN SEED. `Range: bytes=OFF-(OFF+LEN-1)`, OFF uniform over 0..=FILE_SIZE-LEN (unaligned).
const RANGE: &str = r#"-- eddy-bench: ranges of LEN bytes at uniform unaligned offsets of the URL's object.
local span, len
function init(args)
  local size = tonumber(args[1])
  len = tonumber(args[2])
  span = size - len + 1
  math.randomseed(tonumber(args[3]) + 7919 * (thread_id or 0))
end
function request()
  local off = math.floor(math.random() * span)
  return wrk.format(nil, nil, { ["Range"] = string.format("bytes=%d-%d", off, off + len - 1) })
end
"#;

/// args: COUNT WIDTH SEED PREFIX. `GET /PREFIXNNN.bin`, NNN uniform over 0..COUNT, zero-padded to WIDTH digits
/// (`/seg/segNNN.bin` in (b), `/obj/objNNNNN.bin` in (h)).
const OBJECTS: &str = r#"-- eddy-bench: whole objects /PREFIXNNN.bin, NNN uniform.
local count, fmt
function init(args)
  count = tonumber(args[1])
  fmt = "/" .. args[4] .. "%0" .. args[2] .. "d.bin"
  math.randomseed(tonumber(args[3]) + 7919 * (thread_id or 0))
end
function request()
  return wrk.format(nil, string.format(fmt, math.floor(math.random() * count)))
end
"#;

/// args: FILE SIZE LEN SEED. `Range: bytes=OFF-(OFF+LEN-1)` of a path chosen uniformly from the lines of FILE (the
/// stall measurement's healthy objects, all of SIZE bytes), OFF uniform over 0..=SIZE-LEN.
const PATHS: &str = r#"-- eddy-bench: ranges of LEN bytes of objects listed in FILE, uniform.
local paths, span, len = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  local size = tonumber(args[2])
  len = tonumber(args[3])
  span = size - len + 1
  math.randomseed(tonumber(args[4]) + 7919 * (thread_id or 0))
end
function request()
  local off = math.floor(math.random() * span)
  local path = paths[math.floor(math.random() * #paths) + 1]
  return wrk.format(nil, path, { ["Range"] = string.format("bytes=%d-%d", off, off + len - 1) })
end
"#;

/// Script file names and their bodies.
pub const SCRIPTS: &[(&str, &str)] = &[
    ("range.lua", RANGE),
    ("objects.lua", OBJECTS),
    ("paths.lua", PATHS),
];

/// Write every script into `dir`.
pub fn write_scripts(dir: &Path) -> Result<()> {
    for (name, body) in SCRIPTS {
        let p = dir.join(name);
        fs::write(&p, format!("{body}{SETUP}{DONE}")).at("write", &p)?;
    }
    Ok(())
}

/// How to run wrk.
pub struct Wrk<'a> {
    pub bin: &'a Path,
    pub threads: u32,
    pub connections: u32,
    pub duration_s: u32,
    pub script_dir: PathBuf,
}

impl Wrk<'_> {
    /// Run wrk once and parse its result line. Blocks for the run's duration.
    pub fn run(&self, script: &str, url: &str, args: &[String]) -> Result<Outcome> {
        let out = Command::new(self.bin)
            .arg("-t")
            .arg(self.threads.to_string())
            .arg("-c")
            .arg(self.connections.to_string())
            .arg("-d")
            .arg(format!("{}s", self.duration_s))
            .arg("-s")
            .arg(self.script_dir.join(script))
            .arg(url)
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ctx(|| format!("run {}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(Error::tool(
                "wrk",
                format!(
                    "{url} failed ({}): {} {}",
                    out.status,
                    stdout.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        parse(&stdout).ok_or_else(|| {
            Error::tool(
                "wrk",
                format!("no parsable {MARK} line in its output: {}", stdout.trim()),
            )
        })
    }
}

/// Parse the `EDDY_BENCH_RESULT k=v ...` line out of wrk's output.
pub fn parse(stdout: &str) -> Option<Outcome> {
    let line = stdout.lines().find_map(|l| l.trim().strip_prefix(MARK))?;
    let mut o = Outcome::default();
    let mut seen = 0;
    for kv in line.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        let v: u64 = v.parse().ok()?;
        let slot = match k {
            "requests" => &mut o.requests,
            "bytes" => &mut o.bytes,
            "duration_us" => &mut o.duration_us,
            "connect" => &mut o.errors.connect,
            "read" => &mut o.errors.read,
            "write" => &mut o.errors.write,
            "status" => &mut o.errors.status,
            "timeout" => &mut o.errors.timeout,
            "p50_us" => &mut o.p50_us,
            "p99_us" => &mut o.p99_us,
            "mean_us" => &mut o.mean_us,
            "max_us" => &mut o.max_us,
            _ => continue,
        };
        *slot = v;
        seen += 1;
    }
    (seen == 12).then_some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_done_line() {
        let out = "Running 1s test\n  2 threads\nEDDY_BENCH_RESULT requests=10 bytes=20971520 duration_us=1000000 \
                   connect=0 read=1 write=0 status=2 timeout=0 p50_us=100 p99_us=900 mean_us=150 max_us=1000\n";
        let o = parse(out).expect("parsed");
        assert_eq!(o.requests, 10);
        assert_eq!(o.bytes, 20_971_520);
        assert_eq!(o.errors.total(), 3);
        assert_eq!(o.p99_us, 900);
        assert!(parse("EDDY_BENCH_RESULT requests=1").is_none());
        assert!(parse("nothing").is_none());
    }
}
