//! `eddy-origin`, black-box: keys, signed manifests that verify with `eddy_proto`, catalogue
//! reloads and generations, content with single ranges, `--source` order, the test-only faults,
//! error bodies, exit codes, curl as a client, and the reports: accepted ones read back with the
//! numbers posted, refusals with their codes, and the database across a restart.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Duration;

use eddy_proto::manifest::{self, Expect, Manifest};
use eddy_proto::wire::{ErrorBody, VerifyKey};
use sha2::Digest as _;

use crate::support::origin::{catalogue_toml, keygen, run_origin, write_object, Origin};
use crate::support::*;

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A content dir with three objects; returns (temp dir, content dir, objects by key).
fn content() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    BTreeMap<String, Vec<u8>>,
) {
    let tmp = tempfile::Builder::new()
        .prefix("eddy-origin-it-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().join("content");
    fs::create_dir_all(&dir).expect("mkdir content");
    let mut objects = BTreeMap::new();
    for (i, (key, len)) in [
        ("titles/81/v-1080.mp4", 700_000),
        ("titles/81/a.m4a", 123_457),
        ("b.bin", 5_000),
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = gen_bytes(100 + i as u64, len);
        write_object(&dir, key, &bytes);
        objects.insert(key.to_owned(), bytes);
    }
    fs::write(tmp.path().join("secret.txt"), SECRET).expect("write secret");
    (tmp, dir, objects)
}

fn error_body(r: &Response) -> ErrorBody {
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        r.describe()
    );
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not an ErrorBody ({e}): {r:?}"))
}

fn check(origin: &Origin, body: &[u8], appliance: &str) -> Result<Manifest, manifest::Refusal> {
    manifest::check(
        body,
        &[origin.verify_key()],
        &Expect {
            appliance,
            held_generation: None,
            now: now_secs(),
        },
    )
}

fn keys_of(m: &Manifest) -> Vec<&str> {
    m.objects.iter().map(|e| e.key.as_str()).collect()
}

