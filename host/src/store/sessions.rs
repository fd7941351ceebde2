//! Call traces and session summaries.
//!
//! Summaries are written synchronously into the host's database (8x8 gets
//! its `200` only once the summary is durable). Trace records — every event
//! of a call with its app, version, reply, guest time and fault — are
//! diagnostics: a background thread writes them in batches, off the reply's
//! path, into a database file of their own that is never fsynced, so that
//! writing them never makes a call wait for the disk. A crash of the machine
//! (not of the host) may lose the last seconds of traces, never a summary;
//! a traces file found corrupt is set aside and started afresh. If the
//! writer falls behind, records are dropped and counted rather than slowing
//! calls down.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

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
    /// The app's outbound HTTP requests during the event (method, URL
    /// without query, status, bytes, ms or why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<Box<RawValue>>,
    /// The webhook body as received (verbatim: numbers out of `f64`'s range
    /// and deep nesting, which 8x8's JSON may hold, are kept as sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Box<RawValue>>,
    /// The reply sent back (a callflow), when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<Box<RawValue>>,
    /// The body's bytes (parsed into `request` by the writer, off the reply's path).
    #[serde(skip)]
    pub request_bytes: Option<bytes::Bytes>,
    /// The reply's bytes (parsed into `reply` by the writer).
    #[serde(skip)]
    pub reply_bytes: Option<bytes::Bytes>,
}

impl TraceRecord {
    /// About how many bytes the record holds while queued.
    pub fn size(&self) -> usize {
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        let bytes = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, bytes::Bytes::len);
        256 + self.session_id.len()
            + text(&self.event_id)
            + text(&self.fault)
            + bytes(&self.request_bytes)
            + bytes(&self.reply_bytes)
    }
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
    /// The stored summary, verbatim (whatever its numbers and nesting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Box<RawValue>>,
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

/// The summaries, in the host's database (durable: `synchronous = FULL`).
const SUMMARY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS main.summaries (
    session_id TEXT PRIMARY KEY,
    received_at TEXT NOT NULL,
    session_status TEXT NOT NULL,
    error_code INTEGER,
    json TEXT NOT NULL
);
";

/// The traces, in their own file (attached as `traces`; never fsynced).
const TRACE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS traces.sessions (
    session_id TEXT PRIMARY KEY,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    app TEXT,
    version INTEGER,
    events INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS traces.trace_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    at TEXT NOT NULL,
    json TEXT NOT NULL,
    request TEXT,
    reply TEXT
);
CREATE INDEX IF NOT EXISTS traces.trace_events_session ON trace_events(session_id, id);
";

/// Every time is also kept as a number (microseconds since the Unix epoch),
/// which filters, orders and prunes: RFC 3339 texts of different fractional
/// lengths do not compare in time order. Added to databases from before,
/// filled from their texts.
const TIME_NUMBERS: [(&str, &str, &str, &str); 4] = [
    ("main", "summaries", "received_us", "received_at"),
    ("traces", "sessions", "first_us", "first_at"),
    ("traces", "sessions", "last_us", "last_at"),
    ("traces", "trace_events", "at_us", "at"),
];

/// Indexes on the time numbers.
const TIME_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS main.summaries_received_us ON summaries(received_us);
CREATE INDEX IF NOT EXISTS traces.sessions_first_us ON sessions(first_us);
CREATE INDEX IF NOT EXISTS traces.trace_events_at_us ON trace_events(at_us);
";

/// A session's row: its traced events joined with its summary, if any.
/// A session known only by its summary (its trace rows lost) still shows.
const SESSION_BY_ID: &str = "
SELECT t.session_id, t.first_at, t.last_at, t.app, t.version, t.events,
       COALESCE(s.session_status, 'IN_PROGRESS'), s.error_code
  FROM traces.sessions t LEFT JOIN main.summaries s ON s.session_id = t.session_id
 WHERE t.session_id = ?1
