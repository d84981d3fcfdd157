//! Signed URLs: the control plane's permission for one client to fetch one
//! object or a path prefix (a title's folder) until an expiry.
//!
//! Owns: the token format, signing (for `eddy token sign` and the reference
//! control plane), and verification in constant time against a keyring that may
//! hold several keys (rotation without downtime). It is pure: the current time
//! and the client address come in as values, and secrets never leave it in an
//! error or a log line. It must not decide statuses (`respond` maps [`Denied`]
//! to 403) nor parse anything but the two query parameters and the one path
//! segment it owns.
//!
//! Wire form, version 1 (also in `docs/protocol.md`):
//! `?e=<unix expiry>&t=<kid>.<b64url(prefix)>.<b64url(client)>.<b64url(mac)>`
//! (the parameter names `e` and `t` are configurable, see [`ParamNames`]),
//! with `mac = HMAC-SHA256(secret[kid], "eddy-url-v1\n" kid "\n" prefix "\n"
//! expiry "\n" client)`. `client` is empty (any client) or a CIDR such as
//! `203.0.113.0/24`. A prefix ending in `/` covers everything below it;
//! otherwise it names exactly one object path.
//!
//! Path form, version 1: the same grant and the same MAC, spelled as a
//! leading path segment `/t/<expiry>.<kid>.<b64url(prefix)>.<b64url(client)>.
//! <b64url(mac)>/<object path>`, so that relative URIs in a playlist
//! (`seg001.m4s`) resolve below the token and carry it (RFC 3986 §5.2).
//! [`split_path`] finds it, [`verify_path`] checks it exactly as [`verify`]
//! checks the query form.

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

