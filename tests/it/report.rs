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
