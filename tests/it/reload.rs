//! Live reload: the config file rewritten, SIGHUP sent, and the new behaviour observed over real
//! HTTP. A bad file changes nothing; keys that need a restart are named in the log and keep their
//! running value.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

const OLD_SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const NEW_SECRET: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const WAIT: Duration = Duration::from_secs(15);
/// Three ranges: over `max_ranges = 2` the field is ignored (200), within 4 it is a 206.
const THREE_RANGES: &str = "Range: bytes=0-0,10-10,20-20";

fn config(max_ranges: u32, key_id: &str, secret: &str, extra: &str) -> String {
    format!(
        "[serve]\nrequire_tokens = true\n[limits]\nmax_ranges = {max_ranges}\n{extra}\n\
         [[tokens.keys]]\nid = \"{key_id}\"\nsecret_hex = \"{secret}\"\n"
    )
}

/// A store with one object, served with the config file `eddy.toml` holding `toml`.
fn served(toml: &str) -> (Store, Server, std::path::PathBuf) {
    let store = Store::new();
    store.write("titles/81/seg-1.m4s", &gen_bytes(81, 4096));
    store.import();
    let server = store.serve_with(toml);
    let path = store.path().join("eddy.toml");
    (store, server, path)
}

/// A signed query for `/titles/81/` by the first key of a config holding `toml`.
fn sign(store: &Store, name: &str, toml: &str) -> String {
    let file = store.config(name, toml);
    token_sign(&file, &["--prefix", "/titles/81/", "--ttl", "1h"])
}

fn rewrite(path: &Path, toml: &str) {
    // Written beside and renamed, as a config management tool does: eddy
    // never reads half a file.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, toml).expect("write config");
    std::fs::rename(&tmp, path).expect("rename config");
}

fn three_ranges(server: &Server, query: &str) -> u16 {
    server
        .get(&format!("/titles/81/seg-1.m4s?{query}"), &[THREE_RANGES])
        .status
}

#[test]
fn a_new_limit_token_key_and_log_level_apply_on_sighup() {
    let old = config(2, "old", OLD_SECRET, "[log]\nlevel = \"info\"");
    let new = config(4, "new", NEW_SECRET, "[log]\nlevel = \"debug\"");
    let (store, server, path) = served(&old);
    let q_old = sign(&store, "sign-old.toml", &old);
    let q_new = sign(&store, "sign-new.toml", &new);
    // Before: the old key serves, three ranges are over the limit (ignored: 200), the new key
    // is unknown.
    assert_eq!(three_ranges(&server, &q_old), 200);
    assert_eq!(three_ranges(&server, &q_new), 403);
    assert!(
        !server.stderr().contains("connection closed"),
        "no debug lines at level info"
    );
    // A connection kept alive across the reload sees the new settings at its next request.
    let mut kept = server.connect();
    kept.send(&request_bytes(
        "GET",
        &format!("/titles/81/seg-1.m4s?{q_old}"),
        &[THREE_RANGES],
        false,
    ));
    assert_eq!(kept.read_response(false).status, 200);

    rewrite(&path, &new);
    server.signal("HUP");
    eventually(WAIT, || {
        (three_ranges(&server, &q_new) == 206).then_some(())
    })
    .expect("the new key and max_ranges = 4 apply after SIGHUP");
    assert_eq!(three_ranges(&server, &q_old), 403, "the old key is gone");
    kept.send(&request_bytes(
        "GET",
        &format!("/titles/81/seg-1.m4s?{q_new}"),
        &[THREE_RANGES],
        true,
    ));
    let r = kept.read_response(false);
    assert_status(&r, 206);
    assert!(
        r.must("content-type").starts_with("multipart/byteranges"),
        "{}",
        r.describe()
    );
    // The log says what changed, and the new level shows debug lines.
    let err = server.stderr();
    assert!(err.contains("configuration reloaded"), "{err}");
    for key in ["limits.max_ranges", "tokens.keys", "log.level"] {
        assert!(err.contains(key), "the reload line names {key}: {err}");
    }
    assert!(
        !err.contains(NEW_SECRET) && !err.contains(OLD_SECRET),
        "a secret in the log"
    );
    server.wait_stderr(
        "connection closed",
        1,
        WAIT,
        "debug lines after log.level = debug",
    );
}

