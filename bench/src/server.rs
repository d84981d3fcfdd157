//! A server under test as a child process: which one it is, where it listens, which processes to measure,
//! and how it is stopped (gracefully by signal, then killed with its whole process tree if it hangs).
//! Also finding the tools the bench runs (in PATH or a few fixed places) and free loopback ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::procstat;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Nginx,
    Eddy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Eddy => "eddy",
        }
    }
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// Where its stderr (or error log) goes, for messages.
    pub log: PathBuf,
    child: Child,
    stop_signal: Signal,
    exited: Option<ExitStatus>,
}

impl Server {
    pub fn new(
        kind: Kind,
        addr: SocketAddr,
        log: PathBuf,
        child: Child,
        stop_signal: Signal,
    ) -> Self {
        Server {
            kind,
            addr,
            log,
            child,
            stop_signal,
            exited: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The processes whose CPU and memory count as this server's: the child and all of its descendants
    /// (nginx: master and workers; eddy: its one process, whose times include all threads).
    pub fn pids(&self) -> Vec<u32> {
        procstat::tree(self.pid())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                self.exited = Some(st);
                false
            }
            Err(_) => false,
        }
    }

    /// An error saying that the server died, pointing at its log.
    pub fn died(&mut self) -> Error {
        self.alive();
        let how = self.exited.map_or_else(
            || "is not running".to_string(),
            |st| format!("exited ({st})"),
        );
        Error::server(
            self.kind.name(),
            format!("{how}; see {}", self.log.display()),
        )
    }

    /// Wait until `addr` accepts a connection (the server is up), or fail after `limit`.
    pub fn wait_accepting(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if !self.alive() {
                return Err(self.died());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::server(
                    self.kind.name(),
                    format!(
                        "not accepting on {} after {limit:?}; see {}",
                        self.addr,
                        self.log.display()
                    ),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop gracefully (nginx: SIGQUIT, eddy: SIGTERM) and wait; kill the process tree if it does not exit in time.
    pub fn stop(mut self) -> Result<ExitStatus> {
        let name = self.kind.name();
        if let Some(st) = self.exited {
            return Ok(st);
        }
        signal(self.pid(), self.stop_signal);
        match self.wait_for_exit(Duration::from_secs(15)) {
            Some(st) => Ok(st),
            None => {
                self.kill_tree();
                Err(Error::server(
                    name,
                    "did not exit within 15 s of the stop signal; killed",
                ))
            }
        }
    }

    fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !self.alive() {
                return self.exited;
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn kill_tree(&mut self) {
        for pid in self.pids() {
            signal(pid, Signal::SIGKILL);
        }
        if let Ok(st) = self.child.wait() {
            self.exited = Some(st);
        }
    }
}

impl Drop for Server {
    /// A server still running when the bench bails out is stopped, never left behind.
    fn drop(&mut self) {
        if self.alive() {
            signal(self.pid(), self.stop_signal);
            if self.wait_for_exit(Duration::from_secs(5)).is_none() {
                self.kill_tree();
            }
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Ok(p) = i32::try_from(pid) {
        // The process may be gone already; nothing else to do then.
        let _ = kill(Pid::from_raw(p), sig);
    }
}

/// A loopback port that was free a moment ago (bound to :0 and released).
pub fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("bind 127.0.0.1:0 to pick a free port", e))?;
    l.local_addr()
        .map_err(|e| Error::io("local address of a bound socket", e))
}

/// Find a tool: a path with a `/` is taken as is; a bare name is looked up in PATH, then in `extra` directories.
pub fn find_tool(name: &Path, extra: &[&str]) -> Option<PathBuf> {
    if name.components().count() > 1 || name.is_absolute() {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
