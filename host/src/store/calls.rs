//! Calls in progress, kept on disk so that a restart (or `kill -9`) does not
//! break them: each call's pinned app version and state, and the replies
//! recently given (for repeated deliveries). Written before the reply
//! leaves; read back once at start.
//!
//! The file (`calls.sqlite3`) is written with `synchronous = OFF`: a commit
//! is in the operating system's cache when the reply leaves, so a crash of
//! the process loses nothing; a crash of the machine may lose the last
//! seconds (those calls start over, as they would have without this file).
//! The values are opaque text and bytes here: the store knows no registry
//! and no wasm.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rusqlite::{Connection, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calls (
    session_id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT,
    used_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calls_used ON calls (used_ms);
CREATE TABLE IF NOT EXISTS replies (
    session_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    reply BLOB NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (session_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replies_at ON replies (at_ms);
";

/// One decided event, as the journal keeps it.
pub struct Decision<'a> {
    /// The call.
    pub session_id: &'a str,
    /// The event (empty: nothing to deduplicate).
    pub event_id: &'a str,
    /// The app and version the call is pinned to, when one answered.
    pub pin: Option<(&'a str, u32)>,
    /// The call's state after the event, when the event changed it (JSON).
    pub state: Option<&'a str>,
    /// The reply given.
    pub reply: &'a [u8],
}

/// A call read back at start.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCall {
    /// The call.
    pub session_id: String,
    /// The app it is pinned to.
    pub app: String,
    /// The version it is pinned to.
    pub version: u32,
    /// Its state (JSON), if any was kept.
    pub state: Option<String>,
    /// How long ago its last event was decided.
    pub idle: Duration,
}

/// A reply read back at start.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReply {
    /// The call.
    pub session_id: String,
    /// The event.
    pub event_id: String,
    /// The reply given.
    pub reply: Vec<u8>,
    /// How long ago it was given.
    pub age: Duration,
}

/// The calls-in-progress journal.
pub struct CallJournal {
    conn: Mutex<Connection>,
}

