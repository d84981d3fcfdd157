//! `eddy demo`: the whole system on loopback, for a first look.
//!
//! Owns: the demo's temp directory (`eddy-demo-<pid>`: the library, the
//! control plane's key and database, two empty disks, a config file with a
//! signing key; left-overs of a demo killed before it could clean up are
//! removed by the next one), the sample library (a short real video encoded
//! with `ffmpeg` where it is installed: H.264/AAC as a progressive MP4 and as
//! fMP4 HLS whose playlist carries a signed query on every URI, so a player
//! fetches every segment with a valid token; deterministic synthetic bytes
//! otherwise), starting the control plane (`eddy-origin`, in this process),
//! the flags of the appliance, and, once the fill is done, telling the user
//! what to try: signed curl and ffplay lines, the status page, and what the
//! control plane now knows about the appliance (its health and inventory
//! views). It must not serve or install anything itself: `main` runs the
//! real `eddy serve` over these flags, and the real fill installs the
//! library.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::Common;
use crate::config::ConfigError;

/// The appliance id of `eddy demo`.
pub const APPLIANCE: &str = "demo-oca";
/// The title the demo's signed URLs grant.
pub const TITLE: &str = "/titles/81/";
/// How long the demo's signed URLs are valid: longer than anyone watches it.
pub const URL_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the control plane: {0}")]
    Origin(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |source| DemoError::Io { what, source }
}

/// The synthetic library (no ffmpeg): key and size in bytes.
pub const SAMPLE: &[(&str, u64)] = &[
    ("titles/81/video-1080.mp4", 48 << 20),
    ("titles/81/video-480.mp4", 12 << 20),
    ("titles/81/audio-en.m4a", 3 << 20),
];

/// Segments of the synthetic segmented rendition.
pub const SEGMENTS: usize = 20;
/// Size of one synthetic segment.
pub const SEGMENT_BYTES: u64 = 2 << 20;
/// Length of the encoded sample video.
pub const VIDEO_SECONDS: u32 = 24;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Every key of the library.
    pub keys: Vec<String>,
    /// A real, playable video (ffmpeg was there); synthetic bytes otherwise.
    pub video: bool,
}

/// A prepared demo: its files, and the signed query for [`TITLE`].
#[derive(Debug)]
pub struct Demo {
    pub work: PathBuf,
    pub content: PathBuf,
    pub disks: Vec<PathBuf>,
    /// The appliance's config file: tokens required, one signing key.
    pub config: PathBuf,
    /// `e=…&t=…` for [`TITLE`].
    pub query: String,
    pub sample: Sample,
    /// The token the appliance reports with, for this run only.
    pub report_token: String,
}

/// What `eddy serve` tells the demo once it listens.
#[derive(Debug, Clone)]
pub struct Ready {
    pub admin: Option<SocketAddr>,
    /// The serving listeners as URLs (`http://127.0.0.1:8080`).
    pub serving: Vec<String>,
}

