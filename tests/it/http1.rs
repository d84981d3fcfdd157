//! HTTP/1.1 connection handling: keep-alive, pipelining, Connection: close, HTTP/1.0, methods,
//! status codes for malformed or oversized requests, request bodies (lingering close), timeouts,
//! max_connections, pipelining depth, and graceful shutdown on SIGTERM.

use crate::support::*;
use std::time::{Duration, Instant};

fn setup() -> (Store, Server, Vec<u8>, Vec<u8>) {
    let store = Store::new();
    let a = gen_bytes(11, 5000);
    let b = gen_bytes(12, 70_000);
    store.write("a.bin", &a);
    store.write("dir/sub/b.ts", &b);
    store.import();
    let server = store.serve();
    (store, server, a, b)
}

/// Bound for "the server closes": generous, never an exact timing.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

#[track_caller]
fn assert_closed(c: &mut Conn) {
    let (closed, extra) = c.wait_closed(CLOSE_BOUND);
    assert!(
        closed,
        "server did not close the connection within {CLOSE_BOUND:?} (got {} more bytes: {:?})",
        extra.len(),
        String::from_utf8_lossy(&extra[..extra.len().min(200)])
    );
    assert!(
        extra.is_empty(),
        "unexpected bytes before close: {:?}",
        String::from_utf8_lossy(&extra[..extra.len().min(200)])
    );
}

#[test]
fn get_and_head_headers() {
    let (_s, server, a, b) = setup();
    let r = server.get("/a.bin", &[]);
    assert_status(&r, 200);
    assert_object_headers(&r);
    assert_eq!(r.must("content-type"), "application/octet-stream");
    assert_eq!(r.content_length(), Some(a.len() as u64));
    assert_bytes_eq(&r.body, &a, "GET /a.bin");
    let r = server.get("/dir/sub/b.ts", &[]);
    assert_eq!(r.must("content-type"), "video/mp2t");
    assert_bytes_eq(&r.body, &b, "GET /dir/sub/b.ts");
    let h = server.head("/dir/sub/b.ts", &[]);
    assert_status(&h, 200);
    assert_object_headers(&h);
    assert_eq!(h.content_length(), Some(b.len() as u64));
    assert_eq!(h.must("etag"), r.must("etag"));
    assert_eq!(h.must("content-type"), "video/mp2t");
}

#[test]
fn content_types_by_extension() {
    let store = Store::new();
    let table = [
        ("x.mp4", "video/mp4"),
        ("x.m4s", "video/iso.segment"),
        ("x.ts", "video/mp2t"),
        ("x.m3u8", "application/vnd.apple.mpegurl"),
        ("x.mpd", "application/dash+xml"),
        ("x.webm", "video/webm"),
        ("x.m4a", "audio/mp4"),
        ("x.vtt", "text/vtt"),
        ("x.mkv", "video/x-matroska"),
        ("x.bin", "application/octet-stream"),
        ("noext", "application/octet-stream"),
    ];
    for (i, (k, _)) in table.iter().enumerate() {
        store.write(k, &gen_bytes(i as u64, 10));
    }
    store.import();
    let server = store.serve();
    for (k, ct) in table {
        let r = server.get(&format!("/{k}"), &[]);
        assert_status(&r, 200);
        assert_eq!(r.must("content-type"), ct, "Content-Type of {k}");
        let r = server.get(&format!("/{k}"), &["Range: bytes=0-1"]);
        assert_status(&r, 206);
        assert_eq!(r.must("content-type"), ct, "Content-Type of a 206 of {k}");
    }
}

#[test]
fn many_objects_across_disks_are_byte_exact() {
    let store = Store::new();
    let mut files = Vec::new();
    for i in 0..40u64 {
        let key = format!("set/obj{i:02}.m4s");
        let data = gen_bytes(100 + i, (i as usize * 7919) % 50_000 + 1);
        store.write(&key, &data);
        files.push((key, data));
    }
    store.import();
    let server = store.serve();
    let mut c = server.connect();
    for (key, data) in &files {
        c.send(&request_bytes("GET", &format!("/{key}"), &[], false));
        let r = c.read_response(false);
        assert_status(&r, 200);
        assert_bytes_eq(&r.body, data, key);
    }
}

#[test]
fn keep_alive_by_default() {
    let (_s, server, a, b) = setup();
    let mut c = server.connect();
    for _ in 0..3 {
        c.send(&request_bytes("GET", "/a.bin", &[], false));
        let r = c.read_response(false);
        assert_status(&r, 200);
        assert!(
            !r.closes(),
            "HTTP/1.1 default is keep-alive: {}",
            r.describe()
        );
        assert_bytes_eq(&r.body, &a, "a.bin");
        c.send(&request_bytes(
            "GET",
            "/dir/sub/b.ts",
            &["Range: bytes=10-20"],
            false,
        ));
        let r = c.read_response(false);
        assert_status(&r, 206);
        assert_bytes_eq(&r.body, &b[10..=20], "b.ts range");
    }
    assert!(
        c.stays_silent(Duration::from_millis(200)),
        "no unsolicited bytes"
    );
}

