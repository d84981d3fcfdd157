//! Hostile clients against the limits that protect everyone else: a flood of connects over
//! `limits.max_connections` that never read must not spend the descriptors the server needs to
//! accept (refusals beyond `limits.max_refusals` are closed at once), and the descriptor budget is
//! checked at start-up (the soft limit raised to the hard one, a warning naming the keys).

use crate::support::*;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn one_object() -> (Store, Vec<u8>) {
    let store = Store::new();
    let a = gen_bytes(41, 1000);
    store.write("a.bin", &a);
    store.import();
    (store, a)
}

/// 16 connections, 8 cached objects, 16 refusals: 16 + 8 + 16 + 160 reserved = 200 descriptors.
const SMALL: &str =
    "[limits]\nmax_connections = 16\nmax_refusals = 16\n[store]\nopen_file_cache = 8\n";
const BUDGET_WARNING: &str = "descriptor budget over RLIMIT_NOFILE";

#[test]
fn a_connect_flood_over_the_cap_never_exhausts_descriptors() {
    let (store, a) = one_object();
    let config = store.config("eddy.toml", SMALL);
    let server = Server::start_with_ulimit(&store, Some(&config), "-n 256");
    assert!(
        !server.stderr().contains(BUDGET_WARNING),
        "the small config fits 256 descriptors: {}",
        server.stderr()
    );
    // Every slot held by a served keep-alive connection.
    let held: Vec<Conn> = (0..16)
        .map(|_| {
            let mut c = server.connect();
            c.send(&request_bytes("GET", "/a.bin", &[], false));
            assert_status(&c.read_response(false), 200);
            c
        })
        .collect();
    let base = server.open_fds();
    // 600 connects that never send nor read, all kept open: without a bound on refusals, each
    // would hold a server descriptor for about 2 s, far more than the 256 it has.
    let mut flood = Vec::new();
    let mut peak = base;
    for i in 0..600 {
        if let Ok(s) = TcpStream::connect(server.addr) {
            flood.push(s);
        }
        if i % 25 == 0 {
            peak = peak.max(server.open_fds());
        }
    }
    // A good client in the middle of it: refused (503) or closed, not left waiting.
    let mut good = server.connect();
    let _ = good.try_send(&request_bytes("GET", "/a.bin", &[], true));
    if let Ok(r) = good.try_read_response(false) {
        assert_status(&r, 503);
    }
    for _ in 0..20 {
        peak = peak.max(server.open_fds());
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        peak <= base + 16 + 4,
        "descriptors rose from {base} to {peak} during the flood (max_refusals = 16)"
    );
    assert!(
        !server.stderr().contains("accept failed"),
        "accepts failed during the flood:\n{}",
        server.stderr()
    );
    let text = scrape(&server);
    let rejected = must_sample(&text, "eddy_connections_rejected_total{listener=\"plain\"}");
    assert!(
        rejected >= 600.0,
        "{rejected} connections counted as rejected"
    );
    // Once the flood and the held connections are gone, a good client is served.
    drop(flood);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = server.connect();
        let _ = c.try_send(&request_bytes("GET", "/a.bin", &[], true));
        match c.try_read_response(false) {
            Ok(r) if r.status == 200 => {
                assert_bytes_eq(&r.body, &a, "after the flood");
                break;
            }
            _ => assert!(
                Instant::now() < deadline,
                "not served 10 s after the flood ended"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn start_up_raises_the_soft_descriptor_limit_to_the_hard_one() {
    let (store, a) = one_object();
    let config = store.config("eddy.toml", SMALL);
    let server = Server::start_with_ulimit(&store, Some(&config), "-Sn 128");
    let (soft, hard) = server.fd_limits();
    assert_eq!(soft, hard, "the soft limit was raised to the hard one");
    assert!(
        !server.stderr().contains(BUDGET_WARNING),
        "{}",
        server.stderr()
    );
    assert_bytes_eq(&server.get("/a.bin", &[]).body, &a, "served");
}

#[test]
fn a_budget_over_the_descriptor_limit_is_warned_naming_the_keys() {
    let (store, a) = one_object();
    // The defaults need 10000 + 16384 + 512 + 160 descriptors.
    let server = Server::start_with_ulimit(&store, None, "-n 256");
    let err = server.stderr();
    let line = err
        .lines()
        .find(|l| l.contains(BUDGET_WARNING))
        .unwrap_or_else(|| panic!("no budget warning in:\n{err}"));
    for key in [
        "limits.max_connections",
        "store.open_file_cache",
        "limits.max_refusals",
    ] {
        assert!(
            line.contains(key),
            "the warning does not name {key}: {line}"
        );
    }
    assert_eq!(server.fd_limits(), ("256".into(), "256".into()));
    // It still serves.
    assert_bytes_eq(&server.get("/a.bin", &[]).body, &a, "served");
}

#[test]
fn memory_is_given_back_once_a_flood_of_connections_has_closed() {
    let (store, a) = one_object();
    let server = store.serve();
    let trims = |server: &Server| {
        sample(&scrape(server), "eddy_memory_trims_total").expect("eddy_memory_trims_total")
    };
    assert_eq!(trims(&server), 0.0, "no trim before any connection");
    // 1100 connections (more than the 1000 a trim waits for), each served once, then closed.
    for _ in 0..1100 {
        let mut c = server.connect();
        c.send(&request_bytes("GET", "/a.bin", &[], true));
        assert_bytes_eq(&c.read_response(false).body, &a, "flood request");
    }
    // Checked every 5 s: bounded poll, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(30);
    while trims(&server) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "no memory trim 30 s after 1100 connections closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_bytes_eq(&server.get("/a.bin", &[]).body, &a, "still serving");
}
