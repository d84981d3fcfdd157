//! Signed URLs: the control plane's permission for one client to fetch one
//! object or a path prefix (a title's folder) until an expiry.
//!
//! Owns: the token format, signing (for `eddy token sign` and the reference
//! control plane), and verification in constant time against a keyring that may
//! hold several keys (rotation without downtime). It is pure: the current time
//! and the client address come in as values, and secrets never leave it in an
//! error or a log line. It must not decide statuses (`respond` maps [`Denied`]
//! to 403) nor parse anything but the two query parameters it owns.
//!
//! Wire form, version 1 (also in `docs/protocol.md`):
//! `?e=<unix expiry>&t=<kid>.<b64url(prefix)>.<b64url(client)>.<b64url(mac)>`
//! (the parameter names `e` and `t` are configurable, see [`ParamNames`]),
//! with `mac = HMAC-SHA256(secret[kid], "eddy-url-v1\n" kid "\n" prefix "\n"
//! expiry "\n" client)`. `client` is empty (any client) or a CIDR such as
//! `203.0.113.0/24`. A prefix ending in `/` covers everything below it;
//! otherwise it names exactly one object path.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The names of the two query parameters (`tokens.expiry_param`,
/// `tokens.token_param`), configurable so that a control plane with its own
/// URL conventions can sign for eddy. They are not part of the MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamNames {
    pub expiry: String,
    pub token: String,
}

impl Default for ParamNames {
    fn default() -> Self {
        ParamNames {
            expiry: DEFAULT_EXPIRY_PARAM.to_owned(),
            token: DEFAULT_TOKEN_PARAM.to_owned(),
        }
    }
}

/// The default name of the query parameter carrying a signed URL's unix
/// expiry (Open Connect style); `config::defaults` takes it from here.
pub const DEFAULT_EXPIRY_PARAM: &str = "e";

/// The default name of the query parameter carrying the token itself.
pub const DEFAULT_TOKEN_PARAM: &str = "t";

/// Domain separation for version 1 of the token.
const CONTEXT: &str = "eddy-url-v1";

/// One signing key. The secret is never printed (`Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub id: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"<hidden>")
            .finish()
    }
}

/// A client scope: an address block, or one address (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `203.0.113.0/24`, `2001:db8::/32` or a bare address. Host bits
    /// must be zero, so that one scope has one spelling (it is signed).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
            None => {
                let a = text.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max || mask(addr, len) != addr {
            return None;
        }
        Some(Cidr { addr, len })
    }

    /// Whether `client` lies in the block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        client.is_ipv4() == self.addr.is_ipv4() && mask(client, self.len) == self.addr
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Path prefix, starting with `/`; ending with `/` covers a folder.
    pub prefix: String,
    /// Unix seconds; the token is valid while `now <= expiry`.
    pub expiry: u64,
    /// `None`: any client.
    pub client: Option<Cidr>,
}

/// Why a request was refused. Each is counted by name; none carries a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("missing token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("token signature does not match")]
    Tampered,
    #[error("token expired")]
    Expired,
    #[error("path outside the token's prefix")]
    WrongPrefix,
    #[error("client address outside the token's scope")]
    WrongClient,
}

impl Denied {
    /// A stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Malformed => "malformed",
            Denied::UnknownKey => "unknown_key",
            Denied::Tampered => "tampered",
            Denied::Expired => "expired",
            Denied::WrongPrefix => "wrong_prefix",
            Denied::WrongClient => "wrong_client",
        }
    }
}

fn mac_input(kid: &str, grant: &Grant) -> String {
    let client = grant.client.map(|c| c.to_string()).unwrap_or_default();
    format!(
        "{CONTEXT}\n{kid}\n{}\n{}\n{client}",
        grant.prefix, grant.expiry
    )
}

