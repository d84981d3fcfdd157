//! Range requests (RFC 9110 §14): every range form, multipart/byteranges, clipping, huge numerals,
//! unsatisfiable ranges, ignored Range fields, and the anti-amplification limits.

use crate::support::*;

const LEN: usize = 10_000;

fn setup() -> (Store, Server, Vec<u8>) {
    let store = Store::new();
    let data = gen_bytes(1, LEN);
    store.write("v.mp4", &data);
    store.write("empty.bin", b"");
    store.import();
    let server = store.serve();
    (store, server, data)
}

fn range(server: &Server, spec: &str) -> Response {
    let h = format!("Range: {spec}");
    server.get("/v.mp4", &[&h])
}

/// A single-part 206 for [first, last] of `data`, checked header by header and byte by byte.
#[track_caller]
fn assert_single(r: &Response, data: &[u8], first: usize, last: usize) {
    assert_status(r, 206);
    assert_object_headers(r);
    assert_eq!(
        r.must("content-range"),
        format!("bytes {first}-{last}/{}", data.len()),
        "Content-Range"
    );
    assert_eq!(
        r.content_length(),
        Some((last - first + 1) as u64),
        "Content-Length"
    );
    assert_eq!(r.must("content-type"), "video/mp4");
    assert_bytes_eq(&r.body, &data[first..=last], "206 body");
}

#[track_caller]
fn assert_full(r: &Response, data: &[u8]) {
    assert_status(r, 200);
    assert_object_headers(r);
    assert!(
        r.header("content-range").is_none(),
        "200 must not carry Content-Range: {}",
        r.describe()
    );
    assert_eq!(
        r.content_length(),
        Some(data.len() as u64),
        "Content-Length"
    );
    assert_bytes_eq(&r.body, data, "200 body");
}

#[track_caller]
fn assert_416(r: &Response, len: usize) {
    assert_status(r, 416);
    assert_eq!(r.must("content-range"), format!("bytes */{len}"));
    assert_object_headers(r);
}

/// Checks a multipart/byteranges 206 against the expected (first, last) list, in order.
#[track_caller]
fn assert_multi(r: &Response, data: &[u8], expect: &[(usize, usize)]) {
    assert_status(r, 206);
    assert_object_headers(r);
    assert!(
        r.header("content-range").is_none(),
        "a multipart 206 has no top-level Content-Range"
    );
    assert_eq!(
        r.content_length(),
        Some(r.body.len() as u64),
        "Content-Length of the multipart body"
    );
    let parts = parse_multipart(r.must("content-type"), &r.body);
    let got: Vec<(u64, u64)> = parts.iter().map(|p| (p.first, p.last)).collect();
    let want: Vec<(u64, u64)> = expect.iter().map(|&(a, b)| (a as u64, b as u64)).collect();
    assert_eq!(got, want, "parts (in request order)");
    for (p, &(a, b)) in parts.iter().zip(expect) {
        assert_eq!(p.complete_len, data.len() as u64, "complete length in part");
        assert_eq!(
            p.header("content-type"),
            Some("video/mp4"),
            "part Content-Type"
        );
        assert_eq!(
            p.header("content-range"),
            Some(format!("bytes {a}-{b}/{}", data.len()).as_str())
        );
        assert_bytes_eq(&p.body, &data[a..=b], "part body");
    }
}

#[test]
fn whole_get_is_byte_exact() {
    let (_s, server, data) = setup();
    let r = server.get("/v.mp4", &[]);
    assert_full(&r, &data);
    assert_eq!(r.must("content-type"), "video/mp4");
}

#[test]
fn single_closed_range() {
    let (_s, server, data) = setup();
    assert_single(&range(&server, "bytes=0-499"), &data, 0, 499);
    assert_single(&range(&server, "bytes=1234-5678"), &data, 1234, 5678);
    assert_single(&range(&server, "bytes=9999-9999"), &data, 9999, 9999);
    assert_single(&range(&server, "bytes=0-0"), &data, 0, 0);
}

#[test]
fn open_range() {
    let (_s, server, data) = setup();
    assert_single(&range(&server, "bytes=9500-"), &data, 9500, LEN - 1);
    assert_single(&range(&server, "bytes=9999-"), &data, 9999, 9999);
}

