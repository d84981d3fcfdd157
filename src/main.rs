//! The `eddy` binary: parse the command line, load and check the configuration
//! before anything is bound, run the subcommand, and turn errors into exit codes
//! (the only place that does): 0 success, 64 bad usage or configuration,
//! 74 a disk or socket error, 1 anything else.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use eddy::admin;
use eddy::cli::{Cli, Command, Common, FillCommand, StoreCommand, TokenCommand};
use eddy::clock::{Clock as _, SystemClock};
use eddy::config::{self, defaults, Config, ConfigError, Overrides};
use eddy::metrics::Registry;
use eddy::notify;
use eddy::serve::answer::Policy;
use eddy::serve::listen::{self, Kind, Listening};
use eddy::serve::metrics::ServeMetrics;
use eddy::serve::tls::certs::{self, Certs, TlsError};
use eddy::serve::tls::conn::TlsListener;
use eddy::serve::{self, Shared};
use eddy::store::{import, CachePolicy, Store, StoreError};

/// EX_IOERR from sysexits.h: a disk or socket failed.
const EXIT_IO: u8 = 74;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return if usage_error {
                ExitCode::from(defaults::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("eddy: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// `eddy store fsck` found objects that do not match their digests: exit 4
/// when they were left in place, 1 when they were quarantined (`--repair`),
/// as fsck(8) tells errors left from errors corrected.
#[derive(Debug, thiserror::Error)]
#[error("{found} objects do not match their digests{}", if *.repair { "; quarantined" } else { "; run with --repair to quarantine them" })]
struct FsckFound {
    found: usize,
    repair: bool,
}

fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<FsckFound>() {
            return if f.repair { 1 } else { 4 };
        }
        // A certificate or key that cannot be used is a configuration error.
        if cause.is::<ConfigError>() || cause.is::<TlsError>() {
            return defaults::EXIT_USAGE;
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            return match store {
                StoreError::NoDisks | StoreError::BadKey { .. } => defaults::EXIT_USAGE,
                _ => EXIT_IO,
            };
        }
        if let Some(fill) = cause.downcast_ref::<eddy::cmd::fill::FillCmdError>() {
            use eddy::cmd::fill::FillCmdError as F;
            return match fill {
                F::Ca { .. } | F::NoAdmin => defaults::EXIT_USAGE,
                F::Admin { .. } | F::Start(_) => EXIT_IO,
                // A metric family refused at start-up is a bug, not the operator's.
                F::Refused { .. } | F::BadStatus(_) | F::Metrics(_) => 1,
            };
        }
        if let Some(r) = cause.downcast_ref::<eddy::report::ReportError>() {
            return match r {
                eddy::report::ReportError::Ca { .. } => defaults::EXIT_USAGE,
                eddy::report::ReportError::Thread(_) => EXIT_IO,
                eddy::report::ReportError::Metrics(_) => 1,
            };
        }
        if cause.is::<std::io::Error>() {
            return EXIT_IO;
        }
    }
    1
}

fn load(common: &Common) -> Result<Config, ConfigError> {
    config::load(common.config.as_deref(), &overrides(common))
}

/// The command line's values, which replace the config file's (at start and
/// on every reload).
fn overrides(common: &Common) -> Overrides {
    Overrides {
        listen: common.listen.clone(),
        disks: common.disks.clone(),
        admin_listen: common.admin_listen.clone(),
        fill_manifest: common.fill_manifest.clone(),
        fill_keys: common.fill_keys.clone(),
        fill_window: common.fill_window.clone(),
        fill_appliance: common.fill_appliance.clone(),
        fill_insecure_plain_http: common.fill_insecure_plain_http,
        fill_max_rate_mbps: common.fill_max_rate_mbps,
        fill_poll: common.fill_poll.clone(),
        report_url: common.report_url.clone(),
        report_insecure_plain_http: common.report_insecure_plain_http,
        report_token: common.report_token.clone(),
    }
}

/// Opens the configured disks; a disk that cannot be used is reported and left
/// out of service while the others carry on.
fn open_store(config: &Config) -> Result<Store, StoreError> {
    let cache = CachePolicy {
        entries: config.open_file_cache,
        valid_for: config.open_file_valid,
    };
    let (store, skipped) = Store::open(&config.disks, cache)?;
    for e in skipped {
        tracing::error!(error = %e, "disk out of service");
    }
    Ok(store)
}

/// Installs the log subscriber. Returns how to change its level later (a
/// reload of `log.level`), or `None` when `EDDY_LOG` decides the filter.
fn init_logging(level: &str, json: bool) -> Option<eddy::reload::SetLevel> {
    use tracing_subscriber::EnvFilter;
    let from_env = EnvFilter::try_from_env("EDDY_LOG").ok();
    let by_env = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // The JSON and the text subscribers are two types, hence two handles.
    let set: eddy::reload::SetLevel = if json {
        let builder = builder.json().with_filter_reloading();
        let handle = builder.reload_handle();
        let _ = builder.try_init();
        Box::new(move |level: &str| {
            handle
                .reload(EnvFilter::new(level))
                .map_err(|e| e.to_string())
        })
    } else {
        let builder = builder.with_filter_reloading();
        let handle = builder.reload_handle();
        let _ = builder.try_init();
        Box::new(move |level: &str| {
            handle
                .reload(EnvFilter::new(level))
                .map_err(|e| e.to_string())
        })
    };
    (!by_env).then_some(set)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => {
            println!("eddy {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::CheckConfig(common) => {
            let config = load(&common)?;
            // The certificate is checked too: a config that names an unusable
            // one would fail at start.
            if let Some(t) = &config.tls {
                Certs::load(&t.cert, &t.key)?;
            }
            println!("configuration is valid");
            for addr in &config.listen {
                println!("serve.listen  {addr}");
            }
            println!("serve.require_tokens  {}", config.require_tokens);
            match &config.tls {
                Some(t) => {
                    for addr in &t.listen {
                        println!("tls.listen    {addr}");
                    }
                    println!("tls.cert      {} (loaded)", t.cert.display());
                    println!("tls.require_tokens  {}", t.require_tokens);
                    let ktls = certs::ktls_mode(t.ktls);
                    println!("tls.ktls      {} ({})", ktls.mode, ktls.reason);
                }
                None => println!("tls           off (no tls.listen)"),
            }
            for disk in &config.disks {
                println!("store.disk    {}", disk.display());
            }
            println!("limits        {:?}", config.limits);
            println!("log.level     {}", config.log_level);
            match config.admin_listen {
                Some(addr) => println!("admin.listen  {addr}"),
                None => println!("admin.listen  off"),
            }
            match &config.fill {
                Some(f) => {
                    println!("fill.manifest_url  {}", f.manifest_url);
                    println!("fill.appliance  {}", f.appliance);
                    println!("fill.window   {}", f.window);
                    println!("fill.max_rate_mbps  {}", f.max_rate_mbps);
                    for k in &f.keys {
                        println!("fill.keys     {} (id {})", k.to_text(), k.id.0);
                    }
                }
                None => println!("fill          off (no fill.manifest_url)"),
            }
            Ok(())
        }
        Command::Store(StoreCommand::Import { common, src }) => {
            let config = load(&common)?;
            init_logging(&config.log_level, config.log_json);
            if !src.is_dir() {
                return Err(ConfigError::Invalid {
                    key: "SRC_DIR",
                    value: src.display().to_string(),
                    reason: "not a directory".into(),
                }
                .into());
            }
            import::prepare_disks(&config.disks)?;
            let store = open_store(&config)?;
            let report = import::import_tree(&store, &src)?;
            for path in &report.skipped {
                eprintln!("eddy: skipped (not a regular file): {}", path.display());
            }
            println!(
                "imported {} objects, {} bytes",
                report.objects, report.bytes
            );
            Ok(())
        }
        Command::Store(StoreCommand::Ls(common)) => {
            let config = load(&common)?;
            init_logging(&config.log_level, config.log_json);
            let store = open_store(&config)?;
            let mut out = std::io::stdout().lock();
            for row in store.list() {
                writeln!(out, "{}\t{}\t{}", row.key, row.len, row.disk_root.display())?;
            }
            Ok(())
        }
        Command::Store(StoreCommand::Fsck {
            common,
            repair,
            max_rate_mib,
        }) => {
            let config = load(&common)?;
            init_logging(&config.log_level, config.log_json);
            let store = open_store(&config)?;
            let passes =
                eddy::store::fsck::check_all(&store, repair, max_rate_mib.saturating_mul(1 << 20));
            let mut out = std::io::stdout().lock();
            let mut found = 0;
            for (disk, pass) in store.disks().iter().zip(&passes) {
                for (key, moved) in &pass.mismatches {
                    found += 1;
                    match moved {
                        Some(to) => writeln!(
                            out,
                            "MISMATCH\t{key}\t{}\tquarantined: {}",
                            disk.root.display(),
                            to.display()
                        )?,
                        None => writeln!(out, "MISMATCH\t{key}\t{}", disk.root.display())?,
                    }
                }
            }
            let checked: u64 = passes.iter().map(|p| p.checked).sum();
            let bytes: u64 = passes.iter().map(|p| p.bytes).sum();
            let errors: u64 = passes.iter().map(|p| p.errors).sum();
            writeln!(
                out,
                "checked {checked} objects, {bytes} bytes: {found} mismatches, {errors} unreadable"
            )?;
            out.flush()?;
            if found > 0 {
                return Err(FsckFound { found, repair }.into());
            }
            Ok(())
        }
        Command::Store(StoreCommand::Disks(common)) => Ok(eddy::cmd::fill::disks(&load(&common)?)?),
        Command::Store(StoreCommand::Drain { common, disk }) => {
            Ok(eddy::cmd::fill::set_disk(&load(&common)?, "drain", &disk)?)
        }
        Command::Store(StoreCommand::Enable { common, disk }) => {
            Ok(eddy::cmd::fill::set_disk(&load(&common)?, "enable", &disk)?)
        }
        Command::Serve(common) => serve_command(&common, None),
        Command::Drain(common) => Ok(eddy::cmd::fill::drain(&load(&common)?)?),
        Command::Fill(FillCommand::Now(common)) => Ok(eddy::cmd::fill::now(&load(&common)?)?),
        Command::Fill(FillCommand::Status { common, json }) => {
            Ok(eddy::cmd::fill::status(&load(&common)?, json)?)
        }
        Command::Demo {
            listen,
            admin_listen,
        } => demo(listen, admin_listen),
        Command::Token(TokenCommand::Sign {
            config,
            prefix,
            ttl,
            expiry,
            client,
            key,
        }) => {
            let tokens = config::load_tokens(&config)?;
            let expiry = match (expiry, ttl) {
                (Some(e), _) => e,
                (None, Some(ttl)) => {
                    let d = humantime::parse_duration(&ttl).map_err(|e| ConfigError::Invalid {
                        key: "--ttl",
                        value: ttl.clone(),
                        reason: e.to_string(),
                    })?;
                    eddy::clock::unix_secs(SystemClock.now()) + d.as_secs()
                }
                (None, None) => unreachable!("clap requires --ttl or --expiry"),
            };
            let request = eddy::cmd::token::Request {
                key: key.as_deref(),
                prefix: &prefix,
                expiry,
                client: client.as_deref(),
            };
            let query = eddy::cmd::token::sign(&tokens, &request)?;
            let path = eddy::cmd::token::sign_path(&tokens, &request)?;
            // Line 1: the query form; line 2: the path form, which relative
            // URIs in a playlist inherit.
            println!("{query}");
            println!("{path}");
            Ok(())
        }
    }
}

/// The whole system on loopback (`eddy::demo`): a sample library served by a
/// control plane in this process, and an appliance of two empty disks that
/// fills itself from its signed manifest while it serves, until Ctrl-C.
fn demo(listen: String, admin_listen: String) -> anyhow::Result<()> {
    let demo = eddy::demo::prepare()?;
    let served = (|| {
        let (origin, public) = eddy::demo::start_origin(&demo)?;
        println!(
            "eddy demo: control plane (eddy-origin) on http://{origin}, signing with {public}"
        );
        let common = eddy::demo::common(&demo, origin, public, listen, admin_listen);
        let (tx, rx) = std::sync::mpsc::channel();
        eddy::demo::tell_when_filled(rx, &demo, origin)?;
        serve_command(&common, Some(tx))
    })();
    let _ = std::fs::remove_dir_all(&demo.work);
    served
}

fn serve_command(
    common: &Common,
    ready: Option<std::sync::mpsc::Sender<eddy::demo::Ready>>,
) -> anyhow::Result<()> {
    let config = load(common)?;
    let set_level = init_logging(&config.log_level, config.log_json);
    // Certificates load before the store opens and anything is bound: a bad
    // one fails start-up as a configuration error (64).
    let tls_listener = match &config.tls {
        Some(t) => {
            let certs = Arc::new(Certs::load(&t.cert, &t.key)?);
            let ktls = certs::ktls_mode(t.ktls);
            tracing::info!(mode = ktls.mode, reason = ktls.reason, "kernel TLS");
            Some((
                t,
                ktls,
                Arc::new(TlsListener {
                    certs,
                    policy: Policy {
                        require_tokens: t.require_tokens,
                        cors: t.cors,
                    },
                    http2: config.http2,
                    frame_bytes: t.frame_bytes,
                }),
            ))
        }
        None => None,
    };
    if config.fill.is_some() {
        eddy::store::install::prepare_existing(&config.disks);
    }
    serve::fds::check(&config);
    let store = open_store(&config)?;
    tracing::info!(
        objects = store.len(),
        disks = store.disks().len(),
        "store opened"
    );
    let clock = SystemClock;
    let salt = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let store = Arc::new(store);
    serve::prefetch::set_read_deadline(config.read_timeout);
    let registry = Arc::new(Registry::new(clock.now())?);
    eddy::store::metrics::StoreCollector::register(store.clone(), &registry)?;
    let shared = Arc::new(Shared {
        store: store.clone(),
        live: eddy::reload::Live::new(eddy::reload::Settings {
            limits: config.limits,
            tokens: config.tokens.clone(),
        }),
        clock: Box::new(clock),
        boundary_salt: salt,
        metrics: Arc::new(ServeMetrics::new(&registry)?),
        access_log: match &config.access_log {
            Some((path, sampling)) => Some(eddy::access_log::AccessLog::open(
                path, *sampling, &registry,
            )?),
            None => None,
        },
        cors: config.cors.clone(),
        cache_control: config.cache_control.clone(),
        failed_redirect: config.failed_redirect.clone(),
    });
    if let Some((_, ktls, l)) = &tls_listener {
        shared.metrics.tls.set_ktls(ktls.mode, ktls.label);
        if let Some(not_after) = l.certs.not_after() {
            shared.metrics.tls.set_cert_not_after(not_after);
        }
    }
    // The fill runs on a thread of its own, never on a serving thread.
    let fill = match &config.fill {
        Some(f) => Some(Arc::new(eddy::cmd::fill::start(
            f,
            store.clone(),
            &registry,
        )?)),
        None => None,
    };
    // The background integrity check, one reader per drive at the
    // configured rate; `POST /store/fsck` starts a pass at once.
    let fsck = Arc::new(eddy::store::fsck::Schedule::default());
    if config.fsck_mib_per_sec > 0 {
        eddy::store::fsck::start_background(
            store.clone(),
            fsck.clone(),
            config.fsck_mib_per_sec.saturating_mul(1 << 20),
            defaults::FSCK_FIRST_PASS_AFTER,
            defaults::FSCK_PASS_EVERY,
        )?;
    }
    // Reload outcomes (`eddy::reload::Reloads::reloads`).
    let reloads = Arc::new(eddy::reload::Reloads::new(&registry)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let plain = Kind::Plain(Policy {
            require_tokens: config.require_tokens,
            cors: config.plain_cors,
        });
        let mut listeners: Vec<Listening> = listen::bind(&config.listen)?
            .into_iter()
            .map(|listener| Listening {
                listener,
                kind: plain.clone(),
            })
            .collect();
        if let Some((t, _, tls_listener)) = &tls_listener {
            for listener in listen::bind(&t.listen)? {
                listeners.push(Listening {
                    listener,
                    kind: Kind::Tls(tls_listener.clone()),
                });
            }
        }
        // SIGHUP re-reads the config file and applies what can change live,
        // then reloads the certificate (`eddy::reload`). Installed before the
        // listening lines are printed, so that a SIGHUP right after start
        // reloads instead of killing eddy (its default action).
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        tokio::spawn(eddy::reload::run(
            hup,
            eddy::reload::Reloader {
                path: common.config.clone(),
                overrides: overrides(common),
                running: config.clone(),
                shared: shared.clone(),
                fill: fill.clone(),
                set_level,
                counts: reloads.clone(),
            },
            tls_listener
                .as_ref()
                .map(|(t, _, l)| (l.certs.clone(), t.reload_check)),
            shared.metrics.clone(),
        ));
        let admin_listener = config.admin_listen.map(admin::bind).transpose()?;
        let admin_addr = admin_listener
            .as_ref()
            .map(tokio::net::TcpListener::local_addr)
            .transpose()?;
        let mut serving = Vec::new();
        for l in &listeners {
            let scheme = match l.kind {
                Kind::Plain(_) => "http",
                Kind::Tls(_) => "https",
            };
            serving.push(format!("{scheme}://{}", l.listener.local_addr()?));
        }
        {
            // The admin line comes first, so that whoever waits for the
            // listening lines has seen it by then.
            let mut out = std::io::stdout().lock();
            if let Some(addr) = admin_addr {
                writeln!(out, "eddy: admin on http://{addr}")?;
            }
            for url in &serving {
                writeln!(out, "eddy: listening on {url}")?;
            }
            out.flush()?;
        }
        if let Some(tx) = &ready {
            let _ = tx.send(eddy::demo::Ready {
                admin: admin_addr,
                serving: serving.clone(),
            });
        }
        tracing::info!(listeners = ?config.listen, tls = ?config.tls.as_ref().map(|t| &t.listen), "serving");
        notify::notify("READY=1");
        if let Some(period) = notify::watchdog_period() {
            // Pinged from the runtime itself: a wedged runtime stops the pings
            // and systemd restarts the service.
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tick.tick().await;
                    notify::notify("WATCHDOG=1");
                }
            });
        }
        let health = admin::Health::default();
        let drain_now = Arc::new(tokio::sync::Notify::new());
        let reporter = match &config.report {
            Some(r) => {
                let h = health.clone();
                Some(eddy::report::start(
                    r,
                    shared.clone(),
                    Arc::new(move || h.is_draining()),
                    fill.clone(),
                    &registry,
                )?)
            }
            None => None,
        };
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = match (admin_listener, admin_addr) {
            (Some(listener), Some(addr)) => {
                tracing::info!(%addr, "admin listener on");
                let state = Arc::new(
                    admin::State::new(shared.clone(), health.clone(), serving, addr)
                        .with_control(fill.clone(), config.admin_token.clone())
                        .with_registry(registry.clone())
                        .with_reports_on(reporter.is_some())
                        .with_fsck((config.fsck_mib_per_sec > 0).then(|| fsck.clone()))
                        .with_drain(drain_now.clone())
                        .with_status(config.disks.clone(), reloads.clone()),
                );
                Some(tokio::spawn(admin::run(listener, state, async {
                    let _ = admin_stopped.await;
                })))
            }
            _ => None,
        };
        let fill_on_drain = fill.clone();
        let cut = listen::run(listeners, shared, async {
            tokio::select! {
                () = shutdown_signal() => {}
                () = drain_now.notified() => tracing::info!("drain asked through the admin listener"),
            }
            health.begin_drain();
            // The fill stops with the drain: downloads keep their parts for the next start.
            if let Some(f) = &fill_on_drain {
                f.stop();
            }
            notify::notify("STOPPING=1");
        })
        .await;
        // The admin answers (503 on /healthz) until the drain is over.
        let _ = admin_stop.send(());
        if let Some(f) = &fill {
            f.stop();
        }
        if let Some(r) = &reporter {
            r.stop();
        }
        if let Some(task) = admin_task {
            let _ = task.await;
        }
        if cut > 0 {
            tracing::warn!(
                connections = cut,
                "drain deadline reached; closing the rest"
            );
        } else {
            tracing::info!("drained");
        }
        anyhow::Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
