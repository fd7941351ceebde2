//! The `ivr:app/log` import and the guest's stdout/stderr: every line the
//! guest writes goes to the host log under the `guest` target, tagged with
//! the call, within a per-event budget (per-app settings `log_kib`,
//! `log_lines`), control characters escaped so no line can pass for the host's.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::EventCtx;
use super::secrets::AppSecrets;
use crate::runtime::ivr::app::{log, types};
use crate::runtime::v0_2::ivr::app::{log as log_v0_2, types as types_v0_2};

/// The interfaces this capability provides, with the version it implements.
pub(crate) const PROVIDES: &[(&str, &str)] = &[
    ("ivr:app/types", "0.3.0"),
    ("ivr:app/log", "0.3.0"),
    ("ivr:app/types", "0.2.0"),
    ("ivr:app/log", "0.2.0"),
];

/// Log output a guest may even attempt in one event (log calls and
/// stdout/stderr each): past its budget output is dropped, but a guest
/// writing more than this is flooding and is stopped (fault `log_flood`).
pub const MAX_LOG_ATTEMPT_BYTES: usize = 1024 * 1024;

/// How much a guest may log per event; the rest is dropped with a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Bytes of log messages and stdout/stderr together.
    pub bytes: usize,
    /// Log lines (calls to `log` plus lines of stdout/stderr).
    pub lines: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            bytes: 16 * 1024,
            lines: 100,
        }
    }
}

/// The per-app settings of this capability; unset takes the host's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogSettings {
    /// Guest log output per event, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_kib: Option<usize>,
    /// Guest log lines per event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines: Option<usize>,
}

/// Most KiB of log output an app may be allowed per event.
pub const MAX_LOG_KIB: usize = 1024;

impl LogSettings {
    /// Check the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [("log_kib", self.log_kib), ("log_lines", self.log_lines)] {
            if value == Some(0) {
                return Err(format!("{name} must be greater than zero"));
            }
        }
        if let Some(kib) = self.log_kib
            && kib > MAX_LOG_KIB
        {
            return Err(format!(
                "log_kib {kib} is over {MAX_LOG_KIB} (the per-event log flood limit)"
            ));
        }
        Ok(())
    }

    /// The effective limits: these settings over the host's.
    pub fn resolve(&self, host: &LogLimits) -> LogLimits {
        LogLimits {
            bytes: self.log_kib.map_or(host.bytes, |kib| kib * 1024),
            lines: self.log_lines.unwrap_or(host.lines),
        }
    }
}

pub(crate) fn link(linker: &mut Linker<EventCtx>) -> wasmtime::Result<()> {
    types::add_to_linker::<EventCtx, HasSelf<LogImport>>(linker, |ctx| &mut ctx.log)?;
    log::add_to_linker::<EventCtx, HasSelf<LogImport>>(linker, |ctx| &mut ctx.log)?;
    types_v0_2::add_to_linker::<EventCtx, HasSelf<LogImport>>(linker, |ctx| &mut ctx.log)?;
    log_v0_2::add_to_linker::<EventCtx, HasSelf<LogImport>>(linker, |ctx| &mut ctx.log)
}

/// Who a guest line belongs to: the tags on every line of an event, and
/// the app's secrets, masked in every line.
pub(crate) struct LogTags {
    pub(crate) app: Arc<str>,
    pub(crate) version: Arc<str>,
    pub(crate) session: String,
    pub(crate) secrets: Arc<AppSecrets>,
}

/// One event's log: its budget, and the captured stdout/stderr.
pub(crate) struct LogImport {
    tags: LogTags,
    budget: LogBudget,
    output: CapturedOutput,
    /// The guest tried to log far more than any budget (see [`MAX_LOG_ATTEMPT_BYTES`]).
    flooded: bool,
}

impl LogImport {
    pub(crate) fn new(tags: LogTags, limits: LogLimits) -> Self {
        Self {
            tags,
            budget: LogBudget::new(limits),
            output: CapturedOutput::new(limits.bytes),
            flooded: false,
        }
    }

    /// Ready for the next event of a warm instance: new tags, a fresh
    /// budget, nothing captured.
    pub(crate) fn begin(&mut self, tags: LogTags, limits: LogLimits) {
        self.tags = tags;
        self.budget = LogBudget::new(limits);
        self.output.reset(limits.bytes);
        self.flooded = false;
    }

    /// Where WASI sends the guest's stdout and stderr.
    pub(crate) fn output(&self) -> CapturedOutput {
        self.output.clone()
    }

    /// True when the guest flooded its log or stdout/stderr.
    pub(crate) fn flooded(&self) -> bool {
        self.flooded || self.output.flooded()
    }

