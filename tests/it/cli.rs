//! The command line: `version`, `check-config` errors (exit 64, the message names the key, the
//! value and the reason), `store import` / `store ls`, and `serve` with config files, overrides,
//! several listeners and bad setups.

use crate::support::*;
use std::time::Duration;

fn s(v: &str) -> String {
    v.to_string()
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version() {
    let o = run_eddy(&["version"]);
    assert!(o.status.success(), "{:?}", o.status);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.trim_end(),
        format!("eddy {}", env!("CARGO_PKG_VERSION")),
        "eddy version prints `eddy <version>`"
    );
}

#[test]
fn unknown_subcommand_is_64() {
    let o = run_eddy(&["frobnicate"]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "bad usage exits 64: {}",
        stderr_of(&o)
    );
}

#[test]
fn unknown_flag_is_64() {
    let o = run_eddy(&["serve", "--no-such-flag"]);
    assert_eq!(
        o.status.code(),
        Some(64),
        "bad usage exits 64: {}",
        stderr_of(&o)
    );
}

fn check_config(store: &Store, toml: &str) -> std::process::Output {
    let p = store.config("check.toml", toml);
    run_eddy(&[
        s("check-config"),
        s("--config"),
        p.to_str().expect("utf-8").into(),
    ])
}

fn disks_toml(store: &Store) -> String {
    let list: Vec<String> = store
        .disks
        .iter()
        .map(|d| format!("{:?}", d.to_str().expect("utf-8")))
        .collect();
    format!("[store]\ndisks = [{}]\n", list.join(", "))
}

#[test]
fn check_config_valid() {
    let store = Store::new();
    let toml = format!(
        "[serve]\nlisten = [\"127.0.0.1:0\"]\n{}[limits]\nmax_ranges = 8\nidle_timeout = \"5s\"\n[log]\nlevel = \"debug\"\n",
        disks_toml(&store)
    );
    let o = check_config(&store, &toml);
    assert!(
        o.status.success(),
        "valid config rejected: {}",
        stderr_of(&o)
    );
    assert!(!o.stdout.is_empty(), "check-config prints a summary");
}

#[test]
fn check_config_full_documented_example() {
    // Every key of the contract's example config, with its documented default.
    let store = Store::new();
    let toml = format!(
        r#"[serve]
listen = ["127.0.0.1:0"]
{}[limits]
max_head_bytes = 16384
max_target_bytes = 8192
max_headers = 100
max_ranges = 16
max_range_sum_percent = 100
max_connections = 10000
header_read_timeout = "10s"
idle_timeout = "60s"
send_timeout = "60s"
max_pipeline_depth = 16
max_discard_body_bytes = 1048576
linger_timeout = "5s"
drain_timeout = "30s"
[log]
level = "info"
"#,
        disks_toml(&store)
    );
    let o = check_config(&store, &toml);
    assert!(
        o.status.success(),
        "documented config rejected: {}",
        stderr_of(&o)
    );
}

#[test]
fn check_config_bad_value_names_key_and_value() {
    let store = Store::new();
    let o = check_config(
        &store,
        &format!("{}[limits]\nmax_ranges = 0\n", disks_toml(&store)),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("max_ranges"), "stderr names the key: {e}");
    assert!(e.contains('0'), "stderr names the value: {e}");
}

#[test]
fn check_config_bad_duration_names_key_and_value() {
    let store = Store::new();
    let o = check_config(
        &store,
        &format!(
            "{}[limits]\nidle_timeout = \"forever\"\n",
            disks_toml(&store)
        ),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("idle_timeout"), "stderr names the key: {e}");
    assert!(e.contains("forever"), "stderr names the value: {e}");
}

#[test]
fn check_config_wrong_type_names_key() {
    let store = Store::new();
    let o = check_config(
        &store,
        &format!("{}[limits]\nmax_head_bytes = \"big\"\n", disks_toml(&store)),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("max_head_bytes"),
        "{}",
        stderr_of(&o)
    );
}

#[test]
fn check_config_bad_log_level() {
    let store = Store::new();
    let o = check_config(
        &store,
        &format!("{}[log]\nlevel = \"loud\"\n", disks_toml(&store)),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("level") && e.contains("loud"), "{e}");
}

