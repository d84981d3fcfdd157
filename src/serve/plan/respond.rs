//! The one planning layer: every response eddy sends is decided here, as a
//! value, before any byte is written.
//!
//! Owns: turning errors into statuses (the only place that does), turning an
//! object plus a request's method, Range and preconditions into status, headers
//! and a [`Payload`], multipart framing, the list of response fields both
//! transports send ([`Plan::for_each_field`]), and serialising an HTTP/1.1 response
//! head. It is pure: the time (whole seconds) and the multipart boundary seed
//! come in as values. Transports (`h1` for plain HTTP/1.1, `tls` for HTTP/2 and
//! HTTP/1.1 over TLS) only carry a [`Plan`] out; they must never decide a
//! status or a header themselves.

use std::sync::Arc;

use super::conditional::{self, Conditions, Decision, Validators};
use super::date;
use super::inline::{InlineText, InlineVec};
use super::media::content_type;
use super::range::{self, ByteRange, RangeLimits, RangeOutcome};
use super::route::{PathRange, RouteError};

/// The methods the planner distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Defined by RFC 9110 but not allowed on content: 405.
    NotAllowed,
    /// Anything else: 501.
    Unknown,
}

impl Method {
    /// Classifies a method token (case-sensitive, RFC 9110 §9.1).
    pub fn parse(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "TRACE" | "CONNECT" => {
                Method::NotAllowed
            }
            _ => Method::Unknown,
        }
    }
}

/// Why a request cannot be served; each maps to exactly one status.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("bad request-target: {0}")]
    Route(#[from] RouteError),
    #[error("no such object")]
    NotFound,
    #[error("refused: {0}")]
    Forbidden(#[from] eddy_proto::token::Denied),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("method not implemented")]
    NotImplemented,
    #[error("HTTP version not supported")]
    VersionNotSupported,
    #[error("request head too large")]
    HeadTooLarge,
    #[error("request-target too long")]
    TargetTooLong,
    #[error("too many connections")]
    Overloaded,
    /// The object's drive has failed and `store.failed_redirect` names where
    /// to send the player instead: the full URL (302).
    #[error("the object's drive has failed: redirected to {0}")]
    Elsewhere(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServeError {
    /// The status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ServeError::BadRequest(_) => 400,
            ServeError::Route(RouteError::NoObject) | ServeError::NotFound => 404,
            ServeError::Forbidden(_) => 403,
            ServeError::Route(_) => 400,
            ServeError::MethodNotAllowed => 405,
            ServeError::NotImplemented => 501,
            ServeError::VersionNotSupported => 505,
            ServeError::HeadTooLarge => 431,
            ServeError::TargetTooLong => 414,
            ServeError::Overloaded => 503,
            ServeError::Elsewhere(_) => 302,
            ServeError::Internal(_) => 500,
        }
    }

    /// Whether the connection must close after the answer: the request stream
    /// can no longer be trusted to be in sync.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            ServeError::BadRequest(_)
                | ServeError::VersionNotSupported
                | ServeError::HeadTooLarge
                | ServeError::TargetTooLong
                | ServeError::Overloaded
                | ServeError::Internal(_)
        )
    }
}

/// What a transport sends as the response body: the plan's payload (the
/// plain transport writes it with `h1::sendfile`, the TLS one streams it as a
/// `tls::stream::PayloadStream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// No body (HEAD, 304, or an empty message).
    Empty,
    /// A short text generated here (error pages).
    Text(&'static str),
    /// One byte range of the object's file.
    File(ByteRange),
    /// multipart/byteranges: for each part, its header block then its range;
    /// then the closing delimiter.
    Multipart {
        parts: Vec<(Vec<u8>, ByteRange)>,
        trailer: Vec<u8>,
    },
}

/// A response field value. Ours are static, values from config and the
/// object's own fields ([`ObjectFields`]) are shared, and values made for this
/// response (a Content-Range, a Date, a length) are held inline, so that
/// planning a GET or a range GET and writing its head copy none and allocate
/// nothing; only rare answers (a redirect's Location, a multipart boundary)
/// own a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Static(&'static str),
    Shared(Arc<str>),
    Inline(InlineText),
    Owned(String),
}

