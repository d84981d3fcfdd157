//! The `eddy-origin` binary: the reference control plane and origin.
//!
//! Thin: it parses the command line (clap), calls into the `eddy_origin`
//! library and turns the outcome into an exit code (the only place that
//! does): 0 success, 64 bad usage or configuration, 74 a disk or socket
//! error, 1 anything else. It uses nothing of the `eddy` crate.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use eddy_origin::fault::{self, FaultSpec};
use eddy_origin::options::{self, ServeOptions};
use eddy_origin::Class;

const EXIT_USAGE: u8 = 64;
const EXIT_IO: u8 = 74;

/// The reference control plane of eddy: signed fill manifests and content with Range.
#[derive(Debug, Parser)]
#[command(name = "eddy-origin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate an Ed25519 signing key (PEM PKCS#8, mode 0600); print its public key.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key (`ed25519:<base64url>`) of a signing key.
    Pubkey {
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Serve signed manifests and content over plain HTTP/1.1 until SIGTERM or SIGINT.
    Serve(Box<Serve>),
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The content directory: every object is the file DIR/{key}.
    #[arg(long, value_name = "DIR")]
    content: PathBuf,
    /// The signing key (from `eddy-origin keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// A TOML catalogue (objects, ranks, appliances), re-read on every manifest request.
    /// Without it, every file is listed for every appliance, ranked by key.
    #[arg(long, value_name = "FILE")]
    catalogue: Option<PathBuf>,
    /// The URL this origin is reached at, for the default source (default: http://ADDR).
    #[arg(long, value_name = "URL", value_parser = options::parse_public_url)]
    public_url: Option<String>,
    /// A source URL base, repeatable, in order of preference: each object's URL is
    /// URLBASE + its key. Default: PUBLIC-URL/content/.
    #[arg(long = "source", value_name = "URLBASE", value_parser = options::parse_source)]
    sources: Vec<String>,
    /// How long a manifest is valid (humantime: 24h, 90s, 0s).
    #[arg(long, value_name = "DURATION", default_value = options::DEFAULT_MANIFEST_TTL,
          value_parser = options::parse_ttl)]
    manifest_ttl: Duration,
    /// The site's fill start time, HH:MM, put in every manifest.
    #[arg(long, value_name = "HH:MM", value_parser = options::parse_fill_start)]
    fill_start: Option<String>,
    /// The first generation (default: the current unix time, so a restart never goes back).
    #[arg(long, value_name = "N")]
    generation_start: Option<u64>,
    /// TEST ONLY: make answers fail. Repeatable. GLOB=KIND[,times=K] for content, KIND one of
    /// drop-after:N, corrupt, stall, status:CODE (`*` in GLOB matches anything; times=K: only
    /// the first K requests of each matching key); manifest=tamper or manifest=appliance:ID for
    /// manifests. Never use in production.
    #[arg(long = "fault", value_name = "SPEC", value_parser = fault::parse)]
    faults: Vec<FaultSpec>,
    /// The SQLite database of reports, manifests issued and the generation (created if
    /// absent). Without it: in memory, lost on restart.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// The bearer token APPLIANCE posts its reports with, at least 16 visible ASCII
    /// characters. Repeatable, once per appliance.
    // Checked after clap, so that a refusal never prints the token.
    #[arg(long = "report-token", value_name = "APPLIANCE=TOKEN")]
    report_tokens: Vec<String>,
}

impl TryFrom<Serve> for ServeOptions {
    type Error = eddy_origin::Error;

    fn try_from(s: Serve) -> Result<ServeOptions, eddy_origin::Error> {
        Ok(ServeOptions {
            listen: s.listen,
            content: s.content,
            key: s.key,
            catalogue: s.catalogue,
            public_url: s.public_url,
            sources: s.sources,
            manifest_ttl: s.manifest_ttl,
            fill_start: s.fill_start,
            generation_start: s.generation_start,
            faults: s.faults,
            db: s.db,
            report_tokens: options::parse_report_tokens(&s.report_tokens)?,
        })
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return if usage_error {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logs();
    let result = match cli.command {
        Command::Keygen { out } => eddy_origin::keygen(&out).map(|public| println!("{public}")),
        Command::Pubkey { key } => eddy_origin::pubkey(&key).map(|public| println!("{public}")),
        Command::Serve(s) => ServeOptions::try_from(*s).and_then(|o| {
            eddy_origin::serve(o, |addr| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "eddy-origin: listening on http://{addr}");
                let _ = out.flush();
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eddy-origin: {e}");
            ExitCode::from(match e.class() {
                Class::Usage => EXIT_USAGE,
                Class::Io => EXIT_IO,
                Class::Other => 1,
            })
        }
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
