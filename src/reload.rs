//! Live reload: what a SIGHUP changes in a running `eddy serve`, and how the
//! serving path sees it.
//!
//! Owns: the settings the serving path reads live ([`Settings`]: the limits
//! and the signed-URL keys) in a cell of their own ([`Live`]), the rule that
//! decides which changed keys apply now and which need a restart
//! ([`merge`], pure), the SIGHUP loop of the serve command (re-read the
//! config file, merge, apply, then reload the TLS certificate; the
//! certificate files are also checked every `tls.reload_check`), and the
//! reload outcome counters ([`Reloads`]). A config that does not parse or
//! resolve is refused with its reason (key, value, reason) and changes
//! nothing, not even the certificate. It must never make a serving thread
//! wait: readers take no lock unless the settings changed since their
//! thread last looked, and the file is read here, not on the serving path.
//! It must never print a secret (the errors name a token key by its id).

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{self, Config, ConfigError, Fill, Limits, Overrides, Tls, Tokens};
use crate::serve::tls::certs::{self, Certs};

/// What the serving path reads live: swapped whole by a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub limits: Limits,
    pub tokens: Tokens,
}

/// Generations are unique across every [`Live`] of the process, so that a
/// thread's cached copy can never be mistaken for another cell's.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The settings this thread last read, by generation.
    static SEEN: RefCell<Option<(u64, Arc<Settings>)>> = const { RefCell::new(None) };
}

/// The live settings: one writer (the reload), readers on every request.
///
/// A reader loads the generation (one relaxed-cost atomic load of a line
/// that only a reload writes) and, when its thread's cached copy has that
/// generation, reads the copy: no lock, no reference count touched. After a
/// reload each thread takes the read lock once, to refresh its copy.
#[derive(Debug)]
pub struct Live {
    generation: AtomicU64,
    slot: RwLock<(u64, Arc<Settings>)>,
}

impl Live {
    pub fn new(settings: Settings) -> Live {
        let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        Live {
            generation: AtomicU64::new(generation),
            slot: RwLock::new((generation, Arc::new(settings))),
        }
    }

    /// The settings now, with their generation.
    pub fn load(&self) -> (u64, Arc<Settings>) {
        let slot = match self.slot.read() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        (slot.0, slot.1.clone())
    }

    /// Replaces the settings; readers see them from their next read.
    pub fn store(&self, settings: Settings) {
        let mut slot = match self.slot.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        *slot = (generation, Arc::new(settings));
        self.generation.store(generation, Ordering::Release);
    }

    /// Runs `f` on the current settings.
    pub fn with<R>(&self, f: impl FnOnce(&Settings) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        let mut f = Some(f);
        let cached = SEEN.try_with(|seen| {
            let mut seen = seen.try_borrow_mut().ok()?;
            if seen.as_ref().is_none_or(|(g, _)| *g != generation) {
                *seen = Some(self.load());
            }
            let (_, settings) = seen.as_ref()?;
            Some(f.take()?(settings))
        });
        match (cached, f) {
            (Ok(Some(r)), _) => r,
            // Called from within `f` itself, or while the thread ends.
            (_, Some(f)) => f(&self.load().1),
            (_, None) => unreachable!("f ran, so the cache answered"),
        }
    }

    /// A copy of the current limits.
    pub fn limits(&self) -> Limits {
        self.with(|s| s.limits)
    }
}

/// How many reloads were applied and refused: the family
/// `eddy_config_reloads_total{result="ok"|"failed"}`.
#[derive(Debug)]
pub struct Reloads {
    ok: prometheus::IntCounter,
    failed: prometheus::IntCounter,
}

impl Reloads {
    /// Declares the family in `registry`, at zero.
    pub fn new(
        registry: &crate::metrics::Registry,
    ) -> Result<Reloads, crate::metrics::MetricsError> {
        let v = registry.counter_vec(
            "eddy_config_reloads_total",
            "Configuration reloads (SIGHUP), by result: ok (the live keys applied) or failed (the file was refused; nothing changed).",
            &["result"],
        )?;
        Ok(Reloads {
            ok: v.with_label_values(&["ok"]),
            failed: v.with_label_values(&["failed"]),
        })
    }

