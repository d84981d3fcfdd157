//! The [`Storage`] of `eddy-origin`: one SQLite file (rusqlite, SQLite
//! bundled), or an in-memory database when no file is configured.
//!
//! Owns: the schema and its migrations (a `schema_version` table; each
//! migration runs once, in order, in its own transaction, at open; a file
//! from a newer build is refused), the SQL of every [`Storage`] call, the
//! pragmas (WAL, `synchronous=FULL`, so a generation recorded survives a
//! crash), and the conversion of counters to SQLite's signed integers (values
//! past `i64::MAX` are kept as `i64::MAX`, sums saturate). It must never be
//! called from a runtime thread (callers use [`crate::store::blocking`]) and
//! never let SQL or a rusqlite type out through the trait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use eddy_proto::report::Report;
use rusqlite::{params, Connection, OptionalExtension as _, Transaction};

use crate::store::{
    ApplianceSummary, Counts, GenerationMark, HealthSeen, Kept, LatestKind, ManifestIssued,
    ManifestSeen, PopularityTotals, Received, ReportCounts, Storage, StoreError,
};
use crate::Class;

/// The migrations, in order: the schema at version N is the first N applied.
const MIGRATIONS: &[&str] = &[
    // 1: reports, what is derived from them, manifests, the generation.
    "CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        appliance TEXT NOT NULL,
        kind TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX reports_by_appliance ON reports (appliance, kind);
    CREATE TABLE latest (
        appliance TEXT NOT NULL,
        kind TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        serving INTEGER,
        report_id INTEGER NOT NULL REFERENCES reports (id),
        PRIMARY KEY (appliance, kind)
    );
    CREATE TABLE popularity (
        appliance TEXT NOT NULL,
        key TEXT NOT NULL,
        requests INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (appliance, key)
    );
    CREATE TABLE popularity_totals (
        appliance TEXT PRIMARY KEY,
        snapshots INTEGER NOT NULL,
        window_from INTEGER NOT NULL,
        window_to INTEGER NOT NULL,
        content_misses INTEGER NOT NULL,
        health_misses INTEGER NOT NULL
    );
    CREATE TABLE popularity_windows (
        report_id INTEGER PRIMARY KEY REFERENCES reports (id),
        appliance TEXT NOT NULL,
        window_from INTEGER NOT NULL,
        window_to INTEGER NOT NULL,
        content_misses INTEGER NOT NULL,
        health_misses INTEGER NOT NULL
    );
    CREATE TABLE manifests (
        id INTEGER PRIMARY KEY,
        appliance TEXT NOT NULL,
        generation INTEGER NOT NULL,
        issued_at INTEGER NOT NULL,
        objects INTEGER NOT NULL
    );
    CREATE INDEX manifests_by_appliance ON manifests (appliance);
    CREATE TABLE generation (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL,
        fingerprint BLOB NOT NULL
    );",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("--db {}: not an SQLite database", path.display())]
    NotADatabase { path: PathBuf },
    #[error("--db {}: schema version {found} is newer than this build's {SCHEMA_VERSION}", path.display())]
    Newer { path: PathBuf, found: u32 },
    #[error("--db {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl OpenError {
    /// A file that is not ours is configuration (64); anything else is I/O (74).
    pub fn class(&self) -> Class {
        match self {
            OpenError::NotADatabase { .. } | OpenError::Newer { .. } => Class::Usage,
            OpenError::Sqlite { .. } => Class::Io,
        }
    }
}

/// The SQLite store. One connection behind a mutex: every call is short.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend {
        what,
        message: e.to_string(),
    }
}

/// A counter as SQLite keeps it.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A kept counter back (never negative: we only write non-negative ones).
fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sum(a: i64, b: u64) -> i64 {
    a.max(0).saturating_add(int(b))
}

impl SqliteStore {
    /// Opens (creating when absent) the database file at `path` and brings
    /// its schema up to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<SqliteStore, OpenError> {
        let wrap = |source: rusqlite::Error| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => OpenError::NotADatabase {
                path: path.to_owned(),
            },
            _ => OpenError::Sqlite {
                path: path.to_owned(),
                source,
            },
        };
        let conn = Connection::open(path).map_err(wrap)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(wrap)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(wrap)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(wrap)?;
        Self::ready(conn, path)
    }

    /// A database in memory: everything is lost when the process ends.
    pub fn in_memory() -> Result<SqliteStore, OpenError> {
        let path = Path::new(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| OpenError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
        Self::ready(conn, path)
    }

    fn ready(mut conn: Connection, path: &Path) -> Result<SqliteStore, OpenError> {
        let wrap = |source: rusqlite::Error| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => OpenError::NotADatabase {
                path: path.to_owned(),
            },
            _ => OpenError::Sqlite {
                path: path.to_owned(),
                source,
            },
        };
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(wrap)?;
        let found = migrate(&mut conn).map_err(wrap)?;
        if found > SCHEMA_VERSION {
            return Err(OpenError::Newer {
                path: path.to_owned(),
                found,
            });
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        version(&self.lock()).map_err(backend("reading the schema version"))
    }
}