#[test]
fn keygen_writes_a_private_key_and_prints_a_public_key_that_parses() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("k.pem");
    let public = keygen(&path);
    VerifyKey::parse(&public).unwrap_or_else(|e| panic!("{public:?}: {e}"));
    let text = fs::read_to_string(&path).expect("read key");
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
    assert!(text.trim_end().ends_with("-----END PRIVATE KEY-----"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(&path).expect("stat key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let again = run_origin(&["keygen", "--out", path.to_str().expect("utf-8")]);
    assert_eq!(
        again.status.code(),
        Some(64),
        "an existing key is never overwritten"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--out"));
    assert_eq!(fs::read_to_string(&path).expect("read key"), text);

    let pubkey = run_origin(&["pubkey", "--key", path.to_str().expect("utf-8")]);
    assert!(pubkey.status.success());
    assert_eq!(String::from_utf8_lossy(&pubkey.stdout).trim(), public);
}

#[test]
fn the_manifest_verifies_and_lists_every_file_with_its_size_and_digest() {
    let (_tmp, dir, objects) = content();
    let origin = Origin::start(&dir, &["--fill-start", "02:30", "--manifest-ttl", "2h"]);
    let r = origin.get("/v1/manifest/oca-1");
    assert_status(&r, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.eddy.manifest+json")
    );
    let m = check(&origin, &r.body, "oca-1").unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(m.version, manifest::VERSION);
    assert_eq!(m.appliance, "oca-1");
    assert_eq!(m.fill_start.as_deref(), Some("02:30"));
    assert_eq!(m.expires_at - m.issued_at, 7_200);
    assert!(m.generation + 60 >= now_secs(), "starts at the unix time");
    // Every file, ranked by sorted key.
    let want: Vec<&str> = objects.keys().map(String::as_str).collect();
    assert_eq!(keys_of(&m), want);
    for (i, e) in m.objects.iter().enumerate() {
        let bytes = &objects[e.key.as_str()];
        assert_eq!(e.rank as usize, i + 1);
        assert_eq!(e.size, bytes.len() as u64, "{}", e.key);
        assert_eq!(e.sha256.to_hex(), sha256_hex(bytes), "{}", e.key);
        assert_eq!(e.sources, vec![origin.content_url(e.key.as_str())]);
        // The source serves those bytes, tagged with the digest.
        let got = origin.get(&format!("/content/{}", e.key));
        assert_status(&got, 200);
        assert_bytes_eq(&got.body, bytes, e.key.as_str());
        assert_eq!(got.must("etag"), format!("\"{}\"", e.sha256.etag()));
    }
    // Same content, same generation; any appliance id is known without a catalogue.
    assert_eq!(origin.manifest("oca-1").generation, m.generation);
    assert_eq!(origin.manifest("oca-2").objects.len(), objects.len());
    let stats = origin.stats();
    assert_eq!(stats["manifests"]["oca-1"]["issued"], 2);
    assert_eq!(stats["manifests_issued"], 3);
}

#[test]
fn catalogue_edits_drop_and_add_objects_and_bump_the_generation() {
    let (tmp, dir, _objects) = content();
    let cat = tmp.path().join("catalogue.toml");
    fs::write(
        &cat,
        catalogue_toml(
            Some(&["oca-1", "oca-2"]),
            &[
                ("b.bin", 2, None),
                ("titles/81/v-1080.mp4", 1, Some(&["oca-1"])),
            ],
        ),
    )
    .expect("write catalogue");
    let origin = Origin::start(
        &dir,
        &[
            "--catalogue",
            cat.to_str().expect("utf-8"),
            "--generation-start",
            "7",
        ],
    );
    let m = origin.manifest("oca-1");
    assert_eq!(m.generation, 7);
    assert_eq!(keys_of(&m), ["titles/81/v-1080.mp4", "b.bin"], "rank order");
    assert_eq!(keys_of(&origin.manifest("oca-2")), ["b.bin"]);
    assert_eq!(origin.manifest("oca-1").generation, 7, "no change, no bump");

    // Drop one object, add another.
    fs::write(
        &cat,
        r#"appliances = ["oca-1", "oca-2"]
[[object]]
key = "b.bin"
rank = 1
[[object]]
key = "titles/81/a.m4a"
rank = 2
"#,
    )
    .expect("rewrite catalogue");
    let m = origin.manifest("oca-1");
    assert_eq!(m.generation, 8);
    assert_eq!(keys_of(&m), ["b.bin", "titles/81/a.m4a"]);
    assert_eq!(origin.manifest("oca-2").generation, 8);

    // New bytes under a listed key change its digest and the generation.
    let new = gen_bytes(999, 4_000);
    write_object(&dir, "b.bin", &new);
    let m = origin.manifest("oca-1");
    assert_eq!(m.generation, 9);
    assert_eq!(m.objects[0].sha256.to_hex(), sha256_hex(&new));
    assert_eq!(m.objects[0].size, 4_000);

    // A catalogue that no longer parses: the last good one stays.
    fs::write(&cat, "[[object]]\nkey = \"../escape\"\n").expect("break catalogue");
    let m = origin.manifest("oca-1");
    assert_eq!(
        (m.generation, keys_of(&m)),
        (9, vec!["b.bin", "titles/81/a.m4a"])
    );

    // A catalogued file that is removed drops out.
    fs::write(
        &cat,
        "[[object]]\nkey = \"b.bin\"\n[[object]]\nkey = \"titles/81/a.m4a\"\n",
    )
    .expect("rewrite catalogue");
    fs::remove_file(dir.join("titles/81/a.m4a")).expect("remove");
    let m = origin.manifest("oca-3");
    assert_eq!((m.generation, keys_of(&m)), (10, vec!["b.bin"]));
    assert_eq!(origin.stats()["generation"], 10);
}

#[test]
fn an_unknown_appliance_is_a_404_with_an_error_body() {
    let (tmp, dir, _objects) = content();
    let cat = tmp.path().join("catalogue.toml");
    fs::write(
        &cat,
        "appliances = [\"oca-1\"]\n[[object]]\nkey = \"b.bin\"\n",
    )
    .expect("write");
    let origin = Origin::start(&dir, &["--catalogue", cat.to_str().expect("utf-8")]);
    let r = origin.get("/v1/manifest/oca-9");
    assert_status(&r, 404);
    assert_eq!(error_body(&r).error, "unknown_appliance");
    let r = origin.get("/v1/manifest/a%20b");
    assert_status(&r, 400);
    assert_eq!(error_body(&r).error, "bad_appliance");
    let r = origin.get("/nothing/here");
    assert_status(&r, 404);
    assert_eq!(error_body(&r).error, "not_found");
    let r = origin.request("DELETE", "/content/b.bin", &[]);
    assert_status(&r, 405);
    assert_eq!(error_body(&r).error, "method_not_allowed");
    let r = origin.get("/content/missing.bin");
    assert_status(&r, 404);
    assert_eq!(error_body(&r).error, "no_such_object");
    assert_eq!(origin.manifest("oca-1").objects.len(), 1);
}

#[test]
fn content_ranges_are_byte_exact() {
    let (_tmp, dir, objects) = content();
    let origin = Origin::start(&dir, &[]);
    let key = "titles/81/a.m4a";
    let data = &objects[key];
    let len = data.len() as u64;
    let path = format!("/content/{key}");

    let full = origin.get(&path);
    assert_status(&full, 200);
    assert_object_headers(&full);
    assert_eq!(full.content_length(), Some(len));
    assert_bytes_eq(&full.body, data, "full");
    let etag = full.must("etag").to_owned();
    let last_modified = full.must("last-modified").to_owned();

    for (range, first, last) in [
        ("bytes=1000-", 1000, len - 1),
        ("bytes=10-19", 10, 19),
        ("bytes=-500", len - 500, len - 1),
        ("bytes=0-0", 0, 0),
        ("bytes=100000-99999999", 100_000, len - 1),
    ] {
        let r = origin.get_with(&path, &[&format!("Range: {range}")]);
        assert_status(&r, 206);
        assert_eq!(
            r.must("content-range"),
            format!("bytes {first}-{last}/{len}"),
            "{range}"
        );
        assert_eq!(r.must("etag"), etag);
        assert_bytes_eq(&r.body, &data[first as usize..=last as usize], range);
    }

    let r = origin.get_with(&path, &[&format!("Range: bytes={len}-")]);
    assert_status(&r, 416);
    assert_eq!(r.must("content-range"), format!("bytes */{len}"));
    assert_eq!(error_body(&r).error, "range_not_satisfiable");

    // Several ranges: the whole object.
    let r = origin.get_with(&path, &["Range: bytes=0-1,5-6"]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, data, "several ranges");

    // If-Range with our tag, or our Last-Modified: the range; anything else: the whole.
    let r = origin.get_with(&path, &["Range: bytes=10-19", &format!("If-Range: {etag}")]);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &data[10..20], "If-Range tag match");
    let r = origin.get_with(
        &path,
        &["Range: bytes=10-19", &format!("If-Range: {last_modified}")],
    );
    assert_status(&r, 206);
    let r = origin.get_with(&path, &["Range: bytes=10-19", "If-Range: \"other\""]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, data, "If-Range mismatch");
    let r = origin.get_with(
        &path,
        &["Range: bytes=10-19", &format!("If-Range: W/{etag}")],
    );
    assert_status(&r, 200);
    let r = origin.get_with(
        &path,
        &[
            "Range: bytes=10-19",
            "If-Range: Thu, 01 Jan 1970 00:00:01 GMT",
        ],
    );
    assert_status(&r, 200);

    // HEAD: the same head, no body.
    let h = origin.request("HEAD", &path, &[]);
    assert_status(&h, 200);
    assert_eq!(h.content_length(), Some(len));
    assert_eq!(h.must("etag"), etag);
    assert!(h.body.is_empty());

    // Keep-alive: several answers on one connection.
    let mut c = origin.connect();
    for range in ["bytes=0-9", "bytes=-3"] {
        c.send(&request_bytes(
            "GET",
            &path,
            &[&format!("Range: {range}")],
            false,
        ));
        let r = c.read_response(false);
        assert_status(&r, 206);
    }
    c.send(&request_bytes("GET", &path, &[], true));
    assert_bytes_eq(
        &c.read_response(false).body,
        data,
        "third on one connection",
    );

    let stats = origin.stats();
    assert!(stats["objects"][key]["requests"].as_u64().unwrap_or(0) >= 13);
}

#[test]
fn keys_that_escape_or_follow_a_link_are_refused() {
    let (tmp, dir, _objects) = content();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), dir.join("link.txt"))
        .expect("symlink");
    std::os::unix::fs::symlink(tmp.path(), dir.join("up")).expect("symlink");
    let origin = Origin::start(&dir, &[]);
    for target in [
        "/content/../secret.txt",
        "/content/%2e%2e/secret.txt",
        "/content/titles/../../secret.txt",
        "/content/titles%2f..%2f..%2fsecret.txt",
        "/content/link.txt",
        "/content/up/secret.txt",
        "/content//etc/passwd",
        "/content/a%00b",
    ] {
        let r = origin.get(target);
        assert!(
            r.status == 400 || r.status == 404,
            "{target}: {}",
            r.describe()
        );
        assert!(
            find(&r.body, SECRET).is_none(),
            "{target} leaked the secret"
        );
        error_body(&r);
    }
    let r = origin.get("/content/..%2Fsecret.txt");
    assert_eq!(error_body(&r).error, "bad_key");
    // Symlinks are not content either.
    let keys: Vec<String> = origin
        .manifest("oca-1")
        .objects
        .iter()
        .map(|e| e.key.to_string())
        .collect();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("link") || k.starts_with("up/")),
        "{keys:?}"
    );
}

