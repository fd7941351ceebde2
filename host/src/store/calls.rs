//! Calls in progress, kept on disk so that a restart (or `kill -9`) does not
//! break them: each call's pinned app version and state, and the replies
//! recently given (for repeated deliveries). Written before the reply
//! leaves; read back once at start.
//!
//! An append-only log in the directory `calls/`: each decision is one JSON
//! line, written with one `write` on the thread that decided it (no fsync:
//! when the reply leaves, the line is in the operating system's cache, so a
//! crash of the process loses nothing; a crash of the machine may lose the
//! last seconds, whose calls start over as they would have without it).
//! Segments `<n>.log` are replayed in order; a new one starts every
//! [`SEGMENT_BYTES`], and [`CallJournal::compact`] folds the finished ones
//! into one (what is still live, within the same bounds and expiry as in
//! memory). A line cut short by a crash is skipped. The values are opaque
//! text here: the store knows no registry and no wasm.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::recent::RecentMap;

/// A segment this large is finished and a new one started.
const SEGMENT_BYTES: u64 = 16 << 20;

/// One decided event, as the journal keeps it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The call.
    pub session_id: String,
    /// The event (empty: nothing to deduplicate).
    pub event_id: String,
    /// The app and version the call is pinned to, when the call changed
    /// (its first event, or a change of state).
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
    /// How long ago it was last written.
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

/// One line of the log.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    /// When, in ms since the Unix epoch.
    t: i64,
    s: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "str::is_empty")]
    e: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    st: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<std::borrow::Cow<'a, str>>,
    /// The call ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    end: bool,
}

/// The segment being appended to.
struct Tail {
    file: File,
    number: u64,
    bytes: u64,
    /// A line is built here before its one `write`.
    buffer: Vec<u8>,
}

/// The calls-in-progress journal.
pub struct CallJournal {
    dir: PathBuf,
    tail: Mutex<Tail>,
    /// Held while finished segments are folded, so two never run at once.
    compacting: Mutex<()>,
}