#[test]
fn pipelined_requests_answered_in_order() {
    let (_s, server, a, b) = setup();
    let mut c = server.connect();
    let mut req = Vec::new();
    req.extend(request_bytes("GET", "/dir/sub/b.ts", &[], false));
    req.extend(request_bytes("HEAD", "/a.bin", &[], false));
    req.extend(request_bytes("GET", "/missing", &[], false));
    req.extend(request_bytes("GET", "/a.bin", &["Range: bytes=-7"], false));
    req.extend(request_bytes("POST", "/a.bin", &[], false));
    req.extend(request_bytes("GET", "/a.bin", &[], true));
    c.send(&req);
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &b, "1st");
    let r = c.read_response(true);
    assert_status(&r, 200);
    assert_eq!(r.content_length(), Some(a.len() as u64));
    let r = c.read_response(false);
    assert_status(&r, 404);
    let r = c.read_response(false);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &a[a.len() - 7..], "4th");
    let r = c.read_response(false);
    assert_status(&r, 405);
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &a, "6th");
    assert!(r.closes());
    assert_closed(&mut c);
}

#[test]
fn pipelined_requests_split_across_writes() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    let mut req = request_bytes("GET", "/a.bin", &["Range: bytes=0-9"], false);
    req.extend(request_bytes(
        "GET",
        "/a.bin",
        &["Range: bytes=10-19"],
        false,
    ));
    // Split in the middle of the second request head.
    let cut = req.len() - 9;
    c.send(&req[..cut]);
    let r = c.read_response(false);
    assert_bytes_eq(&r.body, &a[0..10], "first");
    c.send(&req[cut..]);
    let r = c.read_response(false);
    assert_bytes_eq(&r.body, &a[10..20], "second");
}

#[test]
fn connection_close_is_honoured() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/a.bin", &[], true));
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert!(
        r.closes(),
        "answer must carry Connection: close: {}",
        r.describe()
    );
    assert_bytes_eq(&r.body, &a, "body");
    assert_closed(&mut c);
}

#[test]
fn http10_closes_by_default() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.0\r\n\r\n");
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &a, "body");
    assert_closed(&mut c);
}

#[test]
fn http10_keep_alive() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &a, "1st");
    assert!(
        r.content_length().is_some(),
        "a kept-alive HTTP/1.0 answer needs Content-Length"
    );
    c.send(b"GET /a.bin HTTP/1.0\r\nConnection: keep-alive\r\nRange: bytes=1-2\r\n\r\n");
    let r = c.read_response(false);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &a[1..3], "2nd");
    c.send(b"GET /a.bin HTTP/1.0\r\n\r\n");
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_closed(&mut c);
}

#[test]
fn disallowed_methods_get_405_with_allow() {
    let (_s, server, _a, _b) = setup();
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"] {
        let r = server.request(m, "/a.bin", &[]);
        assert_eq!(r.status, 405, "{m}: {}", r.describe());
        let allow = r.must("allow");
        let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
        methods.sort_unstable();
        assert_eq!(methods, ["GET", "HEAD"], "{m}: Allow: {allow}");
    }
    // On a missing object too: the method is not allowed anywhere.
    let r = server.request("DELETE", "/missing", &[]);
    assert_status(&r, 405);
}

#[test]
fn unknown_method_is_501() {
    let (_s, server, _a, _b) = setup();
    for m in ["BREW", "PROPFIND", "FOO"] {
        let r = server.request(m, "/a.bin", &[]);
        assert_eq!(r.status, 501, "{m}: {}", r.describe());
    }
}

#[test]
fn methods_are_case_sensitive() {
    // RFC 9110 §9.1: the method token is case-sensitive; `get` is not GET.
    let (_s, server, _a, _b) = setup();
    let r = server.request("get", "/a.bin", &[]);
    assert_eq!(r.status, 501, "{}", r.describe());
}

#[test]
fn missing_object_is_404() {
    let (_s, server, _a, _b) = setup();
    assert_status(&server.get("/nope.mp4", &[]), 404);
    assert_status(&server.get("/dir/sub", &[]), 404);
    assert_status(&server.get("/dir", &[]), 404);
    assert_status(&server.head("/nope.mp4", &[]), 404);
    let r = server.get("/", &[]);
    assert!(
        r.status == 404 || r.status == 400,
        "GET /: {}",
        r.describe()
    );
}