impl CallJournal {
    /// Open (or create) the journal at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the calls journal {}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA busy_timeout = 5000;",
        )
        .context("configuring the calls journal")?;
        conn.execute_batch(SCHEMA)
            .context("creating the calls journal's tables")?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keep one decided event: the call's pin and state, and its reply.
    pub fn record(&self, decision: &Decision<'_>) -> anyhow::Result<()> {
        let now = now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some((app, version)) = decision.pin {
            tx.prepare_cached(
                "INSERT INTO calls (session_id, app, version, state, used_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (session_id) DO UPDATE SET used_ms = excluded.used_ms,
                   state = COALESCE(excluded.state, calls.state)",
            )?
            .execute(params![
                decision.session_id,
                app,
                version,
                decision.state,
                now
            ])?;
        }
        if !decision.event_id.is_empty() {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO replies (session_id, event_id, reply, at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                decision.session_id,
                decision.event_id,
                decision.reply,
                now
            ])?;
        }
        tx.commit().context("writing the calls journal")
    }

    /// Forget a call that ended (its replies stay until they expire).
    pub fn forget(&self, session_id: &str) -> anyhow::Result<()> {
        self.conn()
            .prepare_cached("DELETE FROM calls WHERE session_id = ?1")?
            .execute([session_id])?;
        Ok(())
    }

    /// The calls idle less than `call_ttl` (at most `max_calls`, the most
    /// recent) and the replies younger than `reply_ttl` (at most
    /// `max_replies`), oldest first.
    pub fn load(
        &self,
        call_ttl: Duration,
        max_calls: usize,
        reply_ttl: Duration,
        max_replies: usize,
    ) -> anyhow::Result<(Vec<StoredCall>, Vec<StoredReply>)> {
        let now = now_ms();
        let conn = self.conn();
        let mut calls: Vec<StoredCall> = conn
            .prepare(
                "SELECT session_id, app, version, state, used_ms FROM calls
                 WHERE used_ms > ?1 ORDER BY used_ms DESC LIMIT ?2",
            )?
            .query_map(params![now - ms(call_ttl), max_calls as i64], |row| {
                Ok(StoredCall {
                    session_id: row.get(0)?,
                    app: row.get(1)?,
                    version: row.get(2)?,
                    state: row.get(3)?,
                    idle: since(now, row.get(4)?),
                })
            })?
            .collect::<Result<_, _>>()
            .context("reading the calls journal")?;
        calls.reverse();
        let mut replies: Vec<StoredReply> = conn
            .prepare(
                "SELECT session_id, event_id, reply, at_ms FROM replies
                 WHERE at_ms > ?1 ORDER BY at_ms DESC LIMIT ?2",
            )?
            .query_map(params![now - ms(reply_ttl), max_replies as i64], |row| {
                Ok(StoredReply {
                    session_id: row.get(0)?,
                    event_id: row.get(1)?,
                    reply: row.get(2)?,
                    age: since(now, row.get(3)?),
                })
            })?
            .collect::<Result<_, _>>()
            .context("reading the calls journal")?;
        replies.reverse();
        Ok((calls, replies))
    }

    /// Delete calls idle for `call_ttl` and replies older than `reply_ttl`;
    /// how many rows went.
    pub fn prune(&self, call_ttl: Duration, reply_ttl: Duration) -> anyhow::Result<usize> {
        let now = now_ms();
        let conn = self.conn();
        let calls = conn.execute(
            "DELETE FROM calls WHERE used_ms <= ?1",
            [now - ms(call_ttl)],
        )?;
        let replies = conn.execute(
            "DELETE FROM replies WHERE at_ms <= ?1",
            [now - ms(reply_ttl)],
        )?;
        Ok(calls + replies)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

fn since(now: i64, then: i64) -> Duration {
    Duration::from_millis(u64::try_from(now - then).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_decision_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.sqlite3");
        let journal = CallJournal::open(&path).unwrap();
        let decision = |event_id, state, reply| Decision {
            session_id: "s1",
            event_id,
            pin: Some(("bank", 3)),
            state,
            reply,
        };
        journal
            .record(&decision("e1", Some(r#"{"k":"v"}"#), b"first"))
            .unwrap();
        // A fault changes no state; a repeat keeps the first reply.
        journal.record(&decision("e2", None, b"second")).unwrap();
        journal.record(&decision("e1", None, b"again")).unwrap();
        drop(journal);

        let journal = CallJournal::open(&path).unwrap();
        let (calls, replies) = journal.load(HOUR, 10, HOUR, 10).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].app.as_str(), calls[0].version), ("bank", 3));
        assert_eq!(calls[0].state.as_deref(), Some(r#"{"k":"v"}"#));
        let replies: Vec<_> = replies
            .iter()
            .map(|r| (r.event_id.as_str(), r.reply.as_slice()))
            .collect();
        assert_eq!(replies, [("e1", &b"first"[..]), ("e2", &b"second"[..])]);

        journal.forget("s1").unwrap();
        let (calls, replies) = journal.load(HOUR, 10, HOUR, 10).unwrap();
        assert!(calls.is_empty());
        assert_eq!(
            replies.len(),
            2,
            "replies outlive the call until they expire"
        );
        assert_eq!(journal.prune(HOUR, Duration::ZERO).unwrap(), 2);
    }

    #[test]
    fn loading_keeps_the_newest_within_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let journal = CallJournal::open(&dir.path().join("calls.sqlite3")).unwrap();
        for n in 0..5 {
            let session = format!("s{n}");
            journal
                .record(&Decision {
                    session_id: &session,
                    event_id: "e",
                    pin: Some(("app", 1)),
                    state: None,
                    reply: b"r",
                })
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let (calls, replies) = journal.load(HOUR, 2, HOUR, 3).unwrap();
        let sessions: Vec<_> = calls.iter().map(|c| c.session_id.as_str()).collect();
        assert_eq!(sessions, ["s3", "s4"], "the most recent, oldest first");
        assert_eq!(replies.len(), 3);
        let (calls, _) = journal.load(Duration::ZERO, 10, HOUR, 10).unwrap();
        assert!(calls.is_empty(), "idle past the TTL");
    }
}
