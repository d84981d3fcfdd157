//! From a parsed request to a [`Plan`]: the steps every transport shares
//! (plain HTTP/1.1, HTTPS, HTTP/2), so that there is one copy of the rules.
//!
//! Owns: the order of those steps (CORS preflight, method, route, signed-URL
//! check in the query or the path form, store lookup, freshness, planning,
//! CORS fields) and turning their failures into error plans. The token is
//! checked before the store is asked, so a refused client learns nothing about
//! what the store holds. It must not touch a socket or know a wire format: a
//! transport hands it an [`Ask`] and carries out the [`Answer`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use super::metrics::RangeKind;
use super::plan::cors;
use super::plan::fields::Fields;
use super::plan::range::RangeLimits;
use super::plan::respond::{
    self, Method, ObjectFields, ObjectMeta, Plan, RequestFacts, ServeError,
};
use super::plan::route;
use super::Shared;
use crate::clock::unix_secs;
use crate::store::{OpenObject, StoreError};
use eddy_proto::token;

static BOUNDARY_SEQ: AtomicU64 = AtomicU64::new(0);

/// A request as the planner needs it, whatever the transport.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The method token, as sent.
    pub method: &'a str,
    /// The request-target: origin form (`/path?query`) or absolute form.
    pub target: &'a [u8],
    /// Range and the preconditions.
    pub fields: &'a Fields<'a>,
}

/// What differs between listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Refuse requests without a valid signed URL (403).
    pub require_tokens: bool,
    /// Apply the `[cors]` rules (`serve.cors`, `tls.cors`).
    pub cors: bool,
}

/// The decided response, and the open object its body reads from.
#[derive(Debug)]
pub struct Answer {
    pub plan: Plan,
    pub object: Option<Arc<OpenObject>>,
}

/// Plans the answer to `ask` from `peer` at `now` (one instant per request:
/// token expiry, the If-Range age rule and the Date header all see it).
pub fn answer(
    shared: &Shared,
    policy: Policy,
    peer: IpAddr,
    ask: &Ask<'_>,
    now: SystemTime,
) -> Answer {
    let answer = plan_answer(shared, policy, peer, ask, now);
    if let Some(log) = &shared.access_log {
        let body = if ask.method == "HEAD" {
            0
        } else {
            answer.plan.content_length
        };
        log.record(now, peer, ask.method, ask.target, answer.plan.status, body);
    }
    answer
}

fn plan_answer(
    shared: &Shared,
    policy: Policy,
    peer: IpAddr,
    ask: &Ask<'_>,
    now: SystemTime,
) -> Answer {
    let cors = shared.cors.as_ref().filter(|_| policy.cors);
    let Some(cors) = cors else {
        return plan_plain(shared, policy, peer, ask, now);
    };
    if cors::is_preflight(ask.method, ask.fields) {
        if let Some(fields) = cors.preflight(ask.fields) {
            shared.metrics.preflight(true);
            return Answer {
                plan: respond::preflight(fields),
                object: None,
            };
        }
        // A refused preflight is answered as with CORS off, and without CORS
        // fields: the browser then refuses the request it wanted to send.
        shared.metrics.preflight(false);
        return plan_plain(shared, policy, peer, ask, now);
    }
    let mut answer = plan_plain(shared, policy, peer, ask, now);
    if ask.method != "OPTIONS" {
        cors.decorate(ask.fields.origin(), &mut answer.plan.headers);
    }
    answer
}

/// The answer as without CORS.
fn plan_plain(
    shared: &Shared,
    policy: Policy,
    peer: IpAddr,
    ask: &Ask<'_>,
    now: SystemTime,
) -> Answer {
    match plan_object(shared, policy, peer, ask, now) {
        Ok((plan, object)) => Answer {
            plan,
            object: Some(object),
        },
        Err(err) => {
            match &err {
                ServeError::Internal(why) => tracing::error!(%why, "request failed"),
                ServeError::Forbidden(denied) => {
                    shared.metrics.token_refused(*denied);
                    tracing::debug!(reason = denied.label(), %peer, "token refused")
                }
                _ => {}
            }
            Answer {
                plan: respond::error(&err),
                object: None,
            }
        }
    }
}