#[test]
fn query_string_is_ignored() {
    let (_s, server, a, _b) = setup();
    let r = server.get("/a.bin?token=abc&x=1", &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &a, "body");
    let r = server.get("/dir/sub/b.ts?", &["Range: bytes=0-0"]);
    assert_status(&r, 206);
}

#[test]
fn absolute_form_target() {
    let (_s, server, a, _b) = setup();
    let r = server.get("http://eddy.test/a.bin", &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &a, "body");
    let r = server.get("http://eddy.test/missing", &[]);
    assert_status(&r, 404);
}

#[test]
fn no_host_is_400() {
    let (_s, server, _a, _b) = setup();
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.1\r\n\r\n");
    let r = c.read_response(false);
    assert_status(&r, 400);
}

#[test]
fn two_hosts_is_400() {
    let (_s, server, _a, _b) = setup();
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    let r = c.read_response(false);
    assert_status(&r, 400);
}

#[test]
fn unsupported_version_is_505() {
    let (_s, server, _a, _b) = setup();
    for v in ["HTTP/2.0", "HTTP/3.0"] {
        let mut c = server.connect();
        c.send(format!("GET /a.bin {v}\r\nHost: x\r\n\r\n").as_bytes());
        let r = c.read_response(false);
        assert_eq!(r.status, 505, "{v}: {}", r.describe());
    }
}

#[test]
fn malformed_header_is_400_and_close() {
    let (_s, server, _a, _b) = setup();
    for bad in [
        &b"GET /a.bin HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n"[..],
        &b"GET /a.bin HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n"[..],
        &b"GET /a.bin HTTP/1.1\r\nHost : x\r\n\r\n"[..],
    ] {
        let mut c = server.connect();
        c.send(bad);
        let r = c.read_response(false);
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            r.describe()
        );
        assert_closed(&mut c);
    }
}

#[test]
fn malformed_request_line_is_400() {
    let (_s, server, _a, _b) = setup();
    for bad in [
        &b"GET /a.bin HTTP/1.1 extra\r\nHost: x\r\n\r\n"[..],
        &b"\x01\x02\x03 / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"GET /a.bin http/1.1\r\nHost: x\r\n\r\n"[..],
    ] {
        let mut c = server.connect();
        c.send(bad);
        let r = c.read_response(false);
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            r.describe()
        );
        assert_closed(&mut c);
    }
}

#[test]
fn cl_and_te_together_is_400_and_close() {
    let (_s, server, _a, _b) = setup();
    let mut c = server.connect();
    c.send(
        b"GET /a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    let r = c.read_response(false);
    assert_status(&r, 400);
    assert_closed(&mut c);
}

#[test]
fn invalid_content_length_is_400_and_close() {
    let (_s, server, _a, _b) = setup();
    for cl in ["abc", "-1", "1, 2", "99999999999999999999999"] {
        let mut c = server.connect();
        c.send(
            format!("GET /a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\n").as_bytes(),
        );
        let r = c.read_response(false);
        assert_eq!(r.status, 400, "Content-Length: {cl}: {}", r.describe());
        assert_closed(&mut c);
    }
}

#[test]
fn head_too_big_is_431() {
    let (_s, server, _a, _b) = setup();
    let mut c = server.connect();
    let big = "v".repeat(20_000);
    // The server may answer before reading everything: ignore write errors after the answer.
    let _ =
        c.try_send(format!("GET /a.bin HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let r = c.read_response(false);
    assert_status(&r, 431);
}

#[test]
fn too_many_headers_is_431() {
    let (_s, server, _a, _b) = setup();
    let mut c = server.connect();
    let mut req = String::from("GET /a.bin HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        req.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    req.push_str("\r\n");
    let _ = c.try_send(req.as_bytes());
    let r = c.read_response(false);
    assert_status(&r, 431);
}

#[test]
fn configured_head_limits() {
    let store = Store::new();
    store.write("a.bin", b"abc");
    store.import();
    let server = store
        .serve_with("[limits]\nmax_head_bytes = 4096\nmax_headers = 8\nmax_target_bytes = 256\n");
    // Exactly 8 headers (Host, Connection + 6): fine.
    let six = ["X-A: 1", "X-B: 2", "X-C: 3", "X-D: 4", "X-E: 5", "X-F: 6"];
    let r = server.get("/a.bin", &six);
    assert_status(&r, 200);
    // 9 headers: over max_headers.
    let mut seven = six.to_vec();
    seven.push("X-G: 7");
    let r = server.get("/a.bin", &seven);
    assert_status(&r, 431);
    // A head over 4096 bytes.
    let pad = "p".repeat(4100);
    let r = server.get("/a.bin", &[&format!("X-Pad: {pad}")]);
    assert_status(&r, 431);
    // A target of exactly 256 bytes is fine (404: no such key), 257 is too long.
    let t256 = format!("/a.bin?{}", "q".repeat(256 - 7));
    assert_eq!(t256.len(), 256);
    assert_status(&server.get(&t256, &[]), 200);
    let t257 = format!("{t256}q");
    assert_status(&server.get(&t257, &[]), 414);
}

#[test]
fn smallest_allowed_max_head_bytes_works() {
    // check-config accepts 1024 as the minimum; the server must then serve with it.
    let store = Store::new();
    store.write("a.bin", b"abc");
    store.import();
    let server = store.serve_with("[limits]\nmax_head_bytes = 1024\nmax_target_bytes = 256\n");
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/a.bin", &[], true));
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("no answer with max_head_bytes = 1024: {e}"));
    assert_status(&r, 200);
    assert_eq!(r.body, b"abc");
    let pad = "p".repeat(1100);
    let r = server.get("/a.bin", &[&format!("X-Pad: {pad}")]);
    assert_status(&r, 431);
}

#[test]
fn target_too_long_is_414() {
    let (_s, server, _a, _b) = setup();
    let target = format!("/{}", "a".repeat(9000));
    let r = server.get(&target, &[]);
    assert_status(&r, 414);
}

#[test]
fn post_with_body_gets_405_and_full_answer() {
    let (_s, server, _a, _b) = setup();
    let body = gen_bytes(5, 200_000);
    let mut c = server.connect();
    let mut req = format!(
        "POST /a.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    // Write from another thread so a server that reads nothing cannot deadlock the test.
    let mut w = c.stream.try_clone().expect("clone stream");
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut w, &req));
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("client could not read the answer (reset?): {e}"));
    assert_status(&r, 405);
    assert_eq!(r.must("allow").replace(' ', ""), "GET,HEAD");
    assert!(
        r.closes(),
        "a request with a body ends with Connection: close"
    );
    // Read to EOF: must be a clean close, not a reset.
    let rest = c
        .read_to_eof()
        .expect("clean close after the answer, not a reset");
    assert!(rest.is_empty(), "bytes after the 405: {}", rest.len());
    let _ = writer.join();
}

#[test]
fn put_with_chunked_body_gets_405() {
    let (_s, server, _a, _b) = setup();
    let mut c = server.connect();
    c.send(b"PUT /a.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("no answer: {e}"));
    assert_status(&r, 405);
    assert!(r.closes());
    assert_closed(&mut c);
}

#[test]
fn get_with_body_still_answered_then_closed() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &a, "body");
    assert!(r.closes());
    assert_closed(&mut c);
}

