//! The rules every protocol v1 message follows, and the error message.
//!
//! Owns: version strings (`MAJOR.MINOR`: a reader accepts any minor of a
//! major it knows and refuses another major; unknown fields are ignored, which
//! serde does by default, so no message type here may deny them), the signed
//! envelope that carries a message with its Ed25519 signature, and the JSON
//! error body the control plane answers with. It must never read a clock or a
//! file: times and keys come in as values.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::Digest as _;

/// Why a version string is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version {0:?} is not MAJOR.MINOR")]
    Malformed(String),
    #[error("version {got:?} has major {major}; this build speaks major {supported}")]
    UnknownMajor {
        got: String,
        major: u32,
        supported: u32,
    },
}

/// Accepts `version` when its major is `supported` (any minor).
pub fn check_version(version: &str, supported: u32) -> Result<(), VersionError> {
    let malformed = || VersionError::Malformed(version.to_owned());
    let (major, minor) = version.split_once('.').ok_or_else(malformed)?;
    let major: u32 = major.parse().map_err(|_| malformed())?;
    let _: u32 = minor.parse().map_err(|_| malformed())?;
    if major != supported {
        return Err(VersionError::UnknownMajor {
            got: version.to_owned(),
            major,
            supported,
        });
    }
    Ok(())
}

/// The longest appliance id accepted, by the appliance and the control plane.
pub const MAX_APPLIANCE_ID: usize = 128;

/// Whether `id` is an appliance id: 1 to [`MAX_APPLIANCE_ID`] characters of
/// `A-Z a-z 0-9 . _ -` (it names manifests, reports and URL paths).
pub fn check_appliance_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_APPLIANCE_ID {
        return Err(format!(
            "an appliance id is 1 to {MAX_APPLIANCE_ID} characters"
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("an appliance id is made of A-Z, a-z, 0-9, `.`, `_` and `-`".to_owned());
    }
    Ok(())
}

/// The JSON body of every error answer of the control plane.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// A fixed, machine-readable code such as `unknown_appliance`.
    pub error: String,
    /// A sentence for a human.
    pub message: String,
}

/// The first line of a signed envelope, up to the key id.
pub const ENVELOPE_MAGIC: &str = "eddy-signed/1 ed25519";

/// The longest first line of an envelope that is looked at, so that a
/// hostile body cannot make the reader scan far for a newline.
const MAX_ENVELOPE_LINE: usize = 256;

/// A key id: the first 8 bytes of the SHA-256 of the raw public key, in hex.
/// Derived, never chosen, so a configured key names itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

/// A control plane's public key, as the appliance's config holds it:
/// `ed25519:<base64url of the 32 raw bytes>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyKey {
    pub id: KeyId,
    raw: [u8; 32],
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyKey({})", self.id.0)
    }
}

/// Why a public key's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    #[error("a public key is written `ed25519:<base64url>`")]
    Prefix,
    #[error("the key is not base64url (no padding)")]
    Base64,
    #[error("an Ed25519 public key is 32 bytes, this is {0}")]
    Length(usize),
}

fn key_id(raw: &[u8]) -> KeyId {
    let d = sha2::Sha256::digest(raw);
    KeyId(d[..8].iter().map(|b| format!("{b:02x}")).collect())
}

impl VerifyKey {
    /// Parses `ed25519:<base64url>`.
    pub fn parse(text: &str) -> Result<VerifyKey, KeyTextError> {
        let b64 = text
            .trim()
            .strip_prefix("ed25519:")
            .ok_or(KeyTextError::Prefix)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| KeyTextError::Base64)?;
        let raw: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyTextError::Length(bytes.len()))?;
        Ok(VerifyKey {
            id: key_id(&raw),
            raw,
        })
    }

    /// The text form, as `parse` reads it.
    pub fn to_text(&self) -> String {
        format!("ed25519:{}", URL_SAFE_NO_PAD.encode(self.raw))
    }
}

/// A signing key (the control plane's). The private half never leaves it:
/// `Debug` shows only the id.
pub struct SignKey {
    pair: aws_lc_rs::signature::Ed25519KeyPair,
    public: VerifyKey,
}

impl std::fmt::Debug for SignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignKey({})", self.public.id.0)
    }
}

/// Why bytes are not a signing key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Ed25519 private key in PKCS#8 form")]
pub struct SignKeyError;

impl SignKey {
    /// A key from its PKCS#8 (v1 or v2) DER bytes.
    pub fn from_pkcs8(der: &[u8]) -> Result<SignKey, SignKeyError> {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| SignKeyError)?;
        let raw: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| SignKeyError)?;
        Ok(SignKey {
            pair,
            public: VerifyKey {
                id: key_id(&raw),
                raw,
            },
        })
    }

    /// The public half, for the appliance's config.
    pub fn public(&self) -> &VerifyKey {
        &self.public
    }

    /// Wraps `body` in a signed envelope for `context` (a message kind such
    /// as [`crate::manifest::SIGNATURE_CONTEXT`]).
    pub fn seal(&self, context: &[u8], body: &[u8]) -> Vec<u8> {
        let sig = self.pair.sign(&signed_bytes(context, body));
        let mut out = format!(
            "{ENVELOPE_MAGIC} {} {}\n",
            self.public.id.0,
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// What is signed: a context naming the message kind, a NUL, then the exact
/// body bytes (so a signature for one kind can never pass as another).
fn signed_bytes(context: &[u8], body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + 1 + body.len());
    m.extend_from_slice(context);
    m.push(0);
    m.extend_from_slice(body);
    m
}

/// Why an envelope was refused before its body was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the message is not signed (no `{ENVELOPE_MAGIC}` line)")]
    Unsigned,
    #[error("the signature line is malformed")]
    MalformedSignature,
    #[error("signed by key {0}, which is not configured")]
    UnknownKey(String),
    #[error("the signature does not match the bytes (tampered, or signed by another key)")]
    BadSignature,
}