#[test]
fn sources_follow_the_flags_in_order() {
    let (_tmp, dir, _objects) = content();
    write_object(&dir, "odd name/ü #1.mp4", b"odd");
    let origin = Origin::start(
        &dir,
        &[
            "--source",
            "http://127.0.0.1:9/broken",
            "--source",
            "https://cdn.example/fill/",
        ],
    );
    let m = origin.manifest("oca-1");
    let odd = m
        .objects
        .iter()
        .find(|e| e.key.as_str() == "odd name/ü #1.mp4")
        .expect("listed");
    assert_eq!(
        odd.sources,
        [
            "http://127.0.0.1:9/broken/odd%20name/%C3%BC%20%231.mp4",
            "https://cdn.example/fill/odd%20name/%C3%BC%20%231.mp4",
        ]
    );
    // The encoded URL path is what the origin itself decodes.
    let r = origin.get("/content/odd%20name/%C3%BC%20%231.mp4");
    assert_status(&r, 200);
    assert_eq!(r.body, b"odd");

    let public = Origin::start(&dir, &["--public-url", "http://origin.test:8080/"]);
    let m = public.manifest("oca-1");
    assert_eq!(
        m.objects[0].sources,
        [format!(
            "http://origin.test:8080/content/{}",
            m.objects[0].key
        )]
    );
}