    /// (applied, refused) since start.
    pub fn reloads(&self) -> (u64, u64) {
        (self.ok.get(), self.failed.get())
    }
}

/// What a new config changes in the running one.
#[derive(Debug, PartialEq, Eq)]
pub struct Merged {
    /// The config now in force: the new values of the live keys, the running
    /// values of the others.
    pub config: Config,
    /// Live keys whose value changed (applied).
    pub applied: Vec<&'static str>,
    /// Keys whose value changed but need a restart (kept as they run).
    pub restart: Vec<&'static str>,
}

struct Diff {
    applied: Vec<&'static str>,
    restart: Vec<&'static str>,
}

impl Diff {
    /// A key that applies live: the new value.
    fn live<T: PartialEq>(&mut self, key: &'static str, old: &T, new: T) -> T {
        if *old != new {
            self.applied.push(key);
        }
        new
    }

    /// A key that needs a restart: the running value.
    fn restart<T: PartialEq + Clone>(&mut self, key: &'static str, old: &T, new: T) -> T {
        if *old != new {
            self.restart.push(key);
        }
        old.clone()
    }
}

/// Which keys of `new` apply to a process running `running`, and the config
/// then in force (pure). Live: `limits.*` but the two that size the
/// connection slots, `tokens.*`, `log.level`, and in `[fill]` the manifest
/// URL, keys, window, poll interval, rate cap, parallel downloads, reserve
/// and plain-http switch. Everything else is bound at start (sockets, disks,
/// threads, hyper and rustls settings) and needs a restart. The destructuring
/// is exhaustive: a new key does not compile until it is given a side here.
pub fn merge(running: &Config, new: Config) -> Result<Merged, ConfigError> {
    let Config {
        listen,
        require_tokens,
        tls,
        http2,
        disks,
        open_file_cache,
        open_file_valid,
        fsck_mib_per_sec,
        failed_redirect,
        read_timeout,
        limits,
        log_level,
        log_json,
        access_log,
        tokens,
        admin_listen,
        admin_token,
        fill,
        report,
        plain_cors,
        cors,
        cache_control,
    } = new;
    let mut d = Diff {
        applied: Vec::new(),
        restart: Vec::new(),
    };
    let r = running;
    let config = Config {
        listen: d.restart("serve.listen", &r.listen, listen),
        require_tokens: d.restart("serve.require_tokens", &r.require_tokens, require_tokens),
        tls: merge_tls(&mut d, &r.tls, tls),
        http2: d.restart("http2", &r.http2, http2),
        disks: d.restart("store.disks", &r.disks, disks),
        open_file_cache: d.restart("store.open_file_cache", &r.open_file_cache, open_file_cache),
        open_file_valid: d.restart("store.open_file_valid", &r.open_file_valid, open_file_valid),
        fsck_mib_per_sec: d.restart(
            "store.fsck_mib_per_sec",
            &r.fsck_mib_per_sec,
            fsck_mib_per_sec,
        ),
        failed_redirect: d.restart("store.failed_redirect", &r.failed_redirect, failed_redirect),
        read_timeout: d.restart("store.read_timeout", &r.read_timeout, read_timeout),
        limits: merge_limits(&mut d, &r.limits, limits),
        log_level: d.live("log.level", &r.log_level, log_level),
        log_json: d.restart("log.format", &r.log_json, log_json),
        access_log: d.restart("log.access", &r.access_log, access_log),
        tokens: merge_tokens(&mut d, &r.tokens, tokens),
        admin_listen: d.restart("admin.listen", &r.admin_listen, admin_listen),
        admin_token: d.restart("admin.token", &r.admin_token, admin_token),
        fill: match (&r.fill, fill) {
            (Some(old), Some(new)) => Some(merge_fill(&mut d, old, new)),
            (old, new) => d.restart("fill.manifest_url", old, new),
        },
        report: d.restart("report", &r.report, report),
        // Built into the serving state at start (`Shared`): a restart.
        plain_cors: d.restart("serve.cors", &r.plain_cors, plain_cors),
        cors: d.restart("cors", &r.cors, cors),
        cache_control: d.restart("cache_control", &r.cache_control, cache_control),
    };
    // The listeners keep requiring tokens until a restart: they need a key.
    let required = config.require_tokens || config.tls.as_ref().is_some_and(|t| t.require_tokens);
    if required && config.tokens.keys.is_empty() {
        return Err(config::invalid(
            "tokens.keys",
            "[]",
            "a listener requires tokens (serve.require_tokens or tls.require_tokens, which change \
             at a restart only): keep at least one key",
        ));
    }
    Ok(Merged {
        config,
        applied: d.applied,
        restart: d.restart,
    })
}

