//! The fill manifest, protocol v1: what one appliance must hold, signed by
//! the control plane.
//!
//! Owns: the message ([`Manifest`], [`Entry`]), the checks an appliance runs
//! on a fetched manifest in a fixed order (signature over the exact bytes
//! first, then version, appliance, expiry, generation, then every entry), and
//! the fixed reason of every refusal ([`Refusal::label`], a metric label).
//! It is pure: the caller passes the time, its id and the generation it
//! holds. It must never accept a manifest it could not verify, and never
//! decide what to download (that is `eddy-fill`'s plan).

use std::collections::HashSet;

use crate::digest::Digest;
use crate::key::ObjectKey;
use crate::wire::{self, SealError, SignKey, VerifyKey};

/// The major version this build speaks.
pub const MAJOR: u32 = 1;
/// The version this build writes.
pub const VERSION: &str = "1.0";
/// The signature context of a manifest envelope.
pub const SIGNATURE_CONTEXT: &[u8] = b"eddy-manifest-v1";
/// How far in the future `issued_at` may be (clock skew between the control
/// plane and the appliance) before the manifest is refused as not yet valid.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// A fill manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// `MAJOR.MINOR`, see [`wire::check_version`].
    pub version: String,
    /// The appliance this manifest is for.
    pub appliance: String,
    /// Monotonic per appliance: an older one is refused.
    pub generation: u64,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; refused after this instant.
    pub expires_at: u64,
    /// The site's fill start, `HH:MM` in the appliance's local time, so that
    /// every appliance of a site starts together; `None` keeps the configured
    /// window's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_start: Option<String>,
    /// What the appliance must hold.
    pub objects: Vec<Entry>,
}

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub key: ObjectKey,
    /// Length in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: Digest,
    /// Popularity rank, 1 = most popular; fills go in rank order.
    pub rank: u32,
    /// `http://` or `https://` URLs of servers that honour `Range`, in order
    /// of preference.
    pub sources: Vec<String>,
}

/// Why a manifest was refused. Nothing on disk changes for any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("the manifest is not valid JSON of version 1: {0}")]
    Malformed(String),
    #[error(transparent)]
    Version(#[from] wire::VersionError),
    #[error("the manifest is for appliance {got:?}, this is {want:?}")]
    OtherAppliance { got: String, want: String },
    #[error("the manifest expired at {expires_at} (now {now})")]
    Expired { expires_at: u64, now: u64 },
    #[error(
        "the manifest was issued at {issued_at}, later than now ({now}) beyond the allowed skew"
    )]
    NotYetValid { issued_at: u64, now: u64 },
    #[error("generation {got} is older than the generation held, {held}")]
    OlderGeneration { got: u64, held: u64 },
    #[error("object {index} ({key}): {reason}")]
    BadEntry {
        index: usize,
        key: String,
        reason: String,
    },
    #[error("fill_start {0:?} is not HH:MM")]
    BadFillStart(String),
}

impl Refusal {
    /// A fixed label per kind, for metrics and structured logs.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Seal(SealError::Unsigned) => "unsigned",
            Refusal::Seal(SealError::MalformedSignature) => "malformed_signature",
            Refusal::Seal(SealError::UnknownKey(_)) => "unknown_key",
            Refusal::Seal(SealError::BadSignature) => "bad_signature",
            Refusal::Malformed(_) => "malformed",
            Refusal::Version(_) => "version",
            Refusal::OtherAppliance { .. } => "other_appliance",
            Refusal::Expired { .. } => "expired",
            Refusal::NotYetValid { .. } => "not_yet_valid",
            Refusal::OlderGeneration { .. } => "older_generation",
            Refusal::BadEntry { .. } => "bad_entry",
            Refusal::BadFillStart(_) => "bad_fill_start",
        }
    }

    /// Every label, for declaring the metric's label set up front.
    pub const LABELS: [&'static str; 12] = [
        "unsigned",
        "malformed_signature",
        "unknown_key",
        "bad_signature",
        "malformed",
        "version",
        "other_appliance",
        "expired",
        "not_yet_valid",
        "older_generation",
        "bad_entry",
        "bad_fill_start",
    ];
}

/// What the appliance knows when it checks a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect<'a> {
    pub appliance: &'a str,
    /// The generation of the manifest it holds now, if any. The same
    /// generation is accepted again (a restart re-reads it).
    pub held_generation: Option<u64>,
    /// Unix seconds.
    pub now: u64,
}

/// Verifies and parses a signed manifest. The order is fixed: the signature
/// over the exact bytes, then parsing, version, appliance, time, generation,
/// and every entry.
pub fn check(sealed: &[u8], keys: &[VerifyKey], expect: &Expect<'_>) -> Result<Manifest, Refusal> {
    let m = open_and_parse(sealed, keys, expect.appliance)?;
    if expect.now >= m.expires_at {
        return Err(Refusal::Expired {
            expires_at: m.expires_at,
            now: expect.now,
        });
    }
    if m.issued_at > expect.now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(Refusal::NotYetValid {
            issued_at: m.issued_at,
            now: expect.now,
        });
    }
    if let Some(held) = expect.held_generation {
        if m.generation < held {
            return Err(Refusal::OlderGeneration {
                got: m.generation,
                held,
            });
        }
    }
    check_entries(&m)?;
    Ok(m)
}