fn plan_object(
    shared: &Shared,
    policy: Policy,
    peer: IpAddr,
    ask: &Ask<'_>,
    now: SystemTime,
) -> Result<(Plan, Arc<OpenObject>), ServeError> {
    let method = Method::parse(ask.method);
    match method {
        Method::Get | Method::Head => {}
        Method::NotAllowed => return Err(ServeError::MethodNotAllowed),
        Method::Unknown => return Err(ServeError::NotImplemented),
    }
    let target = route::route(ask.target)?;
    // The planner takes the time as a value: whole seconds.
    let secs = unix_secs(now);
    if policy.require_tokens {
        // The token covers the object's path; the `/range/` form asks for a
        // part of that object and is covered by the same token. A path token
        // decides alone (the query's parameters are then ignored).
        let path = format!("/{}", target.key);
        shared.live.with(|live| match &target.path_token {
            Some(segment) => token::verify_path(&live.tokens.keys, segment, &path, peer, secs),
            None => token::verify(
                &live.tokens.keys,
                &live.tokens.names,
                &path,
                target.query.as_deref(),
                peer,
                secs,
            ),
        })?;
    }
    let object = shared
        .store
        .object(&target.key, std::time::Instant::now())
        .map_err(|e| match e {
            StoreError::NotFound => {
                shared.metrics.content_miss();
                ServeError::NotFound
            }
            // A 404 like any miss, counted as a health miss: steering sends
            // the player to another appliance.
            StoreError::DiskFailed => {
                shared.metrics.health_miss();
                match &shared.failed_redirect {
                    // The same target (path token and query included) at
                    // the fallback, which checks the token as eddy would.
                    Some(base) => ServeError::Elsewhere(fallback_url(base, ask.target, &target)),
                    None => ServeError::NotFound,
                }
            }
            other => ServeError::Internal(other.to_string()),
        })?;
    let facts = RequestFacts {
        head_only: method == Method::Head,
        range: ask.fields.range.as_deref(),
        conditions: &ask.fields.conditions,
        path_range: target.path_range,
    };
    let key: &str = &target.key;
    // Rendered once per open object and kept with it; a copy made here only
    // if the object somehow keeps another type.
    let make = || ObjectFields::new(key, &object.etag, unix_secs(object.modified));
    let made;
    let fields = match object.derived(make) {
        Some(kept) => kept,
        None => {
            made = make();
            &made
        }
    };
    let meta = ObjectMeta {
        len: object.len,
        fields,
        cache_control: shared.cache_control.for_object(key, fields.content_type),
    };
    let limits = shared.live.with(|live| RangeLimits {
        max_ranges: live.limits.max_ranges,
        max_sum_percent: live.limits.max_range_sum_percent,
    });
    let seed = BOUNDARY_SEQ.fetch_add(1, Ordering::Relaxed) ^ shared.boundary_salt;
    let plan = respond::object(&facts, &meta, secs, limits, seed);
    if let Some(kind) = range_kind(&facts, &plan) {
        shared.metrics.range(kind);
    }
    // Popularity: two relaxed adds on the object's own counters.
    let body = match plan.payload {
        respond::Payload::File(_) | respond::Payload::Multipart { .. } if !facts.head_only => {
            plan.content_length
        }
        _ => 0,
    };
    object.counts.record(body);
    Ok((plan, object))
}

/// What became of a request for part of an object, if it asked for one.
fn range_kind(facts: &RequestFacts<'_>, plan: &Plan) -> Option<RangeKind> {
    if facts.path_range.is_some() {
        return Some(RangeKind::Path);
    }
    facts.range?;
    Some(match (plan.status, &plan.payload) {
        (206, respond::Payload::Multipart { .. }) => RangeKind::Multipart,
        (206, _) => RangeKind::Single,
        (416, _) => RangeKind::Unsatisfiable,
        _ => RangeKind::Ignored,
    })
}

/// Where a request for an object on a failed drive is sent: `base` followed
/// by the request's own origin-form target (path token and query kept), or,
/// for an absolute-form target, the key and query it named.
fn fallback_url(base: &str, raw: &[u8], target: &route::Target<'_>) -> String {
    let base = base.trim_end_matches('/');
    match std::str::from_utf8(raw) {
        Ok(t) if t.starts_with('/') => format!("{base}{t}"),
        _ => {
            let token = target
                .path_token
                .as_ref()
                .map(|t| format!("/t/{t}"))
                .unwrap_or_default();
            let query = target
                .query
                .as_ref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            format!("{base}{token}/{}{query}", target.key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_keeps_the_target_and_its_token() -> Result<(), ServeError> {
        let t = route::route(b"/t/a.bin?e=1&t=k")?;
        assert_eq!(
            fallback_url("https://f.example/", b"/t/a.bin?e=1&t=k", &t),
            "https://f.example/t/a.bin?e=1&t=k"
        );
        let t = route::route(b"http://host/t/a.bin?q=1")?;
        assert_eq!(
            fallback_url("https://f.example", b"http://host/t/a.bin?q=1", &t),
            "https://f.example/t/a.bin?q=1"
        );
        Ok(())
    }
}