impl FieldValue {
    pub fn as_str(&self) -> &str {
        match self {
            FieldValue::Static(s) => s,
            FieldValue::Shared(s) => s,
            FieldValue::Inline(s) => s.as_str(),
            FieldValue::Owned(s) => s,
        }
    }

    /// `args` rendered for this response: in place when it fits.
    pub fn format(args: std::fmt::Arguments<'_>) -> FieldValue {
        match InlineText::format(args) {
            Some(text) => FieldValue::Inline(text),
            None => FieldValue::Owned(args.to_string()),
        }
    }
}

impl Default for FieldValue {
    fn default() -> Self {
        FieldValue::Static("")
    }
}

impl From<&'static str> for FieldValue {
    fn from(s: &'static str) -> Self {
        FieldValue::Static(s)
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::Owned(s)
    }
}

impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The planned header fields of a response, in order: ten in place (an
/// object's answer has at most six, CORS adds up to four), more on the heap.
pub type Headers = InlineVec<(&'static str, FieldValue), 10>;

/// A complete response decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub status: u16,
    /// Header fields other than Date, Server, Connection and Content-Length,
    /// which [`Plan::for_each_field`] adds.
    pub headers: Headers,
    /// The bytes the payload has on the wire (also for HEAD, where none are sent).
    pub content_length: u64,
    pub payload: Payload,
    /// The connection must close after this answer.
    pub close: bool,
}

/// The fields of an object that stay the same while it is open: rendered
/// once per open object (`answer` keeps them with the `OpenObject`), then
/// shared by every answer about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFields {
    /// The strong ETag as sent, quotes included.
    pub etag: Arc<str>,
    /// Last-Modified as sent, and the seconds since the epoch it says.
    pub last_modified: Arc<str>,
    pub modified: u64,
    /// The media type (`media::content_type` of the key).
    pub content_type: &'static str,
}

impl ObjectFields {
    /// The fields of the object `key`, whose ETag's opaque part is `etag` and
    /// whose file was modified at `modified` (seconds since the epoch).
    pub fn new(key: &str, etag: &str, modified: u64) -> ObjectFields {
        ObjectFields {
            etag: Arc::from(format!("\"{etag}\"")),
            last_modified: Arc::from(&*String::from_utf8_lossy(&date::imf_fixdate(modified))),
            modified,
            content_type: content_type(key),
        }
    }

    /// The opaque part of the ETag (no quotes): what preconditions compare.
    pub fn opaque_etag(&self) -> &str {
        self.etag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(&self.etag)
    }
}

/// The metadata of the object a request selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta<'a> {
    pub len: u64,
    /// Its ETag, Last-Modified and media type, rendered.
    pub fields: &'a ObjectFields,
    /// The freshness of the object (`plan::freshness`), sent on 200, 206
    /// and 304.
    pub cache_control: Option<&'a Arc<str>>,
}

/// The parts of a request the planner reads.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub head_only: bool,
    pub range: Option<&'a [u8]>,
    pub conditions: &'a Conditions<'a>,
    /// The `/range/START-END` path form. It takes the place of a Range field
    /// (which is then ignored): its bytes are the whole answer, sent as 200.
    pub path_range: Option<PathRange>,
}

/// Plans the answer to an error.
pub fn error(err: &ServeError) -> Plan {
    let status = err.status();
    let text = match status {
        400 => "bad request\n",
        403 => "forbidden\n",
        404 => "not found\n",
        405 => "method not allowed\n",
        414 => "request-target too long\n",
        431 => "request header fields too large\n",
        501 => "not implemented\n",
        302 => "moved to another server\n",
        503 => "overloaded, try another server\n",
        505 => "HTTP version not supported\n",
        _ => "internal server error\n",
    };
    let mut headers = Headers::new();
    headers.push(("Content-Type", "text/plain; charset=utf-8".into()));
    if status == 405 {
        headers.push(("Allow", "GET, HEAD".into()));
    }
    if status == 503 {
        headers.push(("Retry-After", "1".into()));
    }
    if let ServeError::Elsewhere(url) = err {
        // RFC 9110 §15.4.3: 302, the player repeats its GET (and Range) at
        // the new URL. A drive's failure is temporary: never cached.
        headers.push(("Location", url.clone().into()));
        headers.push(("Cache-Control", "no-store".into()));
    }
    Plan {
        status,
        headers,
        content_length: text.len() as u64,
        payload: Payload::Text(text),
        close: err.closes_connection(),
    }
}