fn merge_tokens(d: &mut Diff, old: &Tokens, new: Tokens) -> Tokens {
    let Tokens { keys, names } = new;
    Tokens {
        // Compared by id and secret; only the key name is logged.
        keys: d.live("tokens.keys", &old.keys, keys),
        names: d.live("tokens.expiry_param/token_param", &old.names, names),
    }
}

fn merge_limits(d: &mut Diff, old: &Limits, new: Limits) -> Limits {
    let Limits {
        max_head_bytes,
        max_target_bytes,
        max_headers,
        max_ranges,
        max_range_sum_percent,
        max_connections,
        max_refusals,
        header_read_timeout,
        idle_timeout,
        send_timeout,
        max_pipeline_depth,
        max_discard_body_bytes,
        linger_timeout,
        drain_timeout,
    } = new;
    let o = old;
    Limits {
        max_head_bytes: d.live("limits.max_head_bytes", &o.max_head_bytes, max_head_bytes),
        max_target_bytes: d.live(
            "limits.max_target_bytes",
            &o.max_target_bytes,
            max_target_bytes,
        ),
        max_headers: d.live("limits.max_headers", &o.max_headers, max_headers),
        max_ranges: d.live("limits.max_ranges", &o.max_ranges, max_ranges),
        max_range_sum_percent: d.live(
            "limits.max_range_sum_percent",
            &o.max_range_sum_percent,
            max_range_sum_percent,
        ),
        // The slots and the descriptor budget are sized at start.
        max_connections: d.restart(
            "limits.max_connections",
            &o.max_connections,
            max_connections,
        ),
        max_refusals: d.restart("limits.max_refusals", &o.max_refusals, max_refusals),
        header_read_timeout: d.live(
            "limits.header_read_timeout",
            &o.header_read_timeout,
            header_read_timeout,
        ),
        idle_timeout: d.live("limits.idle_timeout", &o.idle_timeout, idle_timeout),
        send_timeout: d.live("limits.send_timeout", &o.send_timeout, send_timeout),
        max_pipeline_depth: d.live(
            "limits.max_pipeline_depth",
            &o.max_pipeline_depth,
            max_pipeline_depth,
        ),
        max_discard_body_bytes: d.live(
            "limits.max_discard_body_bytes",
            &o.max_discard_body_bytes,
            max_discard_body_bytes,
        ),
        linger_timeout: d.live("limits.linger_timeout", &o.linger_timeout, linger_timeout),
        drain_timeout: d.live("limits.drain_timeout", &o.drain_timeout, drain_timeout),
    }
}

