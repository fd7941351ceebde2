//! Metadata in SQLite (`DATA_DIR/ivr.sqlite3`, WAL, synchronous=FULL): apps,
//! their versions and active pointers, app configuration, routes. Every
//! change is one transaction, durable when the call returns.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// An app's configuration values (the guest's `config` import).
pub type AppConfig = std::collections::BTreeMap<String, String>;

/// One deployed version of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    /// Version number, 1, 2, … per app.
    pub version: u32,
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    /// Component size in bytes.
    pub size: u64,
    /// When it was uploaded (RFC 3339).
    pub deployed_at: String,
    /// When it last became the active version, if ever.
    pub activated_at: Option<String>,
}

/// An app with its versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppRecord {
    /// App name.
    pub name: String,
    /// The version answering new calls.
    pub active_version: Option<u32>,
    /// Every version, oldest first.
    pub versions: Vec<VersionRecord>,
    /// Configuration values.
    pub config: AppConfig,
    /// Per-app limits and fallback, as the registry stored them (a JSON
    /// object; the registry reads it).
    pub settings: serde_json::Value,
}

impl AppRecord {
    /// The active version's record.
    pub fn active(&self) -> Option<&VersionRecord> {
        let v = self.active_version?;
        self.versions.iter().find(|r| r.version == v)
    }
}

/// The persistence seam for apps, routes and configuration (a shared store
/// for several replicas can implement it later).
pub trait MetadataStore: Send + Sync {
    /// Every app.
    fn apps(&self) -> anyhow::Result<Vec<AppRecord>>;
    /// Add a version of `app` (creating the app) and make it active.
    fn add_active_version(
        &self,
        app: &str,
        sha256: &str,
        size: u64,
    ) -> anyhow::Result<VersionRecord>;
    /// Make an existing version active.
    fn activate(&self, app: &str, version: u32) -> anyhow::Result<VersionRecord>;
    /// Remove an app, its versions and configuration.
    fn delete_app(&self, app: &str) -> anyhow::Result<()>;
    /// Replace an app's configuration (creating the app if needed).
    fn set_config(&self, app: &str, config: &AppConfig) -> anyhow::Result<()>;
    /// Replace an app's settings, a JSON document (creating the app if needed).
    fn set_settings(&self, app: &str, settings: &serde_json::Value) -> anyhow::Result<()>;
    /// The routing table, a JSON document, if one was stored.
    fn routes(&self) -> anyhow::Result<Option<serde_json::Value>>;
    /// Replace the routing table, a JSON document.
    fn set_routes(&self, routes: &serde_json::Value) -> anyhow::Result<()>;
}

