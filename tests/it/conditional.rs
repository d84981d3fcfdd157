//! Conditional requests (RFC 9110 §13): If-Match, If-Unmodified-Since, If-None-Match,
//! If-Modified-Since, If-Range, their evaluation order (§13.2.2), and the 304/412 answers.

use crate::support::*;

const LEN: usize = 4096;
/// 2020-01-01T12:00:00Z: an mtime well in the past, so Last-Modified is a strong validator.
const OLD: u64 = 1_577_880_000;

struct Fx {
    _store: Store,
    server: Server,
    data: Vec<u8>,
    etag: String,
    lm: String,
}

/// `c.mp4` with an mtime of `OLD`, `fresh.mp4` with mtime = now.
fn setup() -> Fx {
    let store = Store::new();
    let data = gen_bytes(7, LEN);
    store.write_with_mtime("c.mp4", &data, OLD);
    store.write("fresh.mp4", &data);
    store.import();
    let server = store.serve();
    let r = server.get("/c.mp4", &[]);
    assert_status(&r, 200);
    assert_object_headers(&r);
    let etag = r.must("etag").to_string();
    let lm = r.must("last-modified").to_string();
    Fx {
        _store: store,
        server,
        data,
        etag,
        lm,
    }
}

impl Fx {
    fn get(&self, headers: &[&str]) -> Response {
        self.server.get("/c.mp4", headers)
    }
    fn head(&self, headers: &[&str]) -> Response {
        self.server.head("/c.mp4", headers)
    }
}

#[track_caller]
fn assert_full(r: &Response, data: &[u8]) {
    assert_status(r, 200);
    assert_object_headers(r);
    assert_bytes_eq(&r.body, data, "200 body");
}

/// A 304: ETag, Date, Last-Modified, and no body (checked by pipelining a second request).
#[track_caller]
fn assert_304_on_wire(server: &Server, method: &str, headers: &[&str], etag: &str) {
    let mut c = server.connect();
    let mut req = request_bytes(method, "/c.mp4", headers, false);
    req.extend(request_bytes("GET", "/c.mp4", &["Range: bytes=0-3"], true));
    c.send(&req);
    let r = c.read_response(method == "HEAD");
    assert_status(&r, 304);
    assert_eq!(r.must("etag"), etag);
    assert!(parse_http_date(r.must("date")).is_some());
    assert!(parse_http_date(r.must("last-modified")).is_some());
    if let Some(cl) = r.content_length() {
        // Allowed (it describes the selected representation) but then it must be the file size.
        assert_eq!(cl, LEN as u64, "Content-Length on 304");
    }
    // The next answer must start right after the 304 head: no body bytes in between.
    let next = c.read_response(false);
    assert_status(&next, 206);
}

#[track_caller]
fn assert_412(r: &Response) {
    assert_status(r, 412);
    assert_object_headers(r);
}

#[test]
fn validators_on_first_response() {
    let fx = setup();
    assert_eq!(
        fx.lm,
        http_date(OLD),
        "import keeps the mtime as Last-Modified"
    );
    let r = fx.head(&[]);
    assert_eq!(r.must("etag"), fx.etag, "HEAD and GET agree on ETag");
    assert_eq!(r.must("last-modified"), fx.lm);
    // Date is now-ish.
    let date = parse_http_date(r.must("date")).expect("Date");
    assert!(date.abs_diff(now_secs()) < 300, "Date {date} far from now");
}

#[test]
fn etag_is_stable() {
    let fx = setup();
    let again = fx.get(&[]);
    assert_eq!(again.must("etag"), fx.etag);
    assert_eq!(again.must("last-modified"), fx.lm);
}

#[test]
fn etag_changes_when_content_changes_with_same_size_and_mtime() {
    // A strong validator changes whenever the representation data changes (RFC 9110 §8.8.1).
    // Pipelines with reproducible mtimes (SOURCE_DATE_EPOCH) and CBR segments of equal size make
    // "same size, same mtime, new bytes" real; a size-mtime ETag would let If-Range splice the
    // old and the new version.
    let store = Store::new();
    let v1 = gen_bytes(1, 1000);
    let v2 = gen_bytes(2, 1000);
    store.write_with_mtime("seg.ts", &v1, OLD);
    store.import();
    let e1 = {
        let server = store.serve();
        let r = server.get("/seg.ts", &[]);
        assert_bytes_eq(&r.body, &v1, "v1");
        r.must("etag").to_string()
    };
    store.write_with_mtime("seg.ts", &v2, OLD);
    store.import();
    let server = store.serve();
    let r = server.get("/seg.ts", &[]);
    assert_bytes_eq(&r.body, &v2, "re-import replaces the object");
    assert_ne!(r.must("etag"), e1, "same ETag for different bytes");
    // The client holding v1 resumes with If-Range: it must get the whole new file, not a splice.
    let r = server.get(
        "/seg.ts",
        &[&format!("If-Range: {e1}"), "Range: bytes=500-"],
    );
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &v2, "If-Range with the old ETag");
}

