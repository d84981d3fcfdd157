//! The fill: `eddy serve` fills itself from a signed manifest while serving.
//!
//! Sources are real servers: nginx (a server we did not write) and `eddy-origin`. Every object is
//! checked byte-exact through eddy's serving port, and requests run throughout to check that no
//! partial or unverified object is ever served.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::fill::{self, idle_at, Library, Nginx};
use crate::support::{Server, Store};

const FILL_DEADLINE: Duration = Duration::from_secs(60);

/// Every object of `keys` is served byte-exact, with the digest's ETag.
fn assert_served(server: &Server, lib: &Library, keys: &[&str]) {
    for k in keys {
        let r = server.get(&format!("/{k}"), &[]);
        assert_eq!(r.status, 200, "{k}: {}", r.describe());
        assert!(
            r.body == lib.bytes(k),
            "{k}: body differs ({} bytes)",
            r.body.len()
        );
        let etag = r.header("etag").unwrap_or_default().to_owned();
        let want =
            eddy_proto::Digest(<sha2::Sha256 as sha2::Digest>::digest(lib.bytes(k)).into()).etag();
        assert_eq!(etag, format!("\"{want}\""), "{k}");
    }
}

/// Requests for `keys` in a loop until stopped: each answer must be a 404 (not installed yet, or
/// evicted) or the exact object. Returns the number of exact answers.
fn watch(
    server: &Server,
    lib: &Library,
    keys: &[&str],
) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let objects: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.to_string(), lib.bytes(k).to_vec()))
        .collect();
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        let exact = AtomicU64::new(0);
        while !s.load(Ordering::Relaxed) {
            for (k, bytes) in &objects {
                let mut c = crate::support::Conn::connect(addr);
                c.send(&crate::support::request_bytes(
                    "GET",
                    &format!("/{k}"),
                    &[],
                    true,
                ));
                let r = c.read_response(false);
                match r.status {
                    404 => {}
                    200 => {
                        assert!(
                            &r.body == bytes,
                            "{k}: a partial or wrong object was served ({} bytes)",
                            r.body.len()
                        );
                        exact.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("{k}: status {other} during the fill"),
                }
            }
        }
        exact.load(Ordering::Relaxed)
    });
    (stop, handle)
}

#[test]
fn fills_from_nginx_then_a_second_manifest_adds_and_drops_while_serving() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("library"));
    let first: Vec<String> = (0..10).map(|i| format!("titles/{i}/video.mp4")).collect();
    for (i, k) in first.iter().enumerate() {
        lib.add(k, i as u64 + 1, 1000 + i * 150_000);
    }
    lib.add("titles/empty.txt", 99, 0);
    lib.add("titles/big.mp4", 100, 3 << 20);
    let Some(nginx) = Nginx::start(&lib.dir, store.path()) else {
        return;
    };
    let base = format!("http://{}", nginx.addr);
    let src = |k: &str| vec![format!("{base}/{k}")];
    let mut keys: Vec<&str> = first.iter().map(String::as_str).collect();
    keys.push("titles/empty.txt");
    keys.push("titles/big.mp4");
    std::fs::create_dir_all(lib.dir.join("v1/manifest")).expect("mkdir");
    let manifest_path = lib.dir.join(format!("v1/manifest/{}", fill::APPLIANCE));
    std::fs::write(
        &manifest_path,
        fill::seal(&fill::manifest(1, lib.entries(&keys, src)), 7),
    )
    .expect("write manifest");

    let server = fill::serve_filling(
        &store,
        &fill::fill_flags(&format!("{base}/v1/manifest/{}", fill::APPLIANCE), 7),
    );
    let s = fill::wait_status(&server, FILL_DEADLINE, "generation 1 installed", idle_at(1));
    assert_eq!(s.objects_done, keys.len() as u64, "{s:#?}");
    assert_served(&server, &lib, &keys);

    // Generation 2 drops three objects and adds two, with requests running throughout.
    for (i, k) in ["titles/new/a.mp4", "titles/new/b.mp4"].iter().enumerate() {
        lib.add(k, 200 + i as u64, 700_000);
    }
    let kept: Vec<&str> = keys[3..].to_vec();
    let dropped: Vec<&str> = keys[..3].to_vec();
    let mut second = kept.clone();
    second.extend(["titles/new/a.mp4", "titles/new/b.mp4"]);
    let (stop, watcher) = watch(&server, &lib, &second);
    std::fs::write(
        &manifest_path,
        fill::seal(&fill::manifest(2, lib.entries(&second, src)), 7),
    )
    .expect("write manifest");
    let s = fill::wait_status(&server, FILL_DEADLINE, "generation 2 installed", idle_at(2));
    stop.store(true, Ordering::Relaxed);
    let exact = watcher.join().expect("watcher");
    assert!(exact > 0, "the watcher saw no object");
    assert_eq!(s.objects_evicted, 3, "{s:#?}");
    assert_served(&server, &lib, &second);
    for k in dropped {
        assert_eq!(
            server.get(&format!("/{k}"), &[]).status,
            404,
            "{k} should be evicted"
        );
    }
    // Nothing is left in staging.
    for d in &store.disks {
        let left: Vec<_> = std::fs::read_dir(d.join("staging"))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "staging not empty: {left:?}");
    }
}

/// The `eddy_fill_manifest_refused_total` sample for `reason`.
fn refused(server: &Server, reason: &str) -> f64 {
    let r = server.admin_request("GET", "/metrics");
    let text = String::from_utf8_lossy(&r.body).into_owned();
    crate::support::must_sample(
        &text,
        &format!("eddy_fill_manifest_refused_total{{reason=\"{reason}\"}}"),
    )
}

