//! ivr-host: answers 8x8 CPaaS Voice webhooks by running IVR logic as
//! sandboxed WebAssembly components.
//!
//! One VCA event's path: [`edge`] (HTTP, limits) → [`service`] (the event's
//! path, top to bottom) → [`protocol`] (bytes → typed 8x8 event) → [`apps`]
//! (which app answers) → [`runtime`] (a fresh instance runs the guest) →
//! [`protocol`] (validate and serialize the callflow) → back to 8x8.

pub mod apps;
pub mod cli;
pub mod config;
pub mod edge;
pub mod protocol;
pub mod runtime;
pub mod service;
pub mod store;

/// mimalloc's `mi_option_purge_decommits` (the same index in mimalloc 2
/// and 3; libmimalloc-sys does not name it).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Tune mimalloc (the binaries' allocator) for a server: memory it frees is
/// handed back with `MADV_FREE`, which the kernel reclaims only under memory
/// pressure, instead of being decommitted. Decommitted pages were faulted
/// back in — as 2 MiB transparent huge pages, each zeroed — 0.06–0.08 times
/// per event under load, about a tenth of the server's CPU (bench/README.md).
/// `MIMALLOC_PURGE_DECOMMITS` in the environment still decides when set.
/// Call it first thing in `main`, before other threads start.
pub fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_none() {
        // SAFETY: sets one of mimalloc's option values; called before the
        // program starts other threads (the function is not thread safe).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    }
}
