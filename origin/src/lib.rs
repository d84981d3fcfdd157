//! eddy-origin: the reference control plane and origin of eddy.
//!
//! Owns: signing a fill manifest per appliance ([`issue`]) from a content
//! directory and an optional catalogue ([`catalogue`], [`content`]), serving
//! that content with single byte ranges ([`object`], [`range`]) over plain
//! HTTP/1.1 ([`http`]), the test-only fault mode ([`fault`]), the counters
//! tests read back ([`stats`]), the key file ([`keyfile`]), the report sink
//! and the appliance views ([`report`]), and the state kept across restarts
//! — reports, manifests issued, the generation — behind one interface
//! ([`store`]) implemented with SQLite ([`sqlite`]). The binary
//! `eddy-origin` (in the root package) only parses its command line into
//! [`options`] and calls [`keygen`], [`pubkey`] or [`serve`].
//!
//! It must never depend on the appliance crate (`eddy`): everything both
//! sides share lives in `eddy-proto`, whose wire types are used here as they
//! are. Errors carry a [`Class`] so that the binary, and only the binary,
//! turns them into exit codes.

pub mod catalogue;
pub mod content;
pub mod fault;
pub mod http;
pub mod issue;
pub mod keyfile;
pub mod object;
pub mod options;
pub mod range;
pub mod report;
pub mod sources;
pub mod sqlite;
pub mod stats;
pub mod store;

use std::path::Path;

pub use options::ServeOptions;

/// What kind of failure an error is, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Bad usage or configuration (exit 64).
    Usage,
    /// A disk or socket failed (exit 74).
    Io,
    /// Anything else (exit 1).
    Other,
}

/// Every error a command of `eddy-origin` can end with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Key(#[from] keyfile::KeyFileError),
    #[error(transparent)]
    Serve(#[from] http::ServeError),
    #[error(transparent)]
    Options(#[from] options::TokenFlagError),
}

impl Error {
    /// The class of this error, for the exit code.
    pub fn class(&self) -> Class {
        match self {
            Error::Key(e) => e.class(),
            Error::Serve(e) => e.class(),
            Error::Options(_) => Class::Usage,
        }
    }
}

/// `eddy-origin keygen --out FILE`: writes a new signing key and returns the
/// text of its public half.
pub fn keygen(out: &Path) -> Result<String, Error> {
    Ok(keyfile::generate(out)?.to_text())
}

/// `eddy-origin pubkey --key FILE`: the text of the key's public half.
pub fn pubkey(key: &Path) -> Result<String, Error> {
    Ok(keyfile::load(key)?.public().to_text())
}

/// `eddy-origin serve`: runs until SIGTERM or SIGINT. `ready` is called once
/// with the bound address, before the first connection is accepted.
pub fn serve(
    options: ServeOptions,
    ready: impl FnOnce(std::net::SocketAddr) + Send + 'static,
) -> Result<(), Error> {
    Ok(http::run(options, ready)?)
}

#[cfg(test)]
mod tests {
    /// The layout rule: eddy-origin depends on eddy-proto and ordinary crates,
    /// never on the appliance crate or any other eddy crate.
    #[test]
    fn depends_on_no_eddy_crate_but_the_protocol() -> Result<(), toml::de::Error> {
        let manifest: toml::Table = toml::from_str(include_str!("../Cargo.toml"))?;
        for section in ["dependencies", "dev-dependencies"] {
            let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else {
                continue;
            };
            for (name, spec) in deps {
                let path = spec.get("path").and_then(|p| p.as_str());
                if name.starts_with("eddy") || path.is_some() {
                    assert_eq!(
                        (name.as_str(), path),
                        ("eddy-proto", Some("../proto")),
                        "[{section}] {name}"
                    );
                }
            }
        }
        Ok(())
    }
}
