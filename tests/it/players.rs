//! Players: what a web player needs from eddy, through the real binary. CORS (preflights
//! accepted and refused, exposed fields, `Vary: Origin`, nothing for other origins, the same
//! bytes either way), the path form of signed URLs (every refusal reason, prefix scope, the
//! `/range/` form, no way out of the prefix), Cache-Control, and two real players over HTTPS
//! with path tokens: hls.js in Debian's headless chromium on another origin, and ffmpeg, whose
//! decoded frames must equal those of the local files.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;
use crate::tls::Identity;

const SECRET_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const PLAYER: &str = "http://player.test:8000";

fn keys(id: &str) -> String {
    format!("[[tokens.keys]]\nid = \"{id}\"\nsecret_hex = \"{SECRET_HEX}\"\n")
}

fn cors_toml(origins: &str) -> String {
    format!("[cors]\nallow_origins = {origins}\n")
}

/// Two titles (a movie and a playlist each) and a file outside any title.
struct Library {
    store: Store,
    movie: Vec<u8>,
    other: Vec<u8>,
    playlist: Vec<u8>,
}

fn library() -> Library {
    let store = Store::new();
    let movie = gen_bytes(81, 200_000);
    let other = gen_bytes(82, 50_000);
    let playlist = b"#EXTM3U\n#EXT-X-ENDLIST\n".to_vec();
    store.write("titles/81/video.mp4", &movie);
    store.write("titles/81/hls/index.m3u8", &playlist);
    store.write("titles/82/video.mp4", &other);
    store.write("titles/810/video.mp4", &other);
    store.write("titles/outside.mp4", &other);
    store.import();
    Library {
        store,
        movie,
        other,
        playlist,
    }
}

/// The CORS fields a response carries.
fn cors_fields(r: &Response) -> Vec<(String, String)> {
    r.headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k.starts_with("access-control-") || k == "timing-allow-origin"
        })
        .cloned()
        .collect()
}

/// Everything but Date and the CORS fields (and Vary), to compare answers with and without CORS.
fn without_cors(r: &Response) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let headers = r
        .headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !(k == "date"
                || k == "vary"
                || k.starts_with("access-control-")
                || k == "timing-allow-origin")
        })
        .cloned()
        .collect();
    (r.status, headers, r.body.clone())
}

const PREFLIGHT: [&str; 2] = [
    "Access-Control-Request-Method: GET",
    "Access-Control-Request-Headers: range, if-none-match",
];

fn origin(o: &str) -> String {
    format!("Origin: {o}")
}

// ---------------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------------

#[test]
fn cors_is_off_by_default_and_options_stays_405() {
    let lib = library();
    let server = lib.store.serve();
    let o = origin(PLAYER);
    let r = server.request(
        "OPTIONS",
        "/titles/81/video.mp4",
        &[&o, PREFLIGHT[0], PREFLIGHT[1]],
    );
    assert_status(&r, 405);
    assert_eq!(r.must("allow"), "GET, HEAD");
    assert!(cors_fields(&r).is_empty(), "{}", r.describe());
    let r = server.get("/titles/81/video.mp4", &[&o]);
    assert_status(&r, 200);
    assert!(cors_fields(&r).is_empty(), "{}", r.describe());
    assert_eq!(r.header("vary"), None);
}

