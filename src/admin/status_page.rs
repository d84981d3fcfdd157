//! The operator's status page (`/status`, also `/`): one server-side HTML
//! document with an inline style and an inline SVG chart.
//!
//! Owns: what the page shows and how: state and uptime, throughput over the
//! last minutes (from [`super::throughput`]), the disks (state, objects,
//! bytes, free space), the fill's progress, the top objects by requests,
//! connections, responses by status, token refusals, kTLS, the listeners and
//! the config reloads; every value HTML-escaped. It is pure (values in, HTML
//! out) and must never load anything: no script, no external asset, no
//! link but the admin's own routes (the admin listener sends a CSP that
//! forbids the rest).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::throughput::{self, Rate};
use crate::serve::metrics::{Listener, ServeMetrics as Metrics};

/// One configured disk as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRow {
    pub root: PathBuf,
    /// `active` while it serves, `out of service` when it could not be opened.
    pub state: &'static str,
    pub objects: u64,
    /// Sum of the objects' lengths.
    pub bytes: u64,
    /// Free bytes on its filesystem (`None`: unknown).
    pub free: Option<u64>,
}

/// Everything the status page shows.
pub struct StatusView<'a> {
    pub metrics: &'a Metrics,
    pub draining: bool,
    pub now: SystemTime,
    pub serving: &'a [String],
    pub admin: SocketAddr,
    pub disks: &'a [DiskRow],
    /// The fill's progress, when a fill is configured.
    pub fill: Option<eddy_proto::report::FillStatus>,
    /// (key, requests, body bytes), most requested first.
    pub top: &'a [(String, u64, u64)],
    /// Whether popularity is reset by reports (what "top" counts since).
    pub reports_on: bool,
    /// Throughput rates, oldest first, and the window the chart spans.
    pub rates: &'a [Rate],
    pub window: Duration,
    /// Config reloads (applied, refused), when known.
    pub reloads: Option<(u64, u64)>,
}

const STYLE: &str = "<style>body{font-family:sans-serif;margin:1.5em;color:#222;max-width:60em}\
     table{border-collapse:collapse;margin-bottom:1em}\
     th,td{border:1px solid #bbb;padding:.2em .6em;text-align:left}\
     td.n{text-align:right;font-variant-numeric:tabular-nums}\
     .active{color:#1a7f37}.out{color:#b42318}\
     progress{width:24em;height:1em}\
     .legend span{margin-right:1.5em}</style>\n";

/// The status page (pure: values in, HTML out). Every value is escaped.
pub fn render(v: &StatusView<'_>) -> String {
    let m = v.metrics;
    let now = v
        .now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let up = Duration::from_secs(u64::try_from(now - m.started_unix()).unwrap_or(0));
    let started = UNIX_EPOCH + Duration::from_secs(u64::try_from(m.started_unix()).unwrap_or(0));
    let version = esc(m.version());

    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(h, "<title>eddy {version}</title>");
    h.push_str(STYLE);
    h.push_str("</head>\n<body>\n");
    let _ = writeln!(h, "<h1>eddy {version}</h1>");
    let state = if v.draining { "draining" } else { "serving" };
    let _ = writeln!(
        h,
        "<p>State: <strong>{state}</strong>. Up {}, since {}.</p>",
        esc(&humantime::format_duration(up).to_string()),
        esc(&httpdate::fmt_http_date(started)),
    );

    throughput_section(&mut h, v);
    disks_section(&mut h, v.disks);
    fill_section(&mut h, v.fill.as_ref());
    top_section(&mut h, v.top, v.reports_on);

    h.push_str(
        "<h2>Connections</h2>\n<table>\n\
         <tr><th>listener</th><th>open</th><th>total</th><th>rejected (503)</th></tr>\n",
    );
    for l in Listener::ALL {
        let c = m.connections(l);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(l.label()),
            c.open,
            c.total,
            c.rejected
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Requests</h2>\n<table>\n<tr><th>status</th><th>responses</th></tr>\n");
    for (status, n) in m.requests_by_status() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{n}</td></tr>",
            esc(status)
        );
    }
    h.push_str("</table>\n<table>\n<tr><th>transport</th><th>body bytes sent</th></tr>\n");
    for (t, n) in m.body_bytes() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(t.label()),
            bytes(n)
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Token refusals</h2>\n<table>\n<tr><th>reason</th><th>requests</th></tr>\n");
    for (reason, n) in m.refusals() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{n}</td></tr>",
            esc(reason)
        );
    }
    h.push_str("</table>\n");

    let (mode, reason) = m.ktls();
    let _ = writeln!(
        h,
        "<h2>TLS</h2>\n<p>kTLS: <strong>{}</strong> ({}).</p>",
        esc(mode),
        esc(reason)
    );

    h.push_str("<h2>Listeners</h2>\n<table>\n<tr><th>role</th><th>address</th></tr>\n");
    for url in v.serving {
        let _ = writeln!(h, "<tr><td>serving</td><td>{}</td></tr>", esc(url));
    }
    let _ = writeln!(
        h,
        "<tr><td>admin</td><td>{}</td></tr>\n</table>",
        esc(&format!("http://{}", v.admin))
    );
    if let Some((ok, failed)) = v.reloads {
        let _ = writeln!(
            h,
            "<p>Config reloads (SIGHUP): {ok} applied, {failed} refused.</p>"
        );
    }
    h.push_str(
        "<p>For machines: <a href=\"/metrics\">/metrics</a> (Prometheus), \
         <a href=\"/fill/status\">/fill/status</a> (JSON), <a href=\"/readyz\">/readyz</a>.</p>\n\
         </body>\n</html>\n",
    );
    h
}

