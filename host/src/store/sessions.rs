//! Call traces and session summaries, in the same SQLite database.
//!
//! Summaries are written synchronously (8x8 gets its `200` only once the
//! summary is durable). Trace records — every event of a call with its app,
//! version, reply, guest time and fault — are written by a background thread
//! in batches, off the reply's path; if it falls behind, records are dropped
//! and counted rather than slowing calls down.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::protocol::summary::{SessionSummary, error_code_meaning};

/// One event of a call, as recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TraceRecord {
    /// The call's session id.
    pub session_id: String,
    /// When the host received it (RFC 3339).
    pub at: String,
    /// `CALL_ACTION`, `SESSION_SUMMARY`, `CALL_STATUS`, ...
    pub event_type: String,
    /// The event id, when the event has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The app that handled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The app version that handled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Time from receipt to answer, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_us: Option<u64>,
    /// The fault kind, when the app faulted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_kind: Option<String>,
    /// The fault, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The webhook body as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    /// The reply sent back (a callflow), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<Value>,
    /// The body's bytes (parsed into `request` by the writer, off the reply's path).
    #[serde(skip)]
    pub request_bytes: Option<bytes::Bytes>,
    /// The reply's bytes (parsed into `reply` by the writer).
    #[serde(skip)]
    pub reply_bytes: Option<bytes::Bytes>,
}

/// A session as listed by `GET /sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// The session id.
    pub session_id: String,
    /// First event received.
    pub first_at: String,
    /// Last event received.
    pub last_at: String,
    /// The app that answered it.
    pub app: Option<String>,
    /// The app version that answered it.
    pub version: Option<u32>,
    /// Events recorded.
    pub event_count: u64,
    /// The summary's `sessionStatus`, or `IN_PROGRESS` before the summary.
    pub status: String,
    /// The summary's error code, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// What the error code means (reference §8.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_meaning: Option<&'static str>,
}

/// A session's whole trace (`GET /sessions/{id}`).
#[derive(Debug, Clone, Serialize)]
pub struct SessionTrace {
    /// The session.
    #[serde(flatten)]
    pub info: SessionInfo,
    /// Every recorded event, in order.
    pub events: Vec<TraceRecord>,
    /// The stored summary, verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
}

/// Filters of `GET /sessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Only sessions with this status (`IN_PROGRESS` for none yet).
    pub status: Option<String>,
    /// Only sessions answered by this app.
    pub app: Option<String>,
    /// Only sessions whose first event is at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only sessions whose first event is before this time (RFC 3339).
    pub until: Option<String>,
    /// At most this many (newest first).
    pub limit: usize,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    app TEXT,
    version INTEGER,
    events INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'IN_PROGRESS',
    error_code INTEGER
);
CREATE INDEX IF NOT EXISTS sessions_first_at ON sessions(first_at);
CREATE TABLE IF NOT EXISTS summaries (
    session_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    session_status TEXT NOT NULL,
    error_code INTEGER,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trace_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    at TEXT NOT NULL,
    json TEXT NOT NULL,
    request TEXT,
    reply TEXT
);
CREATE INDEX IF NOT EXISTS trace_events_session ON trace_events(session_id, id);
CREATE INDEX IF NOT EXISTS trace_events_at ON trace_events(at);
";

/// Sessions, summaries and traces in SQLite.
pub struct SessionStore {
    conn: Mutex<Connection>,
    traces: SyncSender<TraceRecord>,
    dropped: Arc<AtomicU64>,
}

/// How many trace records may wait for the writer.
const TRACE_QUEUE: usize = 16_384;

