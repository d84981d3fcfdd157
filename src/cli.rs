//! The command line of `eddy` (clap types only; `main` runs them).
//!
//! Owns: subcommands, flags and their help text. It must not read files or
//! touch the network: it only describes what the user asked for.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// eddy: an edge cache appliance for video.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every subcommand that reads the configuration.
#[derive(Debug, Clone, Args, Default)]
pub struct Common {
    /// TOML configuration file (see docs/config.md). Without it, built-in defaults apply.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serving address (IP:PORT); repeatable; replaces `serve.listen`.
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Disk root, one per drive; repeatable; replaces `store.disks`.
    #[arg(long = "disk", value_name = "DIR")]
    pub disks: Vec<PathBuf>,
    /// Admin address (IP:PORT) for /metrics, /healthz and the status page, or
    /// `off`; replaces `admin.listen`.
    #[arg(long = "admin-listen", value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Fill from this control-plane manifest URL (`fill.manifest_url`); turns the fill on.
    #[arg(long = "fill-manifest", value_name = "URL")]
    pub fill_manifest: Option<String>,
    /// A control-plane public key `ed25519:…` (`fill.keys`); repeatable.
    #[arg(long = "fill-key", value_name = "KEY")]
    pub fill_keys: Vec<String>,
    /// `HH:MM-HH:MM` local time, or `always` (`fill.window`).
    #[arg(long = "fill-window", value_name = "WINDOW")]
    pub fill_window: Option<String>,
    /// This appliance's id in manifests (`fill.appliance`; default: the host name).
    #[arg(long = "fill-appliance", value_name = "ID")]
    pub fill_appliance: Option<String>,
    /// Allow a plain http:// manifest URL (`fill.insecure_plain_http`): tests and the demo only.
    #[arg(long = "fill-insecure-plain-http")]
    pub fill_insecure_plain_http: bool,
    /// Fill rate cap in Mbit/s, 0 = none (`fill.max_rate_mbps`).
    #[arg(long = "fill-max-rate-mbps", value_name = "MBPS")]
    pub fill_max_rate_mbps: Option<i64>,
    /// How often the manifest is fetched, for example `30s` (`fill.poll_interval`).
    #[arg(long = "fill-poll", value_name = "DURATION")]
    pub fill_poll: Option<String>,
    /// Post health, popularity and inventory reports here (`report.url`); the token is
    /// `report.token` or EDDY_REPORT_TOKEN.
    #[arg(long = "report-url", value_name = "URL")]
    pub report_url: Option<String>,
    /// Allow a plain http:// report URL (`report.insecure_plain_http`): tests and the demo only.
    #[arg(long = "report-insecure-plain-http")]
    pub report_insecure_plain_http: bool,
    /// The report token, set by `eddy demo` (never a flag: a token on a
    /// command line is visible in `ps`; use `report.token` or EDDY_REPORT_TOKEN).
    #[arg(skip)]
    pub report_token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the store over HTTP until SIGTERM, then drain.
    Serve(Common),
    /// Check the configuration and print what it resolves to; exit 64 if it is bad.
    CheckConfig(Common),
    /// Inspect or load the content store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The whole system on loopback until Ctrl-C: a control plane (eddy-origin)
    /// over a sample library, and an appliance of two empty disks that fills
    /// itself from its signed manifest while serving. Prints curl lines to try.
    Demo {
        /// Serving address.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: String,
        /// Admin address (/metrics, /fill/status, the status page).
        #[arg(long, default_value = "127.0.0.1:9180", value_name = "ADDR")]
        admin_listen: String,
    },
    /// Signed URLs.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Drain the running server through its admin listener, as SIGTERM does
    /// (needs `admin.token` or EDDY_ADMIN_TOKEN).
    Drain(Common),
    /// The fill from the control plane, through the admin listener.
    #[command(subcommand)]
    Fill(FillCommand),
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum FillCommand {
    /// Start a fill now, even outside the window (needs `admin.token` or EDDY_ADMIN_TOKEN).
    Now(Common),
    /// Show the fill's progress: a live bar on a terminal until the run ends, or JSON.
    Status {
        #[command(flatten)]
        common: Common,
        /// Print the status once as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print the query string (`e=…&t=…`) that lets a client fetch PREFIX (a folder
    /// when it ends in `/`, else one object) until the expiry. Signs with the
    /// first key in `[tokens]`, or the one named by --key.
    Sign {
        /// Configuration file holding `[[tokens.keys]]`.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Path prefix the token covers, for example `/titles/81/`.
        #[arg(long)]
        prefix: String,
        /// Lifetime from now, for example `6h`.
        #[arg(long, required_unless_present = "expiry", conflicts_with = "expiry")]
        ttl: Option<String>,
        /// Absolute expiry in Unix seconds (instead of --ttl).
        #[arg(long)]
        expiry: Option<u64>,
        /// Only clients in this block, for example `203.0.113.0/24`.
        #[arg(long, value_name = "CIDR")]
        client: Option<String>,
        /// Key id to sign with (default: the first key).
        #[arg(long, value_name = "ID")]
        key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a directory tree into the store (key = path relative to SRC_DIR),
    /// keeping modification times and holes. Each object appears atomically.
    Import {
        #[command(flatten)]
        common: Common,
        /// The directory to import.
        #[arg(value_name = "SRC_DIR")]
        src: PathBuf,
    },
    /// List the objects in the store: KEY, SIZE, DISK.
    Ls(Common),
    /// Show each drive's state (active, draining, failed) through the
    /// running server's admin listener.
    Disks(Common),
    /// Re-hash every object against the digest recorded at install, one
    /// reader per drive; list those that do not match (bit rot). Exit 0: all
    /// match; 4: mismatches left in place; 1: mismatches quarantined
    /// (`--repair`). For a store no server runs on; a running server checks
    /// itself in the background (`store.fsck_mib_per_sec`).
    Fsck {
        #[command(flatten)]
        common: Common,
        /// Move each mismatch into `quarantine/` on its drive, where nothing
        /// serves from; the next fill fetches it again.
        #[arg(long)]
        repair: bool,
        /// Read at most this many MiB/s per drive (0: as fast as it goes).
        #[arg(long, value_name = "MIB", default_value_t = 0)]
        max_rate_mib: u64,
    },
    /// Take a drive out of placement for maintenance: it keeps serving what
    /// it holds, the fill puts nothing new on it (admin listener, admin.token).
    Drain {
        #[command(flatten)]
        common: Common,
        /// The drive's root, as configured.
        #[arg(value_name = "DISK")]
        disk: PathBuf,
    },
    /// Put a drained or failed drive back in service (a failed one is probed
    /// first, and refused while it still fails).
    Enable {
        #[command(flatten)]
        common: Common,
        /// The drive's root, as configured.
        #[arg(value_name = "DISK")]
        disk: PathBuf,
    },
}
