//! The status page in a real browser: an appliance fills from `eddy-origin`, serves an object a
//! few times, and Debian's headless chromium loads `/status` from the admin listener. The DOM it
//! renders names the disks, the fill's state, the object among the top objects and the
//! throughput chart; a screenshot proves it paints. Skipped, saying why, without chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::fill::{self, APPLIANCE};
use crate::support::origin::{write_object, Origin};
use crate::support::*;

const WAIT: Duration = Duration::from_secs(60);

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new(name).arg("--version").output().ok()?;
            out.status.success().then(|| PathBuf::from(name))
        })
}

/// `chromium --headless ARGS URL` with a profile of its own; (stdout, exit success).
fn headless(browser: &Path, profile: &Path, args: &[&str], url: &str) -> (String, bool) {
    let child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let out = wait_output(child, WAIT);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

#[test]
fn the_status_page_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium (apt-get install chromium)");
        return;
    };
    let store = Store::new();
    let content = store.path().join("cp-content");
    let segment = gen_bytes(7, 300_000);
    write_object(&content, "titles/81/seg-00001.m4s", &segment);
    write_object(&content, "titles/81/seg-00002.m4s", &gen_bytes(8, 200_000));
    let origin = Origin::start(&content, &[]);
    let server = fill::serve_filling(
        &store,
        &fill::fill_flags_with_key(&origin.manifest_url(APPLIANCE), &origin.public_key_text),
    );
    fill::wait_status(&server, WAIT, "both objects installed", |s| {
        s.state == "idle" && s.objects_installed == 2
    });
    for _ in 0..3 {
        let r = server.get("/titles/81/seg-00001.m4s", &[]);
        assert_status(&r, 200);
        assert_bytes_eq(&r.body, &segment, "the filled segment");
    }
    // The chart needs two samples; wait for its lines over plain HTTP first (a browser start is
    // the slow part).
    let page = eventually(WAIT, || {
        let r = server.admin_request("GET", "/status");
        let body = String::from_utf8_lossy(&r.body).into_owned();
        (r.status == 200 && body.contains("<polyline")).then_some(body)
    })
    .expect("the throughput chart has lines");
    assert!(page.contains("titles/81/seg-00001.m4s"), "{page}");

    let url = format!("http://{}/status", server.admin_addr());
    let profile = store.path().join("chromium-profile");
    let (dom, ok) = headless(&browser, &profile, &["--dump-dom"], &url);
    assert!(
        ok && dom.contains("</html>"),
        "chromium printed no DOM: {dom}"
    );
    for disk in &store.disks {
        assert!(
            dom.contains(&disk.display().to_string()),
            "the page names disk {}: {dom}",
            disk.display()
        );
    }
    assert_eq!(
        dom.matches("<td class=\"active\">active</td>").count(),
        store.disks.len(),
        "{dom}"
    );
    assert!(
        dom.contains("<strong id=\"fill-state\">idle</strong>"),
        "{dom}"
    );
    let top = dom
        .split("id=\"top-objects\"")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .expect("the top objects table");
    let first_row = top.split("<tr>").nth(2).expect("a first object");
    assert!(
        first_row.contains("titles/81/seg-00001.m4s") && first_row.contains(">3<"),
        "the segment asked for three times comes first: {top}"
    );
    assert!(dom.contains("<svg id=\"throughput\""), "{dom}");
    assert!(dom.contains("class=\"bits\""), "{dom}");

    // A screenshot: chromium paints the page into a PNG (kept under target/tmp to look at).
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let (_, ok) = headless(
        &browser,
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,1900",
        ],
        &url,
    );
    let png = std::fs::read(&shot).unwrap_or_default();
    assert!(
        ok && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "no screenshot at {}",
        shot.display()
    );
    assert!(
        png.len() > 20_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
}
