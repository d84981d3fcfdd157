//! Drive faults on real drives: loop-mounted ext4 images that start failing
//! (EIO) or vanish (lazy unmount) under load. The server never dies or
//! hangs, the other drives keep serving byte-exact on every transport, the
//! failed drive's objects get 404 (a health miss), and the admin listener and
//! `/metrics` show the drive failed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::drives::LoopDisk;
use crate::support::*;

const OBJECTS: u64 = 40;
const TOKEN: &str = "drive-test-token-0123456789";

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    /// The status and the body that arrived.
    Answer(u16, Vec<u8>),
    /// The connection failed or closed before a whole answer.
    Cut,
}

fn object(i: u64) -> Vec<u8> {
    gen_bytes(900 + i, 60_000 + (i as usize * 5_113) % 200_000)
}

/// A range of object `i` that request `n` asks for.
fn range_of(i: u64, n: u64) -> (u64, u64) {
    let len = object(i).len() as u64;
    let first = (n * 7919) % (len / 2);
    (first, (first + 10_000 + n % 50_000).min(len - 1))
}

/// A plain HTTP/1.1 range request that never panics: a body shorter than
/// its Content-Length (or no answer at all) is a [`Got::Cut`].
fn plain(addr: SocketAddr, path: &str, (a, b): (u64, u64)) -> Got {
    match crate::support::fill::raw_get_with(addr, path, &[&format!("Range: bytes={a}-{b}")]) {
        Some((status, Some(len), body)) if len == body.len() as u64 => Got::Answer(status, body),
        _ => Got::Cut,
    }
}

/// `POST path` on the admin listener with the admin token.
fn admin_post(server: &Server, path: &str) -> Response {
    let mut c = Conn::connect(server.admin_addr());
    c.send(&request_bytes(
        "POST",
        path,
        &[&format!("Authorization: Bearer {TOKEN}")],
        true,
    ));
    c.read_response(false)
}

/// `eddy_disk_state{disk=root,state}` now.
fn disk_state(server: &Server, root: &str, state: &str) -> Option<f64> {
    sample(
        &scrape(server),
        &format!("eddy_disk_state{{disk=\"{root}\",state=\"{state}\"}}"),
    )
}

/// Waits up to `within` for drive `root` to show `state` in `/metrics`.
fn wait_state(server: &Server, root: &str, state: &str, within: Duration) {
    eventually(within, || {
        (disk_state(server, root, state) == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{root} is not {state}:\n{}\n{}",
            scrape(server),
            server.stderr()
        )
    });
}

/// The same request over TLS with curl (HTTP/1.1 or HTTP/2).
fn curl(addr: SocketAddr, path: &str, (a, b): (u64, u64), h2: bool, out: &Path) -> Got {
    let _ = std::fs::remove_file(out);
    let r = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-o"])
        .arg(out)
        .args(["-w", "%{http_code}", "-r", &format!("{a}-{b}")])
        .arg(if h2 { "--http2" } else { "--http1.1" })
        .arg(format!("https://localhost:{}{path}", addr.port()))
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
        .output();
    match r {
        Ok(o) if o.status.success() => {
            let status = String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0);
            Got::Answer(status, std::fs::read(out).unwrap_or_default())
        }
        _ => Got::Cut,
    }
}

fn tls_files(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("self-sign");
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert.pem()).expect("cert");
    std::fs::write(&k, key.serialize_pem()).expect("key");
    (c, k)
}

/// Which disk root each object was placed on, by `eddy store ls`.
fn placement(store: &Store) -> HashMap<u64, PathBuf> {
    let out = run_eddy(
        &[
            &["store".to_string(), "ls".to_string()][..],
            &store.disk_args(),
        ]
        .concat(),
    );
    assert!(out.status.success(), "store ls");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let key = f.next()?;
            let i = key.strip_prefix("t/")?.strip_suffix(".bin")?.parse().ok()?;
            Some((i, PathBuf::from(f.nth(1)?)))
        })
        .collect()
}