/// Checks an envelope against `keys` and returns the exact signed body. This
/// runs before any byte of the body is parsed.
pub fn open<'a>(
    context: &[u8],
    sealed: &'a [u8],
    keys: &[VerifyKey],
) -> Result<&'a [u8], SealError> {
    let window = &sealed[..sealed.len().min(MAX_ENVELOPE_LINE)];
    let newline = window
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(SealError::Unsigned)?;
    let line = std::str::from_utf8(&sealed[..newline]).map_err(|_| SealError::Unsigned)?;
    let rest = line
        .strip_prefix(ENVELOPE_MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(SealError::Unsigned)?;
    let (kid, sig) = rest.split_once(' ').ok_or(SealError::MalformedSignature)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| SealError::MalformedSignature)?;
    let key = keys
        .iter()
        .find(|k| k.id.0 == kid)
        .ok_or_else(|| SealError::UnknownKey(kid.to_owned()))?;
    let body = &sealed[newline + 1..];
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, key.raw)
        .verify(&signed_bytes(context, body), &sig)
        .map_err(|_| SealError::BadSignature)?;
    Ok(body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A fixed test key (PKCS#8 v1 of a seed of 32 sevens), so tests are
    /// repeatable without a random source.
    pub(crate) fn test_key(seed: u8) -> SignKey {
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[seed; 32]);
        match SignKey::from_pkcs8(&der) {
            Ok(k) => k,
            Err(e) => panic!("test key: {e}"),
        }
    }

    #[test]
    fn appliance_ids() {
        assert!(check_appliance_id("oca-1.site_a").is_ok());
        assert!(check_appliance_id("").is_err());
        assert!(check_appliance_id("a/b").is_err());
        assert!(check_appliance_id("a b").is_err());
        assert!(check_appliance_id(&"x".repeat(MAX_APPLIANCE_ID)).is_ok());
        assert!(check_appliance_id(&"x".repeat(MAX_APPLIANCE_ID + 1)).is_err());
    }

    #[test]
    fn versions_accept_any_minor_of_the_known_major() {
        assert_eq!(check_version("1.0", 1), Ok(()));
        assert_eq!(check_version("1.7", 1), Ok(()));
        assert!(matches!(
            check_version("2.0", 1),
            Err(VersionError::UnknownMajor { major: 2, .. })
        ));
        assert!(matches!(
            check_version("1", 1),
            Err(VersionError::Malformed(_))
        ));
        assert!(matches!(
            check_version("x.y", 1),
            Err(VersionError::Malformed(_))
        ));
    }

    #[test]
    fn a_sealed_body_opens_with_its_key_only() -> Result<(), SealError> {
        let a = test_key(7);
        let b = test_key(8);
        let sealed = a.seal(b"ctx", b"{\"hello\":1}");
        assert_eq!(
            open(b"ctx", &sealed, &[b.public().clone(), a.public().clone()])?,
            b"{\"hello\":1}"
        );
        assert_eq!(
            open(b"ctx", &sealed, &[b.public().clone()]),
            Err(SealError::UnknownKey(a.public().id.0.clone()))
        );
        assert_eq!(
            open(b"other", &sealed, &[a.public().clone()]),
            Err(SealError::BadSignature)
        );
        assert_eq!(
            open(b"ctx", b"{\"hello\":1}", &[a.public().clone()]),
            Err(SealError::Unsigned)
        );
        Ok(())
    }

    #[test]
    fn public_keys_round_trip_through_text() -> Result<(), KeyTextError> {
        let k = test_key(9);
        let text = k.public().to_text();
        assert_eq!(&VerifyKey::parse(&text)?, k.public());
        assert_eq!(VerifyKey::parse("rsa:abc"), Err(KeyTextError::Prefix));
        assert_eq!(
            VerifyKey::parse("ed25519:AAAA"),
            Err(KeyTextError::Length(3))
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn any_flipped_byte_is_refused(at in 0usize..400, bit in 0u8..8) {
            let k = test_key(7);
            let mut sealed = k.seal(b"ctx", &[b'x'; 300]);
            let at = at % sealed.len();
            sealed[at] ^= 1 << bit;
            prop_assert!(open(b"ctx", &sealed, &[k.public().clone()]).is_err());
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let k = test_key(7);
            let _ = open(b"ctx", &bytes, &[k.public().clone()]);
        }
    }
}