/// The MAC of `grant` under `key`.
fn tag(key: &SigningKey, grant: &Grant) -> Vec<u8> {
    let mut mac = new_mac(&key.secret);
    mac.update(mac_input(&key.id, grant).as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The query string (`e=…&t=…`) that grants `grant`, signed with `key`.
pub fn sign(key: &SigningKey, grant: &Grant, names: &ParamNames) -> String {
    let tag = tag(key, grant);
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
    check(keys, expiry, token, path, client, now)
}

/// The marker segment of the path form, version 1: `/t/<token>/…`.
pub const PATH_MARKER: &str = "t";

/// The path-form segment (`<expiry>.<kid>.<prefix>.<client>.<mac>`) that
/// grants `grant`, signed with `key`: the same MAC as [`sign`]'s query, so
/// one grant has two spellings.
pub fn sign_path(key: &SigningKey, grant: &Grant) -> String {
    let client = grant.client.map(|c| c.to_string()).unwrap_or_default();
    format!(
        "{}.{}.{}.{}.{}",
        grant.expiry,
        key.id,
        URL_SAFE_NO_PAD.encode(grant.prefix.as_bytes()),
        URL_SAFE_NO_PAD.encode(client.as_bytes()),
        URL_SAFE_NO_PAD.encode(tag(key, grant))
    )
}

/// The URL path a player is given for the path form: `/t/<segment>` followed
/// by the grant's prefix (a folder ends in `/`, so a file name is appended).
pub fn path_url(key: &SigningKey, grant: &Grant) -> String {
    format!("/{PATH_MARKER}/{}{}", sign_path(key, grant), grant.prefix)
}

/// Splits a raw (not yet percent-decoded) request path into the path form's
/// token segment and the rest of the path (starting with `/`), or `None` when
/// the path is not the path form: its first segment is not [`PATH_MARKER`],
/// or the second does not have the token's shape (five `.`-separated fields,
/// the first 1..19 decimal digits), so that a folder named `t` stays a
/// folder. The rest is left raw: the caller applies every path rule to it
/// after the split, exactly as to a path without a token.
pub fn split_path(raw_path: &[u8]) -> Option<(&str, &[u8])> {
    let after = raw_path
        .strip_prefix(b"/")?
        .strip_prefix(PATH_MARKER.as_bytes())?;
    let after = after.strip_prefix(b"/")?;
    let end = after.iter().position(|&b| b == b'/')?;
    let (segment, rest) = after.split_at(end);
    let segment = std::str::from_utf8(segment).ok()?;
    let mut fields = segment.split('.');
    let expiry = fields.next()?;
    let shaped = is_expiry(expiry) && fields.count() == 4;
    shaped.then_some((segment, rest))
}

/// Checks a path-form token `segment` (from [`split_path`]) for a request of
/// `path` (the decoded path after the token segment, starting with `/`).
/// Every rule is [`verify`]'s: the same fields, MAC input, order of checks
/// and refusal reasons.
pub fn verify_path(
    keys: &[SigningKey],
    segment: &str,
    path: &str,
    client: IpAddr,
    now: u64,
) -> Result<(), Denied> {
    let Some((e, token)) = segment.split_once('.') else {
        return Err(Denied::Malformed);
    };
    check(keys, expiry(e)?, token, path, client, now)
}

/// The checks both forms share, in the order `docs/protocol.md` gives:
/// format, key id, MAC (constant time), expiry, prefix, client.
fn check(
    keys: &[SigningKey],
    expiry: u64,
    token: &str,
    path: &str,
    client: IpAddr,
    now: u64,
) -> Result<(), Denied> {
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

/// An expiry as written: 1..19 decimal digits (u64 holds any 19 digits).
fn is_expiry(e: &str) -> bool {
    !e.is_empty() && e.len() <= 19 && e.bytes().all(|b| b.is_ascii_digit())
}

fn expiry(e: &str) -> Result<u64, Denied> {
    if !is_expiry(e) {
        return Err(Denied::Malformed);
    }
    e.parse().map_err(|_| Denied::Malformed)
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
    Ok((expiry(e)?, t))
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

    fn verify_path(
        keys: &[SigningKey],
        segment: &str,
        path: &str,
        client: IpAddr,
        now: u64,
    ) -> Result<(), Denied> {
        super::verify_path(keys, segment, path, client, now)
    }

    #[test]
    fn the_path_form_is_the_query_form_respelled() {
        let k = key("k1", b"secret-one");
        let g = grant("/titles/81/", None);
        let q = sign(&k, &g);
        let seg = sign_path(&k, &g);
        // `e=<expiry>&t=<token>` and `<expiry>.<token>`: the same MAC.
        let (e, t) = params(&q, &ParamNames::default()).expect("signed query parses");
        assert_eq!(seg, format!("{e}.{t}"));
        assert_eq!(path_url(&k, &g), format!("/t/{seg}/titles/81/"));
        let keys = [k];
        let c = ip("198.51.100.7");
        assert_eq!(
            verify_path(&keys, &seg, "/titles/81/hls/seg001.m4s", c, NOW),
            Ok(())
        );
        assert_eq!(
            verify_path(&keys, &seg, "/titles/82/hls/seg001.m4s", c, NOW),
            Err(Denied::WrongPrefix)
        );
        assert_eq!(
            verify_path(&keys, &seg, "/titles/81", c, NOW),
            Err(Denied::WrongPrefix)
        );
    }

    #[test]
    fn every_refusal_of_the_path_form() {
        let k = key("k1", b"s");
        let keys = [k.clone()];
        let c = ip("203.0.113.9");
        let good = sign_path(&k, &grant("/a/", None));
        let p = "/a/b";
        assert_eq!(verify_path(&keys, &good, p, c, NOW), Ok(()));
        for bad in ["", "5", "x.k1.L2E..AAAA", "5.k1.L2E.AAAA", "5.k1.!!..AAAA"] {
            assert_eq!(
                verify_path(&keys, bad, p, c, NOW),
                Err(Denied::Malformed),
                "{bad:?}"
            );
        }
        let other = sign_path(&key("k9", b"s"), &grant("/a/", None));
        assert_eq!(
            verify_path(&keys, &other, p, c, NOW),
            Err(Denied::UnknownKey)
        );
        let last = good.chars().last().unwrap_or('A');
        let tampered = format!(
            "{}{}",
            &good[..good.len() - 1],
            if last == 'A' { 'Q' } else { 'A' }
        );
        assert!(matches!(
            verify_path(&keys, &tampered, p, c, NOW),
            Err(Denied::Tampered | Denied::Malformed)
        ));
        // The expiry is signed: a later one is tampering, not an extension.
        let later = good.replacen(&(NOW + 3600).to_string(), &(NOW + 9999).to_string(), 1);
        assert_eq!(verify_path(&keys, &later, p, c, NOW), Err(Denied::Tampered));
        assert_eq!(
            verify_path(&keys, &good, p, c, NOW + 3601),
            Err(Denied::Expired)
        );
        assert_eq!(
            verify_path(&keys, &good, "/b/a", c, NOW),
            Err(Denied::WrongPrefix)
        );
        let bound = sign_path(&k, &grant("/a/", Some("192.0.2.0/24")));
        assert_eq!(
            verify_path(&keys, &bound, p, c, NOW),
            Err(Denied::WrongClient)
        );
        assert_eq!(verify_path(&keys, &bound, p, ip("192.0.2.1"), NOW), Ok(()));
    }

    #[test]
    fn split_path_finds_only_the_token_shape() {
        let k = key("k1", b"s");
        let seg = sign_path(&k, &grant("/titles/81/", None));
        let raw = format!("/t/{seg}/titles/81/hls/index.m3u8");
        assert_eq!(
            split_path(raw.as_bytes()),
            Some((seg.as_str(), &b"/titles/81/hls/index.m3u8"[..]))
        );
        // The rest is handed back raw, encodings and all, for the path rules.
        let raw = format!("/t/{seg}/a/%2e%2e/b");
        assert_eq!(
            split_path(raw.as_bytes()).map(|(_, rest)| rest),
            Some(&b"/a/%2e%2e/b"[..])
        );
        let raw = format!("/t/{seg}/");
        assert_eq!(split_path(raw.as_bytes()).map(|(_, r)| r), Some(&b"/"[..]));
        // A folder named `t` stays a folder.
        for not in [
            "/t/a.m4s",
            "/t/0.m4s",
            "/t/0.m4s/x",
            "/t/1.a.b.c/x",
            "/t/1.a.b.c.d.e/x",
            "/t/x.a.b.c.d/x",
            "/t//x",
            "/t",
            "/t/",
            "/tt/1.a.b.c.d/x",
            "/T/1.a.b.c.d/x",
            "t/1.a.b.c.d/x",
            "/x/t/1.a.b.c.d/x",
        ] {
            assert_eq!(split_path(not.as_bytes()), None, "{not}");
        }
        // No rest: not the path form either (the whole path is a key).
        assert_eq!(split_path(format!("/t/{seg}").as_bytes()), None);
        assert_eq!(
            split_path(b"/t/1.a.b.c.d/x"),
            Some(("1.a.b.c.d", &b"/x"[..]))
        );
    }

    proptest! {
        #[test]
        fn both_forms_decide_alike(prefix in "/[a-z0-9/]{0,12}", path in "/[a-z0-9/]{0,14}",
                                   expiry in 0u64..4_000_000_000, now in 0u64..4_000_000_000,
                                   scope in proptest::option::of("(10|192)\\.0\\.[0-9]\\.0/24"),
                                   client in "(10|192)\\.0\\.[0-9]\\.[1-9][0-9]?") {
            let k = key("k", b"secret");
            let g = Grant { prefix, expiry, client: scope.as_deref().and_then(Cidr::parse) };
            let keys = [k.clone()];
            let c = ip(&client);
            prop_assert_eq!(
                verify_path(&keys, &sign_path(&k, &g), &path, c, now),
                verify(&keys, &path, Some(&sign(&k, &g)), c, now)
            );
        }

        #[test]
        fn split_path_never_panics_and_rest_is_a_suffix(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some((seg, rest)) = split_path(&raw) {
                prop_assert!(raw.ends_with(rest));
                prop_assert!(rest.starts_with(b"/"));
                prop_assert_eq!(raw.len(), 3 + seg.len() + rest.len());
            }
        }

        #[test]
        fn changing_a_byte_of_a_path_token_never_verifies(at in 0usize..200, b in "[0-9A-Za-z_.-]") {
            let k = key("k1", b"a secret");
            let seg = sign_path(&k, &grant("/titles/81/", Some("203.0.113.0/24")));
            let at = at % seg.len();
            let mut bytes = seg.clone().into_bytes();
            bytes[at] = b.as_bytes()[0];
            let changed = String::from_utf8(bytes).unwrap_or_default();
            if changed != seg {
                let keys = [k];
                prop_assert!(verify_path(&keys, &changed, "/titles/81/v.mp4", ip("203.0.113.5"), NOW).is_err(), "{}", changed);
            }
        }
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