#[test]
fn drop_after_closes_mid_body_for_the_first_k_requests_only() {
    let (_tmp, dir, objects) = content();
    // 300,000 crosses a body chunk (256 KiB); 1,000 is inside the first one.
    let origin = Origin::start(
        &dir,
        &[
            "--fault",
            "titles/*.mp4=drop-after:300000,times=2",
            "--fault",
            "b.bin=drop-after:1000,times=1",
        ],
    );
    let key = "titles/81/v-1080.mp4";
    let data = &objects[key];
    let len = data.len() as u64;
    let cut = |target: &str, extra: &[&str]| {
        let mut c = origin.connect();
        c.send(&request_bytes("GET", target, extra, true));
        let head = c.read_head();
        let body = c.read_to_eof().unwrap_or_else(|e| panic!("{target}: {e}"));
        (head, body)
    };
    let (head, body) = cut(&format!("/content/{key}"), &[]);
    assert_eq!(head.status, 200);
    assert_eq!(body.len(), 300_000, "headers, 300000 bytes, then the close");
    assert_bytes_eq(&body, &data[..300_000], "the bytes before the drop");
    // The second faulted request is a resume: the drop counts from its first byte.
    let (head, body) = cut(&format!("/content/{key}"), &["Range: bytes=300000-"]);
    assert_eq!(head.status, 206);
    assert_bytes_eq(
        &body,
        &data[300_000..600_000],
        "the resumed bytes before the drop",
    );
    // The faults are spent: the rest is served.
    let r = origin.get_with(&format!("/content/{key}"), &["Range: bytes=600000-"]);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &data[600_000..], "resumed to the end");
    assert_eq!(origin.body_bytes(key), len, "every byte sent once");

    let (_, body) = cut("/content/b.bin", &[]);
    assert_bytes_eq(
        &body,
        &objects["b.bin"][..1000],
        "a drop inside the first chunk",
    );
    assert_bytes_eq(
        &origin.get("/content/b.bin").body,
        &objects["b.bin"],
        "after times=1",
    );
    // Other keys were never faulted.
    assert_bytes_eq(
        &origin.get("/content/titles/81/a.m4a").body,
        &objects["titles/81/a.m4a"],
        "not matched",
    );
    assert_eq!(origin.faults_applied(), 3);
}

#[test]
fn corrupt_flips_bytes_and_times_stops_it() {
    let (_tmp, dir, objects) = content();
    let origin = Origin::start(&dir, &["--fault", "*.mp4=corrupt,times=1"]);
    let key = "titles/81/v-1080.mp4";
    let r = origin.get(&format!("/content/{key}"));
    assert_status(&r, 200);
    assert_eq!(r.body.len(), objects[key].len(), "same length");
    let differ = r
        .body
        .iter()
        .zip(&objects[key])
        .filter(|(a, b)| a != b)
        .count();
    assert!(differ >= 1, "some byte is flipped");
    assert_ne!(sha256_hex(&r.body), sha256_hex(&objects[key]));
    let r = origin.get(&format!("/content/{key}"));
    assert_bytes_eq(&r.body, &objects[key], "after times=1");
    assert_eq!(origin.faults_applied(), 1);
}

