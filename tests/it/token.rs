//! Signed URLs through the real binaries: `eddy token sign` makes the query, `eddy serve` with
//! `serve.require_tokens` checks it. Every refusal is a 403 that reveals nothing about the store.

use crate::support::*;

const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const TOKENS: &str = "[serve]\nrequire_tokens = true\n[[tokens.keys]]\nid = \"2026-11\"\nsecret_hex = \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"\n";

fn setup() -> (Store, Server, std::path::PathBuf, Vec<u8>) {
    let store = Store::new();
    let body = gen_bytes(81, 70_000);
    store.write("titles/81/video.mp4", &body);
    store.write("titles/82/video.mp4", &body);
    store.import();
    let server = store.serve_with(TOKENS);
    let config = store.config("sign.toml", TOKENS);
    (store, server, config, body)
}

#[test]
fn a_signed_folder_serves_its_files_and_nothing_else() {
    let (_store, server, config, body) = setup();
    let q = token_sign(&config, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    let r = server.get(&format!("/titles/81/video.mp4?{q}"), &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &body, "signed GET");
    let r = server.get(
        &format!("/titles/81/video.mp4?{q}"),
        &["Range: bytes=10-19"],
    );
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &body[10..20], "signed range");
    // Another title with the same token: refused.
    assert_status(&server.get(&format!("/titles/82/video.mp4?{q}"), &[]), 403);
}

#[test]
fn missing_expired_tampered_and_client_bound_tokens_are_refused() {
    let (_store, server, config, _body) = setup();
    assert_status(&server.get("/titles/81/video.mp4", &[]), 403);
    let expired = token_sign(&config, &["--prefix", "/titles/81/", "--expiry", "1000"]);
    assert_status(
        &server.get(&format!("/titles/81/video.mp4?{expired}"), &[]),
        403,
    );
    let good = token_sign(&config, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    let last = good.chars().last().unwrap_or('A');
    let tampered = format!(
        "{}{}",
        &good[..good.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    assert_status(
        &server.get(&format!("/titles/81/video.mp4?{tampered}"), &[]),
        403,
    );
    // Bound to a block the loopback client is not in.
    let elsewhere = token_sign(
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
    assert_status(
        &server.get(&format!("/titles/81/video.mp4?{elsewhere}"), &[]),
        403,
    );
    let here = token_sign(
        &config,
        &[
            "--prefix",
            "/titles/81/",
            "--ttl",
            "1h",
            "--client",
            "127.0.0.0/8",
        ],
    );
    assert_status(
        &server.get(&format!("/titles/81/video.mp4?{here}"), &[]),
        200,
    );
}

#[test]
fn refusals_reveal_nothing_about_the_store() {
    let (_store, server, config, _body) = setup();
    // Without a token, a missing object and a present one look the same.
    let absent = server.get("/titles/81/nope.mp4", &[]);
    let present = server.get("/titles/81/video.mp4", &[]);
    assert_status(&absent, 403);
    assert_status(&present, 403);
    assert_eq!(absent.body, present.body);
    // With a valid token, a missing object is an honest 404.
    let q = token_sign(&config, &["--prefix", "/titles/81/", "--ttl", "1h"]);
    assert_status(&server.get(&format!("/titles/81/nope.mp4?{q}"), &[]), 404);
}

#[test]
fn tokens_are_off_unless_required() {
    let store = Store::new();
    let body = gen_bytes(5, 1000);
    store.write("a.mp4", &body);
    store.import();
    let server = store.serve();
    let r = server.get("/a.mp4", &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &body, "no token needed");
}

#[test]
fn config_errors_never_echo_a_secret() {
    let store = Store::new();
    let bad = SECRET.replace('0', "z");
    let path = store.config(
        "bad.toml",
        &format!("[store]\ndisks = [\"/srv/d0\"]\n[tokens]\n[[tokens.keys]]\nid = \"k1\"\nsecret_hex = \"{bad}\"\n"),
    );
    let out = run_eddy(&["check-config", "--config", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tokens.keys.secret_hex"), "{err}");
    assert!(!err.contains(&bad), "the secret was echoed: {err}");
    let required_without_keys = store.config(
        "nokeys.toml",
        "[store]\ndisks = [\"/srv/d0\"]\n[serve]\nrequire_tokens = true\n",
    );
    let out = run_eddy(&[
        "check-config",
        "--config",
        required_without_keys.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serve.require_tokens"));
}
