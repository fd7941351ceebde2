//! Apps' key-value stores: persistent across calls and restarts, scoped per
//! app, bounded per app by a byte quota. [`KvStore`] is the seam a shared
//! backend (Redis, for several replicas) implements; the embedded host
//! keeps them in SQLite (`DATA_DIR/kv.sqlite3`).

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Why an operation failed; the guest sees each as an error, never a trap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is longer than [`MAX_KEY_BYTES`] (its length).
    #[error("the key is {0} bytes; at most {MAX_KEY_BYTES}")]
    KeyTooLong(usize),
    /// The value is larger than [`MAX_VALUE_BYTES`] (its length).
    #[error("the value is {0} bytes; at most {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
    /// The write would take the app over its quota (the quota, in bytes).
    #[error("the app's key-value quota of {0} bytes is used up")]
    QuotaExceeded(u64),
    /// `increment` found a value that is not a 64-bit integer.
    #[error("the value is not a 64-bit integer")]
    NotANumber,
    /// The backend failed.
    #[error("the key-value store is unavailable: {0}")]
    Unavailable(String),
}

impl From<anyhow::Error> for KvError {
    fn from(err: anyhow::Error) -> Self {
        KvError::Unavailable(format!("{err:#}"))
    }
}

impl From<rusqlite::Error> for KvError {
    fn from(err: rusqlite::Error) -> Self {
        KvError::Unavailable(err.to_string())
    }
}

/// An app's key-value store, as every backend provides it. Calls may block
/// (a database, a network): callers run them off the async executor.
pub trait KvStore: Send + Sync {
    /// The value of `key`, unless unset or expired.
    fn get(&self, app: &str, key: &str) -> Result<Option<String>, KvError>;
    /// Set `key`, expiring after `ttl` when given, within `quota` bytes
    /// (keys and values of the app together).
    fn set(
        &self,
        app: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        quota: u64,
    ) -> Result<(), KvError>;
    /// Remove `key`.
    fn delete(&self, app: &str, key: &str) -> Result<(), KvError>;
    /// Add `delta` to the integer at `key` (unset counts as 0), keeping its
    /// expiry; the new value.
    fn increment(&self, app: &str, key: &str, delta: i64, quota: u64) -> Result<i64, KvError>;
    /// Bytes the app's keys and values use.
    fn used_bytes(&self, app: &str) -> Result<u64, KvError>;
    /// Drop expired entries (all apps); how many went.
    fn purge_expired(&self) -> Result<usize, KvError>;
    /// Drop every entry of `app` (the app was deleted).
    fn clear(&self, app: &str) -> Result<(), KvError>;
}

/// Check a key and value against the size limits.
pub fn check_sizes(key: &str, value: Option<&str>) -> Result<(), KvError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::KeyTooLong(key.len()));
    }
    if let Some(value) = value
        && value.len() > MAX_VALUE_BYTES
    {
        return Err(KvError::ValueTooLarge(value.len()));
    }
    Ok(())
}

/// The embedded backend: one SQLite file, WAL, `synchronous = NORMAL` (a
/// write survives the process crashing at once; an OS crash or power loss
/// may lose the last moments' writes).
pub struct SqliteKv {
    conn: Mutex<Connection>,
}