#[test]
fn stall_sends_the_head_and_then_nothing() {
    let (_tmp, dir, objects) = content();
    let origin = Origin::start(&dir, &["--fault", "b.bin=stall,times=1"]);
    let mut c = origin.connect();
    c.send(&request_bytes("GET", "/content/b.bin", &[], true));
    let head = c.read_head();
    assert_eq!(head.status, 200);
    assert!(c.stays_silent(Duration::from_millis(300)), "no body byte");
    let r = origin.get("/content/b.bin");
    assert_bytes_eq(&r.body, &objects["b.bin"], "after the stall");
    assert_eq!(origin.faults_applied(), 1);
}

#[test]
fn status_faults_answer_an_error_body_k_times() {
    let (_tmp, dir, objects) = content();
    let origin = Origin::start(&dir, &["--fault", "b.bin=status:503,times=2"]);
    for _ in 0..2 {
        let r = origin.get("/content/b.bin");
        assert_status(&r, 503);
        assert_eq!(error_body(&r).error, "fault_injected");
    }
    let r = origin.get("/content/b.bin");
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &objects["b.bin"], "after times=2");
    let stats = origin.stats();
    assert_eq!(stats["faults_applied"], 2);
    assert_eq!(stats["faults"][0]["spec"], "b.bin=status:503,times=2");
    assert_eq!(stats["objects"]["b.bin"]["requests"], 3);
}

#[test]
fn manifest_faults_are_refused_by_the_check() {
    let (_tmp, dir, _objects) = content();
    let origin = Origin::start(
        &dir,
        &[
            "--fault",
            "manifest=tamper,times=1",
            "--fault",
            "manifest=appliance:oca-2,times=1",
        ],
    );
    let refused = |body: &[u8]| match check(&origin, body, "oca-1") {
        Ok(m) => panic!("accepted {m:?}"),
        Err(e) => e.label(),
    };
    assert_eq!(refused(&origin.manifest_bytes("oca-1")), "bad_signature");
    assert_eq!(refused(&origin.manifest_bytes("oca-1")), "other_appliance");
    assert!(check(&origin, &origin.manifest_bytes("oca-1"), "oca-1").is_ok());
    assert_eq!(origin.faults_applied(), 2);
}

