//! TLS for the encrypted listener: certificates, their reload, the handshake
//! settings, and the kernel-TLS probe.
//!
//! Owns: turning the PEM files named by `tls.cert` and `tls.key` into a rustls
//! `ServerConfig` (aws-lc-rs; TLS 1.3 and 1.2; AES-GCM first, ChaCha20-Poly1305
//! offered; ALPN `h2` then `http/1.1`), swapping in a new one when the files
//! change or on SIGHUP while keeping the old one when the new files are bad,
//! and probing once whether the kernel accepts `TCP_ULP "tls"`. Each accepted
//! connection takes the config current at its accept. It must not speak HTTP
//! (`tls::conn` does) nor decide anything about a request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;

use crate::config::KtlsSetting;

/// ALPN protocols offered, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// TLS sessions remembered for resumption by session id (TLS 1.2) and
/// stateful tickets. 4096 entries of a few hundred bytes each.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// Why a certificate or key could not be used. Names the file, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} = {path:?}: cannot read: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key} = {path:?}: {reason}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("tls.cert and tls.key do not go together: {0}")]
    Mismatch(rustls::Error),
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
}

/// The identity of a file's current content, as far as `stat` can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        ino: meta.ino(),
    })
}

/// The certificate in use and where it came from.
#[derive(Debug)]
pub struct Certs {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
    /// The current leaf certificate's notAfter (Unix seconds), if readable.
    not_after: Mutex<Option<i64>>,
    /// Stamps of the files the current config was loaded from, or last tried.
    seen: Mutex<(Option<Stamp>, Option<Stamp>)>,
    /// Kept across reloads so that a reload does not forget sessions.
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files did not change since the last look.
    Unchanged,
    /// A new certificate is in use for new connections.
    Loaded,
}

impl Certs {
    /// Loads the certificate and key; an error here fails start-up.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Certs, TlsError> {
        let sessions: Arc<dyn StoresServerSessions> =
            ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsError::Setup)?;
        let seen = (stamp(cert_path), stamp(key_path));
        let (config, not_after) = build(cert_path, key_path, &sessions, &ticketer)?;
        Ok(Certs {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(config)),
            not_after: Mutex::new(not_after),
            seen: Mutex::new(seen),
            sessions,
            ticketer,
        })
    }

    /// The config for a connection accepted now.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the files again if they changed since the last look (or always,
    /// with `force`, as on SIGHUP). On an error the old certificate stays in
    /// use; the error is returned for the caller to log and count.
    pub fn reload(&self, force: bool) -> Result<Reload, TlsError> {
        let now_seen = (stamp(&self.cert_path), stamp(&self.key_path));
        {
            let mut seen = match self.seen.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !force && *seen == now_seen {
                return Ok(Reload::Unchanged);
            }
            // Remember this state even if it turns out bad: a broken file is
            // reported once, not at every check, and tried again when it changes.
            *seen = now_seen;
        }
        let (config, not_after) = build(
            &self.cert_path,
            &self.key_path,
            &self.sessions,
            &self.ticketer,
        )?;
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = Arc::new(config);
        *self
            .not_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = not_after;
        Ok(Reload::Loaded)
    }

    /// The serving leaf certificate's notAfter in Unix seconds (`None` if it
    /// could not be read from the certificate).
    pub fn not_after(&self) -> Option<i64> {
        *self
            .not_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn build(
    cert_path: &Path,
    key_path: &Path,
    sessions: &Arc<dyn StoresServerSessions>,
    ticketer: &Arc<dyn ProducesTickets>,
) -> Result<(ServerConfig, Option<i64>), TlsError> {
    let cert_pem = std::fs::read(cert_path).map_err(|source| TlsError::Read {
        key: "tls.cert",
        path: cert_path.to_owned(),
        source,
    })?;
    let key_pem = std::fs::read(key_path).map_err(|source| TlsError::Read {
        key: "tls.key",
        path: key_path.to_owned(),
        source,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            key: "tls.cert",
            path: cert_path.to_owned(),
            reason: format!("not a PEM certificate chain ({e})"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            key: "tls.cert",
            path: cert_path.to_owned(),
            reason: "no CERTIFICATE block in the file".to_owned(),
        });
    }
    // The error never quotes the file: it holds a private key.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
        key: "tls.key",
        path: key_path.to_owned(),
        reason: "no PKCS#8, PKCS#1 or SEC1 private key block in the file".to_owned(),
    })?;
    let not_after = chain.first().and_then(|leaf| super::x509::not_after(leaf));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Mismatch)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.session_storage = sessions.clone();
    config.ticketer = ticketer.clone();
    Ok((config, not_after))
}