/// Checks a manifest the appliance saved itself (after [`check`] accepted
/// it): everything but time and generation, which are judged when it is
/// used. It tells a restarted appliance which generation it holds.
pub fn check_saved(
    sealed: &[u8],
    keys: &[VerifyKey],
    appliance: &str,
) -> Result<Manifest, Refusal> {
    let m = open_and_parse(sealed, keys, appliance)?;
    check_entries(&m)?;
    Ok(m)
}

fn open_and_parse(sealed: &[u8], keys: &[VerifyKey], appliance: &str) -> Result<Manifest, Refusal> {
    let body = wire::open(SIGNATURE_CONTEXT, sealed, keys)?;
    // Version first, from a minimal view, so that a future major with another
    // shape is refused as a version, not as malformed.
    #[derive(serde::Deserialize)]
    struct Head {
        version: String,
    }
    let head: Head = serde_json::from_slice(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    wire::check_version(&head.version, MAJOR)?;
    let m: Manifest =
        serde_json::from_slice(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if m.appliance != appliance {
        return Err(Refusal::OtherAppliance {
            got: m.appliance,
            want: appliance.to_owned(),
        });
    }
    Ok(m)
}

fn check_entries(m: &Manifest) -> Result<(), Refusal> {
    if let Some(start) = &m.fill_start {
        if parse_hhmm(start).is_none() {
            return Err(Refusal::BadFillStart(start.clone()));
        }
    }
    let mut seen = HashSet::new();
    for (index, e) in m.objects.iter().enumerate() {
        let bad = |reason: &str| Refusal::BadEntry {
            index,
            key: e.key.as_str().to_owned(),
            reason: reason.to_owned(),
        };
        if !seen.insert(e.key.as_str()) {
            return Err(bad("the key appears twice"));
        }
        if e.sources.is_empty() {
            return Err(bad("no source"));
        }
        if let Some(s) = e.sources.iter().find(|s| !is_http_url(s)) {
            return Err(bad(&format!(
                "source {s:?} is not an http:// or https:// URL"
            )));
        }
    }
    Ok(())
}

/// Signs a manifest: the control plane's side of [`check`].
pub fn seal(manifest: &Manifest, key: &SignKey) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_vec_pretty(manifest)?;
    Ok(key.seal(SIGNATURE_CONTEXT, &body))
}

/// Minutes after midnight of `HH:MM` (00:00 to 23:59).
pub fn parse_hhmm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !s.chars().any(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::test_key;
    use proptest::prelude::*;

    fn entry(key: &str, rank: u32) -> Entry {
        Entry {
            key: ObjectKey::parse(key).unwrap_or_else(|e| panic!("{e}")),
            size: 10,
            sha256: Digest([rank as u8; 32]),
            rank,
            sources: vec![format!("http://127.0.0.1:9/{key}")],
        }
    }

    fn manifest(generation: u64) -> Manifest {
        Manifest {
            version: VERSION.into(),
            appliance: "oca-1".into(),
            generation,
            issued_at: 1_000,
            expires_at: 2_000,
            fill_start: Some("02:00".into()),
            objects: vec![entry("a/1.mp4", 1), entry("a/2.mp4", 2)],
        }
    }

    fn expect(held: Option<u64>, now: u64) -> Expect<'static> {
        Expect {
            appliance: "oca-1",
            held_generation: held,
            now,
        }
    }

    fn sealed(m: &Manifest) -> Vec<u8> {
        seal(m, &test_key(7)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn label(r: Result<Manifest, Refusal>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.label(),
        }
    }

    #[test]
    fn a_good_manifest_is_accepted_and_round_trips() -> Result<(), Refusal> {
        let key = test_key(7);
        let m = manifest(5);
        assert_eq!(
            check(
                &sealed(&m),
                &[key.public().clone()],
                &expect(Some(5), 1_500)
            )?,
            m
        );
        assert_eq!(
            check(&sealed(&m), &[key.public().clone()], &expect(None, 1_500))?,
            m
        );
        Ok(())
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let keys = [test_key(7).public().clone()];
        let m = manifest(5);
        assert_eq!(
            label(check(
                &serde_json::to_vec(&m).unwrap_or_default(),
                &keys,
                &expect(None, 1_500)
            )),
            "unsigned"
        );
        assert_eq!(
            label(check(
                &sealed(&m),
                &[test_key(8).public().clone()],
                &expect(None, 1_500)
            )),
            "unknown_key"
        );
        let mut tampered = sealed(&m);
        let at = tampered.len() - 20;
        tampered[at] ^= 1;
        assert_eq!(
            label(check(&tampered, &keys, &expect(None, 1_500))),
            "bad_signature"
        );
        assert_eq!(
            label(check(&sealed(&m), &keys, &expect(None, 2_000))),
            "expired"
        );
        assert_eq!(
            label(check(
                &sealed(&m),
                &keys,
                &expect(None, 1_000 - MAX_CLOCK_SKEW_SECS - 1)
            )),
            "not_yet_valid"
        );
        assert_eq!(
            label(check(&sealed(&m), &keys, &expect(Some(6), 1_500))),
            "older_generation"
        );
        let other = Manifest {
            appliance: "oca-2".into(),
            ..m.clone()
        };
        assert_eq!(
            label(check(&sealed(&other), &keys, &expect(None, 1_500))),
            "other_appliance"
        );
        let v2 = Manifest {
            version: "2.0".into(),
            ..m.clone()
        };
        assert_eq!(
            label(check(&sealed(&v2), &keys, &expect(None, 1_500))),
            "version"
        );
        let mut dup = m.clone();
        dup.objects.push(entry("a/1.mp4", 3));
        assert_eq!(
            label(check(&sealed(&dup), &keys, &expect(None, 1_500))),
            "bad_entry"
        );
        let mut file_url = m.clone();
        file_url.objects[0].sources = vec!["file:///etc/passwd".into()];
        assert_eq!(
            label(check(&sealed(&file_url), &keys, &expect(None, 1_500))),
            "bad_entry"
        );
        let start = Manifest {
            fill_start: Some("25:00".into()),
            ..m.clone()
        };
        assert_eq!(
            label(check(&sealed(&start), &keys, &expect(None, 1_500))),
            "bad_fill_start"
        );
        let bad_key = key_with_body(br#"{"version":"1.0","appliance":"oca-1","generation":1,"issued_at":1,"expires_at":9999,"objects":[{"key":"../x","size":1,"sha256":"00","rank":1,"sources":["http://a/x"]}]}"#);
        assert_eq!(
            label(check(&bad_key, &keys, &expect(None, 1_500))),
            "malformed"
        );
    }

    fn key_with_body(body: &[u8]) -> Vec<u8> {
        test_key(7).seal(SIGNATURE_CONTEXT, body)
    }

    #[test]
    fn unknown_fields_are_ignored_and_a_new_minor_is_accepted() -> Result<(), Refusal> {
        let body = br#"{"version":"1.3","appliance":"oca-1","generation":1,"issued_at":1,"expires_at":9999,"future":{"x":1},
            "objects":[{"key":"a","size":1,"sha256":"0000000000000000000000000000000000000000000000000000000000000000","rank":1,"sources":["https://o/a"],"codec":"av1"}]}"#;
        let m = check(
            &key_with_body(body),
            &[test_key(7).public().clone()],
            &expect(None, 1_500),
        )?;
        assert_eq!(m.objects.len(), 1);
        assert_eq!(m.fill_start, None);
        Ok(())
    }

    #[test]
    fn a_saved_manifest_is_checked_without_the_clock() -> Result<(), Refusal> {
        let keys = [test_key(7).public().clone()];
        let m = manifest(5);
        assert_eq!(check_saved(&sealed(&m), &keys, "oca-1")?, m);
        assert_eq!(
            label(check_saved(&sealed(&m), &keys, "oca-2")),
            "other_appliance"
        );
        assert_eq!(
            label(check_saved(
                &sealed(&m),
                &[test_key(8).public().clone()],
                "oca-1"
            )),
            "unknown_key"
        );
        Ok(())
    }

    #[test]
    fn every_label_is_declared_once() {
        use crate::wire::VersionError;
        let every = [
            Refusal::Seal(SealError::Unsigned),
            Refusal::Seal(SealError::MalformedSignature),
            Refusal::Seal(SealError::UnknownKey(String::new())),
            Refusal::Seal(SealError::BadSignature),
            Refusal::Malformed(String::new()),
            Refusal::Version(VersionError::Malformed(String::new())),
            Refusal::OtherAppliance {
                got: String::new(),
                want: String::new(),
            },
            Refusal::Expired {
                expires_at: 0,
                now: 0,
            },
            Refusal::NotYetValid {
                issued_at: 0,
                now: 0,
            },
            Refusal::OlderGeneration { got: 0, held: 0 },
            Refusal::BadEntry {
                index: 0,
                key: String::new(),
                reason: String::new(),
            },
            Refusal::BadFillStart(String::new()),
        ];
        let labels: Vec<&str> = every.iter().map(Refusal::label).collect();
        let mut unique = labels.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            labels.len(),
            "two kinds share a label: {labels:?}"
        );
        let mut declared = Refusal::LABELS.to_vec();
        declared.sort_unstable();
        assert_eq!(declared, unique);
    }

    proptest! {
        #[test]
        fn check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let keys = [test_key(7).public().clone()];
            let _ = check(&bytes, &keys, &expect(None, 1_500));
            let _ = check(&key_with_body(&bytes), &keys, &expect(None, 1_500));
        }

        #[test]
        fn hhmm_round_trips(h in 0u32..24, m in 0u32..60) {
            prop_assert_eq!(parse_hhmm(&format!("{h:02}:{m:02}")), Some(h * 60 + m));
        }
    }
}