/// Waits until `reason` has been counted `at_least` times.
fn wait_refused(server: &Server, reason: &str, at_least: f64) {
    crate::support::eventually(FILL_DEADLINE, || {
        (refused(server, reason) >= at_least).then_some(())
    })
    .unwrap_or_else(|| panic!("{reason} was not counted:\n{}", server.stderr()));
}

/// What the disks hold: every file below every root, with its length.
fn disk_listing(store: &Store) -> Vec<(String, u64)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, u64)>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Ok(m) = e.metadata() {
                out.push((p.display().to_string(), m.len()));
            }
        }
    }
    let mut out = Vec::new();
    for d in &store.disks {
        walk(&d.join("objects"), &mut out);
        walk(&d.join("staging"), &mut out);
    }
    out.sort();
    out
}

#[test]
fn bad_manifests_are_refused_by_reason_and_change_nothing() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("library"));
    lib.add("t/held.mp4", 1, 200_000);
    lib.add("t/intruder.mp4", 2, 100_000);
    let Some(nginx) = Nginx::start(&lib.dir, store.path()) else {
        return;
    };
    let base = format!("http://{}", nginx.addr);
    let src = |k: &str| vec![format!("{base}/{k}")];
    std::fs::create_dir_all(lib.dir.join("m")).expect("mkdir");
    let path = lib.dir.join("m/manifest");
    std::fs::write(
        &path,
        fill::seal(&fill::manifest(5, lib.entries(&["t/held.mp4"], src)), 7),
    )
    .expect("write");
    let server = fill::serve_filling(&store, &fill::fill_flags(&format!("{base}/m/manifest"), 7));
    fill::wait_status(&server, FILL_DEADLINE, "generation 5 installed", idle_at(5));
    let before = disk_listing(&store);
    let both = lib.entries(&["t/held.mp4", "t/intruder.mp4"], src);

    let mut expired = fill::manifest(6, both.clone());
    expired.issued_at -= 7200;
    expired.expires_at = fill::unix_now() - 1;
    let mut tampered = fill::seal(&fill::manifest(7, both.clone()), 7);
    let at = tampered.len() - 30;
    tampered[at] ^= 0x01;
    let other = eddy_proto::manifest::Manifest {
        appliance: "someone-else".into(),
        ..fill::manifest(8, both.clone())
    };
    let unsigned = serde_json::to_vec(&fill::manifest(9, both.clone())).expect("json");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "older_generation",
            fill::seal(&fill::manifest(4, both.clone()), 7),
        ),
        ("bad_signature", tampered),
        ("expired", fill::seal(&expired, 7)),
        ("other_appliance", fill::seal(&other, 7)),
        (
            "unknown_key",
            fill::seal(&fill::manifest(10, both.clone()), 8),
        ),
        ("unsigned", unsigned),
    ];
    for (reason, bytes) in cases {
        let n = refused(&server, reason);
        std::fs::write(&path, bytes).expect("write manifest");
        wait_refused(&server, reason, n + 1.0);
        let s = fill::status(&server);
        assert_eq!(s.generation, Some(5), "{reason}: {s:#?}");
        assert_eq!(disk_listing(&store), before, "{reason} changed the disks");
        assert_eq!(server.get("/t/intruder.mp4", &[]).status, 404, "{reason}");
        assert_served(&server, &lib, &["t/held.mp4"]);
    }
    assert!(
        server.stderr().contains("manifest refused"),
        "no log line for refusals"
    );
}

#[test]
fn corrupt_and_missing_sources_fall_through_to_a_good_one() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("library"));
    lib.add("t/a.mp4", 1, 300_000);
    lib.add("t/b.mp4", 2, 50_000);
    // The first source of a.mp4 has one flipped byte; the first of b.mp4 is missing (404).
    let mut bad = lib.bytes("t/a.mp4").to_vec();
    bad[123_456] ^= 0x40;
    std::fs::create_dir_all(lib.dir.join("corrupt/t")).expect("mkdir");
    std::fs::write(lib.dir.join("corrupt/t/a.mp4"), &bad).expect("write corrupt copy");
    let Some(nginx) = Nginx::start(&lib.dir, store.path()) else {
        return;
    };
    let base = format!("http://{}", nginx.addr);
    let src = |k: &str| vec![format!("{base}/corrupt/{k}"), format!("{base}/{k}")];
    std::fs::create_dir_all(lib.dir.join("m")).expect("mkdir");
    std::fs::write(
        lib.dir.join("m/manifest"),
        fill::seal(
            &fill::manifest(1, lib.entries(&["t/a.mp4", "t/b.mp4"], src)),
            7,
        ),
    )
    .expect("write");
    let server = fill::serve_filling(&store, &fill::fill_flags(&format!("{base}/m/manifest"), 7));
    let s = fill::wait_status(&server, FILL_DEADLINE, "both installed", idle_at(1));
    assert_served(&server, &lib, &["t/a.mp4", "t/b.mp4"]);
    assert_eq!(s.errors.get("corrupt"), Some(&1), "{s:#?}");
    assert_eq!(s.errors.get("status"), Some(&1), "{s:#?}");
    // The corrupt copy was downloaded once and thrown away; nothing else twice.
    assert_eq!(s.bytes_downloaded, 300_000 * 2 + 50_000, "{s:#?}");
}

