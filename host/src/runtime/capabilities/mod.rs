//! What a guest can reach, one module per capability (as Spin's factors
//! are): each links its imports, owns its per-app settings and builds its
//! per-event state. [`EventCtx`], the data of an event's store, holds one
//! field per capability; adding a capability is a module here, a field
//! there, and a line in [`link`] and [`PROVIDES`].

pub mod config;
pub mod http;
pub mod kv;
pub mod log;
pub mod secrets;
pub mod state;
mod wasi;

use wasmtime::component::Linker;

use super::limits::MemoryCap;
use super::{EventContext, GuestLimits};
use config::ConfigImport;
use http::HttpImport;
use kv::KvImport;
use log::{LogImport, LogTags};
use secrets::SecretsImport;
use state::{CallState, StateImport};

/// Every interface the host provides, with the version it implements.
pub(crate) const PROVIDES: &[&[(&str, &str)]] = &[
    wasi::PROVIDES,
    log::PROVIDES,
    state::PROVIDES,
    config::PROVIDES,
    secrets::PROVIDES,
    kv::PROVIDES,
    http::PROVIDES,
];

/// Link every capability's imports.
pub(crate) fn link(linker: &mut Linker<EventCtx>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    wasi::link(linker)
        .map_err(anyhow::Error::from)
        .context("linking WASI")?;
    log::link(linker)
        .and_then(|()| state::link(linker))
        .and_then(|()| config::link(linker))
        .and_then(|()| secrets::link(linker))
        .and_then(|()| kv::link(linker))
        .and_then(|()| http::link(linker))
        .map_err(anyhow::Error::from)
        .context("linking the host's imports")
}

/// The store data of one event: each capability's per-event state.
pub(crate) struct EventCtx {
    wasi: wasi::WasiState,
    log: LogImport,
    state: StateImport,
    config: ConfigImport,
    secrets: SecretsImport,
    kv: KvImport,
    http: HttpImport,
    pub(crate) limiter: MemoryCap,
}

/// What an event leaves behind once its guest has run.
pub(crate) struct EventLeftovers {
    /// The call's state after the event.
    pub(crate) state: CallState,
    /// Whether the guest set or deleted a key.
    pub(crate) state_changed: bool,
    /// What the guest wrote to stdout and stderr (already logged).
    pub(crate) output: Vec<u8>,
}

impl EventCtx {
    /// A context for `call`, within `limits`.
    pub(crate) fn new(call: EventContext, limits: &GuestLimits) -> Self {
        let parts = split(call);
        let log = LogImport::new(parts.tags, limits.log);
        Self {
            wasi: wasi::WasiState::new(log.output()),
            log,
            state: StateImport::new(parts.state),
            config: ConfigImport::new(parts.config),
            secrets: SecretsImport::new(parts.secrets),
            kv: KvImport::new(parts.kv),
            http: parts.http,
            limiter: MemoryCap::new(limits.memory_bytes),
        }
    }

    /// Make a warm instance's context ready for its next event: a new call,
    /// fresh budgets, nothing captured.
    pub(crate) fn begin(&mut self, call: EventContext, limits: &GuestLimits) {
        let parts = split(call);
        self.log.begin(parts.tags, limits.log);
        self.state = StateImport::new(parts.state);
        self.config = ConfigImport::new(parts.config);
        self.secrets = SecretsImport::new(parts.secrets);
        self.kv = KvImport::new(parts.kv);
        self.http = parts.http;
        self.limiter = MemoryCap::new(limits.memory_bytes);
    }

    /// True when the guest flooded its log or stdout/stderr.
    pub(crate) fn flooded(&self) -> bool {
        self.log.flooded()
    }

    /// True when the instance may serve another event: nothing of this one
    /// is left in the context (no open WASI resources) and it hit no limit.
    pub(crate) fn is_clean(&self) -> bool {
        self.wasi.table.is_empty() && !self.limiter.exceeded && !self.flooded()
    }

    /// Log what the guest wrote to stdout/stderr and hand back what the
    /// event leaves: the call's state and that output.
    pub(crate) fn finish(&mut self) -> EventLeftovers {
        let output = self.log.finish();
        let (state, state_changed) = self.state.take();
        EventLeftovers {
            state,
            state_changed,
            output,
        }
    }
}

/// An event's inputs, one part per capability.
struct Parts {
    tags: LogTags,
    state: CallState,
    config: std::sync::Arc<config::AppConfig>,
    secrets: std::sync::Arc<secrets::AppSecrets>,
    kv: kv::KvScope,
    http: HttpImport,
}

fn split(call: EventContext) -> Parts {
    Parts {
        tags: LogTags {
            app: call.app,
            version: call.version,
            session: call.session_id,
            secrets: call.secrets.clone(),
        },
        state: call.state,
        config: call.config,
        secrets: call.secrets,
        kv: call.kv,
        http: HttpImport::new(call.outbound, call.requests),
    }
}
