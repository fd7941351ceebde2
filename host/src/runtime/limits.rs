//! The limits every guest runs under: run time, linear memory, tables and
//! instances per event, and the sizes of the instance pool they imply.

use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::capabilities::log::LogLimits;

/// Limits applied to every guest event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// CPU time a guest may run per event.
    pub run_time: Duration,
    /// Largest linear memory a guest may grow to, in bytes.
    pub memory_bytes: usize,
    /// Log output a guest may write per event.
    pub log: LogLimits,
    /// Meter fuel and report each event's cost (needs [`super::RuntimeOptions::fuel`]).
    pub fuel: bool,
    /// Events one instance may serve (1: a fresh instance per event, the
    /// default). Above 1, an instance that answered cleanly is kept for the
    /// next event of the same app version, up to this many events; never
    /// after a fault. Its memory then carries over between those events.
    pub warm_events: u32,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            run_time: Duration::from_millis(100),
            memory_bytes: 32 * 1024 * 1024,
            log: LogLimits::default(),
            fuel: false,
            warm_events: 1,
        }
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

impl MemoryCap {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            exceeded: false,
        }
    }
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