#[test]
fn idle_connection_is_closed() {
    let store = Store::new();
    let a = gen_bytes(1, 100);
    store.write("a.bin", &a);
    store.import();
    let server =
        store.serve_with("[limits]\nidle_timeout = \"1s\"\nheader_read_timeout = \"1s\"\n");
    // Sends nothing at all.
    let mut silent = server.connect();
    // One request, then idle.
    let mut idle = server.connect();
    idle.send(&request_bytes("GET", "/a.bin", &[], false));
    let r = idle.read_response(false);
    assert_bytes_eq(&r.body, &a, "body");
    let t = Instant::now();
    let (closed, _) = silent.wait_closed(CLOSE_BOUND);
    assert!(closed, "a connection that sends nothing is closed");
    let (closed, extra) = idle.wait_closed(CLOSE_BOUND.saturating_sub(t.elapsed()));
    assert!(closed, "an idle keep-alive connection is closed");
    assert!(
        extra.is_empty() || extra.starts_with(b"HTTP/1.1 408"),
        "unexpected bytes: {:?}",
        String::from_utf8_lossy(&extra)
    );
}

#[test]
fn slowloris_head_is_cut_by_header_read_timeout() {
    let store = Store::new();
    store.write("a.bin", b"x");
    store.import();
    let server =
        store.serve_with("[limits]\nidle_timeout = \"30s\"\nheader_read_timeout = \"1s\"\n");
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.1\r\nHost: x\r\n");
    // Trickle one header byte every 100 ms: the deadline is from the first byte, not per read.
    let deadline = Instant::now() + CLOSE_BOUND;
    let mut closed = false;
    while Instant::now() < deadline {
        if c.try_send(b"X").is_err() {
            closed = true;
            break;
        }
        let (eof, extra) = c.wait_closed(Duration::from_millis(100));
        if eof {
            closed = true;
            break;
        }
        assert!(
            extra.is_empty()
                || extra.starts_with(b"HTTP/1.1 408")
                || extra.starts_with(b"HTTP/1.1 4"),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&extra)
        );
        if !extra.is_empty() {
            closed = c.wait_closed(CLOSE_BOUND).0;
            break;
        }
    }
    assert!(
        closed,
        "a trickled request head was not cut within {CLOSE_BOUND:?}"
    );
}

