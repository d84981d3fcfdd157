//! Path safety: traversal and encoding tricks get 400 (or 404 where the contract says the decoded
//! key simply does not exist), and never a byte of a file outside the store. Everything goes through
//! the raw socket, so the client does not normalise anything.

use crate::support::*;

fn setup() -> (Store, Server, Vec<u8>) {
    let store = Store::new();
    let a = gen_bytes(31, 1000);
    store.write("a.bin", &a);
    store.write("dir/x.ts", &gen_bytes(32, 100));
    store.import();
    let server = store.serve();
    (store, server, a)
}

/// Sends `GET TARGET` and checks the status is one of `allowed` and no secret byte came back.
#[track_caller]
fn check(server: &Server, target: &str, allowed: &[u16]) -> Response {
    let mut c = server.connect();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: eddy.test\r\nConnection: close\r\n\r\n")
        .into_bytes();
    // Also probe a Range that would show the start of the secret.
    req.splice(
        req.len() - 2..req.len() - 2,
        b"Range: bytes=0-\r\n".iter().copied(),
    );
    c.send(&req);
    let r = c.read_response(false);
    let raw_rest = c.read_to_eof().unwrap_or_default();
    for hay in [&r.body, &raw_rest] {
        assert!(
            find(hay, &SECRET[..16]).is_none(),
            "GET {target}: secret bytes served! {}",
            r.describe()
        );
        assert!(
            find(hay, b"root:x:0:0").is_none(),
            "GET {target}: /etc/passwd served! {}",
            r.describe()
        );
    }
    assert!(
        allowed.contains(&r.status),
        "GET {target}: want one of {allowed:?}, got {}",
        r.describe()
    );
    r
}

#[test]
fn dot_dot_segments_are_400() {
    let (_s, server, _a) = setup();
    for t in [
        "/../secret.txt",
        "/../../secret.txt",
        "/../../../secret.txt",
        "/../../../../secret.txt",
        "/dir/../../secret.txt",
        "/dir/../a.bin",
        "/..",
        "/dir/..",
        "/../d0/a.bin",
    ] {
        check(&server, t, &[400]);
    }
}

#[test]
fn encoded_dot_dot_is_400() {
    let (_s, server, _a) = setup();
    for t in [
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/%2e%2e/%2e%2e/secret.txt",
        "/dir/%2e%2e/%2e%2e/secret.txt",
        "/%2e%2e",
    ] {
        check(&server, t, &[400]);
    }
}

#[test]
fn single_dot_segments_are_400() {
    let (_s, server, _a) = setup();
    for t in ["/./a.bin", "/%2e/a.bin", "/dir/./x.ts", "/dir/."] {
        check(&server, t, &[400]);
    }
}

#[test]
fn encoded_slash_is_400() {
    let (_s, server, _a) = setup();
    for t in [
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/%2e%2e%2fsecret.txt",
        "/dir%2fx.ts",
        "/%2fetc%2fpasswd",
        "/..%2f..%2fsecret.txt",
    ] {
        check(&server, t, &[400]);
    }
}

#[test]
fn backslash_is_400() {
    let (_s, server, _a) = setup();
    for t in [
        "/..%5csecret.txt",
        "/..%5Csecret.txt",
        "/..%5c..%5csecret.txt",
        "/dir%5cx.ts",
        "/..\\secret.txt",
        "/dir\\x.ts",
        "/a.bin\\",
    ] {
        check(&server, t, &[400]);
    }
}

#[test]
fn overlong_utf8_is_400() {
    let (_s, server, _a) = setup();
    for t in [
        "/%c0%ae%c0%ae/secret.txt",
        "/%c0%ae%c0%ae%c0%afsecret.txt",
        "/%e0%80%ae%e0%80%ae/secret.txt",
        "/%c0%2e%c0%2e/secret.txt",
        "/%ff",
        "/a%80.bin",
    ] {
        check(&server, t, &[400]);
    }
}

#[test]
fn nul_is_400() {
    let (_s, server, _a) = setup();
    for t in [
        "/a.bin%00",
        "/%00",
        "/secret.txt%00.mp4",
        "/a.bin%00.mp4",
        "/dir/%00/x.ts",
    ] {
        check(&server, t, &[400]);
    }
}

#[test]
fn empty_segments_are_400() {
    let (_s, server, _a) = setup();
    for t in [
        "//secret.txt",
        "//a.bin",
        "/dir//x.ts",
        "///etc/passwd",
        "/dir/x.ts//",
    ] {
        check(&server, t, &[400]);
    }
}

#[test]
fn double_encoding_is_a_literal_key() {
    let (_s, server, _a) = setup();
    // `%252e%252e` decodes once to the literal `%2e%2e`: just a key that does not exist.
    for t in [
        "/%252e%252e/secret.txt",
        "/%252e%252e%252fsecret.txt",
        "/%252E%252E/%252E%252E/secret.txt",
        "/..%255csecret.txt",
    ] {
        check(&server, t, &[404]);
    }
}

#[test]
fn absolute_form_traversal_is_400() {
    let (_s, server, _a) = setup();
    for t in [
        "http://eddy.test/../secret.txt",
        "http://eddy.test/%2e%2e/secret.txt",
        "http://eddy.test//secret.txt",
    ] {
        check(&server, t, &[400]);
    }
}

