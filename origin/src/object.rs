//! Content answers: `GET` and `HEAD /content/{key}`.
//!
//! Owns: turning the path into a key (one percent-decode, then
//! `ObjectKey::parse`), the validators (`ETag` from the content digest, the
//! same rule as the appliance; `Last-Modified`), `If-Range` then `Range`
//! through [`crate::range`] (206, 416, or 200), and the body: streamed from
//! the open file in chunks through a small channel, never the whole file in
//! memory. It carries out the content faults ([`ContentFault`]) on `GET`
//! answers and counts requests and body bytes. It must never open a path
//! itself (that is `content`, beneath the directory, without symlinks) and
//! never answer with a body other than the object's bytes, except for an
//! error body.

use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, Method, Response, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::mpsc;

use eddy_proto::ObjectKey;

use crate::content::{self, Content, ContentError};
use crate::fault::{ContentFault, Faults};
use crate::http::{error, Body};
use crate::range::{self, ByteRange, Outcome};
use crate::sources;
use crate::stats::Stats;

/// Bytes read from the file per body chunk.
pub const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the file reader and the connection.
const CHANNEL_CHUNKS: usize = 4;
/// How long a stalled answer holds its connection (unless the client leaves).
const STALL_FOR: Duration = Duration::from_secs(3600);

/// What a content answer needs from the origin.
#[derive(Debug)]
pub struct Env<'a> {
    pub content: &'a Arc<Content>,
    pub faults: &'a Faults,
    pub stats: &'a Arc<Stats>,
}

/// Answers a content request; `raw_key` is the path after `/content/`.
pub async fn answer(
    env: Env<'_>,
    method: &Method,
    raw_key: &str,
    headers: &HeaderMap,
) -> Response<Body> {
    let key = match sources::decode_path(raw_key)
        .map_err(|e| e.to_string())
        .and_then(|k| ObjectKey::parse(&k).map_err(|e| e.to_string()))
    {
        Ok(k) => k,
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_key",
                &format!("not a valid object key: {reason}"),
            )
        }
    };
    let opened = {
        let key = key.clone();
        content::blocking(env.content, move |c| {
            let opened = c.open_object(&key)?;
            let digest = c.digest(&key, &opened)?;
            Ok((opened, digest))
        })
        .await
    };
    let (opened, digest) = match opened {
        Ok(o) => o,
        Err(ContentError::NotFound) => {
            return error(
                StatusCode::NOT_FOUND,
                "no_such_object",
                &format!("no object {key}"),
            )
        }
        Err(e) => {
            tracing::error!(%key, "content: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "io_error",
                "the object could not be read",
            );
        }
    };
    env.stats.request(key.as_str());
    let fault = if method == Method::GET {
        env.faults.content(key.as_str())
    } else {
        None
    };
    if let Some(ContentFault::Status(code)) = fault {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return error(
            status,
            "fault_injected",
            &format!("test fault: status {code} for {key}"),
        );
    }

    let len = opened.id.len;
    let now = SystemTime::now();
    // Never a Last-Modified later than the Date.
    let modified = opened.modified.min(now);
    let modified_secs = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let etag = format!("\"{}\"", digest.etag());

    let outcome = match header_text(headers, header::RANGE) {
        Some(r) if method == Method::GET => {
            let applies = match header_text(headers, header::IF_RANGE) {
                Some(v) => range::if_range_matches(&v, &etag, modified_secs),
                None => true,
            };
            if applies {
                range::resolve(range::parse(&r), len)
            } else {
                Outcome::Full
            }
        }
        _ => Outcome::Full,
    };

    let builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified))
        .header(header::CONTENT_TYPE, media_type(key.as_str()));
    let (status, send) = match outcome {
        Outcome::Full => (
            StatusCode::OK,
            (len > 0).then_some(ByteRange {
                first: 0,
                last: len.saturating_sub(1),
            }),
        ),
        Outcome::Partial(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
        Outcome::Unsatisfiable => {
            let mut r = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                &format!("the object has {len} bytes"),
            );
            if let Ok(v) = http::HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            r.headers_mut().insert(
                header::ACCEPT_RANGES,
                http::HeaderValue::from_static("bytes"),
            );
            return r;
        }
    };
    let mut builder = builder.status(status).header(
        header::CONTENT_LENGTH,
        send.map_or(0, |r| r.len()).to_string(),
    );
    if let (StatusCode::PARTIAL_CONTENT, Some(r)) = (status, send) {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{len}", r.first, r.last),
        );
    }
    let body = match send {
        Some(r) if method == Method::GET => file_body(
            opened.file,
            r,
            fault,
            key.as_str().to_owned(),
            env.stats.clone(),
        ),
        _ => crate::http::empty(),
    };
    match builder.body(body) {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(%key, "building a content answer: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the answer could not be built",
            )
        }
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// A media type from the key's extension; anything unknown is octets.
pub fn media_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "mp4" | "m4v" | "m4s" => "video/mp4",
        "m4a" => "audio/mp4",
        "ts" => "video/mp2t",
        "webm" => "video/webm",
        "mpd" => "application/dash+xml",
        "m3u8" => "application/vnd.apple.mpegurl",
        "json" => "application/json",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// A body that streams `range` of `file`, with `fault` carried out.