fn new_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// The query string (`e=…&t=…`) that grants `grant`, signed with `key`.
pub fn sign(key: &SigningKey, grant: &Grant, names: &ParamNames) -> String {
    let mut mac = new_mac(&key.secret);
    mac.update(mac_input(&key.id, grant).as_bytes());
    let tag = mac.finalize().into_bytes();
    let client = grant.client.map(|c| c.to_string()).unwrap_or_default();
    format!(
        "{}={}&{}={}.{}.{}.{}",
        names.expiry,
        grant.expiry,
        names.token,
        key.id,
        URL_SAFE_NO_PAD.encode(grant.prefix.as_bytes()),
        URL_SAFE_NO_PAD.encode(client.as_bytes()),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Checks the token in `query` for a request of `path` (the decoded path,
/// starting with `/`) from `client` at unix time `now`.
pub fn verify(
    keys: &[SigningKey],
    names: &ParamNames,
    path: &str,
    query: Option<&str>,
    client: IpAddr,
    now: u64,
) -> Result<(), Denied> {
    let (expiry, token) = params(query.unwrap_or(""), names)?;
    let mut fields = token.split('.');
    let (Some(kid), Some(prefix), Some(scope), Some(tag), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(Denied::Malformed);
    };
    let prefix = decode_text(prefix)?;
    let scope = decode_text(scope)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Denied::Malformed)?;
    let client_scope = if scope.is_empty() {
        None
    } else {
        Some(Cidr::parse(&scope).ok_or(Denied::Malformed)?)
    };
    if !prefix.starts_with('/') {
        return Err(Denied::Malformed);
    }
    let key = keys
        .iter()
        .find(|k| k.id == kid)
        .ok_or(Denied::UnknownKey)?;
    let grant = Grant {
        prefix,
        expiry,
        client: client_scope,
    };
    let mut mac = new_mac(&key.secret);
    mac.update(mac_input(kid, &grant).as_bytes());
    // Constant-time comparison of the whole tag.
    mac.verify_slice(&tag).map_err(|_| Denied::Tampered)?;
    if now > grant.expiry {
        return Err(Denied::Expired);
    }
    let covered = if grant.prefix.ends_with('/') {
        path.starts_with(&grant.prefix)
    } else {
        path == grant.prefix
    };
    if !covered {
        return Err(Denied::WrongPrefix);
    }
    if let Some(scope) = grant.client {
        if !scope.contains(client) {
            return Err(Denied::WrongClient);
        }
    }
    Ok(())
}

/// Expiry and token from a query; other parameters are left alone, duplicates
/// refused.
fn params<'q>(query: &'q str, names: &ParamNames) -> Result<(u64, &'q str), Denied> {
    let mut e = None;
    let mut t = None;
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = if name == names.expiry {
            &mut e
        } else if name == names.token {
            &mut t
        } else {
            continue;
        };
        if slot.replace(value).is_some() {
            return Err(Denied::Malformed);
        }
    }
    let (Some(e), Some(t)) = (e, t) else {
        return Err(Denied::Missing);
    };
    if e.is_empty() || e.len() > 19 || !e.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Denied::Malformed);
    }
    let expiry = e.parse().map_err(|_| Denied::Malformed)?;
    Ok((expiry, t))
}