#[test]
fn other_odd_targets_never_leak() {
    let (_s, server, _a) = setup();
    check(&server, "/etc/passwd", &[404]);
    check(&server, "/secret.txt", &[404]);
    check(&server, "/d0/a.bin", &[404]);
    for t in [
        "secret.txt",
        "*",
        "../secret.txt",
        "/%2",
        "/%zz",
        "/%",
        "/a.bin%2",
    ] {
        check(&server, t, &[400, 404]);
    }
}

#[test]
fn decoded_once_keys_are_served() {
    let store = Store::new();
    let space = gen_bytes(41, 300);
    let decoy = gen_bytes(42, 300);
    let uni = gen_bytes(43, 300);
    store.write("a b.bin", &space);
    store.write("%2e%2e/decoy.txt", &decoy);
    store.write("vidéo.mp4", &uni);
    store.import();
    let server = store.serve();
    let r = check(&server, "/a%20b.bin", &[206]);
    assert_bytes_eq(&r.body, &space, "/a%20b.bin");
    let r = check(&server, "/%252e%252e/decoy.txt", &[206]);
    assert_bytes_eq(&r.body, &decoy, "literal %2e%2e key");
    let r = check(&server, "/vid%C3%A9o.mp4", &[206]);
    assert_bytes_eq(&r.body, &uni, "UTF-8 key, upper-case hex");
    let r = check(&server, "/vid%c3%a9o.mp4", &[206]);
    assert_bytes_eq(&r.body, &uni, "UTF-8 key, lower-case hex");
}

#[test]
fn unreserved_percent_encoding_is_decoded() {
    let (_s, server, a) = setup();
    // `%61` is `a`: decoded once, the key is `a.bin`.
    let r = check(&server, "/%61.bin", &[206]);
    assert_bytes_eq(&r.body, &a, "/%61.bin");
}

#[test]
fn import_does_not_follow_symlinks_out_of_the_source() {
    // `store import` copies regular files; a symlink in the source tree pointing outside it
    // must not turn the secret into a served object.
    let store = Store::new();
    store.write("a.bin", b"fine");
    let secret = store.path().join("secret.txt");
    std::os::unix::fs::symlink(&secret, store.src.join("link.txt")).expect("symlink");
    std::os::unix::fs::symlink(store.path(), store.src.join("linkdir")).expect("symlink dir");
    store.import();
    let ls = store.ls();
    let server = store.serve();
    for t in [
        "/link.txt",
        "/linkdir/secret.txt",
        "/linkdir/store/secret.txt",
    ] {
        check(&server, t, &[404]);
    }
    assert!(
        !ls.contains("link"),
        "store ls lists a symlinked object:\n{ls}"
    );
    check(&server, "/a.bin", &[206]);
}

#[test]
fn query_is_not_part_of_the_path() {
    // The query is ignored for lookup, so encoded bytes in it are not path bytes.
    let (_s, server, a) = setup();
    for t in [
        "/a.bin?x=%2f..%2f..%2fsecret.txt",
        "/a.bin?x=%00",
        "/a.bin?../../secret.txt",
        "/a.bin?x=%c0%ae",
    ] {
        let r = check(&server, t, &[206]);
        assert_bytes_eq(&r.body, &a, t);
    }
}

#[test]
fn plus_is_not_space() {
    let store = Store::new();
    let plus = gen_bytes(51, 200);
    store.write("a+b.bin", &plus);
    store.import();
    let server = store.serve();
    let r = check(&server, "/a+b.bin", &[206]);
    assert_bytes_eq(&r.body, &plus, "/a+b.bin");
    let r = check(&server, "/a%2Bb.bin", &[206]);
    assert_bytes_eq(&r.body, &plus, "/a%2Bb.bin");
    check(&server, "/a%20b.bin", &[404]);
}

#[test]
fn a_symlink_swapped_into_objects_after_start_is_a_counted_404() {
    let store = Store::new();
    store.write("a.bin", &gen_bytes(33, 1000));
    store.write("dir/x.ts", &gen_bytes(34, 100));
    store.import();
    // No open-file cache: every request opens the file afresh.
    let server = store.serve_with("[store]\nopen_file_cache = 0\n");
    assert_status(&server.get("/a.bin", &[]), 200);
    // Replace the visible object, and a directory on the way to another, with symlinks to the
    // secret next to the store (as a hand-made mistake or an attacker with disk access would).
    let secret = store.path().join("secret.txt");
    let swapped = |rel: &str| {
        let at = store
            .disks
            .iter()
            .map(|d| d.join("objects").join(rel))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{rel} is on no disk"));
        if at.is_dir() {
            std::fs::remove_dir_all(&at).expect("remove dir");
            std::os::unix::fs::symlink(secret.parent().expect("parent"), &at).expect("symlink");
        } else {
            std::fs::remove_file(&at).expect("remove");
            std::os::unix::fs::symlink(&secret, &at).expect("symlink");
        }
    };
    swapped("a.bin");
    swapped("dir");
    for target in ["/a.bin", "/dir/x.ts"] {
        let r = check(&server, target, &[404]);
        assert_status(&r, 404);
    }
    let text = scrape(&server);
    assert_eq!(
        sample(
            &text,
            "eddy_requests_total{transport=\"http\",status=\"404\"}"
        ),
        Some(2.0),
        "the two 404s are counted"
    );
    assert_eq!(
        sample(
            &text,
            "eddy_requests_total{transport=\"http\",status=\"500\"}"
        )
        .unwrap_or(0.0),
        0.0,
        "no 500"
    );
}