fn merge_tls(d: &mut Diff, old: &Option<Tls>, new: Option<Tls>) -> Option<Tls> {
    let (Some(o), Some(new)) = (old, new.clone()) else {
        return d.restart("tls.listen", old, new);
    };
    let Tls {
        listen,
        cert,
        key,
        require_tokens,
        ktls,
        reload_check,
        frame_bytes,
        cors,
    } = new;
    Some(Tls {
        listen: d.restart("tls.listen", &o.listen, listen),
        // The files at these paths reload on every SIGHUP; a new path needs
        // a restart.
        cert: d.restart("tls.cert", &o.cert, cert),
        key: d.restart("tls.key", &o.key, key),
        require_tokens: d.restart("tls.require_tokens", &o.require_tokens, require_tokens),
        ktls: d.restart("tls.ktls", &o.ktls, ktls),
        reload_check: d.restart("tls.reload_check", &o.reload_check, reload_check),
        frame_bytes: d.restart("tls.frame_bytes", &o.frame_bytes, frame_bytes),
        cors: d.restart("tls.cors", &o.cors, cors),
    })
}

fn merge_fill(d: &mut Diff, o: &Fill, new: Fill) -> Fill {
    let Fill {
        manifest_url,
        appliance,
        keys,
        window,
        poll_interval,
        parallel,
        max_rate_mbps,
        reserve_bytes,
        connect_timeout,
        idle_timeout,
        retry_base,
        retry_max,
        retry_rounds,
        ca_file,
        insecure_plain_http,
        recv_buffer,
    } = new;
    Fill {
        manifest_url: d.live("fill.manifest_url", &o.manifest_url, manifest_url),
        // The saved manifest and the reports name the appliance.
        appliance: d.restart("fill.appliance", &o.appliance, appliance),
        keys: d.live("fill.keys", &o.keys, keys),
        window: d.live("fill.window", &o.window, window),
        poll_interval: d.live("fill.poll_interval", &o.poll_interval, poll_interval),
        parallel: d.live("fill.parallel", &o.parallel, parallel),
        max_rate_mbps: d.live("fill.max_rate_mbps", &o.max_rate_mbps, max_rate_mbps),
        reserve_bytes: d.live("fill.reserve_mib", &o.reserve_bytes, reserve_bytes),
        // The HTTP client and the downloader are built once.
        connect_timeout: d.restart("fill.connect_timeout", &o.connect_timeout, connect_timeout),
        idle_timeout: d.restart("fill.idle_timeout", &o.idle_timeout, idle_timeout),
        retry_base: d.restart("fill.retry_base", &o.retry_base, retry_base),
        retry_max: d.restart("fill.retry_max", &o.retry_max, retry_max),
        retry_rounds: d.restart("fill.retry_rounds", &o.retry_rounds, retry_rounds),
        ca_file: d.restart("fill.ca_file", &o.ca_file, ca_file),
        insecure_plain_http: d.live(
            "fill.insecure_plain_http",
            &o.insecure_plain_http,
            insecure_plain_http,
        ),
        recv_buffer: d.restart("fill.recv_buffer_kib", &o.recv_buffer, recv_buffer),
    }
}

/// Sets the log level filter (`log.level`); `None` when `EDDY_LOG` decides.
pub type SetLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Everything a reload reads and changes.
pub struct Reloader {
    /// `--config`; without one a SIGHUP reloads the certificate only.
    pub path: Option<PathBuf>,
    /// The command line's values, which win over the file's as at start.
    pub overrides: Overrides,
    /// The config in force.
    pub running: Config,
    /// The serving path's shared state, whose [`Live`] settings a reload swaps.
    pub shared: Arc<crate::serve::Shared>,
    pub fill: Option<Arc<eddy_fill::Handle>>,
    pub set_level: Option<SetLevel>,
    pub counts: Arc<Reloads>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Re-reads the config file and applies what can change live. `false`
    /// when the file was refused (nothing changed).
    pub fn reload(&mut self) -> bool {
        let Some(path) = &self.path else {
            tracing::info!("SIGHUP: no --config file to re-read");
            return true;
        };
        let merged =
            config::load(Some(path), &self.overrides).and_then(|new| merge(&self.running, new));
        let merged = match merged {
            Ok(m) => m,
            Err(error) => {
                self.counts.failed.inc();
                tracing::error!(%error, "SIGHUP: configuration refused; nothing changed");
                return false;
            }
        };
        for key in &merged.restart {
            tracing::warn!(
                key,
                "SIGHUP: {key} changed but needs a restart; the running value stays"
            );
        }
        let Merged {
            config, applied, ..
        } = merged;
        self.shared.live.store(Settings {
            limits: config.limits,
            tokens: config.tokens.clone(),
        });
        if applied.contains(&"log.level") {
            match &self.set_level {
                Some(set) => {
                    if let Err(error) = set(&config.log_level) {
                        tracing::warn!(%error, "SIGHUP: cannot change the log level");
                    }
                }
                None => tracing::warn!("SIGHUP: log.level changed, but EDDY_LOG is set and wins"),
            }
        }
        if applied.iter().any(|k| k.starts_with("fill.")) {
            if let (Some(handle), Some(fill)) = (&self.fill, &config.fill) {
                handle.reconfigure(crate::cmd::fill::settings(fill));
            }
        }
        self.running = config;
        self.counts.ok.inc();
        if applied.is_empty() {
            tracing::info!("SIGHUP: configuration re-read; no live key changed");
        } else {
            tracing::info!(applied = ?applied, "SIGHUP: configuration reloaded");
        }
        true
    }
}