/// Plans the answer to an accepted CORS preflight (`plan::cors` chose its
/// fields): 204, no body (Fetch §3.2.3: an ok status).
pub fn preflight(headers: Headers) -> Plan {
    Plan {
        status: 204,
        headers,
        content_length: 0,
        payload: Payload::Empty,
        close: false,
    }
}

/// Plans the answer to a GET or HEAD of an existing object at `now` (whole
/// seconds since the Unix epoch, read once per request by the caller).
pub fn object(
    req: &RequestFacts<'_>,
    obj: &ObjectMeta<'_>,
    now: u64,
    limits: RangeLimits,
    boundary_seed: u64,
) -> Plan {
    let mut plan = object_plan(req, obj, now, limits, boundary_seed);
    // A 304 carries the Cache-Control the 200 would have (RFC 9110 §15.4.5);
    // a 206 is as fresh as the whole object (RFC 9111 §3.3).
    if let (200 | 206 | 304, Some(value)) = (plan.status, obj.cache_control) {
        plan.headers
            .push(("Cache-Control", FieldValue::Shared(value.clone())));
    }
    plan
}

fn object_plan(
    req: &RequestFacts<'_>,
    obj: &ObjectMeta<'_>,
    now: u64,
    limits: RangeLimits,
    boundary_seed: u64,
) -> Plan {
    // A modification time in the future is sent as the current time: a
    // Last-Modified later than Date is not allowed (RFC 9110 §8.8.2.1).
    let rendered = obj.fields;
    let last_modified = rendered.modified.min(now);
    let validators = Validators {
        etag: rendered.opaque_etag(),
        last_modified,
    };
    let mut headers = Headers::new();
    headers.push(("ETag", FieldValue::Shared(rendered.etag.clone())));
    let last_modified_value = if rendered.modified <= now {
        FieldValue::Shared(rendered.last_modified.clone())
    } else {
        FieldValue::format(format_args!("{}", DateText(last_modified)))
    };
    headers.push(("Last-Modified", last_modified_value));
    headers.push(("Accept-Ranges", "bytes".into()));
    let decision = conditional::evaluate(req.conditions, &validators, now);
    let honour_range = match decision {
        Decision::NotModified => return bare(304, headers),
        Decision::PreconditionFailed => return bare(412, headers),
        Decision::Proceed { honour_range } => honour_range,
    };
    let content_type = rendered.content_type;
    if let Some(wanted) = req.path_range {
        return path_range(headers, wanted, obj.len, content_type, req.head_only);
    }
    // Range applies to GET only (RFC 9110 §14.2).
    let outcome = match req.range {
        Some(value) if honour_range && !req.head_only => {
            range::resolve(&range::parse(value), obj.len, limits)
        }
        _ => RangeOutcome::Full,
    };
    match outcome {
        RangeOutcome::Full => {
            headers.push(("Content-Type", content_type.into()));
            let payload = if req.head_only || obj.len == 0 {
                Payload::Empty
            } else {
                Payload::File(ByteRange {
                    first: 0,
                    last: obj.len - 1,
                })
            };
            Plan {
                status: 200,
                headers,
                content_length: obj.len,
                payload,
                close: false,
            }
        }
        RangeOutcome::Unsatisfiable => {
            headers.push((
                "Content-Range",
                FieldValue::format(format_args!("bytes */{}", obj.len)),
            ));
            bare(416, headers)
        }
        RangeOutcome::Partial(ranges) => match &*ranges {
            [single] => {
                headers.push(("Content-Type", content_type.into()));
                headers.push((
                    "Content-Range",
                    FieldValue::format(format_args!(
                        "bytes {}-{}/{}",
                        single.first, single.last, obj.len
                    )),
                ));
                Plan {
                    status: 206,
                    headers,
                    content_length: single.len(),
                    payload: Payload::File(*single),
                    close: false,
                }
            }
            _ => multipart(headers, &ranges, obj.len, content_type, boundary_seed),
        },
    }
}