#[test]
fn suffix_range() {
    let (_s, server, data) = setup();
    assert_single(&range(&server, "bytes=-500"), &data, LEN - 500, LEN - 1);
    assert_single(&range(&server, "bytes=-1"), &data, LEN - 1, LEN - 1);
    // A suffix longer than the file means the whole file.
    assert_single(&range(&server, "bytes=-20000"), &data, 0, LEN - 1);
}

#[test]
fn bytes_0_open_gets_206() {
    let (_s, server, data) = setup();
    assert_single(&range(&server, "bytes=0-"), &data, 0, LEN - 1);
}

#[test]
fn range_past_eof_is_clipped_not_416() {
    let (_s, server, data) = setup();
    assert_single(&range(&server, "bytes=9000-20000"), &data, 9000, LEN - 1);
    // LinkedIn's scraper form: a fixed 3 MiB window on a small file.
    assert_single(&range(&server, "bytes=0-3145727"), &data, 0, LEN - 1);
}

#[test]
fn huge_last_pos_is_clipped() {
    let (_s, server, data) = setup();
    assert_single(
        &range(&server, "bytes=100-99999999999999999999999"),
        &data,
        100,
        LEN - 1,
    );
    assert_single(
        &range(&server, "bytes=0-18446744073709551615"),
        &data,
        0,
        LEN - 1,
    );
    assert_single(
        &range(&server, "bytes=0-18446744073709551616"),
        &data,
        0,
        LEN - 1,
    );
    assert_single(
        &range(
            &server,
            "bytes=5-000000000000000000000000000000000000000000000000000000000000000000000000000000099",
        ),
        &data,
        5,
        99,
    );
}

#[test]
fn huge_suffix_means_whole_file() {
    let (_s, server, data) = setup();
    assert_single(
        &range(&server, "bytes=-99999999999999999999999"),
        &data,
        0,
        LEN - 1,
    );
    assert_single(
        &range(&server, "bytes=-18446744073709551616"),
        &data,
        0,
        LEN - 1,
    );
}

#[test]
fn huge_first_pos_is_unsatisfiable() {
    let (_s, server, _data) = setup();
    assert_416(&range(&server, "bytes=18446744073709551616-"), LEN);
    assert_416(&range(&server, "bytes=18446744073709551615-"), LEN);
    assert_416(
        &range(
            &server,
            "bytes=99999999999999999999999-99999999999999999999999",
        ),
        LEN,
    );
    assert_416(
        &range(&server, "bytes=18446744073709551615-18446744073709551616"),
        LEN,
    );
}

#[test]
fn first_pos_at_or_past_eof_is_416() {
    let (_s, server, _data) = setup();
    assert_416(&range(&server, "bytes=10000-"), LEN);
    assert_416(&range(&server, "bytes=10000-10005"), LEN);
    assert_416(&range(&server, "bytes=20000-30000"), LEN);
}

#[test]
fn zero_suffix_is_unsatisfiable() {
    // RFC 9110 §14.1.1: satisfiable only with an int-range starting before the end or a
    // suffix-range with a non-zero suffix-length.
    let (_s, server, _data) = setup();
    assert_416(&range(&server, "bytes=-0"), LEN);
}

#[test]
fn all_unsatisfiable_multi_is_416() {
    let (_s, server, _data) = setup();
    assert_416(&range(&server, "bytes=20000-,30000-30010"), LEN);
}

#[test]
fn multi_range_parts_in_request_order() {
    let (_s, server, data) = setup();
    let r = range(&server, "bytes=0-99,200-299,9900-");
    assert_multi(&r, &data, &[(0, 99), (200, 299), (9900, LEN - 1)]);
    // Not ascending: request order is kept.
    let r = range(&server, "bytes=5000-5099,0-9,-10");
    assert_multi(&r, &data, &[(5000, 5099), (0, 9), (LEN - 10, LEN - 1)]);
}

#[test]
fn multi_range_with_ows_and_clipping() {
    let (_s, server, data) = setup();
    // `1#range-spec` allows optional whitespace around the commas.
    let r = range(&server, "bytes=0-9, 20-29 ,9990-99999");
    assert_multi(&r, &data, &[(0, 9), (20, 29), (9990, LEN - 1)]);
}