fn version(conn: &Connection) -> rusqlite::Result<u32> {
    let v: Option<i64> =
        conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?;
    Ok(v.and_then(|v| u32::try_from(v).ok()).unwrap_or(0))
}

/// Applies the migrations the file lacks; returns the version found (which
/// may be newer than ours: then nothing is applied).
fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let found = version(conn)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![i as i64 + 1],
        )?;
        tx.commit()?;
    }
    Ok(found)
}

fn put_latest(
    tx: &Transaction<'_>,
    id: i64,
    appliance: &str,
    kind: LatestKind,
    sent_at: u64,
    received_at: u64,
    serving: Option<bool>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO latest (appliance, kind, sent_at, received_at, serving, report_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (appliance, kind) DO UPDATE SET
           sent_at = excluded.sent_at, received_at = excluded.received_at,
           serving = excluded.serving, report_id = excluded.report_id
         WHERE excluded.sent_at >= latest.sent_at",
        params![
            appliance,
            kind.name(),
            int(sent_at),
            int(received_at),
            serving,
            id
        ],
    )?;
    Ok(())
}

fn put_popularity(
    tx: &Transaction<'_>,
    id: i64,
    p: &eddy_proto::report::Popularity,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO popularity_windows
           (report_id, appliance, window_from, window_to, content_misses, health_misses)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            p.appliance,
            int(p.from),
            int(p.to),
            int(p.content_misses),
            int(p.health_misses)
        ],
    )?;
    let before: Option<(i64, i64, i64, i64, i64)> = tx
        .query_row(
            "SELECT snapshots, window_from, window_to, content_misses, health_misses
             FROM popularity_totals WHERE appliance = ?1",
            params![p.appliance],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let (snapshots, from, to, content, health) = match before {
        None => (
            1,
            int(p.from),
            int(p.to),
            int(p.content_misses),
            int(p.health_misses),
        ),
        Some((n, from, to, content, health)) => (
            sum(n, 1),
            from.min(int(p.from)),
            to.max(int(p.to)),
            sum(content, p.content_misses),
            sum(health, p.health_misses),
        ),
    };
    tx.execute(
        "INSERT OR REPLACE INTO popularity_totals
           (appliance, snapshots, window_from, window_to, content_misses, health_misses)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![p.appliance, snapshots, from, to, content, health],
    )?;
    let mut read = tx.prepare_cached(
        "SELECT requests, bytes FROM popularity WHERE appliance = ?1 AND key = ?2",
    )?;
    let mut write = tx.prepare_cached(
        "INSERT OR REPLACE INTO popularity (appliance, key, requests, bytes)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for o in &p.objects {
        let (requests, bytes): (i64, i64) = read
            .query_row(params![p.appliance, o.key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0));
        write.execute(params![
            p.appliance,
            o.key,
            sum(requests, o.requests),
            sum(bytes, o.bytes)
        ])?;
    }
    Ok(())
}

fn counts_of(conn: &Connection, appliance: &str) -> rusqlite::Result<ReportCounts> {
    let mut st = conn
        .prepare_cached("SELECT kind, COUNT(*) FROM reports WHERE appliance = ?1 GROUP BY kind")?;
    let mut counts = ReportCounts::default();
    let rows = st.query_map(params![appliance], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (kind, n) = row?;
        add_count(&mut counts, &kind, uint(n));
    }
    Ok(counts)
}

fn summary<'a>(
    all: &'a mut BTreeMap<String, ApplianceSummary>,
    id: &str,
) -> &'a mut ApplianceSummary {
    all.entry(id.to_owned())
        .or_insert_with(|| ApplianceSummary {
            appliance: id.to_owned(),
            health: None,
            reports: ReportCounts::default(),
            last_report_at: None,
            manifests: None,
        })
}

