//! TLS for scenarios (d) and (e): the one certificate both servers present (a self-signed P-256 ECDSA certificate
//! for `localhost` and 127.0.0.1, made with `openssl req` in the run directory), and the check of what a server
//! negotiates with a default OpenSSL client, the kind wrk and h2load are (`openssl s_client`, once per run and
//! server, with and without ALPN h2).
//!
//! Both servers are held to TLS 1.3 with `TLS_AES_256_GCM_SHA384`: nginx by its config, eddy because rustls follows
//! the client's order and OpenSSL clients offer AES-256-GCM first. The check records what really came out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::server::Kind;

/// The cipher suite both servers are meant to negotiate.
pub const CIPHER: &str = "TLS_AES_256_GCM_SHA384";

/// Certificate and key (PEM) shared by both servers.
#[derive(Debug, Clone, Serialize)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Make the certificate and key in `dir`.
pub fn make_cert(openssl: &Path, dir: &Path) -> Result<TlsFiles> {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .stdin(Stdio::null())
        .output()
        .ctx(|| format!("run {} req", openssl.display()))?;
    if !out.status.success() || !files.cert.is_file() || !files.key.is_file() {
        return Err(Error::tool(
            "openssl",
            format!(
                "could not make the certificate ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(files)
}

/// What one server negotiated with a default OpenSSL client.
#[derive(Debug, Clone, Serialize)]
pub struct Negotiated {
    pub server: Kind,
    pub addr: SocketAddr,
    /// The ALPN protocol the client offered (None: no ALPN, as wrk).
    pub alpn_offered: Option<String>,
    pub protocol: Option<String>,
    pub cipher: Option<String>,
    pub alpn: Option<String>,
    /// Set when the handshake failed or the result is not TLS 1.3 with [`CIPHER`] (and h2 when offered).
    pub error: Option<String>,
}

/// Connect with `openssl s_client` (default cipher list, as wrk and h2load have it) and read what was agreed.
pub fn negotiated(
    openssl: &Path,
    server: Kind,
    addr: SocketAddr,
    alpn: Option<&str>,
) -> Negotiated {
    let mut cmd = Command::new(openssl);
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(["-servername", "localhost"]);
    if let Some(a) = alpn {
        cmd.args(["-alpn", a]);
    }
    let mut n = Negotiated {
        server,
        addr,
        alpn_offered: alpn.map(str::to_string),
        protocol: None,
        cipher: None,
        alpn: None,
        error: None,
    };
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(o) => o,
        Err(e) => {
            n.error = Some(format!("run {} s_client: {e}", openssl.display()));
            return n;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    parse_s_client(&text, &mut n);
    n.error = match (&n.protocol, &n.cipher) {
        (Some(p), Some(c)) if p == "TLSv1.3" && c == CIPHER => match (alpn, &n.alpn) {
            (Some(want), got) if got.as_deref() != Some(want) => Some(format!(
                "offered ALPN {want}, the server chose {}",
                got.as_deref().unwrap_or("none")
            )),
            _ => None,
        },
        (Some(p), Some(c)) => Some(format!("negotiated {p} {c}, expected TLSv1.3 {CIPHER}")),
        _ => Some(format!(
            "no TLS session ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
        )),
    };
    n
}

/// Pick protocol, cipher and ALPN out of `openssl s_client`'s report
/// (`New, TLSv1.3, Cipher is X`, `ALPN protocol: h2` or `No ALPN negotiated`).
fn parse_s_client(text: &str, n: &mut Negotiated) {
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("New, ") {
            if let Some((proto, cipher)) = rest.split_once(", Cipher is ") {
                n.protocol = Some(proto.trim().to_string());
                n.cipher = Some(cipher.trim().to_string());
            }
        } else if let Some(p) = line.strip_prefix("ALPN protocol:") {
            n.alpn = Some(p.trim().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_s_client_report() {
        let mut n = Negotiated {
            server: Kind::Nginx,
            addr: "127.0.0.1:1".parse().expect("addr"),
            alpn_offered: Some("h2".into()),
            protocol: None,
            cipher: None,
            alpn: None,
            error: None,
        };
        parse_s_client(
            "---\nNew, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384\nServer public key is 256 bit\nALPN protocol: h2\n",
            &mut n,
        );
        assert_eq!(n.protocol.as_deref(), Some("TLSv1.3"));
        assert_eq!(n.cipher.as_deref(), Some(CIPHER));
        assert_eq!(n.alpn.as_deref(), Some("h2"));
    }
}
