//! The client of scenario (g): many keep-alive connections that are mostly idle, with a trickle of requests.
//!
//! wrk keeps every connection busy, so (g) has its own client, on a single-threaded tokio runtime inside the
//! bench process. It opens `connections` connections (at most [`CONNECT_BURST`] connecting at once), sends one
//! request on each so that the server has really set the connection up (parsed a request, answered it, and gone
//! back to waiting for the next one), and then, for the run's duration, sends `rate` requests per second, each on
//! a connection chosen uniformly among those not already waiting for an answer. Every request is a range of `len`
//! bytes of `key` at a uniform unaligned offset; every answer's status, `Content-Length`, `Content-Range` and body
//! bytes are compared with the source file. Latency is from writing the request to the last body byte.
//!
//! The server's resident memory (summed VmRSS of its processes) is read before the connections are opened and
//! once they all are, which gives the memory per idle connection. Kernel socket buffers are not in VmRSS, and they
//! cost the same whichever server holds the socket.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::content::Xoshiro;
use crate::error::{Error, IoContext, Result};
use crate::measure::Outcome;
use crate::procstat;

/// Connections being opened at the same time (below both servers' listen backlogs).
const CONNECT_BURST: usize = 128;
/// How long one request may take before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening every connection may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// What the client is asked to do.
pub struct Params<'a> {
    pub addr: SocketAddr,
    pub connections: u32,
    pub rate: u32,
    pub duration: Duration,
    /// URL path of the object, e.g. `/big.bin`.
    pub path: String,
    /// The source file the object was made from.
    pub file: &'a Path,
    pub file_size: u64,
    pub len: u64,
    pub seed: u64,
    /// The server's processes, for its resident memory.
    pub pids: &'a [u32],
}

/// What the connections cost and how they fared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdleStats {
    pub connections_wanted: u32,
    /// Connections that were open and had their first answer when the trickle began.
    pub connections_open: u32,
    /// Connections that could not be opened or whose first request failed.
    pub connections_failed: u32,
    /// Seconds it took to open them all and have every first answer.
    pub setup_s: f64,
    /// The server's summed VmRSS before the connections were opened, and once they all were, KiB.
    pub rss_before_kib: u64,
    pub rss_loaded_kib: u64,
    /// (loaded - before) / open connections, KiB.
    pub kib_per_connection: Option<f64>,
    /// Trickle requests asked for, and how many found no idle connection to go on (then not sent).
    pub trickle_sent: u64,
    pub trickle_skipped: u64,
    /// The first request that failed, and how.
    pub first_failure: Option<String>,
}

/// One request for a connection's task: the range, and where the result goes.
struct Job {
    range: (u64, u64),
    reply: oneshot::Sender<std::result::Result<Done, Fail>>,
}

/// A request answered correctly: its latency and the bytes read.
struct Done {
    latency_us: u64,
    bytes: u64,
}

/// A request that went wrong.
enum Fail {
    Io(String),
    Timeout,
    Status(u16),
    Body(String),
}

/// Run the scenario; blocks for the setup and `duration`.
pub fn run(p: &Params) -> Result<(Outcome, IdleStats)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx(|| "start the idle client's runtime".to_string())?;
    let file = Arc::new(File::open(p.file).at("open", p.file)?);
    rt.block_on(drive(p, file))
}