fn file_body(
    file: std::fs::File,
    range: ByteRange,
    fault: Option<ContentFault>,
    key: String,
    stats: Arc<Stats>,
) -> Body {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let length = range.len();
    // A drop ends the body early: the last byte it sends is marked as the
    // end of the stream, so that hyper flushes what it holds and, the
    // Content-Length not being reached, closes the connection.
    let deliver = match fault {
        Some(ContentFault::DropAfter(n)) => n.min(length),
        _ => length,
    };
    if fault == Some(ContentFault::Stall) {
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = tokio::time::sleep(STALL_FOR) => {}
            }
        });
    } else {
        let corrupt = fault == Some(ContentFault::Corrupt);
        tokio::spawn(produce(file, range.first, deliver, corrupt, tx));
    }
    http_body_util::BodyExt::boxed(FileBody {
        rx,
        length,
        remaining: deliver,
        key,
        stats,
    })
}

type Chunk = Result<Bytes, std::io::Error>;

/// Reads `count` bytes from `first` on into the channel, flipping the first
/// byte of each chunk when `corrupt`. Returns when done or when the reader
/// is gone.
async fn produce(
    file: std::fs::File,
    first: u64,
    count: u64,
    corrupt: bool,
    tx: mpsc::Sender<Chunk>,
) {
    let mut file = tokio::fs::File::from_std(file);
    if let Err(e) = file.seek(SeekFrom::Start(first)).await {
        let _ = tx.send(Err(e)).await;
        return;
    }
    let mut left = count;
    while left > 0 {
        let want = usize::try_from((CHUNK as u64).min(left)).unwrap_or(CHUNK);
        let mut buf = BytesMut::with_capacity(want);
        let n = match (&mut file).take(want as u64).read_buf(&mut buf).await {
            Ok(0) => {
                let _ = tx
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was sent",
                    )))
                    .await;
                return;
            }
            Ok(n) => n as u64,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if corrupt {
            if let Some(b) = buf.first_mut() {
                *b ^= 0x01;
            }
        }
        left -= n;
        if tx.send(Ok(buf.freeze())).await.is_err() {
            return;
        }
    }
}

/// The body of a content answer: chunks from [`produce`], counted.
struct FileBody {
    rx: mpsc::Receiver<Chunk>,
    /// Bytes of the Content-Length not yet sent.
    length: u64,
    /// Bytes still to send; fewer than `length` in all when a drop fault
    /// cuts the body short.
    remaining: u64,
    key: String,
    stats: Arc<Stats>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let n = chunk.len() as u64;
                self.remaining = self.remaining.saturating_sub(n);
                self.length = self.length.saturating_sub(n);
                self.stats.body_bytes(&self.key, n);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(key = %self.key, "content body: {e}");
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                Poll::Ready(Some(Err(std::io::Error::other("the body ended early"))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    /// What the Content-Length still promises (hyper frames the answer by it).
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[test]
    fn media_types_by_extension() {
        assert_eq!(media_type("a/b.MP4"), "video/mp4");
        assert_eq!(media_type("a/b.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(media_type("noext"), "application/octet-stream");
    }

    #[test]
    fn a_body_hint_is_exact() {
        let (_tx, rx) = mpsc::channel(1);
        let b = FileBody {
            rx,
            length: 7,
            remaining: 7,
            key: "k".into(),
            stats: Arc::new(Stats::default()),
        };
        assert_eq!(b.size_hint().exact(), Some(7));
        assert!(!b.is_end_stream());
    }
}