fn throughput_section(h: &mut String, v: &StatusView<'_>) {
    let _ = writeln!(
        h,
        "<h2>Throughput, last {}</h2>",
        esc(&humantime::format_duration(v.window).to_string())
    );
    match v.rates.last() {
        Some(r) => {
            let _ = writeln!(
                h,
                "<p>Now: <strong>{}</strong>, {:.1} requests/s, {} connections open.</p>",
                esc(&throughput::bits(r.bits_per_sec)),
                r.requests_per_sec,
                r.open
            );
        }
        None => h.push_str("<p>Now: collecting the first samples.</p>\n"),
    }
    h.push_str(&throughput::chart(v.rates, v.window));
    h.push_str(
        "<p class=\"legend\"><span style=\"color:#1f6fb2\">━ body bytes (bit/s)</span>\
         <span style=\"color:#d2691e\">┅ requests/s</span></p>\n",
    );
}

fn disks_section(h: &mut String, disks: &[DiskRow]) {
    h.push_str(
        "<h2>Disks</h2>\n<table id=\"disks\">\n<tr><th>root</th><th>state</th><th>objects</th>\
         <th>object bytes</th><th>free</th></tr>\n",
    );
    for d in disks {
        let class = if d.state == "active" { "active" } else { "out" };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&d.root.to_string_lossy()),
            esc(d.state),
            d.objects,
            bytes(d.bytes),
            d.free.map_or("unknown".to_owned(), bytes),
        );
    }
    let _ = writeln!(
        h,
        "<tr><th>total</th><td></td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td></tr>\n</table>",
        disks.iter().map(|d| d.objects).sum::<u64>(),
        bytes(disks.iter().map(|d| d.bytes).sum()),
        bytes(disks.iter().filter_map(|d| d.free).sum()),
    );
}

fn fill_section(h: &mut String, fill: Option<&eddy_proto::report::FillStatus>) {
    let Some(f) = fill else {
        h.push_str("<h2>Fill</h2>\n<p>off (no <code>fill.manifest_url</code>).</p>\n");
        return;
    };
    let errors: u64 = f.errors.values().sum();
    let _ = writeln!(
        h,
        "<h2>Fill</h2>\n<p>State: <strong id=\"fill-state\">{}</strong>, generation {}.</p>",
        esc(&f.state),
        f.generation.map_or("none".to_owned(), |g| g.to_string()),
    );
    if f.bytes_planned > 0 {
        let _ = writeln!(
            h,
            "<p><progress id=\"fill-progress\" max=\"{}\" value=\"{}\"></progress> {:.0} % of \
             this run's bytes</p>",
            f.bytes_planned,
            f.bytes_done.min(f.bytes_planned),
            f.bytes_done.min(f.bytes_planned) as f64 * 100.0 / f.bytes_planned as f64,
        );
    }
    let _ = writeln!(
        h,
        "<table>\n\
         <tr><th>state</th><td>{}</td></tr>\n\
         <tr><th>generation</th><td class=\"n\">{}</td></tr>\n\
         <tr><th>objects done / planned</th><td class=\"n\">{} / {}</td></tr>\n\
         <tr><th>bytes done / planned</th><td class=\"n\">{} / {}</td></tr>\n\
         <tr><th>installed, evicted, skipped</th><td class=\"n\">{}, {}, {}</td></tr>\n\
         <tr><th>errors</th><td class=\"n\">{}</td></tr>\n\
         <tr><th>last refusal</th><td>{}</td></tr>\n</table>",
        esc(&f.state),
        f.generation.map_or("none".to_owned(), |g| g.to_string()),
        f.objects_done,
        f.objects_planned,
        bytes(f.bytes_done),
        bytes(f.bytes_planned),
        f.objects_installed,
        f.objects_evicted,
        f.objects_skipped,
        errors,
        esc(f.last_refusal.as_deref().unwrap_or("none")),
    );
}

fn top_section(h: &mut String, top: &[(String, u64, u64)], reports_on: bool) {
    let since = if reports_on {
        "since the last popularity report"
    } else {
        "since start"
    };
    let _ = writeln!(h, "<h2>Top objects</h2>\n<p>By requests, {since}.</p>");
    if top.is_empty() {
        h.push_str("<p id=\"top-objects\">none asked for yet.</p>\n");
        return;
    }
    h.push_str(
        "<table id=\"top-objects\">\n<tr><th>object</th><th>requests</th><th>body bytes</th></tr>\n",
    );
    for (key, requests, body) in top {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{requests}</td><td class=\"n\">{}</td></tr>",
            esc(key),
            bytes(*body)
        );
    }
    h.push_str("</table>\n");
}

