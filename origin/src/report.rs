//! The report sink and what the control plane knows of its appliances:
//! `POST /v1/report/{appliance}` takes an `eddy_proto::report::Report`,
//! `GET /v1/appliances[/{id}/health|inventory|popularity]` shows what was kept.
//!
//! Owns: the order of a report's checks (bearer token of that appliance,
//! compared in constant time; then the size, at most [`MAX_BODY`] bytes, read
//! within [`BODY_DEADLINE`]; then the major version; then the message and its
//! `appliance`), the fixed refusal codes ([`Refusal`]), handing an accepted
//! report to the [`crate::store`], and the JSON of the read-side answers. It
//! must never change a manifest or the catalogue: reports feed steering
//! through an explicit step, so a hostile report cannot steer fills; and it
//! never logs or answers with a token.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use eddy_proto::report::{self, Report};
use eddy_proto::wire::check_version;
use http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use sha2::Digest as _;

use crate::options::ReportToken;
use crate::store::{self, LatestKind, Received, Shared, StoreError};

/// The path prefix reports are posted to.
pub const PATH_PREFIX: &str = "/v1/report/";

/// The largest report body accepted (16 MiB).
pub const MAX_BODY: usize = 16 << 20;

/// How long a report body may take to arrive.
pub const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// The report kinds, as in the JSON.
pub const KINDS: [&str; 3] = ["health", "popularity", "inventory"];

/// Why a report was refused: each is a fixed code and a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no or wrong bearer token for this appliance")]
    BadToken,
    #[error("the body is over {MAX_BODY} bytes")]
    TooLarge,
    #[error("the body did not arrive within {}s", BODY_DEADLINE.as_secs())]
    Timeout,
    #[error("the body could not be read: {0}")]
    BadBody(String),
    #[error("{0}")]
    Version(String),
    #[error("{0}")]
    BadReport(String),
    #[error("the report could not be kept")]
    Storage,
}

impl Refusal {
    /// Every code, for the counters.
    pub const CODES: [&'static str; 7] = [
        "bad_token",
        "too_large",
        "timeout",
        "bad_body",
        "version",
        "bad_report",
        "storage_error",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadToken => "bad_token",
            Refusal::TooLarge => "too_large",
            Refusal::Timeout => "timeout",
            Refusal::BadBody(_) => "bad_body",
            Refusal::Version(_) => "version",
            Refusal::BadReport(_) => "bad_report",
            Refusal::Storage => "storage_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::BadToken => StatusCode::UNAUTHORIZED,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Timeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::BadBody(_) | Refusal::Version(_) | Refusal::BadReport(_) => {
                StatusCode::BAD_REQUEST
            }
            Refusal::Storage => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The configured report tokens, kept as SHA-256 digests so that the
/// comparison is of fixed length and constant time.
#[derive(Default)]
pub struct Tokens {
    by_appliance: BTreeMap<String, [u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_appliance.keys()).finish()
    }
}

impl Tokens {
    pub fn new(tokens: &[ReportToken]) -> Tokens {
        Tokens {
            by_appliance: tokens
                .iter()
                .map(|t| (t.appliance.clone(), sha2::Sha256::digest(t.token()).into()))
                .collect(),
        }
    }

    /// True when `authorization` is `Bearer <the token of appliance>`.
    pub fn allows(&self, appliance: &str, authorization: Option<&[u8]>) -> bool {
        let Some(want) = self.by_appliance.get(appliance) else {
            return false;
        };
        let Some(presented) = authorization.and_then(bearer) else {
            return false;
        };
        let got: [u8; 32] = sha2::Sha256::digest(presented).into();
        aws_lc_rs::constant_time::verify_slices_are_equal(&got, want).is_ok()
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme in any case).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Reads a body of at most `limit` bytes within `deadline`.
pub async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, Refusal>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Refusal::TooLarge);
    }
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(deadline, limited.collect()).await {
        Err(_) => Err(Refusal::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::TooLarge),
        Ok(Err(e)) => Err(Refusal::BadBody(e.to_string())),
    }
}

/// The part of every report read before the rest: its version.
#[derive(serde::Deserialize)]
struct Versioned {
    version: String,
}

