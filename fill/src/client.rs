//! The fill's HTTP client: one GET over HTTP/1.1, plain or TLS (rustls with
//! a configured CA bundle), with a connect deadline and an idle deadline on
//! every read of the body.
//!
//! Owns: URL handling (scheme, authority, path), the connection (one per
//! request: fills move large objects, so a handshake per object is noise),
//! and turning every failure into a [`ClientError`] kind. It must never
//! follow a redirect, decide what a status means for a download, or read a
//! body without a deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL {url:?}: {reason}")]
    Url { url: String, reason: &'static str },
    #[error("plain http:// to {0} is refused (only an `insecure_*` setting allows it)")]
    PlainRefused(String),
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("connecting to {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with {host}: {source}")]
    Tls {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("no byte for {0:?}")]
    Idle(Duration),
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
}

/// The roots in a PEM bundle (certificates rustls cannot use are skipped),
/// or why there are none.
pub fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("{e:?}"))?;
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("no usable certificate in it".into());
    }
    Ok(roots)
}

/// Client settings.
#[derive(Clone)]
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    allow_plain: bool,
    /// SO_RCVBUF for each connection, when set (see [`Client::with_recv_buffer`]).
    recv_buffer: Option<u32>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("allow_plain", &self.allow_plain)
            .finish()
    }
}

/// A response whose body is read chunk by chunk, each read under the idle deadline.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: hyper::body::Incoming,
    idle: Duration,
}

impl Response {
    /// The next chunk of the body, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let frame = tokio::time::timeout(self.idle, self.body.frame())
                .await
                .map_err(|_| ClientError::Idle(self.idle))?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(ClientError::Http(e)),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }

    /// The whole body, up to `limit` bytes (more is an error).
    pub async fn collect(&mut self, limit: usize) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            if out.len() + c.len() > limit {
                return Err(ClientError::Url {
                    url: String::new(),
                    reason: "the body is larger than allowed",
                });
            }
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    /// A client trusting `roots` for https, with plain http allowed only
    /// when `allow_plain`.
    pub fn new(
        roots: rustls::RootCertStore,
        connect_timeout: Duration,
        idle_timeout: Duration,
        allow_plain: bool,
    ) -> Client {
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            tls: Arc::new(tls),
            connect_timeout,
            idle_timeout,
            allow_plain,
            recv_buffer: None,
        }
    }

    /// The same client with each connection's receive buffer fixed at
    /// `bytes`. A rate-capped reader needs no more than its rate times the
    /// round trip; a larger buffer only holds bytes that a crash or a stop
    /// throws away (and downloads again).
    pub fn with_recv_buffer(&self, bytes: Option<u32>) -> Client {
        Client {
            recv_buffer: bytes,
            ..self.clone()
        }
    }

    /// The same client with plain http allowed or not.
    pub fn with_plain(&self, allow: bool) -> Client {
        Client {
            allow_plain: allow,
            ..self.clone()
        }
    }

    /// `GET url` with extra request header fields.
    pub async fn get(&self, url: &str, extra: &[(&str, &str)]) -> Result<Response, ClientError> {
        self.request("GET", url, extra, Bytes::new()).await
    }

    /// `POST url` with `body` (the reports to the control plane).
    pub async fn post(
        &self,
        url: &str,
        extra: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, ClientError> {
        self.request("POST", url, extra, body).await
    }

    async fn request(
        &self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let bad = |reason| ClientError::Url {
            url: url.to_owned(),
            reason,
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URI"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme is not http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !https && !self.allow_plain {
            return Err(ClientError::PlainRefused(authority.to_string()));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let tcp = tokio::time::timeout(self.connect_timeout, self.connect(&host, port))
            .await
            .map_err(|_| ClientError::ConnectTimeout(authority.to_string()))?
            .map_err(|source| ClientError::Connect {
                host: authority.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut req = http::Request::builder()
            .method(method)
            .uri(target)
            .header("host", authority.as_str())
            .header(
                "user-agent",
                concat!("eddy-fill/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = req.body(http_body_util::Full::new(body))?;
        let response = if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| bad("the host is not a valid TLS server name"))?;
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
            let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| ClientError::ConnectTimeout(authority.to_string()))?
                .map_err(|source| ClientError::Tls {
                    host: authority.to_string(),
                    source,
                })?;
            self.send(TokioIo::new(tls), req).await?
        } else {
            self.send(TokioIo::new(tcp), req).await?
        };
        let (parts, body) = response.into_parts();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            idle: self.idle_timeout,
        })
    }

    /// Connects to the first address of `host` that answers.
    async fn connect(&self, host: &str, port: u16) -> std::io::Result<TcpStream> {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address");
        for addr in tokio::net::lookup_host((host, port)).await? {
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            if let Some(b) = self.recv_buffer {
                socket.set_recv_buffer_size(b)?;
            }
            match socket.connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn send<T>(
        &self,
        io: T,
        req: http::Request<http_body_util::Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            // The connection ends with the response body; its error, if any,
            // surfaces through the body.
            let _ = conn.await;
        });
        let head = tokio::time::timeout(self.idle_timeout, sender.send_request(req))
            .await
            .map_err(|_| ClientError::Idle(self.idle_timeout))??;
        Ok(head)
    }
}