fn decode_text(field: &str) -> Result<String, Denied> {
    let bytes = URL_SAFE_NO_PAD
        .decode(field)
        .map_err(|_| Denied::Malformed)?;
    String::from_utf8(bytes).map_err(|_| Denied::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The functions under test, with the default parameter names.
    fn sign(key: &SigningKey, grant: &Grant) -> String {
        super::sign(key, grant, &ParamNames::default())
    }

    fn verify(
        keys: &[SigningKey],
        path: &str,
        query: Option<&str>,
        client: IpAddr,
        now: u64,
    ) -> Result<(), Denied> {
        super::verify(keys, &ParamNames::default(), path, query, client, now)
    }
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000;

    fn key(id: &str, secret: &[u8]) -> SigningKey {
        SigningKey {
            id: id.into(),
            secret: secret.to_vec(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn grant(prefix: &str, client: Option<&str>) -> Grant {
        Grant {
            prefix: prefix.into(),
            expiry: NOW + 3600,
            client: client.and_then(Cidr::parse),
        }
    }

    #[test]
    fn a_signed_folder_token_serves_the_folder_only() {
        let k = key("k1", b"secret-one");
        let q = sign(&k, &grant("/titles/81/", None));
        let keys = [k];
        assert_eq!(
            verify(
                &keys,
                "/titles/81/video-1080.mp4",
                Some(&q),
                ip("198.51.100.7"),
                NOW
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &keys,
                "/titles/810/x.mp4",
                Some(&q),
                ip("198.51.100.7"),
                NOW
            ),
            Err(Denied::WrongPrefix)
        );
        assert_eq!(
            verify(&keys, "/titles/8", Some(&q), ip("198.51.100.7"), NOW),
            Err(Denied::WrongPrefix)
        );
    }

    #[test]
    fn a_single_object_token_serves_that_object_only() {
        let k = key("k1", b"s");
        let q = sign(&k, &grant("/titles/81/a.mp4", None));
        let keys = [k];
        assert_eq!(
            verify(&keys, "/titles/81/a.mp4", Some(&q), ip("::1"), NOW),
            Ok(())
        );
        assert_eq!(
            verify(&keys, "/titles/81/a.mp4x", Some(&q), ip("::1"), NOW),
            Err(Denied::WrongPrefix)
        );
    }

    #[test]
    fn expiry_is_inclusive_and_then_refused() {
        let k = key("k1", b"s");
        let q = sign(&k, &grant("/a/", None));
        let keys = [k];
        assert_eq!(
            verify(&keys, "/a/b", Some(&q), ip("10.0.0.1"), NOW + 3600),
            Ok(())
        );
        assert_eq!(
            verify(&keys, "/a/b", Some(&q), ip("10.0.0.1"), NOW + 3601),
            Err(Denied::Expired)
        );
    }

    #[test]
    fn client_scopes() {
        let k = key("k1", b"s");
        let q = sign(&k, &grant("/a/", Some("203.0.113.0/24")));
        let keys = [k];
        assert_eq!(
            verify(&keys, "/a/b", Some(&q), ip("203.0.113.9"), NOW),
            Ok(())
        );
        assert_eq!(
            verify(&keys, "/a/b", Some(&q), ip("::ffff:203.0.113.9"), NOW),
            Ok(())
        );
        assert_eq!(
            verify(&keys, "/a/b", Some(&q), ip("203.0.114.9"), NOW),
            Err(Denied::WrongClient)
        );
        assert_eq!(
            verify(&keys, "/a/b", Some(&q), ip("2001:db8::1"), NOW),
            Err(Denied::WrongClient)
        );
        assert!(Cidr::parse("203.0.113.1/24").is_none(), "host bits set");
        assert!(Cidr::parse("203.0.113.0/33").is_none());
        assert_eq!(
            Cidr::parse("2001:db8::/32").map(|c| c.to_string()),
            Some("2001:db8::/32".into())
        );
    }

    #[test]
    fn missing_malformed_and_unknown_keys() {
        let keys = [key("k1", b"s")];
        let c = ip("127.0.0.1");
        assert_eq!(verify(&keys, "/a", None, c, NOW), Err(Denied::Missing));
        assert_eq!(
            verify(&keys, "/a", Some("e=5"), c, NOW),
            Err(Denied::Missing)
        );
        assert_eq!(
            verify(&keys, "/a", Some("e=x&t=a.b.c.d"), c, NOW),
            Err(Denied::Malformed)
        );
        assert_eq!(
            verify(&keys, "/a", Some("e=5&t=a.b"), c, NOW),
            Err(Denied::Malformed)
        );
        assert_eq!(
            verify(&keys, "/a", Some("e=5&e=6&t=a.L2E..AAAA"), c, NOW),
            Err(Denied::Malformed)
        );
        let other = sign(&key("k9", b"s"), &grant("/a", None));
        assert_eq!(
            verify(&keys, "/a", Some(&other), c, NOW),
            Err(Denied::UnknownKey)
        );
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_while_the_old_key_is_listed() {
        let old = key("2026-10", b"old secret");
        let new = key("2026-11", b"new secret");
        let q_old = sign(&old, &grant("/a/", None));
        let q_new = sign(&new, &grant("/a/", None));
        let both = [new.clone(), old.clone()];
        assert_eq!(verify(&both, "/a/x", Some(&q_old), ip("::1"), NOW), Ok(()));
        assert_eq!(verify(&both, "/a/x", Some(&q_new), ip("::1"), NOW), Ok(()));
        let only_new = [new];
        assert_eq!(
            verify(&only_new, "/a/x", Some(&q_old), ip("::1"), NOW),
            Err(Denied::UnknownKey)
        );
    }

    #[test]
    fn changing_any_byte_of_the_query_never_verifies() {
        let k = key("k1", b"a secret");
        let q = sign(&k, &grant("/titles/81/", Some("203.0.113.0/24")));
        let keys = [k];
        let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_.";
        for i in 0..q.len() {
            for &b in alphabet {
                let mut bytes = q.clone().into_bytes();
                if bytes[i] == b || bytes[i] == b'&' || bytes[i] == b'=' {
                    continue;
                }
                bytes[i] = b;
                let Ok(changed) = String::from_utf8(bytes) else {
                    continue;
                };
                let got = verify(
                    &keys,
                    "/titles/81/v.mp4",
                    Some(&changed),
                    ip("203.0.113.5"),
                    NOW,
                );
                assert!(
                    got.is_err(),
                    "position {i} changed to {:?} still verifies: {changed}",
                    b as char
                );
            }
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", key("k1", b"hunter2"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("104, 117"),
            "{shown}"
        );
    }

    proptest! {
        #[test]
        fn only_the_signed_grant_verifies(prefix in "/[a-z0-9/]{0,12}", other in "/[a-z0-9/]{0,12}",
                                          expiry in 0u64..4_000_000_000, secret in proptest::collection::vec(any::<u8>(), 1..40),
                                          bogus in "[A-Za-z0-9_-]{43}") {
            let k = key("k", &secret);
            let g = Grant { prefix: prefix.clone(), expiry, client: None };
            let q = sign(&k, &g);
            let keys = [k];
            let path = if prefix.ends_with('/') { format!("{prefix}x") } else { prefix.clone() };
            prop_assert_eq!(verify(&keys, &path, Some(&q), ip("::1"), expiry), Ok(()));
            // The same token with another prefix, or another tag, never verifies.
            let forged_prefix = q.replace(&URL_SAFE_NO_PAD.encode(prefix.as_bytes()), &URL_SAFE_NO_PAD.encode(other.as_bytes()));
            if other != prefix {
                prop_assert!(verify(&keys, &other, Some(&forged_prefix), ip("::1"), expiry).is_err());
            }
            let forged_tag = format!("{}.{bogus}", &q[..q.rfind('.').unwrap_or(0)]);
            if forged_tag != q {
                // Tampered, or Malformed when the bogus tag is not canonical base64.
                let got = verify(&keys, &path, Some(&forged_tag), ip("::1"), expiry);
                prop_assert!(matches!(got, Err(Denied::Tampered | Denied::Malformed)), "{:?}", got);
            }
        }
    }
}