#[test]
fn multi_range_with_unsatisfiable_members_skips_them() {
    let (_s, server, data) = setup();
    let r = range(&server, "bytes=0-9,20000-,30-39");
    assert_multi(&r, &data, &[(0, 9), (30, 39)]);
}

#[test]
fn multi_range_with_one_satisfiable_is_single_part() {
    let (_s, server, data) = setup();
    let r = range(&server, "bytes=0-99,20000-30000");
    assert_single(&r, &data, 0, 99);
    let r = range(&server, "bytes=50000-,-300");
    assert_single(&r, &data, LEN - 300, LEN - 1);
}

#[test]
fn exactly_max_ranges_is_served() {
    let (_s, server, data) = setup();
    // Default limits.max_ranges = 16.
    let want: Vec<(usize, usize)> = (0..16).map(|i| (i * 100, i * 100 + 9)).collect();
    let spec: Vec<String> = want.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    let r = range(&server, &format!("bytes={}", spec.join(",")));
    assert_multi(&r, &data, &want);
}

#[test]
fn too_many_ranges_is_full_200() {
    let (_s, server, data) = setup();
    let spec: Vec<String> = (0..17)
        .map(|i| format!("{}-{}", i * 100, i * 100 + 9))
        .collect();
    let r = range(&server, &format!("bytes={}", spec.join(",")));
    assert_full(&r, &data);
}

#[test]
fn configured_max_ranges() {
    let store = Store::new();
    let data = gen_bytes(2, LEN);
    store.write("v.mp4", &data);
    store.import();
    let server = store.serve_with("[limits]\nmax_ranges = 2\n");
    assert_multi(&range(&server, "bytes=0-1,4-5"), &data, &[(0, 1), (4, 5)]);
    assert_full(&range(&server, "bytes=0-1,4-5,8-9"), &data);
}

#[test]
fn overlapping_ranges_past_file_size_are_full_200() {
    let (_s, server, data) = setup();
    assert_full(&range(&server, "bytes=0-,0-"), &data);
    assert_full(&range(&server, "bytes=0-5999,4000-"), &data);
    let many = ["0-"; 10].join(",");
    assert_full(&range(&server, &format!("bytes={many}")), &data);
}

#[test]
fn configured_range_sum_percent() {
    let store = Store::new();
    let data = gen_bytes(3, LEN);
    store.write("v.mp4", &data);
    store.import();
    let server = store.serve_with("[limits]\nmax_range_sum_percent = 50\n");
    // 5000 bytes = 50 %: served.
    assert_single(&range(&server, "bytes=0-4999"), &data, 0, 4999);
    // 5001 bytes > 50 %: ignored.
    assert_full(&range(&server, "bytes=0-5000"), &data);
    assert_full(&range(&server, "bytes=0-2999,5000-7999"), &data);
}

#[test]
fn invalid_range_is_ignored() {
    let (_s, server, data) = setup();
    for spec in [
        "bytes=5-1",
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=--5",
        "bytes=1-2-3",
        "bytes=0x10-0x20",
        "bytes=+1-5",
        "bytes 0-5",
        "bytes=1.5-3",
        "=0-5",
    ] {
        let r = range(&server, spec);
        assert_eq!(r.status, 200, "Range: {spec}: {}", r.describe());
        assert_full(&r, &data);
    }
}

#[test]
fn invalid_member_in_set_is_never_partly_served() {
    let (_s, server, data) = setup();
    for spec in ["bytes=0-99,5-1", "bytes=0-99,x", "bytes=0-99,abc-"] {
        let r = range(&server, spec);
        match r.status {
            200 => assert_full(&r, &data),
            416 => assert_416(&r, LEN),
            _ => panic!("Range: {spec}: want 200 or 416, got {}", r.describe()),
        }
    }
}

#[test]
fn unknown_unit_is_ignored() {
    let (_s, server, data) = setup();
    assert_full(&range(&server, "items=0-5"), &data);
    assert_full(&range(&server, "bits=0-5"), &data);
}

#[test]
fn range_value_ows_is_trimmed() {
    let (_s, server, data) = setup();
    // Field values are trimmed of leading and trailing whitespace (RFC 9110 §5.5).
    let r = server.get("/v.mp4", &["Range:    bytes=0-9   "]);
    assert_single(&r, &data, 0, 9);
    let r = server.get("/v.mp4", &["Range:\tbytes=10-19\t"]);
    assert_single(&r, &data, 10, 19);
}