#[test]
fn a_full_disk_stops_the_fill_not_the_server_and_the_part_resumes() {
    let store = Store::new();
    let Some(disk) = fill::Tmpfs::mount(&store.path().join("small-disk"), 16) else {
        return;
    };
    let mut lib = Library::new(&store.path().join("library"));
    let small = ["t/s0.mp4", "t/s1.mp4", "t/s2.mp4"];
    for (i, k) in small.iter().enumerate() {
        lib.add(k, i as u64, 100_000);
    }
    let big_len = 12 << 20;
    lib.add("t/big.mp4", 9, big_len);
    let Some(nginx) = Nginx::start(&lib.dir, store.path()) else {
        return;
    };
    let base = format!("http://{}", nginx.addr);
    let src = |k: &str| vec![format!("{base}/{k}")];
    let mut keys = small.to_vec();
    keys.push("t/big.mp4");
    std::fs::create_dir_all(lib.dir.join("m")).expect("mkdir");
    std::fs::write(
        lib.dir.join("m/manifest"),
        fill::seal(&fill::manifest(1, lib.entries(&keys, src)), 7),
    )
    .expect("write");
    let config = store.config("full.toml", "[fill]\nreserve_mib = 0\n");
    let mut flags = vec![
        "--config".to_string(),
        config.display().to_string(),
        "--disk".into(),
        disk.dir.display().to_string(),
    ];
    flags.extend(fill::fill_flags(&format!("{base}/m/manifest"), 7));
    // 16 Mbit/s: the big object takes about 6 s, time enough to fill the disk under it.
    let rate = flags
        .iter()
        .position(|f| f == "--fill-max-rate-mbps")
        .expect("rate flag")
        + 1;
    flags[rate] = "16".into();
    let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()];
    args.extend(flags);
    let server = Server::spawn(store.path(), &args, 1);
    fill::wait_status(&server, FILL_DEADLINE, "the big object under way", |s| {
        s.objects_done >= 3 && s.bytes_done >= 300_000 + (2 << 20)
    });
    // Something else takes the disk's room: the download hits ENOSPC.
    let filler = disk.dir.join("filler");
    let _ = std::fs::write(&filler, vec![1u8; 10 << 20]);
    let s = fill::wait_status(&server, FILL_DEADLINE, "disk full counted", |s| {
        s.errors.get("disk_full").copied().unwrap_or(0) >= 1 && s.state != "filling"
    });
    assert_served(&server, &lib, &small);
    assert_eq!(
        server.get("/t/big.mp4", &[]).status,
        404,
        "a partial object was served"
    );
    let staged: u64 = std::fs::read_dir(disk.dir.join("staging"))
        .expect("staging")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(staged > 0, "the part was not kept for the resume: {s:#?}");
    // Room again: the next pass resumes from the staged bytes.
    std::fs::remove_file(&filler).expect("remove filler");
    let s = fill::wait_status(&server, FILL_DEADLINE, "the big object installed", |s| {
        s.state == "idle" && s.objects_installed >= 4
    });
    assert_served(&server, &lib, &keys);
    let needed = (300_000 + big_len) as f64;
    assert!(
        (s.bytes_downloaded as f64) <= needed * 1.05,
        "downloaded {} for {needed} needed: the part was not resumed",
        s.bytes_downloaded
    );
    drop(server);
}

/// Which step a kill landed in, judged from the disks just after it.
#[derive(Debug, Default)]
struct KillPoints {
    /// A part shorter than its object was staged: downloading.
    download: u32,
    /// A part as long as its object was staged: verifying or installing it.
    verify_install: u32,
    /// No part staged: between objects (planning, the install's last step, the manifest).
    between: u32,
    /// Some of the dropped objects were gone and some still there: evicting.
    evict: u32,
    total: u32,
}