#[test]
fn max_connections_gives_503() {
    let store = Store::new();
    let a = gen_bytes(1, 100);
    store.write("a.bin", &a);
    store.import();
    let server = store.serve_with("[limits]\nmax_connections = 2\n");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = server.connect();
        c.send(&request_bytes("GET", "/a.bin", &[], false));
        let r = c.read_response(false);
        assert_status(&r, 200);
        held.push(c);
    }
    let mut c = server.connect();
    let _ = c.try_send(&request_bytes("GET", "/a.bin", &[], false));
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("expected a 503 on the third connection: {e}"));
    assert_status(&r, 503);
    assert!(r.closes(), "503 carries Connection: close");
    // The held connections still work.
    held[0].send(&request_bytes("GET", "/a.bin", &[], false));
    assert_status(&held[0].read_response(false), 200);
    // Once one closes, a new connection is served again (bounded retry).
    drop(held.pop());
    let deadline = Instant::now() + CLOSE_BOUND;
    loop {
        let mut c = server.connect();
        let _ = c.try_send(&request_bytes("GET", "/a.bin", &[], true));
        if let Ok(r) = c.try_read_response(false) {
            if r.status == 200 {
                assert_bytes_eq(&r.body, &a, "body");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "a freed connection slot was never reused"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pipeline_depth_limit_closes() {
    let store = Store::new();
    let a = gen_bytes(1, 100);
    store.write("a.bin", &a);
    store.import();
    let server = store.serve_with("[limits]\nmax_pipeline_depth = 4\n");
    let mut c = server.connect();
    let mut req = Vec::new();
    for i in 0..10 {
        req.extend(request_bytes(
            "GET",
            "/a.bin",
            &[&format!("Range: bytes={i}-{i}")],
            false,
        ));
    }
    c.send(&req);
    let mut answered = 0;
    while let Ok(r) = c.try_read_response(false) {
        assert_status(&r, 206);
        assert_eq!(r.body, [a[answered]], "answer {answered} in order");
        answered += 1;
        if answered == 10 {
            break;
        }
    }
    assert!(answered >= 1, "at least one answer");
    assert!(
        answered < 10,
        "max_pipeline_depth = 4 but all 10 pipelined requests were answered"
    );
    assert_closed(&mut c);
}

/// A 2 MiB object, and a client whose receive buffer is 64 KiB and which reads 64 KiB every 2 ms:
/// the server's answers wait in its send buffer while the client reads.
const SLOW_RCVBUF: usize = 64 * 1024;
const SLOW_PAUSE: Duration = Duration::from_millis(2);

fn big_object() -> (Store, Vec<u8>) {
    let store = Store::new();
    let big = gen_bytes(31, 2 << 20);
    store.write("big.bin", &big);
    store.import();
    (store, big)
}

/// Every answer that arrived must be whole and exact, and the stream must end with a FIN.
#[track_caller]
fn assert_whole_answers(
    got: &[u8],
    end: &Result<(), std::io::Error>,
    big: &[u8],
    want: usize,
) -> Vec<Response> {
    let (answers, rest) = split_responses(got);
    assert!(
        end.is_ok(),
        "the connection ended with {end:?} after {} bytes ({} whole answers, {rest} bytes of a cut \
         one), not with a FIN",
        got.len(),
        answers.len()
    );
    assert_eq!(
        rest,
        0,
        "{rest} bytes of a cut answer after {} whole ones",
        answers.len()
    );
    assert_eq!(answers.len(), want, "whole answers");
    for (i, r) in answers.iter().enumerate() {
        assert_status(r, 200);
        assert_bytes_eq(&r.body, big, &format!("answer {i}"));
    }
    answers
}

#[test]
fn pipelining_past_the_depth_limit_delivers_every_started_answer_then_a_fin() {
    let (_store, big) = big_object();
    let server = _store.serve();
    let mut c = Conn::connect_with_rcvbuf(server.addr, SLOW_RCVBUF);
    // 50 requests in one write: more than one 2 KiB read, so that some are still in the
    // kernel's receive buffer when the 16th answer (the default depth) closes the connection.
    let pad = format!("X-Pad: {}", "p".repeat(40));
    let one = request_bytes("GET", "/big.bin", &[&pad], false);
    c.send(&one.repeat(50));
    let (got, end) = c.read_slowly(SLOW_RCVBUF, SLOW_PAUSE);
    let answers = assert_whole_answers(&got, &end, &big, 16);
    assert!(
        answers[15].closes(),
        "the last answer says Connection: close"
    );
    assert!(!answers[14].closes(), "only the last answer closes");
}

#[test]
fn requests_after_connection_close_do_not_cut_its_answer() {
    let (_store, big) = big_object();
    let server = _store.serve();
    let mut c = Conn::connect_with_rcvbuf(server.addr, SLOW_RCVBUF);
    // The requests after it are more than the first 2 KiB read takes, so that some are still in
    // the kernel's receive buffer when the answer ends.
    let mut req = request_bytes("GET", "/big.bin", &[], true);
    let pad = format!("X-Pad: {}", "p".repeat(40));
    for _ in 0..50 {
        req.extend(request_bytes("GET", "/big.bin", &[&pad], false));
    }
    c.send(&req);
    let (got, end) = c.read_slowly(SLOW_RCVBUF, SLOW_PAUSE);
    let answers = assert_whole_answers(&got, &end, &big, 1);
    assert!(answers[0].closes());
}

#[test]
fn default_pipeline_depth_answers_ten() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    let mut req = Vec::new();
    for i in 0..10 {
        req.extend(request_bytes(
            "GET",
            "/a.bin",
            &[&format!("Range: bytes={i}-{i}")],
            false,
        ));
    }
    c.send(&req);
    for (i, byte) in a.iter().enumerate().take(10) {
        let r = c.read_response(false);
        assert_status(&r, 206);
        assert_eq!(r.body, [*byte], "answer {i}");
    }
}

#[test]
fn sigterm_drains_in_flight_response_and_exits_0() {
    let store = Store::new();
    let big = gen_bytes(21, 32 << 20);
    store.write("big.mp4", &big);
    store.import();
    let mut server = store.serve_with("[limits]\ndrain_timeout = \"30s\"\n");
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/big.mp4", &[], false));
    let h = c.read_head();
    assert_eq!(h.status, 200);
    // Read a little, so the response is certainly in flight, then ask the server to stop.
    let mut got = c.read_exact_body(1 << 16);
    server.signal("TERM");
    // New connections are refused (or closed unanswered) once the listener is shut.
    let deadline = Instant::now() + CLOSE_BOUND;
    loop {
        match Conn::try_connect(server.addr) {
            Err(_) => break,
            Ok(mut nc) => {
                let _ = nc.try_send(&request_bytes(
                    "GET",
                    "/big.mp4",
                    &["Range: bytes=0-0"],
                    true,
                ));
                if nc.try_read_response(false).is_err() {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "listener still answering after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    got.extend(c.read_exact_body(big.len() as u64 - got.len() as u64));
    assert_bytes_eq(&got, &big, "in-flight body across SIGTERM");
    let st = server
        .wait_exit(Duration::from_secs(20))
        .expect("server exits after draining");
    assert_eq!(st.code(), Some(0), "exit status after SIGTERM: {st:?}");
}

#[test]
fn sigterm_with_idle_connection_exits_0() {
    let store = Store::new();
    store.write("a.bin", b"abc");
    store.import();
    let mut server = store.serve_with("[limits]\ndrain_timeout = \"5s\"\n");
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/a.bin", &[], false));
    assert_status(&c.read_response(false), 200);
    server.signal("INT");
    let st = server
        .wait_exit(Duration::from_secs(15))
        .expect("server exits after SIGINT with an idle keep-alive connection");
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[test]
fn two_different_content_lengths_is_400_and_close() {
    let (_s, server, _a, _b) = setup();
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    let r = c.read_response(false);
    assert_status(&r, 400);
    assert_closed(&mut c);
}

#[test]
fn obs_fold_is_rejected_or_unfolded() {
    // RFC 9112 §5.2: reject with 400, or replace the fold with SP; never mis-frame.
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\nConnection: close\r\n\r\n");
    let r = c.read_response(false);
    match r.status {
        400 => {}
        200 => assert_bytes_eq(&r.body, &a, "body"),
        _ => panic!("obs-fold: {}", r.describe()),
    }
}

#[test]
fn connection_survives_404_and_416() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/missing", &[], false));
    assert_status(&c.read_response(false), 404);
    c.send(&request_bytes(
        "GET",
        "/a.bin",
        &["Range: bytes=99999-"],
        false,
    ));
    let r = c.read_response(false);
    assert_status(&r, 416);
    c.send(&request_bytes(
        "GET",
        "/a.bin",
        &["Range: bytes=0-4"],
        false,
    ));
    let r = c.read_response(false);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &a[..5], "after 404 and 416");
    c.send(&request_bytes("HEAD", "/missing", &[], false));
    assert_status(&c.read_response(true), 404);
    c.send(&request_bytes("GET", "/a.bin", &[], false));
    assert_bytes_eq(&c.read_response(false).body, &a, "after HEAD 404");
}

#[test]
fn requests_after_connection_close_are_not_answered() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    let mut req = request_bytes("GET", "/a.bin", &[], true);
    req.extend(request_bytes("GET", "/a.bin", &["Range: bytes=0-0"], false));
    c.send(&req);
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &a, "first");
    assert!(r.closes());
    assert_closed(&mut c);
}

#[test]
fn connection_header_token_list() {
    let (_s, server, _a, _b) = setup();
    for v in ["keep-alive, close", "CLOSE", "Upgrade, Close"] {
        let mut c = server.connect();
        c.send(format!("GET /a.bin HTTP/1.1\r\nHost: x\r\nConnection: {v}\r\n\r\n").as_bytes());
        let r = c.read_response(false);
        assert_status(&r, 200);
        assert!(r.closes(), "Connection: {v}: {}", r.describe());
        assert_closed(&mut c);
    }
}

#[test]
fn http10_keep_alive_is_case_insensitive() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    c.send(b"GET /a.bin HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    let r = c.read_response(false);
    assert_bytes_eq(&r.body, &a, "1st");
    c.send(b"GET /a.bin HTTP/1.0\r\nConnection: close\r\n\r\n");
    let r = c.read_response(false);
    assert_bytes_eq(&r.body, &a, "2nd");
    assert_closed(&mut c);
}

#[test]
fn body_over_discard_limit_still_gets_the_answer() {
    let store = Store::new();
    store.write("a.bin", b"abc");
    store.import();
    let server = store.serve_with("[limits]\nmax_discard_body_bytes = 1024\n");
    let mut c = server.connect();
    let body = gen_bytes(8, 64 * 1024);
    let mut req = format!(
        "PUT /a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let mut w = c.stream.try_clone().expect("clone");
    // The server stops reading after 1 KiB: our write may fail, that is expected.
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut w, &req));
    let r = c
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("the 405 must reach the client: {e}"));
    assert_status(&r, 405);
    assert!(r.closes());
    let (closed, _) = c.wait_closed(CLOSE_BOUND);
    assert!(closed, "connection closed after the discard limit");
    let _ = writer.join();
}

#[test]
fn stalled_reader_is_cut_by_send_timeout() {
    let store = Store::new();
    let big = gen_bytes(9, 32 << 20);
    store.write("big.bin", &big);
    store.import();
    let server = store.serve_with("[limits]\nsend_timeout = \"1s\"\n");
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/big.bin", &[], false));
    let h = c.read_head();
    assert_eq!(h.status, 200);
    // Read nothing for a while: the server sees no write progress and gives up. (This sleep is the
    // stall under test, not a readiness wait.)
    std::thread::sleep(Duration::from_secs(3));
    // Now drain: we must hit EOF (or a reset) before the full 32 MiB.
    let mut got = c.buffered().len() as u64;
    let deadline = Instant::now() + CLOSE_BOUND;
    let mut tmp = vec![0u8; 1 << 20];
    let ended = loop {
        match std::io::Read::read(&mut c.stream, &mut tmp) {
            Ok(0) => break true,
            Ok(n) => got += n as u64,
            Err(_) => break true,
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(
        ended,
        "connection still open {CLOSE_BOUND:?} after the stall"
    );
    assert!(
        got < big.len() as u64,
        "the whole body arrived although the reader stalled past send_timeout"
    );
}

#[test]
fn concurrent_clients_are_byte_exact() {
    let store = Store::new();
    let data = gen_bytes(10, 1 << 20);
    store.write("c.mp4", &data);
    store.import();
    let server = store.serve();
    let addr = server.addr;
    let data = std::sync::Arc::new(data);
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let data = data.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(addr);
                let rnd = gen_bytes(1000 + t, 20 * 8);
                for i in 0..20 {
                    let x = u64::from_le_bytes(rnd[i * 8..i * 8 + 8].try_into().expect("8"));
                    let a = (x % data.len() as u64) as usize;
                    let b = (a + ((x >> 40) % 200_000) as usize).min(data.len() - 1);
                    c.send(&request_bytes(
                        "GET",
                        "/c.mp4",
                        &[&format!("Range: bytes={a}-{b}")],
                        false,
                    ));
                    let r = c.read_response(false);
                    assert_status(&r, 206);
                    assert_bytes_eq(&r.body, &data[a..=b], &format!("thread {t} bytes={a}-{b}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn leading_empty_line_is_ignored() {
    // RFC 9112 §2.2: a server should ignore at least one empty line before the request-line.
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    c.send(b"\r\nGET /a.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &a, "body");
}

#[test]
fn content_length_zero_keeps_alive() {
    let (_s, server, a, _b) = setup();
    let mut c = server.connect();
    let mut req = b"GET /a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec();
    req.extend(request_bytes("GET", "/a.bin", &["Range: bytes=0-1"], true));
    c.send(&req);
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert!(!r.closes(), "an empty body is no body: {}", r.describe());
    assert_bytes_eq(&r.body, &a, "1st");
    let r = c.read_response(false);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &a[..2], "2nd");
}

/// Opens a connection and sends `raw`, retrying (bounded) while the server answers 503: a slot
/// freed by a client close is released asynchronously.
fn exchange_when_free(
    server: &Server,
    raw: &[u8],
    head_only_status: bool,
) -> (Conn, u16, Response) {
    let deadline = Instant::now() + CLOSE_BOUND;
    loop {
        let mut c = server.connect();
        let _ = c.try_send(raw);
        let got = if head_only_status {
            c.try_read_head().map(|h| Response {
                version: h.version,
                status: h.status,
                reason: h.reason,
                headers: h.headers,
                body: Vec::new(),
            })
        } else {
            c.try_read_response(false)
        };
        if let Ok(r) = got {
            if r.status != 503 {
                return (c, r.status, r);
            }
        }
        assert!(
            Instant::now() < deadline,
            "still 503 after {CLOSE_BOUND:?}: a connection slot leaked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connection_slots_are_released() {
    // max_connections = 2 and many connections that end in different ways, one after the other:
    // every ending must free its slot (the client closes its side each time).
    let store = Store::new();
    let a = gen_bytes(1, 100);
    let big = gen_bytes(2, 8 << 20);
    store.write("a.bin", &a);
    store.write("big.bin", &big);
    store.import();
    let server = store.serve_with("[limits]\nmax_connections = 2\n");
    for _round in 0..3 {
        // Connection: close.
        let (mut c, st, _) =
            exchange_when_free(&server, &request_bytes("GET", "/a.bin", &[], true), false);
        assert_eq!(st, 200);
        assert_closed(&mut c);
        drop(c);
        // Malformed: 400 and close.
        let (mut c, st, _) = exchange_when_free(
            &server,
            b"GET /a.bin HTTP/1.1\r\nHost: x\r\nBad\r\n\r\n",
            false,
        );
        assert_eq!(st, 400);
        assert_closed(&mut c);
        drop(c);
        // HTTP/1.0.
        let (mut c, st, _) = exchange_when_free(&server, b"GET /a.bin HTTP/1.0\r\n\r\n", false);
        assert_eq!(st, 200);
        assert_closed(&mut c);
        drop(c);
        // A 405 with a body.
        let (mut c, st, _) = exchange_when_free(
            &server,
            b"POST /a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            false,
        );
        assert_eq!(st, 405);
        assert_closed(&mut c);
        drop(c);
        // The client goes away in the middle of a large body.
        let (c, st, _) =
            exchange_when_free(&server, &request_bytes("GET", "/big.bin", &[], false), true);
        assert_eq!(st, 200);
        drop(c);
        // The client goes away while idle on a keep-alive connection.
        let (c, st, _) =
            exchange_when_free(&server, &request_bytes("GET", "/a.bin", &[], false), false);
        assert_eq!(st, 200);
        drop(c);
    }
    // Both slots come back and can be held at the same time.
    let (mut c1, s1, _) =
        exchange_when_free(&server, &request_bytes("GET", "/a.bin", &[], false), false);
    let (mut c2, s2, _) =
        exchange_when_free(&server, &request_bytes("GET", "/a.bin", &[], false), false);
    assert_eq!((s1, s2), (200, 200));
    c1.send(&request_bytes("GET", "/a.bin", &[], false));
    assert_bytes_eq(&c1.read_response(false).body, &a, "c1");
    c2.send(&request_bytes("GET", "/a.bin", &[], false));
    assert_bytes_eq(&c2.read_response(false).body, &a, "c2");
}

#[test]
fn drain_timeout_bounds_shutdown() {
    // A client that never reads cannot hold the process past drain_timeout.
    let store = Store::new();
    let big = gen_bytes(3, 32 << 20);
    store.write("big.bin", &big);
    store.import();
    let mut server = store.serve_with("[limits]\ndrain_timeout = \"1s\"\nsend_timeout = \"60s\"\n");
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/big.bin", &[], false));
    assert_eq!(c.read_head().status, 200);
    server.signal("TERM");
    let st = server
        .wait_exit(Duration::from_secs(15))
        .expect("server exits once drain_timeout has passed, with a stalled client");
    assert_eq!(st.code(), Some(0), "{st:?}");
    drop(c);
}

#[test]
fn keep_alive_wait_uses_idle_timeout_not_header_timeout() {
    let store = Store::new();
    let a = gen_bytes(1, 100);
    store.write("a.bin", &a);
    store.import();
    let server =
        store.serve_with("[limits]\nidle_timeout = \"30s\"\nheader_read_timeout = \"1s\"\n");
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/a.bin", &[], false));
    assert_bytes_eq(&c.read_response(false).body, &a, "1st");
    // Idle for longer than header_read_timeout but far less than idle_timeout: still open.
    assert!(
        c.stays_silent(Duration::from_millis(2500)),
        "a keep-alive connection was closed after ~header_read_timeout instead of idle_timeout"
    );
    c.send(&request_bytes("GET", "/a.bin", &[], false));
    assert_bytes_eq(&c.read_response(false).body, &a, "2nd");
}