impl CallJournal {
    /// Open (or create) the journal in the directory `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating the calls journal {}", dir.display()))?;
        for leftover in fs::read_dir(dir)?.filter_map(Result::ok) {
            if leftover.path().extension().is_some_and(|x| x == "tmp") {
                let _ = fs::remove_file(leftover.path());
            }
        }
        let next = segments(dir)?.last().map_or(1, |(n, _)| n + 1);
        let tail = open_segment(dir, next)?;
        Ok(Self {
            dir: dir.to_owned(),
            tail: Mutex::new(tail),
            compacting: Mutex::new(()),
        })
    }

    fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keep one decided event — the call's pin and state when they changed,
    /// and its reply — with one `write`, before the reply leaves.
    pub async fn record(&self, decision: Decision) -> anyhow::Result<()> {
        self.write(std::slice::from_ref(&decision))
    }

    /// Keep `decisions`, now.
    pub fn write(&self, decisions: &[Decision]) -> anyhow::Result<()> {
        let t = now_ms();
        let mut tail = self.tail();
        let tail = &mut *tail;
        tail.buffer.clear();
        for decision in decisions {
            let line = Line {
                t,
                s: decision.session_id.as_str().into(),
                e: decision.event_id.as_str().into(),
                a: decision.pin.as_ref().map(|(app, _)| (&**app).into()),
                v: decision.pin.as_ref().map_or(0, |(_, version)| *version),
                st: decision.state.as_deref().map(Into::into),
                r: (!decision.event_id.is_empty())
                    .then(|| String::from_utf8_lossy(&decision.reply)),
                end: false,
            };
            serde_json::to_writer(&mut tail.buffer, &line)?;
            tail.buffer.push(b'\n');
        }
        self.append(tail)
    }

    /// Forget a call that ended (its replies stay until they expire).
    pub fn forget(&self, session_id: &str) -> anyhow::Result<()> {
        let mut tail = self.tail();
        let tail = &mut *tail;
        tail.buffer.clear();
        let line = Line {
            t: now_ms(),
            s: session_id.into(),
            e: "".into(),
            a: None,
            v: 0,
            st: None,
            r: None,
            end: true,
        };
        serde_json::to_writer(&mut tail.buffer, &line)?;
        tail.buffer.push(b'\n');
        self.append(tail)
    }

    /// Write the buffered lines in one `write`; start a new segment once
    /// this one is full.
    fn append(&self, tail: &mut Tail) -> anyhow::Result<()> {
        tail.file
            .write_all(&tail.buffer)
            .context("writing the calls journal")?;
        tail.bytes += tail.buffer.len() as u64;
        if tail.bytes >= SEGMENT_BYTES {
            *tail = open_segment(&self.dir, tail.number + 1)?;
        }
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
        let segments: Vec<PathBuf> = segments(&self.dir)?.into_iter().map(|(_, p)| p).collect();
        let bounds = Bounds {
            call_ttl,
            max_calls,
            reply_ttl,
            max_replies,
        };
        Ok(replay(&segments, &bounds)?.into_stored(&bounds))
    }

    /// Fold every finished segment into one holding only what is live (the
    /// same bounds as [`CallJournal::load`]); how many segments went. Runs
    /// off the event path; appending goes on meanwhile.
    pub fn compact(
        &self,
        call_ttl: Duration,
        max_calls: usize,
        reply_ttl: Duration,
        max_replies: usize,
    ) -> anyhow::Result<usize> {
        let _compacting = self
            .compacting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Finish the current segment, so everything so far can be folded.
        let current = {
            let mut tail = self.tail();
            let number = tail.number;
            if tail.bytes > 0 {
                *tail = open_segment(&self.dir, number + 1)?;
            }
            tail.number
        };
        let finished: Vec<(u64, PathBuf)> = segments(&self.dir)?
            .into_iter()
            .filter(|(n, _)| *n < current)
            .collect();
        let Some((last, _)) = finished.last().cloned() else {
            return Ok(0);
        };
        let paths: Vec<PathBuf> = finished.iter().map(|(_, p)| p.clone()).collect();
        let bounds = Bounds {
            call_ttl,
            max_calls,
            reply_ttl,
            max_replies,
        };
        let (calls, replies) = replay(&paths, &bounds)?.into_stored(&bounds);
        // The fold takes the place of the newest finished segment (so the
        // order of replay holds), written whole before it replaces it; a
        // crash before the older ones are removed only replays them twice.
        let folded = segment_path(&self.dir, last);
        let temporary = folded.with_extension("log.tmp");
        let mut out = std::io::BufWriter::new(
            File::create(&temporary)
                .with_context(|| format!("creating {}", temporary.display()))?,
        );
        let now = now_ms();
        for call in &calls {
            let line = Line {
                t: now - call.idle.as_millis() as i64,
                s: call.session_id.as_str().into(),
                e: "".into(),
                a: Some(call.app.as_str().into()),
                v: call.version,
                st: call.state.as_deref().map(Into::into),
                r: None,
                end: false,
            };
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        for reply in &replies {
            let line = Line {
                t: now - reply.age.as_millis() as i64,
                s: reply.session_id.as_str().into(),
                e: reply.event_id.as_str().into(),
                a: None,
                v: 0,
                st: None,
                r: Some(String::from_utf8_lossy(&reply.reply)),
                end: false,
            };
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        out.into_inner()
            .map_err(|err| err.into_error())?
            .sync_all()?;
        fs::rename(&temporary, &folded)
            .with_context(|| format!("replacing {}", folded.display()))?;
        for (number, path) in &finished {
            if *number != last {
                fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(finished.len() - 1)
    }
}

/// What the replay of segments leaves live: at most the bounds' number of
/// calls and replies at any moment (the least recently written make room),
/// so a replay never holds more than the host would in memory.
struct Live {
    calls: RecentMap<String, (String, u32, Option<String>, i64)>,
    replies: RecentMap<(String, String), (String, i64)>,
}

impl Live {
    /// The calls idle less than their time to live and the replies younger
    /// than theirs, least recently written first.
    fn into_stored(self, bounds: &Bounds) -> (Vec<StoredCall>, Vec<StoredReply>) {
        let now = now_ms();
        let calls = self
            .calls
            .into_entries()
            .filter(|(_, (_, _, _, t))| since(now, *t) < bounds.call_ttl)
            .map(|(session_id, (app, version, state, t))| StoredCall {
                session_id,
                app,
                version,
                state,
                idle: since(now, t),
            })
            .collect();
        let replies = self
            .replies
            .into_entries()
            .filter(|(_, (_, t))| since(now, *t) < bounds.reply_ttl)
            .map(|((session_id, event_id), (reply, t))| StoredReply {
                session_id,
                event_id,
                reply: reply.into_bytes(),
                age: since(now, t),
            })
            .collect();
        (calls, replies)
    }
}

/// The bounds of a replay.
struct Bounds {
    call_ttl: Duration,
    max_calls: usize,
    reply_ttl: Duration,
    max_replies: usize,
}

/// Replay `segments` in order: a call's latest pin and state (gone once it
/// ended), each event's first reply; only what is within its time to live
/// and its bound.
fn replay(segments: &[PathBuf], bounds: &Bounds) -> anyhow::Result<Live> {
    let now = now_ms();
    let reply_from = now - ms(bounds.reply_ttl);
    let forever = Duration::MAX;
    let mut live = Live {
        calls: RecentMap::new(bounds.max_calls, forever),
        replies: RecentMap::new(bounds.max_replies, forever),
    };
    for path in segments {
        let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        for text in BufReader::new(file).split(b'\n') {
            let text = text.with_context(|| format!("reading {}", path.display()))?;
            // A line cut short by a crash, or damaged: skipped.
            let Ok(line) = serde_json::from_slice::<Line<'_>>(&text) else {
                continue;
            };
            if line.end {
                live.calls.remove(&*line.s);
                continue;
            }
            if let Some(app) = &line.a {
                let state = match (&line.st, live.calls.remove(&*line.s)) {
                    (Some(state), _) => Some(state.to_string()),
                    (None, Some((_, _, kept, _))) => kept,
                    (None, None) => None,
                };
                let _ = live
                    .calls
                    .insert(line.s.to_string(), (app.to_string(), line.v, state, line.t));
            }
            // Any event of a live call keeps it live (its row is written
            // only when it changes).
            if let Some(call) = live.calls.touch(&*line.s) {
                call.3 = call.3.max(line.t);
            }
            if let Some(reply) = &line.r
                && line.t > reply_from
                && !line.e.is_empty()
            {
                let key = (line.s.to_string(), line.e.to_string());
                if live.replies.peek(&key).is_none() {
                    let _ = live.replies.insert(key, (reply.to_string(), line.t));
                }
            }
        }
    }
    Ok(live)
}

/// The segments in `dir`, in order.
fn segments(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let number = path
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((number, path))
        })
        .collect();
    found.sort();
    Ok(found)
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.log"))
}

