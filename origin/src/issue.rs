//! Issuing manifests: the catalogue and the content directory as they are
//! now, turned into a signed v1 manifest for one appliance.
//!
//! Owns: re-reading the catalogue file and the directory on every manifest
//! request (a catalogue that no longer parses is logged and the last good one
//! kept), the generation rule ([`Generation`]: it starts at the configured
//! value and goes up by one exactly when the catalogue's manifest content —
//! objects, sizes, digests, ranks, appliances, sources — changes), building
//! the [`Manifest`] and sealing it with `eddy_proto::manifest::seal`,
//! recording every manifest (and so the generation) in the [`crate::store`]
//! before it is handed out, resuming from the store's last generation at
//! start, and carrying out the manifest faults. It must never serve content,
//! and never hand out a manifest whose generation is lower than one it issued
//! before, in this process or an earlier one over the same database.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use eddy_proto::manifest::{self, Entry, Manifest};
use eddy_proto::wire::SignKey;
use eddy_proto::{Digest, ObjectKey};
use sha2::Digest as _;

use crate::catalogue::{Catalogue, CatalogueError, Listed};
use crate::content::{self, Content, ContentError};
use crate::fault::{Faults, ManifestFault};
use crate::sources;
use crate::store::{self, GenerationMark, ManifestIssued, Shared, StoreError};

/// Where the first generation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `--generation-start N`.
    Given(u64),
    /// The unix time at start (the default).
    Clock(u64),
}

impl Start {
    fn value(self) -> u64 {
        match self {
            Start::Given(n) | Start::Clock(n) => n,
        }
    }
}

/// The generation of the catalogue: monotonic, bumped by content changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    start: Start,
    now: Option<(u64, [u8; 32])>,
    /// The next observation is the first after a resume.
    resumed: bool,
}

impl Generation {
    /// A generation that will start at `start`.
    pub fn new(start: u64) -> Generation {
        Generation::resume(Start::Given(start), None)
    }

    /// A generation that goes on from `last`, the highest one a previous run
    /// issued: unchanged content keeps it (or jumps to a given start above
    /// it); changed content gets one more, or the start when that is higher.
    /// It never goes below `last`.
    pub fn resume(start: Start, last: Option<GenerationMark>) -> Generation {
        Generation {
            start,
            now: last.map(|m| (m.generation, m.fingerprint)),
            resumed: last.is_some(),
        }
    }

    /// The generation for content with this fingerprint: the same as before
    /// when the fingerprint is the same, one more when it changed.
    pub fn observe(&mut self, fingerprint: [u8; 32]) -> u64 {
        let next = match (self.now, std::mem::take(&mut self.resumed)) {
            (None, _) => self.start.value(),
            (Some((g, f)), false) if f == fingerprint => g,
            (Some((g, _)), false) => g.saturating_add(1),
            (Some((g, f)), true) if f == fingerprint => match self.start {
                Start::Given(n) => g.max(n),
                Start::Clock(_) => g,
            },
            (Some((g, _)), true) => g.saturating_add(1).max(self.start.value()),
        };
        self.now = Some((next, fingerprint));
        next
    }
}

/// One catalogued object, present, with its facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub listed: Listed,
    pub size: u64,
    pub sha256: Digest,
}

/// The fingerprint of the manifest content of a whole catalogue: the same
/// value exactly when every manifest it yields would list the same objects.
pub fn fingerprint(items: &[Resolved], bases: &[String]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for base in bases {
        h.update(base.as_bytes());
        h.update([0]);
    }
    h.update([1]);
    for r in items {
        h.update(r.listed.key.as_str().as_bytes());
        h.update([0]);
        h.update(r.size.to_be_bytes());
        h.update(r.sha256.0);
        h.update(r.listed.rank.to_be_bytes());
        match &r.listed.appliances {
            None => h.update([0]),
            Some(set) => {
                h.update([1]);
                for a in set {
                    h.update(a.as_bytes());
                    h.update([0]);
                }
            }
        }
        h.update([2]);
    }
    h.finalize().into()
}