/// Checks a report body posted for `appliance` (pure).
pub fn check(body: &[u8], appliance: &str) -> Result<Report, Refusal> {
    let versioned: Versioned = serde_json::from_slice(body)
        .map_err(|e| Refusal::BadReport(format!("not a report: {e}")))?;
    check_version(&versioned.version, report::MAJOR)
        .map_err(|e| Refusal::Version(e.to_string()))?;
    let report: Report = serde_json::from_slice(body)
        .map_err(|e| Refusal::BadReport(format!("not a report: {e}")))?;
    if report.appliance() != appliance {
        return Err(Refusal::BadReport(format!(
            "the report is from appliance {:?}, posted for {appliance:?}",
            report.appliance()
        )));
    }
    Ok(report)
}

/// Everything accepting a report needs.
pub struct Sink<'a> {
    pub tokens: &'a Tokens,
    pub store: &'a Shared,
}

/// `POST /v1/report/{appliance}`: the kind kept, or why not.
pub async fn accept<B>(
    sink: Sink<'_>,
    appliance: &str,
    headers: &HeaderMap,
    body: B,
    now: u64,
) -> Result<&'static str, Refusal>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if !sink.tokens.allows(appliance, authorization) {
        return Err(Refusal::BadToken);
    }
    let bytes = read_body(headers, body, MAX_BODY, BODY_DEADLINE).await?;
    let report = check(&bytes, appliance)?;
    let kind = report.kind();
    // It parsed as JSON, so it is UTF-8.
    let json = String::from_utf8(bytes.to_vec())
        .map_err(|_| Refusal::BadReport("the body is not UTF-8".to_owned()))?;
    let received = Received {
        report,
        received_at: now,
        json,
    };
    store::blocking(sink.store, move |s| s.put_report(&received))
        .await
        .map_err(|e| {
            tracing::error!(appliance, "keeping a report: {e}");
            Refusal::Storage
        })?;
    Ok(kind)
}

/// Why a read-side answer could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("nothing was received from appliance {0:?}")]
    UnknownAppliance(String),
    #[error("no {kind} report was received from appliance {appliance:?}")]
    NoReport {
        appliance: String,
        kind: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a kept report does not parse back: {0}")]
    Kept(#[from] serde_json::Error),
}

/// `GET /v1/appliances`.
pub async fn appliances(store: &Shared) -> Result<Vec<store::ApplianceSummary>, ViewError> {
    Ok(store::blocking(store, |s| s.appliances()).await?)
}

/// `GET /v1/appliances/{id}/health` and `/inventory`: the latest report as
/// posted (unknown fields kept), with `received_at` added.
pub async fn latest(
    store: &Shared,
    appliance: &str,
    kind: LatestKind,
) -> Result<serde_json::Value, ViewError> {
    let id = appliance.to_owned();
    let (kept, counts) = store::blocking(store, move |s| {
        Ok((s.latest(&id, kind)?, s.report_counts(&id)?))
    })
    .await?;
    let Some(kept) = kept else {
        if counts == store::ReportCounts::default() {
            return Err(ViewError::UnknownAppliance(appliance.to_owned()));
        }
        return Err(ViewError::NoReport {
            appliance: appliance.to_owned(),
            kind: kind.name(),
        });
    };
    let mut value: serde_json::Value = serde_json::from_str(&kept.json)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("received_at".to_owned(), kept.received_at.into());
    }
    Ok(value)
}

