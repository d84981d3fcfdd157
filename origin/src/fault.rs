//! The test-only fault mode: chosen objects and manifests answered wrongly.
//!
//! Owns: the `--fault` spec language (`GLOB=KIND[,times=K]`, and
//! `manifest=tamper` / `manifest=appliance:OTHER`), glob matching of object
//! keys (`*` matches any run of characters, `/` included), and which fault
//! applies to a request: the first spec, in command-line order, whose glob
//! matches and whose budget for that key is not spent. `times=K` is counted
//! per spec and per key (the first K content requests of each matching key
//! are faulted, later ones are served correctly). It also counts the faults
//! applied. It must never carry out a fault itself (that is `object` and
//! `issue`), and it exists for tests only: a production control plane runs
//! without any spec.

use std::collections::HashMap;
use std::sync::Mutex;

/// What goes wrong with a content answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentFault {
    /// Headers and this many body bytes, then the connection is closed.
    DropAfter(u64),
    /// One byte of every body chunk flipped.
    Corrupt,
    /// Headers, then nothing, with the connection held open.
    Stall,
    /// This status with an error body instead of the object.
    Status(u16),
}

/// What goes wrong with a manifest answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestFault {
    /// A byte of the signed body flipped after sealing.
    Tamper,
    /// A manifest, correctly signed, naming this other appliance.
    Appliance(String),
}

/// Which answers a spec targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Content { glob: String, fault: ContentFault },
    Manifest(ManifestFault),
}

/// One `--fault` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    /// The value as given, for stats.
    pub text: String,
    pub target: Target,
    /// `None` = every matching request.
    pub times: Option<u64>,
}

/// Parses `GLOB=KIND[,times=K]`.
pub fn parse(text: &str) -> Result<FaultSpec, String> {
    let (left, right) = text
        .split_once('=')
        .ok_or("a fault is GLOB=KIND[,times=K] or manifest=tamper|appliance:ID")?;
    if left.is_empty() {
        return Err("the glob is empty".to_owned());
    }
    let (kind, times) = match right.rsplit_once(",times=") {
        Some((kind, k)) => {
            let k: u64 = k
                .parse()
                .map_err(|_| format!("times={k} is not a whole number"))?;
            if k == 0 {
                return Err("times=0 would never apply".to_owned());
            }
            (kind, Some(k))
        }
        None => (right, None),
    };
    let target = if left == "manifest" {
        Target::Manifest(parse_manifest_kind(kind)?)
    } else {
        Target::Content {
            glob: left.to_owned(),
            fault: parse_content_kind(kind)?,
        }
    };
    Ok(FaultSpec {
        text: text.to_owned(),
        target,
        times,
    })
}

fn parse_content_kind(kind: &str) -> Result<ContentFault, String> {
    if let Some(n) = kind.strip_prefix("drop-after:") {
        return n
            .parse()
            .map(ContentFault::DropAfter)
            .map_err(|_| format!("drop-after:{n}: not a byte count"));
    }
    if let Some(code) = kind.strip_prefix("status:") {
        return match code.parse::<u16>() {
            Ok(c) if (400..=599).contains(&c) => Ok(ContentFault::Status(c)),
            _ => Err(format!("status:{code}: not a status from 400 to 599")),
        };
    }
    match kind {
        "corrupt" => Ok(ContentFault::Corrupt),
        "stall" => Ok(ContentFault::Stall),
        _ => Err(format!(
            "unknown fault {kind:?}: one of drop-after:N, corrupt, stall, status:CODE"
        )),
    }
}

fn parse_manifest_kind(kind: &str) -> Result<ManifestFault, String> {
    if kind == "tamper" {
        return Ok(ManifestFault::Tamper);
    }
    match kind.strip_prefix("appliance:") {
        Some(id) if !id.is_empty() => Ok(ManifestFault::Appliance(id.to_owned())),
        _ => Err(format!(
            "unknown manifest fault {kind:?}: tamper or appliance:ID"
        )),
    }
}

/// Whether `text` matches `glob`, where `*` matches any run of characters
/// (including `/` and none) and every other character matches itself.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let g = glob.as_bytes();
    let t = text.as_bytes();
    let (mut gi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ti));
            gi += 1;
        } else if gi < g.len() && g[gi] == t[ti] {
            gi += 1;
            ti += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}

/// The faults of a running origin and what they have done.
#[derive(Debug, Default)]
pub struct Faults {
    specs: Vec<FaultSpec>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Applications per (spec index, key); manifests use the key "".
    used: HashMap<(usize, String), u64>,
    /// Applications per spec index.
    applied: Vec<u64>,
}

/// A fault spec and how often it was applied, for stats.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub spec: String,
    pub applied: u64,
}

impl Faults {
    pub fn new(specs: Vec<FaultSpec>) -> Faults {
        let applied = vec![0; specs.len()];
        Faults {
            specs,
            state: Mutex::new(State {
                used: HashMap::new(),
                applied,
            }),
        }
    }