#[test]
fn sigkill_at_fifty_points_loses_nothing_and_serves_nothing_partial() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("library"));
    // Many small objects (installs are frequent) with two large ones among them (long downloads).
    let mut first: Vec<String> = (0..300).map(|i| format!("c/{i:03}.m4s")).collect();
    for (i, k) in first.iter().enumerate() {
        lib.add(k, 500 + i as u64, 20_000 + i * 67);
    }
    first.insert(100, "c/big0.mp4".to_string());
    first.insert(200, "c/big1.mp4".to_string());
    lib.add("c/big0.mp4", 900, 5 << 20);
    lib.add("c/big1.mp4", 901, 4 << 20);
    let mut second: Vec<String> = (300..450).map(|i| format!("c/{i:03}.m4s")).collect();
    for (i, k) in second.iter().enumerate() {
        lib.add(k, 700 + i as u64, 25_000 + i * 53);
    }
    second.insert(75, "c/big2.mp4".to_string());
    lib.add("c/big2.mp4", 902, 8 << 20);
    let Some(nginx) = Nginx::start(&lib.dir, store.path()) else {
        return;
    };
    let base = format!("http://{}", nginx.addr);
    let src = |k: &str| vec![format!("{base}/{k}")];
    std::fs::create_dir_all(lib.dir.join("m")).expect("mkdir");
    let manifest_path = lib.dir.join("m/manifest");
    let gen1: Vec<&str> = first.iter().map(String::as_str).collect();
    // Generation 2 drops 150 objects and adds 151 others.
    let mut gen2: Vec<&str> = first[150..].iter().map(String::as_str).collect();
    gen2.extend(second.iter().map(String::as_str));
    let sizes: std::collections::HashMap<String, u64> = lib
        .entries(&gen1, src)
        .into_iter()
        .chain(lib.entries(&gen2, src))
        .map(|e| (e.sha256.to_hex(), e.size))
        .collect();
    std::fs::write(
        &manifest_path,
        fill::seal(&fill::manifest(1, lib.entries(&gen1, src)), 7),
    )
    .expect("write");
    // One download at a time with a tiny receive window: what a kill can lose is the bytes in
    // flight (about 16 KiB), so the bytes downloaded measure the resume, not TCP's buffers.
    let config = store.config("crash.toml", "[fill]\nparallel = 1\nrecv_buffer_kib = 4\n");
    let mut flags = vec!["--config".to_string(), config.display().to_string()];
    flags.extend(fill::fill_flags(&format!("{base}/m/manifest"), 7));
    let rate = flags
        .iter()
        .position(|f| f == "--fill-max-rate-mbps")
        .expect("rate flag")
        + 1;
    flags[rate] = "40".into();

    // A watcher asks for every object of both generations throughout: each answer is a 404 or
    // the exact object, never a partial or unverified one.
    let every: Vec<&str> = gen1
        .iter()
        .copied()
        .chain(second.iter().map(String::as_str))
        .collect();
    let addr = Arc::new(std::sync::Mutex::new(None::<std::net::SocketAddr>));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (addr, stop) = (addr.clone(), stop.clone());
        let objects: Vec<(String, Vec<u8>)> = every
            .iter()
            .map(|k| (k.to_string(), lib.bytes(k).to_vec()))
            .collect();
        std::thread::spawn(move || {
            let mut exact = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (k, bytes) in objects.iter().step_by(13) {
                    let Some(a) = *addr.lock().expect("lock") else {
                        continue;
                    };
                    let Some((status, len, body)) = fill::raw_get(a, &format!("/{k}")) else {
                        continue;
                    };
                    match status {
                        404 => {}
                        200 => {
                            assert_eq!(
                                len,
                                Some(bytes.len() as u64),
                                "{k}: a wrong length was announced"
                            );
                            assert!(bytes.starts_with(&body), "{k}: wrong bytes were served");
                            if body.len() == bytes.len() {
                                exact += 1;
                            }
                        }
                        other => panic!("{k}: status {other}"),
                    }
                }
            }
            exact
        })
    };

    let parts = |store: &Store| -> Vec<(String, u64)> {
        store
            .disks
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(d.join("staging"))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter_map(|e| {
                Some((
                    e.file_name().to_str()?.trim_end_matches(".part").to_owned(),
                    e.metadata().ok()?.len(),
                ))
            })
            .collect()
    };
    let on_disk = |store: &Store, key: &str| {
        store
            .disks
            .iter()
            .any(|d| d.join("objects").join(key).exists())
    };
    // The generations alternate between the two sets, each one complete before the next is
    // published: installs and evictions both get killed, and what must be downloaded is exact
    // (each generation's objects that the previous one did not hold).
    let sets: [&Vec<&str>; 2] = [&gen1, &gen2];
    let mut needed: u64 = gen1.iter().map(|k| lib.bytes(k).len() as u64).sum();
    let mut points = KillPoints::default();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut generation = 1u64;
    loop {
        let server = fill::serve_filling(&store, &flags);
        *addr.lock().expect("lock") = Some(server.addr);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let deadline = std::time::Instant::now() + Duration::from_millis(20 + rng % 150);
        let mut done = false;
        while std::time::Instant::now() < deadline {
            let s = fill::status(&server);
            if s.state == "idle" && s.generation == Some(generation) {
                done = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        *addr.lock().expect("lock") = None;
        if done {
            drop(server);
            if points.total >= 56 {
                break;
            }
            // The next generation: the other set.
            let (was, next) = (
                sets[(generation as usize + 1) % 2],
                sets[generation as usize % 2],
            );
            needed += next
                .iter()
                .filter(|k| !was.contains(k))
                .map(|k| lib.bytes(k).len() as u64)
                .sum::<u64>();
            generation += 1;
            std::fs::write(
                &manifest_path,
                fill::seal(&fill::manifest(generation, lib.entries(next, src)), 7),
            )
            .expect("write");
            continue;
        }
        server.signal("KILL");
        drop(server);
        points.total += 1;
        let (was, now) = (
            sets[generation as usize % 2],
            sets[(generation as usize + 1) % 2],
        );
        let dropping: Vec<&str> = was.iter().filter(|k| !now.contains(k)).copied().collect();
        let gone = dropping.iter().filter(|k| !on_disk(&store, k)).count();
        let staged = parts(&store);
        if generation > 1 && gone > 0 && gone < dropping.len() {
            points.evict += 1;
        } else if staged.iter().any(|(hex, len)| sizes.get(hex) == Some(len)) {
            points.verify_install += 1;
        } else if !staged.is_empty() {
            points.download += 1;
        } else {
            points.between += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let exact = watcher.join().expect("watcher");
    eprintln!(
        "crash test: {points:?} over {generation} generations, {exact} exact answers while killing"
    );
    assert!(
        points.download >= 10 && points.verify_install + points.between + points.evict >= 3,
        "kills not spread: {points:?}"
    );
    let last = sets[(generation as usize + 1) % 2];
    let server = fill::serve_filling(&store, &flags);
    fill::wait_status(
        &server,
        FILL_DEADLINE,
        "the last generation",
        idle_at(generation),
    );
    assert_served(&server, &lib, last);
    for k in every.iter().filter(|k| !last.contains(k)) {
        assert_eq!(
            server.get(&format!("/{k}"), &[]).status,
            404,
            "{k} not evicted"
        );
    }
    assert!(
        parts(&store).is_empty(),
        "staged garbage left: {:?}",
        parts(&store)
    );
    let sent = nginx.bytes_sent("/c/");
    eprintln!(
        "crash test: {sent} bytes downloaded for {needed} needed ({:.3}x)",
        sent as f64 / needed as f64
    );
    assert!(
        sent as f64 <= needed as f64 * 1.05,
        "{sent} bytes downloaded for {needed} needed"
    );
}

#[test]
fn outside_the_window_it_waits_until_fill_now_with_the_admin_token() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("library"));
    lib.add("t/a.mp4", 1, 100_000);
    let Some(nginx) = Nginx::start(&lib.dir, store.path()) else {
        return;
    };
    let base = format!("http://{}", nginx.addr);
    let src = |k: &str| vec![format!("{base}/{k}")];
    std::fs::create_dir_all(lib.dir.join("m")).expect("mkdir");
    std::fs::write(
        lib.dir.join("m/manifest"),
        fill::seal(&fill::manifest(1, lib.entries(&["t/a.mp4"], src)), 7),
    )
    .expect("write");
    // A window that opens in two hours, local time: closed now.
    let now = chrono_minute();
    let window = format!("{}-{}", hhmm(now + 120), hhmm(now + 180));
    let token = "0123456789abcdef0123456789abcdef";
    let config = store.config("window.toml", &format!("[admin]\ntoken = \"{token}\"\n"));
    let mut flags = vec!["--config".to_string(), config.display().to_string()];
    flags.extend(fill::fill_flags(&format!("{base}/m/manifest"), 7));
    let w = flags
        .iter()
        .position(|f| f == "--fill-window")
        .expect("window flag")
        + 1;
    flags[w] = window;
    let server = fill::serve_filling(&store, &flags);
    fill::wait_status(&server, FILL_DEADLINE, "waiting for the window", |s| {
        s.state == "waiting" && s.generation == Some(1)
    });
    assert_eq!(server.get("/t/a.mp4", &[]).status, 404);

    // The mutating endpoint wants the token.
    let admin = server.admin_addr();
    let post = |auth: &str| {
        let mut c = crate::support::Conn::connect(admin);
        let extra: Vec<&str> = if auth.is_empty() { vec![] } else { vec![auth] };
        c.send(&crate::support::request_bytes(
            "POST",
            "/fill/now",
            &extra,
            true,
        ));
        c.read_response(false).status
    };
    assert_eq!(post(""), 401);
    assert_eq!(
        post("Authorization: Bearer wrong-token-wrong-token-wrong"),
        401
    );
    assert_eq!(server.admin_request("GET", "/fill/now").status, 405);
    // `eddy fill now` is its client.
    let mut args = vec![
        "fill".to_string(),
        "now".into(),
        "--config".into(),
        config.display().to_string(),
        "--admin-listen".into(),
        admin.to_string(),
    ];
    args.extend(store.disk_args());
    let out = crate::support::run_eddy(&args);
    assert!(
        out.status.success(),
        "eddy fill now: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fill::wait_status(&server, FILL_DEADLINE, "filled outside the window", |s| {
        s.objects_installed == 1
    });
    assert_served(&server, &lib, &["t/a.mp4"]);
    // `eddy fill status --json` reads the same status.
    let mut args = vec![
        "fill".to_string(),
        "status".into(),
        "--json".into(),
        "--admin-listen".into(),
        admin.to_string(),
    ];
    args.extend(store.disk_args());
    let out = crate::support::run_eddy(&args);
    assert!(
        out.status.success(),
        "eddy fill status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: eddy_proto::report::FillStatus =
        serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(s.objects_installed, 1);
    assert_eq!(s.generation, Some(1));
}

#[test]
fn fill_now_is_refused_without_an_admin_token() {
    let store = Store::new();
    let server = fill::serve_filling(&store, &fill::fill_flags("http://127.0.0.1:9/m", 7));
    let mut c = crate::support::Conn::connect(server.admin_addr());
    c.send(&crate::support::request_bytes(
        "POST",
        "/fill/now",
        &["Authorization: Bearer 0123456789abcdef0123"],
        true,
    ));
    let r = c.read_response(false);
    assert_eq!(r.status, 403, "{}", r.describe());
    assert!(String::from_utf8_lossy(&r.body).contains("admin.token"));
}

/// Minutes after local midnight now, as eddy computes it.
fn chrono_minute() -> u32 {
    use chrono::Timelike as _;
    let now = chrono::Local::now();
    now.hour() * 60 + now.minute()
}

fn hhmm(minute: u32) -> String {
    let m = minute % (24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[test]
fn a_response_mid_body_on_an_evicted_object_finishes_byte_exact() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("library"));
    lib.add("t/long.mp4", 1, 24 << 20);
    lib.add("t/other.mp4", 2, 10_000);
    let Some(nginx) = Nginx::start(&lib.dir, store.path()) else {
        return;
    };
    let base = format!("http://{}", nginx.addr);
    let src = |k: &str| vec![format!("{base}/{k}")];
    std::fs::create_dir_all(lib.dir.join("m")).expect("mkdir");
    let path = lib.dir.join("m/manifest");
    std::fs::write(
        &path,
        fill::seal(
            &fill::manifest(1, lib.entries(&["t/long.mp4", "t/other.mp4"], src)),
            7,
        ),
    )
    .expect("write");
    let server = fill::serve_filling(&store, &fill::fill_flags(&format!("{base}/m/manifest"), 7));
    fill::wait_status(&server, FILL_DEADLINE, "generation 1", idle_at(1));

    // A slow reader starts the long object and reads only its first MiB.
    use std::io::{Read as _, Write as _};
    let mut reader = std::net::TcpStream::connect(server.addr).expect("connect");
    reader
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    reader
        .write_all(b"GET /t/long.mp4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut got = vec![0u8; 1 << 20];
    reader.read_exact(&mut got).expect("first MiB");

    // Generation 2 drops it.
    std::fs::write(
        &path,
        fill::seal(&fill::manifest(2, lib.entries(&["t/other.mp4"], src)), 7),
    )
    .expect("write");
    fill::wait_status(&server, FILL_DEADLINE, "evicted", |s| {
        s.objects_evicted == 1 && s.state == "idle"
    });
    assert_eq!(
        server.get("/t/long.mp4", &[]).status,
        404,
        "evicted, yet served to a new request"
    );
    for d in &store.disks {
        assert!(
            !d.join("objects/t/long.mp4").exists(),
            "the file is still there"
        );
    }
    // The reader gets every remaining byte of the version it started.
    reader.read_to_end(&mut got).expect("the rest");
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert!(
        &got[end..] == lib.bytes("t/long.mp4"),
        "the body changed under the reader ({} bytes)",
        got.len() - end
    );
}

#[test]
fn an_object_without_a_digest_record_is_never_served() {
    let store = Store::new();
    store.write("t/imported.mp4", &crate::support::gen_bytes(1, 5000));
    store.import();
    // Copied in by hand: no user.eddy.sha256 on the inode.
    let by_hand = store.disks[0].join("objects/t/by-hand.mp4");
    std::fs::create_dir_all(by_hand.parent().expect("parent")).expect("mkdir");
    std::fs::write(&by_hand, b"never verified").expect("write");
    let server = store.serve();
    assert_eq!(server.get("/t/imported.mp4", &[]).status, 200);
    assert_eq!(server.get("/t/by-hand.mp4", &[]).status, 404);
    assert!(
        server.stderr().contains("without a verified digest record"),
        "no log line:\n{}",
        server.stderr()
    );
}

#[test]
fn metrics_carry_the_fill_families() {
    let store = Store::new();
    let server = fill::serve_filling(&store, &fill::fill_flags("http://127.0.0.1:9/m", 7));
    let r = server.admin_request("GET", "/metrics");
    let text = String::from_utf8_lossy(&r.body).into_owned();
    for family in [
        "eddy_fill_state",
        "eddy_fill_generation",
        "eddy_fill_runs_total",
        "eddy_fill_objects_planned",
        "eddy_fill_objects_done",
        "eddy_fill_bytes_planned",
        "eddy_fill_bytes_done",
        "eddy_fill_downloaded_bytes_total",
        "eddy_fill_installed_objects_total",
        "eddy_fill_evicted_objects_total",
        "eddy_fill_skipped_objects",
        "eddy_fill_rate_bytes_per_second",
        "eddy_fill_errors_total",
        "eddy_fill_manifest_refused_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no {family}:\n{text}"
        );
    }
    // The control plane is unreachable: counted as a manifest error, never as a refusal.
    let text = crate::support::eventually(FILL_DEADLINE, || {
        let text =
            String::from_utf8_lossy(&server.admin_request("GET", "/metrics").body).into_owned();
        (crate::support::must_sample(&text, "eddy_fill_errors_total{kind=\"manifest\"}") >= 1.0)
            .then_some(text)
    })
    .expect("no manifest error counted");
    assert_eq!(
        crate::support::must_sample(
            &text,
            "eddy_fill_manifest_refused_total{reason=\"bad_signature\"}"
        ),
        0.0
    );
}

// ---------------------------------------------------------------------------------------------
// From eddy-origin, the reference control plane, and its fault mode
// ---------------------------------------------------------------------------------------------

use crate::support::origin::{catalogue_toml, Origin};

/// `eddy serve` filling from `origin`, with `config` as its config file's text.
fn serve_from(store: &Store, origin: &Origin, config: &str) -> Server {
    let cfg = store.config("fill-origin.toml", config);
    let mut flags = vec!["--config".to_string(), cfg.display().to_string()];
    flags.extend(fill::fill_flags_with_key(
        &origin.manifest_url(fill::APPLIANCE),
        &origin.public_key_text,
    ));
    fill::serve_filling(store, &flags)
}

/// Quick retries, short idle deadline: the fault tests wait seconds, not minutes.
const FAST_RETRIES: &str =
    "[fill]\nretry_base = \"50ms\"\nretry_max = \"200ms\"\nidle_timeout = \"1s\"\n";

#[test]
fn fills_from_eddy_origin_and_follows_its_catalogue() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("content"));
    let keys: Vec<String> = (0..8).map(|i| format!("titles/81/seg{i:03}.m4s")).collect();
    for (i, k) in keys.iter().enumerate() {
        lib.add(k, 40 + i as u64, 200_000 + i * 33_333);
    }
    lib.add("titles/81/video-1080.mp4", 77, 5 << 20);
    let mut all: Vec<&str> = keys.iter().map(String::as_str).collect();
    all.push("titles/81/video-1080.mp4");
    let catalogue = store.path().join("catalogue.toml");
    let ranked: Vec<(&str, u32, Option<&[&str]>)> = all
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i as u32 + 1, None))
        .collect();
    std::fs::write(&catalogue, catalogue_toml(None, &ranked)).expect("catalogue");
    let origin = Origin::start(
        &lib.dir,
        &["--catalogue", catalogue.to_str().expect("utf-8")],
    );
    let server = serve_from(&store, &origin, "");
    let s = fill::wait_status(&server, FILL_DEADLINE, "the catalogue installed", |s| {
        s.state == "idle" && s.objects_installed == all.len() as u64
    });
    let generation = s.generation.expect("a generation");
    assert_served(&server, &lib, &all);

    // The catalogue drops the film and two segments and gains a new title: the next manifest
    // (a new generation) adds and evicts, with requests running throughout.
    lib.add("titles/82/seg000.m4s", 90, 300_000);
    let mut next: Vec<&str> = all[2..all.len() - 1].to_vec();
    next.push("titles/82/seg000.m4s");
    let (stop, watcher) = watch(&server, &lib, &next);
    let ranked: Vec<(&str, u32, Option<&[&str]>)> = next
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i as u32 + 1, None))
        .collect();
    std::fs::write(&catalogue, catalogue_toml(None, &ranked)).expect("catalogue");
    let s = fill::wait_status(&server, FILL_DEADLINE, "the new catalogue", |s| {
        s.state == "idle" && s.generation > Some(generation) && s.objects_evicted == 3
    });
    stop.store(true, Ordering::Relaxed);
    assert!(watcher.join().expect("watcher") > 0);
    assert_served(&server, &lib, &next);
    for k in [all[0], all[1], all[all.len() - 1]] {
        assert_eq!(server.get(&format!("/{k}"), &[]).status, 404, "{k}");
    }
    assert_eq!(s.objects_installed, all.len() as u64 + 1, "{s:#?}");
    // Each object crossed the network once.
    let sent: u64 = all
        .iter()
        .chain(["titles/82/seg000.m4s"].iter())
        .map(|k| origin.body_bytes(k))
        .sum();
    let needed: u64 = all
        .iter()
        .chain(["titles/82/seg000.m4s"].iter())
        .map(|k| lib.bytes(k).len() as u64)
        .sum();
    assert_eq!(sent, needed);
}

