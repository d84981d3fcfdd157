//! The catalogue: which objects exist for which appliances, and how popular
//! they are.
//!
//! Owns: the catalogue file format (TOML, unknown keys refused), its checks
//! (valid unique keys, ranks from 1, appliance ids well formed and, when a
//! top-level `appliances` list is given, known), the rule for running
//! without a catalogue (every file, ranked by sorted key), and selecting the
//! catalogued objects that are present in the content directory. It is pure:
//! the caller reads the file and lists the directory. It must never hash,
//! open content, or decide a generation (that is `issue`).
//!
//! ```toml
//! appliances = ["oca-1", "oca-2"]      # optional: restricts the known ids
//!
//! [[object]]
//! key = "titles/81/v-1080.mp4"
//! rank = 1                             # optional: the position in the file
//! appliances = ["oca-1"]               # optional: every appliance
//! ```

use std::collections::{BTreeSet, HashSet};

use eddy_proto::ObjectKey;

pub use eddy_proto::wire::{check_appliance_id, MAX_APPLIANCE_ID};

/// A checked catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    /// `None` = any appliance id is known.
    pub appliances: Option<BTreeSet<String>>,
    pub objects: Vec<Listed>,
}

/// One catalogued object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listed {
    pub key: ObjectKey,
    /// 1 = most popular.
    pub rank: u32,
    /// `None` = every appliance.
    pub appliances: Option<BTreeSet<String>>,
}

