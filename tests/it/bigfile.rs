//! A sparse file larger than 4 GiB: ranges straddling 2^31, 0x7ffff000 (one sendfile call's
//! maximum) and 2^32 come back byte-exact, HEAD shows the 64-bit length, a single response longer
//! than 0x7ffff000 bytes is complete, and the imported copy stays sparse.

use crate::support::*;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::Duration;

const GIB: u64 = 1 << 30;
const LEN: u64 = 5 * GIB;
/// Linux sendfile(2) moves at most this many bytes per call.
const SENDFILE_MAX: u64 = 0x7fff_f000;

/// (offset, seed, length) of the non-zero patterns written into the sparse file.
const PATTERNS: [(u64, u64, u64); 5] = [
    (0, 1, 4096),
    ((1 << 31) - 16384, 2, 32768),
    ((1 << 32) - 16384, 3, 32768),
    (2 * SENDFILE_MAX - 4096, 4, 8192),
    (LEN - 8192, 5, 8192),
];

fn make_sparse(store: &Store) -> PathBuf {
    let p = store.src.join("big.mp4");
    let f = File::create(&p).expect("create sparse source");
    f.set_len(LEN).expect("set_len 5 GiB");
    for (off, seed, n) in PATTERNS {
        f.write_all_at(&gen_bytes(seed, n as usize), off)
            .expect("write pattern");
    }
    f.sync_all().expect("sync");
    p
}

/// The expected bytes of [off, off+len).
fn expected(off: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    overlay(off, &mut v);
    v
}

fn overlay(off: u64, v: &mut [u8]) {
    let end = off + v.len() as u64;
    for (poff, seed, n) in PATTERNS {
        let pend = poff + n;
        if poff < end && off < pend {
            let pat = gen_bytes(seed, n as usize);
            let a = poff.max(off);
            let b = pend.min(end);
            v[(a - off) as usize..(b - off) as usize]
                .copy_from_slice(&pat[(a - poff) as usize..(b - poff) as usize]);
        }
    }
}

fn setup() -> (Store, Server) {
    let store = Store::new();
    make_sparse(&store);
    store.import();
    let server = store.serve();
    (store, server)
}

#[track_caller]
fn check_range(server: &Server, first: u64, last: u64) {
    let r = server.get("/big.mp4", &[&format!("Range: bytes={first}-{last}")]);
    assert_status(&r, 206);
    assert_eq!(
        r.must("content-range"),
        format!("bytes {first}-{last}/{LEN}")
    );
    assert_eq!(r.content_length(), Some(last - first + 1));
    assert_bytes_eq(
        &r.body,
        &expected(first, last - first + 1),
        &format!("bytes={first}-{last}"),
    );
}