// ---- If-Match ---------------------------------------------------------------------------------

#[test]
fn if_match() {
    let fx = setup();
    let e = &fx.etag;
    assert_full(&fx.get(&[&format!("If-Match: {e}")]), &fx.data);
    assert_full(&fx.get(&["If-Match: *"]), &fx.data);
    assert_full(&fx.get(&[&format!("If-Match: \"nope\", {e}")]), &fx.data);
    assert_full(
        &fx.get(&["If-Match: \"nope\"", &format!("If-Match: {e}")]),
        &fx.data,
    );
    assert_412(&fx.get(&["If-Match: \"nope\""]));
    assert_412(&fx.get(&["If-Match: \"a\", \"b\""]));
    // Strong comparison: a weak tag never matches.
    assert_412(&fx.get(&[&format!("If-Match: W/{e}")]));
    let h = fx.head(&["If-Match: \"nope\""]);
    assert_status(&h, 412);
}

#[test]
fn if_match_failure_beats_range() {
    let fx = setup();
    let r = fx.get(&["If-Match: \"nope\"", "Range: bytes=0-9"]);
    assert_412(&r);
    let r = fx.get(&[&format!("If-Match: {}", fx.etag), "Range: bytes=0-9"]);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &fx.data[..10], "206 body");
}

// ---- If-Unmodified-Since ----------------------------------------------------------------------

#[test]
fn if_unmodified_since() {
    let fx = setup();
    assert_full(
        &fx.get(&[&format!("If-Unmodified-Since: {}", fx.lm)]),
        &fx.data,
    );
    assert_full(
        &fx.get(&[&format!("If-Unmodified-Since: {}", http_date(OLD + 86400))]),
        &fx.data,
    );
    assert_412(&fx.get(&[&format!("If-Unmodified-Since: {}", http_date(OLD - 1))]));
    assert_412(&fx.get(&[&format!(
        "If-Unmodified-Since: {}",
        http_date(OLD - 86400 * 365)
    )]));
}

#[test]
fn if_unmodified_since_invalid_date_is_ignored() {
    let fx = setup();
    assert_full(&fx.get(&["If-Unmodified-Since: yesterday"]), &fx.data);
    assert_full(&fx.get(&["If-Unmodified-Since: 0"]), &fx.data);
}

#[test]
fn if_unmodified_since_ignored_when_if_match_present() {
    let fx = setup();
    let old = http_date(OLD - 86400);
    assert_full(
        &fx.get(&[
            &format!("If-Match: {}", fx.etag),
            &format!("If-Unmodified-Since: {old}"),
        ]),
        &fx.data,
    );
}

// ---- If-None-Match ----------------------------------------------------------------------------

#[test]
fn if_none_match_304() {
    let fx = setup();
    let e = &fx.etag;
    assert_304_on_wire(&fx.server, "GET", &[&format!("If-None-Match: {e}")], e);
    assert_304_on_wire(&fx.server, "HEAD", &[&format!("If-None-Match: {e}")], e);
    // Weak comparison: W/"x" matches "x".
    assert_304_on_wire(&fx.server, "GET", &[&format!("If-None-Match: W/{e}")], e);
    assert_304_on_wire(&fx.server, "GET", &["If-None-Match: *"], e);
    assert_304_on_wire(
        &fx.server,
        "GET",
        &[&format!("If-None-Match: \"x\", {e}")],
        e,
    );
    assert_304_on_wire(
        &fx.server,
        "GET",
        &["If-None-Match: \"x\"", &format!("If-None-Match: {e}")],
        e,
    );
}

#[test]
fn if_none_match_no_match_is_200() {
    let fx = setup();
    assert_full(&fx.get(&["If-None-Match: \"x\""]), &fx.data);
    assert_full(&fx.get(&["If-None-Match: \"x\", W/\"y\""]), &fx.data);
    // A tag that differs only by missing quotes is not a match.
    let bare = fx.etag.trim_matches('"').to_string();
    let r = fx.get(&[&format!("If-None-Match: \"{bare}x\"")]);
    assert_full(&r, &fx.data);
}

