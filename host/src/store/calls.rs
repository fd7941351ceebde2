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
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

/// `calls`: one row per call in progress, written when the call changes
/// (its first event, a change of state). `replies`: appended in time order
/// (no key but the row id, so a batch of replies fills the last pages
/// instead of dirtying one random page each); a repeated delivery never
/// reaches the journal, so the first row of an event is its reply.
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
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    reply BLOB NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS replies_at ON replies (at_ms);
";

/// One decided event, as the journal keeps it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The call.
    pub session_id: String,
    /// The event (empty: nothing to deduplicate).
    pub event_id: String,
    /// The app and version the call is pinned to, when one answered.
    pub pin: Option<(Arc<str>, u32)>,
    /// The call's state after the event, when the event changed it (JSON).
    pub state: Option<String>,
    /// The reply given.
    pub reply: Bytes,
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
    conn: Arc<Mutex<Connection>>,
    /// Decisions waiting for the group-commit thread, each with whom to tell.
    queue: Option<Sender<(Decision, oneshot::Sender<anyhow::Result<()>>)>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for CallJournal {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has written what is queued.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the calls journal writer panicked");
        }
    }
}

/// Most decisions committed in one transaction.
const MAX_BATCH: usize = 1024;

impl CallJournal {
    /// Open (or create) the journal at `path` and start its writer. Only
    /// this process uses the file (`locking_mode = EXCLUSIVE`: no file
    /// locks or shared memory per transaction).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the calls journal {}", path.display()))?;
        conn.execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;",
        )
        .context("configuring the calls journal")?;
        conn.execute_batch(SCHEMA)
            .context("creating the calls journal's tables")?;
        let conn = Arc::new(Mutex::new(conn));
        let (queue, decisions) = std::sync::mpsc::channel();
        let shared = conn.clone();
        let writer = std::thread::Builder::new()
            .name("ivr-calls-journal".into())
            .spawn(move || commit_in_groups(&shared, &decisions))
            .context("starting the calls journal writer")?;
        Ok(Self {
            conn,
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// Keep one decided event — the call's pin and state, and its reply —
    /// resolving once it is written. Decisions made at the same time are
    /// committed together (one transaction for all the events that arrived
    /// while the previous one was written), so the cost of a commit is
    /// shared under load.
    pub async fn record(&self, decision: Decision) -> anyhow::Result<()> {
        let (done, written) = oneshot::channel();
        self.queue
            .as_ref()
            .context("the calls journal is closed")?
            .send((decision, done))
            .map_err(|_| anyhow::anyhow!("the calls journal writer has stopped"))?;
        written
            .await
            .map_err(|_| anyhow::anyhow!("the calls journal writer has stopped"))?
    }

    /// Write `decisions` in one transaction, now.
    pub fn write(&self, decisions: &[Decision]) -> anyhow::Result<()> {
        write_batch(&mut self.conn(), decisions)
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
                 WHERE at_ms > ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
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

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer: takes the first queued decision, then every other one
/// already queued, commits them together and tells each caller.
fn commit_in_groups(
    conn: &Mutex<Connection>,
    decisions: &Receiver<(Decision, oneshot::Sender<anyhow::Result<()>>)>,
) {
    while let Ok(first) = decisions.recv() {
        let mut batch = vec![first];
        batch.extend(decisions.try_iter().take(MAX_BATCH - 1));
        let (entries, waiting): (Vec<Decision>, Vec<_>) = batch.into_iter().unzip();
        let result = write_batch(&mut lock(conn), &entries);
        for done in waiting {
            let _ = done.send(match &result {
                Ok(()) => Ok(()),
                Err(err) => Err(anyhow::anyhow!("{err:#}")),
            });
        }
    }
}

/// One transaction for `decisions`.
fn write_batch(conn: &mut Connection, decisions: &[Decision]) -> anyhow::Result<()> {
    let now = now_ms();
    let tx = conn.transaction()?;
    {
        let mut pin = tx.prepare_cached(
            "INSERT INTO calls (session_id, app, version, state, used_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (session_id) DO UPDATE SET used_ms = excluded.used_ms,
               state = COALESCE(excluded.state, calls.state)",
        )?;
        let mut reply = tx.prepare_cached(
            "INSERT INTO replies (session_id, event_id, reply, at_ms) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for decision in decisions {
            if let Some((app, version)) = &decision.pin {
                pin.execute(params![
                    decision.session_id,
                    &**app,
                    version,
                    decision.state,
                    now
                ])?;
            }
            if !decision.event_id.is_empty() {
                reply.execute(params![
                    decision.session_id,
                    decision.event_id,
                    &decision.reply[..],
                    now
                ])?;
            }
        }
    }
    tx.commit().context("writing the calls journal")
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
        let decision = |event_id: &str, state: Option<&str>, reply: &'static [u8]| Decision {
            session_id: "s1".into(),
            event_id: event_id.into(),
            pin: Some(("bank".into(), 3)),
            state: state.map(str::to_owned),
            reply: Bytes::from_static(reply),
        };
        journal
            .write(&[decision("e1", Some(r#"{"k":"v"}"#), b"first")])
            .unwrap();
        // A fault changes no state. (A repeat is answered from memory and
        // never journaled; were one written, loading keeps the order, and
        // the reply cache keeps the first.)
        journal.write(&[decision("e2", None, b"second")]).unwrap();
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
        assert!(journal.load(HOUR, 10, HOUR, 10).unwrap().1.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn decisions_made_together_are_committed_together() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(CallJournal::open(&dir.path().join("calls.sqlite3")).unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|n| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    journal
                        .record(Decision {
                            session_id: format!("s{n}"),
                            event_id: format!("e{n}"),
                            pin: Some(("app".into(), 1)),
                            state: Some(format!(r#"{{"n":"{n}"}}"#)),
                            reply: Bytes::from(format!("reply {n}")),
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        // Every one written when its `record` resolved.
        let (calls, replies) = journal.load(HOUR, 100, HOUR, 100).unwrap();
        assert_eq!((calls.len(), replies.len()), (64, 64));
    }

    #[test]
    fn loading_keeps_the_newest_within_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let journal = CallJournal::open(&dir.path().join("calls.sqlite3")).unwrap();
        for n in 0..5 {
            journal
                .write(&[Decision {
                    session_id: format!("s{n}"),
                    event_id: "e".into(),
                    pin: Some(("app".into(), 1)),
                    state: None,
                    reply: Bytes::from_static(b"r"),
                }])
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