/// The `/range/START-END` form: the same range planner as a Range field (so
/// the same clamping at the end of the object and the same 416), but the bytes
/// are the representation of that URL: 200, no Content-Range, and preconditions
/// (already evaluated) rather than If-Range decide.
fn path_range(
    mut headers: Headers,
    wanted: PathRange,
    len: u64,
    content_type: &'static str,
    head_only: bool,
) -> Plan {
    let mut one_spec = range::Specs::new();
    one_spec.push(range::RangeSpec::From {
        first: wanted.first,
        last: Some(wanted.last),
    });
    let spec = range::ParsedRange::Bytes(one_spec);
    // One range inside the object never adds up to more than the object.
    let one = RangeLimits {
        max_ranges: 1,
        max_sum_percent: 100,
    };
    match range::resolve(&spec, len, one) {
        RangeOutcome::Partial(ranges) if ranges.len() == 1 => {
            let r = ranges[0];
            headers.push(("Content-Type", content_type.into()));
            Plan {
                status: 200,
                headers,
                content_length: r.len(),
                payload: if head_only {
                    Payload::Empty
                } else {
                    Payload::File(r)
                },
                close: false,
            }
        }
        _ => {
            headers.push((
                "Content-Range",
                FieldValue::format(format_args!("bytes */{len}")),
            ));
            bare(416, headers)
        }
    }
}

fn multipart(
    mut headers: Headers,
    ranges: &[ByteRange],
    len: u64,
    content_type: &'static str,
    seed: u64,
) -> Plan {
    let boundary = format!("eddy-{:016x}", mix(seed));
    let mut parts = Vec::with_capacity(ranges.len());
    let mut total: u64 = 0;
    for (i, r) in ranges.iter().enumerate() {
        // The first delimiter needs no leading CRLF; later ones end the previous part.
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = format!("{lead}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n", r.first, r.last).into_bytes();
        total += head.len() as u64 + r.len();
        parts.push((head, *r));
    }
    let trailer = format!("\r\n--{boundary}--\r\n").into_bytes();
    total += trailer.len() as u64;
    headers.push((
        "Content-Type",
        format!("multipart/byteranges; boundary={boundary}").into(),
    ));
    Plan {
        status: 206,
        headers,
        content_length: total,
        payload: Payload::Multipart { parts, trailer },
        close: false,
    }
}

/// A response with validators and no content (304, 412, 416).
fn bare(status: u16, headers: Headers) -> Plan {
    Plan {
        status,
        headers,
        content_length: 0,
        payload: Payload::Empty,
        close: false,
    }
}

impl Plan {
    /// Every header field of the response, in order, except the connection
    /// fields (which are HTTP/1-only and belong to the transport): Date (the
    /// IMF-fixdate `date`, rendered by the transport once per second), Server,
    /// the planned fields, and Content-Length (never on a 304, where it would
    /// describe the 200 it replaces, nor on a 204, RFC 9110 §8.6). Both
    /// transports send exactly these; none of them is copied to the heap.
    pub fn for_each_field(
        &self,
        date: &[u8; date::LEN],
        mut f: impl FnMut(&'static str, &FieldValue),
    ) {
        let date = std::str::from_utf8(date).unwrap_or_default();
        f("Date", &FieldValue::format(format_args!("{date}")));
        f("Server", &FieldValue::Static("eddy"));
        for (name, value) in self.headers.iter() {
            f(name, value);
        }
        if self.status != 304 && self.status != 204 {
            f(
                "Content-Length",
                &FieldValue::format(format_args!("{}", self.content_length)),
            );
        }
    }

    /// Appends the HTTP/1.1 status line and header block to `out`, with the
    /// Date `date`. `keep_alive` is the transport's view of the connection;
    /// HTTP/1.0 keep-alive is announced. Allocates nothing once `out` has
    /// room.
    pub fn write_head(
        &self,
        date: &[u8; date::LEN],
        keep_alive: bool,
        http10: bool,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(b"HTTP/1.1 ");
        let status = self.status.min(999);
        out.extend_from_slice(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        self.for_each_field(date, |name, value| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        });
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if http10 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The head at `now` (seconds since the epoch) in a new buffer: for
    /// answers off the steady path (refusals) and tests.
    pub fn head(&self, now: u64, keep_alive: bool, http10: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_head(&date::imf_fixdate(now), keep_alive, http10, &mut out);
        out
    }
}

/// The reason phrase of each status we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Seconds since the epoch shown as an IMF-fixdate.
struct DateText(u64);

impl std::fmt::Display for DateText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&date::imf_fixdate(self.0)).unwrap_or_default())
    }
}