    /// Log what the guest wrote to stdout/stderr (one line each), note a
    /// budget overrun, and hand the raw output back.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let output = self.output.take();
        if !output.is_empty() {
            let text = String::from_utf8_lossy(&output);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.emit(types::Level::Info, line);
            }
        }
        if self.output.overflowed() || self.budget.dropped {
            let LogTags {
                app,
                version,
                session,
                ..
            } = &self.tags;
            tracing::warn!(
                app = %app, version = %version, session = %session,
                "guest log output over the per-event limit ({} bytes, {} lines); the rest was dropped",
                self.budget.limits.bytes, self.budget.limits.lines
            );
        }
        output
    }

    /// One guest log line, under the `guest` target with the call's ids;
    /// control characters are escaped so a message cannot start a line of
    /// its own that looks like the host's.
    fn emit(&mut self, level: types::Level, message: &str) {
        if !self.budget.admit(message.len()) {
            return;
        }
        let message = self.tags.secrets.mask(message);
        let message = crate::runtime::escape_controls(&message);
        let (app, version, session) = (&*self.tags.app, &*self.tags.version, &*self.tags.session);
        match level {
            types::Level::Trace => {
                tracing::trace!(target: "guest", app, version, session, "{message}")
            }
            types::Level::Debug => {
                tracing::debug!(target: "guest", app, version, session, "{message}")
            }
            types::Level::Info => {
                tracing::info!(target: "guest", app, version, session, "{message}")
            }
            types::Level::Warn => {
                tracing::warn!(target: "guest", app, version, session, "{message}")
            }
            types::Level::Error => {
                tracing::error!(target: "guest", app, version, session, "{message}")
            }
        }
    }
}

impl types::Host for LogImport {}

impl log::Host for LogImport {
    fn log(&mut self, level: types::Level, message: String) -> wasmtime::Result<()> {
        self.budget.attempted += message.len();
        if self.budget.attempted > MAX_LOG_ATTEMPT_BYTES {
            self.flooded = true;
            wasmtime::bail!(
                "log flood: over {MAX_LOG_ATTEMPT_BYTES} bytes of log output in one event"
            );
        }
        self.emit(level, &message);
        Ok(())
    }
}

impl types_v0_2::Host for LogImport {}

/// 0.2.0's `log` is 0.3.0's.
impl log_v0_2::Host for LogImport {
    fn log(&mut self, level: types_v0_2::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            types_v0_2::Level::Trace => types::Level::Trace,
            types_v0_2::Level::Debug => types::Level::Debug,
            types_v0_2::Level::Info => types::Level::Info,
            types_v0_2::Level::Warn => types::Level::Warn,
            types_v0_2::Level::Error => types::Level::Error,
        };
        log::Host::log(self, level, message)
    }
}

struct LogBudget {
    limits: LogLimits,
    bytes: usize,
    lines: usize,
    dropped: bool,
    /// Bytes the guest tried to log, kept or not.
    attempted: usize,
}

impl LogBudget {
    fn new(limits: LogLimits) -> Self {
        Self {
            limits,
            bytes: 0,
            lines: 0,
            dropped: false,
            attempted: 0,
        }
    }

    fn admit(&mut self, len: usize) -> bool {
        if self.lines >= self.limits.lines || self.bytes + len > self.limits.bytes {
            self.dropped = true;
            return false;
        }
        self.lines += 1;
        self.bytes += len;
        true
    }
}

/// Guest stdout/stderr: kept up to a byte cap, the rest silently dropped (a
/// guest printing too much must not fail because of it).
#[derive(Clone)]
pub(crate) struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    buffer: Vec<u8>,
    cap: usize,
    overflowed: bool,
    attempted: usize,
    flooded: bool,
}

impl Captured {
    fn empty(cap: usize) -> Self {
        Self {
            buffer: Vec::new(),
            cap,
            overflowed: false,
            attempted: 0,
            flooded: false,
        }
    }
}

impl CapturedOutput {
    fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured::empty(cap))),
        }
    }

    /// Empty, with a new cap, for the next event of a warm instance.
    fn reset(&self, cap: usize) {
        self.with(|c| *c = Captured::empty(cap))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Captured) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Keep what fits; `Err` once the guest tried to write more than
    /// [`MAX_LOG_ATTEMPT_BYTES`].
    fn append(&self, bytes: &[u8]) -> Result<(), ()> {
        self.with(|c| {
            c.attempted += bytes.len();
            if c.attempted > MAX_LOG_ATTEMPT_BYTES {
                c.flooded = true;
                return Err(());
            }
            let room = c.cap.saturating_sub(c.buffer.len());
            if bytes.len() > room {
                c.overflowed = true;
            }
            let take = bytes.len().min(room);
            c.buffer.extend_from_slice(&bytes[..take]);
            Ok(())
        })
    }

    fn flooded(&self) -> bool {
        self.with(|c| c.flooded)
    }

    fn take(&self) -> Vec<u8> {
        self.with(|c| std::mem::take(&mut c.buffer))
    }

    fn overflowed(&self) -> bool {
        self.with(|c| c.overflowed)
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes).map_err(|()| {
            wasmtime_wasi::p2::StreamError::Trap(wasmtime::format_err!(
                "log flood: over {MAX_LOG_ATTEMPT_BYTES} bytes written to stdout/stderr in one event"
            ))
        })
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(match self.append(buf) {
            Ok(()) => Ok(buf.len()),
            Err(()) => Err(std::io::Error::other("log flood")),
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