    /// The fault for this content request of `key`, counted as applied.
    pub fn content(&self, key: &str) -> Option<ContentFault> {
        self.take(
            |t| match t {
                Target::Content { glob, fault } if glob_matches(glob, key) => Some(*fault),
                _ => None,
            },
            key,
        )
    }

    /// The fault for this manifest answer, counted as applied.
    pub fn manifest(&self) -> Option<ManifestFault> {
        self.take(
            |t| match t {
                Target::Manifest(f) => Some(f.clone()),
                Target::Content { .. } => None,
            },
            "",
        )
    }

    fn take<T>(&self, pick: impl Fn(&Target) -> Option<T>, key: &str) -> Option<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (i, spec) in self.specs.iter().enumerate() {
            let Some(fault) = pick(&spec.target) else {
                continue;
            };
            let used = state.used.entry((i, key.to_owned())).or_insert(0);
            if spec.times.is_some_and(|k| *used >= k) {
                continue;
            }
            *used += 1;
            if let Some(n) = state.applied.get_mut(i) {
                *n += 1;
            }
            return Some(fault);
        }
        None
    }

    /// Each spec with its count of applications, in command-line order.
    pub fn applied(&self) -> Vec<Applied> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.specs
            .iter()
            .zip(state.applied.iter())
            .map(|(s, n)| Applied {
                spec: s.text.clone(),
                applied: *n,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(text: &str) -> FaultSpec {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_kind_parses() {
        let content = |text: &str| match spec(text).target {
            Target::Content { glob, fault } => (glob, fault),
            Target::Manifest(m) => panic!("{text}: manifest {m:?}"),
        };
        assert_eq!(
            content("a/*.mp4=drop-after:1000"),
            ("a/*.mp4".into(), ContentFault::DropAfter(1000))
        );
        assert_eq!(content("*=corrupt").1, ContentFault::Corrupt);
        assert_eq!(content("x=stall").1, ContentFault::Stall);
        assert_eq!(content("x=status:503").1, ContentFault::Status(503));
        assert_eq!(spec("x=status:503,times=2").times, Some(2));
        assert_eq!(spec("x=corrupt").times, None);
        assert_eq!(
            spec("manifest=tamper").target,
            Target::Manifest(ManifestFault::Tamper)
        );
        assert_eq!(
            spec("manifest=appliance:oca-9,times=1").target,
            Target::Manifest(ManifestFault::Appliance("oca-9".into()))
        );
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        for bad in [
            "nothing",
            "=corrupt",
            "x=explode",
            "x=drop-after:many",
            "x=status:200",
            "x=status:700",
            "x=corrupt,times=0",
            "x=corrupt,times=-1",
            "manifest=corrupt",
            "manifest=appliance:",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "a/b/c.mp4"));
        assert!(glob_matches("a/*.mp4", "a/b/c.mp4"));
        assert!(glob_matches("a/*", "a/"));
        assert!(glob_matches("*c*", "abcd"));
        assert!(glob_matches("a.mp4", "a.mp4"));
        assert!(!glob_matches("a.mp4", "a.mp45"));
        assert!(!glob_matches("a/*.mp4", "b/c.mp4"));
        assert!(!glob_matches("*.ts", "a.mp4"));
        assert!(glob_matches("a**b", "ab"));
        assert!(!glob_matches("", "a"));
    }

    #[test]
    fn times_counts_per_key_and_specs_apply_in_order() {
        let faults = Faults::new(vec![
            spec("a*=status:503,times=2"),
            spec("*=corrupt,times=1"),
        ]);
        assert_eq!(faults.content("a1"), Some(ContentFault::Status(503)));
        assert_eq!(faults.content("a1"), Some(ContentFault::Status(503)));
        // The first spec is spent for a1; the second still applies once.
        assert_eq!(faults.content("a1"), Some(ContentFault::Corrupt));
        assert_eq!(faults.content("a1"), None);
        // Another key has its own budget.
        assert_eq!(faults.content("a2"), Some(ContentFault::Status(503)));
        assert_eq!(faults.content("b"), Some(ContentFault::Corrupt));
        assert_eq!(faults.content("b"), None);
        assert_eq!(faults.manifest(), None);
        let applied: Vec<u64> = faults.applied().iter().map(|a| a.applied).collect();
        assert_eq!(applied, vec![3, 2]);
    }

    #[test]
    fn manifest_faults_are_counted_apart() {
        let faults = Faults::new(vec![spec("manifest=tamper,times=1")]);
        assert_eq!(faults.content("manifest"), None);
        assert_eq!(faults.manifest(), Some(ManifestFault::Tamper));
        assert_eq!(faults.manifest(), None);
    }

    /// A reference matcher: the obvious recursive definition.
    fn slow_match(g: &[u8], t: &[u8]) -> bool {
        match g.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| slow_match(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && slow_match(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_reference(g in "[ab*/]{0,6}", t in "[ab/]{0,8}") {
            prop_assert_eq!(glob_matches(&g, &t), slow_match(g.as_bytes(), t.as_bytes()));
        }

        #[test]
        fn parse_never_panics(text in ".{0,40}") {
            let _ = parse(&text);
        }
    }
}
