//! Object keys: the one validated name an object has, from the wire to the disk.
//!
//! Owns: the rules that make a key safe to turn into a path below a disk root
//! (relative, `/`-separated, UTF-8, no `.`/`..`/empty segments, no NUL, no
//! backslash, no control characters, bounded lengths). It is pure. It must not
//! percent-decode (that is `serve::route`) nor touch a filesystem.

use std::fmt;

/// The longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest single segment, in bytes (NAME_MAX of common filesystems).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// A validated object key such as `titles/81/video-1080.mp4`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

/// Why a name is not a valid key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    #[error("a segment is longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    #[error("the key has an empty segment (`//`, or a leading or trailing `/`)")]
    EmptySegment,
    #[error("the key has a `.` or `..` segment")]
    DotSegment,
    #[error("the key contains a backslash")]
    Backslash,
    #[error("the key contains a NUL or control character")]
    ControlCharacter,
}

impl ObjectKey {
    /// Validates `name` as a key.
    pub fn parse(name: &str) -> Result<Self, KeyError> {
        Self::check(name)?;
        Ok(ObjectKey(name.to_owned()))
    }

    /// Whether `name` is a valid key, without making one (a lookup by a
    /// valid name needs no copy of it: see the `Borrow<str>` impl).
    pub fn check(name: &str) -> Result<(), KeyError> {
        if name.is_empty() {
            return Err(KeyError::Empty);
        }
        if name.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong);
        }
        if name.contains('\\') {
            return Err(KeyError::Backslash);
        }
        if name.chars().any(char::is_control) {
            return Err(KeyError::ControlCharacter);
        }
        for segment in name.split('/') {
            if segment.is_empty() {
                return Err(KeyError::EmptySegment);
            }
            if segment == "." || segment == ".." {
                return Err(KeyError::DotSegment);
            }
            if segment.len() > MAX_SEGMENT_BYTES {
                return Err(KeyError::SegmentTooLong);
            }
        }
        Ok(())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key hashes and compares as its text (the derives of the one `String`
/// field), so maps keyed by `ObjectKey` can be searched with a `&str`.
impl std::borrow::Borrow<str> for ObjectKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// On the wire (manifests, reports) a key is a string, validated on the way in.
impl serde::Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ObjectKey::parse(&text).map_err(|e| serde::de::Error::custom(format!("key {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_keys() {
        for k in [
            "a",
            "titles/81/video-1080.mp4",
            "seg/seg001.bin",
            "with space/and%25.txt",
            "ünï/cödé",
        ] {
            assert_eq!(
                ObjectKey::parse(k).map(|k| k.as_str().to_owned()),
                Ok(k.to_owned())
            );
        }
    }

    #[test]
    fn rejects_everything_that_could_escape_or_confuse() {
        let cases = [
            ("", KeyError::Empty),
            ("/etc/passwd", KeyError::EmptySegment),
            ("a//b", KeyError::EmptySegment),
            ("a/", KeyError::EmptySegment),
            ("..", KeyError::DotSegment),
            ("a/../b", KeyError::DotSegment),
            ("./a", KeyError::DotSegment),
            ("a\\..\\b", KeyError::Backslash),
            ("a\0b", KeyError::ControlCharacter),
            ("a\nb", KeyError::ControlCharacter),
        ];
        for (k, want) in cases {
            assert_eq!(ObjectKey::parse(k), Err(want), "{k:?}");
        }
        assert_eq!(
            ObjectKey::parse(&"a".repeat(256)),
            Err(KeyError::SegmentTooLong)
        );
        assert_eq!(ObjectKey::parse(&"a/".repeat(600)), Err(KeyError::TooLong));
    }

    proptest! {
        #[test]
        fn a_valid_key_never_leaves_its_root(name in "[a-z./\\\\]{0,20}") {
            if let Ok(key) = ObjectKey::parse(&name) {
                let path = std::path::Path::new(key.as_str());
                prop_assert!(path.is_relative());
                for c in path.components() {
                    prop_assert!(matches!(c, std::path::Component::Normal(_)));
                }
            }
        }
    }
}