#[test]
fn preflights_are_accepted_for_allowed_origins_and_refused_otherwise() {
    let lib = library();
    let server = lib.store.serve_with(&cors_toml(&format!(
        "[\"{PLAYER}\", \"https://other.test\"]"
    )));
    let ok = origin(PLAYER);
    let r = server.request(
        "OPTIONS",
        "/titles/81/video.mp4",
        &[&ok, PREFLIGHT[0], PREFLIGHT[1]],
    );
    assert_status(&r, 204);
    assert_eq!(r.must("access-control-allow-origin"), PLAYER);
    assert_eq!(r.must("access-control-allow-methods"), "GET, HEAD");
    let allowed: Vec<String> = r
        .must("access-control-allow-headers")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for h in [
        "range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "if-range",
    ] {
        assert!(allowed.iter().any(|a| a == h), "{h} not in {allowed:?}");
    }
    assert_eq!(r.must("access-control-max-age"), "7200");
    assert_eq!(r.must("vary"), "Origin");
    assert!(
        r.body.is_empty() && r.header("content-length").is_none(),
        "{}",
        r.describe()
    );
    // The preflight is answered before routing and the token: it reveals nothing about objects.
    let r = server.request("OPTIONS", "/no/such/object", &[&ok, PREFLIGHT[0]]);
    assert_status(&r, 204);
    // HEAD may be asked for too.
    let r = server.request(
        "OPTIONS",
        "/titles/81/video.mp4",
        &[&ok, "Access-Control-Request-Method: HEAD"],
    );
    assert_status(&r, 204);

    // Refused: exactly the CORS-off answer, without a CORS field.
    let evil = origin("https://evil.test");
    for (what, extra) in [
        ("other origin", vec![evil.as_str(), PREFLIGHT[0]]),
        (
            "a method we do not serve",
            vec![ok.as_str(), "Access-Control-Request-Method: PUT"],
        ),
        (
            "a field we do not take",
            vec![
                ok.as_str(),
                PREFLIGHT[0],
                "Access-Control-Request-Headers: range, x-player-session",
            ],
        ),
        ("no requested method", vec![ok.as_str()]),
    ] {
        let r = server.request("OPTIONS", "/titles/81/video.mp4", &extra);
        assert_status(&r, 405);
        assert_eq!(r.must("allow"), "GET, HEAD", "{what}");
        assert!(cors_fields(&r).is_empty(), "{what}: {}", r.describe());
    }
    // Counted: three accepted, three refused ("no requested method" is no preflight).
    let text = scrape(&server);
    let n = |r: &str| {
        must_sample(
            &text,
            &format!("eddy_cors_preflights_total{{result=\"{r}\"}}"),
        )
    };
    assert_eq!((n("accepted"), n("refused")), (3.0, 3.0));
    assert_eq!(
        must_sample(
            &text,
            "eddy_requests_total{transport=\"http\",status=\"204\"}"
        ),
        3.0
    );
    // And a CORS fetch of it then works (the browser's next step).
    let r = server.get("/titles/81/video.mp4", &[&ok, "Range: bytes=0-99"]);
    assert_status(&r, 206);
    assert_eq!(r.must("access-control-allow-origin"), PLAYER);
    assert_bytes_eq(&r.body, &lib.movie[..100], "CORS range");
}

#[test]
fn allowed_origins_read_with_exposed_fields_and_others_get_the_same_bytes_without_cors() {
    let lib = library();
    let on = lib.store.serve_with(&cors_toml(&format!("[\"{PLAYER}\"]")));
    let off = lib.store.serve();
    let ok = origin(PLAYER);
    let evil = origin("https://evil.test");
    let etag = off.get("/titles/81/video.mp4", &[]).must("etag").to_owned();
    let inm = format!("If-None-Match: {etag}");
    let cases: Vec<(&str, &str, &str, Vec<&str>)> = vec![
        ("whole", "GET", "/titles/81/video.mp4", vec![]),
        (
            "range",
            "GET",
            "/titles/81/video.mp4",
            vec!["Range: bytes=100-1099"],
        ),
        (
            "multi range",
            "GET",
            "/titles/81/video.mp4",
            vec!["Range: bytes=0-9,50-59"],
        ),
        ("head", "HEAD", "/titles/81/video.mp4", vec![]),
        ("not modified", "GET", "/titles/81/video.mp4", vec![&inm]),
        (
            "unsatisfiable",
            "GET",
            "/titles/81/video.mp4",
            vec!["Range: bytes=900000-"],
        ),
        (
            "path range",
            "GET",
            "/titles/81/video.mp4/range/10-19",
            vec![],
        ),
        ("missing", "GET", "/titles/81/nope.mp4", vec![]),
        ("post", "POST", "/titles/81/video.mp4", vec![]),
    ];
    for (name, method, target, extra) in &cases {
        let plain = off.request(method, target, extra);
        let with = |o: &str| {
            let mut e = extra.clone();
            e.push(o);
            on.request(method, target, &e)
        };
        let allowed = with(&ok);
        let refused = with(&evil);
        let none = on.request(method, target, extra);
        for (who, r) in [
            ("allowed", &allowed),
            ("other origin", &refused),
            ("no Origin", &none),
        ] {
            let what = format!("{name} ({who})");
            let (status, mut a, body) = without_cors(r);
            let (want_status, mut b, want_body) = without_cors(&plain);
            // Multipart boundaries differ per response.
            if *name == "multi range" {
                a.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                b.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
                assert_eq!((status, a.len()), (want_status, b.len()), "{what}");
                assert_eq!(body.len(), want_body.len(), "{what}");
            } else {
                assert_eq!((status, &a), (want_status, &b), "{what}");
                assert_bytes_eq(&body, &want_body, &what);
            }
            assert_eq!(r.must("vary"), "Origin", "{what}");
        }
        assert!(
            cors_fields(&refused).is_empty(),
            "{name}: {}",
            refused.describe()
        );
        assert!(cors_fields(&none).is_empty(), "{name}: {}", none.describe());
        if *method == "POST" {
            continue;
        }
        assert_eq!(
            allowed.must("access-control-allow-origin"),
            PLAYER,
            "{name}"
        );
        assert_eq!(allowed.must("timing-allow-origin"), PLAYER, "{name}");
        let exposed: Vec<String> = allowed
            .must("access-control-expose-headers")
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        assert_eq!(
            exposed,
            ["content-range", "content-length", "etag", "accept-ranges"],
            "{name}"
        );
    }
    assert!(
        cases.iter().any(|c| c.0 == "not modified")
            && off.get("/titles/81/video.mp4", &[&inm]).status == 304,
        "the 304 case is a 304"
    );
}