#[cfg(test)]
fn http_date(secs: u64) -> String {
    DateText(secs).to_string()
}

/// SplitMix64: spreads a seed into a boundary that no content is likely to hold.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RangeLimits = RangeLimits {
        max_ranges: 16,
        max_sum_percent: 100,
    };

    static CC: std::sync::LazyLock<Arc<str>> =
        std::sync::LazyLock::new(|| Arc::from("public, max-age=60"));

    static FIELDS: std::sync::LazyLock<ObjectFields> =
        std::sync::LazyLock::new(|| ObjectFields::new("t/v.mp4", "3e8-1", 1_700_000_000));

    static NO_CONDITIONS: Conditions<'static> = Conditions {
        if_match: None,
        if_none_match: None,
        if_modified_since: None,
        if_unmodified_since: None,
        if_range: None,
    };

    fn meta() -> ObjectMeta<'static> {
        ObjectMeta {
            len: 1000,
            fields: &FIELDS,
            cache_control: Some(&*CC),
        }
    }

    /// `r` with the preconditions `set` makes.
    fn cond(
        r: RequestFacts<'static>,
        set: impl FnOnce(&mut Conditions<'static>),
    ) -> RequestFacts<'static> {
        let mut c = Conditions::default();
        set(&mut c);
        RequestFacts {
            conditions: Box::leak(Box::new(c)),
            ..r
        }
    }

    fn now() -> u64 {
        1_700_003_600
    }

    fn header<'a>(p: &'a Plan, name: &str) -> Option<&'a str> {
        p.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn get(range: Option<&'static str>) -> RequestFacts<'static> {
        RequestFacts {
            head_only: false,
            range: range.map(str::as_bytes),
            conditions: &NO_CONDITIONS,
            path_range: None,
        }
    }

    fn in_path(first: u64, last: u64) -> RequestFacts<'static> {
        RequestFacts {
            path_range: Some(PathRange { first, last }),
            ..get(None)
        }
    }

    #[test]
    fn range_in_the_path_is_a_200_of_exactly_those_bytes() {
        let p = object(&in_path(10, 19), &meta(), now(), LIMITS, 1);
        assert_eq!((p.status, p.content_length), (200, 10));
        assert_eq!(
            p.payload,
            Payload::File(ByteRange {
                first: 10,
                last: 19
            })
        );
        assert_eq!(header(&p, "Content-Range"), None);
        assert_eq!(header(&p, "ETag"), Some("\"3e8-1\""));
        // The end is clamped to the object, as for a Range field.
        let p = object(&in_path(990, 5000), &meta(), now(), LIMITS, 1);
        assert_eq!((p.status, p.content_length), (200, 10));
        // Past the end: 416 with the length.
        let p = object(&in_path(1000, 1001), &meta(), now(), LIMITS, 1);
        assert_eq!(p.status, 416);
        assert_eq!(header(&p, "Content-Range"), Some("bytes */1000"));
        // A Range field on top is ignored: the path says what is wanted.
        let mut both = in_path(0, 0);
        both.range = Some(b"bytes=5-9");
        let p = object(&both, &meta(), now(), LIMITS, 1);
        assert_eq!(
            (p.status, p.payload),
            (200, Payload::File(ByteRange { first: 0, last: 0 }))
        );
        // HEAD: the length, no body.
        let mut head = in_path(0, 99);
        head.head_only = true;
        let p = object(&head, &meta(), now(), LIMITS, 1);
        assert_eq!(
            (p.status, p.content_length, p.payload),
            (200, 100, Payload::Empty)
        );
        // Preconditions still apply.
        let cond = cond(in_path(0, 99), |c| {
            c.if_none_match = Some(b"\"3e8-1\"".to_vec().into())
        });
        assert_eq!(object(&cond, &meta(), now(), LIMITS, 1).status, 304);
        // Even a tiny sum limit never refuses the one range in the path.
        let tight = RangeLimits {
            max_ranges: 1,
            max_sum_percent: 1,
        };
        assert_eq!(
            object(&in_path(0, 999), &meta(), now(), tight, 1).status,
            200
        );
    }

    #[test]
    fn full_get_has_validators_and_type() {
        let p = object(&get(None), &meta(), now(), LIMITS, 1);
        assert_eq!(p.status, 200);
        assert_eq!(p.content_length, 1000);
        assert_eq!(header(&p, "ETag"), Some("\"3e8-1\""));
        assert_eq!(header(&p, "Content-Type"), Some("video/mp4"));
        assert_eq!(header(&p, "Accept-Ranges"), Some("bytes"));
        assert_eq!(
            header(&p, "Last-Modified"),
            Some("Tue, 14 Nov 2023 22:13:20 GMT")
        );
        assert_eq!(
            p.payload,
            Payload::File(ByteRange {
                first: 0,
                last: 999
            })
        );
    }

    #[test]
    fn head_ignores_range_and_sends_no_body() {
        let mut r = get(Some("bytes=0-9"));
        r.head_only = true;
        let p = object(&r, &meta(), now(), LIMITS, 1);
        assert_eq!(
            (p.status, p.content_length, p.payload),
            (200, 1000, Payload::Empty)
        );
    }

    #[test]
    fn single_range_and_unsatisfiable() {
        let p = object(&get(Some("bytes=10-19")), &meta(), now(), LIMITS, 1);
        assert_eq!((p.status, p.content_length), (206, 10));
        assert_eq!(header(&p, "Content-Range"), Some("bytes 10-19/1000"));
        let p = object(&get(Some("bytes=2000-")), &meta(), now(), LIMITS, 1);
        assert_eq!((p.status, p.content_length), (416, 0));
        assert_eq!(header(&p, "Content-Range"), Some("bytes */1000"));
    }

    #[test]
    fn a_suffix_range_on_an_empty_object_is_a_200_without_content_range() {
        let empty = ObjectMeta { len: 0, ..meta() };
        let p = object(&get(Some("bytes=-5")), &empty, now(), LIMITS, 1);
        assert_eq!(
            (p.status, p.content_length, &p.payload),
            (200, 0, &Payload::Empty)
        );
        assert_eq!(header(&p, "Content-Range"), None);
        assert_eq!(header(&p, "Content-Type"), Some("video/mp4"));
        let p = object(&get(Some("bytes=0-")), &empty, now(), LIMITS, 1);
        assert_eq!(p.status, 416);
        assert_eq!(header(&p, "Content-Range"), Some("bytes */0"));
    }

    #[test]
    fn multipart_length_is_exact() {
        let p = object(&get(Some("bytes=0-9,20-29")), &meta(), now(), LIMITS, 7);
        let Payload::Multipart { parts, trailer } = &p.payload else {
            panic!("not multipart: {p:?}");
        };
        let wire: u64 = parts
            .iter()
            .map(|(h, r)| h.len() as u64 + r.len())
            .sum::<u64>()
            + trailer.len() as u64;
        assert_eq!(wire, p.content_length);
        let ct = header(&p, "Content-Type").unwrap_or_default();
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap_or_default();
        assert!(String::from_utf8_lossy(&parts[1].0).contains(&format!("\r\n--{boundary}\r\nContent-Type: video/mp4\r\nContent-Range: bytes 20-29/1000\r\n\r\n")));
        assert_eq!(trailer, format!("\r\n--{boundary}--\r\n").as_bytes());
    }

    #[test]
    fn not_modified_and_precondition_failed_carry_validators_only() {
        let r = cond(get(None), |c| {
            c.if_none_match = Some(b"\"3e8-1\"".to_vec().into())
        });
        let p = object(&r, &meta(), now(), LIMITS, 1);
        assert_eq!((p.status, &p.payload), (304, &Payload::Empty));
        assert!(header(&p, "ETag").is_some());
        assert!(!String::from_utf8_lossy(&p.head(now(), true, false)).contains("Content-Length"));
        let r = cond(get(None), |c| {
            c.if_match = Some(b"\"other\"".to_vec().into())
        });
        assert_eq!(object(&r, &meta(), now(), LIMITS, 1).status, 412);
    }

    #[test]
    fn failed_if_range_sends_the_whole_object() {
        let r = cond(get(Some("bytes=0-9")), |c| {
            c.if_range = Some(b"\"old\"".to_vec().into())
        });
        let p = object(&r, &meta(), now(), LIMITS, 1);
        assert_eq!((p.status, p.content_length), (200, 1000));
    }

    #[test]
    fn errors_map_to_statuses_in_one_place() {
        assert_eq!(
            error(&ServeError::MethodNotAllowed)
                .headers
                .iter()
                .find(|(n, _)| *n == "Allow")
                .map(|(_, v)| v.as_str()),
            Some("GET, HEAD")
        );
        assert_eq!(error(&ServeError::Route(RouteError::NotUtf8)).status, 400);
        assert_eq!(error(&ServeError::Route(RouteError::NoObject)).status, 404);
        assert!(error(&ServeError::BadRequest("x")).close);
        assert!(!error(&ServeError::NotFound).close);
    }

    #[test]
    fn head_serialisation() {
        let p = error(&ServeError::NotFound);
        let head = String::from_utf8(p.head(now(), false, false)).unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\nDate: "));
        assert!(head.ends_with("Content-Length: 10\r\nConnection: close\r\n\r\n"));
        let head = String::from_utf8(p.head(now(), true, true)).unwrap_or_default();
        assert!(head.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn a_future_mtime_is_sent_as_now() {
        let future = ObjectFields::new("t/v.mp4", "3e8-1", now() + 86_400);
        let m = ObjectMeta {
            fields: &future,
            ..meta()
        };
        let p = object(&get(None), &m, now(), LIMITS, 1);
        assert_eq!(header(&p, "Last-Modified"), Some(http_date(now()).as_str()));
    }

    #[test]
    fn cache_control_on_200_206_and_304_only() {
        let cc = |p: &Plan| header(p, "Cache-Control").map(str::to_owned);
        let want = Some("public, max-age=60".to_owned());
        assert_eq!(cc(&object(&get(None), &meta(), now(), LIMITS, 1)), want);
        assert_eq!(
            cc(&object(&get(Some("bytes=0-9")), &meta(), now(), LIMITS, 1)),
            want
        );
        assert_eq!(
            cc(&object(
                &get(Some("bytes=0-9,20-29")),
                &meta(),
                now(),
                LIMITS,
                1
            )),
            want
        );
        assert_eq!(cc(&object(&in_path(0, 9), &meta(), now(), LIMITS, 1)), want);
        let r = cond(get(None), |c| {
            c.if_none_match = Some(b"\"3e8-1\"".to_vec().into())
        });
        assert_eq!(cc(&object(&r, &meta(), now(), LIMITS, 1)), want);
        let r = cond(get(None), |c| {
            c.if_match = Some(b"\"other\"".to_vec().into())
        });
        assert_eq!(cc(&object(&r, &meta(), now(), LIMITS, 1)), None, "412");
        assert_eq!(
            cc(&object(
                &get(Some("bytes=5000-")),
                &meta(),
                now(),
                LIMITS,
                1
            )),
            None,
            "416"
        );
        let none = ObjectMeta {
            cache_control: None,
            ..meta()
        };
        assert_eq!(cc(&object(&get(None), &none, now(), LIMITS, 1)), None);
        // Freshness changes no byte and no status.
        for facts in [get(None), get(Some("bytes=0-9")), in_path(3, 7)] {
            let a = object(&facts, &meta(), now(), LIMITS, 1);
            let b = object(&facts, &none, now(), LIMITS, 1);
            assert_eq!(
                (a.status, a.content_length, a.payload),
                (b.status, b.content_length, b.payload)
            );
        }
    }

    #[test]
    fn a_preflight_is_a_204_without_content_length() {
        let p = preflight(Headers::from_iter([(
            "Access-Control-Allow-Origin",
            "*".into(),
        )]));
        let head = String::from_utf8(p.head(now(), true, false)).unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 204 No Content\r\n"), "{head}");
        assert!(!head.contains("Content-Length"), "{head}");
        assert!(
            head.contains("Access-Control-Allow-Origin: *\r\n"),
            "{head}"
        );
    }
}