#[test]
fn if_none_match_beats_range() {
    let fx = setup();
    let r = fx.get(&[&format!("If-None-Match: {}", fx.etag), "Range: bytes=0-9"]);
    assert_status(&r, 304);
    let r = fx.get(&["If-None-Match: \"x\"", "Range: bytes=0-9"]);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &fx.data[..10], "206");
}

// ---- If-Modified-Since ------------------------------------------------------------------------

#[test]
fn if_modified_since() {
    let fx = setup();
    assert_304_on_wire(
        &fx.server,
        "GET",
        &[&format!("If-Modified-Since: {}", fx.lm)],
        &fx.etag,
    );
    assert_304_on_wire(
        &fx.server,
        "HEAD",
        &[&format!("If-Modified-Since: {}", http_date(OLD + 3600))],
        &fx.etag,
    );
    assert_full(
        &fx.get(&[&format!("If-Modified-Since: {}", http_date(OLD - 1))]),
        &fx.data,
    );
}

#[test]
fn if_modified_since_invalid_date_is_ignored() {
    let fx = setup();
    assert_full(&fx.get(&["If-Modified-Since: not a date"]), &fx.data);
    assert_full(&fx.get(&["If-Modified-Since: "]), &fx.data);
}

#[test]
fn if_modified_since_ignored_when_if_none_match_present() {
    let fx = setup();
    // INM does not match, IMS would say "not modified": IMS must be ignored → 200.
    assert_full(
        &fx.get(&[
            "If-None-Match: \"x\"",
            &format!("If-Modified-Since: {}", fx.lm),
        ]),
        &fx.data,
    );
}

#[test]
fn obsolete_date_formats_are_accepted() {
    // RFC 9110 §5.6.7: recipients must accept rfc850-date and asctime-date too.
    let fx = setup();
    // OLD = Wednesday, 01-Jan-20 12:00:00 GMT.
    assert_304_on_wire(
        &fx.server,
        "GET",
        &["If-Modified-Since: Wednesday, 01-Jan-20 12:00:00 GMT"],
        &fx.etag,
    );
    assert_304_on_wire(
        &fx.server,
        "GET",
        &["If-Modified-Since: Wed Jan  1 12:00:00 2020"],
        &fx.etag,
    );
}

// ---- Precedence (§13.2.2) ---------------------------------------------------------------------

#[test]
fn precedence_if_match_before_if_none_match() {
    let fx = setup();
    let e = &fx.etag;
    // If-Match fails → 412 even though If-None-Match would give 304.
    assert_412(&fx.get(&["If-Match: \"nope\"", &format!("If-None-Match: {e}")]));
    // If-Match passes, If-None-Match matches → 304.
    let r = fx.get(&[&format!("If-Match: {e}"), &format!("If-None-Match: {e}")]);
    assert_status(&r, 304);
    assert!(r.body.is_empty());
}

#[test]
fn precedence_ius_before_ims() {
    let fx = setup();
    let r = fx.get(&[
        &format!("If-Unmodified-Since: {}", http_date(OLD - 10)),
        &format!("If-Modified-Since: {}", fx.lm),
    ]);
    assert_412(&r);
    let r = fx.get(&[
        &format!("If-Unmodified-Since: {}", http_date(OLD - 10)),
        &format!("If-None-Match: {}", fx.etag),
    ]);
    assert_412(&r);
}

// ---- If-Range ---------------------------------------------------------------------------------

#[test]
fn if_range_strong_etag_match_honours_range() {
    let fx = setup();
    let r = fx.get(&[&format!("If-Range: {}", fx.etag), "Range: bytes=100-199"]);
    assert_status(&r, 206);
    assert_eq!(r.must("content-range"), format!("bytes 100-199/{LEN}"));
    assert_bytes_eq(&r.body, &fx.data[100..200], "206");
}

#[test]
fn if_range_other_etag_gives_full_200() {
    let fx = setup();
    assert_full(
        &fx.get(&["If-Range: \"other\"", "Range: bytes=100-199"]),
        &fx.data,
    );
}

#[test]
fn if_range_weak_etag_never_matches() {
    let fx = setup();
    let r = fx.get(&[&format!("If-Range: W/{}", fx.etag), "Range: bytes=100-199"]);
    assert_full(&r, &fx.data);
}