impl SessionStore {
    /// Open the tables in the database at `path` and start the trace writer.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let open = || -> anyhow::Result<Connection> {
            let conn =
                Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
            conn.execute_batch(super::NEW_DATABASE_PAGE_SIZE)?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )?;
            Ok(conn)
        };
        let conn = open()?;
        conn.execute_batch(SCHEMA)
            .context("creating the session tables")?;
        let writer = open()?;
        writer.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let (traces, receiver) = std::sync::mpsc::sync_channel(TRACE_QUEUE);
        std::thread::Builder::new()
            .name("ivr-trace-writer".into())
            .spawn(move || write_traces(writer, receiver))
            .context("starting the trace writer")?;
        Ok(Self {
            conn: Mutex::new(conn),
            traces,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a trace record (never blocks; dropped and counted when the
    /// writer is behind).
    pub fn record(&self, record: TraceRecord) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.traces.try_send(record)
        {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped,
                    "the trace writer is behind (the CPU is saturated): trace records are being dropped; calls are unaffected"
                );
            }
        }
    }

    /// Trace records dropped because the writer was behind.
    pub fn dropped_records(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Store a summary durably. `false` when the session already had one
    /// (a repeated delivery: nothing changes).
    pub fn insert_summary(&self, summary: &SessionSummary, json: &str) -> anyhow::Result<bool> {
        let now = jiff::Timestamp::now().to_string();
        let code = summary.error_details.as_ref().and_then(|e| e.error_code);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO summaries (session_id, received_at, session_status, error_code, json) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![summary.session_id, now, summary.session_status, code, json],
        )?;
        if inserted == 1 {
            tx.execute(
                "INSERT INTO sessions (session_id, first_at, last_at, status, error_code) VALUES (?1, ?2, ?2, ?3, ?4)
                 ON CONFLICT(session_id) DO UPDATE SET status = excluded.status, error_code = excluded.error_code, last_at = excluded.last_at",
                params![summary.session_id, now, summary.session_status, code],
            )?;
        }
        tx.commit().context("storing the session summary")?;
        Ok(inserted == 1)
    }

    /// One session's trace.
    pub fn session(&self, session_id: &str) -> anyhow::Result<Option<SessionTrace>> {
        let conn = self.conn();
        let Some(info) = conn
            .query_row(
                "SELECT session_id, first_at, last_at, app, version, events, status, error_code FROM sessions WHERE session_id = ?1",
                [session_id],
                session_info,
            )
            .optional()?
        else {
            return Ok(None);
        };
        let events = conn
            .prepare(
                "SELECT json, request, reply FROM trace_events WHERE session_id = ?1 ORDER BY id",
            )?
            .query_map([session_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })?
            .filter_map(Result::ok)
            .filter_map(|(json, request, reply)| {
                let mut record = record_from_json(serde_json::from_str::<Value>(&json).ok()?);
                record.request = request.and_then(|r| serde_json::from_str(&r).ok());
                record.reply = reply.and_then(|r| serde_json::from_str(&r).ok());
                Some(record)
            })
            .collect();
        let summary = conn
            .query_row(
                "SELECT json FROM summaries WHERE session_id = ?1",
                [session_id],
                |row| row.get::<_, String>(0),
            )
            .optional()?
            .and_then(|j| serde_json::from_str(&j).ok());
        Ok(Some(SessionTrace {
            info,
            events,
            summary,
        }))
    }

    /// Sessions matching `filter`, newest first.
    pub fn sessions(&self, filter: &SessionFilter) -> anyhow::Result<Vec<SessionInfo>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT session_id, first_at, last_at, app, version, events, status, error_code FROM sessions
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR app = ?2)
               AND (?3 IS NULL OR first_at >= ?3) AND (?4 IS NULL OR first_at < ?4)
             ORDER BY first_at DESC LIMIT ?5",
        )?;
        let rows = statement.query_map(
            params![
                filter.status,
                filter.app,
                filter.since,
                filter.until,
                filter.limit as i64
            ],
            session_info,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Delete sessions, summaries and traces older than `before` (RFC 3339).
    pub fn prune(&self, before: &str) -> anyhow::Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let traces = tx.execute("DELETE FROM trace_events WHERE at < ?1", [before])?;
        tx.execute(
            "DELETE FROM summaries WHERE session_id IN (SELECT session_id FROM sessions WHERE last_at < ?1)",
            [before],
        )?;
        let sessions = tx.execute("DELETE FROM sessions WHERE last_at < ?1", [before])?;
        tx.commit()?;
        Ok(traces + sessions)
    }
}

