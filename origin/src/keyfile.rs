//! The control plane's signing key on disk.
//!
//! Owns: generating an Ed25519 key (aws-lc-rs, system randomness), its file
//! form (PEM `PRIVATE KEY`, the base64 of PKCS#8 DER), writing it with mode
//! 0600 without ever replacing an existing file, and reading it back into an
//! [`eddy_proto::wire::SignKey`]. It must never print, log or return the
//! private bytes (errors name the file, not its content), and never sign
//! anything itself (that is `eddy_proto`).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use eddy_proto::wire::{SignKey, VerifyKey};

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";
/// Characters per base64 line in the PEM body (RFC 7468).
const PEM_LINE: usize = 64;

/// Why a key could not be made, written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("--out {}: the file exists; refusing to overwrite a key", path.display())]
    Exists { path: PathBuf },
    #[error("{flag} {}: {source}", path.display())]
    Io {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--key {}: {reason}", path.display())]
    Malformed { path: PathBuf, reason: &'static str },
    #[error("could not generate a key: the system random source failed")]
    Random,
}

impl KeyFileError {
    pub fn class(&self) -> crate::Class {
        match self {
            KeyFileError::Exists { .. } | KeyFileError::Malformed { .. } => crate::Class::Usage,
            KeyFileError::Io { .. } => crate::Class::Io,
            KeyFileError::Random => crate::Class::Other,
        }
    }
}

/// Generates a key, writes it to `out` (mode 0600, never over an existing
/// file, fsynced) and returns its public half.
pub fn generate(out: &Path) -> Result<VerifyKey, KeyFileError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| KeyFileError::Random)?;
    let der = pkcs8.as_ref();
    let key = SignKey::from_pkcs8(der).map_err(|_| KeyFileError::Random)?;
    let io = |source| KeyFileError::Io {
        flag: "--out",
        path: out.to_owned(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: out.to_owned(),
                }
            } else {
                io(e)
            }
        })?;
    file.write_all(to_pem(der).as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key.public().clone())
}

/// Reads a key written by [`generate`] (or any PEM PKCS#8 Ed25519 key).
pub fn load(path: &Path) -> Result<SignKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        flag: "--key",
        path: path.to_owned(),
        source,
    })?;
    let malformed = |reason| KeyFileError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let der = from_pem(&text).map_err(malformed)?;
    SignKey::from_pkcs8(&der).map_err(|_| malformed("not an Ed25519 private key in PKCS#8 form"))
}

/// The PEM text of PKCS#8 DER bytes.
pub fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + 80);
    out.push_str(PEM_BEGIN);
    out.push('\n');
    for line in b64.as_bytes().chunks(PEM_LINE) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(PEM_END);
    out.push('\n');
    out
}

/// The DER bytes of a PEM `PRIVATE KEY` block.
pub fn from_pem(text: &str) -> Result<Vec<u8>, &'static str> {
    let start = text
        .find(PEM_BEGIN)
        .ok_or("no `-----BEGIN PRIVATE KEY-----` line")?;
    let body = &text[start + PEM_BEGIN.len()..];
    let end = body
        .find(PEM_END)
        .ok_or("no `-----END PRIVATE KEY-----` line")?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|_| "the PEM body is not base64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        let der: Vec<u8> = (0..=200u8).collect();
        let pem = to_pem(&der);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem
            .lines()
            .all(|l| l.len() <= PEM_LINE || l.starts_with("-----")));
        assert_eq!(from_pem(&pem), Ok(der));
        assert!(from_pem("nothing").is_err());
    }

    #[test]
    fn a_generated_key_loads_and_is_never_overwritten() -> Result<(), KeyFileError> {
        let dir = tempfile::tempdir().map_err(|source| KeyFileError::Io {
            flag: "--out",
            path: PathBuf::new(),
            source,
        })?;
        let path = dir.path().join("origin.key");
        let public = generate(&path)?;
        assert_eq!(load(&path)?.public(), &public);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path)
                .map_err(|source| KeyFileError::Io {
                    flag: "--out",
                    path: path.clone(),
                    source,
                })?
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(generate(&path), Err(KeyFileError::Exists { .. })));
        assert_eq!(load(&path)?.public(), &public);
        Ok(())
    }
}