#[test]
fn check_config_bad_listen_address() {
    let store = Store::new();
    let o = check_config(
        &store,
        &format!(
            "[serve]\nlisten = [\"not-an-address\"]\n{}",
            disks_toml(&store)
        ),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("listen") && e.contains("not-an-address"), "{e}");
}

#[test]
fn check_config_unknown_key() {
    let store = Store::new();
    let o = check_config(
        &store,
        &format!("{}[limits]\nmax_rangez = 3\n", disks_toml(&store)),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("max_rangez"), "{}", stderr_of(&o));
}

#[test]
fn check_config_unknown_section() {
    let store = Store::new();
    let o = check_config(
        &store,
        &format!("{}[turbo]\nenabled = true\n", disks_toml(&store)),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("turbo"), "{}", stderr_of(&o));
}

#[test]
fn check_config_syntax_error() {
    let store = Store::new();
    let o = check_config(&store, "[limits\nmax_ranges = \n");
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
}

#[test]
fn check_config_missing_file() {
    let store = Store::new();
    let missing = store.path().join("nope.toml");
    let o = run_eddy(&[
        s("check-config"),
        s("--config"),
        missing.to_str().expect("utf-8").into(),
    ]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("nope.toml"), "{}", stderr_of(&o));
}

#[test]
fn check_config_flags_only() {
    let store = Store::new();
    let mut args = vec![s("check-config"), s("--listen"), s("127.0.0.1:0")];
    args.extend(store.disk_args());
    let o = run_eddy(&args);
    assert!(o.status.success(), "{}", stderr_of(&o));
}

#[test]
fn import_and_ls() {
    let store = Store::new();
    let mut keys = Vec::new();
    for i in 0..30u64 {
        let k = format!("show/ep{:02}/seg{i}.m4s", i % 4);
        store.write(&k, &gen_bytes(i, 100 + i as usize));
        keys.push((k, 100 + i));
    }
    store.write("zz.mp4", &gen_bytes(77, 5));
    keys.push(("zz.mp4".into(), 5));
    store.write("a.m3u8", b"#EXTM3U\n");
    keys.push(("a.m3u8".into(), 8));
    store.import();
    keys.sort();
    let ls = store.ls();
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), keys.len(), "one line per object:\n{ls}");
    let mut used = std::collections::BTreeSet::new();
    for (line, (k, n)) in lines.iter().zip(&keys) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 3, "KEY<TAB>SIZE<TAB>DISK_ROOT: {line:?}");
        assert_eq!(f[0], k, "sorted by key");
        assert_eq!(f[1], n.to_string(), "size of {k}");
        let root = std::path::Path::new(f[2]);
        let idx = store
            .disks
            .iter()
            .position(|d| {
                d == root || std::fs::canonicalize(d).ok() == std::fs::canonicalize(root).ok()
            })
            .unwrap_or_else(|| panic!("{line:?}: disk root is not one of ours"));
        used.insert(idx);
    }
    assert!(
        used.len() >= 2,
        "32 objects all on one disk: placement does not spread"
    );
}

/// (key, disk index) per `store ls` line.
fn placement(st: &Store, disks: usize) -> Vec<(String, usize)> {
    let mut args = vec![s("store"), s("ls")];
    for d in &st.disks[..disks] {
        args.push(s("--disk"));
        args.push(d.to_str().expect("utf-8").into());
    }
    let o = run_eddy(&args);
    assert!(o.status.success(), "{}", stderr_of(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let i = st
                .disks
                .iter()
                .position(|d| d.to_str() == Some(f[2]))
                .unwrap_or_else(|| panic!("{l:?}: unknown disk root"));
            (f[0].to_string(), i)
        })
        .collect()
}

