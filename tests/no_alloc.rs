//! Issue 13: on the plain path, a GET or a range GET is planned and its head written without a
//! heap allocation once the first request has filled what is kept (the object's rendered fields,
//! the thread's head buffer and Date).
//!
//! A test binary of its own, because it needs its own global allocator: one that counts the
//! allocations of the calling thread (a thread-local count, so that the test harness's other
//! threads do not interfere) and hands every call to the system allocator. Each case parses the
//! request head from bytes (`h1::head`), routes it (`plan::route`), plans it (`plan::respond`,
//! with CORS fields where the case has an `Origin`) and writes its head (`h1::response`), as
//! `serve::answer` and `h1::conn` do, around the store's lookup (an `RwLock` read, a map search by
//! the key's text and an `Arc` clone: no allocation either).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use eddy::config::Limits;
use eddy::serve::h1::head::{self, Parsed};
use eddy::serve::h1::response::HeadBuf;
use eddy::serve::plan::cors::{Allow, Cors};
use eddy::serve::plan::range::RangeLimits;
use eddy::serve::plan::respond::{self, Method, ObjectFields, ObjectMeta, RequestFacts};
use eddy::serve::plan::route;
use eddy::store::OpenObject;

/// Counts the allocations of each thread, then lets the system allocator do them.
struct Counting;