#[test]
fn range_unit_is_case_insensitive() {
    // RFC 9110 §14.1: "Range unit names are case-insensitive".
    let (_s, server, data) = setup();
    assert_single(&range(&server, "Bytes=0-9"), &data, 0, 9);
    assert_single(&range(&server, "BYTES=10-19"), &data, 10, 19);
}

#[test]
fn range_on_head_is_ignored() {
    let (_s, server, _data) = setup();
    let mut c = server.connect();
    // Pipeline a GET after the HEAD: if the HEAD answer carried body bytes, the GET parse breaks.
    let mut req = request_bytes("HEAD", "/v.mp4", &["Range: bytes=0-99"], false);
    req.extend(request_bytes("GET", "/v.mp4", &["Range: bytes=0-3"], true));
    c.send(&req);
    let h = c.read_response(true);
    assert_status(&h, 200);
    assert_object_headers(&h);
    assert_eq!(h.content_length(), Some(LEN as u64));
    assert!(h.header("content-range").is_none(), "{}", h.describe());
    let g = c.read_response(false);
    assert_status(&g, 206);
    assert_eq!(g.must("content-range"), format!("bytes 0-3/{LEN}"));
}

#[test]
fn empty_file() {
    let (_s, server, _data) = setup();
    let r = server.get("/empty.bin", &[]);
    assert_status(&r, 200);
    assert_eq!(r.content_length(), Some(0));
    assert!(r.body.is_empty());
    // RFC 9110 §14.1.3: on a zero-length representation only a suffix-range with a non-zero
    // suffix-length is satisfiable; it selects no byte, so the answer is the empty
    // representation with 200 and no Content-Range.
    for spec in ["bytes=-5", "bytes=-1", "bytes=0-,-5"] {
        let r = server.get("/empty.bin", &[&format!("Range: {spec}")]);
        assert_status(&r, 200);
        assert_eq!(r.content_length(), Some(0), "{spec}");
        assert!(r.body.is_empty(), "{spec}");
        assert_eq!(r.header("content-range"), None, "{spec}");
    }
    // Every other form: first-pos >= length, or a zero suffix-length, is unsatisfiable.
    for spec in ["bytes=0-", "bytes=0-0", "bytes=-0", "bytes=3-5,0-"] {
        let r = server.get("/empty.bin", &[&format!("Range: {spec}")]);
        assert_416(&r, 0);
    }
}

#[test]
fn empty_list_elements_are_ignored() {
    // RFC 9110 §5.6.1.2: a recipient must parse and ignore a reasonable number of empty list
    // elements, so `bytes=0-99,` is just `bytes=0-99`.
    let (_s, server, data) = setup();
    assert_single(&range(&server, "bytes=0-99,"), &data, 0, 99);
    assert_multi(
        &range(&server, "bytes=0-9,,20-29"),
        &data,
        &[(0, 9), (20, 29)],
    );
}

#[test]
fn missing_object_with_range_is_404() {
    let (_s, server, _data) = setup();
    let r = server.get("/nope.mp4", &["Range: bytes=0-1"]);
    assert_status(&r, 404);
}

#[test]
fn many_random_ranges_are_byte_exact() {
    // A deterministic sweep over single and multi ranges of a larger file.
    let store = Store::new();
    let data = gen_bytes(4, 300_000);
    store.write("seg.m4s", &data);
    store.import();
    let server = store.serve();
    let mut c = server.connect();
    let rnd = gen_bytes(99, 8 * 64);
    for i in 0..64 {
        let x = u64::from_le_bytes(rnd[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let a = (x % data.len() as u64) as usize;
        let b = (a + ((x >> 32) % 70_000) as usize).min(data.len() - 1);
        let req = request_bytes(
            "GET",
            "/seg.m4s",
            &[&format!("Range: bytes={a}-{b}")],
            false,
        );
        c.send(&req);
        let r = c.read_response(false);
        assert_status(&r, 206);
        assert_eq!(r.must("content-type"), "video/iso.segment");
        assert_eq!(
            r.must("content-range"),
            format!("bytes {a}-{b}/{}", data.len())
        );
        assert_bytes_eq(&r.body, &data[a..=b], &format!("bytes={a}-{b}"));
    }
}