#[test]
fn losing_a_disk_moves_only_its_share() {
    // Rendezvous placement: with d2 gone, re-importing the same tree puts d2's keys on d0/d1 and
    // leaves every key that was on d0 or d1 where it was (no duplicates, no moves).
    let st = Store::new();
    let keys: Vec<String> = (0..60).map(|i| format!("k/{i:03}.ts")).collect();
    for (i, k) in keys.iter().enumerate() {
        st.write(k, &gen_bytes(i as u64, 10 + i));
    }
    st.import();
    let before = placement(&st, 3);
    assert_eq!(before.len(), keys.len());
    let on_d2 = before.iter().filter(|(_, d)| *d == 2).count();
    assert!(
        on_d2 > 0 && on_d2 < keys.len(),
        "spread over disks: {before:?}"
    );
    // Lose d2 and re-import onto the two survivors.
    std::fs::rename(&st.disks[2], st.path().join("store/d2-lost")).expect("rename d2");
    std::fs::create_dir(&st.disks[2]).expect("recreate empty d2 dir");
    let mut args = vec![s("store"), s("import")];
    for d in &st.disks[..2] {
        args.push(s("--disk"));
        args.push(d.to_str().expect("utf-8").into());
    }
    args.push(st.src.to_str().expect("utf-8").into());
    let o = run_eddy(&args);
    assert!(o.status.success(), "re-import: {}", stderr_of(&o));
    let after = placement(&st, 2);
    let mut ks: Vec<&String> = after.iter().map(|(k, _)| k).collect();
    ks.dedup();
    assert_eq!(
        ks.len(),
        after.len(),
        "a key is stored twice after re-import: {after:?}"
    );
    assert_eq!(
        after.len(),
        keys.len(),
        "every key is stored once: {after:?}"
    );
    for (k, d) in &before {
        if *d < 2 {
            let now = after.iter().find(|(k2, _)| k2 == k).map(|(_, d)| *d);
            assert_eq!(now, Some(*d), "{k} moved from d{d} although d{d} survived");
        }
    }
}

#[test]
fn serve_with_no_disks_is_64() {
    let o = run_eddy(&[s("serve"), s("--listen"), s("127.0.0.1:0")]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("listening"),
        "no port bound on a config error"
    );
}