#[test]
fn a_restart_keeps_the_key_and_never_lowers_the_generation() {
    let (_tmp, dir, _objects) = content();
    let mut origin = Origin::start(&dir, &[]);
    let before = origin.manifest("oca-1");
    let key = origin.public_key_text.clone();
    let addr = origin.addr;
    origin.restart();
    assert_eq!(origin.public_key_text, key);
    assert_eq!(origin.addr, addr, "the same address");
    let after = origin.manifest("oca-1");
    assert!(after.generation >= before.generation);
    assert_eq!(after.objects, before.objects);
    assert_eq!(
        origin
            .stdout_lines()
            .iter()
            .filter(|l| l.starts_with("eddy-origin: listening on http://"))
            .count(),
        2
    );
    origin.signal("TERM");
    let status = origin
        .wait_exit(Duration::from_secs(20))
        .expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn usage_and_io_errors_have_their_exit_codes() {
    let (tmp, dir, _objects) = content();
    let key = tmp.path().join("k");
    keygen(&key);
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--content",
            dir.to_str().expect("utf-8"),
            "--key",
        ];
        args.extend_from_slice(extra);
        run_origin(&args)
    };
    let k = key.to_str().expect("utf-8");
    for (extra, code, needle) in [
        (vec![k, "--fault", "x=explode"], 64, "--fault"),
        (vec![k, "--manifest-ttl", "soon"], 64, "--manifest-ttl"),
        (vec![k, "--fill-start", "25:00"], 64, "--fill-start"),
        (vec![k, "--source", "ftp://x/"], 64, "--source"),
        (vec!["/nonexistent/key"], 74, "--key"),
        (
            vec![tmp.path().join("secret.txt").to_str().expect("utf-8")],
            64,
            "--key",
        ),
    ] {
        let out = serve(&extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let bad = tmp.path().join("bad.toml");
    fs::write(&bad, "[[object]]\nkey = \"a\"\nrank = 0\n").expect("write");
    let out = serve(&[k, "--catalogue", bad.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("--catalogue") && err.contains("object[0].rank"),
        "{err}"
    );
    let out = run_origin(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--content",
        "/nonexistent/dir",
        "--key",
        k,
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--content"));
    let help = run_origin(&["serve", "--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("TEST ONLY"));
}

#[test]
fn curl_downloads_a_range() {
    if Command::new("curl")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("skipped: curl not installed");
        return;
    }
    let (tmp, dir, objects) = content();
    let origin = Origin::start(&dir, &[]);
    let key = "titles/81/v-1080.mp4";
    let out = tmp.path().join("range.out");
    let child = Command::new("curl")
        .args(["-sS", "--fail", "--range", "100-65635", "-o"])
        .arg(&out)
        .arg(origin.content_url(key))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let o = wait_output(child, Duration::from_secs(60));
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_bytes_eq(
        &fs::read(&out).expect("read curl output"),
        &objects[key][100..=65_635],
        "curl range",
    );
}

// ---------------------------------------------------------------------------------------------
// Reports and the database
// ---------------------------------------------------------------------------------------------

const TOKEN_1: &str = "oca-1-token-0123456789";
const TOKEN_2: &str = "oca-2-token-abcdefghij";

fn token_args(db: &std::path::Path) -> Vec<String> {
    vec![
        "--db".into(),
        db.to_str().expect("utf-8").into(),
        "--report-token".into(),
        format!("oca-1={TOKEN_1}"),
        "--report-token".into(),
        format!("oca-2={TOKEN_2}"),
    ]
}

fn start_reporting(dir: &std::path::Path, db: &std::path::Path) -> Origin {
    let args = token_args(db);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Origin::start(dir, &args)
}

fn health_report(appliance: &str, sent_at: u64, serving: bool) -> serde_json::Value {
    serde_json::json!({
        "kind": "health",
        "version": "1.0",
        "appliance": appliance,
        "sent_at": sent_at,
        "software": "eddy 0.1.0",
        "serving": serving,
        "disks": [
            {"id": "/srv/d0", "state": "active", "free_bytes": 1000, "objects": 3, "bytes": 700},
            {"id": "/srv/d1", "state": "failed", "free_bytes": 0, "objects": 0, "bytes": 0}
        ],
        "connections_open": 7,
        "requests_total": 1234,
        "bytes_total": 987654,
        "throughput_bps": 4321,
        "load1": 0.25,
        "generation": 42,
        "a_field_from_a_newer_minor": {"x": 1}
    })
}

fn popularity_report(
    appliance: &str,
    from: u64,
    objects: &[(&str, u64, u64)],
    content_misses: u64,
    health_misses: u64,
) -> serde_json::Value {
    let objects: Vec<serde_json::Value> = objects
        .iter()
        .map(|(k, r, b)| serde_json::json!({"key": k, "requests": r, "bytes": b}))
        .collect();
    serde_json::json!({
        "kind": "popularity",
        "version": "1.0",
        "appliance": appliance,
        "from": from,
        "to": from + 60,
        "objects": objects,
        "content_misses": content_misses,
        "health_misses": health_misses
    })
}

fn inventory_report(appliance: &str, sent_at: u64) -> serde_json::Value {
    serde_json::json!({
        "kind": "inventory",
        "version": "1.0",
        "appliance": appliance,
        "sent_at": sent_at,
        "generation": 42,
        "objects": [
            {"key": "b.bin", "size": 5000, "sha256": "ab".repeat(32), "disk": "/srv/d0"},
            {"key": "titles/81/a.m4a", "size": 123457, "sha256": "cd".repeat(32), "disk": "/srv/d0"}
        ]
    })
}

#[test]
fn accepted_reports_show_up_in_the_api_with_exactly_the_numbers_posted() {
    let (tmp, dir, _objects) = content();
    let origin = start_reporting(&dir, &tmp.path().join("origin.db"));
    let before = now_secs();
    let health = health_report("oca-1", 1_000, true);
    let r = origin.post_report("oca-1", Some(TOKEN_1), &health);
    assert_status(&r, 204);
    assert!(r.body.is_empty());
    for p in [
        popularity_report(
            "oca-1",
            2_000,
            &[("a.mp4", 3, 3_000), ("b.mp4", 1, 10)],
            4,
            1,
        ),
        popularity_report(
            "oca-1",
            2_060,
            &[("a.mp4", 2, 2_000), ("c.mp4", 9, 99)],
            5,
            0,
        ),
    ] {
        assert_status(&origin.post_report("oca-1", Some(TOKEN_1), &p), 204);
    }
    let inventory = inventory_report("oca-1", 1_500);
    assert_status(&origin.post_report("oca-1", Some(TOKEN_1), &inventory), 204);

    let list = origin.appliances();
    let list = list.as_array().expect("a JSON list");
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    assert_eq!(a["appliance"], "oca-1");
    assert_eq!(
        a["reports"],
        serde_json::json!({"health": 1, "popularity": 2, "inventory": 1})
    );
    assert_eq!(a["health"]["serving"], true);
    assert_eq!(a["health"]["sent_at"], 1_000);
    let received = a["health"]["received_at"].as_u64().expect("received_at");
    assert!(received >= before && received <= now_secs(), "{a}");

    // The health report as posted (unknown fields kept), plus received_at.
    let mut want = health.clone();
    want["received_at"] = received.into();
    assert_eq!(origin.appliance_view("oca-1", "health"), want);
    let got = origin.appliance_view("oca-1", "inventory");
    assert_eq!(got["objects"], inventory["objects"]);
    assert_eq!(got["generation"], 42);

    // Popularity: summed over both snapshots.
    let p = origin.appliance_view("oca-1", "popularity");
    assert_eq!(p["snapshots"], 2);
    assert_eq!(
        (p["from"].as_u64(), p["to"].as_u64()),
        (Some(2_000), Some(2_120))
    );
    assert_eq!(
        (p["content_misses"].as_u64(), p["health_misses"].as_u64()),
        (Some(9), Some(1))
    );
    assert_eq!(
        p["objects"],
        serde_json::json!({
            "a.mp4": {"requests": 5, "bytes": 5_000},
            "b.mp4": {"requests": 1, "bytes": 10},
            "c.mp4": {"requests": 9, "bytes": 99}
        })
    );

    let stats = origin.stats();
    assert_eq!(
        stats["reports_received"],
        serde_json::json!({"health": 1, "popularity": 2, "inventory": 1})
    );
    assert_eq!(stats["reports_refused"]["bad_token"], 0);

    // An older health arriving late never replaces the newer one, but is counted.
    let late = health_report("oca-1", 900, false);
    assert_status(&origin.post_report("oca-1", Some(TOKEN_1), &late), 204);
    assert_eq!(origin.appliance_view("oca-1", "health")["sent_at"], 1_000);
    assert_eq!(origin.appliances()[0]["reports"]["health"], 2);
    // A known appliance that sent no report of a kind.
    assert_status(
        &origin.post_report("oca-2", Some(TOKEN_2), &health_report("oca-2", 5, false)),
        204,
    );
    let r = origin.get("/v1/appliances/oca-2/inventory");
    assert_status(&r, 404);
    assert_eq!(error_body(&r).error, "no_report");
    assert_eq!(origin.appliance_view("oca-2", "popularity")["snapshots"], 0);
}

#[test]
fn reports_are_refused_with_their_codes_and_nothing_is_kept() {
    let (tmp, dir, _objects) = content();
    let origin = start_reporting(&dir, &tmp.path().join("origin.db"));
    let health = health_report("oca-1", 1_000, true);
    let refused = |r: &Response, status: u16, code: &str| {
        assert_status(r, status);
        assert_eq!(error_body(r).error, code, "{}", r.describe());
    };
    for token in [
        Some("oca-1-token-012345678X"),
        Some(TOKEN_2),
        None,
        Some(""),
    ] {
        let r = origin.post_report("oca-1", token, &health);
        refused(&r, 401, "bad_token");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = origin.post(
        "/v1/report/oca-1",
        &[&format!("Authorization: Basic {TOKEN_1}")],
        b"{}",
    );
    refused(&r, 401, "bad_token");
    // No token configured for this appliance: nothing it sends is taken.
    let r = origin.post_report("oca-3", Some(TOKEN_1), &health_report("oca-3", 1, true));
    refused(&r, 401, "bad_token");
    // Another appliance's report on this appliance's path.
    let r = origin.post_report("oca-1", Some(TOKEN_1), &health_report("oca-2", 1, true));
    refused(&r, 400, "bad_report");
    // A major this build does not speak.
    let mut v2 = health.clone();
    v2["version"] = "2.0".into();
    refused(
        &origin.post_report("oca-1", Some(TOKEN_1), &v2),
        400,
        "version",
    );
    let auth = format!("Authorization: Bearer {TOKEN_1}");
    refused(
        &origin.post("/v1/report/oca-1", &[&auth], b"{not json"),
        400,
        "bad_report",
    );
    // Too large: refused from Content-Length, before any byte of the body.
    let mut c = origin.connect();
    c.send(&request_bytes(
        "POST",
        "/v1/report/oca-1",
        &[&auth, &format!("Content-Length: {}", 16 * 1024 * 1024 + 1)],
        true,
    ));
    refused(&c.read_response(false), 413, "too_large");
    let r = origin.get("/v1/report/oca-1");
    refused(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));

    let stats = origin.stats();
    assert_eq!(
        stats["reports_refused"],
        serde_json::json!({
            "bad_token": 6, "bad_report": 2, "version": 1, "too_large": 1,
            "timeout": 0, "bad_body": 0, "storage_error": 0
        })
    );
    assert_eq!(stats["reports_received"]["health"], 0);
    assert_eq!(origin.appliances(), serde_json::json!([]));
    for what in ["health", "inventory", "popularity"] {
        let r = origin.get(&format!("/v1/appliances/oca-1/{what}"));
        refused(&r, 404, "unknown_appliance");
    }
    refused(
        &origin.get("/v1/appliances/bad%20id/health"),
        400,
        "bad_appliance",
    );
    refused(&origin.get("/v1/appliances/oca-1/gossip"), 404, "not_found");
}

#[test]
fn a_restarted_origin_keeps_its_reports_and_never_issues_an_older_generation() {
    let (tmp, dir, _objects) = content();
    let db = tmp.path().join("origin.db");
    let mut origin = start_reporting(&dir, &db);
    assert_status(
        &origin.post_report("oca-1", Some(TOKEN_1), &health_report("oca-1", 10, true)),
        204,
    );
    let pop = popularity_report("oca-1", 100, &[("a.mp4", 3, 30)], 1, 0);
    assert_status(&origin.post_report("oca-1", Some(TOKEN_1), &pop), 204);
    let first = origin.manifest("oca-1").generation;
    let listed = origin.appliances();

    origin.restart();
    assert_eq!(origin.appliances(), listed, "the same after a restart");
    assert_eq!(listed[0]["manifests"]["generation"], first);
    assert_eq!(listed[0]["manifests"]["issued"], 1);
    let again = origin.manifest("oca-1").generation;
    assert_eq!(again, first, "unchanged content keeps its generation");
    // The sums go on across the restart.
    assert_status(&origin.post_report("oca-1", Some(TOKEN_1), &pop), 204);
    let p = origin.appliance_view("oca-1", "popularity");
    assert_eq!(
        (
            p["snapshots"].as_u64(),
            p["objects"]["a.mp4"]["requests"].as_u64()
        ),
        (Some(2), Some(6))
    );

    // New content, and a --generation-start far below: still above what was issued.
    write_object(&dir, "new.bin", b"new bytes");
    let mut args = token_args(&db);
    args.extend(["--generation-start".into(), "5".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    origin.restart_with(&args);
    let later = origin.manifest("oca-1").generation;
    assert_eq!(later, first + 1);
    assert!(
        origin.stderr().contains("--generation-start is below"),
        "{}",
        origin.stderr()
    );
    assert_eq!(origin.appliances()[0]["manifests"]["issued"], 3);
}

#[test]
fn report_flags_and_the_database_are_checked_at_start() {
    let (tmp, dir, _objects) = content();
    let key = tmp.path().join("k");
    keygen(&key);
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--content",
            dir.to_str().expect("utf-8"),
            "--key",
            key.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        run_origin(&args)
    };
    for (extra, needle) in [
        (
            vec!["--report-token", "oca-1=short-secret"],
            "appliance \"oca-1\"",
        ),
        (
            vec!["--report-token", "oca-1=has a space secret"],
            "visible ASCII",
        ),
        (
            vec!["--report-token", "no-equals-secret-here"],
            "APPLIANCE=TOKEN",
        ),
        (
            vec!["--report-token", "bad id=0123456789abcdef-secret"],
            "\"bad id\"",
        ),
        (
            vec![
                "--report-token",
                "oca-1=0123456789abcdef-secret",
                "--report-token",
                "oca-1=0123456789abcdef-secret2",
            ],
            "more than once",
        ),
    ] {
        let out = serve(&extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{extra:?}: {err}");
        assert!(
            err.contains("--report-token") && err.contains(needle),
            "{extra:?}: {err}"
        );
        assert!(
            !err.contains("secret"),
            "{extra:?} printed the token: {err}"
        );
    }
    let text = tmp.path().join("secret.txt");
    let out = serve(&["--db", text.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("--db") && err.contains("not an SQLite database"),
        "{err}"
    );
    let missing = tmp.path().join("no/such/dir/origin.db");
    let out = serve(&["--db", missing.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(74), "{err}");
    assert!(err.contains("--db"), "{err}");

    // Without --db: served from memory, with a warning.
    let origin = Origin::start(&dir, &[]);
    assert!(
        origin.stderr().contains("lost on restart"),
        "{}",
        origin.stderr()
    );
    let help = run_origin(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--db") && help.contains("--report-token"),
        "{help}"
    );
}