const KV_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    app TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_us INTEGER,
    PRIMARY KEY (app, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expiry ON kv(expires_us) WHERE expires_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS kv_usage (
    app TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
";

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn entry_bytes(key: &str, value: &str) -> i64 {
    (key.len() + value.len()) as i64
}

impl SqliteKv {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the key-value store {}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .context("configuring the key-value store")?;
        conn.execute_batch(KV_SCHEMA)
            .context("creating the key-value schema")?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write `value` at `key` (keeping `expires_us`) if the quota allows.
    fn write(
        tx: &rusqlite::Transaction<'_>,
        app: &str,
        key: &str,
        value: &str,
        expires_us: Option<i64>,
        quota: u64,
    ) -> Result<(), KvError> {
        let old: Option<i64> = tx
            .query_row(
                "SELECT length(CAST(key AS BLOB)) + length(CAST(value AS BLOB)) FROM kv WHERE app = ?1 AND key = ?2",
                params![app, key],
                |row| row.get(0),
            )
            .optional()?;
        let delta = entry_bytes(key, value) - old.unwrap_or(0);
        let used: i64 = tx
            .query_row(
                "SELECT bytes FROM kv_usage WHERE app = ?1",
                params![app],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if delta > 0 && used + delta > quota as i64 {
            // Expired entries still count until purged: purge this app's, then look again.
            let freed: i64 = tx
                .query_row(
                    "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0) FROM kv
                     WHERE app = ?1 AND expires_us <= ?2 AND key <> ?3",
                    params![app, now_us(), key],
                    |row| row.get(0),
                )?;
            if freed == 0 || used - freed + delta > quota as i64 {
                return Err(KvError::QuotaExceeded(quota));
            }
            tx.execute(
                "DELETE FROM kv WHERE app = ?1 AND expires_us <= ?2 AND key <> ?3",
                params![app, now_us(), key],
            )?;
            tx.execute(
                "UPDATE kv_usage SET bytes = bytes - ?2 WHERE app = ?1",
                params![app, freed],
            )?;
        }
        tx.execute(
            "INSERT INTO kv (app, key, value, expires_us) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(app, key) DO UPDATE SET value = excluded.value, expires_us = excluded.expires_us",
            params![app, key, value, expires_us],
        )?;
        tx.execute(
            "INSERT INTO kv_usage (app, bytes) VALUES (?1, ?2)
             ON CONFLICT(app) DO UPDATE SET bytes = bytes + excluded.bytes",
            params![app, delta],
        )?;
        Ok(())
    }
}

impl KvStore for SqliteKv {
    fn get(&self, app: &str, key: &str) -> Result<Option<String>, KvError> {
        check_sizes(key, None)?;
        let conn = self.conn();
        Ok(conn
            .prepare_cached(
                "SELECT value FROM kv WHERE app = ?1 AND key = ?2 AND (expires_us IS NULL OR expires_us > ?3)",
            )?
            .query_row(params![app, key, now_us()], |row| row.get(0))
            .optional()?)
    }

    fn set(
        &self,
        app: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        quota: u64,
    ) -> Result<(), KvError> {
        check_sizes(key, Some(value))?;
        let expires_us = ttl.map(|ttl| now_us().saturating_add(ttl.as_micros() as i64));
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::write(&tx, app, key, value, expires_us, quota)?;
        tx.commit()?;
        Ok(())
    }

    fn delete(&self, app: &str, key: &str) -> Result<(), KvError> {
        check_sizes(key, None)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed: Option<i64> = tx
            .query_row(
                "DELETE FROM kv WHERE app = ?1 AND key = ?2
                 RETURNING length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))",
                params![app, key],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(bytes) = removed {
            tx.execute(
                "UPDATE kv_usage SET bytes = bytes - ?2 WHERE app = ?1",
                params![app, bytes],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn increment(&self, app: &str, key: &str, delta: i64, quota: u64) -> Result<i64, KvError> {
        check_sizes(key, None)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT value, expires_us FROM kv WHERE app = ?1 AND key = ?2 AND (expires_us IS NULL OR expires_us > ?3)",
                params![app, key, now_us()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let (value, expires_us) = match current {
            Some((text, expires)) => (
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| KvError::NotANumber)?,
                expires,
            ),
            None => (0, None),
        };
        let next = value.checked_add(delta).ok_or(KvError::NotANumber)?;
        Self::write(&tx, app, key, &next.to_string(), expires_us, quota)?;
        tx.commit()?;
        Ok(next)
    }

    fn used_bytes(&self, app: &str) -> Result<u64, KvError> {
        let conn = self.conn();
        let used: Option<i64> = conn
            .query_row(
                "SELECT bytes FROM kv_usage WHERE app = ?1",
                params![app],
                |row| row.get(0),
            )
            .optional()?;
        Ok(used.unwrap_or(0).max(0) as u64)
    }

    fn purge_expired(&self) -> Result<usize, KvError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_us();
        tx.execute(
            "UPDATE kv_usage SET bytes = bytes - (
                SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0)
                FROM kv WHERE kv.app = kv_usage.app AND expires_us <= ?1)",
            params![now],
        )?;
        let purged = tx.execute("DELETE FROM kv WHERE expires_us <= ?1", params![now])?;
        tx.commit()?;
        Ok(purged)
    }

    fn clear(&self, app: &str) -> Result<(), KvError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM kv WHERE app = ?1", params![app])?;
        tx.execute("DELETE FROM kv_usage WHERE app = ?1", params![app])?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteKv) {
        let dir = tempfile::tempdir().unwrap();
        let kv = SqliteKv::open(&dir.path().join("kv.sqlite3")).unwrap();
        (dir, kv)
    }

    #[test]
    fn apps_never_see_each_others_keys() {
        let (_dir, kv) = store();
        kv.set("a", "lang", "fr", None, 1024).unwrap();
        assert_eq!(kv.get("a", "lang").unwrap().as_deref(), Some("fr"));
        assert_eq!(kv.get("b", "lang").unwrap(), None);
        kv.delete("b", "lang").unwrap();
        assert_eq!(kv.get("a", "lang").unwrap().as_deref(), Some("fr"));
    }

    #[test]
    fn entries_expire() {
        let (_dir, kv) = store();
        kv.set("a", "k", "v", Some(Duration::from_millis(30)), 1024)
            .unwrap();
        assert_eq!(kv.get("a", "k").unwrap().as_deref(), Some("v"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(kv.get("a", "k").unwrap(), None);
        assert_eq!(kv.used_bytes("a").unwrap(), 2);
        assert_eq!(kv.purge_expired().unwrap(), 1);
        assert_eq!(kv.used_bytes("a").unwrap(), 0);
    }

    #[test]
    fn the_quota_counts_keys_and_values_and_frees_on_delete() {
        let (_dir, kv) = store();
        kv.set("a", "k1", "12345678", None, 20).unwrap(); // 10 bytes
        kv.set("a", "k2", "12345678", None, 20).unwrap(); // 20 bytes
        assert_eq!(
            kv.set("a", "k3", "x", None, 20),
            Err(KvError::QuotaExceeded(20))
        );
        // Overwriting with a value of the same size fits.
        kv.set("a", "k2", "87654321", None, 20).unwrap();
        kv.delete("a", "k1").unwrap();
        assert_eq!(kv.used_bytes("a").unwrap(), 10);
        kv.set("a", "k3", "x", None, 20).unwrap(); // 13 bytes
        assert_eq!(
            kv.set("a", "k4", "1234567", None, 20),
            Err(KvError::QuotaExceeded(20))
        );
        // An expired entry is purged to make room.
        kv.delete("a", "k3").unwrap();
        kv.set("a", "k4", "1234567", Some(Duration::from_millis(1)), 20)
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        kv.set("a", "k5", "1234567", None, 20).unwrap();
        assert_eq!(kv.get("a", "k4").unwrap(), None);
    }

    #[test]
    fn increment_counts_from_zero_and_refuses_text() {
        let (_dir, kv) = store();
        assert_eq!(kv.increment("a", "calls", 1, 1024).unwrap(), 1);
        assert_eq!(kv.increment("a", "calls", 41, 1024).unwrap(), 42);
        assert_eq!(kv.get("a", "calls").unwrap().as_deref(), Some("42"));
        kv.set("a", "name", "ada", None, 1024).unwrap();
        assert_eq!(kv.increment("a", "name", 1, 1024), Err(KvError::NotANumber));
        kv.set("a", "max", &i64::MAX.to_string(), None, 1024)
            .unwrap();
        assert_eq!(kv.increment("a", "max", 1, 1024), Err(KvError::NotANumber));
    }

    #[test]
    fn sizes_are_checked() {
        let (_dir, kv) = store();
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            kv.get("a", &long_key),
            Err(KvError::KeyTooLong(MAX_KEY_BYTES + 1))
        );
        let big = "v".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(
            kv.set("a", "k", &big, None, u64::MAX >> 1),
            Err(KvError::ValueTooLarge(MAX_VALUE_BYTES + 1))
        );
    }
}
