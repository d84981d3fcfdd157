//! Reports to the control plane: health, popularity and inventory reach `eddy-origin` with the
//! numbers the server counted, and an unreachable control plane never touches serving.

use std::time::{Duration, Instant};

use crate::support::*;

const TOKEN: &str = "report-token-0123456789";

fn report_config(store: &Store, url: &str, extra: &str) -> std::path::PathBuf {
    store.config(
        "report.toml",
        &format!(
            "[report]\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\nappliance = \"oca-test\"\ninsecure_plain_http = true\n{extra}"
        ),
    )
}

fn metric(server: &Server, series: &str) -> f64 {
    let r = server.admin_request("GET", "/metrics");
    must_sample(&String::from_utf8_lossy(&r.body), series)
}

#[test]
fn an_unreachable_control_plane_drops_reports_and_serving_goes_on() {
    let store = Store::new();
    for i in 0..4u64 {
        store.write(&format!("t/{i}.m4s"), &gen_bytes(i, 20_000));
    }
    store.import();
    // Nothing listens on this port.
    let port = crate::support::fill::free_port();
    let cfg = report_config(
        &store,
        &format!("http://127.0.0.1:{port}/v1/report/oca-test"),
        "health_interval = \"100ms\"\nbuffer = 3\n",
    );
    let server = Server::start(&store, Some(&cfg));
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&server, "eddy_report_dropped_total") < 3.0 {
        assert!(
            Instant::now() < deadline,
            "no drops counted:\n{}",
            server.stderr()
        );
        // Serving is unaffected all along.
        for i in 0..4u64 {
            let r = server.get(&format!("/t/{i}.m4s"), &[]);
            assert_eq!(r.status, 200);
            assert!(r.body == gen_bytes(i, 20_000));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&server, "eddy_report_errors_total") >= 1.0);
    assert!(metric(&server, "eddy_report_queued") <= 3.0);
    assert_eq!(
        metric(&server, "eddy_report_sent_total{kind=\"health\"}"),
        0.0
    );
}

