//! What a guest can reach: the `ivr:app` imports (log, per-call state,
//! config) and a closed WASI context (no files, environment, arguments or
//! network; stdin empty; stdout and stderr captured into the host log).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::ivr::app::{config, log, state, types};
use super::{EventContext, GuestLimits};

/// An app's configuration values (the `config` import).
pub type AppConfig = BTreeMap<String, String>;

/// One call's state: string keys and values.
pub type CallState = HashMap<String, String>;

/// Log output a guest may even attempt in one event (log calls and
/// stdout/stderr each): past its budget output is dropped, but a guest
/// writing more than this is flooding and is stopped (fault `log_flood`).
pub const MAX_LOG_ATTEMPT_BYTES: usize = 1024 * 1024;

/// Most keys one call's state may hold.
pub const MAX_STATE_KEYS: usize = 64;
/// Longest state key, in bytes.
pub const MAX_STATE_KEY_BYTES: usize = 256;
/// Longest state value, in bytes.
pub const MAX_STATE_VALUE_BYTES: usize = 8 * 1024;

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

/// The store data of one event: everything the guest's imports touch.
pub(crate) struct EventCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    call: EventContext,
    log_budget: LogBudget,
    output: CapturedOutput,
    /// The guest tried to log far more than any budget (see [`MAX_LOG_ATTEMPT_BYTES`]).
    pub(crate) flooded: bool,
    /// The guest set or deleted a state key during this event.
    state_changed: bool,
}

impl EventCtx {
    /// A context for `call`, within `limits`.
    pub(crate) fn new(call: EventContext, limits: &GuestLimits) -> Self {
        let output = CapturedOutput::new(limits.log.bytes);
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max_bytes: limits.memory_bytes,
                exceeded: false,
            },
            call,
            log_budget: LogBudget {
                limits: limits.log,
                bytes: 0,
                lines: 0,
                dropped: false,
                attempted: 0,
            },
            flooded: false,
            state_changed: false,
            output,
        }
    }

    /// Make a warm instance's context ready for its next event: a new call,
    /// fresh budgets, nothing captured.
    pub(crate) fn begin(&mut self, call: EventContext, limits: &GuestLimits) {
        self.call = call;
        self.limiter = MemoryCap {
            max_bytes: limits.memory_bytes,
            exceeded: false,
        };
        self.log_budget = LogBudget {
            limits: limits.log,
            bytes: 0,
            lines: 0,
            dropped: false,
            attempted: 0,
        };
        self.flooded = false;
        self.state_changed = false;
        self.output.reset(limits.log.bytes);
    }

    /// True when the guest flooded its log or stdout/stderr.
    pub(crate) fn flooded(&self) -> bool {
        self.flooded || self.output.flooded()
    }

    /// True when the instance may serve another event: nothing of this one
    /// is left in the context (no open WASI resources) and it hit no limit.
    pub(crate) fn is_clean(&self) -> bool {
        self.table.is_empty() && !self.limiter.exceeded && !self.flooded()
    }

    /// Log what the guest wrote to stdout/stderr, and hand back the call's
    /// state, whether the guest changed it, and that output.
    pub(crate) fn finish(&mut self) -> (CallState, bool, Vec<u8>) {
        let output = self.output.take();
        if !output.is_empty() {
            let text = String::from_utf8_lossy(&output);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.emit(types::Level::Info, line);
            }
        }
        if self.output.overflowed() || self.log_budget.dropped {
            tracing::warn!(
                app = %self.call.app, version = %self.call.version, session = %self.call.session_id,
                "guest log output over the per-event limit ({} bytes, {} lines); the rest was dropped",
                self.log_budget.limits.bytes, self.log_budget.limits.lines
            );
        }
        (
            std::mem::take(&mut self.call.state),
            self.state_changed,
            output,
        )
    }

    /// One guest log line, under the `guest` target with the call's ids;
    /// control characters are escaped so a message cannot start a line of
    /// its own that looks like the host's.
    fn emit(&mut self, level: types::Level, message: &str) {
        if !self.log_budget.admit(message.len()) {
            return;
        }
        let message = super::escape_controls(message);
        let (app, version, session) =
            (&*self.call.app, &*self.call.version, &*self.call.session_id);
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

struct LogBudget {
    limits: LogLimits,
    bytes: usize,
    lines: usize,
    dropped: bool,
    /// Bytes the guest tried to log, kept or not.
    attempted: usize,
}

impl LogBudget {
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

impl WasiView for EventCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for EventCtx {}

impl log::Host for EventCtx {
    fn log(&mut self, level: types::Level, message: String) -> wasmtime::Result<()> {
        self.log_budget.attempted += message.len();
        if self.log_budget.attempted > MAX_LOG_ATTEMPT_BYTES {
            self.flooded = true;
            wasmtime::bail!(
                "log flood: over {MAX_LOG_ATTEMPT_BYTES} bytes of log output in one event"
            );
        }
        self.emit(level, &message);
        Ok(())
    }
}

impl state::Host for EventCtx {
    fn get(&mut self, key: String) -> Option<String> {
        self.call.state.get(&key).cloned()
    }

    fn set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        if key.len() > MAX_STATE_KEY_BYTES {
            wasmtime::bail!(
                "state key is {} bytes; at most {MAX_STATE_KEY_BYTES} are allowed",
                key.len()
            );
        }
        if value.len() > MAX_STATE_VALUE_BYTES {
            wasmtime::bail!(
                "state value for {key:?} is {} bytes; at most {MAX_STATE_VALUE_BYTES} are allowed",
                value.len()
            );
        }
        if self.call.state.len() >= MAX_STATE_KEYS && !self.call.state.contains_key(&key) {
            wasmtime::bail!("call state already holds {MAX_STATE_KEYS} keys; cannot add {key:?}");
        }
        self.call.state.insert(key, value);
        self.state_changed = true;
        Ok(())
    }

    fn delete(&mut self, key: String) {
        self.state_changed |= self.call.state.remove(&key).is_some();
    }
}

impl config::Host for EventCtx {
    fn get(&mut self, key: String) -> Option<String> {
        self.call.config.get(&key).cloned()
    }
}

/// Most table elements a guest table may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Most core instances one event may create (a Rust component has a handful).
pub(crate) const MAX_CORE_INSTANCES: usize = 16;
/// Most tables one event may create.
pub(crate) const MAX_TABLES: usize = 16;
/// Most linear memories one event may create.
pub(crate) const MAX_MEMORIES: usize = 2;

/// Caps linear memory growth, remembering whether the cap was hit so the
/// resulting trap is reported as a memory fault.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            wasmtime::bail!(
                "linear memory would grow to {desired} bytes, over the {} byte limit",
                self.max_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Guest stdout/stderr: kept up to a byte cap, the rest silently dropped (a
/// guest printing too much must not fail because of it).
#[derive(Clone)]
struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    buffer: Vec<u8>,
    cap: usize,
    overflowed: bool,
    attempted: usize,
    flooded: bool,
}

impl CapturedOutput {
    fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Captured {
                buffer: Vec::new(),
                cap,
                overflowed: false,
                attempted: 0,
                flooded: false,
            })),
        }
    }

    /// Empty, with a new cap, for the next event of a warm instance.
    fn reset(&self, cap: usize) {
        self.with(|c| {
            *c = Captured {
                buffer: Vec::new(),
                cap,
                overflowed: false,
                attempted: 0,
                flooded: false,
            }
        })
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
