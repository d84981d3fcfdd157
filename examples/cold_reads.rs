//! Cold reads of body windows: `pread` on a pool of threads (what eddy does
//! for a cold TLS window, on tokio's blocking pool under 32 permits) against
//! io_uring reads at the same queue depth. Prints throughput and the CPU each
//! method spends per 2 MiB window (user + system, from getrusage).
//!
//! `cargo run --release --example cold_reads -- [DIR] [MiB]` (default: the
//! target directory, 1024 MiB). DIR must be on a disk (not tmpfs): the file's
//! pages are dropped before each method with POSIX_FADV_DONTNEED.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::time::Instant;

const WINDOW: usize = 2 << 20;
const DEPTH: usize = 32;

fn cpu_secs() -> f64 {
    let r = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(r.user_time()) + t(r.system_time())
}

fn drop_pages(file: &File) {
    nix::fcntl::posix_fadvise(
        file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .expect("fadvise");
}

/// The window offsets, in a shuffled but fixed order (players ask all over).
fn offsets(windows: usize) -> Vec<u64> {
    let mut v: Vec<u64> = (0..windows as u64).map(|i| i * WINDOW as u64).collect();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

fn with_pread(file: &File, offs: &[u64]) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..DEPTH {
            s.spawn(|| {
                let mut buf = vec![0u8; WINDOW];
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(off) = offs.get(i) else { break };
                    file.read_exact_at(&mut buf, *off).expect("pread");
                }
            });
        }
    });
}

// The one unsafe call: queueing a read whose buffer the kernel writes later.
#[allow(unsafe_code)]
fn with_uring(file: &File, offs: &[u64]) {
    use io_uring::{opcode, types, IoUring};
    let mut ring = IoUring::new(DEPTH as u32).expect("io_uring");
    let mut bufs: Vec<Vec<u8>> = (0..DEPTH).map(|_| vec![0u8; WINDOW]).collect();
    let fd = types::Fd(file.as_raw_fd());
    let mut next = 0usize;
    let mut in_flight = 0usize;
    let submit = |ring: &mut IoUring, slot: usize, off: u64, bufs: &mut Vec<Vec<u8>>| {
        let e = opcode::Read::new(fd, bufs[slot].as_mut_ptr(), WINDOW as u32)
            .offset(off)
            .build()
            .user_data(slot as u64);
        // SAFETY: the buffer of `slot` lives in `bufs` until its completion
        // is reaped below, and no other entry uses that slot meanwhile.
        unsafe { ring.submission().push(&e).expect("queue") };
    };
    for slot in 0..DEPTH.min(offs.len()) {
        submit(&mut ring, slot, offs[next], &mut bufs);
        next += 1;
        in_flight += 1;
    }
    while in_flight > 0 {
        ring.submit_and_wait(1).expect("submit");
        let done: Vec<(usize, i32)> = ring
            .completion()
            .map(|c| (c.user_data() as usize, c.result()))
            .collect();
        for (slot, res) in done {
            assert_eq!(res, WINDOW as i32, "a short or failed read");
            in_flight -= 1;
            if let Some(off) = offs.get(next) {
                submit(&mut ring, slot, *off, &mut bufs);
                next += 1;
                in_flight += 1;
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let path = dir.join("cold-reads.bin");
    {
        let mut f = File::create(&path).expect("create");
        let chunk: Vec<u8> = (0..WINDOW).map(|i| (i % 251) as u8).collect();
        for _ in 0..mib / 2 {
            f.write_all(&chunk).expect("write");
        }
        f.sync_all().expect("sync");
    }
    let file = File::open(&path).expect("open");
    let offs = offsets(mib / 2);
    println!(
        "{} windows of 2 MiB, {DEPTH} in flight, pages dropped before each run",
        offs.len()
    );
    for round in 0..3 {
        for (name, f) in [
            ("pread x32 threads", with_pread as fn(&File, &[u64])),
            ("io_uring depth 32", with_uring),
        ] {
            drop_pages(&file);
            let (t0, c0) = (Instant::now(), cpu_secs());
            f(&file, &offs);
            let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_secs() - c0);
            println!(
                "round {round} {name:18}: {:7.0} MiB/s  CPU {:6.1} us per window  ({cpu:.2} s CPU in {wall:.2} s)",
                mib as f64 / wall,
                cpu * 1e6 / offs.len() as f64
            );
        }
    }
    let _ = std::fs::remove_file(&path);
}