/// `GET /v1/appliances/{id}/popularity`.
pub async fn popularity(
    store: &Shared,
    appliance: &str,
) -> Result<store::PopularityTotals, ViewError> {
    let id = appliance.to_owned();
    let (totals, counts) = store::blocking(store, move |s| {
        Ok((s.popularity(&id)?, s.report_counts(&id)?))
    })
    .await?;
    if counts == store::ReportCounts::default() {
        return Err(ViewError::UnknownAppliance(appliance.to_owned()));
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn tokens() -> Tokens {
        let parsed = crate::options::parse_report_tokens(&["oca-1=0123456789abcdef".to_owned()]);
        Tokens::new(&parsed.unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn only_the_appliances_own_bearer_token_passes() {
        let t = tokens();
        assert!(t.allows("oca-1", Some(b"Bearer 0123456789abcdef")));
        assert!(t.allows("oca-1", Some(b"bearer  0123456789abcdef ")));
        assert!(!t.allows("oca-1", Some(b"Bearer 0123456789abcdeF")));
        assert!(!t.allows("oca-1", Some(b"Bearer 0123456789abcde")));
        assert!(!t.allows("oca-1", Some(b"Basic 0123456789abcdef")));
        assert!(!t.allows("oca-1", Some(b"0123456789abcdef")));
        assert!(!t.allows("oca-1", Some(b"Bearer ")));
        assert!(!t.allows("oca-1", None));
        assert!(
            !t.allows("oca-2", Some(b"Bearer 0123456789abcdef")),
            "another appliance, no token configured"
        );
        assert!(!format!("{t:?}").contains("0123"));
    }

    #[test]
    fn checks_run_in_order_version_then_shape_then_appliance() {
        let health = |version: &str, appliance: &str| {
            format!(
                r#"{{"kind":"health","version":"{version}","appliance":"{appliance}","sent_at":1,
                "software":"eddy","serving":true,"disks":[],"connections_open":0,"requests_total":0,
                "bytes_total":0,"throughput_bps":0,"load1":0.5,"generation":null,"new":[1]}}"#
            )
        };
        assert!(matches!(
            check(health("1.3", "oca-1").as_bytes(), "oca-1"),
            Ok(Report::Health(_))
        ));
        assert_eq!(
            check(health("2.0", "oca-1").as_bytes(), "oca-1").map_err(|e| e.code()),
            Err("version")
        );
        assert_eq!(
            check(br#"{"version":"2.0","kind":"future"}"#, "oca-1").map_err(|e| e.code()),
            Err("version"),
            "a newer major is a version refusal whatever its shape"
        );
        assert_eq!(
            check(health("1.0", "oca-2").as_bytes(), "oca-1").map_err(|e| e.code()),
            Err("bad_report")
        );
        for bad in [
            &b"not json"[..],
            br#"{"version":"1.0","kind":"gossip"}"#,
            b"{}",
        ] {
            assert_eq!(check(bad, "oca-1").map_err(|e| e.code()), Err("bad_report"));
        }
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_refused_declared_or_not() {
        let big = Bytes::from(vec![b' '; MAX_BODY + 1]);
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, (MAX_BODY + 1).into());
        let r = read_body(&declared, Full::new(Bytes::new()), MAX_BODY, BODY_DEADLINE).await;
        assert_eq!(r, Err(Refusal::TooLarge), "refused from the header alone");
        let r = read_body(&HeaderMap::new(), Full::new(big), MAX_BODY, BODY_DEADLINE).await;
        assert_eq!(r, Err(Refusal::TooLarge), "refused while reading");
        let exact = Bytes::from(vec![b' '; MAX_BODY]);
        let r = read_body(&HeaderMap::new(), Full::new(exact), MAX_BODY, BODY_DEADLINE).await;
        assert_eq!(r.map(|b| b.len()), Ok(MAX_BODY));
    }

    /// The examples of `docs/protocol.md` ("Reports, version 1.0") are reports
    /// this build accepts, one of each kind.
    #[test]
    fn the_protocol_examples_are_accepted() {
        let doc = include_str!("../../docs/protocol.md");
        let start = doc.find("## Reports, version 1.0").unwrap_or(0);
        let end = doc[start + 3..]
            .find("\n## ")
            .map_or(doc.len(), |e| start + 3 + e);
        let section = &doc[start..end];
        let mut kinds = Vec::new();
        for block in section.split("```json\n").skip(1) {
            let json = block.split("```").next().unwrap_or("");
            match check(json.as_bytes(), "oca-1") {
                Ok(r) => kinds.push(r.kind()),
                Err(e) => panic!("{e}: {json}"),
            }
        }
        assert_eq!(kinds, ["health", "popularity", "inventory"]);
    }

    /// A body that never yields a frame.
    struct Pending;

    impl http_body::Body for Pending {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_ends_times_out() {
        let r = read_body(&HeaderMap::new(), Pending, MAX_BODY, BODY_DEADLINE).await;
        assert_eq!(r, Err(Refusal::Timeout));
    }
}