/// The serve command's SIGHUP loop: the config, then the certificate (also
/// checked every `reload_check` for changed files). Runs until the runtime
/// ends.
pub async fn run(
    mut hup: Option<tokio::signal::unix::Signal>,
    mut reloader: Reloader,
    tls: Option<(Arc<Certs>, Duration)>,
    metrics: Arc<crate::serve::metrics::ServeMetrics>,
) {
    if hup.is_none() {
        tracing::warn!("cannot watch SIGHUP; certificates reload on file change only");
    }
    let every = tls.as_ref().map_or(Duration::from_secs(3600), |(_, d)| *d);
    // The first check one period after start: `interval`'s immediate first
    // tick would race a SIGHUP sent right after start (files changed before
    // it ran were loaded twice, once by each).
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            Some(()) = async { hup.as_mut()?.recv().await } => true,
            _ = tick.tick() => false,
        };
        if forced && !reloader.reload() {
            continue;
        }
        let Some((certs, _)) = &tls else {
            continue;
        };
        match certs.reload(forced) {
            Ok(certs::Reload::Unchanged) => {}
            Ok(certs::Reload::Loaded) => {
                metrics.tls.cert_reloaded(true);
                if let Some(not_after) = certs.not_after() {
                    metrics.tls.set_cert_not_after(not_after);
                }
                tracing::info!("TLS certificate reloaded")
            }
            Err(error) => {
                metrics.tls.cert_reloaded(false);
                tracing::warn!(%error, "TLS certificate reload failed; keeping the current one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_toml, resolve};

    fn config(toml: &str) -> Config {
        let o = Overrides {
            disks: vec!["/srv/d0".into()],
            ..Overrides::default()
        };
        resolve(parse_toml(toml).expect("toml"), &o).expect("valid")
    }

    const KEY_A: &str =
        "[[tokens.keys]]\nid = \"a\"\nsecret_hex = \"00112233445566778899aabbccddeeff\"\n";
    const KEY_B: &str =
        "[[tokens.keys]]\nid = \"b\"\nsecret_hex = \"ffeeddccbbaa99887766554433221100\"\n";

    #[test]
    fn live_keys_apply_and_the_others_wait_for_a_restart() {
        let running = config(&format!("[limits]\nmax_ranges = 4\n{KEY_A}"));
        let new = config(&format!(
            "[serve]\nlisten = [\"127.0.0.1:9999\"]\n[log]\nlevel = \"debug\"\n\
             [limits]\nmax_ranges = 2\nmax_connections = 10\n{KEY_B}"
        ));
        let m = merge(&running, new).expect("merges");
        assert_eq!(m.config.limits.max_ranges, 2);
        assert_eq!(m.config.tokens.keys[0].id, "b");
        assert_eq!(m.config.log_level, "debug");
        assert_eq!(m.config.listen, running.listen, "listen stays");
        assert_eq!(
            m.config.limits.max_connections, running.limits.max_connections,
            "max_connections stays"
        );
        assert_eq!(
            m.applied,
            vec!["limits.max_ranges", "log.level", "tokens.keys"]
        );
        assert_eq!(m.restart, vec!["serve.listen", "limits.max_connections"]);
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let running = config(KEY_A);
        let m = merge(&running, running.clone()).expect("merges");
        assert_eq!(m.config, running);
        assert!(m.applied.is_empty() && m.restart.is_empty(), "{m:?}");
    }

    #[test]
    fn a_listener_that_keeps_requiring_tokens_keeps_a_key() {
        let running = config(&format!("[serve]\nrequire_tokens = true\n{KEY_A}"));
        // Valid on its own (no listener requires tokens), but the running
        // listener still does until a restart.
        let e = merge(&running, config("")).expect_err("refused");
        assert!(e.to_string().starts_with("tokens.keys = []"), "{e}");
    }

    #[test]
    fn fill_settings_apply_but_the_appliance_waits() {
        let fill = |extra: &str| {
            config(&format!(
                "[fill]\nmanifest_url = \"https://cp.example/v1/manifest/a\"\nappliance = \"a\"\n\
                 keys = [\"ed25519:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg\"]\n{extra}"
            ))
        };
        let running = fill("");
        let mut new = fill("window = \"always\"\nmax_rate_mbps = 10\n");
        if let Some(f) = new.fill.as_mut() {
            f.appliance = "b".into();
        }
        let m = merge(&running, new).expect("merges");
        assert_eq!(m.applied, vec!["fill.window", "fill.max_rate_mbps"]);
        assert_eq!(m.restart, vec!["fill.appliance"]);
        let f = m.config.fill.expect("fill on");
        assert_eq!((f.max_rate_mbps, f.appliance.as_str()), (10, "a"));
        // Turning the fill off (or on) needs a restart.
        let m = merge(&running, config("")).expect("merges");
        assert_eq!(m.restart, vec!["fill.manifest_url"]);
        assert!(m.config.fill.is_some());
    }

    /// The "Live reload" section of docs/config.md gives every key of its table a side.
    #[test]
    fn docs_config_says_which_keys_are_live() {
        let doc = include_str!("../docs/config.md");
        let start = doc.find("## Live reload").expect("the section");
        let section = &doc[start..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        let keys = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next());
        let mut n = 0;
        for key in keys {
            let wildcard = format!("`{}.*`", key.split('.').next().unwrap_or(key));
            assert!(
                section.contains(&format!("`{key}`")) || section.contains(&wildcard),
                "docs/config.md, Live reload, does not say whether {key} is live"
            );
            n += 1;
        }
        assert!(n > 40, "found only {n} keys");
    }

    fn settings(max_ranges: usize) -> Settings {
        Settings {
            limits: Limits {
                max_ranges,
                ..Limits::default()
            },
            tokens: Tokens::default(),
        }
    }

    #[test]
    fn readers_see_a_store_at_their_next_read_on_every_thread() {
        let live = Arc::new(Live::new(settings(1)));
        assert_eq!(live.limits().max_ranges, 1);
        assert_eq!(live.limits().max_ranges, 1, "from the thread's copy");
        live.store(settings(2));
        assert_eq!(live.limits().max_ranges, 2);
        let other = live.clone();
        let seen = std::thread::spawn(move || other.limits().max_ranges)
            .join()
            .expect("thread");
        assert_eq!(seen, 2);
        // Two cells on one thread never answer for each other.
        let second = Live::new(settings(7));
        assert_eq!(second.limits().max_ranges, 7);
        assert_eq!(live.limits().max_ranges, 2);
        // A read from within a read is answered too.
        assert_eq!(
            live.with(|a| a.limits.max_ranges + second.limits().max_ranges),
            9
        );
    }
}
