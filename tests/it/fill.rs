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