#[test]
fn serve_bad_config_before_binding() {
    let store = Store::new();
    let p = store.config(
        "bad.toml",
        &format!("{}[limits]\nmax_ranges = 0\n", disks_toml(&store)),
    );
    let o = run_eddy_within(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            p.to_str().expect("utf-8"),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(o.status.code(), Some(64), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("max_ranges"));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"));
}

#[test]
fn serve_from_config_file_only() {
    let store = Store::new();
    let data = gen_bytes(5, 1234);
    store.write("x.webm", &data);
    store.import();
    let p = store.config(
        "serve.toml",
        &format!(
            "[serve]\nlisten = [\"127.0.0.1:0\"]\n{}",
            disks_toml(&store)
        ),
    );
    let server = Server::spawn(
        store.path(),
        &[s("serve"), s("--config"), p.to_str().expect("utf-8").into()],
        1,
    );
    let r = server.get("/x.webm", &[]);
    assert_status(&r, 200);
    assert_eq!(r.must("content-type"), "video/webm");
    assert_bytes_eq(&r.body, &data, "body");
}

#[test]
fn listen_flag_replaces_config_listen() {
    let store = Store::new();
    store.write("x.bin", b"hello");
    store.import();
    // Find a port that is certainly taken: one of our own listeners.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = blocker.local_addr().expect("addr");
    let p = store.config(
        "serve.toml",
        &format!("[serve]\nlisten = [\"{taken}\"]\n{}", disks_toml(&store)),
    );
    let server = Server::spawn(
        store.path(),
        &[
            s("serve"),
            s("--config"),
            p.to_str().expect("utf-8").into(),
            s("--listen"),
            s("127.0.0.1:0"),
        ],
        1,
    );
    assert_ne!(server.addr, taken);
    assert_eq!(server.get("/x.bin", &[]).body, b"hello");
}

#[test]
fn disk_flag_replaces_config_disks() {
    let store = Store::new();
    store.write("x.bin", b"hello");
    store.import();
    let other = Store::new();
    // The config points at an empty store; --disk points at the real one.
    let p = store.config("serve.toml", &disks_toml(&other));
    let mut args = vec![
        s("serve"),
        s("--config"),
        p.to_str().expect("utf-8").into(),
        s("--listen"),
        s("127.0.0.1:0"),
    ];
    args.extend(store.disk_args());
    let server = Server::spawn(store.path(), &args, 1);
    assert_eq!(server.get("/x.bin", &[]).body, b"hello");
}

#[test]
fn two_listeners() {
    let store = Store::new();
    store.write("x.bin", b"two");
    store.import();
    // Two different loopback addresses (the whole 127/8 is loopback on Linux).
    let mut args = vec![
        s("serve"),
        s("--listen"),
        s("127.0.0.1:0"),
        s("--listen"),
        s("127.0.0.2:0"),
    ];
    args.extend(store.disk_args());
    let server = Server::spawn(store.path(), &args, 2);
    assert_eq!(server.addrs.len(), 2);
    assert_ne!(server.addrs[0], server.addrs[1]);
    for a in &server.addrs {
        let mut c = Conn::connect(*a);
        c.send(&request_bytes("GET", "/x.bin", &[], true));
        assert_eq!(c.read_response(false).body, b"two");
    }
}

#[test]
fn listen_on_taken_port_fails() {
    let store = Store::new();
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = blocker.local_addr().expect("addr");
    let mut args = vec![s("serve"), s("--listen"), taken.to_string()];
    args.extend(store.disk_args());
    let o = run_eddy_within(&args, Duration::from_secs(20));
    assert!(!o.status.success(), "serve on a taken port must fail");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"));
}

#[test]
fn index_is_rebuilt_at_start() {
    // Objects imported by two separate runs are all served by one server started afterwards.
    let store = Store::new();
    store.write("one.ts", b"1111");
    store.import();
    std::fs::remove_file(store.src.join("one.ts")).expect("rm");
    store.write("two.ts", b"2222");
    store.import();
    let server = store.serve();
    assert_eq!(server.get("/one.ts", &[]).body, b"1111");
    assert_eq!(server.get("/two.ts", &[]).body, b"2222");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let store = Store::new();
    store.write("t/a.bin", b"abc");
    store.import();
    let server = store.serve_with("[log]\nformat = \"json\"\n");
    assert_eq!(server.get("/t/a.bin", &[]).status, 200);
    let err = server.stderr();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for l in lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{l}");
    }
    let bad = store.config("bad-log.toml", "[log]\nformat = \"xml\"\n");
    let out = run_eddy(&[
        "check-config".to_string(),
        "--config".into(),
        bad.display().to_string(),
        "--disk".into(),
        store.disks[0].display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.format"));
}

#[test]
fn the_systemd_units_verify() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for unit in ["eddy.service", "eddy-origin.service"] {
        // The units name the installed binaries; point them at the ones under test.
        let text = std::fs::read_to_string(root.join("systemd").join(unit)).expect("unit");
        let text = text
            .replace("/usr/bin/eddy-origin", env!("CARGO_BIN_EXE_eddy-origin"))
            .replace("/usr/bin/eddy ", &format!("{} ", EDDY));
        let path = dir.path().join(unit);
        std::fs::write(&path, text).expect("write unit");
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{unit}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_access_log_writes_a_line_per_request_off_the_serving_path() {
    let store = Store::new();
    store.write("t/a.bin", &gen_bytes(3, 1000));
    store.import();
    let log = store.path().join("access.log");
    let server = store.serve_with(&format!(
        "[log]\naccess = \"full\"\naccess_file = \"{}\"\n",
        log.display()
    ));
    for _ in 0..5 {
        assert_eq!(server.get("/t/a.bin", &["Range: bytes=0-9"]).status, 206);
    }
    assert_eq!(server.get("/t/nope", &[]).status, 404);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 6 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "access log: {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines[0].ends_with("127.0.0.1 \"GET /t/a.bin\" 206 10"),
        "{}",
        lines[0]
    );
    assert!(lines[5].ends_with("\"GET /t/nope\" 404 10"), "{}", lines[5]);
    let r = server.admin_request("GET", "/metrics");
    assert!(String::from_utf8_lossy(&r.body)
        .contains("eddy_access_log_lines_total{result=\"written\"} 6"));
    let bad = store.config("bad-access.toml", "[log]\naccess = \"some\"\n");
    let out = run_eddy(&[
        "check-config".to_string(),
        "--config".into(),
        bad.display().to_string(),
        "--disk".into(),
        store.disks[0].display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.access"));
}