UNION ALL
SELECT s.session_id, s.received_at, s.received_at, NULL, NULL, 0, s.session_status, s.error_code
  FROM main.summaries s
 WHERE s.session_id = ?1 AND NOT EXISTS (SELECT 1 FROM traces.sessions t WHERE t.session_id = ?1)
LIMIT 1";

/// Sessions matching a filter, newest first.
const SESSION_LIST: &str = "
SELECT t.session_id, t.first_at, t.last_at, t.app, t.version, t.events,
       COALESCE(s.session_status, 'IN_PROGRESS') AS status, s.error_code
  FROM traces.sessions t LEFT JOIN main.summaries s ON s.session_id = t.session_id
 WHERE (?1 IS NULL OR COALESCE(s.session_status, 'IN_PROGRESS') = ?1) AND (?2 IS NULL OR t.app = ?2)
   AND (?3 IS NULL OR t.first_us >= ?3) AND (?4 IS NULL OR t.first_us < ?4)
 ORDER BY t.first_us DESC, t.session_id LIMIT ?5";

/// Sessions, summaries and traces in SQLite.
pub struct SessionStore {
    /// The host's database, with the traces file attached as `traces`.
    conn: Mutex<Connection>,
    traces: SyncSender<TraceRecord>,
    dropped: Arc<AtomicU64>,
    /// Bytes of the records waiting for the writer (bounded by
    /// `max_queued_bytes`).
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
    /// The trace writer, joined on drop so that queued records are written.
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SessionStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has written what is queued.
        let (closed, _) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.traces, closed));
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the trace writer panicked");
        }
    }
}

/// How long a statement waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long storing a summary waits for the traces file's lock before it
/// leaves the session's row to later (see [`SessionStore::insert_summary`]).
const SESSION_ROW_WAIT: Duration = Duration::from_millis(100);

/// How many trace records may wait for the writer.
const TRACE_QUEUE: usize = 16_384;
/// How many bytes of trace records may wait for the writer by default
/// (requests and replies are the bulk: 16,384 maximal ones would be 2 GiB).
pub const DEFAULT_TRACE_QUEUE_BYTES: usize = 64 << 20;

/// How far before the newest summary a reopened store checks that every
/// summary has its session row (rows a machine crash took from the traces
/// file are restored from the durable summaries).
const RECONCILE_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

