//! SIGTERM under load: responses in flight when the signal arrives all finish, byte for byte,
//! while clients keep asking; a request is either answered in full or not answered at all (the
//! connection refused or closed before any response byte); then eddy exits 0.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::support::*;

/// Clients holding a large response in flight across the signal.
const IN_FLIGHT: usize = 8;
/// Clients hammering with small keep-alive requests before, during and after it.
const HAMMERS: usize = 8;
const BIG: usize = 24 << 20;
const SMALL: usize = 64 << 10;

#[test]
fn sigterm_under_load_loses_no_in_flight_response() {
    let store = Store::new();
    let big = Arc::new(gen_bytes(90, BIG));
    let small = Arc::new(gen_bytes(91, SMALL));
    store.write("big.mp4", &big);
    store.write("small.m4s", &small);
    store.import();
    let mut server = store.serve_with("[limits]\ndrain_timeout = \"60s\"\n");
    let addr = server.addr;

    // Every in-flight client has its head and a first part of its body before the signal, and
    // reads the rest only after it.
    let before = Arc::new(Barrier::new(IN_FLIGHT + 1));
    let after = Arc::new(Barrier::new(IN_FLIGHT + 1));
    let mut in_flight = Vec::new();
    for i in 0..IN_FLIGHT {
        let (big, before, after) = (big.clone(), before.clone(), after.clone());
        in_flight.push(std::thread::spawn(move || {
            // A small receive buffer keeps most of the body in eddy's hands at the signal.
            let mut c = Conn::connect_with_rcvbuf(addr, 64 << 10);
            let from = i * 4096;
            c.send(&request_bytes(
                "GET",
                "/big.mp4",
                &[&format!("Range: bytes={from}-")],
                false,
            ));
            let h = c.read_head();
            assert_eq!(h.status, 206, "client {i}");
            let mut got = c.read_exact_body(1 << 16);
            before.wait();
            after.wait();
            got.extend(c.read_exact_body((BIG - from - got.len()) as u64));
            assert_bytes_eq(
                &got,
                &big[from..],
                &format!("in-flight body {i} across SIGTERM"),
            );
        }));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut hammers = Vec::new();
    for i in 0..HAMMERS {
        let (small, stop, answered) = (small.clone(), stop.clone(), answered.clone());
        hammers.push(std::thread::spawn(move || {
            'connections: while !stop.load(Ordering::SeqCst) {
                let Ok(mut c) = Conn::try_connect(addr) else {
                    // The listener is closed: the drain has begun.
                    return;
                };
                loop {
                    if c.try_send(&request_bytes("GET", "/small.m4s", &[], false))
                        .is_err()
                    {
                        continue 'connections;
                    }
                    // No head: closed before any response byte (an idle keep-alive connection
                    // closed by the drain, or a connection refused). A head means the whole
                    // body follows: `read_exact_body` panics on a short one.
                    let Ok(h) = c.try_read_head() else {
                        continue 'connections;
                    };
                    assert_eq!(h.status, 200, "hammer {i}");
                    let body = c.read_exact_body(SMALL as u64);
                    assert!(body == *small, "hammer {i}: a wrong body");
                    answered.fetch_add(1, Ordering::Relaxed);
                    let closes = h.headers.iter().any(|(k, v)| {
                        k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close")
                    });
                    if closes || stop.load(Ordering::SeqCst) {
                        continue 'connections;
                    }
                }
            }
        }));
    }
    // Load first: the hammers have been answered many times over.
    eventually(Duration::from_secs(30), || {
        (answered.load(Ordering::Relaxed) >= 200).then_some(())
    })
    .expect("the hammers get answers");
    before.wait();
    server.signal("TERM");
    after.wait();
    for t in in_flight {
        if let Err(e) = t.join() {
            std::panic::resume_unwind(e);
        }
    }
    let status = server
        .wait_exit(Duration::from_secs(60))
        .expect("eddy exits once the in-flight responses are done");
    stop.store(true, Ordering::SeqCst);
    for t in hammers {
        if let Err(e) = t.join() {
            std::panic::resume_unwind(e);
        }
    }
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}");
    let err = server.stderr();
    assert!(
        err.contains("drained"),
        "a clean drain, no deadline cut: {err}"
    );
}
