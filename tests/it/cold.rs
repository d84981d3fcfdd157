//! Cold objects: bodies whose pages are not in the page cache are sent off the event loop (from
//! the blocking pool) and still arrive byte-exact, across window edges, in multipart answers, to a
//! reader that stalls with the socket full, and while other connections are being served. The
//! admin listener's `eddy_disk_wait_windows_total` shows that the cold path was taken, so these
//! tests fail if eviction stops working rather than pass on the warm path.

use crate::support::*;
use std::time::Duration;

const MOVIE: &str = "/movie/cold.mp4";
/// Twelve 2 MiB send windows, the last one short.
const LEN: usize = 23 * 1024 * 1024 + 12345;

fn cold_store() -> (Store, Vec<u8>) {
    let store = Store::on_disk();
    let movie = gen_bytes(91, LEN);
    store.write("movie/cold.mp4", &movie);
    store.write("seg/warm.m4s", &gen_bytes(92, 50_000));
    store.import();
    store.evict();
    (store, movie)
}

#[track_caller]
fn assert_went_off_the_loop(server: &Server) {
    let waits = must_sample(&scrape(server), "eddy_disk_wait_windows_total");
    assert!(
        waits >= 1.0,
        "no window was sent off the event loop: the test store's pages were not evicted \
         (eddy_disk_wait_windows_total = {waits})"
    );
}

#[test]
fn cold_ranges_whole_bodies_and_multipart_come_back_exact() {
    let (store, movie) = cold_store();
    let server = store.serve();

    let whole = server.get(MOVIE, &[]);
    assert_status(&whole, 200);
    assert_bytes_eq(&whole.body, &movie, "whole cold object");
    assert_went_off_the_loop(&server);

    // The object is warm now but marked cold for a while: both paths must agree on the bytes.
    store.evict();
    let one = server.get(MOVIE, &["Range: bytes=1000001-9000000"]);
    assert_status(&one, 206);
    assert_bytes_eq(&one.body, &movie[1_000_001..=9_000_000], "unaligned range");

    let multi = server.get(MOVIE, &["Range: bytes=0-99,5000000-7000000,20000000-"]);
    assert_status(&multi, 206);
    let parts = parse_multipart(multi.must("content-type"), &multi.body);
    assert_eq!(parts.len(), 3);
    assert_bytes_eq(&parts[0].body, &movie[..100], "part 1");
    assert_bytes_eq(&parts[1].body, &movie[5_000_000..=7_000_000], "part 2");
    assert_bytes_eq(&parts[2].body, &movie[20_000_000..], "part 3");

    let path_form = server.get(&format!("{MOVIE}/range/4194303-6291457"), &[]);
    assert_status(&path_form, 200);
    assert_bytes_eq(&path_form.body, &movie[4_194_303..=6_291_457], "path form");
}

#[test]
fn a_reader_that_stalls_on_a_cold_body_gets_every_byte_and_others_are_served_meanwhile() {
    let (store, movie) = cold_store();
    let server = store.serve();

    let mut slow = server.connect();
    slow.send(&request_bytes("GET", MOVIE, &[], false));
    let head = slow.read_head();
    assert_eq!(head.status, 200);
    let mut got = slow.read_exact_body(1024 * 1024);

    // The slow reader's socket fills while it reads nothing; the server must wait for room
    // (not spin, not give up) and keep answering everyone else.
    for i in 0..5 {
        let r = server.get("/seg/warm.m4s", &[]);
        assert_status(&r, 200);
        assert_eq!(r.body.len(), 50_000, "request {i} on another connection");
        std::thread::sleep(Duration::from_millis(60));
    }

    got.extend(slow.read_exact_body((LEN - got.len()) as u64));
    assert_bytes_eq(&got, &movie, "body read with a stall");
    assert_went_off_the_loop(&server);

    // Keep-alive still works after a cold body.
    slow.send(&request_bytes("GET", MOVIE, &["Range: bytes=-10"], false));
    let tail = slow.read_response(false);
    assert_status(&tail, 206);
    assert_bytes_eq(&tail.body, &movie[LEN - 10..], "suffix after the cold body");
}
