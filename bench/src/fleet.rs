//! The servers of one run, per side (nginx, eddy): the main instance that serves every scenario but (g), the
//! instance of (g) with its connection limits raised (started afresh before each run of (g), so that memory an
//! allocator kept from an earlier run's 10,000 connections does not count in the next one's "before"), and which
//! address each scenario is sent to (plain, the cold-cache block of nginx, TLS, or the (g) instance). Also where
//! each side reads big.bin from, which (f) evicts.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::eddy;
use crate::error::Result;
use crate::nginx;
use crate::scenario::{Load, Scenario, Transport};
use crate::server::{Kind, Server};

/// One side of the comparison.
pub struct Side {
    pub kind: Kind,
    pub main: Server,
    /// The instance of scenario (g), when (g) runs.
    pub idle: Option<Server>,
    /// How to start it again.
    pub idle_recipe: Option<IdleRecipe>,
    /// Where (f) is sent: nginx's `aio threads` block; eddy's plain listener (it has no such knob).
    pub cold: Option<SocketAddr>,
    /// The TLS listener of (d) and (e), or why there is none.
    pub tls: std::result::Result<SocketAddr, String>,
    /// The files this side serves big.bin from (nginx: the source; eddy: its store copy).
    pub big_files: Vec<PathBuf>,
}

/// How to start a side's (g) instance.
pub enum IdleRecipe {
    Nginx {
        bin: PathBuf,
        opts: nginx::Options,
        run_dir: PathBuf,
    },
    Eddy {
        bin: PathBuf,
        opts: eddy::Options,
        run_dir: PathBuf,
    },
}

impl IdleRecipe {
    /// Start the instance.
    pub fn start(&self) -> Result<Server> {
        match self {
            IdleRecipe::Nginx { bin, opts, run_dir } => Ok(nginx::start(bin, opts, run_dir)?.0),
            IdleRecipe::Eddy { bin, opts, run_dir } => Ok(eddy::start(bin, opts, run_dir)?.server),
        }
    }
}

/// How the body check reaches an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The raw HTTP/1.1 client over TCP.
    Plain,
    /// curl, HTTP/1.1 over TLS.
    Tls,
    /// curl, HTTP/2 over TLS.
    H2,
}

impl Side {
    /// The server a scenario's load goes to, and its address; Err with the reason when this side cannot run it.
    pub fn target(&self, sc: &Scenario) -> std::result::Result<(&Server, SocketAddr), String> {
        if matches!(sc.load, Load::Idle { .. }) {
            let s = self
                .idle
                .as_ref()
                .ok_or_else(|| "no instance for (g) was started".to_string())?;
            return Ok((s, s.addr));
        }
        match sc.transport {
            Transport::Http if sc.cold => Ok((&self.main, self.cold.unwrap_or(self.main.addr))),
            Transport::Http => Ok((&self.main, self.main.addr)),
            Transport::Https | Transport::H2 => Ok((&self.main, self.tls.clone()?)),
        }
    }

    /// How the body check reaches a scenario's endpoint.
    pub fn via(sc: &Scenario) -> Via {
        match sc.transport {
            Transport::Http => Via::Plain,
            Transport::Https => Via::Tls,
            Transport::H2 => Via::H2,
        }
    }

    /// Replace the (g) instance with a fresh one (stopping the old one first, so they never hold memory at once).
    pub fn restart_idle(&mut self) -> Result<()> {
        let Some(recipe) = &self.idle_recipe else {
            return Ok(());
        };
        if let Some(old) = self.idle.take() {
            if let Err(e) = old.stop() {
                eprintln!("{} (g): {e}", self.kind.name());
            }
        }
        self.idle = Some(recipe.start()?);
        Ok(())
    }

    /// Whether every process of this side is still running; Err names the one that died.
    pub fn alive(&mut self) -> Result<()> {
        if !self.main.alive() {
            return Err(self.main.died());
        }
        if let Some(s) = self.idle.as_mut() {
            if !s.alive() {
                return Err(s.died());
            }
        }
        Ok(())
    }

    /// Stop every instance; the messages of those that did not stop cleanly.
    pub fn stop(self) -> Vec<String> {
        let name = self.kind.name();
        let mut notes = Vec::new();
        for (what, s) in std::iter::once(("", self.main)).chain(self.idle.map(|s| (" (g)", s))) {
            match s.stop() {
                Ok(st) if st.success() => {}
                Ok(st) => notes.push(format!("{name}{what} exited with {st} when stopped")),
                Err(e) => notes.push(e.to_string()),
            }
        }
        notes
    }
}
