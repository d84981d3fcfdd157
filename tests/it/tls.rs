//! The TLS listener (`[tls]`): HTTP/2 and HTTP/1.1 over rustls give the same answers as the plain
//! listener, signed URLs are required there by default, certificates reload on SIGHUP and on file
//! change, bad certificates are refused without leaking key material, and the handshake, idle and
//! HTTP/2 limits (stream settings, rapid reset) hold.
//!
//! Clients: hyper (h2 and http/1.1) over tokio-rustls for whole responses, a tiny raw HTTP/2 client
//! over `rustls::StreamOwned` for frame-level checks, raw HTTP/1.1 over rustls, and curl.

use crate::support::*;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};

// ---------------------------------------------------------------------------------------------
// Certificates, objects, configs
// ---------------------------------------------------------------------------------------------

/// A self-signed certificate for `localhost` and 127.0.0.1, with its key, as PEM and DER.
pub(crate) struct Identity {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    der: Vec<u8>,
}

impl Identity {
    pub(crate) fn new(name: &str) -> Identity {
        Identity::make(name, None)
    }

    /// One whose notAfter is midnight UTC of `(year, month, day)`.
    fn expiring(name: &str, on: (i32, u8, u8)) -> Identity {
        Identity::make(name, Some(on))
    }

    fn make(name: &str, not_after: Option<(i32, u8, u8)>) -> Identity {
        let key = rcgen::KeyPair::generate().expect("generate a key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("cert params");
        if let Some((y, m, d)) = not_after {
            params.not_after = rcgen::date_time_ymd(y, m, d);
        }
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("self-sign");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// The base64 lines of the private key: none of them may ever be printed.
    fn key_lines(&self) -> Vec<&str> {
        self.key_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .collect()
    }
}

#[track_caller]
fn assert_no_key_material(text: &str, id: &Identity, what: &str) {
    for l in id.key_lines() {
        assert!(
            !text.contains(l),
            "{what}: private key material was printed: {text}"
        );
    }
    assert!(
        !text.contains("PRIVATE KEY-----"),
        "{what}: a PEM key block was printed: {text}"
    );
}

/// Replaces `path` atomically (write a temp file, rename over), as a deploy tool would.
fn put(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename over");
}

const SECRET_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// One verification key: needed whenever the TLS listener requires tokens (the default).
fn keys_toml() -> String {
    format!("[[tokens.keys]]\nid = \"k1\"\nsecret_hex = \"{SECRET_HEX}\"\n")
}

/// `[store] disks = [...]` for configs used without `--disk` (check-config).
fn disks_toml(store: &Store) -> String {
    let list: Vec<String> = store
        .disks
        .iter()
        .map(|d| format!("\"{}\"", d.display()))
        .collect();
    format!("[store]\ndisks = [{}]\n", list.join(", "))
}

/// The test objects: a few-MB movie with a known mtime, a small segment, an empty file.
const MOVIE: &str = "/movie/v.mp4";
const SEG: &str = "/seg/1.m4s";
const MOVIE_LEN: usize = 3_000_000;

struct Objects {
    movie: Vec<u8>,
    seg: Vec<u8>,
}

fn objects(store: &Store) -> Objects {
    let movie = gen_bytes(71, MOVIE_LEN);
    let seg = gen_bytes(72, 20_000);
    store.write_with_mtime("movie/v.mp4", &movie, 1_600_000_000);
    store.write("seg/1.m4s", &seg);
    store.write("empty.bin", b"");
    store.import();
    Objects { movie, seg }
}

/// Paths of the certificate and key files the server is configured with.
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new(store: &Store, id: &Identity) -> Files {
        let f = Files {
            cert: store.path().join("tls.crt"),
            key: store.path().join("tls.key"),
        };
        f.install(id);
        f
    }

    fn install(&self, id: &Identity) {
        put(&self.cert, &id.cert_pem);
        put(&self.key, &id.key_pem);
    }

    /// `[tls]` with one ephemeral listener and these files, plus `tls_keys` (more `[tls]` keys)
    /// and `rest` (other sections).
    fn toml(&self, tls_keys: &str, rest: &str) -> String {
        format!(
            "[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{}\"\nkey = \"{}\"\n{tls_keys}\n{rest}",
            self.cert.display(),
            self.key.display()
        )
    }
}

/// A store with the test objects and a server with a TLS listener that does not require tokens
/// (so that its answers can be compared with the plain listener's), plus `tls_keys` and `rest`.
struct Fx {
    store: Store,
    server: Server,
    id: Identity,
    files: Files,
    obj: Objects,
}

fn fx(tls_keys: &str, rest: &str) -> Fx {
    let store = Store::new();
    let obj = objects(&store);
    fx_with_objects(store, obj, tls_keys, rest)
}

/// [`fx`] on a store already holding the test objects.
fn fx_with_objects(store: Store, obj: Objects, tls_keys: &str, rest: &str) -> Fx {
    let id = Identity::new("eddy test A");
    let files = Files::new(&store, &id);
    let server = store.serve_tls(&files.toml(&format!("require_tokens = false\n{tls_keys}"), rest));
    Fx {
        store,
        server,
        id,
        files,
        obj,
    }
}

// ---------------------------------------------------------------------------------------------
// rustls client side
// ---------------------------------------------------------------------------------------------

const H2_ONLY: &[&[u8]] = &[b"h2"];
const H1_ONLY: &[&[u8]] = &[b"http/1.1"];
const NO_ALPN: &[&[u8]] = &[];
const BOTH_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A client config trusting exactly `trust`, offering `alpn` and `versions`.
fn client_with(
    trust: &[&Identity],
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for id in trust {
        roots
            .add(CertificateDer::from(id.der.clone()))
            .expect("trust the test certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

fn client(trust: &Identity, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    client_with(&[trust], alpn, BOTH_VERSIONS)
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("server name")
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake.
fn tls_connect(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> Result<TlsStream, String> {
    let sock = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    sock.set_write_timeout(Some(READ_TIMEOUT))
        .expect("write timeout");
    let _ = sock.set_nodelay(true);
    let conn = rustls::ClientConnection::new(cfg.clone(), server_name())
        .map_err(|e| format!("client connection: {e}"))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        match s.conn.complete_io(&mut s.sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("TLS handshake with {addr}: {e}")),
        }
    }
    Ok(s)
}

/// The DER of the certificate the server presented.
fn leaf(s: &TlsStream) -> Vec<u8> {
    s.conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the server presented a certificate")
        .to_vec()
}

/// Sends one raw HTTP/1.1 GET over `s` (keep-alive) and reads one response (Content-Length framed).
fn h1_get(s: &mut TlsStream, target: &str, extra: &[&str]) -> Response {
    s.write_all(&request_bytes("GET", target, extra, false))
        .expect("send request over TLS");
    s.flush().expect("flush");
    h1_read(s)
}

/// Reads one Content-Length framed HTTP/1.1 response over TLS.
fn h1_read(s: &mut TlsStream) -> Response {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    let end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        match s.read(&mut tmp) {
            Ok(0) => panic!(
                "connection closed before a response head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading a response head over TLS: {e}"),
        }
    };
    let text = String::from_utf8(buf[..end].to_vec()).expect("head is UTF-8");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_string();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header {l:?}"));
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    let mut r = Response {
        version,
        status,
        reason: parts.next().unwrap_or_default().to_string(),
        headers,
        body: buf[end + 4..].to_vec(),
    };
    let n = r.content_length().unwrap_or(0) as usize;
    while r.body.len() < n {
        match s.read(&mut tmp) {
            Ok(0) => panic!(
                "connection closed with {} body bytes missing",
                n - r.body.len()
            ),
            Ok(k) => r.body.extend_from_slice(&tmp[..k]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading a response body over TLS: {e}"),
        }
    }
    assert_eq!(r.body.len(), n, "more bytes than Content-Length");
    r
}

/// Reads until the server closes the connection (EOF or reset: true) or `within` passes (false).
fn tls_wait_closed(s: &mut TlsStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut tmp = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.sock
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match s.read(&mut tmp) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// hyper client (HTTP/2 and HTTP/1.1 over tokio-rustls)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    H2,
    H1,
}

impl Proto {
    fn alpn(self) -> &'static [&'static [u8]] {
        match self {
            Proto::H2 => H2_ONLY,
            Proto::H1 => H1_ONLY,
        }
    }
}

/// One request: method, target (origin-form, with any query), header lines `Name: value`.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    headers: Vec<String>,
}

fn req(method: &str, target: &str, headers: &[&str]) -> Req {
    Req {
        method: method.to_string(),
        target: target.to_string(),
        headers: headers.iter().map(|h| h.to_string()).collect(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn build_request(r: &Req, proto: Proto) -> http::Request<Empty<Bytes>> {
    let mut b = http::Request::builder().method(r.method.as_str());
    b = match proto {
        Proto::H2 => b
            .uri(format!("https://localhost{}", r.target))
            .version(http::Version::HTTP_2),
        Proto::H1 => b.uri(r.target.as_str()).header("host", "localhost"),
    };
    for h in &r.headers {
        let (k, v) = h.split_once(':').expect("header line Name: value");
        b = b.header(k.trim(), v.trim());
    }
    b.body(Empty::new()).expect("build request")
}

async fn collect(resp: http::Response<hyper::body::Incoming>, what: &str) -> Response {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"))
        .to_bytes()
        .to_vec();
    Response {
        version: format!("{:?}", parts.version),
        status: parts.status.as_u16(),
        reason: String::new(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}

async fn connect_async(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = tcp.set_nodelay(true);
    tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(server_name(), tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"))
}

/// Sends `reqs` in order: over HTTP/2 all on one connection, over HTTP/1.1 one connection each
/// (so that an answer that closes its connection does not hide the next). Checks the negotiated
/// ALPN protocol.
fn fetch(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
    proto: Proto,
    reqs: &[Req],
) -> Vec<Response> {
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(60), fetch_async(addr, cfg, proto, reqs))
            .await
            .expect("requests over TLS did not finish within 60 s")
    })
}

async fn fetch_async(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
    proto: Proto,
    reqs: &[Req],
) -> Vec<Response> {
    let mut out = Vec::new();
    match proto {
        Proto::H2 => {
            let tls = connect_async(addr, cfg).await;
            assert_eq!(
                tls.get_ref().1.alpn_protocol(),
                Some(&b"h2"[..]),
                "ALPN did not select h2"
            );
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .expect("HTTP/2 handshake");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            for r in reqs {
                let what = format!("h2 {} {} {:?}", r.method, r.target, r.headers);
                let resp = send
                    .send_request(build_request(r, proto))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(resp.version(), http::Version::HTTP_2, "{what}");
                out.push(collect(resp, &what).await);
            }
        }
        Proto::H1 => {
            for r in reqs {
                let what = format!("http/1.1 {} {} {:?}", r.method, r.target, r.headers);
                let tls = connect_async(addr, cfg).await;
                assert_eq!(
                    tls.get_ref().1.alpn_protocol(),
                    Some(&b"http/1.1"[..]),
                    "ALPN did not select http/1.1"
                );
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .expect("HTTP/1.1 handshake");
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let resp = send
                    .send_request(build_request(r, proto))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(resp.version(), http::Version::HTTP_11, "{what}");
                out.push(collect(resp, &what).await);
            }
        }
    }
    out
}

fn fetch_one(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>, proto: Proto, r: Req) -> Response {
    fetch(addr, cfg, proto, &[r]).remove(0)
}

// ---------------------------------------------------------------------------------------------
// Comparing a TLS answer with the plain listener's
// ---------------------------------------------------------------------------------------------

fn is_multipart(r: &Response) -> bool {
    r.header("content-type")
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/byteranges"))
}

/// Same status, same fields (Date within 2 s, multipart boundary aside; Connection is hop-by-hop
/// and absent from HTTP/2), same bytes (multipart: the same parts).
#[track_caller]
fn assert_same(what: &str, plain: &Response, tls: &Response) {
    assert_eq!(
        plain.status,
        tls.status,
        "{what}: status differs\nplain: {}\ntls:   {}",
        plain.describe(),
        tls.describe()
    );
    let names = |r: &Response| {
        let mut v: Vec<String> = r
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .filter(|k| k != "connection")
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(plain),
        names(tls),
        "{what}: header fields differ\nplain: {:?}\ntls:   {:?}",
        plain.headers,
        tls.headers
    );
    if tls.version == "HTTP/2.0" {
        assert!(
            tls.header("connection").is_none(),
            "{what}: HTTP/2 response with a Connection field"
        );
    }
    let multipart = is_multipart(plain);
    for name in names(plain) {
        let (p, t) = (plain.headers_all(&name), tls.headers_all(&name));
        match name.as_str() {
            "date" => {
                let pd = parse_http_date(p[0]).unwrap_or_else(|| panic!("plain Date {p:?}"));
                let td = parse_http_date(t[0]).unwrap_or_else(|| panic!("{what}: TLS Date {t:?}"));
                assert!(pd.abs_diff(td) <= 2, "{what}: Date {p:?} vs {t:?}");
            }
            "content-type" if multipart => {
                boundary_of(t[0]);
            }
            "content-length" if multipart => {}
            _ => assert_eq!(p, t, "{what}: field {name} differs"),
        }
    }
    if multipart {
        let pp = parse_multipart(plain.must("content-type"), &plain.body);
        let tp = parse_multipart(tls.must("content-type"), &tls.body);
        assert_eq!(pp.len(), tp.len(), "{what}: number of parts");
        for (a, b) in pp.iter().zip(&tp) {
            assert_eq!(a.headers, b.headers, "{what}: part headers");
            assert_bytes_eq(&b.body, &a.body, what);
        }
        assert_eq!(
            tls.content_length(),
            Some(tls.body.len() as u64),
            "{what}: multipart Content-Length"
        );
    } else {
        assert_bytes_eq(&tls.body, &plain.body, what);
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny raw HTTP/2 client (sync, over rustls::StreamOwned)
// ---------------------------------------------------------------------------------------------

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const CANCEL: u32 = 8;
const REFUSED_STREAM: u32 = 7;
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

#[derive(Debug)]
struct Frame {
    ty: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frame {
    fn u32_at(&self, i: usize) -> u32 {
        u32::from_be_bytes(self.payload[i..i + 4].try_into().expect("4 bytes"))
    }

    fn describe(&self) -> String {
        match self.ty {
            GOAWAY => format!(
                "GOAWAY(last stream {}, error {:#x})",
                self.u32_at(0) & 0x7fff_ffff,
                self.u32_at(4)
            ),
            RST_STREAM => format!(
                "RST_STREAM(stream {}, error {:#x})",
                self.stream,
                self.u32_at(0)
            ),
            t => format!("frame type {t} on stream {}", self.stream),
        }
    }
}

enum Got {
    Frame(Frame),
    Closed(String),
    Timeout,
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = len.to_be_bytes()[1..].to_vec();
    v.push(ty);
    v.push(flags);
    v.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `first` holds the pattern bits.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// GET `path` (no Huffman): `:method GET`, `:scheme https`, `:path` and `:authority` literals
/// with indexed names, then any `extra` (name, value) literals with literal names.
fn get_block(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = vec![0x82, 0x87];
    b.push(0x04);
    hpack_int(&mut b, 0, 7, path.len());
    b.extend_from_slice(path.as_bytes());
    b.push(0x01);
    hpack_int(&mut b, 0, 7, "localhost".len());
    b.extend_from_slice(b"localhost");
    for (name, value) in extra {
        b.push(0x00);
        hpack_int(&mut b, 0, 7, name.len());
        b.extend_from_slice(name.as_bytes());
        hpack_int(&mut b, 0, 7, value.len());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// The digits of an HPACK Huffman string (RFC 7541 Appendix B); None for anything else.
fn huffman_digits(raw: &[u8]) -> Option<String> {
    const CODES: [(u32, u8); 10] = [
        (0b00000, 5),
        (0b00001, 5),
        (0b00010, 5),
        (0b011001, 6),
        (0b011010, 6),
        (0b011011, 6),
        (0b011100, 6),
        (0b011101, 6),
        (0b011110, 6),
        (0b011111, 6),
    ];
    let (mut acc, mut n, mut out) = (0u32, 0u8, String::new());
    for byte in raw {
        for k in (0..8).rev() {
            acc = (acc << 1) | u32::from((byte >> k) & 1);
            n += 1;
            if let Some(d) = CODES.iter().position(|&(c, l)| l == n && c == acc) {
                out.push(char::from(b'0' + d as u8));
                (acc, n) = (0, 0);
            } else if n > 7 {
                return None;
            }
        }
    }
    // What is left is padding: the most significant bits of EOS, all ones.
    (acc == (1 << n) - 1).then_some(out)
}

/// `:status` from a response header block that starts with it: indexed from the static table, or
/// a literal with the indexed name `:status` (plain or Huffman). 0 when it cannot tell (a
/// reference to the dynamic table).
fn status_of(block: &[u8]) -> u16 {
    let mut i = 0;
    // Dynamic table size updates (001xxxxx, small values only).
    while block.get(i).is_some_and(|b| b & 0xe0 == 0x20) {
        i += 1;
    }
    let Some(&b) = block.get(i) else { return 0 };
    if b & 0x80 != 0 {
        return match b & 0x7f {
            8 => 200,
            9 => 204,
            10 => 206,
            11 => 304,
            12 => 400,
            13 => 404,
            14 => 500,
            _ => 0,
        };
    }
    let name = if b & 0xc0 == 0x40 { b & 0x3f } else { b & 0x0f };
    if name != 8 {
        return 0;
    }
    let Some(&l) = block.get(i + 1) else { return 0 };
    let len = usize::from(l & 0x7f);
    let Some(raw) = block.get(i + 2..i + 2 + len) else {
        return 0;
    };
    let text = if l & 0x80 != 0 {
        huffman_digits(raw)
    } else {
        String::from_utf8(raw.to_vec()).ok()
    };
    text.and_then(|t| t.parse().ok()).unwrap_or(0)
}

struct H2c {
    s: TlsStream,
    buf: Vec<u8>,
    /// Give back connection flow-control credit for every DATA frame received.
    credit: bool,
}

impl H2c {
    /// Handshakes with ALPN h2, sends the preface and SETTINGS(`settings`), reads the server's
    /// SETTINGS (which must be its first frame) and returns them.
    fn open(
        addr: SocketAddr,
        cfg: &Arc<rustls::ClientConfig>,
        settings: &[(u16, u32)],
    ) -> (H2c, Vec<(u16, u32)>) {
        let s = tls_connect(addr, cfg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.conn.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2");
        let mut h = H2c {
            s,
            buf: Vec::new(),
            credit: true,
        };
        let mut payload = Vec::new();
        for (id, v) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&v.to_be_bytes());
        }
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &payload));
        h.send(&hello).expect("send the preface");
        let f = match h.next(Duration::from_secs(10)) {
            Got::Frame(f) => f,
            Got::Closed(why) => panic!("closed before the server's SETTINGS: {why}"),
            Got::Timeout => panic!("no SETTINGS from the server within 10 s"),
        };
        assert!(
            f.ty == SETTINGS && f.flags & ACK == 0 && f.stream == 0,
            "the server's first frame is not SETTINGS: {f:?}"
        );
        let params = f
            .payload
            .chunks(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect();
        (h, params)
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)?;
        self.s.flush()
    }

    /// The next frame, waiting at most `timeout`. Acks SETTINGS and PING, gives back DATA credit.
    fn next(&mut self, timeout: Duration) -> Got {
        let mut tmp = [0u8; 65536];
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f = Frame {
                        ty: self.buf[3],
                        flags: self.buf[4],
                        stream: u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff,
                        payload: self.buf[9..9 + len].to_vec(),
                    };
                    self.buf.drain(..9 + len);
                    if f.ty == SETTINGS && f.flags & ACK == 0 {
                        let _ = self.send(&frame(SETTINGS, ACK, 0, &[]));
                    }
                    if f.ty == PING && f.flags & ACK == 0 {
                        let _ = self.send(&frame(PING, ACK, 0, &f.payload));
                    }
                    if f.ty == DATA && self.credit && !f.payload.is_empty() {
                        let n = f.payload.len() as u32;
                        let _ = self.send(&frame(WINDOW_UPDATE, 0, 0, &n.to_be_bytes()));
                    }
                    return Got::Frame(f);
                }
            }
            self.s
                .sock
                .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
                .expect("read timeout");
            match self.s.read(&mut tmp) {
                Ok(0) => return Got::Closed("EOF".into()),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    return Got::Timeout
                }
                Err(e) => return Got::Closed(e.to_string()),
            }
        }
    }

    fn request(&mut self, stream: u32, path: &str, extra: &[(&str, &str)]) -> std::io::Result<()> {
        self.send(&frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            stream,
            &get_block(path, extra),
        ))
    }

    fn cancel(&mut self, stream: u32) -> std::io::Result<()> {
        self.send(&frame(RST_STREAM, 0, stream, &CANCEL.to_be_bytes()))
    }

    /// Waits for the response HEADERS on `stream`; returns its `:status` (0: could not decode)
    /// and whether it ended the stream.
    fn response_head(&mut self, stream: u32) -> Result<(u16, bool), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no response HEADERS on stream {stream} within 10 s"
                ));
            }
            match self.next(left) {
                Got::Frame(f) if f.ty == HEADERS && f.stream == stream => {
                    return Ok((status_of(&f.payload), f.flags & END_STREAM != 0))
                }
                Got::Frame(f) if f.ty == GOAWAY => return Err(f.describe()),
                Got::Frame(f) if f.ty == RST_STREAM && f.stream == stream => {
                    return Err(f.describe())
                }
                Got::Frame(_) => {}
                Got::Closed(why) => return Err(format!("connection closed: {why}")),
                Got::Timeout => {}
            }
        }
    }

    /// GETs `path` on `stream` and reads the whole response; returns the status and the number
    /// of DATA bytes.
    fn get(&mut self, stream: u32, path: &str) -> Result<(u16, usize), String> {
        self.request(stream, path, &[])
            .map_err(|e| format!("sending HEADERS: {e}"))?;
        let (status, ended) = self.response_head(stream)?;
        if ended {
            return Ok((status, 0));
        }
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("stream {stream} not ended within 10 s ({n} bytes)"));
            }
            match self.next(left) {
                Got::Frame(f) if f.ty == DATA && f.stream == stream => {
                    n += f.payload.len();
                    if f.flags & END_STREAM != 0 {
                        return Ok((status, n));
                    }
                }
                Got::Frame(f) if f.ty == GOAWAY => return Err(f.describe()),
                Got::Frame(f) if f.ty == RST_STREAM && f.stream == stream => {
                    return Err(f.describe())
                }
                Got::Frame(_) | Got::Timeout => {}
                Got::Closed(why) => return Err(format!("connection closed: {why}")),
            }
        }
    }

    /// A PING answered with its ACK: the connection is alive and served.
    fn ping(&mut self) -> Result<(), String> {
        let data = *b"eddy-ok!";
        self.send(&frame(PING, 0, 0, &data))
            .map_err(|e| format!("sending PING: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("no PING ACK within 10 s".into());
            }
            match self.next(left) {
                Got::Frame(f) if f.ty == PING && f.flags & ACK != 0 && f.payload == data => {
                    return Ok(())
                }
                Got::Frame(f) if f.ty == GOAWAY => return Err(f.describe()),
                Got::Frame(_) | Got::Timeout => {}
                Got::Closed(why) => return Err(format!("connection closed: {why}")),
            }
        }
    }
}