#[test]
fn ranges_around_2_31_and_2_32() {
    let (store, server) = setup();

    let h = server.head("/big.mp4", &[]);
    assert_status(&h, 200);
    assert_eq!(
        h.content_length(),
        Some(LEN),
        "HEAD Content-Length of a 5 GiB file"
    );

    let p31 = 1u64 << 31;
    let p32 = 1u64 << 32;
    check_range(&server, 0, 4095);
    check_range(&server, p31 - 100, p31 + 99);
    check_range(&server, p31 - 16384, p31 + 16383);
    check_range(&server, SENDFILE_MAX - 10, SENDFILE_MAX + 10);
    check_range(&server, p31, p31);
    check_range(&server, p31 - 1, p31 - 1);
    check_range(&server, p32 - 100, p32 + 99);
    check_range(&server, p32 - 1, p32);
    check_range(&server, p32, p32 + 4095);
    check_range(&server, 2 * SENDFILE_MAX - 50, 2 * SENDFILE_MAX + 50);
    check_range(&server, LEN - 8192, LEN - 1);
    // Past EOF: clipped at 5 GiB.
    let r = server.get(
        "/big.mp4",
        &[&format!("Range: bytes={}-{}", LEN - 10, LEN * 4)],
    );
    assert_eq!(
        r.must("content-range"),
        format!("bytes {}-{}/{LEN}", LEN - 10, LEN - 1)
    );
    assert_bytes_eq(&r.body, &expected(LEN - 10, 10), "clipped tail");

    // Suffix.
    let r = server.get("/big.mp4", &["Range: bytes=-4096"]);
    assert_status(&r, 206);
    assert_eq!(
        r.must("content-range"),
        format!("bytes {}-{}/{LEN}", LEN - 4096, LEN - 1)
    );
    assert_bytes_eq(&r.body, &expected(LEN - 4096, 4096), "suffix");

    // 416 names the 64-bit length.
    let r = server.get("/big.mp4", &[&format!("Range: bytes={LEN}-")]);
    assert_status(&r, 416);
    assert_eq!(r.must("content-range"), format!("bytes */{LEN}"));

    // Multi-range across both boundaries, in request order.
    let spec = [(p32 - 8, p32 + 7), (p31 - 8, p31 + 7), (10, 19)];
    let s: Vec<String> = spec.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    let r = server.get("/big.mp4", &[&format!("Range: bytes={}", s.join(","))]);
    assert_status(&r, 206);
    let parts = parse_multipart(r.must("content-type"), &r.body);
    assert_eq!(parts.len(), 3);
    for (p, (a, b)) in parts.iter().zip(spec) {
        assert_eq!((p.first, p.last, p.complete_len), (a, b, LEN));
        assert_bytes_eq(&p.body, &expected(a, b - a + 1), "part");
    }

    // An open range from past 2^32: the head is right; read the start of the body only.
    let mut c = server.connect();
    c.send(&request_bytes(
        "GET",
        "/big.mp4",
        &[&format!("Range: bytes={}-", p32 - 16)],
        true,
    ));
    let h = c.read_head();
    assert_eq!(h.status, 206);
    let cl = h
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.clone());
    assert_eq!(cl, Some((LEN - (p32 - 16)).to_string()));
    let got = c.read_exact_body(32);
    assert_bytes_eq(&got, &expected(p32 - 16, 32), "open range start");

    // store ls shows the 64-bit size.
    let ls = store.ls();
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&format!("big.mp4\t{LEN}\t"))),
        "store ls: {ls}"
    );

    // The imported copy stayed sparse.
    let mut copies = Vec::new();
    for d in &store.disks {
        find_files_of_len(d, LEN, &mut copies);
    }
    assert_eq!(
        copies.len(),
        1,
        "exactly one stored copy of big.mp4: {copies:?}"
    );
    let md = std::fs::metadata(&copies[0]).expect("stat copy");
    let allocated = md.blocks() * 512;
    assert!(
        allocated < 64 << 20,
        "imported copy {:?} is not sparse: {allocated} bytes allocated for a {LEN}-byte file",
        copies[0]
    );
}

fn find_files_of_len(dir: &std::path::Path, len: u64, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            find_files_of_len(&e.path(), len, out);
        } else if ft.is_file() && e.metadata().map(|m| m.len()).ok() == Some(len) {
            out.push(e.path());
        }
    }
}

#[test]
fn one_response_longer_than_one_sendfile_call() {
    let (_store, server) = setup();
    // 2 GiB + 32 KiB starting just before 2^31: crosses 2^31, start+0x7ffff000 and 2^32.
    let first = (1u64 << 31) - 16384;
    let last = (1u64 << 32) + 16383;
    let n = last - first + 1;
    assert!(n > SENDFILE_MAX);
    let mut c = server.connect();
    // 2 GiB through a debug-build client on a loaded 2-core box: allow stalls.
    c.set_read_timeout(Duration::from_secs(120));
    c.send(&request_bytes(
        "GET",
        "/big.mp4",
        &[&format!("Range: bytes={first}-{last}")],
        true,
    ));
    let h = c.read_head();
    assert_eq!(h.status, 206);
    let get = |name: &str| {
        h.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("content-range"),
        Some(format!("bytes {first}-{last}/{LEN}"))
    );
    assert_eq!(get("content-length"), Some(n.to_string()));
    // Stream-compare: zero stretches by memcmp against a zero buffer, patterns exactly.
    let zeros = vec![0u8; 1 << 20];
    let mut pos = first;
    let mut bad: Option<u64> = None;
    c.read_body_with(n, |chunk| {
        if bad.is_some() {
            return;
        }
        let end = pos + chunk.len() as u64;
        let touches = PATTERNS.iter().any(|&(p, _, l)| p < end && pos < p + l);
        let ok = if touches {
            chunk == expected(pos, chunk.len() as u64).as_slice()
        } else {
            chunk == &zeros[..chunk.len()]
        };
        if !ok {
            bad = Some(pos);
        }
        pos = end;
    });
    assert_eq!(
        bad, None,
        "body differs in the chunk starting at file offset {bad:?}"
    );
    assert_eq!(pos, last + 1);
    let (closed, extra) = c.wait_closed(std::time::Duration::from_secs(10));
    assert!(
        closed && extra.is_empty(),
        "no bytes after the body, then close"
    );
}