impl SessionStore {
    /// Open the summaries in the host's database at `database` and the
    /// traces in their own file at `traces`, and start the trace writer.
    pub fn open(database: &Path, traces: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(database)
            .with_context(|| format!("opening {}", database.display()))?;
        conn.execute_batch(super::NEW_DATABASE_PAGE_SIZE)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(SUMMARY_SCHEMA)
            .context("creating the summaries table")?;
        let fresh = attach_traces(&conn, traces)?;
        move_traces_out_of_the_database(&conn)?;
        number_the_times(&conn)?;
        restore_session_rows(&conn, fresh)?;

        let writer =
            Connection::open(traces).with_context(|| format!("opening {}", traces.display()))?;
        writer.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(TRACE_QUEUE);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let written = queued_bytes.clone();
        let writer = std::thread::Builder::new()
            .name("ivr-trace-writer".into())
            .spawn(move || write_traces(writer, receiver, &written))
            .context("starting the trace writer")?;
        Ok(Self {
            conn: Mutex::new(conn),
            traces: sender,
            queued_bytes,
            max_queued_bytes: DEFAULT_TRACE_QUEUE_BYTES,
            dropped: Arc::new(AtomicU64::new(0)),
            writer: Some(writer),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue a trace record (never blocks; dropped and counted when the
    /// writer is behind).
    pub fn record(&self, record: TraceRecord) {
        let size = record.size();
        let queued = self.queued_bytes.fetch_add(size, Ordering::Relaxed);
        let refused = if queued + size > self.max_queued_bytes {
            true
        } else {
            self.traces.try_send(record).is_err()
        };
        if refused {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped,
                    "the trace writer is behind (the CPU is saturated): trace records are being dropped; calls are unaffected"
                );
            }
        }
    }

    /// Hold at most `bytes` of trace records for the writer (more are
    /// dropped and counted).
    pub fn with_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes;
        self
    }

    /// Trace records dropped because the writer was behind.
    pub fn dropped_records(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Store a summary durably. `false` when the session already had one
    /// (a repeated delivery: nothing changes).
    pub fn insert_summary(&self, summary: &SessionSummary, json: &str) -> anyhow::Result<bool> {
        let received = jiff::Timestamp::now();
        let (now, now_us) = (received.to_string(), received.as_microsecond());
        let code = summary.error_details.as_ref().and_then(|e| e.error_code);
        let conn = self.conn();
        let inserted = conn
            .execute(
                "INSERT OR IGNORE INTO main.summaries (session_id, received_at, received_us, session_status, error_code, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![summary.session_id, now, now_us, summary.session_status, code, json],
            )
            .context("storing the session summary")?;
        if inserted == 1 {
            // The session's row in the traces file (so that it is listed
            // even when none of its events were traced; its status is read
            // from the summary). Best effort, after the summary is durable:
            // the trace writer may hold that file's lock while it waits for
            // an idle CPU, and a summary never waits on it for long. A row
            // missed here comes with the summary's own trace record, or
            // from the summaries at the next start.
            conn.busy_timeout(SESSION_ROW_WAIT)?;
            let touched = conn.execute(
                "INSERT INTO traces.sessions (session_id, first_at, last_at, first_us, last_us) VALUES (?1, ?2, ?2, ?3, ?3)
                 ON CONFLICT(session_id) DO UPDATE SET
                   last_at = CASE WHEN excluded.last_us > last_us THEN excluded.last_at ELSE last_at END,
                   last_us = MAX(last_us, excluded.last_us)",
                params![summary.session_id, now, now_us],
            );
            conn.busy_timeout(BUSY_TIMEOUT)?;
            if let Err(err) = touched {
                tracing::debug!(session = %summary.session_id, "session row not written now: {err}");
            }
        }
        Ok(inserted == 1)
    }

    /// One session's trace.
    pub fn session(&self, session_id: &str) -> anyhow::Result<Option<SessionTrace>> {
        let conn = self.conn();
        let Some(info) = conn
            .query_row(SESSION_BY_ID, [session_id], session_info)
            .optional()?
        else {
            return Ok(None);
        };
        let events = conn
            .prepare(
                "SELECT json, request, reply FROM traces.trace_events WHERE session_id = ?1 ORDER BY id",
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
                record.request = request.and_then(|r| RawValue::from_string(r).ok());
                record.reply = reply.and_then(|r| RawValue::from_string(r).ok());
                Some(record)
            })
            .collect();
        let summary = conn
            .query_row(
                "SELECT json FROM main.summaries WHERE session_id = ?1",
                [session_id],
                |row| row.get::<_, String>(0),
            )
            .optional()?
            .and_then(|j| RawValue::from_string(j).ok());
        Ok(Some(SessionTrace {
            info,
            events,
            summary,
        }))
    }

    /// Sessions matching `filter`, newest first.
    pub fn sessions(&self, filter: &SessionFilter) -> anyhow::Result<Vec<SessionInfo>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(SESSION_LIST)?;
        let rows = statement.query_map(
            params![
                filter.status,
                filter.app,
                filter.since.as_deref().map(micros).transpose()?,
                filter.until.as_deref().map(micros).transpose()?,
                filter.limit as i64
            ],
            session_info,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Delete sessions, summaries and traces older than `before` (RFC 3339).
    pub fn prune(&self, before: &str) -> anyhow::Result<usize> {
        let before = micros(before)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let traces = tx.execute("DELETE FROM traces.trace_events WHERE at_us < ?1", [before])?;
        tx.execute(
            "DELETE FROM main.summaries WHERE received_us < ?1 AND NOT EXISTS
               (SELECT 1 FROM traces.sessions t WHERE t.session_id = summaries.session_id AND t.last_us >= ?1)",
            [before],
        )?;
        let sessions = tx.execute("DELETE FROM traces.sessions WHERE last_us < ?1", [before])?;
        tx.commit()?;
        Ok(traces + sessions)
    }
}

/// Attach the traces file as `traces` (no fsyncs: `synchronous = OFF`) and
/// create its tables. A file SQLite finds corrupt is renamed aside
/// (`<name>.corrupt-<unix seconds>`) and a new one started. `true` when the
/// traces file is new.
fn attach_traces(conn: &Connection, path: &Path) -> anyhow::Result<bool> {
    let attach = |fresh: bool| -> rusqlite::Result<bool> {
        conn.execute("ATTACH DATABASE ?1 AS traces", [path.to_string_lossy()])?;
        let created = conn
            .execute_batch(
                "PRAGMA traces.page_size = 32768; PRAGMA traces.journal_mode = WAL;
                 PRAGMA traces.synchronous = OFF;",
            )
            .and_then(|()| conn.execute_batch(TRACE_SCHEMA));
        if let Err(err) = created {
            let _ = conn.execute_batch("DETACH DATABASE traces");
            return Err(err);
        }
        Ok(fresh)
    };
    let existed = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
    match attach(!existed) {
        Ok(fresh) => Ok(fresh),
        Err(err) if is_corrupt(&err) => {
            let aside = path.with_extension(format!(
                "sqlite3.corrupt-{}",
                jiff::Timestamp::now().as_second()
            ));
            tracing::warn!(
                "the traces file {} is corrupt ({err}); moved to {} and starting a new one (summaries are unaffected)",
                path.display(),
                aside.display()
            );
            std::fs::rename(path, &aside)
                .with_context(|| format!("moving the corrupt {} aside", path.display()))?;
            // Its journal goes with it (SQLite would apply it to the new file).
            for suffix in ["-wal", "-shm"] {
                let with_suffix = |p: &Path| {
                    let mut name = p.as_os_str().to_owned();
                    name.push(suffix);
                    std::path::PathBuf::from(name)
                };
                let _ = std::fs::rename(with_suffix(path), with_suffix(&aside));
            }
            attach(true).with_context(|| format!("creating {}", path.display()))
        }
        Err(err) => Err(err).with_context(|| format!("opening the traces file {}", path.display())),
    }
}

impl SessionStore {
    /// Keep the traces file's used pages within `max_bytes`: delete the
    /// oldest calls' trace events (and their session rows, their summaries
    /// stay) until it fits. Freed pages are reused, so the file stops
    /// growing. How many events went.
    pub fn cap_traces(&self, max_bytes: u64) -> anyhow::Result<usize> {
        let conn = self.conn();
        let used = || -> rusqlite::Result<u64> {
            let pages: i64 = conn.query_row("PRAGMA traces.page_count", [], |r| r.get(0))?;
            let free: i64 = conn.query_row("PRAGMA traces.freelist_count", [], |r| r.get(0))?;
            let size: i64 = conn.query_row("PRAGMA traces.page_size", [], |r| r.get(0))?;
            Ok(((pages - free).max(0) * size) as u64)
        };
        let mut deleted = 0;
        while used()? > max_bytes {
            // The oldest tenth of the calls (at least one) at a time.
            let sessions: i64 =
                conn.query_row("SELECT COUNT(*) FROM traces.sessions", [], |r| r.get(0))?;
            if sessions == 0 {
                break;
            }
            let batch = (sessions / 10).max(1);
            deleted += conn.execute(
                "DELETE FROM traces.trace_events WHERE session_id IN
                   (SELECT session_id FROM traces.sessions ORDER BY last_us LIMIT ?1)",
                [batch],
            )?;
            conn.execute(
                "DELETE FROM traces.sessions WHERE session_id IN
                   (SELECT session_id FROM traces.sessions ORDER BY last_us LIMIT ?1)",
                [batch],
            )?;
        }
        Ok(deleted)
    }
}

fn is_corrupt(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Databases written before traces had their own file kept them in the
/// host's database: move them to the traces file, once.
fn move_traces_out_of_the_database(conn: &Connection) -> anyhow::Result<()> {
    let old_layout: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'trace_events')",
        [],
        |row| row.get(0),
    )?;
    if !old_layout {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN;
         INSERT INTO traces.trace_events (session_id, at, json, request, reply)
           SELECT session_id, at, json, request, reply FROM main.trace_events ORDER BY id;
         INSERT OR IGNORE INTO traces.sessions (session_id, first_at, last_at, app, version, events)
           SELECT session_id, first_at, last_at, app, version, events FROM main.sessions;
         DROP TABLE main.trace_events;
         DROP TABLE main.sessions;
         COMMIT;",
    )
    .context("moving the traces from the database to their own file")?;
    tracing::info!("moved the call traces to their own file");
    Ok(())
}

/// Give every recent summary (all of them when the traces file is new) its
/// session row, so that sessions whose rows a machine crash took from the
/// traces file are listed again.
fn restore_session_rows(conn: &Connection, fresh: bool) -> anyhow::Result<()> {
    let newest: Option<i64> =
        conn.query_row("SELECT MAX(received_us) FROM main.summaries", [], |row| {
            row.get(0)
        })?;
    let Some(newest) = newest else {
        return Ok(());
    };
    let since = if fresh {
        i64::MIN
    } else {
        newest - RECONCILE_WINDOW.as_micros() as i64
    };
    conn.execute(
        "INSERT OR IGNORE INTO traces.sessions (session_id, first_at, last_at, first_us, last_us)
           SELECT session_id, received_at, received_at, received_us, received_us
             FROM main.summaries WHERE received_us >= ?1",
        [since],
    )
    .context("restoring session rows from the summaries")?;
    Ok(())
}

/// Add the time numbers to tables from before they existed, filled from the
/// texts (once), and index them.
fn number_the_times(conn: &Connection) -> anyhow::Result<()> {
    for (schema, table, number, text) in TIME_NUMBERS {
        let present: bool = conn.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM pragma_table_info('{table}', '{schema}') WHERE name = '{number}')"),
            [],
            |row| row.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {schema}.{table} ADD COLUMN {number} INTEGER;
                 UPDATE {schema}.{table} SET {number} = CAST(ROUND(unixepoch({text}, 'subsec') * 1000000) AS INTEGER);"
            ))
            .with_context(|| format!("adding {table}.{number}"))?;
        }
    }
    conn.execute_batch(TIME_INDEXES)
        .context("indexing the time numbers")?;
    Ok(())
}