fn setting(params: &[(u16, u32)], id: u16) -> Option<u32> {
    params.iter().rev().find(|(k, _)| *k == id).map(|(_, v)| *v)
}

// ---------------------------------------------------------------------------------------------
// The handshake: certificate, ALPN, versions
// ---------------------------------------------------------------------------------------------

#[test]
fn handshake_presents_the_certificate_and_negotiates_alpn_and_version() {
    let f = fx("", "");
    let addr = f.server.https_addr();
    assert_ne!(addr, f.server.addr, "the TLS listener has its own port");
    // (ALPN offered, ALPN expected)
    type Case<'a> = (&'a [&'a [u8]], Option<&'a [u8]>);
    let cases: &[Case] = &[
        (&[b"h2", b"http/1.1"], Some(b"h2")),
        // The server's preference decides: h2 whenever the client offers it.
        (&[b"http/1.1", b"h2"], Some(b"h2")),
        (H2_ONLY, Some(b"h2")),
        (H1_ONLY, Some(b"http/1.1")),
        (NO_ALPN, None),
    ];
    for (alpn, want) in cases {
        for (version, name) in [
            (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
            (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        ] {
            let cfg = client_with(&[&f.id], alpn, &[version]);
            let mut s = tls_connect(addr, &cfg).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(leaf(&s), f.id.der, "the configured certificate");
            assert_eq!(s.conn.protocol_version(), Some(name), "TLS version");
            assert_eq!(s.conn.alpn_protocol(), *want, "ALPN for offer {alpn:?}");
            if *want != Some(b"h2") {
                // No ALPN or http/1.1: plain HTTP/1.1 inside TLS.
                let r = h1_get(&mut s, SEG, &[]);
                assert_status(&r, 200);
                assert_eq!(r.version, "HTTP/1.1");
                assert_bytes_eq(&r.body, &f.obj.seg, "HTTP/1.1 over TLS");
            }
        }
    }
    // HTTP/2 over TLS 1.2 serves too.
    let cfg = client_with(&[&f.id], H2_ONLY, &[&rustls::version::TLS12]);
    let r = fetch_one(addr, &cfg, Proto::H2, req("GET", SEG, &[]));
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &f.obj.seg, "h2 over TLS 1.2");
    // The plain listener of the same process is not TLS.
    let mut c = f.server.connect();
    c.send(&request_bytes("GET", SEG, &[], true));
    let r = c.read_response(false);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &f.obj.seg, "plain listener");
}

#[test]
fn a_client_that_does_not_trust_the_certificate_fails_the_handshake() {
    let f = fx("", "");
    let stranger = Identity::new("someone else");
    let cfg = client(&stranger, H2_ONLY);
    let err = match tls_connect(f.server.https_addr(), &cfg) {
        Ok(_) => panic!("a handshake against an untrusted certificate succeeded"),
        Err(e) => e,
    };
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // The server carries on.
    let r = fetch_one(
        f.server.https_addr(),
        &client(&f.id, H2_ONLY),
        Proto::H2,
        req("GET", SEG, &[]),
    );
    assert_status(&r, 200);
}