#[test]
fn a_wildcard_allows_every_origin_and_timing_can_be_left_out() {
    let lib = library();
    let server = lib.store.serve_with(
        "[cors]\nallow_origins = [\"*\"]\ntiming_allow_origin = false\nmax_age = \"10m\"\n",
    );
    let r = server.get("/titles/81/video.mp4", &["Origin: https://anyone.test"]);
    assert_status(&r, 200);
    assert_eq!(r.must("access-control-allow-origin"), "*");
    assert_eq!(r.header("timing-allow-origin"), None);
    let r = server.request(
        "OPTIONS",
        "/titles/81/video.mp4",
        &["Origin: https://anyone.test", PREFLIGHT[0]],
    );
    assert_status(&r, 204);
    assert_eq!(r.must("access-control-max-age"), "600");
}

#[test]
fn a_listener_can_keep_cors_off() {
    let lib = library();
    let server = lib.store.serve_with(&format!(
        "{}[serve]\ncors = false\n",
        cors_toml(&format!("[\"{PLAYER}\"]"))
    ));
    let ok = origin(PLAYER);
    assert_status(
        &server.request("OPTIONS", "/titles/81/video.mp4", &[&ok, PREFLIGHT[0]]),
        405,
    );
    let r = server.get("/titles/81/video.mp4", &[&ok]);
    assert!(
        cors_fields(&r).is_empty() && r.header("vary").is_none(),
        "{}",
        r.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// Path tokens
// ---------------------------------------------------------------------------------------------

/// A plain listener requiring tokens, with CORS on, and the config `eddy token sign` reads.
fn signed(lib: &Library) -> (Server, PathBuf) {
    let toml = format!(
        "[serve]\nrequire_tokens = true\n{}{}",
        cors_toml(&format!("[\"{PLAYER}\"]")),
        keys("k1")
    );
    let server = lib.store.serve_with(&toml);
    let config = lib.store.config("sign.toml", &keys("k1"));
    (server, config)
}

fn path_token(config: &Path, args: &[&str]) -> String {
    token_sign_both(config, args).1
}

fn refusals(server: &Server, reason: &str) -> f64 {
    sample(
        &scrape(server),
        &format!("eddy_token_refusals_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

#[test]
fn token_sign_prints_both_forms_of_one_grant() {
    let lib = library();
    let (server, config) = signed(&lib);
    let (query, path) = token_sign_both(&config, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    assert!(
        query.starts_with("e=") && query.contains("&t=k1."),
        "{query}"
    );
    assert!(
        path.starts_with("/t/") && path.ends_with("/titles/81/"),
        "{path}"
    );
    // The segment is `e` and `t` joined by a dot.
    let e = query
        .split('&')
        .next()
        .and_then(|p| p.strip_prefix("e="))
        .unwrap_or_default();
    let t = query
        .split('&')
        .nth(1)
        .and_then(|p| p.strip_prefix("t="))
        .unwrap_or_default();
    assert_eq!(path, format!("/t/{e}.{t}/titles/81/"));
    let by_query = server.get(&format!("/titles/81/video.mp4?{query}"), &[]);
    let by_path = server.get(&format!("{path}video.mp4"), &[]);
    assert_status(&by_query, 200);
    assert_status(&by_path, 200);
    assert_bytes_eq(&by_path.body, &lib.movie, "path token GET");
    assert_eq!(by_path.must("etag"), by_query.must("etag"));
}

#[test]
fn a_path_token_serves_its_folder_ranges_and_conditionals() {
    let lib = library();
    let (server, config) = signed(&lib);
    let base = path_token(&config, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    let movie = format!("{base}video.mp4");
    // A playlist's relative URI resolves below the token.
    let r = server.get(&format!("{base}hls/index.m3u8"), &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &lib.playlist, "playlist");
    let r = server.get(&movie, &["Range: bytes=1000-1999"]);
    assert_status(&r, 206);
    assert_eq!(r.must("content-range"), "bytes 1000-1999/200000");
    assert_bytes_eq(&r.body, &lib.movie[1000..2000], "range");
    let etag = r.must("etag").to_owned();
    let r = server.get(&movie, &[&format!("If-None-Match: {etag}")]);
    assert_status(&r, 304);
    let r = server.head(&movie, &[]);
    assert_status(&r, 200);
    assert_eq!(r.content_length(), Some(200_000));
    assert!(r.body.is_empty());
    // The Open Connect range form after the token.
    let r = server.get(&format!("{movie}/range/100-199"), &[]);
    assert_status(&r, 200);
    assert_eq!(r.header("content-range"), None);
    assert_bytes_eq(&r.body, &lib.movie[100..200], "/range/ with a path token");
    let r = server.get(&format!("{movie}/range/300000-300010"), &[]);
    assert_status(&r, 416);
    // A query beside a path token changes nothing, and a bogus query token is ignored.
    let r = server.get(
        &format!("{movie}?e=1&t=junk&session=7"),
        &["Range: bytes=0-9"],
    );
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &lib.movie[..10], "query ignored");
    // CORS together with a path token.
    let r = server.get(&movie, &[&origin(PLAYER), "Range: bytes=0-9"]);
    assert_status(&r, 206);
    assert_eq!(r.must("access-control-allow-origin"), PLAYER);
    // A single-object token covers exactly that object, with its ranges.
    let one = path_token(
        &config,
        &["--prefix", "/titles/81/video.mp4", "--ttl", "1h"],
    );
    assert!(one.ends_with("/titles/81/video.mp4"), "{one}");
    assert_status(&server.get(&one, &[]), 200);
    assert_status(&server.get(&format!("{one}/range/0-9"), &[]), 200);
    let seg = one.trim_end_matches("/titles/81/video.mp4");
    assert_status(
        &server.get(&format!("{seg}/titles/81/hls/index.m3u8"), &[]),
        403,
    );
    // A folder called `t` is still a folder; without a token it needs the query form.
    assert_status(&server.get("/t/a.m4s", &[]), 403);
}

#[test]
fn every_refusal_of_a_path_token_is_a_403_with_its_reason() {
    let lib = library();
    let (server, config) = signed(&lib);
    let good = path_token(&config, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    let seg = good
        .strip_prefix("/t/")
        .and_then(|s| s.strip_suffix("/titles/81/"))
        .expect("path form")
        .to_owned();
    let fields: Vec<&str> = seg.split('.').collect();
    assert_eq!(fields.len(), 5, "{seg}");
    let with = |f: &[&str]| format!("/t/{}/titles/81/video.mp4", f.join("."));
    let other_key = lib.store.config("other.toml", &keys("k2"));
    let unknown = path_token(&other_key, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    let expired = path_token(&config, &["--prefix", "/titles/81/", "--expiry", "1000"]);
    let elsewhere = path_token(
        &config,
        &[
            "--prefix",
            "/titles/81/",
            "--ttl",
            "1h",
            "--client",
            "203.0.113.0/24",
        ],
    );
    let mut mac = fields[4].to_owned();
    let last = mac.pop().unwrap_or('A');
    mac.push(if last == 'A' { 'Q' } else { 'A' });
    let cases: Vec<(&str, String)> = vec![
        (
            "malformed",
            with(&[fields[0], fields[1], "!!", fields[3], fields[4]]),
        ),
        ("unknown_key", format!("{unknown}video.mp4")),
        (
            "tampered",
            with(&[fields[0], fields[1], fields[2], fields[3], &mac]),
        ),
        (
            "tampered",
            with(&["1999999999", fields[1], fields[2], fields[3], fields[4]]),
        ),
        ("expired", format!("{expired}video.mp4")),
        ("wrong_prefix", format!("/t/{seg}/titles/82/video.mp4")),
        ("wrong_prefix", format!("/t/{seg}/titles/810/video.mp4")),
        ("wrong_prefix", format!("/t/{seg}/titles/outside.mp4")),
        ("wrong_client", format!("{elsewhere}video.mp4")),
        ("missing", "/titles/81/video.mp4".to_owned()),
    ];
    for (reason, target) in &cases {
        let before = refusals(&server, reason);
        let r = server.get(target, &[]);
        assert_status(&r, 403);
        assert_eq!(r.body, b"forbidden\n", "{target}");
        assert_eq!(
            refusals(&server, reason),
            before + 1.0,
            "{reason}: {target}"
        );
        // The refusal is the same whether the object exists or not.
        let absent = target.replace("video.mp4", "absent.mp4");
        if absent != *target {
            assert_status(&server.get(&absent, &[]), 403);
        }
    }
    // The good token still serves.
    assert_status(&server.get(&format!("{good}video.mp4"), &[]), 200);
}

#[test]
fn a_path_token_never_lets_a_request_out_of_its_prefix() {
    let lib = library();
    let (server, config) = signed(&lib);
    let base = path_token(&config, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    let seg = base.trim_end_matches("/titles/81/");
    for (rest, status) in [
        ("titles/81/../82/video.mp4", 400),
        ("titles/81/./video.mp4", 400),
        ("titles/81/%2e%2e/82/video.mp4", 400),
        ("titles/81/%2E%2E/%2E%2E/secret.txt", 400),
        ("titles/81/..%2F82%2Fvideo.mp4", 400),
        ("titles/81/..%2f..%2foutside.mp4", 400),
        ("titles/81%2F..%2F82/video.mp4", 400),
        ("titles/81/..%5C82%5Cvideo.mp4", 400),
        ("titles/81/%252e%252e/82/video.mp4", 404),
        ("/titles/82/video.mp4", 400),
        ("../titles/82/video.mp4", 400),
        ("titles/81/video.mp4%00", 400),
        ("titles/82/video.mp4", 403),
        ("titles/8/video.mp4", 403),
    ] {
        let target = format!("{seg}/{rest}");
        let r = server.get(&target, &[]);
        assert_eq!(r.status, status, "{target}: {}", r.describe());
        assert!(
            !r.body
                .windows(64)
                .any(|w| lib.other.windows(64).next() == Some(w)),
            "{target} sent bytes of another title"
        );
    }
    // The token segment cannot be smuggled through an encoded separator either.
    let smuggled = format!("/t%2F{}/titles/81/video.mp4", seg.trim_start_matches("/t/"));
    assert_status(&server.get(&smuggled, &[]), 400);
    // A path token for one title with a query token for another: the path token decides.
    let q82 = token_sign(&config, &["--prefix", "/titles/82/", "--ttl", "1h"]);
    assert_status(
        &server.get(&format!("{seg}/titles/82/video.mp4?{q82}"), &[]),
        403,
    );
}

// ---------------------------------------------------------------------------------------------
// Freshness
// ---------------------------------------------------------------------------------------------

#[test]
fn cache_control_comes_with_200_206_and_304_and_playlists_stay_short() {
    let lib = library();
    let immutable = "public, max-age=31536000, immutable";
    let server = lib.store.serve();
    let r = server.get("/titles/81/video.mp4", &[]);
    assert_status(&r, 200);
    assert_eq!(r.must("cache-control"), immutable);
    let etag = r.must("etag").to_owned();
    let r = server.get("/titles/81/video.mp4", &["Range: bytes=0-9"]);
    assert_status(&r, 206);
    assert_eq!(r.must("cache-control"), immutable);
    let r = server.get("/titles/81/video.mp4", &[&format!("If-None-Match: {etag}")]);
    assert_status(&r, 304);
    assert_eq!(r.must("cache-control"), immutable);
    let r = server.head("/titles/81/video.mp4", &[]);
    assert_eq!(r.must("cache-control"), immutable);
    let r = server.get("/titles/81/hls/index.m3u8", &[]);
    assert_status(&r, 200);
    assert_eq!(r.must("cache-control"), "public, max-age=2");
    for (target, extra, status) in [
        ("/titles/81/nope.mp4", vec![], 404),
        ("/titles/81/video.mp4", vec!["Range: bytes=900000-"], 416),
        ("/titles/81/video.mp4", vec!["If-Match: \"other\""], 412),
    ] {
        let r = server.get(target, &extra);
        assert_status(&r, status);
        assert_eq!(r.header("cache-control"), None, "{target} {status}");
    }

    // Rules by prefix and media type come first; "" sends none.
    let server = lib.store.serve_with(
        "[cache_control]\ndefault = \"public, max-age=600\"\n[[cache_control.rules]]\nprefix = \"/titles/82/\"\nvalue = \"no-cache\"\n[[cache_control.rules]]\nmedia_type = \"application/vnd.apple.mpegurl\"\nvalue = \"\"\n",
    );
    let cc = |t: &str| {
        server
            .get(t, &[])
            .header("cache-control")
            .map(str::to_owned)
    };
    assert_eq!(
        cc("/titles/81/video.mp4").as_deref(),
        Some("public, max-age=600")
    );
    assert_eq!(cc("/titles/82/video.mp4").as_deref(), Some("no-cache"));
    assert_eq!(
        cc("/titles/810/video.mp4").as_deref(),
        Some("public, max-age=600")
    );
    assert_eq!(cc("/titles/81/hls/index.m3u8"), None);
    assert_bytes_eq(
        &server.get("/titles/82/video.mp4", &[]).body,
        &lib.other,
        "bytes unchanged",
    );
}

// ---------------------------------------------------------------------------------------------
// Real players over HTTPS with path tokens
// ---------------------------------------------------------------------------------------------

/// Segments of the test title: 2 s each (keyframe every 48 frames at 24 fps).
const SEGMENTS: usize = 20;
const SEGMENT_SECS: f64 = 2.0;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Encodes a 40 s VP9 title as fMP4 HLS into `titles/81/hls/` of the store's source.
fn encode_title(store: &Store) -> PathBuf {
    let dir = store.src.join("titles/81/hls");
    std::fs::create_dir_all(&dir).expect("mkdir hls");
    let duration = format!("{}", SEGMENTS as f64 * SEGMENT_SECS);
    let out = Command::new("ffmpeg")
        .current_dir(&dir)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=320x240:rate=24")
        .args(["-t", &duration])
        .args([
            "-c:v",
            "libvpx-vp9",
            "-b:v",
            "200k",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
        ])
        .args(["-g", "48", "-keyint_min", "48", "-pix_fmt", "yuv420p"])
        .args(["-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"])
        .args([
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "init.mp4",
        ])
        .args(["-hls_segment_filename", "seg%03d.m4s", "index.m3u8"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not encode the title: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let playlist = std::fs::read_to_string(dir.join("index.m3u8")).expect("playlist");
    let segments = playlist.lines().filter(|l| l.ends_with(".m4s")).count();
    assert_eq!(segments, SEGMENTS, "segments in\n{playlist}");
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"init.mp4\""),
        "{playlist}"
    );
    dir
}

/// A store holding the encoded title, and eddy with a TLS listener that requires tokens (the
/// default), CORS for `page_origin`, and a full access log.
struct Title {
    store: Store,
    server: Server,
    local: PathBuf,
    /// `https://127.0.0.1:PORT/t/<token>/titles/81/`.
    base: String,
    access_log: PathBuf,
}

fn serve_title(page_origin: &str) -> Title {
    let store = Store::new();
    let local = encode_title(&store);
    store.import();
    let id = Identity::new("eddy players test");
    let cert = store.path().join("tls.crt");
    let key = store.path().join("tls.key");
    std::fs::write(&cert, &id.cert_pem).expect("write cert");
    std::fs::write(&key, &id.key_pem).expect("write key");
    let access_log = store.path().join("access.log");
    let toml = format!(
        "[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{}\"\nkey = \"{}\"\n[log]\naccess = \"full\"\naccess_file = \"{}\"\n{}{}",
        cert.display(),
        key.display(),
        access_log.display(),
        cors_toml(&format!("[\"{page_origin}\"]")),
        keys("k1")
    );
    let config = store.config("eddy.toml", &toml);
    let server = Server::start_tls(&store, &config, 1);
    let path = path_token(&config, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    let base = format!("https://{}{path}", server.https_addr());
    Title {
        store,
        server,
        local,
        base,
        access_log,
    }
}

/// `ffmpeg -i INPUT -f framemd5 -`: one line per decoded frame (comments dropped).
fn framemd5(input: &str) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-i",
            input,
        ])
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not read {input}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn ffmpeg_reads_the_hls_title_over_https_with_path_tokens_frame_for_frame() {
    if !have("ffmpeg") {
        eprintln!("skipped: ffmpeg not installed (apt-get install ffmpeg)");
        return;
    }
    let title = serve_title("http://127.0.0.1:1");
    let local = framemd5(&title.local.join("index.m3u8").to_string_lossy());
    let remote = framemd5(&format!("{}hls/index.m3u8", title.base));
    assert_eq!(
        local.len(),
        SEGMENTS * 48,
        "frames decoded from the local files"
    );
    assert_eq!(remote.len(), local.len(), "frames decoded over HTTPS");
    for (i, (a, b)) in local.iter().zip(&remote).enumerate() {
        assert_eq!(a, b, "frame {i} differs");
    }
    // Every segment came over HTTPS through the path token.
    let log = std::fs::read_to_string(&title.access_log).unwrap_or_default();
    let logged = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&title.access_log).unwrap_or_default();
        (log.matches(".m4s\" 20").count() >= SEGMENTS).then_some(log)
    })
    .unwrap_or(log);
    // ffmpeg asks with `Range: bytes=0-`: 206 or 200, never anything else.
    for n in 0..SEGMENTS {
        let name = format!("/titles/81/hls/seg{n:03}.m4s\" ");
        assert!(
            logged.contains(&format!("{name}200")) || logged.contains(&format!("{name}206")),
            "seg{n:03} not fetched:\n{logged}"
        );
    }
    assert!(!logged.contains("\" 403"), "a refused request:\n{logged}");
    // Without the token the same listener refuses: the path token is what let ffmpeg in.
    let unsigned = format!(
        "https://{}/titles/81/hls/index.m3u8",
        title.server.https_addr()
    );
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-i",
            &unsigned,
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("run ffmpeg");
    assert!(
        !out.status.success(),
        "ffmpeg read the title without a token"
    );
    drop(title.store);
}

/// The origin of the player page: serves the page and hls.js, and takes the page's reports.
struct PageServer {
    addr: SocketAddr,
    reports: mpsc::Receiver<(String, String)>,
}

impl PageServer {
    fn start(page: Vec<u8>, hls_js: Vec<u8>) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
        let addr = listener.local_addr().expect("page server address");
        let (tx, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (page, hls_js, tx) = (page.clone(), hls_js.clone(), tx.clone());
                std::thread::spawn(move || page_request(conn, &page, &hls_js, &tx));
            }
        });
        PageServer { addr, reports }
    }
}

/// Answers one HTTP/1.1 request (then closes): `/` the page, `/hls.min.js`, `/report?K=V`.
fn page_request(conn: TcpStream, page: &[u8], hls_js: &[u8], tx: &mpsc::Sender<(String, String)>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split(' ').nth(1).unwrap_or("/").to_owned();
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let (status, ctype, body): (&str, &str, &[u8]) = if target == "/" || target.starts_with("/?") {
        ("200 OK", "text/html; charset=utf-8", page)
    } else if target == "/hls.min.js" {
        ("200 OK", "text/javascript", hls_js)
    } else if let Some(q) = target.strip_prefix("/report?") {
        if let Some((k, v)) = q.split_once('=') {
            let _ = tx.send((k.to_owned(), percent_decode(v)));
        }
        ("204 No Content", "text/plain", b"")
    } else {
        ("404 Not Found", "text/plain", b"")
    };
    let mut conn = conn;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let mut rest = Vec::new();
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let _ = (&conn).take(1 << 16).read_to_end(&mut rest);
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Ok(v) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A JSON number field of a flat report (`"name":1.5`).
fn number(json: &str, name: &str) -> Option<f64> {
    let at = json.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[test]
fn hls_js_in_chromium_plays_and_seeks_a_title_over_https_with_path_tokens() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: chromium not installed (apt-get install chromium)");
        return;
    };
    if !have("ffmpeg") {
        eprintln!("skipped: ffmpeg not installed (apt-get install ffmpeg)");
        return;
    }
    let player = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player");
    let Ok(hls_js) = std::fs::read(player.join("node_modules/hls.js/dist/hls.min.js")) else {
        eprintln!("skipped: hls.js not installed (run `npm ci` in tests/player)");
        return;
    };
    let page = std::fs::read(player.join("page.html")).expect("tests/player/page.html");
    let pages = PageServer::start(page, hls_js);
    let page_origin = format!("http://{}", pages.addr);
    let title = serve_title(&page_origin);

    // Play past three segments, seek into segment 15, play on into segment 16.
    let play = 3.0 * SEGMENT_SECS + 0.5;
    let seek = 15.0 * SEGMENT_SECS + 0.5;
    let after = 16.0 * SEGMENT_SECS + 0.2;
    let src = format!("{}hls/index.m3u8", title.base);
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace('&', "%26")
            .replace('=', "%3D")
            .replace('?', "%3F")
    };
    let url = format!(
        "{page_origin}/?src={}&play={play}&seek={seek}&after={after}&report={}",
        enc(&src),
        enc(&format!("{page_origin}/report"))
    );
    let profile = title.store.path().join("chromium-profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--ignore-certificate-errors",
        ])
        .args([
            "--autoplay-policy=no-user-gesture-required",
            "--mute-audio",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    // Wait for the page's result (the deadline only bounds a failure, nothing is timed).
    let mut progress = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let result = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match pages.reports.recv_timeout(left) {
            Ok((kind, value)) if kind == "result" => break Some(value),
            Ok((_, value)) => progress.push(value),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let Some(result) = result else {
        panic!(
            "the player reported no result; its progress: {progress:?}\n{}",
            title.server.stderr()
        );
    };
    eprintln!("player result: {result}");
    assert!(
        result.contains("\"ok\":true"),
        "the player failed: {result}\nprogress: {progress:?}"
    );
    assert!(
        result.contains("\"errors\":[]"),
        "the player reported errors: {result}"
    );
    let before = number(&result, "playedBeforeSeek").unwrap_or(0.0);
    let now = number(&result, "currentTime").unwrap_or(0.0);
    assert!(
        before >= play,
        "played {before} s before the seek: {result}"
    );
    assert!(now >= after, "at {now} s after the seek: {result}");
    assert_eq!(number(&result, "width"), Some(320.0), "{result}");

    // eddy's access log shows what the player fetched: the first segments, the one the seek
    // landed in and the next, and not the stretch it skipped.
    let log = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&title.access_log).unwrap_or_default();
        log.contains("/titles/81/hls/seg016.m4s\" 200")
            .then_some(log)
    })
    .unwrap_or_else(|| std::fs::read_to_string(&title.access_log).unwrap_or_default());
    let fetched = |n: usize| log.contains(&format!("/titles/81/hls/seg{n:03}.m4s\" 200"));
    let got: Vec<usize> = (0..SEGMENTS).filter(|&n| fetched(n)).collect();
    eprintln!("chromium fetched segments {got:?} of 0..{SEGMENTS}");
    for n in [0, 1, 2, 3, 15, 16] {
        assert!(fetched(n), "seg{n:03} was not fetched with 200:\n{log}");
    }
    for n in 9..=13 {
        assert!(
            !fetched(n),
            "seg{n:03} fetched although the seek skipped it:\n{log}"
        );
    }
    assert!(log.contains("/titles/81/hls/init.mp4\" 200"), "{log}");
    assert!(!log.contains("\" 403 "), "a refused request:\n{log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("/titles/81/"))
            .all(|l| l.contains("\"GET /t/")),
        "every request carried the path token:\n{log}"
    );
    let metrics = scrape(&title.server);
    let h2 = sample(
        &metrics,
        "eddy_requests_total{transport=\"h2\",status=\"200\"}",
    )
    .unwrap_or(0.0);
    eprintln!("chromium: {h2} answers over HTTP/2");
}