/// An RFC 3339 time as microseconds since the Unix epoch.
fn micros(text: &str) -> anyhow::Result<i64> {
    let at: jiff::Timestamp = text
        .parse()
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))?;
    Ok(at.as_microsecond())
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
    let raw = |v: &Value| RawValue::from_string(v.to_string()).ok();
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
        outbound: value.get("outbound").and_then(raw),
        request: value.get("request").and_then(raw),
        reply: value.get("reply").and_then(raw),
        request_bytes: None,
        reply_bytes: None,
    }
}

/// The trace writer: batches of records, one transaction each.
fn write_traces(mut conn: Connection, receiver: Receiver<TraceRecord>, queued_bytes: &AtomicUsize) {
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
        let size: usize = batch.iter().map(TraceRecord::size).sum();
        queued_bytes.fetch_sub(size, Ordering::Relaxed);
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

/// How long the trace writer gathers records before writing a batch. Each
/// commit rewrites every page it touched (32 KiB each) into the WAL, so
/// fewer, larger batches cost less per record: at 5,000 events/s the
/// writer's CPU per record measured 13.1–13.8 µs with 20 ms, 11.6 µs with
/// 100 ms. A trace shows in `GET /sessions/{id}` within about this long.
const BATCH_WINDOW: Duration = Duration::from_millis(100);

/// Bytes as text, borrowed when they are valid UTF-8 (they nearly always are).
fn lossy_text(bytes: &Option<bytes::Bytes>) -> Option<std::borrow::Cow<'_, str>> {
    bytes.as_deref().map(String::from_utf8_lossy)
}