// ---------------------------------------------------------------------------------------------
// Same answers as the plain listener
// ---------------------------------------------------------------------------------------------

/// What a case must give, on every listener.
enum Want {
    /// Exactly these bytes.
    Bytes(Vec<u8>),
    /// multipart/byteranges with these inclusive ranges of the movie, in order.
    Parts(Vec<(usize, usize)>),
    /// No body (HEAD, 304).
    Nothing,
    /// Only parity with the plain listener.
    Any,
}

#[test]
fn every_answer_over_h2_and_http11_matches_the_plain_listener() {
    let f = fx("", "");
    let addr = f.server.https_addr();
    let movie = &f.obj.movie;
    let len = movie.len();
    let first = f.server.get(MOVIE, &[]);
    assert_status(&first, 200);
    let etag = first.must("etag").to_string();
    let lm = first.must("last-modified").to_string();
    let inm = format!("If-None-Match: {etag}");
    let ims = format!("If-Modified-Since: {lm}");
    let if_range = format!("If-Range: {etag}");
    let path_range = |a: usize, b: usize| format!("{MOVIE}/range/{a}-{b}");

    #[rustfmt::skip]
    let cases: Vec<(&str, Req, u16, Want)> = vec![
        ("whole", req("GET", MOVIE, &[]), 200, Want::Bytes(movie.clone())),
        ("query ignored", req("GET", &format!("{MOVIE}?x=1&y=2"), &[]), 200, Want::Bytes(movie.clone())),
        ("single range", req("GET", MOVIE, &["Range: bytes=100-199"]), 206, Want::Bytes(movie[100..200].to_vec())),
        ("open range", req("GET", MOVIE, &["Range: bytes=2999000-"]), 206, Want::Bytes(movie[2_999_000..].to_vec())),
        ("suffix range", req("GET", MOVIE, &["Range: bytes=-5000"]), 206, Want::Bytes(movie[len - 5000..].to_vec())),
        ("clipped range", req("GET", MOVIE, &["Range: bytes=2999990-4000000"]), 206, Want::Bytes(movie[2_999_990..].to_vec())),
        ("multi range", req("GET", MOVIE, &["Range: bytes=0-9,1000-1999,2999900-"]), 206,
            Want::Parts(vec![(0, 9), (1000, 1999), (2_999_900, len - 1)])),
        ("multi range, one satisfiable", req("GET", MOVIE, &["Range: bytes=0-9,9000000-"]), 206, Want::Bytes(movie[..10].to_vec())),
        ("invalid range ignored", req("GET", MOVIE, &["Range: bytes=5-1"]), 200, Want::Bytes(movie.clone())),
        ("unsatisfiable range", req("GET", MOVIE, &["Range: bytes=3000000-"]), 416, Want::Any),
        ("if-none-match", req("GET", MOVIE, &[&inm]), 304, Want::Nothing),
        ("if-modified-since", req("GET", MOVIE, &[&ims]), 304, Want::Nothing),
        ("if-match fails", req("GET", MOVIE, &["If-Match: \"nope\""]), 412, Want::Any),
        ("if-unmodified-since fails", req("GET", MOVIE, &["If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT"]), 412, Want::Any),
        ("if-range matches", req("GET", MOVIE, &[&if_range, "Range: bytes=0-99"]), 206, Want::Bytes(movie[..100].to_vec())),
        ("if-range differs", req("GET", MOVIE, &["If-Range: \"other\"", "Range: bytes=0-99"]), 200, Want::Bytes(movie.clone())),
        ("head", req("HEAD", MOVIE, &[]), 200, Want::Nothing),
        ("head with range", req("HEAD", MOVIE, &["Range: bytes=0-99"]), 200, Want::Nothing),
        ("head if-none-match", req("HEAD", MOVIE, &[&inm]), 304, Want::Nothing),
        ("missing object", req("GET", "/movie/nope.mp4", &[]), 404, Want::Any),
        ("post", req("POST", MOVIE, &[]), 405, Want::Any),
        ("delete", req("DELETE", MOVIE, &[]), 405, Want::Any),
        ("options", req("OPTIONS", MOVIE, &[]), 405, Want::Any),
        ("unknown method", req("BREW", MOVIE, &[]), 501, Want::Any),
        ("encoded traversal", req("GET", "/movie/%2e%2e/%2e%2e/secret.txt", &[]), 400, Want::Any),
        ("segment", req("GET", SEG, &[]), 200, Want::Bytes(f.obj.seg.clone())),
        ("empty object", req("GET", "/empty.bin", &[]), 200, Want::Bytes(Vec::new())),
        ("empty object, suffix range", req("GET", "/empty.bin", &["Range: bytes=-5"]), 200, Want::Bytes(Vec::new())),
        ("empty object, range from 0", req("GET", "/empty.bin", &["Range: bytes=0-"]), 416, Want::Any),
        ("empty object, zero suffix", req("GET", "/empty.bin", &["Range: bytes=-0"]), 416, Want::Any),
        ("path range", req("GET", &path_range(0, 1023), &[]), 200, Want::Bytes(movie[..1024].to_vec())),
        ("path range, one byte", req("GET", &path_range(7, 7), &[]), 200, Want::Bytes(movie[7..8].to_vec())),
        ("path range clamped", req("GET", &path_range(2_999_000, 9_999_999), &[]), 200, Want::Bytes(movie[2_999_000..].to_vec())),
        ("path range past the end", req("GET", &path_range(3_000_000, 3_000_010), &[]), 416, Want::Any),
        ("path range backwards", req("GET", &path_range(10, 5), &[]), 400, Want::Any),
        ("path range ignores Range", req("GET", &path_range(100, 199), &["Range: bytes=0-0"]), 200, Want::Bytes(movie[100..200].to_vec())),
        ("path range with a query", req("GET", &format!("{}?x=1", path_range(0, 9)), &[]), 200, Want::Bytes(movie[..10].to_vec())),
        ("path range head", req("HEAD", &path_range(0, 99), &[]), 200, Want::Nothing),
    ];

    let reqs: Vec<Req> = cases.iter().map(|c| c.1.clone()).collect();
    let h2 = fetch(addr, &client(&f.id, H2_ONLY), Proto::H2, &reqs);
    let h1 = fetch(addr, &client(&f.id, H1_ONLY), Proto::H1, &reqs);
    for (i, (name, r, status, want)) in cases.iter().enumerate() {
        let extra: Vec<&str> = r.headers.iter().map(String::as_str).collect();
        let plain = f.server.request(&r.method, &r.target, &extra);
        for (label, resp) in [("plain", &plain), ("h2", &h2[i]), ("http/1.1", &h1[i])] {
            let what = format!("{name} ({label})");
            assert_eq!(resp.status, *status, "{what}: {}", resp.describe());
            match want {
                Want::Bytes(b) => assert_bytes_eq(&resp.body, b, &what),
                Want::Nothing => assert!(resp.body.is_empty(), "{what}: a body"),
                Want::Parts(ranges) => {
                    let parts = parse_multipart(resp.must("content-type"), &resp.body);
                    assert_eq!(parts.len(), ranges.len(), "{what}: parts");
                    for (p, (a, b)) in parts.iter().zip(ranges) {
                        assert_eq!(
                            (p.first, p.last, p.complete_len),
                            (*a as u64, *b as u64, len as u64),
                            "{what}"
                        );
                        assert_bytes_eq(&p.body, &movie[*a..=*b], &what);
                    }
                }
                Want::Any => {}
            }
            assert!(
                resp.header("transfer-encoding").is_none(),
                "{what}: Transfer-Encoding on a sized answer"
            );
            assert!(
                resp.must("server").starts_with("eddy"),
                "{what}: Server field {:?}",
                resp.header("server")
            );
            if matches!(*status, 200 | 206 | 304 | 412 | 416)
                && !name.contains("empty")
                && r.target.starts_with(MOVIE)
            {
                assert_object_headers(resp);
                assert_eq!(resp.must("etag"), etag, "{what}: ETag");
            }
            if r.method == "HEAD" && *status == 200 {
                let want_len = if r.target.contains("/range/") {
                    100
                } else {
                    len
                };
                assert_eq!(
                    resp.content_length(),
                    Some(want_len as u64),
                    "{what}: HEAD Content-Length"
                );
            }
            if name.starts_with("path range") {
                assert!(
                    resp.header("content-range").is_none() || *status == 416,
                    "{what}: Content-Range on the path form"
                );
            }
            if *status == 416 {
                let of = if r.target == "/empty.bin" { 0 } else { len };
                assert_eq!(
                    resp.must("content-range"),
                    format!("bytes */{of}"),
                    "{what}"
                );
            }
            if name.starts_with("empty object") && *status == 200 {
                assert_eq!(resp.content_length(), Some(0), "{what}");
                assert!(resp.header("content-range").is_none(), "{what}");
            }
            if *status == 405 {
                assert_eq!(resp.must("allow"), "GET, HEAD", "{what}");
            }
        }
        assert_eq!(plain.version, "HTTP/1.1");
        assert_same(&format!("{name} over h2"), &plain, &h2[i]);
        assert_same(&format!("{name} over http/1.1"), &plain, &h1[i]);
    }
    // The content types came through unchanged.
    let at = |name: &str| cases.iter().position(|c| c.0 == name).expect("case");
    assert_eq!(h2[at("whole")].must("content-type"), "video/mp4");
    assert_eq!(h2[at("segment")].must("content-type"), "video/iso.segment");
    assert_eq!(h1[at("segment")].must("content-type"), "video/iso.segment");
}

#[test]
fn cors_path_tokens_and_freshness_answer_alike_on_every_transport() {
    // Tokens required and CORS on, on both listeners: the planner decides the same for each.
    let store = Store::new();
    let obj = objects(&store);
    let id = Identity::new("eddy test A");
    let files = Files::new(&store, &id);
    let rest = format!(
        "[serve]\nrequire_tokens = true\n[cors]\nallow_origins = [\"https://player.test\"]\n{}",
        keys_toml()
    );
    let config = store.config("eddy.toml", &files.toml("require_tokens = true", &rest));
    let server = Server::start_tls(&store, &config, 1);
    let (_, base) = token_sign_both(&config, &["--prefix", "/movie/", "--ttl", "1h"]);
    let token = base.trim_end_matches("/movie/");
    let signed = format!("{base}v.mp4");
    let movie = &obj.movie;
    let etag = server.get(&signed, &[]).must("etag").to_owned();
    let inm = format!("If-None-Match: {etag}");
    const OK: &str = "Origin: https://player.test";
    const EVIL: &str = "Origin: https://evil.test";
    const ASK: &str = "Access-Control-Request-Method: GET";
    #[rustfmt::skip]
    let cases: Vec<(&str, Req, u16, Want)> = vec![
        ("whole", req("GET", &signed, &[OK]), 200, Want::Bytes(movie.clone())),
        ("range", req("GET", &signed, &[OK, "Range: bytes=100-199"]), 206, Want::Bytes(movie[100..200].to_vec())),
        ("multi range", req("GET", &signed, &[OK, "Range: bytes=0-9,20-29"]), 206, Want::Parts(vec![(0, 9), (20, 29)])),
        ("not modified", req("GET", &signed, &[OK, &inm]), 304, Want::Nothing),
        ("head", req("HEAD", &signed, &[OK]), 200, Want::Nothing),
        ("path range", req("GET", &format!("{signed}/range/0-1023"), &[OK]), 200, Want::Bytes(movie[..1024].to_vec())),
        ("other origin", req("GET", &signed, &[EVIL, "Range: bytes=0-9"]), 206, Want::Bytes(movie[..10].to_vec())),
        ("no origin", req("GET", &signed, &[]), 200, Want::Bytes(movie.clone())),
        ("preflight", req("OPTIONS", &signed, &[OK, ASK, "Access-Control-Request-Headers: range"]), 204, Want::Nothing),
        ("preflight, other origin", req("OPTIONS", &signed, &[EVIL, ASK]), 405, Want::Any),
        ("preflight, PUT", req("OPTIONS", &signed, &[OK, "Access-Control-Request-Method: PUT"]), 405, Want::Any),
        ("wrong prefix", req("GET", &format!("{token}/seg/1.m4s"), &[OK]), 403, Want::Any),
        ("no token", req("GET", MOVIE, &[OK]), 403, Want::Any),
        ("escape", req("GET", &format!("{token}/movie/%2e%2e/seg/1.m4s"), &[OK]), 400, Want::Any),
        ("encoded slash", req("GET", &format!("{token}/movie/..%2Fseg%2F1.m4s"), &[OK]), 400, Want::Any),
    ];
    let reqs: Vec<Req> = cases.iter().map(|c| c.1.clone()).collect();
    let addr = server.https_addr();
    let h2 = fetch(addr, &client(&id, H2_ONLY), Proto::H2, &reqs);
    let h1 = fetch(addr, &client(&id, H1_ONLY), Proto::H1, &reqs);
    for (i, (name, r, status, want)) in cases.iter().enumerate() {
        let extra: Vec<&str> = r.headers.iter().map(String::as_str).collect();
        let plain = server.request(&r.method, &r.target, &extra);
        for (label, resp) in [("plain", &plain), ("h2", &h2[i]), ("http/1.1", &h1[i])] {
            let what = format!("{name} ({label})");
            assert_eq!(resp.status, *status, "{what}: {}", resp.describe());
            match want {
                Want::Bytes(b) => assert_bytes_eq(&resp.body, b, &what),
                Want::Nothing => assert!(resp.body.is_empty(), "{what}: a body"),
                Want::Parts(ranges) => {
                    let parts = parse_multipart(resp.must("content-type"), &resp.body);
                    assert_eq!(parts.len(), ranges.len(), "{what}: parts");
                }
                Want::Any => {}
            }
            let allowed = r.headers.iter().any(|h| h == OK) && r.method != "OPTIONS";
            assert_eq!(
                resp.header("access-control-allow-origin"),
                (allowed || *status == 204).then_some("https://player.test"),
                "{what}"
            );
            if r.method != "OPTIONS" {
                assert_eq!(resp.header("vary"), Some("Origin"), "{what}");
            }
            if matches!(*status, 200 | 206 | 304) && r.method != "OPTIONS" {
                assert_eq!(
                    resp.header("cache-control"),
                    Some("public, max-age=31536000, immutable"),
                    "{what}"
                );
            }
            if *status == 204 {
                assert_eq!(resp.header("content-length"), None, "{what}");
            }
        }
        assert_same(&format!("{name} over h2"), &plain, &h2[i]);
        assert_same(&format!("{name} over http/1.1"), &plain, &h1[i]);
    }
}