#[test]
fn dropped_connections_resume_where_they_stopped() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("content"));
    lib.add("t/big.mp4", 5, 4 << 20);
    let origin = Origin::start(
        &lib.dir,
        &["--fault", "t/big.mp4=drop-after:1000000,times=3"],
    );
    let server = serve_from(&store, &origin, FAST_RETRIES);
    let s = fill::wait_status(&server, FILL_DEADLINE, "installed", |s| {
        s.objects_installed == 1
    });
    assert_served(&server, &lib, &["t/big.mp4"]);
    assert!(s.errors["network"] >= 3, "{s:#?}");
    assert_eq!(
        origin.requests("t/big.mp4"),
        4,
        "three cut answers, then the rest"
    );
    // Resumed with Range each time: nothing crossed the network twice.
    assert_eq!(origin.body_bytes("t/big.mp4"), 4 << 20);
}

#[test]
fn answers_5xx_are_retried_with_backoff_then_filled() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("content"));
    lib.add("t/a.mp4", 6, 150_000);
    lib.add("t/b.mp4", 7, 150_000);
    let origin = Origin::start(
        &lib.dir,
        &[
            "--fault",
            "t/a.mp4=status:503,times=2",
            "--fault",
            "t/b.mp4=status:500,times=1",
        ],
    );
    let server = serve_from(&store, &origin, FAST_RETRIES);
    let s = fill::wait_status(&server, FILL_DEADLINE, "installed", |s| {
        s.objects_installed == 2
    });
    assert_served(&server, &lib, &["t/a.mp4", "t/b.mp4"]);
    assert_eq!(s.errors["status"], 3, "{s:#?}");
    assert_eq!(origin.requests("t/a.mp4"), 3);
}