thread_local! {
    /// Const-initialised and without a destructor: touching it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn counted() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method hands its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract for them; the only other work is a plain add to a thread-local
// `Cell<u64>`, which neither allocates (const initialiser, no destructor to register) nor
// unwinds (`try_with` returns an error instead of panicking during thread teardown). Tested by
// `the_counter_sees_an_allocation` below and by every case of this file.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted();
        // SAFETY: the caller's `layout` is passed on as it came (see the impl's argument).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted();
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LIMITS: RangeLimits = RangeLimits {
    max_ranges: 16,
    max_sum_percent: 100,
};

/// 1 MiB, modified 1,700,000,000 (2023-11-14).
fn object() -> std::io::Result<OpenObject> {
    let mut file = tempfile::tempfile()?;
    file.write_all(&vec![7u8; 1 << 20])?;
    let modified = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    Ok(OpenObject::new(
        file,
        1 << 20,
        modified,
        "0123456789abcdef0123456789abcdef".into(),
    ))
}

/// One request as the plain path answers it: its status and head length.
fn answer(
    request: &[u8],
    object: &OpenObject,
    cors: &Cors,
    cache_control: &Arc<str>,
    secs: u64,
    limits: &Limits,
) -> (u16, usize) {
    let Parsed::Complete(head) = head::parse(request, limits) else {
        return (0, 0);
    };
    let Ok(target) = route::route(head.target) else {
        return (1, 0);
    };
    // Rendered once per open object, as `serve::answer` does.
    let Some(fields) =
        object.derived(|| ObjectFields::new(&target.key, &object.etag, 1_700_000_000))
    else {
        return (2, 0);
    };
    let facts = RequestFacts {
        head_only: Method::parse(head.method) == Method::Head,
        range: head.fields.range.as_deref(),
        conditions: &head.fields.conditions,
        path_range: target.path_range,
    };
    let meta = ObjectMeta {
        len: object.len,
        fields,
        cache_control: Some(cache_control),
    };
    let mut plan = respond::object(&facts, &meta, secs, LIMITS, 7);
    if head.fields.origin().is_some() {
        cors.decorate(head.fields.origin(), &mut plan.headers);
    }
    let written = HeadBuf::of(&plan, secs, head.keep_alive, head.http10);
    (plan.status, black_box(written.len()))
}

#[test]
fn the_counter_sees_an_allocation() {
    let before = allocations();
    let v: Vec<u8> = black_box(Vec::with_capacity(64));
    assert_eq!(allocations() - before, 1);
    drop(v);
}

#[test]
fn planning_and_writing_a_head_allocate_nothing_in_steady_state() -> std::io::Result<()> {
    let object = object()?;
    let limits = Limits::default();
    let cors = Cors {
        allow: Allow::List(vec![Arc::from("https://player.example")]),
        max_age: Arc::from("600"),
        timing: true,
    };
    let cache_control: Arc<str> = Arc::from("public, max-age=31536000, immutable");
    let etag = "\"0123456789abcdef0123456789abcdef\"";
    let cases: Vec<(&str, String, u16)> = vec![
        ("GET", "GET /titles/81/v.mp4 HTTP/1.1\r\nHost: cache\r\n\r\n".into(), 200),
        (
            "range GET",
            "GET /titles/81/v.mp4 HTTP/1.1\r\nHost: cache\r\nRange: bytes=0-1048575\r\nUser-Agent: player\r\n\r\n".into(),
            206,
        ),
        (
            "suffix range",
            "GET /titles/81/v.mp4 HTTP/1.1\r\nHost: cache\r\nRange: bytes=-500\r\n\r\n".into(),
            206,
        ),
        (
            "If-Range",
            format!("GET /titles/81/v.mp4 HTTP/1.1\r\nHost: cache\r\nRange: bytes=100-\r\nIf-Range: {etag}\r\n\r\n"),
            206,
        ),
        (
            "path range and a query",
            "GET /titles/81/v.mp4/range/0-99?session=42 HTTP/1.1\r\nHost: cache\r\n\r\n".into(),
            200,
        ),
        ("HEAD", "HEAD /titles/81/v.mp4 HTTP/1.1\r\nHost: cache\r\n\r\n".into(), 200),
        (
            "HTTP/1.0 keep-alive",
            "GET /titles/81/v.mp4 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".into(),
            200,
        ),
        (
            "unsatisfiable",
            "GET /titles/81/v.mp4 HTTP/1.1\r\nHost: cache\r\nRange: bytes=2000000-\r\n\r\n".into(),
            416,
        ),
        (
            "CORS range GET",
            "GET /titles/81/v.mp4 HTTP/1.1\r\nHost: cache\r\nOrigin: https://player.example\r\nRange: bytes=0-99\r\n\r\n".into(),
            206,
        ),
    ];
    // Not steady state, so not counted: the first answer renders the object's fields and takes
    // the thread's head buffer and Date.
    let secs = 1_700_003_600;
    for (name, request, status) in &cases {
        let got = answer(
            request.as_bytes(),
            &object,
            &cors,
            &cache_control,
            secs,
            &limits,
        );
        assert_eq!(got.0, *status, "{name}");
    }
    for (name, request, status) in &cases {
        let before = allocations();
        for i in 0..1000u64 {
            // A new second every 100 requests: the Date is rendered again, in place.
            let got = answer(
                request.as_bytes(),
                &object,
                &cors,
                &cache_control,
                secs + i / 100,
                &limits,
            );
            assert_eq!(got.0, *status, "{name}");
        }
        assert_eq!(
            allocations() - before,
            0,
            "{name}: allocations in 1000 answers"
        );
    }
    // The head is what the planner means (the same bytes as the allocating serialisation).
    let request = b"GET /titles/81/v.mp4 HTTP/1.1\r\nHost: cache\r\nRange: bytes=0-9\r\n\r\n";
    let Parsed::Complete(head) = head::parse(request, &limits) else {
        panic!("a complete head");
    };
    let fields = ObjectFields::new("titles/81/v.mp4", &object.etag, 1_700_000_000);
    let facts = RequestFacts {
        head_only: false,
        range: head.fields.range.as_deref(),
        conditions: &head.fields.conditions,
        path_range: None,
    };
    let meta = ObjectMeta {
        len: object.len,
        fields: &fields,
        cache_control: Some(&cache_control),
    };
    let plan = respond::object(&facts, &meta, secs, LIMITS, 7);
    let written = HeadBuf::of(&plan, secs, true, false);
    assert_eq!(&written[..], &plan.head(secs, true, false)[..]);
    let text = String::from_utf8_lossy(&written).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 206 Partial Content\r\nDate: Tue, 14 Nov 2023 23:13:20 GMT\r\nServer: eddy\r\nETag: \"0123456789abcdef0123456789abcdef\"\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nAccept-Ranges: bytes\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/1048576\r\n"),
        "{text}"
    );
    assert!(text.ends_with("Content-Length: 10\r\n\r\n"), "{text}");
    Ok(())
}