async fn drive(p: &Params<'_>, file: Arc<File>) -> Result<(Outcome, IdleStats)> {
    let mut stats = IdleStats {
        connections_wanted: p.connections,
        rss_before_kib: procstat::rss_kib_sum(p.pids),
        ..IdleStats::default()
    };
    let mut rng = Xoshiro::new(p.seed ^ 0x6964_6c65);
    let mut o = Outcome::default();
    let path: Arc<str> = Arc::from(p.path.as_str());
    let t0 = Instant::now();

    // Open every connection and answer its first request; each then waits for jobs on its own channel.
    let gate = Arc::new(Semaphore::new(CONNECT_BURST));
    let mut setup = JoinSet::new();
    for i in 0..p.connections {
        let first = random_range(&mut rng, p.file_size, p.len);
        let (gate, path, file, addr) = (gate.clone(), path.clone(), file.clone(), p.addr);
        let file_size = p.file_size;
        setup.spawn(async move {
            let permit = gate.acquire_owned().await;
            let opened = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr)).await;
            let mut s = match opened {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return (i, Err(Fail::Io(format!("connect: {e}")))),
                Err(_) => return (i, Err(Fail::Timeout)),
            };
            let _ = s.set_nodelay(true);
            let r = request(&mut s, &path, first, file_size, &file).await;
            drop(permit);
            (i, r.map(|d| (s, d)))
        });
    }
    let mut streams: Vec<Option<TcpStream>> = (0..p.connections).map(|_| None).collect();
    let setup_deadline = tokio::time::sleep(SETUP_TIMEOUT);
    tokio::pin!(setup_deadline);
    loop {
        tokio::select! {
            joined = setup.join_next() => {
                let Some(joined) = joined else { break };
                let Ok((i, r)) = joined else {
                    stats.connections_failed += 1;
                    continue;
                };
                match r {
                    Ok((s, _)) => streams[i as usize] = Some(s),
                    Err(f) => {
                        stats.connections_failed += 1;
                        count_fail(&mut o, &mut stats, f);
                    }
                }
            }
            () = &mut setup_deadline => {
                setup.abort_all();
                return Err(Error::tool(
                    "idle client",
                    format!("opening {} connections to {} took over {SETUP_TIMEOUT:?}", p.connections, p.addr),
                ));
            }
        }
    }
    stats.setup_s = t0.elapsed().as_secs_f64();
    stats.rss_loaded_kib = procstat::rss_kib_sum(p.pids);

    // One task per open connection, idle until a job comes.
    let mut senders: Vec<mpsc::Sender<Job>> = Vec::new();
    let mut conns = JoinSet::new();
    for s in streams.into_iter().flatten() {
        let (tx, mut rx) = mpsc::channel::<Job>(1);
        senders.push(tx);
        let (path, file) = (path.clone(), file.clone());
        let file_size = p.file_size;
        conns.spawn(async move {
            let mut s = s;
            while let Some(job) = rx.recv().await {
                let r = request(&mut s, &path, job.range, file_size, &file).await;
                let broken = r.is_err();
                let _ = job.reply.send(r);
                if broken {
                    break;
                }
            }
        });
    }
    stats.connections_open = senders.len() as u32;
    stats.kib_per_connection = (stats.connections_open > 0).then(|| {
        stats.rss_loaded_kib.saturating_sub(stats.rss_before_kib) as f64
            / f64::from(stats.connections_open)
    });

    // The trickle.
    let busy: Arc<Vec<AtomicBool>> =
        Arc::new((0..senders.len()).map(|_| AtomicBool::new(false)).collect());
    let mut inflight = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(p.rate.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    while !senders.is_empty() && start.elapsed() < p.duration {
        ticker.tick().await;
        let pick = (0..16)
            .map(|_| rng.below(senders.len() as u64) as usize)
            .find(|&i| !busy[i].load(Ordering::Relaxed));
        let Some(i) = pick else {
            stats.trickle_skipped += 1;
            continue;
        };
        stats.trickle_sent += 1;
        busy[i].store(true, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            range: random_range(&mut rng, p.file_size, p.len),
            reply,
        };
        if senders[i].try_send(job).is_err() {
            // The connection's task ended: the server closed it or a request on it failed.
            o.errors.read += 1;
            continue;
        }
        let busy = busy.clone();
        inflight.spawn(async move {
            let r = answer.await;
            busy[i].store(false, Ordering::Relaxed);
            r
        });
    }
    let mut latencies = Vec::new();
    while let Some(joined) = inflight.join_next().await {
        match joined {
            Ok(Ok(Ok(d))) => {
                o.requests += 1;
                o.bytes += d.bytes;
                latencies.push(d.latency_us);
            }
            Ok(Ok(Err(f))) => count_fail(&mut o, &mut stats, f),
            _ => o.errors.read += 1,
        }
    }
    o.duration_us = start.elapsed().as_micros() as u64;
    drop(senders);
    conns.shutdown().await;

    o.set_latencies(latencies);
    Ok((o, stats))
}

fn random_range(rng: &mut Xoshiro, file_size: u64, len: u64) -> (u64, u64) {
    let off = rng.below(file_size - len + 1);
    (off, off + len - 1)
}

fn count_fail(o: &mut Outcome, stats: &mut IdleStats, f: Fail) {
    let what = match f {
        Fail::Io(e) => {
            o.errors.read += 1;
            e
        }
        Fail::Timeout => {
            o.errors.timeout += 1;
            format!("no answer within {REQUEST_TIMEOUT:?}")
        }
        Fail::Status(code) => {
            o.requests += 1;
            o.errors.status += 1;
            format!("status {code}")
        }
        Fail::Body(e) => {
            o.errors.read += 1;
            o.body_error.get_or_insert(e.clone());
            e
        }
    };
    stats.first_failure.get_or_insert(what);
}