/// Why a manifest could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("appliance {0:?} is not in the catalogue")]
    UnknownAppliance(String),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("{}: {source}", path.display())]
    Catalogue {
        path: PathBuf,
        source: CatalogueError,
    },
    #[error("{}: {source}", path.display())]
    CatalogueIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not serialise the manifest: {0}")]
    Serialise(#[from] serde_json::Error),
    #[error("could not record the manifest: {0}")]
    Store(#[from] StoreError),
}

/// What the issuer is configured with.
#[derive(Debug)]
pub struct Config {
    pub catalogue: Option<PathBuf>,
    /// URL bases in order, each ending in `/`.
    pub sources: Vec<String>,
    pub ttl: Duration,
    pub fill_start: Option<String>,
    pub generation_start: Start,
}

/// A signed manifest ready to send.
#[derive(Debug, Clone)]
pub struct Issued {
    pub body: Vec<u8>,
    pub generation: u64,
    pub objects: usize,
}

#[derive(Debug)]
struct State {
    /// The last catalogue file that parsed; `None` without a file.
    catalogue: Option<Catalogue>,
    generation: Generation,
}

/// Issues manifests. One issue runs at a time, so generations are ordered.
#[derive(Debug)]
pub struct Issuer {
    content: Arc<Content>,
    store: Shared,
    key: SignKey,
    config: Config,
    state: tokio::sync::Mutex<State>,
}

/// Reads and checks a catalogue file.
pub fn read_catalogue(path: &std::path::Path) -> Result<Catalogue, IssueError> {
    let text = std::fs::read_to_string(path).map_err(|source| IssueError::CatalogueIo {
        path: path.to_owned(),
        source,
    })?;
    Catalogue::parse(&text).map_err(|source| IssueError::Catalogue {
        path: path.to_owned(),
        source,
    })
}

impl Issuer {
    /// An issuer that records what it issues in `store` and goes on from
    /// `last`, the store's last generation; the catalogue file, when
    /// configured, must be readable and valid now.
    pub fn new(
        content: Arc<Content>,
        store: Shared,
        last: Option<GenerationMark>,
        key: SignKey,
        config: Config,
    ) -> Result<Issuer, IssueError> {
        let catalogue = match &config.catalogue {
            Some(path) => Some(read_catalogue(path)?),
            None => None,
        };
        Ok(Issuer {
            content,
            store,
            key,
            state: tokio::sync::Mutex::new(State {
                catalogue,
                generation: Generation::resume(config.generation_start, last),
            }),
            config,
        })
    }

    /// A signed manifest for `appliance` at unix time `now`, with the
    /// manifest fault of `faults` (test-only), if any, carried out. A fault
    /// is taken only once the appliance is known.
    pub async fn issue(
        &self,
        appliance: &str,
        now: u64,
        faults: &Faults,
    ) -> Result<Issued, IssueError> {
        let mut state = self.state.lock().await;
        let catalogue_path = self.config.catalogue.clone();
        let (keys, reread) = content::blocking(&self.content, move |c| {
            let reread = catalogue_path.as_deref().map(read_catalogue);
            Ok((c.scan()?, reread))
        })
        .await?;
        match reread {
            Some(Ok(c)) => state.catalogue = Some(c),
            Some(Err(e)) => tracing::warn!("keeping the last good catalogue: {e}"),
            None => {}
        }
        let catalogue = match &state.catalogue {
            Some(c) => c.clone(),
            None => Catalogue::everything(&keys),
        };
        if !catalogue.knows(appliance) {
            return Err(IssueError::UnknownAppliance(appliance.to_owned()));
        }
        let (listed, absent) = catalogue.select(|k| keys.contains(k));
        if !absent.is_empty() {
            tracing::warn!(
                absent = absent.len(),
                first = %absent[0],
                "catalogued objects missing from the content directory are left out"
            );
        }
        let items = content::blocking(&self.content, move |c| resolve(c, listed, &keys)).await?;
        let fingerprint = fingerprint(&items, &self.config.sources);
        let generation = state.generation.observe(fingerprint);
        // Recorded before it is handed out, and under the lock, so that the
        // kept generation is the highest one anybody was given.
        let record = ManifestIssued {
            appliance: appliance.to_owned(),
            generation,
            fingerprint,
            issued_at: now,
            objects: items.iter().filter(|r| r.listed.is_for(appliance)).count() as u64,
        };
        store::blocking(&self.store, move |s| s.put_manifest(&record)).await?;
        drop(state);
        let fault = faults.manifest();

        let mut m = Manifest {
            version: manifest::VERSION.to_owned(),
            appliance: appliance.to_owned(),
            generation,
            issued_at: now,
            expires_at: now.saturating_add(self.config.ttl.as_secs()),
            fill_start: self.config.fill_start.clone(),
            objects: items
                .iter()
                .filter(|r| r.listed.is_for(appliance))
                .map(|r| Entry {
                    key: r.listed.key.clone(),
                    size: r.size,
                    sha256: r.sha256,
                    rank: r.listed.rank,
                    sources: sources::urls(&self.config.sources, &r.listed.key),
                })
                .collect(),
        };
        if let Some(ManifestFault::Appliance(other)) = &fault {
            m.appliance = other.clone();
        }
        let mut body = manifest::seal(&m, &self.key)?;
        if fault == Some(ManifestFault::Tamper) {
            tamper(&mut body);
        }
        Ok(Issued {
            body,
            generation,
            objects: m.objects.len(),
        })
    }
}

/// Opens and hashes each listed object (blocking); one that vanished since
/// the scan is left out.
fn resolve(
    content: &Content,
    listed: Vec<Listed>,
    present: &BTreeSet<ObjectKey>,
) -> Result<Vec<Resolved>, ContentError> {
    let mut out = Vec::with_capacity(listed.len());
    for l in listed {
        let opened = match content.open_object(&l.key) {
            Ok(o) => o,
            Err(ContentError::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let sha256 = content.digest(&l.key, &opened)?;
        out.push(Resolved {
            size: opened.id.len,
            sha256,
            listed: l,
        });
    }
    content.forget_except(present);
    Ok(out)
}

/// Flips one byte in the middle of a sealed body (after the signature line).
pub fn tamper(sealed: &mut [u8]) {
    let start = sealed.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
    let at = start + (sealed.len().saturating_sub(start)) / 2;
    if let Some(b) = sealed.get_mut(at) {
        *b ^= 0x01;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, rank: u32, byte: u8) -> Resolved {
        Resolved {
            listed: Listed {
                key: ObjectKey::parse(key).unwrap_or_else(|e| panic!("{e}")),
                rank,
                appliances: None,
            },
            size: 10,
            sha256: Digest([byte; 32]),
        }
    }

    #[test]
    fn the_generation_moves_exactly_when_the_content_changes() {
        let bases = vec!["http://o/content/".to_owned()];
        let a = vec![item("a", 1, 1), item("b", 2, 2)];
        let mut g = Generation::new(100);
        assert_eq!(g.observe(fingerprint(&a, &bases)), 100);
        assert_eq!(g.observe(fingerprint(&a, &bases)), 100, "same content");
        let dropped = vec![item("a", 1, 1)];
        assert_eq!(g.observe(fingerprint(&dropped, &bases)), 101);
        assert_eq!(
            g.observe(fingerprint(&a, &bases)),
            102,
            "back is a change too"
        );
        let rehashed = vec![item("a", 1, 1), item("b", 2, 3)];
        assert_eq!(g.observe(fingerprint(&rehashed, &bases)), 103);
        let reranked = vec![item("a", 2, 1), item("b", 2, 3)];
        assert_eq!(g.observe(fingerprint(&reranked, &bases)), 104);
        let other = vec!["http://p/".to_owned()];
        assert_eq!(g.observe(fingerprint(&reranked, &other)), 105);
        let mut only = reranked.clone();
        only[0].listed.appliances = Some(["oca-1".to_owned()].into());
        assert_eq!(g.observe(fingerprint(&only, &other)), 106);
        assert_eq!(g.observe(fingerprint(&only, &other)), 106);
    }

    #[test]
    fn a_resumed_generation_never_goes_below_the_last_one() {
        let last = Some(GenerationMark {
            generation: 500,
            fingerprint: [1; 32],
        });
        let same = [1; 32];
        let other = [2; 32];
        // Unchanged content keeps the generation, whatever the clock says.
        let mut g = Generation::resume(Start::Clock(900), last);
        assert_eq!(g.observe(same), 500);
        assert_eq!(g.observe(other), 501, "then the ordinary rule");
        // Changed content: one more, or the clock when later.
        assert_eq!(
            Generation::resume(Start::Clock(100), last).observe(other),
            501
        );
        assert_eq!(
            Generation::resume(Start::Clock(900), last).observe(other),
            900
        );
        // A given start below the last one is not obeyed; above it, it is.
        assert_eq!(Generation::resume(Start::Given(7), last).observe(same), 500);
        assert_eq!(
            Generation::resume(Start::Given(7), last).observe(other),
            501
        );
        assert_eq!(
            Generation::resume(Start::Given(800), last).observe(same),
            800
        );
        // Nothing kept: the start, as before.
        assert_eq!(Generation::resume(Start::Given(7), None).observe(same), 7);
    }

    #[test]
    fn fingerprints_do_not_confuse_neighbouring_fields() {
        let bases: Vec<String> = Vec::new();
        assert_ne!(
            fingerprint(&[item("ab", 1, 1)], &bases),
            fingerprint(&[item("a", 1, 1)], &bases)
        );
        assert_ne!(
            fingerprint(&[], &["http://a/".to_owned()]),
            fingerprint(&[], &[])
        );
    }

    #[test]
    fn tampering_changes_one_body_byte() {
        let mut sealed = b"sig line\n{\"a\":1}".to_vec();
        let orig = sealed.clone();
        tamper(&mut sealed);
        let diff: Vec<usize> = (0..sealed.len())
            .filter(|&i| sealed[i] != orig[i])
            .collect();
        assert_eq!(diff.len(), 1);
        assert!(diff[0] > 8);
    }
}