fn alive(server: &Server) -> bool {
    std::fs::read_to_string(format!("/proc/{}/status", server.pid())).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

/// The drives, the store on them, its server, and where each object is.
struct Rig {
    drives: Vec<LoopDisk>,
    store: Store,
    server: Server,
    placed: HashMap<u64, PathBuf>,
}

/// A store of [`OBJECTS`] objects over four loop-mounted drives, served on a
/// plain and a TLS listener with the admin token set.
fn four_drives() -> Option<Rig> {
    if !fs_is_root() {
        eprintln!("skipped: loop-mounted drives need root");
        return None;
    }
    let mut store = Store::new();
    let drives = LoopDisk::make(store.path(), 4, 40)?;
    store.disks = drives.iter().map(LoopDisk::root).collect();
    for d in &store.disks {
        std::fs::create_dir_all(d).expect("mkdir root");
    }
    for i in 0..OBJECTS {
        store.write(&format!("t/{i}.bin"), &object(i));
    }
    store.import();
    let placed = placement(&store);
    assert_eq!(placed.len(), OBJECTS as usize);
    let (cert, key) = tls_files(store.path());
    let server = store.serve_tls(&format!(
        "[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{}\"\nkey = \"{}\"\nrequire_tokens = false\n[admin]\ntoken = \"{TOKEN}\"\n",
        cert.display(),
        key.display()
    ));
    Some(Rig {
        drives,
        store,
        server,
        placed,
    })
}

#[test]
fn a_failing_drive_is_taken_out_while_the_others_serve_byte_exact() {
    let Some(Rig {
        drives,
        store,
        server,
        placed,
    }) = four_drives()
    else {
        return;
    };
    let curl_ok = Command::new("curl").arg("--version").output().is_ok();
    if !curl_ok {
        eprintln!(
            "note: curl is missing; the TLS transports are not loaded (apt-get install curl)"
        );
    }
    // The drive that fails: the one holding object 0.
    let bad_root = placed[&0].clone();
    let bad = drives
        .iter()
        .position(|d| d.root() == bad_root)
        .expect("a loop drive");
    let on_bad = |i: u64| placed[&i] == bad_root;
    assert!(
        (0..OBJECTS).any(|i| !on_bad(i)),
        "every object on one drive"
    );

    let failed = Arc::new(AtomicBool::new(false));
    let (addr, https) = (server.addr, server.https_addr());
    let mut clients = Vec::new();
    for (c, transport) in ["http", "https", "h2"].into_iter().enumerate() {
        if transport != "http" && !curl_ok {
            continue;
        }
        let failed = failed.clone();
        let scratch = store.path().join(format!("curl-{c}.out"));
        clients.push(std::thread::spawn(move || {
            let mut seen = Vec::new();
            // Until well past the fault (bounded either way).
            let mut after_fault = 0;
            for n in 0..(20 * OBJECTS) {
                if after_fault >= 2 * OBJECTS {
                    break;
                }
                let i = (n * 7 + c as u64) % OBJECTS;
                let path = format!("/t/{i}.bin");
                let r = range_of(i, n);
                let got = match transport {
                    "http" => plain(addr, &path, r),
                    t => curl(https, &path, r, t == "h2", &scratch),
                };
                // Read once the answer is in: false means the fault had not
                // begun while this request was served.
                let after = failed.load(Ordering::SeqCst);
                after_fault += u64::from(after);
                seen.push((transport, i, r, after, got));
            }
            seen
        }));
    }
    // Fail the drive once the clients are well under way.
    std::thread::sleep(Duration::from_millis(300));
    failed.store(true, Ordering::SeqCst);
    drives[bad].fail();
    // A request for one of its objects meets the fault at once (its pages
    // are gone from the page cache).
    let victim = (0..OBJECTS)
        .find(|i| on_bad(*i))
        .expect("an object on the bad drive");
    let _ = plain(addr, &format!("/t/{victim}.bin"), range_of(victim, 1));

    let mut counts: HashMap<(&str, &str), u64> = HashMap::new();
    for client in clients {
        for (transport, i, (a, b), after, got) in client.join().expect("client thread") {
            let want = &object(i)[a as usize..=b as usize];
            let outcome = match &got {
                Got::Answer(206, body) if body == want => "exact",
                Got::Answer(404, _) => "404",
                Got::Cut => "cut",
                Got::Answer(s, body) => {
                    panic!(
                        "{transport} /t/{i}.bin {a}-{b}: status {s}, {} bytes, wrong",
                        body.len()
                    )
                }
            };
            if !on_bad(i) {
                assert_eq!(
                    outcome, "exact",
                    "{transport} /t/{i}.bin on a healthy drive: {got:?}"
                );
            } else if !after {
                assert_ne!(outcome, "404", "{transport} /t/{i}.bin before the fault");
            }
            *counts.entry((transport, outcome)).or_default() += 1;
        }
    }
    eprintln!("outcomes by transport: {counts:?}");
    assert!(alive(&server), "the server died");

    // Failed in metrics and in the admin listener within 5 s.
    let root = bad_root.to_str().expect("utf-8");
    wait_state(&server, root, "failed", Duration::from_secs(5));
    let disks = server.admin_request("GET", "/store/disks");
    assert_status(&disks, 200);
    let listed = String::from_utf8_lossy(&disks.body).into_owned();
    assert!(
        listed.contains("\"failed\"") && listed.contains("I/O error"),
        "{listed}"
    );
    assert_status(&server.admin_request("GET", "/readyz"), 200);

    // Afterwards: every object on a healthy drive byte-exact on every
    // transport, every object on the failed one a 404, counted as health misses.
    let misses_before = must_sample(&scrape(&server), "eddy_misses_total{kind=\"health\"}");
    let scratch = store.path().join("after.out");
    let mut bad_asked = 0.0;
    for i in 0..OBJECTS {
        let path = format!("/t/{i}.bin");
        let r = range_of(i, i);
        let want = object(i)[r.0 as usize..=r.1 as usize].to_vec();
        let mut gots = vec![("http", plain(addr, &path, r))];
        if curl_ok {
            gots.push(("https", curl(https, &path, r, false, &scratch)));
            gots.push(("h2", curl(https, &path, r, true, &scratch)));
        }
        for (t, got) in gots {
            if on_bad(i) {
                bad_asked += 1.0;
                assert!(
                    matches!(got, Got::Answer(404, _)),
                    "{t} {path} on the failed drive: {got:?}"
                );
            } else {
                assert_eq!(
                    got,
                    Got::Answer(206, want.clone()),
                    "{t} {path} on a healthy drive"
                );
            }
        }
    }
    let misses_after = must_sample(&scrape(&server), "eddy_misses_total{kind=\"health\"}");
    assert_eq!(
        misses_after - misses_before,
        bad_asked,
        "each a health miss"
    );
    assert!(alive(&server));
    let err = server.stderr();
    assert!(err.contains("drive failed"), "logged: {err}");
}

#[test]
fn a_vanished_drive_is_failed_by_the_probe_and_can_be_enabled_again() {
    let Some(Rig {
        drives,
        store: _store,
        server,
        placed,
    }) = four_drives()
    else {
        return;
    };
    let gone_root = placed[&1].clone();
    let gone = drives
        .iter()
        .position(|d| d.root() == gone_root)
        .expect("a loop drive");
    let root = gone_root.to_str().expect("utf-8").to_owned();
    // Drain and enable through the admin listener, with the token.
    let drain = format!("/store/drain?disk={root}");
    assert_status(&server.admin_request("POST", &drain), 401);
    assert_status(&admin_post(&server, &drain), 200);
    assert_eq!(disk_state(&server, &root, "draining"), Some(1.0));
    // A draining drive still serves.
    let r = server.get("/t/1.bin", &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &object(1), "a draining drive's object");

    // The drive is unmounted under eddy: the probe fails it within a few seconds.
    let status = Command::new("umount")
        .arg("-l")
        .arg(&drives[gone].mount)
        .status()
        .expect("umount");
    assert!(status.success());
    wait_state(&server, &root, "failed", Duration::from_secs(8));
    assert_status(&server.get("/t/1.bin", &[]), 404);
    // Enabling it is refused while its root is still gone.
    let enable = format!("/store/enable?disk={root}");
    let r = admin_post(&server, &enable);
    assert_status(&r, 409);
    assert!(String::from_utf8_lossy(&r.body).contains("still fails"));
    // Every other object still serves.
    for (i, d) in &placed {
        if *d != gone_root {
            assert_status(&server.get(&format!("/t/{i}.bin"), &[]), 200);
        }
    }
    // The drive is mounted again: the probe re-verifies it and puts it back
    // by itself (it failed by vanishing, not by I/O errors).
    let status = Command::new("mount")
        .arg(&drives[gone].device)
        .arg(&drives[gone].mount)
        .status()
        .expect("mount");
    assert!(status.success());
    wait_state(&server, &root, "active", Duration::from_secs(8));
    for (i, d) in &placed {
        if *d == gone_root {
            let r = server.get(&format!("/t/{i}.bin"), &[]);
            assert_status(&r, 200);
            assert_bytes_eq(&r.body, &object(*i), "an object of the returned drive");
        }
    }
    assert!(server.stderr().contains("drive back in service"));
    assert!(alive(&server));
}

#[test]
fn a_drive_failed_by_io_errors_comes_back_only_when_enabled() {
    let Some(Rig {
        drives,
        store: _store,
        server,
        placed,
    }) = four_drives()
    else {
        return;
    };
    let root = placed[&2].clone();
    let bad = drives
        .iter()
        .position(|d| d.root() == root)
        .expect("a loop drive");
    let name = root.to_str().expect("utf-8").to_owned();
    drives[bad].fail();
    // The first request meets the fault (its body is cut); then a 404.
    let _ = plain(server.addr, "/t/2.bin", range_of(2, 0));
    assert_eq!(
        plain(server.addr, "/t/2.bin", (0, 9)),
        Got::Answer(404, b"not found\n".to_vec())
    );
    assert_eq!(disk_state(&server, &name, "failed"), Some(1.0));
    // Its root still lists (the directory blocks are cached), yet the probe
    // does not bring it back: a drive that gave I/O errors waits for an
    // operator. A negative check needs a bound: one probe period and a half.
    std::thread::sleep(Duration::from_millis(3000));
    assert_eq!(
        disk_state(&server, &name, "failed"),
        Some(1.0),
        "no automatic return after I/O errors"
    );
    assert!(alive(&server));
}

/// Flips one byte of the stored copy of `key` in place, as rot would (same
/// inode, same length, the digest record untouched).
fn rot(store: &Store, key: &str, at: u64) -> PathBuf {
    use std::os::unix::fs::FileExt as _;
    let path = store
        .disks
        .iter()
        .map(|d| d.join("objects").join(key))
        .find(|p| p.exists())
        .expect("the stored copy");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open the stored copy");
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).expect("read a byte");
    f.write_all_at(&[!b[0]], at).expect("flip it");
    path
}