#[test]
fn a_stalled_source_is_cut_at_the_idle_deadline_and_the_next_one_serves() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("content"));
    lib.add("t/s.mp4", 8, 400_000);
    lib.add("t/c.mp4", 9, 300_000);
    // Every answer of the first source stalls or is corrupt; a second eddy-origin over the same
    // content is the next source.
    let good = Origin::start(&lib.dir, &[]);
    let good_base = good.url("/content/");
    let bad = Origin::start(
        &lib.dir,
        &[
            "--fault",
            "t/s.mp4=stall",
            "--fault",
            "t/c.mp4=corrupt",
            "--source",
            &format!("http://{}/content/", "{self}"),
            "--source",
            &good_base,
        ],
    );
    // `{self}` is not a base eddy-origin knows: name the bad origin's own content by its address.
    drop(bad);
    let mut bad = Origin::start(
        &lib.dir,
        &["--fault", "t/s.mp4=stall", "--fault", "t/c.mp4=corrupt"],
    );
    let bad_base = bad.url("/content/");
    bad.restart_with(&[
        "--fault",
        "t/s.mp4=stall",
        "--fault",
        "t/c.mp4=corrupt",
        "--source",
        &bad_base,
        "--source",
        &good_base,
    ]);
    let server = serve_from(&store, &bad, FAST_RETRIES);
    let s = fill::wait_status(&server, FILL_DEADLINE, "installed", |s| {
        s.objects_installed == 2
    });
    assert_served(&server, &lib, &["t/s.mp4", "t/c.mp4"]);
    assert!(s.errors["network"] >= 1, "the stall was not cut: {s:#?}");
    assert!(
        s.errors["corrupt"] >= 1,
        "the corrupt body was not caught: {s:#?}"
    );
    assert!(good.requests("t/s.mp4") >= 1 && good.requests("t/c.mp4") >= 1);
}