/// Makes the demo's directory, config, signed query and library.
pub fn prepare() -> Result<Demo, DemoError> {
    let tmp = std::env::temp_dir();
    sweep_stale(&tmp);
    let work = tmp.join(format!("eddy-demo-{}", std::process::id()));
    let content = work.join("origin-content");
    let disks = vec![work.join("disk0"), work.join("disk1")];
    fs::create_dir_all(&work).map_err(io(format!("cannot create {}", work.display())))?;
    let secret = hex(&random_bytes(32).map_err(io("cannot read /dev/urandom"))?);
    let config = work.join("eddy.toml");
    fs::write(
        &config,
        format!(
            "# eddy demo: signed URLs are required (eddy token sign --config {}).\n\
             [serve]\nrequire_tokens = true\n\n[[tokens.keys]]\nid = \"demo\"\nsecret_hex = \"{secret}\"\n",
            config.display()
        ),
    )
    .map_err(io(format!("cannot write {}", config.display())))?;
    let tokens = crate::config::load_tokens(&config)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let query = crate::cmd::token::sign(
        &tokens,
        &crate::cmd::token::Request {
            prefix: TITLE,
            expiry: now + URL_TTL.as_secs(),
            ..Default::default()
        },
    )?;
    println!(
        "eddy demo: writing a sample library to {}",
        content.display()
    );
    let sample = write_sample(&content, &query).map_err(io(format!(
        "cannot write the sample library to {}",
        content.display()
    )))?;
    let what = if sample.video {
        format!("a {VIDEO_SECONDS} s H.264/AAC video, as MP4 and HLS (ffmpeg)")
    } else {
        "synthetic files (install ffmpeg for a playable video)".to_owned()
    };
    println!("eddy demo: wrote {} files: {what}", sample.keys.len());
    crate::store::import::prepare_disks(&disks).map_err(|e| DemoError::Io {
        what: "cannot prepare the demo's disks".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let report_token = format!(
        "demo-{}",
        hex(&random_bytes(16).map_err(io("/dev/urandom"))?)
    );
    Ok(Demo {
        work,
        content,
        disks,
        config,
        query,
        sample,
        report_token,
    })
}

/// Removes the directories of demos that are no longer running (killed
/// before they could clean up, for example by a Ctrl-C during the encode).
fn sweep_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("eddy-demo-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes the library below `dir`: the encoded video when ffmpeg can make
/// it, the synthetic files otherwise. `query` is appended to the URIs of the
/// HLS playlist.
pub fn write_sample(dir: &Path, query: &str) -> std::io::Result<Sample> {
    write_sample_with(dir, query, "ffmpeg")
}

/// [`write_sample`] with the ffmpeg program named.
fn write_sample_with(dir: &Path, query: &str, program: &str) -> std::io::Result<Sample> {
    match encode_video(dir, query, program) {
        Ok(Some(keys)) => return Ok(Sample { keys, video: true }),
        Ok(None) => {}
        Err(e) => {
            println!(
                "eddy demo: ffmpeg could not encode the sample ({e}); writing synthetic files"
            );
            let _ = fs::remove_dir_all(dir);
        }
    }
    Ok(Sample {
        keys: write_synthetic(dir)?,
        video: false,
    })
}

/// Encodes the sample video with ffmpeg; `None` when ffmpeg is not installed.
fn encode_video(dir: &Path, query: &str, program: &str) -> std::io::Result<Option<Vec<String>>> {
    let title = dir.join("titles/81");
    let hls = title.join("hls");
    fs::create_dir_all(&hls)?;
    let mp4 = title.join("video-720.mp4");
    let secs = VIDEO_SECONDS.to_string();
    let encode: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=1280x720:rate=30:duration={secs}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate=48000:duration={secs}"),
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        // A key frame every 2 s: 4 s segments start on one.
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-shortest",
        "-movflags",
        "+faststart",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([mp4.display().to_string()])
    .collect();
    match ffmpeg(program, &encode) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    }
    let segment = hls.join("seg%03d.m4s");
    let playlist = hls.join("index.m3u8");
    let package: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-i",
        &mp4.display().to_string(),
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        "4",
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-hls_segment_filename",
        &segment.display().to_string(),
        &playlist.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ffmpeg(program, &package)?;
    let text = fs::read_to_string(&playlist)?;
    fs::write(&playlist, tokenize_playlist(&text, query))?;
    let mut keys = vec!["titles/81/video-720.mp4".to_owned()];
    let mut names: Vec<String> = fs::read_dir(&hls)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    keys.extend(names.into_iter().map(|n| format!("titles/81/hls/{n}")));
    Ok(Some(keys))
}

fn ffmpeg(program: &str, args: &[String]) -> std::io::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "ffmpeg {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The playlist with `?query` on every URI (segment lines and `URI="…"`
/// attributes), so that a player, which resolves them against the
/// playlist's URL without its query, sends the token with each (pure).
pub fn tokenize_playlist(text: &str, query: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
        } else if !line.starts_with('#') {
            out.push_str(line);
            out.push(if line.contains('?') { '&' } else { '?' });
            out.push_str(query);
        } else if let Some((before, rest)) = line.split_once("URI=\"") {
            let (uri, after) = rest.split_once('"').unwrap_or((rest, ""));
            let sep = if uri.contains('?') { '&' } else { '?' };
            out.push_str(&format!("{before}URI=\"{uri}{sep}{query}\"{after}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The synthetic library: per-bitrate files of a title and 2 MiB segments
/// with a playlist, deterministic bytes (not playable).
pub fn write_synthetic(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut keys = Vec::new();
    for (i, (key, len)) in SAMPLE.iter().enumerate() {
        write_pseudo_random(&dir.join(key), *len, i as u64 + 1)?;
        keys.push((*key).to_owned());
    }
    let mut playlist = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n");
    for n in 0..SEGMENTS {
        let key = format!("titles/81/hls/seg{n:03}.ts");
        write_pseudo_random(&dir.join(&key), SEGMENT_BYTES, 100 + n as u64)?;
        playlist.push_str(&format!("#EXTINF:4.0,\nseg{n:03}.ts\n"));
        keys.push(key);
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    let key = "titles/81/hls/index.m3u8";
    fs::write(dir.join(key), playlist)?;
    keys.push(key.to_owned());
    Ok(keys)
}

/// Deterministic bytes (xorshift64*), written in 1 MiB blocks.
fn write_pseudo_random(path: &Path, len: u64, seed: u64) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()
}

/// Starts the control plane over the library on a thread of its own;
/// returns its address and public key.
pub fn start_origin(demo: &Demo) -> Result<(SocketAddr, String), DemoError> {
    let key = demo.work.join("control-plane.key");
    let public =
        eddy_origin::keygen(&key).map_err(|e| DemoError::Origin(format!("keygen: {e}")))?;
    let token = eddy_origin::options::ReportToken::new(APPLIANCE, &demo.report_token)
        .map_err(|e| DemoError::Origin(format!("report token: {e}")))?;
    let options = eddy_origin::ServeOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        content: demo.content.clone(),
        key,
        catalogue: None,
        public_url: None,
        sources: Vec::new(),
        manifest_ttl: Duration::from_secs(24 * 3600),
        fill_start: None,
        generation_start: None,
        faults: Vec::new(),
        db: Some(demo.work.join("control-plane.sqlite")),
        report_tokens: vec![token],
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-origin".into())
        .spawn(move || {
            if let Err(e) = eddy_origin::serve(options, move |addr| {
                let _ = tx.send(addr);
            }) {
                eprintln!("eddy demo: the control plane stopped: {e}");
            }
        })
        .map_err(io("cannot start the control plane's thread"))?;
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| DemoError::Origin("did not start within 30 s".into()))?;
    Ok((addr, public))
}

/// The appliance's flags: two empty disks, the config file, a fill from the
/// control plane's manifest inside an always-open window, and reports.
pub fn common(
    demo: &Demo,
    origin: SocketAddr,
    public: String,
    listen: String,
    admin: String,
) -> Common {
    Common {
        config: Some(demo.config.clone()),
        listen: vec![listen],
        disks: demo.disks.clone(),
        admin_listen: Some(admin),
        fill_manifest: Some(format!("http://{origin}/v1/manifest/{APPLIANCE}")),
        fill_keys: vec![public],
        fill_window: Some("always".into()),
        fill_appliance: Some(APPLIANCE.into()),
        fill_insecure_plain_http: true,
        fill_poll: Some("10s".into()),
        report_url: Some(format!("http://{origin}/v1/report/{APPLIANCE}")),
        report_insecure_plain_http: true,
        report_token: Some(demo.report_token.clone()),
        ..Common::default()
    }
}

/// What the demo prints once the appliance listens: the fill's progress,
/// then, once the library is installed, what to try and what the control
/// plane knows. Runs on a thread of its own; never holds up serving.
pub fn tell_when_filled(
    ready: std::sync::mpsc::Receiver<Ready>,
    demo: &Demo,
    origin: SocketAddr,
) -> std::io::Result<()> {
    let expected = demo.sample.keys.len() as u64;
    let video = demo.sample.video;
    let query = demo.query.clone();
    let config = demo.config.clone();
    let work = demo.work.clone();
    std::thread::Builder::new()
        .name("demo-guide".into())
        .spawn(move || {
            let Ok(ready) = ready.recv() else { return };
            let (Some(admin), Some(url)) = (ready.admin, ready.serving.first().cloned()) else {
                return;
            };
            println!(
                "eddy demo: the appliance fills its two empty disks from http://{origin}/v1/manifest/{APPLIANCE}; \
                 watch it on http://{admin}/status"
            );
            let filled = loop {
                if let Ok((200, body)) = http_get(admin, "/fill/status") {
                    if let Ok(s) = serde_json::from_str::<eddy_proto::report::FillStatus>(&body) {
                        if s.state == "idle" && s.objects_installed >= expected {
                            break s;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            println!(
                "eddy demo: filled {} objects ({} bytes) from the control plane, generation {}",
                filled.objects_installed,
                filled.bytes_done,
                filled.generation.map_or("none".into(), |g| g.to_string())
            );
            print_control_plane(origin, expected);
            print_try(&url, admin, &query, video, &config);
            println!("eddy demo: Ctrl-C stops everything and removes {}", work.display());
        })
        .map(|_| ())
}

/// What the control plane knows: the appliance's last health report and
/// its inventory (waiting up to 30 s for both to arrive).
fn print_control_plane(origin: SocketAddr, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = |what: &str, ready: &dyn Fn(&serde_json::Value) -> bool| loop {
        if let Ok((200, body)) = http_get(origin, &format!("/v1/appliances/{APPLIANCE}/{what}")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                if ready(&v) || Instant::now() > deadline {
                    return Some(v);
                }
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let objects = |v: &serde_json::Value| v["objects"].as_array().map_or(0, Vec::len) as u64;
    let inventory = view("inventory", &|v| objects(v) >= expected);
    let health = view("health", &|v| v["generation"].is_u64());
    println!("eddy demo: the control plane (eddy-origin) now knows about {APPLIANCE}:");
    match health {
        Some(h) => println!(
            "  health:    serving {}, {} disks, {} connections open, {} responses, generation {}, software {}",
            h["serving"],
            h["disks"].as_array().map_or(0, Vec::len),
            h["connections_open"],
            h["requests_total"],
            h["generation"],
            h["software"].as_str().unwrap_or("?"),
        ),
        None => println!("  health:    no report yet"),
    }
    match inventory {
        Some(i) => println!(
            "  inventory: {} objects, {} bytes, generation {}",
            objects(&i),
            i["objects"].as_array().map_or(0, |o| o
                .iter()
                .filter_map(|x| x["size"].as_u64())
                .sum::<u64>()),
            i["generation"],
        ),
        None => println!("  inventory: no report yet"),
    }
    println!("  curl -s http://{origin}/v1/appliances/{APPLIANCE}/health   # also /inventory, /popularity");
}

fn print_try(url: &str, admin: SocketAddr, query: &str, video: bool, config: &Path) {
    println!("eddy demo: signed URLs are required (unsigned: 403); these are valid for 24 h. Try:");
    if video {
        println!("  ffplay -autoexit '{url}/titles/81/hls/index.m3u8?{query}'   # HLS, every segment signed");
        println!("  ffplay -autoexit '{url}/titles/81/video-720.mp4?{query}'    # MP4, seeks with ranges");
        println!("  curl -sI '{url}/titles/81/video-720.mp4?{query}'");
        println!("  curl -s -r 1048576-2097151 '{url}/titles/81/video-720.mp4?{query}' | wc -c");
        println!("  curl -s '{url}/titles/81/video-720.mp4/range/0-1048575?{query}' | wc -c   # Open Connect range form");
        println!("  curl -s '{url}/titles/81/hls/index.m3u8?{query}'");
        println!("  curl -s -o /dev/null -w '%{{http_code}}\\n' {url}/titles/81/video-720.mp4   # 403: no token");
    } else {
        println!("  curl -sI '{url}/titles/81/video-1080.mp4?{query}'");
        println!("  curl -s -r 1048576-2097151 '{url}/titles/81/video-1080.mp4?{query}' | wc -c");
        println!("  curl -s '{url}/titles/81/video-1080.mp4/range/0-1048575?{query}' | wc -c   # Open Connect range form");
        println!("  curl -s -H 'Range: bytes=0-99,-100' '{url}/titles/81/audio-en.m4a?{query}' | head -c 300");
        println!("  curl -s -o /dev/null -w '%{{http_code}}\\n' {url}/titles/81/video-1080.mp4   # 403: no token");
        println!("  (synthetic bytes, not playable: install ffmpeg for a real video)");
    }
    println!(
        "  eddy token sign --config {} --prefix /titles/81/ --ttl 1h   # sign more",
        config.display()
    );
    println!("eddy demo: the status page: http://{admin}/status");
    println!("  curl -s http://{admin}/fill/status          # the fill's progress (JSON)");
    println!(
        "  curl -s http://{admin}/metrics | grep -E 'eddy_(requests|fill_installed_objects)_total'"
    );
}

/// One `GET` over HTTP/1.1 with `Connection: close`: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_deterministic() -> std::io::Result<()> {
        let a = tempfile::tempdir()?;
        let b = tempfile::tempdir()?;
        write_pseudo_random(&a.path().join("x"), 3000, 7)?;
        write_pseudo_random(&b.path().join("x"), 3000, 7)?;
        assert_eq!(fs::read(a.path().join("x"))?, fs::read(b.path().join("x"))?);
        assert_eq!(fs::metadata(a.path().join("x"))?.len(), 3000);
        Ok(())
    }

    #[test]
    fn without_ffmpeg_the_library_is_synthetic() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let s = write_sample_with(dir.path(), "e=1&t=x", "eddy-test-no-such-ffmpeg")?;
        assert!(!s.video);
        assert_eq!(s.keys.len(), SAMPLE.len() + SEGMENTS + 1);
        assert_eq!(
            fs::metadata(dir.path().join("titles/81/video-1080.mp4"))?.len(),
            48 << 20
        );
        assert!(
            fs::read_to_string(dir.path().join("titles/81/hls/index.m3u8"))?.starts_with("#EXTM3U")
        );
        Ok(())
    }

    #[test]
    fn every_playlist_uri_carries_the_query() {
        let text =
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.0,\nseg000.m4s\n\
                    #EXTINF:4.0,\nseg001.m4s?x=1\n#EXT-X-ENDLIST\n";
        let out = tokenize_playlist(text, "e=1&t=a.b");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4?e=1&t=a.b\"\n#EXTINF:4.0,\n\
             seg000.m4s?e=1&t=a.b\n#EXTINF:4.0,\nseg001.m4s?x=1&e=1&t=a.b\n#EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn stale_demo_directories_go_and_live_ones_stay() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        // No process has pid u32::MAX - 1; this process is alive.
        let dead = tmp.path().join(format!("eddy-demo-{}", u32::MAX - 1));
        let alive = tmp.path().join(format!("eddy-demo-{}", std::process::id()));
        let other = tmp.path().join("eddy-demo-notapid");
        for d in [&dead, &alive, &other] {
            fs::create_dir_all(d.join("disk0"))?;
        }
        sweep_stale(tmp.path());
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
        Ok(())
    }
}