#[test]
fn a_bad_config_on_sighup_changes_nothing() {
    let old = config(2, "old", OLD_SECRET, "");
    let (store, mut server, path) = served(&old);
    let q_old = sign(&store, "sign-old.toml", &old);
    let q_new = sign(&store, "sign-new.toml", &config(4, "new", NEW_SECRET, ""));
    let bad: [(&str, String); 3] = [
        // A new key and limit, but one value out of range: none of it applies.
        (
            "limits.max_headers = 1",
            config(4, "new", NEW_SECRET, "max_headers = 1"),
        ),
        ("max_rangez", config(4, "new", NEW_SECRET, "max_rangez = 3")),
        ("TOML parse error", "[limits\nmax_ranges = 4\n".to_owned()),
    ];
    for (i, (named, toml)) in bad.iter().enumerate() {
        rewrite(&path, toml);
        server.signal("HUP");
        server.wait_stderr(
            "configuration refused",
            i + 1,
            WAIT,
            &format!("SIGHUP with {named}"),
        );
        // The i-th refusal, up to the next one (a parse error spans lines).
        let err = server.stderr();
        let refusal = err
            .split("configuration refused")
            .nth(i + 1)
            .expect("the refusal");
        assert!(
            refusal.contains(named),
            "the refusal names {named}: {refusal}"
        );
        assert!(refusal.starts_with("; nothing changed"), "{refusal}");
        // Still serving, with the old key and the old limit.
        assert_eq!(three_ranges(&server, &q_old), 200, "after {named}");
        assert_eq!(three_ranges(&server, &q_new), 403, "after {named}");
    }
    assert!(
        server.wait_exit(Duration::from_millis(100)).is_none(),
        "a bad config stopped eddy"
    );
    assert!(!server.stderr().contains("configuration reloaded"));
    // A good file again: applied.
    rewrite(&path, &config(4, "new", NEW_SECRET, ""));
    server.signal("HUP");
    eventually(WAIT, || {
        (three_ranges(&server, &q_new) == 206).then_some(())
    })
    .expect("a good config after bad ones applies");
}

#[test]
fn keys_that_need_a_restart_are_named_and_keep_their_value() {
    let old = config(2, "old", OLD_SECRET, "max_connections = 1");
    let (store, server, path) = served(&old);
    let q = sign(&store, "sign-old.toml", &old);
    // The one slot, held by a kept-alive connection.
    let mut held = server.connect();
    held.send(&request_bytes(
        "GET",
        &format!("/titles/81/seg-1.m4s?{q}"),
        &[],
        false,
    ));
    assert_eq!(held.read_response(false).status, 200);
    assert_eq!(three_ranges(&server, &q), 503, "one connection at most");

    rewrite(
        &path,
        &config(4, "old", OLD_SECRET, "max_connections = 100"),
    );
    server.signal("HUP");
    server.wait_stderr("needs a restart", 1, WAIT, "the restart-only key logged");
    let err = server.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("needs a restart"))
        .expect("line");
    assert!(line.contains("limits.max_connections"), "{line}");
    server.wait_stderr("configuration reloaded", 1, WAIT, "the live key applied");
    // max_ranges = 4 applies on the held connection; a second one still gets the 503 of
    // max_connections = 1.
    held.send(&request_bytes(
        "GET",
        &format!("/titles/81/seg-1.m4s?{q}"),
        &[THREE_RANGES],
        false,
    ));
    assert_eq!(held.read_response(false).status, 206);
    assert_eq!(three_ranges(&server, &q), 503, "max_connections stays 1");
}

#[test]
fn sighup_without_a_config_file_keeps_serving() {
    let store = Store::new();
    store.write("a.bin", b"still here");
    store.import();
    let mut server = store.serve();
    server.signal("HUP");
    server.wait_stderr("no --config file", 1, WAIT, "SIGHUP logged");
    assert!(server.wait_exit(Duration::from_millis(100)).is_none());
    assert_eq!(server.get("/a.bin", &[]).body, b"still here");
}

#[test]
fn a_fill_window_opened_by_sighup_starts_the_fill() {
    use crate::support::fill::{self, APPLIANCE};
    use crate::support::origin::{write_object, Origin};
    use chrono::Timelike as _;
    let store = Store::new();
    let content = store.path().join("cp-content");
    let segment = gen_bytes(12, 100_000);
    write_object(&content, "titles/81/seg-1.m4s", &segment);
    let origin = Origin::start(&content, &[]);
    // Half an hour, twelve hours from now (local time, as the fill reads it): closed.
    let hour = (chrono::Local::now().hour() + 12) % 24;
    let closed = format!("{hour:02}:00-{hour:02}:30");
    let toml = |window: &str| {
        format!(
            "[fill]\nmanifest_url = \"{}\"\nkeys = [\"{}\"]\nappliance = \"{APPLIANCE}\"\n\
             insecure_plain_http = true\npoll_interval = \"300ms\"\nmax_rate_mbps = 0\n\
             window = \"{window}\"\n",
            origin.manifest_url(APPLIANCE),
            origin.public_key_text
        )
    };
    let server = store.serve_with(&toml(&closed));
    let path = store.path().join("eddy.toml");
    fill::wait_status(&server, WAIT, "work waiting for the window", |s| {
        s.state == "waiting"
    });
    assert_eq!(server.get("/titles/81/seg-1.m4s", &[]).status, 404);
    rewrite(&path, &toml("always"));
    server.signal("HUP");
    fill::wait_status(&server, WAIT, "filled once the window opened", |s| {
        s.state == "idle" && s.objects_installed == 1
    });
    let r = server.get("/titles/81/seg-1.m4s", &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &segment, "the filled object");
    assert!(
        server.stderr().contains("fill.window"),
        "{}",
        server.stderr()
    );
}
