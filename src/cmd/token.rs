//! `eddy token sign`: a signed-URL query for a path prefix, from the
//! `[tokens]` section of a config (also used by `eddy demo`).
//!
//! Owns: choosing the signing key (by id, or the first), checking the
//! prefix and the client block, the expiry from a TTL, and calling
//! `eddy_proto::token::sign`. Errors are [`ConfigError`]s naming the flag or
//! key. It must never print or return a secret: only the query or the path.

use crate::config::{ConfigError, Tokens};

/// What to sign.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The key id (`--key`); `None` = the first key.
    pub key: Option<&'a str>,
    /// The path prefix the URL grants, starting with `/`.
    pub prefix: &'a str,
    /// Unix seconds after which the URL is refused.
    pub expiry: u64,
    /// `--client`: an address or CIDR block the URL is bound to.
    pub client: Option<&'a str>,
}

/// The query (`e=…&t=…`) of a signed URL for `req`.
pub fn sign(tokens: &Tokens, req: &Request<'_>) -> Result<String, ConfigError> {
    let (signing, grant) = grant(tokens, req)?;
    Ok(eddy_proto::token::sign(signing, &grant, &tokens.names))
}

/// The same grant in the path form (`/t/<token>/<prefix>`, protocol v1),
/// which the relative URIs of a playlist inherit.
pub fn sign_path(tokens: &Tokens, req: &Request<'_>) -> Result<String, ConfigError> {
    let (signing, grant) = grant(tokens, req)?;
    Ok(eddy_proto::token::path_url(signing, &grant))
}

/// The signing key and the grant of `req`, checked.
fn grant<'t>(
    tokens: &'t Tokens,
    req: &Request<'_>,
) -> Result<(&'t eddy_proto::token::SigningKey, eddy_proto::token::Grant), ConfigError> {
    let signing = match req.key {
        Some(id) => tokens.keys.iter().find(|k| k.id == id),
        None => tokens.keys.first(),
    };
    let Some(signing) = signing else {
        return Err(ConfigError::Invalid {
            key: "tokens.keys",
            value: req.key.unwrap_or("[]").to_owned(),
            reason: "no such signing key in the config".into(),
        });
    };
    if !req.prefix.starts_with('/') {
        return Err(ConfigError::Invalid {
            key: "--prefix",
            value: req.prefix.to_owned(),
            reason: "must start with /".into(),
        });
    }
    let client = match req.client {
        Some(text) => {
            Some(
                eddy_proto::token::Cidr::parse(text).ok_or_else(|| ConfigError::Invalid {
                    key: "--client",
                    value: text.to_owned(),
                    reason: "not an address or a CIDR block with zero host bits".into(),
                })?,
            )
        }
        None => None,
    };
    let grant = eddy_proto::token::Grant {
        prefix: req.prefix.to_owned(),
        expiry: req.expiry,
        client,
    };
    Ok((signing, grant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_proto::token::SigningKey;

    fn tokens() -> Tokens {
        Tokens {
            keys: vec![
                SigningKey {
                    id: "a".into(),
                    secret: vec![1; 16],
                },
                SigningKey {
                    id: "b".into(),
                    secret: vec![2; 16],
                },
            ],
            ..Tokens::default()
        }
    }

    #[test]
    fn signs_with_the_first_or_the_named_key_and_verifies() {
        let t = tokens();
        let req = Request {
            prefix: "/titles/81/",
            expiry: 2_000_000_000,
            ..Request::default()
        };
        let first = sign(&t, &req).expect("signs");
        let named = sign(
            &t,
            &Request {
                key: Some("b"),
                ..req.clone()
            },
        )
        .expect("signs");
        assert_ne!(first, named);
        for q in [&first, &named] {
            assert!(
                eddy_proto::token::verify(
                    &t.keys,
                    &t.names,
                    "/titles/81/seg-1.m4s",
                    Some(q),
                    "127.0.0.1".parse().expect("ip"),
                    1_900_000_000,
                )
                .is_ok(),
                "{q}"
            );
        }
    }

    #[test]
    fn errors_name_the_flag() {
        let t = tokens();
        let ok = Request {
            prefix: "/t/",
            expiry: 1,
            ..Request::default()
        };
        let e = sign(
            &t,
            &Request {
                key: Some("zz"),
                ..ok.clone()
            },
        )
        .expect_err("no key");
        assert!(e.to_string().starts_with("tokens.keys = zz"), "{e}");
        let e = sign(
            &t,
            &Request {
                prefix: "t/",
                ..ok.clone()
            },
        )
        .expect_err("prefix");
        assert!(e.to_string().starts_with("--prefix"), "{e}");
        let e = sign(
            &t,
            &Request {
                client: Some("10.0.0.1/8"),
                ..ok
            },
        )
        .expect_err("cidr");
        assert!(e.to_string().starts_with("--client"), "{e}");
        assert!(sign(&Tokens::default(), &Request::default()).is_err());
    }
}