#[test]
fn small_frame_bytes_still_deliver_exact_bytes() {
    // Body chunks of 16 KiB (the minimum): many chunks per response, same bytes.
    let f = fx("frame_bytes = 16384\n", "");
    let reqs = [
        req("GET", MOVIE, &[]),
        req("GET", MOVIE, &["Range: bytes=16383-16385,1000000-2000000"]),
        req("GET", &format!("{MOVIE}/range/16384-1048576"), &[]),
    ];
    for proto in [Proto::H2, Proto::H1] {
        let rs = fetch(
            f.server.https_addr(),
            &client(&f.id, proto.alpn()),
            proto,
            &reqs,
        );
        assert_bytes_eq(&rs[0].body, &f.obj.movie, "whole");
        let parts = parse_multipart(rs[1].must("content-type"), &rs[1].body);
        assert_eq!(parts.len(), 2);
        assert_bytes_eq(&parts[0].body, &f.obj.movie[16383..=16385], "part 1");
        assert_bytes_eq(
            &parts[1].body,
            &f.obj.movie[1_000_000..=2_000_000],
            "part 2",
        );
        assert_bytes_eq(&rs[2].body, &f.obj.movie[16384..=1_048_576], "path range");
    }
}

#[test]
fn cold_windows_are_read_off_the_event_loop_and_arrive_exact() {
    let store = Store::on_disk();
    let obj = objects(&store);
    store.evict();
    let f = fx_with_objects(store, obj, "frame_bytes = 65536\n", "");
    let reqs = [
        req("GET", MOVIE, &[]),
        req("GET", MOVIE, &["Range: bytes=2097151-2200000,2900000-"]),
    ];
    for proto in [Proto::H2, Proto::H1] {
        let rs = fetch(
            f.server.https_addr(),
            &client(&f.id, proto.alpn()),
            proto,
            &reqs,
        );
        assert_bytes_eq(&rs[0].body, &f.obj.movie, "whole cold movie");
        let parts = parse_multipart(rs[1].must("content-type"), &rs[1].body);
        assert_eq!(parts.len(), 2);
        assert_bytes_eq(
            &parts[0].body,
            &f.obj.movie[2_097_151..=2_200_000],
            "part 1",
        );
        assert_bytes_eq(&parts[1].body, &f.obj.movie[2_900_000..], "part 2");
    }
    let waits = must_sample(&scrape(&f.server), "eddy_disk_wait_windows_total");
    assert!(
        waits >= 1.0,
        "no window was read off the event loop ({waits})"
    );
}