/// [`MetadataStore`] in an embedded SQLite database.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    active_version INTEGER
);
CREATE TABLE IF NOT EXISTS versions (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    deployed_at TEXT NOT NULL,
    activated_at TEXT,
    PRIMARY KEY (app, version)
);
CREATE TABLE IF NOT EXISTS app_config (
    app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (app, key)
);
CREATE TABLE IF NOT EXISTS app_settings (
    app TEXT PRIMARY KEY REFERENCES apps(name) ON DELETE CASCADE,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// A `versions` row selected as `version, sha256, size, deployed_at, activated_at`.
fn version_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRecord> {
    Ok(VersionRecord {
        version: row.get(0)?,
        sha256: row.get(1)?,
        size: row.get::<_, i64>(2)?.max(0) as u64,
        deployed_at: row.get(3)?,
        activated_at: row.get(4)?,
    })
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl SqliteStore {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        conn.execute_batch(super::NEW_DATABASE_PAGE_SIZE)
            .context("configuring the database")?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .context("configuring the database")?;
        conn.execute_batch(SCHEMA)
            .context("creating the database schema")?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn version(
        conn: &Connection,
        app: &str,
        version: u32,
    ) -> anyhow::Result<Option<VersionRecord>> {
        conn.query_row(
            "SELECT version, sha256, size, deployed_at, activated_at FROM versions WHERE app = ?1 AND version = ?2",
            params![app, version],
            version_record,
        )
        .optional()
        .context("reading a version")
    }
}

impl MetadataStore for SqliteStore {
    fn apps(&self) -> anyhow::Result<Vec<AppRecord>> {
        let conn = self.conn();
        let mut apps: Vec<AppRecord> = conn
            .prepare("SELECT name, active_version FROM apps ORDER BY name")?
            .query_map([], |row| {
                Ok(AppRecord {
                    name: row.get(0)?,
                    active_version: row.get(1)?,
                    versions: Vec::new(),
                    config: AppConfig::new(),
                    settings: serde_json::Value::Object(Default::default()),
                })
            })?
            .collect::<Result<_, _>>()
            .context("reading apps")?;
        let mut versions = conn.prepare(
            "SELECT version, sha256, size, deployed_at, activated_at FROM versions WHERE app = ?1 ORDER BY version",
        )?;
        let mut config = conn.prepare("SELECT key, value FROM app_config WHERE app = ?1")?;
        let mut settings = conn.prepare("SELECT json FROM app_settings WHERE app = ?1")?;
        for app in &mut apps {
            app.versions = versions
                .query_map([&app.name], version_record)?
                .collect::<Result<_, _>>()
                .context("reading versions")?;
            app.config = config
                .query_map([&app.name], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()
                .context("reading app configuration")?;
            let json: Option<String> = settings
                .query_row([&app.name], |row| row.get(0))
                .optional()
                .context("reading app settings")?;
            if let Some(json) = json {
                app.settings = serde_json::from_str(&json).with_context(|| {
                    format!("the stored settings of {:?} are unreadable", app.name)
                })?;
            }
        }
        Ok(apps)
    }

    fn add_active_version(
        &self,
        app: &str,
        sha256: &str,
        size: u64,
    ) -> anyhow::Result<VersionRecord> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("INSERT OR IGNORE INTO apps (name) VALUES (?1)", [app])?;
        let next: u32 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE app = ?1",
            [app],
            |row| row.get(0),
        )?;
        let at = now();
        tx.execute(
            "INSERT INTO versions (app, version, sha256, size, deployed_at, activated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![app, next, sha256, i64::try_from(size).unwrap_or(i64::MAX), at],
        )?;
        tx.execute(
            "UPDATE apps SET active_version = ?2 WHERE name = ?1",
            params![app, next],
        )?;
        tx.commit()
            .with_context(|| format!("recording version {next} of {app:?}"))?;
        Ok(VersionRecord {
            version: next,
            sha256: sha256.to_owned(),
            size,
            deployed_at: at.clone(),
            activated_at: Some(at),
        })
    }

    fn activate(&self, app: &str, version: u32) -> anyhow::Result<VersionRecord> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE versions SET activated_at = ?3 WHERE app = ?1 AND version = ?2",
            params![app, version, now()],
        )?;
        tx.execute(
            "UPDATE apps SET active_version = ?2 WHERE name = ?1",
            params![app, version],
        )?;
        let record = Self::version(&tx, app, version)?
            .with_context(|| format!("{app:?} has no version {version}"))?;
        tx.commit()
            .with_context(|| format!("activating version {version} of {app:?}"))?;
        Ok(record)
    }

    fn delete_app(&self, app: &str) -> anyhow::Result<()> {
        self.conn()
            .execute("DELETE FROM apps WHERE name = ?1", [app])
            .with_context(|| format!("deleting {app:?}"))?;
        Ok(())
    }

    fn set_config(&self, app: &str, config: &AppConfig) -> anyhow::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("INSERT OR IGNORE INTO apps (name) VALUES (?1)", [app])?;
        tx.execute("DELETE FROM app_config WHERE app = ?1", [app])?;
        for (key, value) in config {
            tx.execute(
                "INSERT INTO app_config (app, key, value) VALUES (?1, ?2, ?3)",
                params![app, key, value],
            )?;
        }
        tx.commit()
            .with_context(|| format!("saving the configuration of {app:?}"))
    }

    fn set_settings(&self, app: &str, settings: &serde_json::Value) -> anyhow::Result<()> {
        let json = serde_json::to_string(settings)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("INSERT OR IGNORE INTO apps (name) VALUES (?1)", [app])?;
        tx.execute(
            "INSERT INTO app_settings (app, json) VALUES (?1, ?2) ON CONFLICT(app) DO UPDATE SET json = excluded.json",
            params![app, json],
        )?;
        tx.commit()
            .with_context(|| format!("saving the settings of {app:?}"))
    }

    fn routes(&self) -> anyhow::Result<Option<serde_json::Value>> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT value FROM settings WHERE key = 'routes'",
                [],
                |row| row.get(0),
            )
            .optional()
            .context("reading routes")?;
        text.map(|text| serde_json::from_str(&text).context("the stored routes are unreadable"))
            .transpose()
    }

    fn set_routes(&self, routes: &serde_json::Value) -> anyhow::Result<()> {
        let text = serde_json::to_string(routes)?;
        self.conn()
            .execute(
                "INSERT INTO settings (key, value) VALUES ('routes', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [text],
            )
            .context("saving routes")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_uses_32_kib_pages_and_the_summaries_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ivr.sqlite3");
        let _db = SqliteStore::open(&path).unwrap();
        let _sessions =
            crate::store::sessions::SessionStore::open(&path, &dir.path().join("traces.sqlite3"))
                .unwrap();
        let conn = Connection::open(&path).unwrap();
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap();
        assert_eq!(page_size, 32768);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn versions_activation_config_and_routes_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ivr.sqlite3");
        {
            let db = SqliteStore::open(&path).unwrap();
            assert_eq!(db.add_active_version("menu", "aa", 10).unwrap().version, 1);
            assert_eq!(db.add_active_version("menu", "bb", 20).unwrap().version, 2);
            db.activate("menu", 1).unwrap();
            db.set_config(
                "menu",
                &AppConfig::from([("agent_number".into(), "+65".into())]),
            )
            .unwrap();
            db.set_routes(&serde_json::json!({ "default_app": "menu", "rules": [] }))
                .unwrap();
        }
        let db = SqliteStore::open(&path).unwrap();
        let apps = db.apps().unwrap();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].active_version, Some(1));
        assert_eq!(apps[0].active().unwrap().sha256, "aa");
        assert_eq!(apps[0].versions.len(), 2);
        assert_eq!(apps[0].config["agent_number"], "+65");
        assert_eq!(
            db.routes().unwrap().unwrap()["default_app"].as_str(),
            Some("menu")
        );
        db.delete_app("menu").unwrap();
        assert!(db.apps().unwrap().is_empty());
        assert!(db.activate("menu", 1).is_err());
    }
}