/// Whether TLS records are made by the kernel or by rustls, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtlsMode {
    /// `kernel`, `userspace` or `off` (the metrics label).
    pub mode: &'static str,
    /// Why, as a fixed snake_case word: the `reason` label of `eddy_ktls_info`.
    pub label: &'static str,
    /// Why, as a sentence: logged and printed by `check-config`.
    pub reason: &'static str,
}

/// Decides the kTLS mode once at start-up.
///
/// The probe connects a loopback TCP pair and asks the kernel to attach the
/// `tls` upper-layer protocol to it: that fails with ENOENT where the `tls`
/// module is missing (as on the development machines) and with ENOPROTOOPT on
/// kernels built without it. Handing rustls's session keys to the kernel is not
/// built yet, so even a kernel that accepts gets userspace TLS, and says so.
pub fn ktls_mode(setting: KtlsSetting) -> KtlsMode {
    if setting == KtlsSetting::Off {
        return KtlsMode {
            mode: "off",
            label: "disabled",
            reason: "tls.ktls = off",
        };
    }
    match probe_ktls() {
        Ok(()) => KtlsMode {
            mode: "userspace",
            label: "send_path_not_built",
            reason: "the kernel offers TLS, but eddy's kernel-TLS send path is not built yet",
        },
        Err(nix::errno::Errno::ENOENT) => KtlsMode {
            mode: "userspace",
            label: "no_tls_module",
            reason: "the kernel has no tls module (TCP_ULP \"tls\": ENOENT)",
        },
        Err(nix::errno::Errno::ENOPROTOOPT) => KtlsMode {
            mode: "userspace",
            label: "kernel_without_tls",
            reason: "the kernel was built without TLS (TCP_ULP: ENOPROTOOPT)",
        },
        Err(_) => KtlsMode {
            mode: "userspace",
            label: "ulp_refused",
            reason: "the kernel refused TCP_ULP \"tls\"",
        },
    }
}

/// Attaches the `tls` ULP to a connected loopback socket and throws it away.
fn probe_ktls() -> Result<(), nix::errno::Errno> {
    use nix::sys::socket::{setsockopt, sockopt::TcpUlp};
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let client = std::net::TcpStream::connect(addr)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    setsockopt(&client, TcpUlp::default(), b"tls")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    #[test]
    fn loads_and_reloads_only_good_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, k) = self_signed(dir.path(), "a");
        let certs = Certs::load(&c, &k).expect("loads");
        let first = certs.current();
        assert_eq!(
            first.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(certs.reload(false).expect("no change"), Reload::Unchanged);

        // A key that belongs to another certificate: refused, the old config stays.
        let (_, other_key) = self_signed(dir.path(), "b");
        std::fs::copy(&other_key, &k).expect("copy");
        let err = certs.reload(false).expect_err("mismatch refused");
        assert!(matches!(err, TlsError::Mismatch(_)), "{err}");
        assert!(Arc::ptr_eq(&first, &certs.current()));
        // Reported once: the same bad files are not tried again until they change.
        assert_eq!(certs.reload(false).expect("same state"), Reload::Unchanged);

        // Garbage in the certificate file names the key and the file.
        std::fs::write(&c, "not pem").expect("write");
        let err = certs.reload(true).expect_err("garbage refused").to_string();
        assert!(err.contains("tls.cert"), "{err}");
        assert!(Arc::ptr_eq(&first, &certs.current()));

        // A good pair again: swapped in.
        let (c2, k2) = self_signed(dir.path(), "c");
        std::fs::copy(&c2, &c).expect("copy");
        std::fs::copy(&k2, &k).expect("copy");
        assert_eq!(certs.reload(true).expect("loads"), Reload::Loaded);
        assert!(!Arc::ptr_eq(&first, &certs.current()));
    }

    #[test]
    fn a_key_file_error_never_quotes_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, k) = self_signed(dir.path(), "a");
        std::fs::write(&k, "SECRET-MATERIAL").expect("write");
        let err = Certs::load(&c, &k).expect_err("refused").to_string();
        assert!(err.contains("tls.key"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn ktls_off_is_off_and_auto_always_has_a_reason() {
        assert_eq!(ktls_mode(KtlsSetting::Off).mode, "off");
        let auto = ktls_mode(KtlsSetting::Auto);
        assert!(["kernel", "userspace"].contains(&auto.mode), "{auto:?}");
        assert!(!auto.reason.is_empty());
        // The label is a fixed word, never a sentence.
        for m in [ktls_mode(KtlsSetting::Off), auto] {
            assert!(
                !m.label.is_empty() && m.label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{m:?}"
            );
        }
    }
}
