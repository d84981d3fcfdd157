//! Content digests: the SHA-256 of an object's bytes, its hex form, and the
//! ETag rule built on it.
//!
//! Owns: the one spelling of a digest on the wire and in a staging file name
//! (64 lowercase hex digits), its record on an object's inode (the 32 raw
//! bytes, so that it fits inside an ext4 inode of the default 256 bytes
//! beside its name; 64 hex digits from stores written before are still
//! read), and the rule that a strong
//! ETag is its first 128 bits, so that every appliance holding the same bytes
//! gives the same tag. It must never hash a file itself: callers stream bytes
//! through `sha2` and hand the result here.

use std::fmt;

/// The SHA-256 of an object's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

/// Why a text is not a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("a SHA-256 digest is 64 hex digits, this has {0} characters")]
    Length(usize),
    #[error("a SHA-256 digest is lowercase hex digits only")]
    NotHex,
    #[error("a digest record is 32 bytes (or 64 hex digits), this has {0}")]
    RecordLength(usize),
}

impl Digest {
    /// Parses 64 lowercase hex digits (the one accepted spelling, so that a
    /// digest names exactly one staging file).
    pub fn from_hex(text: &str) -> Result<Digest, DigestError> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(DigestError::Length(text.len()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Digest(out))
    }

    /// The 64-digit lowercase hex form.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0xf)] as char);
        }
        s
    }

    /// The record kept on an object's inode: the 32 bytes themselves. As hex
    /// it would not fit: an ext4 inode of 256 bytes has 92 bytes for
    /// attributes, and `user.eddy.sha256` with 64 hex digits takes 96, which
    /// pushes it into a block of its own, one more read per object in a cold
    /// start-up scan.
    pub fn to_record(&self) -> [u8; 32] {
        self.0
    }

    /// Reads a record: 32 raw bytes, or the 64 hex digits that stores written
    /// before records were raw carry.
    pub fn from_record(record: &[u8]) -> Result<Digest, DigestError> {
        match record.len() {
            32 => {
                let mut out = [0u8; 32];
                out.copy_from_slice(record);
                Ok(Digest(out))
            }
            64 => Digest::from_hex(std::str::from_utf8(record).map_err(|_| DigestError::NotHex)?),
            n => Err(DigestError::RecordLength(n)),
        }
    }

    /// The opaque part of the strong ETag of an object with this content: the
    /// first 128 bits in hex (32 digits, no quotes).
    pub fn etag(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(ETAG_HEX_DIGITS);
        hex
    }
}

/// How many hex digits of the digest form the ETag.
pub const ETAG_HEX_DIGITS: usize = 32;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Result<u8, DigestError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(DigestError::NotHex),
    }
}

/// The ETag for a digest record (as read from an xattr, see
/// [`Digest::from_record`]), or `None` when the record is not a well-formed
/// digest.
pub fn etag_from_record(record: &[u8]) -> Option<String> {
    Digest::from_record(record).ok().map(|d| d.etag())
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_empty_string_has_its_known_digest_and_tag() -> Result<(), DigestError> {
        let d =
            Digest::from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")?;
        assert_eq!(d.etag(), "e3b0c44298fc1c149afbf4c8996fb924");
        assert_eq!(
            etag_from_record(d.to_hex().as_bytes()).as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb924")
        );
        Ok(())
    }

    #[test]
    fn other_spellings_are_refused() {
        assert_eq!(Digest::from_hex("ab"), Err(DigestError::Length(2)));
        let upper = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(Digest::from_hex(upper), Err(DigestError::NotHex));
        assert_eq!(etag_from_record(b"not a digest"), None);
        // Raw and hex records name the same digest; other lengths are refused.
        let d = Digest([0x5a; 32]);
        assert_eq!(Digest::from_record(&d.to_record()), Ok(d));
        assert_eq!(Digest::from_record(d.to_hex().as_bytes()), Ok(d));
        assert_eq!(
            etag_from_record(&d.to_record()),
            etag_from_record(d.to_hex().as_bytes())
        );
        assert_eq!(
            Digest::from_record(&[0; 31]),
            Err(DigestError::RecordLength(31))
        );
        assert_eq!(Digest::from_record(&[0xff; 64]), Err(DigestError::NotHex));
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let d = Digest(bytes);
            prop_assert_eq!(Digest::from_hex(&d.to_hex()), Ok(d));
        }

        #[test]
        fn parse_never_panics(text in ".{0,70}") {
            let _ = Digest::from_hex(&text);
        }
    }
}
