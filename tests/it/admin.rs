//! The admin listener: `/metrics`, `/healthz` and the status page on their own port, never on the
//! serving one; `admin.listen` and `--admin-listen` (off, bad values, a taken port).

use crate::support::*;
use std::time::{Duration, Instant};

/// Every metric family `/metrics` declares, present from the start (the
/// certificate's expiry and the fill's and reports' families only with those on).
const FAMILIES: [&str; 21] = [
    "eddy_build_info",
    "eddy_start_time_seconds",
    "eddy_requests_total",
    "eddy_response_body_bytes_total",
    "eddy_token_refusals_total",
    "eddy_connections_open",
    "eddy_connections_total",
    "eddy_connections_rejected_total",
    "eddy_misses_total",
    "eddy_tls_handshakes_total",
    "eddy_tls_handshake_failures_total",
    "eddy_tls_cert_reloads_total",
    "eddy_ktls_info",
    "eddy_disk_wait_windows_total",
    "eddy_memory_trims_total",
    "eddy_request_duration_seconds",
    "eddy_range_requests_total",
    "eddy_store_objects",
    "eddy_store_bytes",
    "eddy_disk_free_bytes",
    "eddy_disk_state",
];

/// How long a test polls for something the server does asynchronously.
const POLL_BOUND: Duration = Duration::from_secs(10);

