//! The bench's error type: every failure that stops a run, each naming what failed and where.
//!
//! Wrong bytes from a server are not an `Error`: they are recorded against that server's runs (which then score 0),
//! because a bench that stopped on them would hide the other server's figures.

use std::path::Path;

/// What stopped the bench.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or socket operation failed; `context` names the path or the action.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A flag or a combination of flags makes no sense.
    #[error("usage: {0}")]
    Usage(String),
    /// A tool the bench drives (nginx, wrk, eddy) is missing or misbehaved.
    #[error("{tool}: {msg}")]
    Tool { tool: String, msg: String },
    /// A server under test failed to start, died, or did not stop.
    #[error("{server}: {msg}")]
    Server { server: String, msg: String },
    /// The results could not be encoded.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result of the bench's fallible steps.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error with its context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A tool error.
    pub fn tool(tool: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Tool {
            tool: tool.into(),
            msg: msg.into(),
        }
    }

    /// A server error.
    pub fn server(server: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Server {
            server: server.into(),
            msg: msg.into(),
        }
    }
}

/// Adds context to `std::io::Result`s.
pub trait IoContext<T> {
    /// Attach a lazily built description of the action.
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
    /// Attach "VERB PATH" as the description.
    fn at(self, verb: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }

    fn at(self, verb: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(format!("{verb} {}", path.display()), e))
    }
}