fn quarantined(store: &Store) -> Vec<PathBuf> {
    store
        .disks
        .iter()
        .filter_map(|d| std::fs::read_dir(d.join("quarantine")).ok())
        .flat_map(|e| e.flatten().map(|e| e.path()))
        .collect()
}

#[test]
fn eddy_store_fsck_finds_a_flipped_byte_and_repair_quarantines_it() {
    let store = Store::new();
    for i in 0..12u64 {
        store.write(&format!("t/{i}.bin"), &object(i));
    }
    store.import();
    let rotten = rot(&store, "t/5.bin", 4321);
    let fsck = |extra: &[&str]| {
        let mut args = vec!["store".to_string(), "fsck".to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(store.disk_args());
        run_eddy(&args)
    };
    let out = fsck(&[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("MISMATCH\tt/5.bin\t"), "{text}");
    assert!(text.contains("checked 12 objects"), "{text}");
    assert!(rotten.exists(), "left in place without --repair");
    let out = fsck(&["--repair", "--max-rate-mib", "64"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("quarantined: "), "{text}");
    assert!(!rotten.exists());
    assert_eq!(quarantined(&store).len(), 1);
    // Clean now, and the rotten object is never served.
    assert_eq!(fsck(&[]).status.code(), Some(0));
    let server = store.serve();
    assert_status(&server.get("/t/5.bin", &[]), 404);
    let r = server.get("/t/6.bin", &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &object(6), "a sound neighbour");
}

#[test]
fn the_background_fsck_quarantines_rot_while_serving() {
    let store = Store::new();
    for i in 0..12u64 {
        store.write(&format!("t/{i}.bin"), &object(i));
    }
    store.import();
    let server = store.serve_with(&format!(
        "[store]\nfsck_mib_per_sec = 256\n[admin]\ntoken = \"{TOKEN}\"\n"
    ));
    let r = server.get("/t/7.bin", &[]);
    assert_status(&r, 200);
    rot(&store, "t/7.bin", 17);
    assert_status(&admin_post(&server, "/store/fsck"), 202);
    eventually(Duration::from_secs(10), || {
        (sample(&scrape(&server), "eddy_fsck_mismatches_total") == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("no mismatch found:\n{}", scrape(&server)));
    let text = scrape(&server);
    assert!(
        must_sample(&text, "eddy_fsck_checked_objects_total") >= 12.0,
        "{text}"
    );
    assert_status(&server.get("/t/7.bin", &[]), 404);
    assert_eq!(quarantined(&store).len(), 1);
    for i in (0..12u64).filter(|i| *i != 7) {
        let r = server.get(&format!("/t/{i}.bin"), &[]);
        assert_status(&r, 200);
        assert_bytes_eq(&r.body, &object(i), "a sound object");
    }
}

#[test]
fn readyz_turns_503_when_every_drive_has_failed() {
    let store = Store::new();
    for i in 0..6u64 {
        store.write(&format!("t/{i}.bin"), &object(i));
    }
    store.import();
    let server = store.serve();
    assert_status(&server.admin_request("GET", "/readyz"), 200);
    // Every drive's objects/ goes away under eddy: the probe fails each.
    for d in &store.disks {
        std::fs::remove_dir_all(d.join("objects")).expect("remove objects/");
    }
    eventually(Duration::from_secs(8), || {
        (server.admin_request("GET", "/readyz").status == 503).then_some(())
    })
    .unwrap_or_else(|| panic!("still ready:\n{}", scrape(&server)));
    let r = server.admin_request("GET", "/readyz");
    assert!(
        String::from_utf8_lossy(&r.body).contains("no disk"),
        "{}",
        r.describe()
    );
    assert_status(&server.get("/t/1.bin", &[]), 404);
    assert!(alive(&server));
}

#[test]
fn objects_of_a_failed_drive_are_redirected_where_configured() {
    let store = Store::new();
    for i in 0..12u64 {
        store.write(&format!("t/{i}.bin"), &object(i));
    }
    store.import();
    let placed = placement(&store);
    let server =
        store.serve_with("[store]\nfailed_redirect = \"https://fallback.example/edge/\"\n");
    let gone = store.disks[0].clone();
    std::fs::remove_dir_all(gone.join("objects")).expect("remove objects/");
    let root = gone.to_str().expect("utf-8").to_owned();
    wait_state(&server, &root, "failed", Duration::from_secs(8));
    let before = must_sample(&scrape(&server), "eddy_misses_total{kind=\"health\"}");
    let mut redirected = 0.0;
    for (i, d) in &placed {
        let r = server.get(&format!("/t/{i}.bin?e=1&t=x"), &["Range: bytes=0-9"]);
        if *d == gone {
            assert_status(&r, 302);
            assert_eq!(
                r.must("location"),
                format!("https://fallback.example/edge/t/{i}.bin?e=1&t=x")
            );
            assert_eq!(r.must("cache-control"), "no-store");
            redirected += 1.0;
        } else {
            assert_status(&r, 206);
            assert_bytes_eq(&r.body, &object(*i)[..10], "a healthy drive's object");
        }
    }
    assert!(redirected > 0.0, "no object on the failed drive");
    let text = scrape(&server);
    assert_eq!(
        must_sample(&text, "eddy_misses_total{kind=\"health\"}") - before,
        redirected
    );
    assert_eq!(
        must_sample(
            &text,
            "eddy_requests_total{transport=\"http\",status=\"302\"}"
        ),
        redirected
    );
}

/// A drive that hangs: the FUSE file system of `tests/fuse/stall.py` over
/// `source`, whose reads block while `flag` exists. `None` (with the reason)
/// where FUSE or Debian's python3-fusepy is missing.
struct StallingDrive {
    child: std::process::Child,
    mount: PathBuf,
    flag: PathBuf,
}

impl StallingDrive {
    fn mount(source: &Path, mount: &Path, flag: &Path) -> Option<StallingDrive> {
        let fusepy = Command::new("/usr/bin/python3")
            .args(["-c", "import fusepy"])
            .output();
        if !fusepy.is_ok_and(|o| o.status.success()) || !Path::new("/dev/fuse").exists() {
            eprintln!("skipped: needs /dev/fuse and /usr/bin/python3 with fusepy (apt-get install python3-fusepy)");
            return None;
        }
        std::fs::create_dir_all(mount).expect("mount point");
        let child = Command::new("/usr/bin/python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuse/stall.py"))
            .args([source, mount, flag])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the FUSE file system");
        let drive = StallingDrive {
            child,
            mount: mount.to_owned(),
            flag: flag.to_owned(),
        };
        eventually(Duration::from_secs(10), || {
            mount.join("objects").exists().then_some(())
        })
        .unwrap_or_else(|| panic!("the FUSE drive never mounted"));
        Some(drive)
    }
}

impl Drop for StallingDrive {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.flag);
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_hung_drive_holds_only_its_own_reads_and_is_failed_at_the_deadline() {
    if !fs_is_root() {
        eprintln!("skipped: FUSE mounts need root");
        return;
    }
    let mut store = Store::new();
    let backing = store.path().join("b2");
    std::fs::create_dir_all(&backing).expect("mkdir");
    store.disks[2] = backing.clone();
    for i in 0..24u64 {
        store.write(&format!("t/{i}.bin"), &object(i));
    }
    store.import();
    let placed = placement(&store);
    let flag = store.path().join("stall");
    let mount = store.path().join("fuse2");
    let Some(_drive) = StallingDrive::mount(&backing, &mount, &flag) else {
        return;
    };
    store.disks[2] = mount.clone();
    let server = store.serve_with("[store]\nread_timeout = \"1s\"\nfsck_mib_per_sec = 0\n");
    let hung: Vec<u64> = placed
        .iter()
        .filter(|(_, d)| **d == backing)
        .map(|(i, _)| *i)
        .collect();
    assert!(!hung.is_empty(), "no object on the FUSE drive");
    std::fs::write(&flag, b"").expect("stall the drive");
    // Requests for the hung drive's objects wait on it...
    let addr = server.addr;
    let ask = |i: u64, r: (u64, u64)| {
        let path = format!("/t/{i}.bin");
        std::thread::spawn(move || plain(addr, &path, r))
    };
    let first = (hung[0], range_of(hung[0], 1));
    let mut waiting = vec![ask(first.0, first.1)];
    // ...and once that read is on the pool, holding its pages locked while
    // they look resident, more requests for the same bytes: sent from the
    // event loop they would wait with it, and hold every connection of
    // that thread (with two cores, the whole server) until the drive answers.
    eventually(Duration::from_secs(5), || {
        (sample(&scrape(&server), "eddy_disk_wait_windows_total").unwrap_or(0.0) >= 1.0)
            .then_some(())
    })
    .expect("the first read went to the pool");
    for _ in 0..4 {
        waiting.push(ask(first.0, first.1));
    }
    for i in hung.iter().skip(1).take(2) {
        waiting.push(ask(*i, range_of(*i, 1)));
    }
    // ...while every other drive's objects are served, byte-exact.
    for (i, d) in &placed {
        if *d != backing {
            let r = range_of(*i, 2);
            let want = object(*i)[r.0 as usize..=r.1 as usize].to_vec();
            assert_eq!(
                plain(addr, &format!("/t/{i}.bin"), r),
                Got::Answer(206, want),
                "/t/{i}.bin"
            );
        }
    }
    for w in waiting {
        let got = w.join().expect("a waiting client");
        assert!(
            !matches!(got, Got::Answer(206, _)),
            "a hung read answered: {got:?}"
        );
    }
    let root = mount.to_str().expect("utf-8").to_owned();
    wait_state(&server, &root, "failed", Duration::from_secs(5));
    let listed =
        String::from_utf8_lossy(&server.admin_request("GET", "/store/disks").body).into_owned();
    assert!(listed.contains("store.read_timeout"), "{listed}");
    assert_eq!(
        plain(addr, &format!("/t/{}.bin", hung[0]), (0, 9)),
        Got::Answer(404, b"not found\n".to_vec())
    );
    assert!(alive(&server));
}

fn fs_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}