fn open_segment(dir: &Path, number: u64) -> anyhow::Result<Tail> {
    let path = segment_path(dir, number);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Tail {
        file,
        number,
        bytes,
        buffer: Vec::with_capacity(4096),
    })
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

    fn decision(session: &str, event: &str, state: Option<&str>, reply: &str) -> Decision {
        Decision {
            session_id: session.into(),
            event_id: event.into(),
            pin: Some(("bank".into(), 3)),
            state: state.map(str::to_owned),
            reply: Bytes::from(reply.to_owned()),
        }
    }

    #[test]
    fn a_decision_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let journal = CallJournal::open(dir.path()).unwrap();
        journal
            .write(&[decision("s1", "e1", Some(r#"{"k":"v"}"#), "first")])
            .unwrap();
        // A fault changes no state; a repeat keeps the first reply.
        let mut fault = decision("s1", "e2", None, "second");
        fault.pin = None;
        journal.write(&[fault]).unwrap();
        journal
            .write(&[decision("s1", "e1", None, "again")])
            .unwrap();
        drop(journal);

        let journal = CallJournal::open(dir.path()).unwrap();
        let (calls, replies) = journal.load(HOUR, 10, HOUR, 10).unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].app.as_str(), calls[0].version), ("bank", 3));
        assert_eq!(calls[0].state.as_deref(), Some(r#"{"k":"v"}"#));
        let mut replies: Vec<_> = replies
            .iter()
            .map(|r| (r.event_id.as_str(), r.reply.as_slice()))
            .collect();
        replies.sort();
        assert_eq!(replies, [("e1", &b"first"[..]), ("e2", &b"second"[..])]);

        journal.forget("s1").unwrap();
        let (calls, replies) = journal.load(HOUR, 10, HOUR, 10).unwrap();
        assert!(calls.is_empty());
        assert_eq!(
            replies.len(),
            2,
            "replies outlive the call until they expire"
        );
        let (_, replies) = journal.load(HOUR, 10, Duration::ZERO, 10).unwrap();
        assert!(replies.is_empty(), "expired");
    }

    #[test]
    fn every_event_of_a_call_keeps_it_live() {
        let dir = tempfile::tempdir().unwrap();
        let journal = CallJournal::open(dir.path()).unwrap();
        journal.write(&[decision("s1", "e1", None, "r")]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut later = decision("s1", "e2", None, "r");
        later.pin = None;
        journal.write(&[later]).unwrap();
        let (calls, _) = journal
            .load(Duration::from_millis(200), 10, HOUR, 10)
            .unwrap();
        assert_eq!(
            calls.len(),
            1,
            "idle 300 ms since its row, 0 since its last event"
        );
    }

    #[test]
    fn a_line_cut_short_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = CallJournal::open(dir.path()).unwrap();
        journal
            .write(&[decision("s1", "e1", None, "kept")])
            .unwrap();
        drop(journal);
        let (_, path) = segments(dir.path()).unwrap().pop().unwrap();
        let mut file = OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(br#"{"t":1,"s":"s2","e":"e"#).unwrap();
        drop(file);
        let journal = CallJournal::open(dir.path()).unwrap();
        journal
            .write(&[decision("s3", "e3", None, "after")])
            .unwrap();
        let (calls, replies) = journal.load(HOUR, 10, HOUR, 10).unwrap();
        assert_eq!((calls.len(), replies.len()), (2, 2));
    }

    #[test]
    fn compaction_keeps_what_is_live_within_the_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let journal = CallJournal::open(dir.path()).unwrap();
        for n in 0..5 {
            journal
                .write(&[decision(&format!("s{n}"), "e", Some("{}"), "r")])
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        journal.forget("s4").unwrap();
        assert_eq!(journal.compact(HOUR, 2, HOUR, 3).unwrap(), 0);
        journal.write(&[decision("s9", "e", None, "r")]).unwrap();
        let (calls, replies) = journal.load(HOUR, 10, HOUR, 10).unwrap();
        let sessions: Vec<_> = calls.iter().map(|c| c.session_id.as_str()).collect();
        // At most two at any moment of the replay (s4 held a place until
        // it ended), then the one written after the fold.
        assert_eq!(sessions, ["s3", "s9"]);
        assert_eq!(replies.len(), 4, "three kept by the fold, one after it");
        // Folding again leaves one segment before the one being written.
        journal.compact(HOUR, 10, HOUR, 10).unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 2);
        assert_eq!(journal.load(HOUR, 10, HOUR, 10).unwrap().0.len(), 2);
    }
}