fn session_info(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionInfo> {
    let error_code: Option<i64> = row.get(7)?;
    Ok(SessionInfo {
        session_id: row.get(0)?,
        first_at: row.get(1)?,
        last_at: row.get(2)?,
        app: row.get(3)?,
        version: row.get(4)?,
        event_count: row.get::<_, i64>(5)?.max(0) as u64,
        status: row.get(6)?,
        error_code,
        error_meaning: error_code.map(error_code_meaning),
    })
}

fn record_from_json(value: Value) -> TraceRecord {
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
    TraceRecord {
        session_id: text("session_id").unwrap_or_default(),
        at: text("at").unwrap_or_default(),
        event_type: text("event_type").unwrap_or_default(),
        event_id: text("event_id"),
        app: text("app"),
        version: value
            .get("version")
            .and_then(Value::as_u64)
            .map(|v| v as u32),
        elapsed_us: value.get("elapsed_us").and_then(Value::as_u64),
        fault_kind: text("fault_kind"),
        fault: text("fault"),
        request: value.get("request").cloned(),
        reply: value.get("reply").cloned(),
        request_bytes: None,
        reply_bytes: None,
    }
}

/// The trace writer: batches of records, one transaction each.
fn write_traces(mut conn: Connection, receiver: Receiver<TraceRecord>) {
    run_only_when_idle();
    // Runs until the store (and with it the sender) is dropped. After the
    // first record of a batch it waits a little and takes everything queued,
    // so a busy host pays one wakeup and one transaction per batch, not per
    // event.
    while let Ok(first) = receiver.recv() {
        std::thread::sleep(BATCH_WINDOW);
        let mut batch = vec![first];
        batch.extend(receiver.try_iter().take(4096));
        if let Err(err) = write_batch(&mut conn, &batch) {
            tracing::error!("could not record {} trace events: {err:#}", batch.len());
        }
    }
}

/// Give the calling thread the lowest CPU priority there is (Linux's
/// `SCHED_IDLE`): it runs when calls leave a CPU free, so writing a batch of
/// traces never delays a reply. Under sustained saturation the queue fills
/// and records are dropped and counted instead.
fn run_only_when_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscall on the calling thread (pid 0) with a valid,
        // initialized parameter struct.
        let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if result != 0 {
            tracing::debug!(
                "could not lower the trace writer's priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// How long the trace writer gathers records before writing a batch.
const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// Bytes as text, borrowed when they are valid UTF-8 (they nearly always are).
fn lossy_text(bytes: &Option<bytes::Bytes>) -> Option<std::borrow::Cow<'_, str>> {
    bytes.as_deref().map(String::from_utf8_lossy)
}

/// What one batch changes in a session's row.
struct SessionTouch<'a> {
    first_at: &'a str,
    last_at: &'a str,
    app: Option<&'a str>,
    version: Option<u32>,
    events: i64,
}

impl<'a> SessionTouch<'a> {
    fn new(record: &'a TraceRecord) -> Self {
        Self {
            first_at: &record.at,
            last_at: &record.at,
            app: record.app.as_deref(),
            version: record.version,
            events: 1,
        }
    }

    fn add(&mut self, record: &'a TraceRecord) {
        self.first_at = self.first_at.min(&record.at);
        self.last_at = self.last_at.max(&record.at);
        if self.app.is_none() {
            self.app = record.app.as_deref();
            self.version = record.version;
        }
        self.events += 1;
    }
}

fn write_batch(conn: &mut Connection, batch: &[TraceRecord]) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO trace_events (session_id, at, json, request, reply) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO sessions (session_id, first_at, last_at, app, version, events) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(session_id) DO UPDATE SET first_at = MIN(first_at, excluded.first_at),
               last_at = MAX(last_at, excluded.last_at), events = events + excluded.events,
               app = COALESCE(sessions.app, excluded.app), version = COALESCE(sessions.version, excluded.version)",
        )?;
        // A session's events in this batch update its row once.
        let mut touched: HashMap<&str, SessionTouch<'_>> = HashMap::new();
        for record in batch {
            if record.session_id.is_empty() {
                continue;
            }
            // The metadata as JSON; the request and reply bytes stored as sent
            // (parsed only when a trace is read).
            let json = serde_json::to_string(record)?;
            insert.execute(params![
                record.session_id,
                record.at,
                json,
                lossy_text(&record.request_bytes).as_deref(),
                lossy_text(&record.reply_bytes).as_deref()
            ])?;
            touched
                .entry(record.session_id.as_str())
                .and_modify(|t| t.add(record))
                .or_insert_with(|| SessionTouch::new(record));
        }
        for (session_id, t) in touched {
            upsert.execute(params![
                session_id, t.first_at, t.last_at, t.app, t.version, t.events
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_stored_once_and_traces_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(&dir.path().join("db")).unwrap();
        store.record(TraceRecord {
            session_id: "s1".into(),
            at: "2026-01-01T00:00:00Z".into(),
            event_type: "CALL_ACTION".into(),
            app: Some("menu".into()),
            version: Some(2),
            ..TraceRecord::default()
        });
        let summary: SessionSummary = serde_json::from_str(
            r#"{"sessionId":"s1","sessionStatus":"ERROR","errorDetails":{"errorCode":"-2004","errorMsg":"No coverage"}}"#,
        )
        .unwrap();
        assert!(store.insert_summary(&summary, "{}").unwrap());
        assert!(
            !store.insert_summary(&summary, "{}").unwrap(),
            "a repeat is stored once"
        );
        std::thread::sleep(Duration::from_millis(200));
        let trace = store.session("s1").unwrap().unwrap();
        assert_eq!(trace.info.status, "ERROR");
        assert_eq!(trace.info.error_code, Some(-2004));
        assert_eq!(
            trace.info.error_meaning,
            Some("No coverage available for requested area")
        );
        assert_eq!(trace.events.len(), 1);
        assert_eq!(trace.info.app.as_deref(), Some("menu"));
        let listed = store
            .sessions(&SessionFilter {
                status: Some("ERROR".into()),
                limit: 10,
                ..SessionFilter::default()
            })
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(store.prune("2100-01-01T00:00:00Z").unwrap(), 2);
        assert!(store.session("s1").unwrap().is_none());
    }
}