#[test]
fn if_range_date_equal_to_old_last_modified_honours_range() {
    let fx = setup();
    let r = fx.get(&[&format!("If-Range: {}", fx.lm), "Range: bytes=0-9"]);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &fx.data[..10], "206");
}

#[test]
fn if_range_date_not_equal_gives_full_200() {
    let fx = setup();
    // Later than Last-Modified: still not an exact match, so the Range is ignored.
    assert_full(
        &fx.get(&[
            &format!("If-Range: {}", http_date(OLD + 1)),
            "Range: bytes=0-9",
        ]),
        &fx.data,
    );
    assert_full(
        &fx.get(&[
            &format!("If-Range: {}", http_date(OLD - 1)),
            "Range: bytes=0-9",
        ]),
        &fx.data,
    );
}

#[test]
fn if_range_date_with_fresh_last_modified_gives_full_200() {
    // A file whose mtime is now: Last-Modified is not ≥ 60 s before Date, hence weak.
    let fx = setup();
    let first = fx.server.get("/fresh.mp4", &[]);
    assert_status(&first, 200);
    let lm = first.must("last-modified").to_string();
    let lm_secs = parse_http_date(&lm).expect("Last-Modified");
    let date_secs = parse_http_date(first.must("date")).expect("Date");
    assert!(
        date_secs < lm_secs + 50,
        "precondition: the fresh file's Last-Modified ({lm}) should be recent"
    );
    let r = fx.server.get(
        "/fresh.mp4",
        &[&format!("If-Range: {lm}"), "Range: bytes=0-9"],
    );
    assert_full(&r, &fx.data);
    // The ETag form still works on the fresh file.
    let e = first.must("etag");
    let r = fx.server.get(
        "/fresh.mp4",
        &[&format!("If-Range: {e}"), "Range: bytes=0-9"],
    );
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &fx.data[..10], "206");
}

#[test]
fn if_range_invalid_gives_full_200() {
    let fx = setup();
    assert_full(
        &fx.get(&["If-Range: garbage", "Range: bytes=0-9"]),
        &fx.data,
    );
}

#[test]
fn if_range_without_range_is_ignored() {
    let fx = setup();
    assert_full(&fx.get(&["If-Range: \"other\""]), &fx.data);
    assert_full(&fx.get(&[&format!("If-Range: {}", fx.etag)]), &fx.data);
}

#[test]
fn if_range_match_with_multi_range() {
    let fx = setup();
    let r = fx.get(&[&format!("If-Range: {}", fx.etag), "Range: bytes=0-9,20-29"]);
    assert_status(&r, 206);
    let parts = parse_multipart(r.must("content-type"), &r.body);
    assert_eq!(parts.len(), 2);
    assert_bytes_eq(&parts[0].body, &fx.data[0..10], "part 0");
    assert_bytes_eq(&parts[1].body, &fx.data[20..30], "part 1");
}

#[test]
fn preconditions_ignored_on_404_and_405() {
    // RFC 9110 §13.2.1: preconditions are ignored when the answer without them would not be
    // 2xx or 412.
    let fx = setup();
    assert_status(&fx.server.get("/missing.mp4", &["If-Match: *"]), 404);
    assert_status(&fx.server.get("/missing.mp4", &["If-None-Match: *"]), 404);
    assert_status(&fx.server.get("/missing.mp4", &["If-Match: \"x\""]), 404);
    let r = fx.server.request("POST", "/c.mp4", &["If-Match: \"nope\""]);
    assert_status(&r, 405);
    let r = fx.server.request(
        "DELETE",
        "/c.mp4",
        &[&format!("If-None-Match: {}", fx.etag)],
    );
    assert_status(&r, 405);
}

#[test]
fn if_range_and_unsatisfiable_range() {
    let fx = setup();
    // If-Range false: Range ignored entirely, so no 416 but the full 200.
    let r = fx.get(&["If-Range: \"other\"", "Range: bytes=99999-"]);
    assert_full(&r, &fx.data);
    // If-Range true: the Range is evaluated, and it is unsatisfiable.
    let r = fx.get(&[&format!("If-Range: {}", fx.etag), "Range: bytes=99999-"]);
    assert_status(&r, 416);
    assert_eq!(r.must("content-range"), format!("bytes */{LEN}"));
}

#[test]
fn if_none_match_miss_with_if_range_hit_is_206() {
    let fx = setup();
    let r = fx.get(&[
        "If-None-Match: \"old\"",
        &format!("If-Range: {}", fx.etag),
        "Range: bytes=10-19",
    ]);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &fx.data[10..20], "206");
}