#[test]
fn a_report_url_without_a_token_is_a_config_error() {
    let store = Store::new();
    let cfg = store.config(
        "r.toml",
        "[report]\nurl = \"https://cp.example/v1/report/a\"\n",
    );
    let out = run_eddy(&[
        "check-config".to_string(),
        "--config".into(),
        cfg.display().to_string(),
        "--disk".into(),
        store.disks[0].display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report.token"));
}

/// [`eventually`] within 30 s, or a panic naming `what`.
fn wait<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    eventually(Duration::from_secs(30), f).unwrap_or_else(|| panic!("never: {what}"))
}

#[test]
fn reports_reach_eddy_origin_with_exactly_the_numbers_served() {
    use crate::support::origin::Origin;
    let store = Store::new();
    let a = gen_bytes(1, 30_000);
    let b = gen_bytes(2, 5_000);
    store.write("t/a.mp4", &a);
    store.write("t/b.mp4", &b);
    store.import();
    let content = store.path().join("cp-content");
    std::fs::create_dir_all(&content).expect("mkdir");
    let origin = Origin::start(&content, &["--report-token", &format!("oca-test={TOKEN}")]);
    let cfg = report_config(
        &store,
        &origin.url("/v1/report/oca-test"),
        "health_interval = \"200ms\"\npopularity_interval = \"1s\"\n",
    );
    let server = Server::start(&store, Some(&cfg));
    // The scripted requests: 3 whole a, 2 ranges of 100 bytes of b, 1 HEAD of a, 4 misses.
    for _ in 0..3 {
        assert_eq!(server.get("/t/a.mp4", &[]).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(server.get("/t/b.mp4", &["Range: bytes=0-99"]).status, 206);
    }
    assert_eq!(server.head("/t/a.mp4", &[]).status, 200);
    for _ in 0..4 {
        assert_eq!(server.get("/t/missing.mp4", &[]).status, 404);
    }
    let pop = wait("popularity summed at the control plane", || {
        let r = origin.get("/v1/appliances/oca-test/popularity");
        if r.status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        (v["objects"]["t/a.mp4"]["requests"] == 4
            && v["objects"]["t/b.mp4"]["requests"] == 2
            && v["content_misses"] == 4)
            .then_some(v)
    });
    assert_eq!(pop["objects"]["t/a.mp4"]["bytes"], 3 * 30_000, "{pop:#}");
    assert_eq!(pop["objects"]["t/b.mp4"]["bytes"], 200, "{pop:#}");
    assert_eq!(pop["health_misses"], 0);
    assert!(pop["objects"].get("t/missing.mp4").is_none());
    let health = origin.appliance_view("oca-test", "health");
    assert_eq!(health["serving"], true, "{health:#}");
    assert_eq!(health["disks"].as_array().map(Vec::len), Some(3));
    let inv = origin.appliance_view("oca-test", "inventory");
    let keys: Vec<&str> = inv["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["key"].as_str())
        .collect();
    assert_eq!(keys, vec!["t/a.mp4", "t/b.mp4"], "{inv:#}");
    let sha = <sha2::Sha256 as sha2::Digest>::digest(&a);
    let want: String = sha.iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(inv["objects"][0]["sha256"], want.as_str());
    assert!(metric(&server, "eddy_report_sent_total{kind=\"popularity\"}") >= 1.0);
    assert_eq!(metric(&server, "eddy_report_dropped_total"), 0.0);
    assert_eq!(metric(&server, "eddy_misses_total{kind=\"content\"}"), 4.0);
}

#[test]
fn a_wrong_report_token_is_refused_and_counted_as_errors() {
    use crate::support::origin::Origin;
    let store = Store::new();
    let content = store.path().join("cp-content");
    std::fs::create_dir_all(&content).expect("mkdir");
    store.write("t/x", b"x");
    store.import();
    let origin = Origin::start(
        &content,
        &["--report-token", "oca-test=a-different-token-entirely"],
    );
    let cfg = report_config(
        &store,
        &origin.url("/v1/report/oca-test"),
        "health_interval = \"100ms\"\n",
    );
    let server = Server::start(&store, Some(&cfg));
    wait("refusals counted", || {
        (metric(&server, "eddy_report_errors_total") >= 1.0).then_some(())
    });
    assert_eq!(
        metric(&server, "eddy_report_sent_total{kind=\"health\"}"),
        0.0
    );
    assert_eq!(origin.get("/v1/appliances/oca-test/health").status, 404);
    assert!(!server.stderr().contains(TOKEN), "the token was logged");
}

#[test]
fn promtool_accepts_the_metrics_with_fill_and_reports_on() {
    let Ok(out) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
        return;
    };
    assert!(out.status.success());
    let store = Store::new();
    store.write("t/a", b"a");
    store.import();
    let cfg = report_config(&store, "http://127.0.0.1:9/v1/report/oca-test", "[fill]\nmanifest_url = \"http://127.0.0.1:9/m\"\nkeys = [\"ed25519:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\"]\ninsecure_plain_http = true\n");
    let server = Server::start(&store, Some(&cfg));
    assert_eq!(server.get("/t/a", &[]).status, 200);
    let r = server.admin_request("GET", "/metrics");
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains("eddy_fill_state") && text.contains("eddy_report_sent_total"));
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_metric_family_is_documented() {
    let store = Store::new();
    store.write("t/a", b"a");
    store.import();
    let cfg = report_config(&store, "http://127.0.0.1:9/v1/report/oca-test", "[fill]\nmanifest_url = \"http://127.0.0.1:9/m\"\nkeys = [\"ed25519:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\"]\ninsecure_plain_http = true\n");
    let server = Server::start(&store, Some(&cfg));
    let text = String::from_utf8_lossy(&server.admin_request("GET", "/metrics").body).into_owned();
    let doc = include_str!("../../docs/metrics.md");
    let families: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    assert!(families.len() > 30, "{families:?}");
    for (f, kind) in families {
        assert!(
            doc.contains(&format!("| `{f}` | {kind} |")),
            "docs/metrics.md lacks {f} as a {kind}"
        );
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_name_only_real_families() {
    let rules = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/eddy-alerts.yml"
    );
    let doc = include_str!("../../docs/metrics.md");
    let text = std::fs::read_to_string(rules).expect("rules");
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("eddy_") {
            assert!(
                doc.contains(&format!("| `{word}` |")),
                "the rules name {word}, which docs/metrics.md does not"
            );
        }
    }
    let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
    else {
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
        return;
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