/// One `GET path` with `Range: bytes=A-B` on `s`, read and checked to the last byte.
async fn request(
    s: &mut TcpStream,
    path: &str,
    range: (u64, u64),
    file_size: u64,
    file: &File,
) -> std::result::Result<Done, Fail> {
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange(s, path, range, file_size, file)).await {
        Ok(r) => r,
        Err(_) => Err(Fail::Timeout),
    }
}

async fn exchange(
    s: &mut TcpStream,
    path: &str,
    (a, b): (u64, u64),
    file_size: u64,
    file: &File,
) -> std::result::Result<Done, Fail> {
    let t = Instant::now();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: eddy-bench-idle\r\nRange: bytes={a}-{b}\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| Fail::Io(format!("send: {e}")))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(Fail::Io("response head too long".into()));
        }
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| Fail::Io(format!("read head: {e}")))?;
        if n == 0 {
            return Err(Fail::Io(
                "connection closed before the response head".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Fail::Io(format!("bad status line in {head:?}")))?;
    if status >= 400 {
        return Err(Fail::Status(status));
    }
    let header = |name: &str| {
        head.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let len = b - a + 1;
    let want_range = format!("bytes {a}-{b}/{file_size}");
    if status != 206
        || header("content-length").and_then(|v| v.parse::<u64>().ok()) != Some(len)
        || header("content-range").as_deref() != Some(want_range.as_str())
    {
        return Err(Fail::Body(format!(
            "GET {path} bytes={a}-{b}: status {status}, Content-Length {:?}, Content-Range {:?} (expected 206, {len}, {want_range:?})",
            header("content-length"),
            header("content-range")
        )));
    }
    let mut body = buf.split_off(head_end);
    if body.len() as u64 > len {
        return Err(Fail::Body(format!(
            "GET {path} bytes={a}-{b}: {} bytes after the body",
            body.len() as u64 - len
        )));
    }
    while (body.len() as u64) < len {
        let room = ((len - body.len() as u64) as usize).min(chunk.len());
        let n = s
            .read(&mut chunk[..room])
            .await
            .map_err(|e| Fail::Io(format!("read body: {e}")))?;
        if n == 0 {
            return Err(Fail::Io(format!(
                "connection closed after {} of {len} body bytes",
                body.len()
            )));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let latency_us = t.elapsed().as_micros() as u64;
    let mut want = vec![0u8; body.len()];
    file.read_exact_at(&mut want, a)
        .map_err(|e| Fail::Io(format!("read the source file: {e}")))?;
    if body != want {
        let at = body
            .iter()
            .zip(&want)
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        return Err(Fail::Body(format!(
            "GET {path} bytes={a}-{b}: body differs from the source at body byte {at}"
        )));
    }
    Ok(Done {
        latency_us,
        bytes: head_end as u64 + len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A tiny server that answers every range request correctly from `data`, on keep-alive connections.
    fn serve(data: Arc<Vec<u8>>) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { break };
                let data = data.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match c.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let r = head
                            .split("bytes=")
                            .nth(1)
                            .and_then(|r| r.split("\r\n").next())
                            .and_then(|r| r.split_once('-'))
                            .and_then(|(a, b)| {
                                Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
                            });
                        let Some((a, b)) = r else { return };
                        let h = format!(
                            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                            b - a + 1,
                            data.len()
                        );
                        if c.write_all(h.as_bytes()).is_err() || c.write_all(&data[a..=b]).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn holds_connections_and_checks_every_answer() {
        let dir = std::env::temp_dir().join(format!("eddy-bench-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("big.bin");
        let mut data = vec![0u8; 1 << 16];
        Xoshiro::new(5).fill(&mut data);
        std::fs::write(&file, &data).expect("write");
        let addr = serve(Arc::new(data));
        let me = [std::process::id()];
        let p = Params {
            addr,
            connections: 20,
            rate: 100,
            duration: Duration::from_millis(300),
            path: "/big.bin".into(),
            file: &file,
            file_size: 1 << 16,
            len: 1000,
            seed: 1,
            pids: &me,
        };
        let (o, st) = run(&p).expect("ran");
        assert_eq!(st.connections_open, 20);
        assert_eq!(st.connections_failed, 0);
        assert!(o.requests > 0);
        assert_eq!(o.errors.total(), 0);
        assert!(o.body_error.is_none());
        assert!(o.bytes >= o.requests * 1000);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