#[test]
fn future_mtime_is_not_sent_as_last_modified() {
    // RFC 9110 §8.8.2.1: Last-Modified must not be later than Date; a future mtime is replaced by
    // the message date. And such a date is then not a strong validator for If-Range.
    let store = Store::new();
    let data = gen_bytes(5, 100);
    store.write_with_mtime("future.ts", &data, now_secs() + 86_400);
    store.import();
    let server = store.serve();
    let r = server.get("/future.ts", &[]);
    assert_status(&r, 200);
    let lm = parse_http_date(r.must("last-modified")).expect("Last-Modified");
    let date = parse_http_date(r.must("date")).expect("Date");
    assert!(lm <= date, "Last-Modified {lm} is later than Date {date}");
    let lm_s = r.must("last-modified").to_string();
    let r = server.get(
        "/future.ts",
        &[&format!("If-Range: {lm_s}"), "Range: bytes=0-9"],
    );
    assert_status(&r, 200);
}

#[test]
fn reimport_while_serving_is_never_a_mix() {
    // `store import` of a new version while the server runs: each answer must be entirely the old
    // version (old length, old ETag, old bytes) or entirely the new one, never a splice.
    let store = Store::new();
    let v1 = gen_bytes(1, 1000);
    let v2 = gen_bytes(2, 3000);
    store.write_with_mtime("live.ts", &v1, OLD);
    store.import();
    let server = store.serve();
    let r1 = server.get("/live.ts", &[]);
    assert_bytes_eq(&r1.body, &v1, "v1");
    let e1 = r1.must("etag").to_string();
    store.write_with_mtime("live.ts", &v2, OLD + 100);
    store.import();
    let check = |r: &Response, range: Option<(usize, usize)>| {
        let e = r.must("etag");
        let (data, want_etag_old) = if e == e1 { (&v1, true) } else { (&v2, false) };
        let cl = r.content_length().expect("Content-Length");
        match range {
            None => {
                assert_status(r, 200);
                assert_eq!(
                    cl as usize,
                    data.len(),
                    "length vs ETag (old={want_etag_old})"
                );
                assert_bytes_eq(&r.body, data, "body vs ETag");
            }
            Some((a, b)) => {
                assert_status(r, 206);
                let b = b.min(data.len() - 1);
                assert_eq!(
                    r.must("content-range"),
                    format!("bytes {a}-{b}/{}", data.len()),
                    "Content-Range vs ETag (old={want_etag_old})"
                );
                assert_bytes_eq(&r.body, &data[a..=b], "range body vs ETag");
            }
        }
    };
    check(&server.get("/live.ts", &[]), None);
    check(
        &server.get("/live.ts", &["Range: bytes=500-"]),
        Some((500, usize::MAX)),
    );
    check(
        &server.get("/live.ts", &["Range: bytes=0-99"]),
        Some((0, 99)),
    );
    // The client holding v1 resumes with If-Range: 206 only if still v1.
    let r = server.get(
        "/live.ts",
        &[&format!("If-Range: {e1}"), "Range: bytes=500-"],
    );
    if r.status == 206 {
        assert_eq!(r.must("etag"), e1);
        assert_bytes_eq(&r.body, &v1[500..], "206 of v1");
    } else {
        assert_status(&r, 200);
        assert_bytes_eq(&r.body, &v2, "full v2");
    }
}

#[test]
fn reimport_while_serving_shows_within_open_file_valid() {
    // The server keeps hot objects open (store.open_file_cache). A version installed by another
    // process must show within store.open_file_valid, and every answer meanwhile is one whole
    // version. Polls with a bound; never assumes how fast the machine is.
    let store = Store::new();
    let v1 = gen_bytes(11, 4000);
    let v2 = gen_bytes(12, 5000);
    store.write_with_mtime("hot.ts", &v1, OLD);
    store.import();
    let server = store.serve_with("[store]\nopen_file_valid = \"1s\"\n");
    let r = server.get("/hot.ts", &[]);
    assert_bytes_eq(&r.body, &v1, "v1 before the re-import");
    store.write_with_mtime("hot.ts", &v2, OLD + 100);
    store.import();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = server.get("/hot.ts", &[]);
        assert_status(&r, 200);
        if r.body.len() == v2.len() {
            assert_bytes_eq(&r.body, &v2, "v2 after the re-import");
            break;
        }
        assert_bytes_eq(&r.body, &v1, "still v1, whole");
        assert!(
            std::time::Instant::now() < deadline,
            "the new version did not show within 15 s (open_file_valid = 1s)"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