/// `n` bytes, exact, with a binary-prefixed approximation for reading.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return n.to_string();
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{n} ({value:.1} {})", UNITS[unit])
}

/// Text made safe for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::metrics::Transport;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">Tom & Jerry's</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(bytes(0), "0");
        assert_eq!(bytes(1023), "1023");
        assert_eq!(bytes(1536), "1536 (1.5 KiB)");
        assert_eq!(bytes(3 << 30), "3221225472 (3.0 GiB)");
        assert!(bytes(u64::MAX).ends_with("EiB)"));
    }

    #[test]
    fn status_page_shows_everything_escaped() -> Result<(), crate::metrics::MetricsError> {
        let started = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let registry = crate::metrics::Registry::new(started)?;
        let m = Metrics::new(&registry)?;
        m.request(Transport::Http1, 206, 4096, Duration::from_millis(1));
        let _open = m.track_connection(Listener::Plain);
        m.token_refused(eddy_proto::token::Denied::Tampered);
        m.tls.set_ktls("userspace", "no_kernel_support");
        let disks = vec![
            DiskRow {
                root: PathBuf::from("/srv/<script>alert(1)</script>"),
                state: "active",
                objects: 7,
                bytes: 2048,
                free: Some(4096),
            },
            DiskRow {
                root: PathBuf::from("/srv/d1"),
                state: "out of service",
                objects: 1,
                bytes: 1,
                free: None,
            },
        ];
        let top = vec![("titles/<81>/seg-1.m4s".to_owned(), 12, 3 << 20)];
        let rates = throughput::rates(&[
            throughput::Sample {
                at: 0.0,
                requests: 0,
                bytes: 0,
                open: 0,
            },
            throughput::Sample {
                at: 2.0,
                requests: 4,
                bytes: 250_000,
                open: 3,
            },
        ]);
        let page = render(&StatusView {
            metrics: &m,
            draining: true,
            now: started + Duration::from_secs(3723),
            serving: &["http://127.0.0.1:8080".to_owned()],
            admin: "127.0.0.1:9180".parse().expect("addr"),
            disks: &disks,
            fill: Some(eddy_proto::report::FillStatus {
                state: "filling".into(),
                generation: Some(7),
                objects_done: 3,
                objects_planned: 9,
                bytes_done: 25,
                bytes_planned: 100,
                last_refusal: Some("<b>expired</b>".into()),
                ..Default::default()
            }),
            top: &top,
            reports_on: true,
            rates: &rates,
            window: Duration::from_secs(300),
            reloads: Some((2, 1)),
        });
        assert!(
            page.contains("<tr><th>state</th><td>filling</td></tr>"),
            "{page}"
        );
        assert!(page.contains("<td class=\"n\">3 / 9</td>"), "{page}");
        assert!(page.contains("<progress id=\"fill-progress\" max=\"100\" value=\"25\">"));
        assert!(page.contains("25 % of this run"), "{page}");
        assert!(
            page.contains("&lt;b&gt;expired&lt;/b&gt;"),
            "the refusal is escaped"
        );
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains(&format!("<h1>eddy {}</h1>", env!("CARGO_PKG_VERSION"))));
        assert!(page.contains("<strong>draining</strong>"), "{page}");
        assert!(page.contains("Up 1h 2m 3s"), "{page}");
        assert!(page.contains("http://127.0.0.1:8080"));
        assert!(page.contains("http://127.0.0.1:9180"));
        assert!(page.contains("/srv/&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script"), "no script, escaped or not");
        assert!(page.contains("<td class=\"n\">2048 (2.0 KiB)</td>"));
        assert!(
            page.contains("<td class=\"out\">out of service</td>"),
            "{page}"
        );
        assert!(page.contains("<td class=\"n\">4096 (4.0 KiB)</td>"), "free");
        assert!(
            page.contains("<td class=\"n\">unknown</td>"),
            "free unknown"
        );
        assert!(page.contains("<td class=\"n\">8</td>"), "total objects");
        assert!(page.contains("titles/&lt;81&gt;/seg-1.m4s</td><td class=\"n\">12</td>"));
        assert!(page.contains("since the last popularity report"));
        assert!(page.contains("<svg id=\"throughput\""), "{page}");
        assert!(page.contains("Now: <strong>1.0 Mbit/s</strong>, 2.0 requests/s, 3 connections"));
        assert!(page.contains("2 applied, 1 refused"));
        assert!(page.contains("kTLS: <strong>userspace</strong> (no_kernel_support)"));
        assert!(page.contains("<tr><td>206</td><td class=\"n\">1</td></tr>"));
        assert!(page.contains("<tr><td>tampered</td><td class=\"n\">1</td></tr>"));
        assert!(page.contains("<tr><td>plain</td><td class=\"n\">1</td><td class=\"n\">1</td>"));
        assert!(!page.contains("http-equiv") && !page.contains("src="));
        Ok(())
    }
}