#[test]
fn concurrent_h2_streams_on_one_connection_get_their_own_bytes() {
    let f = fx("", "");
    let cfg = client(&f.id, H2_ONLY);
    let addr = f.server.https_addr();
    let movie = &f.obj.movie;
    let got = runtime().block_on(async {
        let tls = connect_async(addr, &cfg).await;
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut tasks = Vec::new();
        for i in 0..20usize {
            let mut send = send.clone();
            let r = req(
                "GET",
                MOVIE,
                &[&format!(
                    "Range: bytes={}-{}",
                    i * 100_000,
                    i * 100_000 + 99_999
                )],
            );
            tasks.push(tokio::spawn(async move {
                let resp = send
                    .send_request(build_request(&r, Proto::H2))
                    .await
                    .expect("send");
                collect(resp, "concurrent").await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    });
    for (i, r) in got.iter().enumerate() {
        assert_status(r, 206);
        assert_bytes_eq(
            &r.body,
            &movie[i * 100_000..i * 100_000 + 100_000],
            "stream",
        );
    }
}

#[test]
fn curl_over_h2_and_http11() {
    let version = match Command::new("curl").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            eprintln!("skipped: curl not installed");
            return;
        }
    };
    let features = version
        .lines()
        .find(|l| l.starts_with("Features:"))
        .unwrap_or_default();
    if !features.split_whitespace().any(|w| w == "HTTP2") {
        eprintln!("skipped: this curl has no HTTP2 feature ({features})");
        return;
    }
    let f = fx("", "");
    let base = format!("https://127.0.0.1:{}", f.server.https_addr().port());
    let movie = &f.obj.movie;
    let out = f.store.path().join("curl.out");
    let hdrs = f.store.path().join("curl.hdrs");
    for (flag, want_version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let curl = |range: Option<&str>| -> Vec<u8> {
            let mut cmd = Command::new("curl");
            cmd.args(["-sS", "--fail", flag, "--cacert"])
                .arg(&f.files.cert)
                .args(["-w", "%{http_version}", "-D"])
                .arg(&hdrs)
                .arg("-o")
                .arg(&out);
            if let Some(r) = range {
                cmd.args(["-r", r]);
            }
            let child = cmd
                .arg(format!("{base}{MOVIE}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn curl");
            let o = wait_output(child, Duration::from_secs(60));
            assert!(
                o.status.success(),
                "curl {flag} {range:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&o.stdout),
                want_version,
                "curl {flag} negotiated another HTTP version"
            );
            std::fs::read(&out).expect("read curl output")
        };
        assert_bytes_eq(&curl(None), movie, &format!("curl {flag} whole"));
        assert_bytes_eq(
            &curl(Some("100-199")),
            &movie[100..200],
            &format!("curl {flag} range"),
        );
        let body = curl(Some("0-9,1000-1999,-100"));
        let head = std::fs::read_to_string(&hdrs).expect("read curl headers");
        let ctype = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| panic!("no Content-Type in {head}"));
        let parts = parse_multipart(&ctype, &body);
        let want = [(0, 9), (1000, 1999), (MOVIE_LEN - 100, MOVIE_LEN - 1)];
        assert_eq!(parts.len(), 3, "curl {flag} multi-range parts");
        for (p, (a, b)) in parts.iter().zip(want) {
            assert_eq!((p.first, p.last), (a as u64, b as u64));
            assert_bytes_eq(&p.body, &movie[a..=b], &format!("curl {flag} part"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Signed URLs
// ---------------------------------------------------------------------------------------------

#[test]
fn tls_requires_tokens_by_default_and_the_plain_listener_does_not() {
    let store = Store::new();
    let obj = objects(&store);
    let id = Identity::new("eddy test A");
    let files = Files::new(&store, &id);
    // No require_tokens anywhere: TLS defaults to true, plain to false.
    let config = store.config("eddy.toml", &files.toml("", &keys_toml()));
    let server = Server::start_tls(&store, &config, 1);
    let addr = server.https_addr();
    let q = token_sign(&config, &["--prefix", "/seg/", "--ttl", "1h"]);
    let other = token_sign(&config, &["--prefix", "/movie/other/", "--ttl", "1h"]);
    // Bound to the client's address: the TLS path checks the real peer (loopback).
    let here = token_sign(
        &config,
        &[
            "--prefix",
            "/seg/",
            "--ttl",
            "1h",
            "--client",
            "127.0.0.0/8",
        ],
    );
    let elsewhere = token_sign(
        &config,
        &[
            "--prefix",
            "/seg/",
            "--ttl",
            "1h",
            "--client",
            "203.0.113.0/24",
        ],
    );
    let signed = format!("{SEG}?{q}");
    for proto in [Proto::H2, Proto::H1] {
        let cfg = client(&id, proto.alpn());
        let rs = fetch(
            addr,
            &cfg,
            proto,
            &[
                req("GET", SEG, &[]),
                req("GET", &signed, &[]),
                req("GET", &signed, &["Range: bytes=10-19"]),
                req("HEAD", &signed, &[]),
                req("GET", &format!("{SEG}?{other}"), &[]),
                req("GET", "/seg/absent.m4s", &[]),
                req("GET", &format!("/seg/absent.m4s?{q}"), &[]),
                req("GET", &format!("{SEG}?{here}"), &[]),
                req("GET", &format!("{SEG}?{elsewhere}"), &[]),
            ],
        );
        let what = format!("{proto:?}");
        assert_status(&rs[0], 403);
        assert_status(&rs[1], 200);
        assert_bytes_eq(&rs[1].body, &obj.seg, &what);
        assert_status(&rs[2], 206);
        assert_bytes_eq(&rs[2].body, &obj.seg[10..20], &what);
        assert_status(&rs[3], 200);
        assert_eq!(rs[3].content_length(), Some(obj.seg.len() as u64), "{what}");
        assert_status(&rs[4], 403);
        // Refusals reveal nothing: an absent object looks like a present one without a token.
        assert_status(&rs[5], 403);
        assert_eq!(rs[5].body, rs[0].body, "{what}: refusal bodies differ");
        assert_status(&rs[6], 404);
        assert_status(&rs[7], 200);
        assert_status(&rs[8], 403);
    }
    // The plain listener of the same process serves without a token.
    let r = server.get(SEG, &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, &obj.seg, "plain without a token");
}

#[test]
fn custom_token_parameter_names_verify_and_the_default_names_are_refused() {
    let store = Store::new();
    let obj = objects(&store);
    let id = Identity::new("eddy test A");
    let files = Files::new(&store, &id);
    let custom = format!(
        "[tokens]\nexpiry_param = \"exp\"\ntoken_param = \"sig\"\n{}",
        keys_toml()
    );
    let config = store.config("eddy.toml", &files.toml("", &custom));
    let server = Server::start_tls(&store, &config, 1);
    let q = token_sign(&config, &["--prefix", "/seg/", "--ttl", "1h"]);
    let params: Vec<(&str, &str)> = q.split('&').filter_map(|kv| kv.split_once('=')).collect();
    let names: Vec<&str> = params.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, ["exp", "sig"], "token sign output {q}");
    let renamed = format!("e={}&t={}", params[0].1, params[1].1);
    // The same key signing with the default names, from a config without the custom names.
    let default_config = store.config("default-names.toml", &keys_toml());
    let dq = token_sign(&default_config, &["--prefix", "/seg/", "--ttl", "1h"]);
    assert!(dq.starts_with("e="), "{dq}");
    for proto in [Proto::H2, Proto::H1] {
        let rs = fetch(
            server.https_addr(),
            &client(&id, proto.alpn()),
            proto,
            &[
                req("GET", &format!("{SEG}?{q}"), &[]),
                req("GET", &format!("{SEG}?{renamed}"), &[]),
                req("GET", &format!("{SEG}?{dq}"), &[]),
            ],
        );
        assert_status(&rs[0], 200);
        assert_bytes_eq(&rs[0].body, &obj.seg, "custom names");
        assert_status(&rs[1], 403);
        assert_status(&rs[2], 403);
    }
}

#[test]
fn tls_without_keys_fails_start_naming_tls_require_tokens() {
    let store = Store::new();
    let id = Identity::new("eddy test A");
    let files = Files::new(&store, &id);
    objects(&store);
    let config = store.config("eddy.toml", &files.toml("", &disks_toml(&store)));
    let o = serve_expecting_exit(&store, &config);
    assert_eq!(
        o.status.code(),
        Some(64),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("tls.require_tokens"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"));
    let o = check_config(&config);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("tls.require_tokens"));
    // Turning it off explicitly starts without keys.
    let config = store.config(
        "off.toml",
        &files.toml("require_tokens = false\n", &disks_toml(&store)),
    );
    let server = Server::start_tls(&store, &config, 1);
    let r = fetch_one(
        server.https_addr(),
        &client(&id, H2_ONLY),
        Proto::H2,
        req("GET", "/absent", &[]),
    );
    assert_status(&r, 404);
}

// ---------------------------------------------------------------------------------------------
// Bad certificates at start, check-config, kTLS probe
// ---------------------------------------------------------------------------------------------

/// `eddy serve` with `config` that is expected to exit (not to start).
fn serve_expecting_exit(store: &Store, config: &Path) -> std::process::Output {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--config".into(),
        config.to_str().expect("utf-8").into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend(store.disk_args());
    run_eddy_within(&args, Duration::from_secs(20))
}

fn check_config(config: &Path) -> std::process::Output {
    run_eddy(&["check-config", "-c", config.to_str().expect("utf-8")])
}

#[test]
fn bad_certificates_fail_start_with_64_and_never_print_the_key() {
    let store = Store::new();
    // A usable store, so that only the certificate can fail start-up.
    objects(&store);
    let a = Identity::new("eddy test A");
    let b = Identity::new("eddy test B");
    let dir = store.path();
    let garbage_key = "-----BEGIN PRIVATE KEY-----\nSECRETMATERIALSECRETMATERIAL0123456789\n-----END PRIVATE KEY-----\n";
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let a_cert = write("a.crt", &a.cert_pem);
    let a_key = write("a.key", &a.key_pem);
    let b_key = write("b.key", &b.key_pem);
    let junk = write("junk.crt", "this is not a certificate\n");
    let bad_key = write("bad.key", garbage_key);
    let missing = dir.join("missing.crt");
    let cases: Vec<(&str, &Path, &Path, &[&str])> = vec![
        ("garbage certificate", &junk, &a_key, &["tls.cert"]),
        ("missing certificate", &missing, &a_key, &["tls.cert"]),
        ("garbage key", &a_cert, &bad_key, &["tls.key"]),
        (
            "key of another certificate",
            &a_cert,
            &b_key,
            &["tls.key", "tls.cert"],
        ),
        // cert and key swapped: the "certificate" file is the private key.
        ("swapped files", &a_key, &a_cert, &["tls.cert"]),
    ];
    for (name, cert, key, keys) in cases {
        let toml = format!(
            "[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{}\"\nkey = \"{}\"\nrequire_tokens = false\n{}",
            cert.display(),
            key.display(),
            disks_toml(&store)
        );
        let config = store.config("bad.toml", &toml);
        for (how, o) in [
            ("serve", serve_expecting_exit(&store, &config)),
            ("check-config", check_config(&config)),
        ] {
            let what = format!("{name} ({how})");
            let err = String::from_utf8_lossy(&o.stderr).into_owned();
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            assert_eq!(o.status.code(), Some(64), "{what}: stderr {err}");
            assert!(
                keys.iter().any(|k| err.contains(k)),
                "{what}: the message names none of {keys:?}: {err}"
            );
            assert!(!out.contains("listening"), "{what}: it listened");
            for id in [&a, &b] {
                assert_no_key_material(&err, id, &what);
                assert_no_key_material(&out, id, &what);
            }
            assert!(
                !err.contains("SECRETMATERIAL"),
                "{what}: key file content printed: {err}"
            );
        }
    }
}

/// Whether this machine's kernel attaches the `tls` upper-layer protocol to a TCP socket.
fn kernel_tls_probe() -> Result<(), nix::errno::Errno> {
    use nix::sys::socket::{setsockopt, sockopt::TcpUlp};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sock = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    setsockopt(&sock, TcpUlp::default(), b"tls")
}

#[test]
fn check_config_loads_the_certificate_and_reports_ktls() {
    let store = Store::new();
    let id = Identity::new("eddy test A");
    let files = Files::new(&store, &id);
    let disks = disks_toml(&store);
    let config = store.config("ok.toml", &files.toml("require_tokens = false\n", &disks));
    let o = check_config(&config);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "check-config: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("tls.cert") && out.contains("loaded"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("tls.ktls"))
        .unwrap_or_else(|| panic!("no tls.ktls line in {out}"));
    let mode = line.split_whitespace().nth(1).unwrap_or_default();
    let reason = line
        .split_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no (reason) in {line:?}"));
    assert!(!reason.trim().is_empty(), "empty reason: {line:?}");
    match kernel_tls_probe() {
        Err(nix::errno::Errno::ENOENT) => {
            eprintln!("kTLS branch: the kernel has no tls module (ENOENT): {line}");
            assert_eq!(mode, "userspace", "{line}");
            assert!(reason.contains("ENOENT"), "{line}");
        }
        Ok(()) => {
            eprintln!("kTLS branch: the kernel accepts TCP_ULP tls: {line}");
            assert!(["kernel", "userspace"].contains(&mode), "{line}");
            assert!(
                !reason.contains("ENOENT") && !reason.contains("ENOPROTOOPT"),
                "{line}"
            );
        }
        Err(e) => {
            eprintln!("kTLS branch: the kernel refuses TCP_ULP tls with {e}: {line}");
            assert_eq!(mode, "userspace", "{line}");
            assert!(!reason.contains("ENOENT"), "{line}");
        }
    }
    let off = store.config(
        "off.toml",
        &files.toml("require_tokens = false\nktls = \"off\"\n", &disks),
    );
    let o = check_config(&off);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = out
        .lines()
        .find(|l| l.starts_with("tls.ktls"))
        .unwrap_or_default();
    assert_eq!(line.split_whitespace().nth(1), Some("off"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Certificate reload
// ---------------------------------------------------------------------------------------------

/// Polls new connections until they get `want`'s certificate (10 s at most).
#[track_caller]
fn wait_for_cert(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>, want: &Identity, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last = match tls_connect(addr, cfg) {
            Ok(s) if leaf(&s) == want.der => return,
            Ok(_) => "the old certificate".to_string(),
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: new connections still do not get the new certificate after 10 s (last: {last})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new connection gets `want`'s certificate and is served.
#[track_caller]
fn assert_serves_with(
    addr: SocketAddr,
    cfg: &Arc<rustls::ClientConfig>,
    want: &Identity,
    seg: &[u8],
    what: &str,
) {
    let mut s = tls_connect(addr, cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        leaf(&s) == want.der,
        "{what}: a new connection got another certificate"
    );
    let r = h1_get(&mut s, SEG, &[]);
    assert_status(&r, 200);
    assert_bytes_eq(&r.body, seg, what);
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_only() {
    // Checking the files hourly: only the signal can explain a reload here.
    let f = fx("reload_check = \"1h\"\n", "");
    let b = Identity::new("eddy test B");
    let addr = f.server.https_addr();
    let cfg_h1 = client_with(&[&f.id, &b], H1_ONLY, BOTH_VERSIONS);
    let cfg_h2 = client_with(&[&f.id, &b], H2_ONLY, BOTH_VERSIONS);
    // Existing connections, one of each protocol.
    let mut old_h1 = tls_connect(addr, &cfg_h1).unwrap_or_else(|e| panic!("{e}"));
    assert!(leaf(&old_h1) == f.id.der);
    assert_status(&h1_get(&mut old_h1, SEG, &[]), 200);
    let (mut old_h2, _) = H2c::open(addr, &cfg_h2, &[]);
    assert_eq!(
        old_h2.get(1, SEG).expect("h2 before"),
        (200, f.obj.seg.len())
    );

    f.files.install(&b);
    f.server.signal("HUP");
    wait_for_cert(addr, &cfg_h1, &b, "after SIGHUP");
    assert_serves_with(addr, &cfg_h1, &b, &f.obj.seg, "new connection after SIGHUP");
    assert!(
        f.server.stderr().matches("reload failed").count() == 0,
        "a good pair was refused: {}",
        f.server.stderr()
    );
    // The connections from before still work, with the certificate they started with.
    assert!(leaf(&old_h1) == f.id.der);
    let r = h1_get(&mut old_h1, SEG, &["Range: bytes=0-99"]);
    assert_status(&r, 206);
    assert_bytes_eq(&r.body, &f.obj.seg[..100], "old http/1.1 connection");
    assert_eq!(
        old_h2.get(3, SEG).expect("h2 after"),
        (200, f.obj.seg.len())
    );
    old_h2.ping().expect("the old h2 connection is alive");
}

#[test]
fn the_certificate_expiry_and_its_reloads_are_in_the_metrics() {
    let f = fx("reload_check = \"1h\"\n", "");
    let text = scrape(&f.server);
    // rcgen's default notAfter: 4096-01-01T00:00:00Z.
    assert_eq!(
        must_sample(&text, "eddy_tls_cert_not_after_seconds"),
        67_090_118_400.0
    );
    // The kTLS reason is a fixed word, not a sentence.
    let ktls = text
        .lines()
        .find(|l| l.starts_with("eddy_ktls_info{"))
        .expect("an eddy_ktls_info series");
    let reason = ktls
        .split("reason=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a reason label");
    assert!(
        !reason.is_empty() && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{ktls}"
    );
    let b = Identity::expiring("eddy test B", (2031, 5, 6));
    let cfg = client_with(&[&f.id, &b], H1_ONLY, BOTH_VERSIONS);
    f.files.install(&b);
    f.server.signal("HUP");
    wait_for_cert(f.server.https_addr(), &cfg, &b, "after SIGHUP");
    let text = scrape(&f.server);
    assert_eq!(
        must_sample(&text, "eddy_tls_cert_not_after_seconds"),
        1_935_792_000.0,
        "2031-05-06T00:00:00Z"
    );
    assert_eq!(
        must_sample(&text, "eddy_tls_cert_reloads_total{result=\"ok\"}"),
        1.0
    );
    put(&f.files.cert, "garbage\n");
    f.server.signal("HUP");
    f.server
        .wait_stderr("reload failed", 1, Duration::from_secs(10), "garbage");
    let text = scrape(&f.server);
    assert_eq!(
        must_sample(&text, "eddy_tls_cert_reloads_total{result=\"failed\"}"),
        1.0
    );
    assert_eq!(
        must_sample(&text, "eddy_tls_cert_not_after_seconds"),
        1_935_792_000.0,
        "the certificate in use did not change"
    );
}

#[test]
fn a_bad_new_pair_is_refused_and_a_later_good_one_loads() {
    let f = fx("reload_check = \"1h\"\n", "");
    let b = Identity::new("eddy test B");
    let c = Identity::new("eddy test C");
    let addr = f.server.https_addr();
    let cfg = client_with(&[&f.id, &b, &c], H1_ONLY, BOTH_VERSIONS);
    let bad_key = "-----BEGIN PRIVATE KEY-----\nSECRETMATERIALSECRETMATERIAL0123456789\n-----END PRIVATE KEY-----\n";
    let steps: [(&str, &str, &str); 4] = [
        (
            "garbage certificate",
            "not a certificate at all\n",
            &f.id.key_pem,
        ),
        ("key of another certificate", &b.cert_pem, &f.id.key_pem),
        ("garbage key", &f.id.cert_pem, bad_key),
        ("empty files", "", ""),
    ];
    for (i, (name, cert, key)) in steps.iter().enumerate() {
        put(&f.files.cert, cert);
        put(&f.files.key, key);
        f.server.signal("HUP");
        f.server.wait_stderr(
            "reload failed",
            i + 1,
            Duration::from_secs(10),
            &format!("SIGHUP with {name}"),
        );
        assert_serves_with(addr, &cfg, &f.id, &f.obj.seg, &format!("after {name}"));
    }
    let err = f.server.stderr();
    for id in [&f.id, &b] {
        assert_no_key_material(&err, id, "reload warnings");
    }
    assert!(
        !err.contains("SECRETMATERIAL"),
        "key file content in the log: {err}"
    );
    // A good pair again: loaded.
    f.files.install(&c);
    f.server.signal("HUP");
    wait_for_cert(addr, &cfg, &c, "good pair after bad ones");
    assert_serves_with(addr, &cfg, &c, &f.obj.seg, "after the good pair");
}

#[test]
fn changed_files_are_picked_up_without_a_signal() {
    let f = fx("reload_check = \"200ms\"\n", "");
    let b = Identity::new("eddy test B");
    let c = Identity::new("eddy test C");
    let addr = f.server.https_addr();
    let cfg = client_with(&[&f.id, &b, &c], H1_ONLY, BOTH_VERSIONS);
    assert_serves_with(addr, &cfg, &f.id, &f.obj.seg, "at start");
    f.files.install(&b);
    wait_for_cert(addr, &cfg, &b, "after the files changed");
    // A broken certificate file is noticed, logged, and not used.
    let failed = f.server.stderr().matches("reload failed").count();
    put(&f.files.cert, "garbage\n");
    f.server.wait_stderr(
        "reload failed",
        failed + 1,
        Duration::from_secs(10),
        "garbage certificate file",
    );
    assert_serves_with(addr, &cfg, &b, &f.obj.seg, "after a garbage file");
    // A good pair later: loaded.
    f.files.install(&c);
    wait_for_cert(addr, &cfg, &c, "after a good pair replaced the garbage");
}

#[test]
fn sighup_without_tls_is_ignored() {
    let store = Store::new();
    store.write("a.bin", b"still here");
    store.import();
    let mut server = store.serve();
    server.signal("HUP");
    server.wait_stderr("SIGHUP", 1, Duration::from_secs(10), "SIGHUP logged");
    assert!(
        server.wait_exit(Duration::from_millis(200)).is_none(),
        "SIGHUP stopped eddy"
    );
    assert_eq!(server.get("/a.bin", &[]).body, b"still here");
}

// ---------------------------------------------------------------------------------------------
// Handshake and idle deadlines
// ---------------------------------------------------------------------------------------------

#[test]
fn a_silent_or_stalled_handshake_is_closed_by_header_read_timeout() {
    let f = fx("", "[limits]\nheader_read_timeout = \"500ms\"\n");
    let addr = f.server.https_addr();
    // Nothing at all; and the first bytes of a ClientHello record, then nothing.
    for (what, bytes) in [
        ("silent", &b""[..]),
        ("stalled ClientHello", &[0x16, 0x03, 0x01, 0x02][..]),
    ] {
        let t = Instant::now();
        let mut c = Conn::connect(addr);
        c.send(bytes);
        let (closed, got) = c.wait_closed(Duration::from_secs(10));
        let waited = t.elapsed();
        assert!(
            closed,
            "{what}: the server did not close the connection within 10 s"
        );
        assert!(
            waited >= Duration::from_millis(400),
            "{what}: closed after {waited:?}, before the 500 ms deadline"
        );
        // Only a TLS alert, if anything.
        assert!(
            got.is_empty() || got[0] == 0x15,
            "{what}: unexpected bytes {got:?}"
        );
    }
    // Plain HTTP sent to the TLS port: closed, and never an HTTP answer.
    let mut c = Conn::connect(addr);
    c.send(&request_bytes("GET", SEG, &[], false));
    let (closed, got) = c.wait_closed(Duration::from_secs(10));
    assert!(closed, "plain HTTP to the TLS port: not closed within 10 s");
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP to the TLS port got an HTTP answer: {:?}",
        String::from_utf8_lossy(&got)
    );
    // A real client still gets through.
    let r = fetch_one(
        addr,
        &client(&f.id, H2_ONLY),
        Proto::H2,
        req("GET", SEG, &[]),
    );
    assert_status(&r, 200);
}

#[test]
fn an_idle_tls_connection_is_closed_by_idle_timeout() {
    let f = fx("", "[limits]\nidle_timeout = \"1s\"\n");
    let addr = f.server.https_addr();
    // HTTP/1.1: one request, then nothing either way.
    let mut h1 = tls_connect(addr, &client(&f.id, H1_ONLY)).unwrap_or_else(|e| panic!("{e}"));
    assert_status(&h1_get(&mut h1, SEG, &[]), 200);
    let t = Instant::now();
    // HTTP/2: one request, then nothing either way.
    let (mut h2, _) = H2c::open(addr, &client(&f.id, H2_ONLY), &[]);
    h2.get(1, SEG).expect("h2 request");
    let t2 = Instant::now();
    assert!(
        tls_wait_closed(&mut h1, Duration::from_secs(10)),
        "idle http/1.1 over TLS not closed within 10 s"
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "http/1.1 closed after {waited:?}, before idle_timeout"
    );
    let closed = loop {
        match h2.next(Duration::from_secs(10).saturating_sub(t2.elapsed())) {
            Got::Frame(fr) if fr.ty == GOAWAY || fr.ty == SETTINGS || fr.ty == WINDOW_UPDATE => {}
            Got::Frame(fr) => panic!("unexpected {fr:?} on an idle h2 connection"),
            Got::Closed(_) => break true,
            Got::Timeout => break false,
        }
    };
    assert!(closed, "idle h2 connection not closed within 10 s");
    let waited = t2.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "h2 closed after {waited:?}, before idle_timeout"
    );
}

/// The client's HTTP/2 preface and an empty SETTINGS frame: what a dribbler sends a byte at a time.
fn h2_hello() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(frame(SETTINGS, 0, 0, &[]));
    v
}

/// Sends `bytes` one byte at a time, `every` apart, on each connection in turn, until the server
/// has closed every one of them or `within` has passed (after the last byte it only waits).
/// Returns which were closed.
fn dribble(conns: &mut [TlsStream], bytes: &[u8], every: Duration, within: Duration) -> Vec<bool> {
    let mut closed = vec![false; conns.len()];
    let t = Instant::now();
    let mut next = 0;
    while t.elapsed() < within && closed.iter().any(|c| !c) {
        for (s, closed) in conns
            .iter_mut()
            .zip(closed.iter_mut())
            .filter(|(_, c)| !**c)
        {
            if let Some(b) = bytes.get(next) {
                if s.write_all(&[*b]).and_then(|()| s.flush()).is_err() {
                    *closed = true;
                    continue;
                }
            }
            *closed = tls_wait_closed(s, Duration::from_millis(1));
        }
        next += 1;
        std::thread::sleep(every);
    }
    closed
}

#[test]
fn an_h2_preface_dribbled_a_byte_at_a_time_is_cut_by_header_read_timeout() {
    let f = fx(
        "",
        "[limits]\nheader_read_timeout = \"1s\"\nidle_timeout = \"30s\"\n",
    );
    let cfg = client(&f.id, H2_ONLY);
    let mut s = tls_connect(f.server.https_addr(), &cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.conn.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2");
    // One byte every 100 ms: each resets the idle deadline, but the preface never ends in time.
    let closed = dribble(
        std::slice::from_mut(&mut s),
        &h2_hello(),
        Duration::from_millis(100),
        Duration::from_secs(10),
    );
    assert_eq!(
        closed,
        [true],
        "an h2 preface dribbled for 10 s was not cut (header_read_timeout = 1s)"
    );
    let r = fetch_one(f.server.https_addr(), &cfg, Proto::H2, req("GET", SEG, &[]));
    assert_status(&r, 200);
}

#[test]
fn a_later_h2_request_head_dribbled_is_cut_but_an_idle_h2_connection_is_not() {
    let f = fx(
        "",
        "[limits]\nheader_read_timeout = \"1s\"\nidle_timeout = \"30s\"\n",
    );
    let cfg = client(&f.id, H2_ONLY);
    let (mut h, _) = H2c::open(f.server.https_addr(), &cfg, &[]);
    assert_eq!(h.get(1, SEG).map(|(st, _)| st), Ok(200), "first request");
    // Between requests only the idle deadline applies: past the header deadline, still served.
    std::thread::sleep(Duration::from_secs(2));
    h.ping()
        .expect("an idle h2 connection is kept past header_read_timeout");
    assert_eq!(h.get(3, SEG).map(|(st, _)| st), Ok(200), "second request");
    // A HEADERS frame dribbled a byte every 100 ms.
    let headers = frame(HEADERS, END_STREAM | END_HEADERS, 5, &get_block(SEG, &[]));
    let closed = dribble(
        std::slice::from_mut(&mut h.s),
        &headers,
        Duration::from_millis(100),
        Duration::from_secs(10),
    );
    assert_eq!(
        closed,
        [true],
        "a HEADERS frame dribbled for 10 s was not cut (header_read_timeout = 1s)"
    );
}

#[test]
fn h2_dribblers_holding_every_slot_are_cut_and_a_good_client_is_served() {
    let f = fx(
        "",
        "[limits]\nmax_connections = 4\nheader_read_timeout = \"2s\"\nidle_timeout = \"30s\"\n",
    );
    let cfg = client(&f.id, H2_ONLY);
    let mut dribblers: Vec<TlsStream> = (0..4)
        .map(|_| tls_connect(f.server.https_addr(), &cfg).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let hello = h2_hello();
    let held = std::thread::spawn(move || {
        dribble(
            &mut dribblers,
            &hello,
            Duration::from_millis(100),
            Duration::from_secs(15),
        )
    });
    // A plain client, retried (the slots free when the dribblers are cut, not before).
    let deadline = Instant::now() + Duration::from_secs(15);
    let served = loop {
        let mut c = f.server.connect();
        let _ = c.try_send(&request_bytes("GET", SEG, &[], true));
        if let Ok(r) = c.try_read_response(false) {
            if r.status == 200 {
                assert_bytes_eq(&r.body, &f.obj.seg, "good client");
                break true;
            }
            assert_status(&r, 503);
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let closed = held.join().expect("dribbler thread");
    assert_eq!(closed, [true; 4], "every dribbler was cut");
    assert!(
        served,
        "no good client served while h2 dribblers held every slot"
    );
}

/// A fixture with a 32 MiB object, more than loopback's socket buffers hold, and `send_timeout`
/// of 1 s (idle 30 s, so that only the send deadline can cut a stalled reader within 10 s).
fn stalled_reader_fx() -> (Fx, usize) {
    let store = Store::new();
    let obj = objects(&store);
    store.write("big.bin", &gen_bytes(73, 32 << 20));
    store.import();
    let f = fx_with_objects(
        store,
        obj,
        "",
        "[limits]\nsend_timeout = \"1s\"\nidle_timeout = \"30s\"\n",
    );
    (f, 32 << 20)
}

/// Waits `stall` without reading, then reads what comes for at most 10 s: the bytes read and
/// whether the server ended the connection (EOF or reset).
fn stall_then_drain<R: Read>(s: &mut R, sock: &TcpStream, stall: Duration) -> (usize, bool) {
    // This sleep is the stall under test, not a readiness wait.
    std::thread::sleep(stall);
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut got = 0;
    let mut tmp = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => return (got, true),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return (got, false)
            }
            Err(_) => return (got, true),
        }
    }
}

#[test]
fn a_stalled_http11_reader_over_tls_is_cut_by_send_timeout() {
    let (f, len) = stalled_reader_fx();
    let mut s = tls_connect(f.server.https_addr(), &client(&f.id, H1_ONLY))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(&request_bytes("GET", "/big.bin", &[], false))
        .and_then(|()| s.flush())
        .expect("send");
    let sock = s.sock.try_clone().expect("clone");
    let (got, ended) = stall_then_drain(&mut s, &sock, Duration::from_secs(4));
    assert!(
        ended,
        "a stalled TLS reader was still connected 10 s after reading again"
    );
    assert!(
        got < len,
        "all {got} bytes arrived although the reader stalled past send_timeout"
    );
}

#[test]
fn a_stalled_h2_reader_is_cut_by_send_timeout() {
    let (f, len) = stalled_reader_fx();
    // A window as large as HTTP/2 allows, for the stream and the connection: only the socket
    // can hold the response back.
    const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
    let (mut h, _) = H2c::open(
        f.server.https_addr(),
        &client(&f.id, H2_ONLY),
        &[(SETTINGS_INITIAL_WINDOW_SIZE, 0x7fff_ffff)],
    );
    h.send(&frame(
        WINDOW_UPDATE,
        0,
        0,
        &(0x7fff_ffffu32 - 65_535).to_be_bytes(),
    ))
    .expect("connection window");
    h.request(1, "/big.bin", &[]).expect("request");
    let sock = h.s.sock.try_clone().expect("clone");
    let (got, ended) = stall_then_drain(&mut h.s, &sock, Duration::from_secs(4));
    assert!(
        ended,
        "a stalled h2 reader was still connected 10 s after reading again"
    );
    assert!(
        got < len,
        "all {got} bytes arrived although the reader stalled past send_timeout"
    );
}

#[test]
fn an_h2_stream_stalled_by_its_window_holds_neither_the_other_streams_nor_the_connection() {
    let (f, _) = stalled_reader_fx();
    // The client reads the socket and gives back connection credit, but never opens stream 1's
    // window: its response stops after the initial 64 KiB while the socket stays free.
    let (mut h, _) = H2c::open(f.server.https_addr(), &client(&f.id, H2_ONLY), &[]);
    h.request(1, "/big.bin", &[]).expect("request");
    assert_eq!(h.response_head(1).map(|(st, _)| st), Ok(200));
    assert_eq!(
        h.get(3, SEG),
        Ok((200, f.obj.seg.len())),
        "a stream after the stalled one"
    );
    // Past send_timeout (1 s): the connection is not cut, other streams are still served.
    std::thread::sleep(Duration::from_secs(3));
    h.ping().expect("the connection is alive");
    assert_eq!(
        h.get(5, SEG),
        Ok((200, f.obj.seg.len())),
        "a stream 3 s later"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 settings and limits
// ---------------------------------------------------------------------------------------------

#[test]
fn h2_settings_carry_the_default_and_configured_limits() {
    let f = fx("", "");
    let (mut h, params) = H2c::open(f.server.https_addr(), &client(&f.id, H2_ONLY), &[]);
    assert_eq!(
        setting(&params, SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(100),
        "{params:?}"
    );
    assert_eq!(
        setting(&params, SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(32768),
        "{params:?}"
    );
    assert_eq!(h.get(1, SEG).expect("GET"), (200, f.obj.seg.len()));

    let g = fx(
        "",
        "[http2]\nmax_concurrent_streams = 37\nmax_header_list_bytes = 4096\n",
    );
    let (mut h, params) = H2c::open(g.server.https_addr(), &client(&g.id, H2_ONLY), &[]);
    assert_eq!(
        setting(&params, SETTINGS_MAX_CONCURRENT_STREAMS),
        Some(37),
        "{params:?}"
    );
    assert_eq!(
        setting(&params, SETTINGS_MAX_HEADER_LIST_SIZE),
        Some(4096),
        "{params:?}"
    );
    assert_eq!(h.get(1, SEG).expect("GET"), (200, g.obj.seg.len()));
}

#[test]
fn h2_stream_and_header_list_limits_are_enforced() {
    let f = fx(
        "",
        "[http2]\nmax_concurrent_streams = 4\nmax_header_list_bytes = 1024\n",
    );
    let cfg = client(&f.id, H2_ONLY);
    // Four movie responses stall on flow control (64 KiB window, never extended); a fifth
    // concurrent stream is refused.
    let (mut h, _) = H2c::open(f.server.https_addr(), &cfg, &[(SETTINGS_ENABLE_PUSH, 0)]);
    h.credit = false;
    for i in 0..4 {
        h.request(1 + 2 * i, MOVIE, &[]).expect("request");
    }
    // Their heads, in whatever order they come.
    let mut heads = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while heads.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "only {heads:?} of the first four streams answered within 10 s"
        );
        match h.next(Duration::from_secs(1)) {
            Got::Frame(fr) if fr.ty == HEADERS => {
                assert_eq!(status_of(&fr.payload), 200, "stream {}", fr.stream);
                heads.insert(fr.stream);
            }
            Got::Frame(fr) if fr.ty == GOAWAY || fr.ty == RST_STREAM => {
                panic!("{}", fr.describe())
            }
            Got::Frame(_) | Got::Timeout => {}
            Got::Closed(why) => panic!("connection closed: {why}"),
        }
    }
    h.request(9, MOVIE, &[]).expect("fifth request");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        assert!(
            Instant::now() < deadline,
            "the fifth stream was neither refused nor answered in 10 s"
        );
        match h.next(Duration::from_secs(1)) {
            Got::Frame(fr) if fr.stream == 9 && fr.ty == RST_STREAM => break fr.u32_at(0),
            Got::Frame(fr) if fr.stream == 9 => {
                panic!("a fifth concurrent stream was served: {fr:?}")
            }
            Got::Frame(fr) if fr.ty == GOAWAY => panic!("{}", fr.describe()),
            Got::Frame(_) | Got::Timeout => {}
            Got::Closed(why) => panic!("connection closed: {why}"),
        }
    };
    assert_eq!(refused, REFUSED_STREAM, "error code of the refusal");

    // A header list over 1024 bytes is not served; the connection goes on.
    let (mut h, _) = H2c::open(f.server.https_addr(), &cfg, &[]);
    let big = "x".repeat(2000);
    h.request(1, SEG, &[("x-big", &big)])
        .expect("send big headers");
    match h.response_head(1) {
        Ok((status, _)) => assert_eq!(status, 431, "a 2000-byte header list (limit 1024)"),
        Err(e) => eprintln!("oversized header list refused without an answer: {e}"),
    }
    assert_eq!(
        h.get(3, SEG).expect("a normal request after the big one"),
        (200, f.obj.seg.len())
    );
}

/// Sends up to `total` HEADERS+RST_STREAM(CANCEL) pairs for `path`, `batch` pairs per write,
/// looking for a GOAWAY or a close after each write without waiting. Every 200 pairs it waits
/// (10 s at most) for the ACK of a PING sent behind them, so that the count of pairs the server
/// has seen does not run far ahead of what it has processed on a loaded machine. Returns how many
/// pairs were sent and what stopped it.
fn rapid_reset(h: &mut H2c, path: &str, total: u32, batch: u32) -> (u32, Option<String>) {
    let block = get_block(path, &[]);
    let mut sent = 0;
    let mut synced = 0;
    while sent < total {
        let mut bytes = Vec::new();
        for j in 0..batch {
            let id = 1 + 2 * (sent + j);
            bytes.extend(frame(HEADERS, END_STREAM | END_HEADERS, id, &block));
            bytes.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
        }
        let sync = sent + batch - synced >= 200;
        if sync {
            bytes.extend(frame(PING, 0, 0, b"rr-sync!"));
        }
        if let Err(e) = h.send(&bytes) {
            return (sent, Some(format!("write failed: {e}")));
        }
        sent += batch;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let wait = if sync {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::from_millis(1)
            };
            match h.next(wait) {
                Got::Frame(f) if f.ty == GOAWAY => return (sent, Some(f.describe())),
                Got::Frame(f) if sync && f.ty == PING && f.flags & ACK != 0 => {
                    synced = sent;
                    break;
                }
                Got::Frame(_) => {}
                Got::Closed(why) => return (sent, Some(format!("closed: {why}"))),
                Got::Timeout if sync && Instant::now() < deadline => {}
                Got::Timeout if sync => panic!("no PING ACK within 10 s after {sent} pairs"),
                Got::Timeout => break,
            }
        }
    }
    (sent, None)
}

#[test]
fn rapid_reset_flood_is_cut_and_other_connections_keep_being_served() {
    let f = fx("", "");
    let addr = f.server.https_addr();
    let cfg = client(&f.id, H2_ONLY);
    // A well-behaved connection opened before the flood.
    let (mut good, _) = H2c::open(addr, &cfg, &[]);
    assert_eq!(good.get(1, SEG).expect("before"), (200, f.obj.seg.len()));

    let total = 10_000;
    let (mut bad, _) = H2c::open(addr, &cfg, &[]);
    bad.credit = false;
    let t = Instant::now();
    let (sent, verdict) = rapid_reset(&mut bad, MOVIE, total, 20);
    eprintln!(
        "rapid reset: stopped after {sent} of {total} pairs in {:?}: {verdict:?}",
        t.elapsed()
    );
    let verdict = verdict.unwrap_or_else(|| {
        panic!("all {total} HEADERS+RST_STREAM pairs were accepted: no GOAWAY, no close")
    });
    assert!(
        sent <= total / 10,
        "the flood was stopped only after {sent} of {total} pairs ({verdict})"
    );
    // A GOAWAY is followed by the end of the connection.
    if verdict.starts_with("GOAWAY") {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut closed = false;
        while Instant::now() < deadline && !closed {
            match bad.next(Duration::from_millis(200)) {
                Got::Closed(_) => closed = true,
                Got::Frame(_) | Got::Timeout => {
                    // Keep "sending" so a half-open connection shows.
                    if bad.send(&frame(PING, 0, 0, b"12345678")).is_err() {
                        closed = true;
                    }
                }
            }
        }
        assert!(closed, "the connection stayed open 10 s after its GOAWAY");
    }
    // The connection from before, and new ones, are served.
    assert_eq!(
        good.get(3, SEG)
            .expect("the other connection after the flood"),
        (200, f.obj.seg.len())
    );
    good.ping().expect("the other connection is alive");
    let r = fetch_one(addr, &cfg, Proto::H2, req("GET", MOVIE, &[]));
    assert_bytes_eq(&r.body, &f.obj.movie, "new h2 connection after the flood");
    let r = f.server.get(SEG, &[]);
    assert_bytes_eq(&r.body, &f.obj.seg, "plain listener after the flood");
}

#[test]
fn three_hundred_sequential_h2_requests_are_never_cut_off() {
    let f = fx("", "");
    let (mut h, _) = H2c::open(f.server.https_addr(), &client(&f.id, H2_ONLY), &[]);
    for i in 0..300u32 {
        let got = h
            .get(1 + 2 * i, SEG)
            .unwrap_or_else(|e| panic!("request {i} of 300 on one h2 connection: {e}"));
        assert_eq!(got, (200, f.obj.seg.len()), "request {i}");
    }
    h.ping()
        .expect("the connection is alive after 300 requests");
}

#[test]
fn a_seeking_player_that_completes_more_than_it_abandons_is_not_cut() {
    // 300 completed responses and 150 abandoned after their head (more than max_client_resets = 100,
    // fewer than completed), interleaved: never closed.
    let f = fx("", "");
    let (mut h, _) = H2c::open(f.server.https_addr(), &client(&f.id, H2_ONLY), &[]);
    let mut id = 1;
    for cycle in 0..150 {
        for _ in 0..2 {
            let got = h
                .get(id, SEG)
                .unwrap_or_else(|e| panic!("cycle {cycle}: completed request: {e}"));
            assert_eq!(got, (200, f.obj.seg.len()));
            id += 2;
        }
        h.request(id, MOVIE, &[])
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        h.response_head(id)
            .unwrap_or_else(|e| panic!("cycle {cycle}: abandoned request: {e}"));
        h.cancel(id)
            .unwrap_or_else(|e| panic!("cycle {cycle}: RST_STREAM: {e}"));
        id += 2;
    }
    h.ping().expect("the connection is alive");
    assert_eq!(h.get(id, SEG).expect("one more"), (200, f.obj.seg.len()));
}

#[test]
fn abandoning_started_responses_is_cut_after_max_client_resets() {
    let f = fx("", "[http2]\nmax_client_resets = 20\n");
    let (mut h, _) = H2c::open(f.server.https_addr(), &client(&f.id, H2_ONLY), &[]);
    let mut cut = None;
    for i in 0..200u32 {
        let id = 1 + 2 * i;
        let step = h
            .request(id, MOVIE, &[])
            .map_err(|e| e.to_string())
            .and_then(|()| h.response_head(id))
            .and_then(|_| h.cancel(id).map_err(|e| e.to_string()));
        if let Err(e) = step {
            cut = Some((i, e));
            break;
        }
    }
    let (at, why) =
        cut.expect("200 started-then-abandoned responses and the connection was never closed");
    eprintln!("cut at request {at}: {why}");
    assert!(
        at > 20,
        "cut after only {at} abandoned responses (max_client_resets = 20)"
    );
    assert!(
        at <= 60,
        "cut only at request {at} (max_client_resets = 20)"
    );
    // Others are still served.
    let r = fetch_one(
        f.server.https_addr(),
        &client(&f.id, H2_ONLY),
        Proto::H2,
        req("GET", SEG, &[]),
    );
    assert_status(&r, 200);
}

#[test]
fn each_tls_listener_prints_its_line_after_the_plain_ones_and_serves() {
    let store = Store::new();
    let obj = objects(&store);
    let id = Identity::new("eddy test A");
    let files = Files::new(&store, &id);
    let toml = files.toml("require_tokens = false\n", "").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
    );
    let config = store.config("eddy.toml", &toml);
    let server = Server::start_tls(&store, &config, 2);
    let listening: Vec<&String> = server
        .startup_lines
        .iter()
        .filter(|l| l.starts_with("eddy: listening on "))
        .collect();
    assert_eq!(listening.len(), 3, "{:?}", server.startup_lines);
    assert!(
        listening[0].starts_with("eddy: listening on http://"),
        "{listening:?}"
    );
    assert!(
        listening[1].starts_with("eddy: listening on https://127.0.0.1:"),
        "{listening:?}"
    );
    assert!(
        listening[2].starts_with("eddy: listening on https://127.0.0.2:"),
        "{listening:?}"
    );
    assert_eq!(server.https_addrs.len(), 2);
    for addr in &server.https_addrs {
        assert_ne!(*addr, server.addr);
        for proto in [Proto::H2, Proto::H1] {
            let r = fetch_one(
                *addr,
                &client(&id, proto.alpn()),
                proto,
                req("GET", SEG, &[]),
            );
            assert_status(&r, 200);
            assert_bytes_eq(&r.body, &obj.seg, &format!("{addr} {proto:?}"));
        }
    }
}

#[test]
fn pending_resets_over_max_pending_resets_get_goaway() {
    let f = fx("", "[http2]\nmax_pending_resets = 5\n");
    let cfg = client(&f.id, H2_ONLY);
    // Five streams reset before eddy started on them (one write): within the limit.
    let (mut h, _) = H2c::open(f.server.https_addr(), &cfg, &[]);
    h.credit = false;
    let (sent, verdict) = rapid_reset(&mut h, MOVIE, 5, 5);
    assert_eq!(
        (sent, verdict.as_deref()),
        (5, None),
        "five pending resets (limit 5)"
    );
    h.credit = true;
    h.ping().expect("alive after five resets");
    assert_eq!(
        h.get(11, SEG).expect("served after five resets"),
        (200, f.obj.seg.len())
    );
    // Ten in one write: over it, GOAWAY with ENHANCE_YOUR_CALM.
    let (mut h, _) = H2c::open(f.server.https_addr(), &cfg, &[]);
    h.credit = false;
    h.send(&{
        let block = get_block(MOVIE, &[]);
        let mut bytes = Vec::new();
        for i in 0..10 {
            bytes.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, &block));
            bytes.extend(frame(RST_STREAM, 0, 1 + 2 * i, &CANCEL.to_be_bytes()));
        }
        bytes
    })
    .expect("send ten HEADERS+RST_STREAM pairs");
    let deadline = Instant::now() + Duration::from_secs(10);
    let verdict = loop {
        assert!(
            Instant::now() < deadline,
            "neither GOAWAY nor close within 10 s of 10 pending resets"
        );
        match h.next(Duration::from_secs(1)) {
            Got::Frame(fr) if fr.ty == GOAWAY => break fr.describe(),
            Got::Frame(_) | Got::Timeout => {}
            Got::Closed(why) => panic!("closed without a GOAWAY: {why}"),
        }
    };
    assert!(
        verdict.ends_with("error 0xb)"),
        "GOAWAY should be ENHANCE_YOUR_CALM: {verdict}"
    );
    // Others are still served.
    let r = fetch_one(f.server.https_addr(), &cfg, Proto::H2, req("GET", SEG, &[]));
    assert_status(&r, 200);
}

/// 414, 431 (a big field, too many fields): the requests the plain listener refuses.
fn oversized_requests() -> Vec<(&'static str, Req)> {
    let long_target = format!("/{}", "a".repeat(9000));
    let big = format!("X-Big: {}", "b".repeat(20_000));
    let many: Vec<String> = (0..120).map(|i| format!("X-Field-{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    vec![
        (
            "target over max_target_bytes",
            req("GET", &long_target, &[]),
        ),
        ("head over max_head_bytes", req("GET", SEG, &[&big])),
        ("more than max_headers fields", req("GET", SEG, &many)),
    ]
}

#[test]
fn oversized_requests_are_refused_over_http11_on_tls_as_on_the_plain_listener() {
    let f = fx("", "");
    for (name, r) in oversized_requests() {
        let extra: Vec<&str> = r.headers.iter().map(String::as_str).collect();
        let plain = f.server.request(&r.method, &r.target, &extra);
        let tls = fetch_one(
            f.server.https_addr(),
            &client(&f.id, H1_ONLY),
            Proto::H1,
            r.clone(),
        );
        assert!(
            plain.status == 414 || plain.status == 431,
            "{name}: {}",
            plain.describe()
        );
        assert_eq!(tls.status, plain.status, "{name}: {}", tls.describe());
    }
    // The 414 is eddy's own answer on every transport.
    let (name, r) = oversized_requests().remove(0);
    let plain = f.server.request(&r.method, &r.target, &[]);
    for proto in [Proto::H2, Proto::H1] {
        let tls = fetch_one(
            f.server.https_addr(),
            &client(&f.id, proto.alpn()),
            proto,
            r.clone(),
        );
        assert_same(&format!("{name} {proto:?}"), &plain, &tls);
    }
}

#[test]
fn more_than_max_headers_fields_get_431_over_http2() {
    let f = fx("", "");
    let (name, r) = oversized_requests().remove(2);
    let extra: Vec<&str> = r.headers.iter().map(String::as_str).collect();
    let plain = f.server.request(&r.method, &r.target, &extra);
    assert_status(&plain, 431);
    let tls = fetch_one(f.server.https_addr(), &client(&f.id, H2_ONLY), Proto::H2, r);
    assert_eq!(tls.status, 431, "{name} over h2: {}", tls.describe());
}

#[test]
fn a_431_over_tls_is_the_same_answer_as_on_the_plain_listener() {
    let f = fx("", "");
    let (name, r) = oversized_requests().remove(1);
    let extra: Vec<&str> = r.headers.iter().map(String::as_str).collect();
    let plain = f.server.request(&r.method, &r.target, &extra);
    assert_status(&plain, 431);
    for proto in [Proto::H1, Proto::H2] {
        let tls = fetch_one(
            f.server.https_addr(),
            &client(&f.id, proto.alpn()),
            proto,
            r.clone(),
        );
        assert_same(&format!("{name} {proto:?}"), &plain, &tls);
    }
}

/// Sends raw bytes over TLS and reads one Content-Length framed response.
fn h1_raw(s: &mut TlsStream, bytes: &[u8]) -> Response {
    s.write_all(bytes).expect("send over TLS");
    s.flush().expect("flush");
    h1_read(s)
}

#[test]
fn http11_over_tls_needs_exactly_one_host() {
    let f = fx("", "");
    let cfg = client(&f.id, H1_ONLY);
    for (name, head) in [
        ("no Host", format!("GET {SEG} HTTP/1.1\r\n\r\n")),
        (
            "two Host fields",
            format!("GET {SEG} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ),
    ] {
        let mut plain = f.server.connect();
        plain.send(head.as_bytes());
        let p = plain.read_response(false);
        assert_status(&p, 400);
        let mut s = tls_connect(f.server.https_addr(), &cfg).unwrap_or_else(|e| panic!("{e}"));
        let t = h1_raw(&mut s, head.as_bytes());
        assert_eq!(t.status, 400, "{name} over TLS: {}", t.describe());
    }
    // HTTP/1.0 needs none.
    let mut s = tls_connect(f.server.https_addr(), &cfg).unwrap_or_else(|e| panic!("{e}"));
    let t = h1_raw(&mut s, format!("GET {SEG} HTTP/1.0\r\n\r\n").as_bytes());
    assert_status(&t, 200);
    assert_bytes_eq(&t.body, &f.obj.seg, "HTTP/1.0 over TLS");
}

#[test]
fn malformed_heads_get_the_same_refusal_over_tls_http11_as_on_the_plain_listener() {
    let f = fx("", "");
    let cfg = client(&f.id, H1_ONLY);
    #[rustfmt::skip]
    let cases: Vec<(&str, String, u16)> = vec![
        ("Content-Length with Transfer-Encoding",
            format!("GET {SEG} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        ("HTTP/1.2", format!("GET {SEG} HTTP/1.2\r\nHost: x\r\n\r\n"), 505),
        ("HTTP/2.0 in a request line", format!("GET {SEG} HTTP/2.0\r\nHost: x\r\n\r\n"), 505),
        ("invalid Content-Length", format!("GET {SEG} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"), 400),
        ("two different Content-Lengths",
            format!("GET {SEG} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400),
        ("Transfer-Encoding not chunked", format!("GET {SEG} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"), 400),
        ("Transfer-Encoding in HTTP/1.0", format!("GET {SEG} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        ("malformed header line", format!("GET {SEG} HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"), 400),
        ("no Host", format!("GET {SEG} HTTP/1.1\r\n\r\n"), 400),
    ];
    for (name, head, status) in &cases {
        let mut plain = f.server.connect();
        plain.send(head.as_bytes());
        let p = plain.read_response(false);
        assert_eq!(p.status, *status, "{name} (plain): {}", p.describe());
        assert!(p.closes(), "{name} (plain) closes");
        let mut s = tls_connect(f.server.https_addr(), &cfg).unwrap_or_else(|e| panic!("{e}"));
        let t = h1_raw(&mut s, head.as_bytes());
        assert_same(&format!("{name} over TLS http/1.1"), &p, &t);
        assert!(t.closes(), "{name} over TLS closes: {}", t.describe());
        assert!(
            tls_wait_closed(&mut s, Duration::from_secs(10)),
            "{name}: the TLS connection stays open after the refusal"
        );
    }
    // Pipelined behind a good request: the good one is answered, then the refusal, in order.
    let two = format!("GET {SEG} HTTP/1.1\r\nHost: x\r\n\r\nGET {SEG} HTTP/1.2\r\nHost: x\r\n\r\n");
    let mut s = tls_connect(f.server.https_addr(), &cfg).unwrap_or_else(|e| panic!("{e}"));
    s.write_all(two.as_bytes())
        .and_then(|()| s.flush())
        .expect("send");
    let mut got = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading two pipelined answers over TLS: {e}"),
        }
    }
    let (answers, rest) = split_responses(&got);
    assert_eq!(rest, 0, "bytes after the answers");
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 505], "the good request, then the refusal");
    assert_bytes_eq(
        &answers[0].body,
        &f.obj.seg,
        "the good request before the refused one",
    );
}

#[test]
fn a_slowloris_head_over_tls_is_cut_by_header_read_timeout() {
    let f = fx(
        "",
        "[limits]\nheader_read_timeout = \"1s\"\nidle_timeout = \"30s\"\n",
    );
    let mut s = tls_connect(f.server.https_addr(), &client(&f.id, H1_ONLY))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(format!("GET {SEG} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .expect("send");
    let t = Instant::now();
    // One header byte every 100 ms: bytes keep flowing, but the head never ends.
    let closed = loop {
        if t.elapsed() > Duration::from_secs(10) {
            break false;
        }
        if s.write_all(b"X").and_then(|()| s.flush()).is_err() {
            break true;
        }
        if tls_wait_closed(&mut s, Duration::from_millis(100)) {
            break true;
        }
    };
    assert!(
        closed,
        "a head trickled over TLS for 10 s was not cut (header_read_timeout = 1s)"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "cut after {:?}",
        t.elapsed()
    );
}

#[test]
fn tokens_cover_the_path_range_form() {
    // The path a token is checked against is `/` + object key: the `/range/A-B` suffix of the
    // Open Connect form is not part of it (docs/protocol.md).
    let store = Store::new();
    let obj = objects(&store);
    let id = Identity::new("eddy test A");
    let files = Files::new(&store, &id);
    let config = store.config("eddy.toml", &files.toml("", &keys_toml()));
    let server = Server::start_tls(&store, &config, 1);
    let folder = token_sign(&config, &["--prefix", "/seg/", "--ttl", "1h"]);
    let exact = token_sign(&config, &["--prefix", SEG, "--ttl", "1h"]);
    let other = token_sign(&config, &["--prefix", "/seg/2.m4s", "--ttl", "1h"]);
    for proto in [Proto::H2, Proto::H1] {
        let rs = fetch(
            server.https_addr(),
            &client(&id, proto.alpn()),
            proto,
            &[
                req("GET", &format!("{SEG}/range/0-9"), &[]),
                req("GET", &format!("{SEG}/range/0-9?{folder}"), &[]),
                req("GET", &format!("{SEG}?{exact}"), &[]),
                req("GET", &format!("{SEG}/range/0-9?{exact}"), &[]),
                req("GET", &format!("{SEG}/range/0-9?{other}"), &[]),
            ],
        );
        let what = format!("{proto:?}");
        assert_status(&rs[0], 403);
        assert_status(&rs[1], 200);
        assert_bytes_eq(&rs[1].body, &obj.seg[..10], &what);
        assert_status(&rs[2], 200);
        assert_eq!(
            rs[3].status,
            200,
            "{what}: exact-path token on the path-range form: {}",
            rs[3].describe()
        );
        assert_bytes_eq(&rs[3].body, &obj.seg[..10], &what);
        assert_status(&rs[4], 403);
    }
}

const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

#[test]
fn sigterm_lets_tls_responses_finish_and_closes_idle_tls_connections() {
    let mut f = fx("", "[limits]\ndrain_timeout = \"20s\"\n");
    let addr = f.server.https_addr();
    // Idle keep-alive connections of both kinds.
    let mut idle_h1 = tls_connect(addr, &client(&f.id, H1_ONLY)).unwrap_or_else(|e| panic!("{e}"));
    assert_status(&h1_get(&mut idle_h1, SEG, &[]), 200);
    let (mut idle_h2, _) = H2c::open(addr, &client(&f.id, H2_ONLY), &[]);
    assert_eq!(idle_h2.get(1, SEG).expect("h2"), (200, f.obj.seg.len()));
    // A movie response in flight, stalled on the connection window (64 KiB) until we give credit.
    let (mut busy, _) = H2c::open(
        addr,
        &client(&f.id, H2_ONLY),
        &[(SETTINGS_INITIAL_WINDOW_SIZE, 1 << 30)],
    );
    busy.credit = false;
    busy.request(1, MOVIE, &[]).expect("request");
    let (status, _) = busy.response_head(1).expect("movie head");
    assert_eq!(status, 200);

    f.server.signal("TERM");
    // The idle ones are closed at once (an HTTP/2 one may get a GOAWAY first).
    assert!(
        tls_wait_closed(&mut idle_h1, Duration::from_secs(10)),
        "idle http/1.1 over TLS not closed after SIGTERM"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match idle_h2.next(deadline.saturating_duration_since(Instant::now())) {
            Got::Closed(_) => break,
            Got::Frame(_) => {}
            Got::Timeout => panic!("idle h2 connection not closed after SIGTERM"),
        }
    }
    // New connections are not served: refused, or closed before an answer.
    if let Ok(mut s) = tls_connect(addr, &client(&f.id, H1_ONLY)) {
        let answered = s
            .write_all(&request_bytes("GET", SEG, &[], false))
            .and_then(|()| s.flush())
            .is_ok()
            && {
                let mut head = [0u8; 12];
                s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
            };
        assert!(!answered, "a new TLS connection was served while draining");
    }
    // The movie still arrives whole. One WINDOW_UPDATE covers it all, so that the client sends
    // nothing more while it reads.
    busy.send(&frame(WINDOW_UPDATE, 0, 0, &(1u32 << 30).to_be_bytes()))
        .expect("window update");
    let mut n = 0;
    let mut goaway = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            Instant::now() < deadline,
            "the movie did not finish while draining ({n} bytes)"
        );
        match busy.next(Duration::from_secs(1)) {
            Got::Frame(fr) if fr.ty == DATA && fr.stream == 1 => {
                n += fr.payload.len();
                if fr.flags & END_STREAM != 0 {
                    break;
                }
            }
            Got::Frame(fr) if fr.ty == GOAWAY => goaway = true,
            Got::Frame(fr) if fr.ty == RST_STREAM => panic!("{}", fr.describe()),
            Got::Frame(_) | Got::Timeout => {}
            Got::Closed(why) => panic!("closed while draining after {n} bytes: {why}"),
        }
    }
    assert_eq!(n, MOVIE_LEN, "bytes of the in-flight movie");
    eprintln!("busy h2 connection saw GOAWAY before the end: {goaway}");
    let st = f
        .server
        .wait_exit(Duration::from_secs(10))
        .expect("eddy exits once the in-flight TLS response is done");
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[test]
fn the_connection_cap_counts_plain_and_tls_connections_together() {
    let f = fx("", "[limits]\nmax_connections = 2\n");
    let addr = f.server.https_addr();
    let cfg = client(&f.id, H1_ONLY);
    let mut plain = f.server.connect();
    plain.send(&request_bytes("GET", SEG, &[], false));
    assert_status(&plain.read_response(false), 200);
    let mut tls = tls_connect(addr, &cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_status(&h1_get(&mut tls, SEG, &[]), 200);
    // Full: a plain client gets 503, a TLS client is closed before the handshake.
    let r = f.server.get(SEG, &[]);
    assert_status(&r, 503);
    assert!(
        tls_connect(addr, &cfg).is_err(),
        "a third connection completed a TLS handshake over max_connections = 2"
    );
    // A slot frees: TLS is served again (polled: the server sees the close asynchronously).
    drop(tls);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = tls_connect(addr, &cfg) {
            assert_status(&h1_get(&mut s, SEG, &[]), 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TLS not served 10 s after a slot freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