impl Listed {
    /// Whether this object is for appliance `id`.
    pub fn is_for(&self, id: &str) -> bool {
        self.appliances.as_ref().is_none_or(|a| a.contains(id))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    appliances: Option<Vec<String>>,
    #[serde(default)]
    object: Vec<RawObject>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObject {
    key: String,
    rank: Option<u32>,
    appliances: Option<Vec<String>>,
}

/// Why a catalogue was refused; the message names the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("{0}")]
    Toml(String),
    #[error("{at} {value:?}: {reason}")]
    Value {
        at: String,
        value: String,
        reason: String,
    },
}

fn bad(at: String, value: &str, reason: impl Into<String>) -> CatalogueError {
    CatalogueError::Value {
        at,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

impl Catalogue {
    /// Parses and checks the text of a catalogue file.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue =
            toml::from_str(text).map_err(|e| CatalogueError::Toml(e.to_string()))?;
        let appliances = match raw.appliances {
            None => None,
            Some(list) => {
                let mut set = BTreeSet::new();
                for (i, id) in list.iter().enumerate() {
                    check_appliance_id(id).map_err(|r| bad(format!("appliances[{i}]"), id, r))?;
                    set.insert(id.clone());
                }
                Some(set)
            }
        };
        let mut seen = HashSet::new();
        let mut objects = Vec::with_capacity(raw.object.len());
        for (i, o) in raw.object.into_iter().enumerate() {
            let key = ObjectKey::parse(&o.key)
                .map_err(|e| bad(format!("object[{i}].key"), &o.key, e.to_string()))?;
            if !seen.insert(key.clone()) {
                return Err(bad(
                    format!("object[{i}].key"),
                    &o.key,
                    "the key is listed twice",
                ));
            }
            let rank = match o.rank {
                Some(0) => {
                    return Err(bad(format!("object[{i}].rank"), "0", "ranks start at 1"));
                }
                Some(r) => r,
                None => u32::try_from(i + 1).unwrap_or(u32::MAX),
            };
            let for_appliances = match o.appliances {
                None => None,
                Some(list) => {
                    let mut set = BTreeSet::new();
                    for (j, id) in list.iter().enumerate() {
                        let at = || format!("object[{i}].appliances[{j}]");
                        check_appliance_id(id).map_err(|r| bad(at(), id, r))?;
                        if appliances.as_ref().is_some_and(|known| !known.contains(id)) {
                            return Err(bad(at(), id, "not in the top-level `appliances` list"));
                        }
                        set.insert(id.clone());
                    }
                    Some(set)
                }
            };
            objects.push(Listed {
                key,
                rank,
                appliances: for_appliances,
            });
        }
        Ok(Catalogue {
            appliances,
            objects,
        })
    }

    /// The catalogue of a run without a catalogue file: every present key,
    /// for every appliance, ranked by sorted key order (1 = first).
    pub fn everything<'a>(present: impl IntoIterator<Item = &'a ObjectKey>) -> Catalogue {
        let mut keys: Vec<&ObjectKey> = present.into_iter().collect();
        keys.sort();
        keys.dedup();
        Catalogue {
            appliances: None,
            objects: keys
                .into_iter()
                .enumerate()
                .map(|(i, k)| Listed {
                    key: k.clone(),
                    rank: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    appliances: None,
                })
                .collect(),
        }
    }

    /// Whether appliance `id` is known.
    pub fn knows(&self, id: &str) -> bool {
        self.appliances.as_ref().is_none_or(|a| a.contains(id))
    }

    /// The catalogued objects for which `present` holds, in rank order (ties
    /// by key), and the keys that are catalogued but absent.
    pub fn select(&self, present: impl Fn(&ObjectKey) -> bool) -> (Vec<Listed>, Vec<ObjectKey>) {
        let (mut here, absent): (Vec<Listed>, Vec<Listed>) =
            self.objects.iter().cloned().partition(|o| present(&o.key));
        here.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.key.cmp(&b.key)));
        (here, absent.into_iter().map(|o| o.key).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).unwrap_or_else(|e| panic!("{k}: {e}"))
    }

    #[test]
    fn a_full_catalogue_parses() -> Result<(), CatalogueError> {
        let c = Catalogue::parse(
            r#"
            appliances = ["oca-1", "oca-2"]
            [[object]]
            key = "b.mp4"
            rank = 2
            [[object]]
            key = "a/1.mp4"
            rank = 1
            appliances = ["oca-2"]
            [[object]]
            key = "c.mp4"
            "#,
        )?;
        assert!(c.knows("oca-1") && !c.knows("oca-3"));
        assert_eq!(c.objects[2].rank, 3, "a missing rank is the position");
        let (here, absent) = c.select(|k| k.as_str() != "c.mp4");
        let keys: Vec<&str> = here.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a/1.mp4", "b.mp4"]);
        assert_eq!(absent, vec![key("c.mp4")]);
        assert!(!here[0].is_for("oca-1") && here[0].is_for("oca-2"));
        assert!(here[1].is_for("oca-1"));
        Ok(())
    }

    #[test]
    fn an_empty_catalogue_knows_everyone_and_lists_nothing() -> Result<(), CatalogueError> {
        let c = Catalogue::parse("")?;
        assert!(c.knows("anyone"));
        assert!(c.objects.is_empty());
        Ok(())
    }

    #[test]
    fn errors_name_the_key_and_value() {
        let err = |text: &str| match Catalogue::parse(text) {
            Ok(c) => panic!("accepted {c:?}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err("[[object]]\nkey = \"../x\"\n"),
            "object[0].key \"../x\": the key has a `.` or `..` segment"
        );
        assert_eq!(
            err("[[object]]\nkey = \"a\"\nrank = 0\n"),
            "object[0].rank \"0\": ranks start at 1"
        );
        assert!(err("[[object]]\nkey = \"a\"\n[[object]]\nkey = \"a\"\n").contains("twice"));
        assert!(
            err("appliances = [\"a\"]\n[[object]]\nkey = \"k\"\nappliances = [\"b\"]\n")
                .starts_with("object[0].appliances[0] \"b\"")
        );
        assert!(err("appliances = [\"a b\"]\n").starts_with("appliances[0]"));
        assert!(err("colour = 1\n").contains("colour"));
        assert!(err("[[object]]\nkey = \"a\"\nsize = 3\n").contains("size"));
    }

    #[test]
    fn without_a_file_every_key_is_ranked_in_sorted_order() {
        let keys = [key("b"), key("a/2"), key("a/10")];
        let c = Catalogue::everything(&keys);
        let ranked: Vec<(&str, u32)> = c.objects.iter().map(|o| (o.key.as_str(), o.rank)).collect();
        assert_eq!(ranked, [("a/10", 1), ("a/2", 2), ("b", 3)]);
        assert!(c.knows("any"));
    }

    #[test]
    fn appliance_ids() {
        assert!(check_appliance_id("oca-1.site_a").is_ok());
        assert!(check_appliance_id("").is_err());
        assert!(check_appliance_id("a/b").is_err());
        assert!(check_appliance_id(&"x".repeat(129)).is_err());
    }
}