#[test]
fn a_tampered_manifest_from_the_control_plane_is_refused() {
    let store = Store::new();
    let mut lib = Library::new(&store.path().join("content"));
    lib.add("t/a.mp4", 10, 1000);
    let origin = Origin::start(&lib.dir, &["--fault", "manifest=tamper"]);
    let server = serve_from(&store, &origin, "");
    wait_refused(&server, "bad_signature", 1.0);
    assert_eq!(fill::status(&server).generation, None);
    assert_eq!(server.get("/t/a.mp4", &[]).status, 404);
    let other = Origin::start(&lib.dir, &["--fault", "manifest=appliance:someone-else"]);
    let server = serve_from(&store, &other, "");
    wait_refused(&server, "other_appliance", 1.0);
    assert_eq!(server.get("/t/a.mp4", &[]).status, 404);
}

#[test]
fn the_demo_fills_from_its_control_plane_and_serves() {
    let dir = tempfile::tempdir().expect("tmp");
    let args: Vec<String> = [
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut server = Server::spawn_as_is(dir.path(), &args, 1);
    let s = fill::wait_status(
        &server,
        FILL_DEADLINE,
        "the demo's library installed",
        |s| s.state == "idle" && s.objects_installed > 0,
    );
    assert_eq!(s.errors.values().sum::<u64>(), 0, "{s:#?}");
    // Once filled it prints signed URLs, the status page and what the control plane knows.
    let lines = crate::support::eventually(FILL_DEADLINE, || {
        let lines = server.stdout_lines();
        lines
            .iter()
            .any(|l| l.starts_with("eddy demo: Ctrl-C stops everything"))
            .then_some(lines)
    })
    .expect("the demo's guide after the fill");
    let text = lines.join("\n");
    let admin = server.admin_addr();
    assert!(
        text.contains(&format!("http://{admin}/status")),
        "the status page: {text}"
    );
    assert!(
        text.contains("  health:    serving true, 2 disks"),
        "{text}"
    );
    assert!(text.contains("  inventory: "), "{text}");
    // A signed URL it printed serves; without its query: 403.
    let url_of = |key: &str| {
        lines
            .iter()
            .find_map(|l| {
                let start = l.find(&format!("http://{}/{key}?", server.addr))?;
                let rest = &l[start..];
                Some(rest[..rest.find('\'').unwrap_or(rest.len())].to_owned())
            })
            .unwrap_or_else(|| panic!("no signed URL for {key}: {text}"))
    };
    let video = text.contains("ffplay");
    let (object, playlist) = if video {
        ("titles/81/video-720.mp4", "titles/81/hls/index.m3u8")
    } else {
        ("titles/81/video-1080.mp4", "titles/81/hls/index.m3u8")
    };
    let signed = url_of(object);
    let target = &signed[signed.find("/titles/").expect("path")..];
    let r = server.head(target, &[]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(server.head(&format!("/{object}"), &[]).status, 403);
    if video {
        // A real video, played through the signed playlist: every segment carries the token.
        let hls = url_of(playlist);
        let out = std::process::Command::new("ffmpeg")
            .args([
                "-v", "error", "-nostdin", "-i", &hls, "-map", "0", "-c", "copy", "-f", "null", "-",
            ])
            .output()
            .expect("ffmpeg runs (the demo used it)");
        assert!(
            out.status.success(),
            "ffmpeg could not read the signed HLS rendition: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let probe = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
                &signed,
            ])
            .output()
            .expect("ffprobe");
        let codecs = String::from_utf8_lossy(&probe.stdout);
        assert!(
            codecs.contains("h264") && codecs.contains("aac"),
            "{codecs}"
        );
    } else {
        assert_eq!(r.content_length(), Some(48 << 20), "the synthetic library");
    }
    // The appliance reports to the demo's control plane.
    let cp: std::net::SocketAddr = server
        .startup_lines
        .iter()
        .find_map(|l| l.strip_prefix("eddy demo: control plane (eddy-origin) on http://"))
        .and_then(|rest| rest.split(',').next())
        .and_then(|a| a.parse().ok())
        .expect("the demo names its control plane");
    let health = crate::support::eventually(FILL_DEADLINE, || {
        match fill::raw_get(cp, "/v1/appliances/demo-oca/health") {
            Some((200, _, body)) => Some(body),
            _ => None,
        }
    })
    .expect("no health report reached the control plane");
    let v: serde_json::Value = serde_json::from_slice(&health).expect("health JSON");
    assert_eq!(v["serving"], true);
    let work = server
        .startup_lines
        .iter()
        .find_map(|l| l.strip_prefix("eddy demo: writing a sample library to "))
        .map(|p| {
            std::path::PathBuf::from(p)
                .parent()
                .expect("work dir")
                .to_owned()
        })
        .expect("the demo names its directory");
    server.signal("INT");
    assert!(
        server
            .wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "the demo did not exit 0"
    );
    assert!(!work.exists(), "the demo left {}", work.display());
}

#[test]
fn fills_over_https_from_another_eddy_trusting_the_configured_ca() {
    // The peer: an eddy serving the library and the signed manifest over TLS only.
    let peer = Store::new();
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("self-sign");
    let cert_path = peer.path().join("peer.pem");
    let key_path = peer.path().join("peer.key");
    std::fs::write(&cert_path, cert.pem()).expect("cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("key");
    let port = fill::free_port();
    let mut lib = Library::new(&peer.src);
    lib.add("titles/9/a.mp4", 31, 900_000);
    lib.add("titles/9/b.mp4", 32, 64_000);
    let src = |k: &str| vec![format!("https://localhost:{port}/{k}")];
    let sealed = fill::seal(
        &fill::manifest(1, lib.entries(&["titles/9/a.mp4", "titles/9/b.mp4"], src)),
        7,
    );
    peer.write("m/manifest", &sealed);
    peer.import();
    let peer_cfg = peer.config(
        "peer.toml",
        &format!(
            "[tls]\nlisten = [\"127.0.0.1:{port}\"]\ncert = \"{}\"\nkey = \"{}\"\nrequire_tokens = false\n",
            cert_path.display(),
            key_path.display()
        ),
    );
    let _peer_server = Server::start_tls(&peer, &peer_cfg, 1);

    // The appliance: an https manifest URL (no insecure flag), the peer's certificate as its CA.
    let store = Store::new();
    let cfg = store.config(
        "ca.toml",
        &format!("[fill]\nca_file = \"{}\"\n", cert_path.display()),
    );
    let mut flags = vec!["--config".to_string(), cfg.display().to_string()];
    flags.extend(fill::fill_flags(
        &format!("https://localhost:{port}/m/manifest"),
        7,
    ));
    flags.retain(|f| f != "--fill-insecure-plain-http");
    let server = fill::serve_filling(&store, &flags);
    fill::wait_status(&server, FILL_DEADLINE, "filled over https", idle_at(1));
    assert_served(&server, &lib, &["titles/9/a.mp4", "titles/9/b.mp4"]);

    // Without that CA the same URL is refused at the handshake: nothing is installed.
    let other = Store::new();
    let mut flags = fill::fill_flags(&format!("https://localhost:{port}/m/manifest"), 7);
    flags.retain(|f| f != "--fill-insecure-plain-http");
    let no_ca = other.config("no-ca.toml", "[fill]\nca_file = \"/nonexistent/ca.pem\"\n");
    flags.extend(["--config".to_string(), no_ca.display().to_string()]);
    let out = crate::support::run_eddy_within(
        &[
            &["serve".to_string(), "--listen".into(), "127.0.0.1:0".into()][..],
            &other.disk_args(),
            &flags,
        ]
        .concat(),
        Duration::from_secs(20),
    );
    assert_eq!(
        out.status.code(),
        Some(64),
        "a missing CA bundle must fail start-up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("fill.ca_file"));
}