/// What one batch changes in a session's row.
struct SessionTouch<'a> {
    first_at: (i64, &'a str),
    last_at: (i64, &'a str),
    app: Option<&'a str>,
    version: Option<u32>,
    events: i64,
}

impl<'a> SessionTouch<'a> {
    fn new(record: &'a TraceRecord, at_us: i64) -> Self {
        Self {
            first_at: (at_us, &record.at),
            last_at: (at_us, &record.at),
            app: record.app.as_deref(),
            version: record.version,
            events: 1,
        }
    }

    fn add(&mut self, record: &'a TraceRecord, at_us: i64) {
        self.first_at = self.first_at.min((at_us, &record.at));
        self.last_at = self.last_at.max((at_us, &record.at));
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
            "INSERT INTO trace_events (session_id, at, at_us, json, request, reply) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO sessions (session_id, first_at, last_at, app, version, events, first_us, last_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(session_id) DO UPDATE SET
               first_at = CASE WHEN excluded.first_us < first_us THEN excluded.first_at ELSE first_at END,
               first_us = MIN(first_us, excluded.first_us),
               last_at = CASE WHEN excluded.last_us > last_us THEN excluded.last_at ELSE last_at END,
               last_us = MAX(last_us, excluded.last_us), events = events + excluded.events,
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
            let at_us = micros(&record.at).unwrap_or(0);
            insert.execute(params![
                record.session_id,
                record.at,
                at_us,
                json,
                lossy_text(&record.request_bytes).as_deref(),
                lossy_text(&record.reply_bytes).as_deref()
            ])?;
            touched
                .entry(record.session_id.as_str())
                .and_modify(|t| t.add(record, at_us))
                .or_insert_with(|| SessionTouch::new(record, at_us));
        }
        for (session_id, t) in touched {
            upsert.execute(params![
                session_id,
                t.first_at.1,
                t.last_at.1,
                t.app,
                t.version,
                t.events,
                t.first_at.0,
                t.last_at.0
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_in(dir: &Path) -> SessionStore {
        SessionStore::open(&dir.join("ivr.sqlite3"), &dir.join("traces.sqlite3")).unwrap()
    }

    fn summary(session_id: &str, status: &str) -> SessionSummary {
        serde_json::from_value(
            serde_json::json!({"sessionId": session_id, "sessionStatus": status}),
        )
        .unwrap()
    }

    fn event(session_id: &str, at: &str) -> TraceRecord {
        TraceRecord {
            session_id: session_id.into(),
            at: at.into(),
            event_type: "CALL_ACTION".into(),
            app: Some("menu".into()),
            version: Some(1),
            ..TraceRecord::default()
        }
    }

    /// Waits until the writer has stored `count` events of `session_id`.
    fn wait_for_events(store: &SessionStore, session_id: &str, count: usize) -> SessionTrace {
        for _ in 0..200 {
            if let Some(trace) = store.session(session_id).unwrap()
                && trace.events.len() >= count
            {
                return trace;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the trace writer did not store {count} events of {session_id} in 2 s");
    }

    #[test]
    fn times_compare_as_times_whatever_their_fractional_digits() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        store.record(event("whole", "2026-01-01T00:00:00Z"));
        store.record(event("half", "2026-01-01T00:00:00.5Z"));
        store.record(event("quarter", "2026-01-01T00:00:00.25Z"));
        store.record(event("before", "2025-12-31T23:59:59.9Z"));
        for session in ["whole", "half", "quarter", "before"] {
            wait_for_events(&store, session, 1);
        }
        let listed = |since: &str| -> Vec<String> {
            store
                .sessions(&SessionFilter {
                    since: Some(since.into()),
                    limit: 10,
                    ..SessionFilter::default()
                })
                .unwrap()
                .into_iter()
                .map(|s| s.session_id)
                .collect()
        };
        assert_eq!(listed("2026-01-01T00:00:00Z"), ["half", "quarter", "whole"]);
        assert_eq!(listed("2026-01-01T00:00:00.3Z"), ["half"]);
    }

    #[test]
    fn a_database_from_before_gets_its_times_as_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces.sqlite3");
        {
            let conn = Connection::open(&traces).unwrap();
            conn.execute_batch(
                "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, first_at TEXT NOT NULL, last_at TEXT NOT NULL,
                   app TEXT, version INTEGER, events INTEGER NOT NULL DEFAULT 0);
                 CREATE TABLE trace_events (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL,
                   at TEXT NOT NULL, json TEXT NOT NULL, request TEXT, reply TEXT);
                 INSERT INTO sessions VALUES ('a', '2026-01-01T00:00:00.5Z', '2026-01-01T00:00:00.5Z', 'x', 1, 1);
                 INSERT INTO sessions VALUES ('b', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'x', 1, 1);",
            )
            .unwrap();
        }
        let store = open_in(dir.path());
        let order: Vec<String> = all_sessions(&store)
            .into_iter()
            .map(|s| s.session_id)
            .collect();
        assert_eq!(order, ["a", "b"], "newest first, by time");
    }

    /// Every session (up to 10), unfiltered.
    fn all_sessions(store: &SessionStore) -> Vec<SessionInfo> {
        store
            .sessions(&SessionFilter {
                limit: 10,
                ..SessionFilter::default()
            })
            .unwrap()
    }

    fn pragma(path: &Path, name: &str) -> String {
        let conn = Connection::open(path).unwrap();
        conn.query_row(&format!("PRAGMA {name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap()
    }

    #[test]
    fn traces_have_their_own_unsynced_file_and_summaries_stay_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        store.record(event("s1", "2026-01-01T00:00:00Z"));
        assert!(
            store
                .insert_summary(&summary("s1", "COMPLETED"), "{}")
                .unwrap()
        );
        wait_for_events(&store, "s1", 1);
        // Per connection: the host's connection syncs the summaries fully and
        // never syncs the attached traces.
        {
            let conn = store.conn();
            let sync = |schema: &str| -> i64 {
                conn.query_row(&format!("PRAGMA {schema}.synchronous"), [], |r| r.get(0))
                    .unwrap()
            };
            assert_eq!(sync("main"), 2, "summaries: synchronous = FULL");
            assert_eq!(sync("traces"), 0, "traces: synchronous = OFF");
        }
        let main = dir.path().join("ivr.sqlite3");
        let traces = dir.path().join("traces.sqlite3");
        let tables = |path: &Path| -> Vec<String> {
            let conn = Connection::open(path).unwrap();
            conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(tables(&main), ["summaries"]);
        assert!(tables(&traces).contains(&"trace_events".to_string()));
        assert!(tables(&traces).contains(&"sessions".to_string()));
        assert_eq!(pragma(&traces, "journal_mode"), "Text(\"wal\")");
        assert_eq!(pragma(&traces, "page_size"), "Integer(32768)");
    }

    #[test]
    fn a_corrupt_traces_file_is_set_aside_and_the_summaries_still_listed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open_in(dir.path());
            store.record(event("s1", "2026-01-01T00:00:00Z"));
            assert!(store.insert_summary(&summary("s1", "ERROR"), "{}").unwrap());
            wait_for_events(&store, "s1", 1);
        }
        let traces = dir.path().join("traces.sqlite3");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("traces.sqlite3{suffix}")));
        }
        std::fs::write(
            &traces,
            b"this is not a database, it is garbage ".repeat(200),
        )
        .unwrap();

        let store = open_in(dir.path());
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("traces.sqlite3.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "the corrupt file is kept aside: {aside:?}");
        // The summary survived and its session is listed again, without events.
        let trace = store
            .session("s1")
            .unwrap()
            .expect("session from its summary");
        assert_eq!(trace.info.status, "ERROR");
        assert!(trace.events.is_empty());
        assert!(trace.summary.is_some());
        let listed = all_sessions(&store);
        assert_eq!(listed.len(), 1);
        // And new traces are written to the new file.
        store.record(event("s2", "2026-01-01T00:01:00Z"));
        wait_for_events(&store, "s2", 1);
    }

    #[test]
    fn a_summary_is_stored_while_the_traces_file_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        // Another writer holds the traces file (as the trace writer does
        // while it waits for an idle CPU).
        let holder = Connection::open(dir.path().join("traces.sqlite3")).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        assert!(
            store
                .insert_summary(&summary("locked", "COMPLETED"), "{}")
                .unwrap()
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the summary waited {:?} on the traces file",
            started.elapsed()
        );
        holder.execute_batch("ROLLBACK").unwrap();
        // Durable, and readable through its summary.
        let trace = store.session("locked").unwrap().unwrap();
        assert_eq!(trace.info.status, "COMPLETED");
        assert!(trace.summary.is_some());
    }

    #[test]
    fn a_summary_without_traced_events_is_still_a_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
        assert!(
            store
                .insert_summary(&summary("only-summary", "COMPLETED"), "{}")
                .unwrap()
        );
        let trace = store.session("only-summary").unwrap().unwrap();
        assert_eq!(trace.info.status, "COMPLETED");
        assert_eq!(trace.info.event_count, 0);
        // Its row lost (as a machine crash could lose it from the unsynced
        // traces file): reopening restores it from the summary.
        drop(store);
        Connection::open(dir.path().join("traces.sqlite3"))
            .unwrap()
            .execute("DELETE FROM sessions", [])
            .unwrap();
        let store = open_in(dir.path());
        let listed = all_sessions(&store);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].status, "COMPLETED");
    }

    #[test]
    fn traces_in_the_host_database_move_to_their_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("ivr.sqlite3");
        // The layout before traces had their own file.
        Connection::open(&main)
            .unwrap()
            .execute_batch(
                "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, first_at TEXT NOT NULL, last_at TEXT NOT NULL,
                   app TEXT, version INTEGER, events INTEGER NOT NULL DEFAULT 0,
                   status TEXT NOT NULL DEFAULT 'IN_PROGRESS', error_code INTEGER);
                 CREATE TABLE summaries (session_id TEXT PRIMARY KEY, received_at TEXT NOT NULL,
                   session_status TEXT NOT NULL, error_code INTEGER, json TEXT NOT NULL);
                 CREATE TABLE trace_events (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL,
                   at TEXT NOT NULL, json TEXT NOT NULL, request TEXT, reply TEXT);
                 INSERT INTO sessions VALUES ('old', '2026-01-01T00:00:00Z', '2026-01-01T00:00:09Z', 'menu', 3, 2, 'COMPLETED', NULL);
                 INSERT INTO summaries VALUES ('old', '2026-01-01T00:00:09Z', 'COMPLETED', NULL, '{\"sessionId\":\"old\"}');
                 INSERT INTO trace_events (session_id, at, json, request) VALUES
                   ('old', '2026-01-01T00:00:00Z', '{\"session_id\":\"old\",\"event_type\":\"CALL_ACTION\"}', '{\"a\":1}'),
                   ('old', '2026-01-01T00:00:05Z', '{\"session_id\":\"old\",\"event_type\":\"CALL_ACTION\"}', NULL);",
            )
            .unwrap();
        let store = open_in(dir.path());
        let trace = store.session("old").unwrap().unwrap();
        assert_eq!(trace.events.len(), 2);
        assert_eq!(
            trace.events[0].request.as_ref().map(|r| r.get()),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(trace.info.app.as_deref(), Some("menu"));
        assert_eq!(trace.info.version, Some(3));
        assert_eq!(trace.info.status, "COMPLETED");
        assert!(trace.summary.is_some());
        drop(store);
        let conn = Connection::open(&main).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('sessions', 'trace_events')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "the old tables are gone from the host's database");
        // Opening again moves nothing twice.
        let store = open_in(dir.path());
        assert_eq!(store.session("old").unwrap().unwrap().events.len(), 2);
    }

    #[test]
    fn summaries_are_stored_once_and_traces_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_in(dir.path());
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