fn add_count(counts: &mut ReportCounts, kind: &str, n: u64) {
    match kind {
        "health" => counts.health += n,
        "popularity" => counts.popularity += n,
        "inventory" => counts.inventory += n,
        _ => {}
    }
}

impl Storage for SqliteStore {
    fn put_report(&self, received: &Received) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            let report = &received.report;
            tx.execute(
                "INSERT INTO reports (appliance, kind, received_at, body) VALUES (?1, ?2, ?3, ?4)",
                params![
                    report.appliance(),
                    report.kind(),
                    int(received.received_at),
                    received.json
                ],
            )?;
            let id = tx.last_insert_rowid();
            match report {
                Report::Health(h) => put_latest(
                    &tx,
                    id,
                    &h.appliance,
                    LatestKind::Health,
                    h.sent_at,
                    received.received_at,
                    Some(h.serving),
                )?,
                Report::Inventory(i) => put_latest(
                    &tx,
                    id,
                    &i.appliance,
                    LatestKind::Inventory,
                    i.sent_at,
                    received.received_at,
                    None,
                )?,
                Report::Popularity(p) => put_popularity(&tx, id, p)?,
            }
            tx.commit()
        };
        write(&mut conn).map_err(backend("keeping a report"))
    }

    fn appliances(&self) -> Result<Vec<ApplianceSummary>, StoreError> {
        let conn = self.lock();
        let read = |conn: &Connection| -> rusqlite::Result<Vec<ApplianceSummary>> {
            let mut all: BTreeMap<String, ApplianceSummary> = BTreeMap::new();
            let mut st = conn.prepare(
                "SELECT appliance, kind, COUNT(*), MAX(received_at) FROM reports
                 GROUP BY appliance, kind",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (id, kind, n, last) = row?;
                let a = summary(&mut all, &id);
                add_count(&mut a.reports, &kind, uint(n));
                a.last_report_at = Some(a.last_report_at.unwrap_or(0).max(uint(last)));
            }
            let mut st = conn.prepare(
                "SELECT appliance, sent_at, received_at, serving FROM latest WHERE kind = 'health'",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<bool>>(3)?,
                ))
            })?;
            for row in rows {
                let (id, sent_at, received_at, serving) = row?;
                summary(&mut all, &id).health = Some(HealthSeen {
                    serving: serving.unwrap_or(false),
                    sent_at: uint(sent_at),
                    received_at: uint(received_at),
                });
            }
            let mut st = conn.prepare(
                "SELECT m.appliance, c.n, m.generation, m.issued_at, m.objects
                 FROM manifests m
                 JOIN (SELECT appliance, COUNT(*) AS n, MAX(id) AS last FROM manifests
                       GROUP BY appliance) c ON m.id = c.last",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            for row in rows {
                let (id, n, generation, issued_at, objects) = row?;
                summary(&mut all, &id).manifests = Some(ManifestSeen {
                    issued: uint(n),
                    generation: uint(generation),
                    issued_at: uint(issued_at),
                    objects: uint(objects),
                });
            }
            Ok(all.into_values().collect())
        };
        read(&conn).map_err(backend("listing appliances"))
    }

    fn report_counts(&self, appliance: &str) -> Result<ReportCounts, StoreError> {
        counts_of(&self.lock(), appliance).map_err(backend("counting reports"))
    }

    fn latest(&self, appliance: &str, kind: LatestKind) -> Result<Option<Kept>, StoreError> {
        self.lock()
            .query_row(
                "SELECT l.received_at, r.body FROM latest l JOIN reports r ON r.id = l.report_id
                 WHERE l.appliance = ?1 AND l.kind = ?2",
                params![appliance, kind.name()],
                |r| {
                    Ok(Kept {
                        received_at: uint(r.get(0)?),
                        json: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend("reading the latest report"))
    }

    fn popularity(&self, appliance: &str) -> Result<PopularityTotals, StoreError> {
        let conn = self.lock();
        let read = |conn: &Connection| -> rusqlite::Result<PopularityTotals> {
            let mut out = PopularityTotals {
                appliance: appliance.to_owned(),
                ..PopularityTotals::default()
            };
            let totals: Option<(i64, i64, i64, i64, i64)> = conn
                .query_row(
                    "SELECT snapshots, window_from, window_to, content_misses, health_misses
                     FROM popularity_totals WHERE appliance = ?1",
                    params![appliance],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            if let Some((n, from, to, content, health)) = totals {
                out.snapshots = uint(n);
                out.from = Some(uint(from));
                out.to = Some(uint(to));
                out.content_misses = uint(content);
                out.health_misses = uint(health);
            }
            let mut st =
                conn.prepare("SELECT key, requests, bytes FROM popularity WHERE appliance = ?1")?;
            let rows = st.query_map(params![appliance], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (key, requests, bytes) = row?;
                out.objects.insert(
                    key,
                    Counts {
                        requests: uint(requests),
                        bytes: uint(bytes),
                    },
                );
            }
            Ok(out)
        };
        read(&conn).map_err(backend("reading popularity"))
    }

    fn put_manifest(&self, issued: &ManifestIssued) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO manifests (appliance, generation, issued_at, objects)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    issued.appliance,
                    int(issued.generation),
                    int(issued.issued_at),
                    int(issued.objects)
                ],
            )?;
            tx.execute(
                "INSERT INTO generation (id, generation, fingerprint) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET
                   generation = excluded.generation, fingerprint = excluded.fingerprint
                 WHERE excluded.generation >= generation.generation",
                params![int(issued.generation), &issued.fingerprint[..]],
            )?;
            tx.commit()
        };
        write(&mut conn).map_err(backend("recording a manifest"))
    }

    fn last_generation(&self) -> Result<Option<GenerationMark>, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self
            .lock()
            .query_row(
                "SELECT generation, fingerprint FROM generation WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend("reading the generation"))?;
        match row {
            None => Ok(None),
            Some((generation, fp)) => {
                let fingerprint: [u8; 32] = fp.as_slice().try_into().map_err(|_| {
                    StoreError::Corrupt(format!("a fingerprint of {} bytes", fp.len()))
                })?;
                Ok(Some(GenerationMark {
                    generation: uint(generation),
                    fingerprint,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_proto::report::{self, Health, Inventory, ObjectCounts, Popularity};

    fn health(appliance: &str, sent_at: u64, serving: bool) -> Received {
        let report = Report::Health(Health {
            version: report::VERSION.into(),
            appliance: appliance.into(),
            sent_at,
            serving,
            connections_open: 3,
            ..Health::default()
        });
        let json = serde_json::to_string(&report).unwrap_or_default();
        Received {
            report,
            received_at: sent_at + 1,
            json,
        }
    }

    fn popularity(appliance: &str, from: u64, objects: &[(&str, u64, u64)]) -> Received {
        let report = Report::Popularity(Popularity {
            version: report::VERSION.into(),
            appliance: appliance.into(),
            from,
            to: from + 60,
            objects: objects
                .iter()
                .map(|(k, r, b)| ObjectCounts {
                    key: (*k).into(),
                    requests: *r,
                    bytes: *b,
                })
                .collect(),
            content_misses: 2,
            health_misses: 1,
        });
        let json = serde_json::to_string(&report).unwrap_or_default();
        Received {
            report,
            received_at: from + 61,
            json,
        }
    }

    fn issued(appliance: &str, generation: u64, fp: u8) -> ManifestIssued {
        ManifestIssued {
            appliance: appliance.into(),
            generation,
            fingerprint: [fp; 32],
            issued_at: 1_000,
            objects: 4,
        }
    }

    #[test]
    fn reports_survive_a_reopen() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("origin.db");
        {
            let s = SqliteStore::open(&path)?;
            s.put_report(&health("oca-1", 100, true))?;
            s.put_report(&popularity("oca-1", 50, &[("a", 3, 300), ("b", 1, 10)]))?;
            s.put_report(&popularity("oca-1", 110, &[("a", 2, 200)]))?;
            let inv = Report::Inventory(Inventory {
                version: report::VERSION.into(),
                appliance: "oca-1".into(),
                sent_at: 120,
                generation: Some(7),
                objects: Vec::new(),
            });
            s.put_report(&Received {
                json: r#"{"kind":"inventory","extra":1}"#.into(),
                report: inv,
                received_at: 121,
            })?;
            s.put_manifest(&issued("oca-2", 7, 1))?;
        }
        let s = SqliteStore::open(&path)?;
        assert_eq!(s.schema_version()?, SCHEMA_VERSION);
        let all = s.appliances()?;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].appliance, "oca-1");
        assert_eq!(
            all[0].reports,
            ReportCounts {
                health: 1,
                popularity: 2,
                inventory: 1
            }
        );
        assert_eq!(
            all[0].health,
            Some(HealthSeen {
                serving: true,
                sent_at: 100,
                received_at: 101
            })
        );
        assert_eq!(all[0].last_report_at, Some(171));
        assert_eq!(all[1].appliance, "oca-2");
        assert_eq!(
            all[1].manifests.map(|m| (m.issued, m.generation)),
            Some((1, 7))
        );
        let p = s.popularity("oca-1")?;
        assert_eq!(p.snapshots, 2);
        assert_eq!((p.from, p.to), (Some(50), Some(170)));
        assert_eq!((p.content_misses, p.health_misses), (4, 2));
        assert_eq!(
            p.objects["a"],
            Counts {
                requests: 5,
                bytes: 500
            }
        );
        assert_eq!(p.objects["b"].requests, 1);
        let inv = s.latest("oca-1", LatestKind::Inventory)?;
        assert_eq!(
            inv.map(|k| (k.received_at, k.json)),
            Some((121, r#"{"kind":"inventory","extra":1}"#.to_owned()))
        );
        assert_eq!(s.latest("oca-2", LatestKind::Health)?, None);
        assert_eq!(s.popularity("nobody")?.snapshots, 0);
        Ok(())
    }

    #[test]
    fn an_older_health_never_replaces_a_newer_one() -> Result<(), Box<dyn std::error::Error>> {
        let s = SqliteStore::in_memory()?;
        s.put_report(&health("oca-1", 200, false))?;
        s.put_report(&health("oca-1", 100, true))?;
        let kept = s.latest("oca-1", LatestKind::Health)?.ok_or("no health")?;
        assert!(kept.json.contains("\"sent_at\":200"), "{}", kept.json);
        assert_eq!(s.report_counts("oca-1")?.health, 2, "both are kept");
        s.put_report(&health("oca-1", 200, true))?;
        let all = s.appliances()?;
        assert_eq!(
            all[0].health.map(|h| h.serving),
            Some(true),
            "ties: the later"
        );
        Ok(())
    }

    #[test]
    fn the_generation_survives_a_reopen_and_never_goes_down(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("g.db");
        {
            let s = SqliteStore::open(&path)?;
            assert_eq!(s.last_generation()?, None);
            s.put_manifest(&issued("oca-1", 10, 1))?;
            s.put_manifest(&issued("oca-1", 12, 2))?;
            s.put_manifest(&issued("oca-2", 11, 3))?;
        }
        let s = SqliteStore::open(&path)?;
        assert_eq!(
            s.last_generation()?,
            Some(GenerationMark {
                generation: 12,
                fingerprint: [2; 32]
            })
        );
        let all = s.appliances()?;
        assert_eq!(
            all[0].manifests.map(|m| (m.issued, m.generation)),
            Some((2, 12))
        );
        Ok(())
    }

    #[test]
    fn an_empty_file_is_migrated_and_a_foreign_one_refused(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"")?;
        let s = SqliteStore::open(&empty)?;
        assert_eq!(s.schema_version()?, SCHEMA_VERSION);
        drop(s);
        // Opening again applies nothing twice.
        assert_eq!(SqliteStore::open(&empty)?.schema_version()?, SCHEMA_VERSION);

        let text = dir.path().join("text.db");
        std::fs::write(&text, vec![b'x'; 4096])?;
        let e = SqliteStore::open(&text).err().ok_or("a text file opened")?;
        assert!(matches!(e, OpenError::NotADatabase { .. }), "{e}");
        assert_eq!(e.class(), Class::Usage);

        let newer = dir.path().join("newer.db");
        drop(SqliteStore::open(&newer)?);
        Connection::open(&newer)?.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            params![SCHEMA_VERSION + 1],
        )?;
        let e = SqliteStore::open(&newer)
            .err()
            .ok_or("a newer schema opened")?;
        assert!(matches!(e, OpenError::Newer { .. }), "{e}");

        let missing = dir.path().join("no/such/dir/x.db");
        let e = SqliteStore::open(&missing)
            .err()
            .ok_or("opened in a missing dir")?;
        assert_eq!(e.class(), Class::Io, "{e}");
        Ok(())
    }

    #[test]
    fn counters_past_i64_saturate() -> Result<(), Box<dyn std::error::Error>> {
        let s = SqliteStore::in_memory()?;
        s.put_report(&popularity("a", 1, &[("k", u64::MAX, 1)]))?;
        s.put_report(&popularity("a", 2, &[("k", 5, 1)]))?;
        assert_eq!(s.popularity("a")?.objects["k"].requests, i64::MAX as u64);
        Ok(())
    }
}