fn s(x: &str) -> String {
    x.to_string()
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A store of three objects spread over the three disks, served with an admin listener.
fn served() -> (Store, Server) {
    let store = Store::new();
    for i in 0..12u64 {
        store.write(&format!("t/{i}.m4s"), &gen_bytes(i, 1000 + i as usize));
    }
    store.import();
    let server = store.serve();
    (store, server)
}

#[test]
fn metrics_declares_every_family() {
    let (store, server) = served();
    let r = server.admin_request("GET", "/metrics");
    assert_status(&r, 200);
    assert!(
        r.must("content-type")
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        r.describe()
    );
    let text = body(&r);
    for f in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {f} ")),
            "no family {f} in:\n{text}"
        );
        assert!(text.contains(&format!("# HELP {f} ")), "no HELP for {f}");
    }
    assert_eq!(
        must_sample(
            &text,
            &format!(
                "eddy_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    assert_eq!(
        must_sample(&text, "eddy_token_refusals_total{reason=\"tampered\"}"),
        0.0
    );
    // The store's figures, per disk root, add up to what was imported.
    let mut objects = 0.0;
    let mut bytes = 0.0;
    for d in &store.disks {
        let root = d.to_str().expect("utf-8");
        objects += must_sample(&text, &format!("eddy_store_objects{{disk=\"{root}\"}}"));
        bytes += must_sample(&text, &format!("eddy_store_bytes{{disk=\"{root}\"}}"));
    }
    assert_eq!(objects, 12.0);
    assert_eq!(bytes, (0..12).map(|i| 1000.0 + i as f64).sum::<f64>());
}

#[test]
fn connection_counters_move_with_real_requests() {
    let (_store, server) = served();
    let before = scrape(&server);
    assert_eq!(
        must_sample(&before, "eddy_connections_total{listener=\"plain\"}"),
        0.0,
        "admin connections are not serving connections"
    );
    for i in 0..3 {
        assert_status(&server.get(&format!("/t/{i}.m4s"), &[]), 200);
    }
    // A kept-alive connection is counted as open while it lives.
    let mut held = server.connect();
    held.send(&request_bytes("GET", "/t/5.m4s", &[], false));
    assert_status(&held.read_response(false), 200);
    let during = scrape(&server);
    assert_eq!(
        must_sample(&during, "eddy_connections_total{listener=\"plain\"}"),
        4.0
    );
    assert!(must_sample(&during, "eddy_connections_open{listener=\"plain\"}") >= 1.0);
    assert_eq!(
        must_sample(
            &during,
            "eddy_connections_rejected_total{listener=\"plain\"}"
        ),
        0.0
    );
    drop(held);
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        let text = scrape(&server);
        if must_sample(&text, "eddy_connections_open{listener=\"plain\"}") == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections_open never went back to 0:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rejected_connections_are_counted() {
    let store = Store::new();
    store.write("a.bin", b"abc");
    store.import();
    let server = store.serve_with("[limits]\nmax_connections = 1\n");
    let mut held = server.connect();
    held.send(&request_bytes("GET", "/a.bin", &[], false));
    assert_status(&held.read_response(false), 200);
    let r = server.get("/a.bin", &[]);
    assert_status(&r, 503);
    let text = scrape(&server);
    assert_eq!(
        must_sample(&text, "eddy_connections_rejected_total{listener=\"plain\"}"),
        1.0
    );
    assert_eq!(
        must_sample(&text, "eddy_connections_total{listener=\"plain\"}"),
        1.0
    );
    drop(held);
}

#[test]
fn healthz_is_ok_then_draining_during_the_drain() {
    let store = Store::new();
    let big = gen_bytes(9, 32 << 20);
    store.write("big.mp4", &big);
    store.import();
    let mut server = store.serve_with("[limits]\ndrain_timeout = \"30s\"\n");
    let r = server.admin_request("GET", "/healthz");
    assert_status(&r, 200);
    assert_eq!(body(&r).trim(), "ok");
    assert_eq!(
        body(&server.admin_request("GET", "/readyz")).trim(),
        "ready"
    );
    assert_status(&server.admin_request("GET", "/livez"), 200);
    // A response in flight keeps the drain going while we ask.
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/big.mp4", &[], false));
    assert_eq!(c.read_head().status, 200);
    let mut got = c.read_exact_body(1 << 16);
    server.signal("TERM");
    let deadline = Instant::now() + POLL_BOUND;
    loop {
        let r = server.admin_request("GET", "/healthz");
        if r.status == 503 {
            assert_eq!(body(&r).trim(), "draining");
            // Readiness flips with it; liveness does not.
            let ready = server.admin_request("GET", "/readyz");
            assert_status(&ready, 503);
            assert_eq!(body(&ready).trim(), "draining");
            assert_status(&server.admin_request("GET", "/livez"), 200);
            break;
        }
        assert_status(&r, 200);
        assert!(Instant::now() < deadline, "/healthz never said draining");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Metrics still answer during the drain.
    assert!(scrape(&server).contains("eddy_connections_open{listener=\"plain\"} 1"));
    got.extend(c.read_exact_body(big.len() as u64 - got.len() as u64));
    assert_bytes_eq(&got, &big, "in-flight body across SIGTERM");
    let st = server
        .wait_exit(Duration::from_secs(20))
        .expect("server exits after draining");
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[test]
fn status_page_shows_version_and_disks() {
    let (store, server) = served();
    let r = server.admin_request("GET", "/");
    assert_status(&r, 200);
    assert_eq!(r.must("content-type"), "text/html; charset=utf-8");
    let page = body(&r);
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains(env!("CARGO_PKG_VERSION")), "{page}");
    for d in &store.disks {
        assert!(
            page.contains(d.to_str().expect("utf-8")),
            "disk {} missing:\n{page}",
            d.display()
        );
    }
    assert!(page.contains(&format!("http://{}", server.addr)), "{page}");
    assert!(page.contains("<strong>serving</strong>"), "{page}");
    assert!(!page.contains("<script"), "no JavaScript");
}

#[test]
fn unknown_paths_methods_and_head() {
    let (_store, server) = served();
    for path in ["/nope", "/metrics/", "/t/0.m4s", "/index.html"] {
        assert_status(&server.admin_request("GET", path), 404);
    }
    // A query does not change the route.
    assert_status(&server.admin_request("GET", "/healthz?verbose=1"), 200);
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = server.admin_request(method, "/metrics");
        assert_status(&r, 405);
        assert_eq!(r.must("allow"), "GET, HEAD", "{method}");
    }
    for path in ["/metrics", "/healthz", "/"] {
        let get = server.admin_request("GET", path);
        let head = server.admin_request("HEAD", path);
        assert_status(&head, 200);
        assert_eq!(
            head.must("content-type"),
            get.must("content-type"),
            "{path}"
        );
        assert!(head.content_length().is_some(), "{}", head.describe());
        assert!(head.body.is_empty());
    }
    // A HEAD answer carries no body: the next answer on the connection starts cleanly.
    let mut c = Conn::connect(server.admin_addr());
    c.send(&request_bytes("HEAD", "/metrics", &[], false));
    c.send(&request_bytes("GET", "/healthz", &[], true));
    assert_status(&c.read_response(true), 200);
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_eq!(body(&r).trim(), "ok");
}

#[test]
fn admin_routes_are_not_served_on_the_serving_port() {
    let (_store, server) = served();
    for path in ["/metrics", "/healthz"] {
        let r = server.get(path, &[]);
        assert_status(&r, 404);
        assert!(!body(&r).contains("eddy_"), "{path}: {}", body(&r));
    }
    let r = server.get("/", &[]);
    assert!(
        !body(&r).contains("<h1>eddy"),
        "status page on the serving port"
    );
    assert_ne!(server.admin_addr(), server.addr);
}

#[test]
fn admin_listen_off_disables_it() {
    let store = Store::new();
    store.write("a.bin", b"abc");
    store.import();
    let mut args = vec![
        s("serve"),
        s("--listen"),
        s("127.0.0.1:0"),
        s("--admin-listen"),
        s("off"),
    ];
    args.extend(store.disk_args());
    let server = Server::spawn(store.path(), &args, 1);
    assert_eq!(server.admin, None);
    assert_eq!(server.get("/a.bin", &[]).body, b"abc");
}

#[test]
fn admin_listen_from_the_config_file() {
    let store = Store::new();
    store.write("a.bin", b"abc");
    store.import();
    let p = store.config(
        "admin.toml",
        "[admin]\nlisten = \"127.0.0.1:0\"\n[serve]\nlisten = [\"127.0.0.1:0\"]\n",
    );
    let mut args = vec![s("serve"), s("--config"), p.to_str().expect("utf-8").into()];
    args.extend(store.disk_args());
    let server = Server::spawn_as_is(store.path(), &args, 1);
    let r = server.admin_request("GET", "/healthz");
    assert_status(&r, 200);
    // The flag replaces the file's value.
    let o = run_eddy(&[
        s("check-config"),
        s("--config"),
        p.to_str().expect("utf-8").into(),
        s("--disk"),
        s("/srv/d0"),
        s("--admin-listen"),
        s("off"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("admin.listen  off"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn bad_admin_listen_is_a_config_error() {
    let store = Store::new();
    let p = store.config(
        "bad.toml",
        "[admin]\nlisten = \"x\"\n[store]\ndisks = [\"/srv/d0\"]\n",
    );
    let o = run_eddy(&[
        s("check-config"),
        s("--config"),
        p.to_str().expect("utf-8").into(),
    ]);
    assert_eq!(o.status.code(), Some(64));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("admin.listen = \"x\": not an IP:PORT address"),
        "{e}"
    );

    // On serve, with the flag: refused before anything is bound.
    let mut args = vec![
        s("serve"),
        s("--listen"),
        s("127.0.0.1:0"),
        s("--admin-listen"),
        s("localhost:9180"),
    ];
    args.extend(store.disk_args());
    let o = run_eddy(&args);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("admin.listen = \"localhost:9180\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("eddy:"));

    // The same address as a serving listener.
    let mut args = vec![
        s("check-config"),
        s("--listen"),
        s("127.0.0.1:8080"),
        s("--admin-listen"),
        s("127.0.0.1:8080"),
    ];
    args.extend(store.disk_args());
    let o = run_eddy(&args);
    assert_eq!(o.status.code(), Some(64));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("admin.listen") && e.contains("serve.listen"),
        "{e}"
    );
}

#[test]
fn taken_admin_port_fails_start_up() {
    let store = Store::new();
    store.write("a.bin", b"abc");
    store.import();
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = blocker.local_addr().expect("addr");
    let mut args = vec![
        s("serve"),
        s("--listen"),
        s("127.0.0.1:0"),
        s("--admin-listen"),
        taken.to_string(),
    ];
    args.extend(store.disk_args());
    let o = run_eddy_within(&args, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(74), "{o:?}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&taken.to_string()),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn requests_bytes_and_token_refusals_are_counted() {
    let store = Store::new();
    store.write("t/a.m4s", &gen_bytes(1, 1000));
    store.import();
    let keys = "[[tokens.keys]]\nid = \"k1\"\nsecret_hex = \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n";
    let server = store.serve_with(&format!("[serve]\nrequire_tokens = true\n{keys}"));
    let config = store.config("sign.toml", keys);
    let query = token_sign(&config, &["--prefix", "/t/", "--ttl", "1h"]);

    assert_status(&server.get(&format!("/t/a.m4s?{query}"), &[]), 200);
    assert_status(
        &server.get(&format!("/t/a.m4s?{query}"), &["Range: bytes=0-99"]),
        206,
    );
    assert_status(&server.get(&format!("/t/none.m4s?{query}"), &[]), 404);
    assert_status(&server.get("/t/a.m4s", &[]), 403);
    assert_status(&server.get("/t/a.m4s?e=1&t=k1.x.y.z", &[]), 403);
    assert_status(&server.get(&format!("/u/a.m4s?{query}"), &[]), 403);

    let text = scrape(&server);
    let count = |status: &str| {
        must_sample(
            &text,
            &format!("eddy_requests_total{{transport=\"http\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(
        (count("200"), count("206"), count("404"), count("403")),
        (1.0, 1.0, 1.0, 3.0)
    );
    // 1000 + 100 bytes of content, plus the 404 and 403 texts.
    let bytes = must_sample(&text, "eddy_response_body_bytes_total{transport=\"http\"}");
    assert_eq!(
        bytes,
        (1000 + 100 + "not found\n".len() + 3 * "forbidden\n".len()) as f64
    );
    let refused = |reason: &str| {
        must_sample(
            &text,
            &format!("eddy_token_refusals_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(
        (
            refused("missing"),
            refused("malformed"),
            refused("wrong_prefix"),
            refused("expired")
        ),
        (1.0, 1.0, 1.0, 0.0)
    );
}

#[test]
fn eddy_drain_drains_like_sigterm_through_the_admin_token() {
    let store = Store::new();
    let big = gen_bytes(11, 16 << 20);
    store.write("big.mp4", &big);
    store.import();
    let token = "drain-token-0123456789abcdef";
    let cfg = store.config(
        "drain.toml",
        &format!("[admin]\ntoken = \"{token}\"\n[limits]\ndrain_timeout = \"30s\"\n"),
    );
    let mut server = Server::start(&store, Some(&cfg));
    let mut c = server.connect();
    c.send(&request_bytes("GET", "/big.mp4", &[], false));
    assert_eq!(c.read_head().status, 200);
    let mut got = c.read_exact_body(1 << 16);
    // Without the token: refused, nothing happens.
    let mut plain = Conn::connect(server.admin_addr());
    plain.send(&request_bytes("POST", "/drain", &[], true));
    assert_eq!(plain.read_response(false).status, 401);
    assert_status(&server.admin_request("GET", "/readyz"), 200);
    let mut args = vec![
        s("drain"),
        s("--config"),
        cfg.display().to_string(),
        s("--admin-listen"),
        server.admin_addr().to_string(),
    ];
    args.extend(store.disk_args());
    let out = run_eddy(&args);
    assert!(
        out.status.success(),
        "eddy drain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + POLL_BOUND;
    while server.admin_request("GET", "/readyz").status != 503 {
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    got.extend(c.read_exact_body(big.len() as u64 - got.len() as u64));
    assert_bytes_eq(&got, &big, "in-flight body across eddy drain");
    let st = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits after draining");
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[test]
fn range_kinds_durations_and_disk_figures_move_with_their_events() {
    let (store, server) = served();
    // t/3.m4s is 1003 bytes.
    let etag = server.get("/t/3.m4s", &[]).must("etag").to_string();
    let asks: [(&str, &[&str], u16); 6] = [
        ("/t/3.m4s", &["Range: bytes=0-99"], 206),
        ("/t/3.m4s", &["Range: bytes=0-9,20-29"], 206),
        ("/t/3.m4s", &["Range: bytes=5000-"], 416),
        (
            "/t/3.m4s",
            &["Range: bytes=0-9", "If-Range: \"other\""],
            200,
        ),
        ("/t/3.m4s", &["Range: lines=1-2"], 200),
        ("/t/3.m4s/range/0-9", &[], 200),
    ];
    for (target, extra, status) in asks {
        assert_status(&server.get(target, extra), status);
    }
    // A response is counted once its last byte is handed to the kernel,
    // which can be just after the client has read it: wait for the 7th.
    let series = "eddy_request_duration_seconds_count{transport=\"http\"}";
    let text = eventually(POLL_BOUND, || {
        let text = scrape(&server);
        (sample(&text, series) == Some(7.0)).then_some(text)
    })
    .unwrap_or_else(|| panic!("7 durations never counted:\n{}", scrape(&server)));
    let kind = |k: &str| must_sample(&text, &format!("eddy_range_requests_total{{kind=\"{k}\"}}"));
    assert_eq!(
        (
            kind("single"),
            kind("multipart"),
            kind("unsatisfiable"),
            kind("ignored"),
            kind("path")
        ),
        (1.0, 1.0, 1.0, 2.0, 1.0),
        "etag {etag}:\n{text}"
    );
    // Every response has a duration: the 7 above, nothing for the other transports.
    let count = |t: &str| {
        must_sample(
            &text,
            &format!("eddy_request_duration_seconds_count{{transport=\"{t}\"}}"),
        )
    };
    assert_eq!(
        (count("http"), count("https"), count("h2")),
        (7.0, 0.0, 0.0)
    );
    let inf = must_sample(
        &text,
        "eddy_request_duration_seconds_bucket{transport=\"http\",le=\"+Inf\"}",
    );
    assert_eq!(inf, 7.0);
    assert!(
        must_sample(
            &text,
            "eddy_request_duration_seconds_sum{transport=\"http\"}"
        ) > 0.0
    );
    for d in &store.disks {
        let root = d.to_str().expect("utf-8");
        let state = |s: &str| {
            must_sample(
                &text,
                &format!("eddy_disk_state{{disk=\"{root}\",state=\"{s}\"}}"),
            )
        };
        assert_eq!(
            (state("active"), state("draining"), state("failed")),
            (1.0, 0.0, 0.0)
        );
        let free = must_sample(&text, &format!("eddy_disk_free_bytes{{disk=\"{root}\"}}"));
        let st = nix_free(d);
        // Within 64 MiB of what statvfs says now (other tests write to this file system).
        assert!((free - st).abs() < (64 << 20) as f64, "{free} vs {st}");
    }
}

/// Bytes available to unprivileged writers under `dir`, by `df`'s reckoning.
fn nix_free(dir: &std::path::Path) -> f64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df's avail")
}
