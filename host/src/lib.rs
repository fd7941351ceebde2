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
pub mod embedded;
pub mod protocol;
pub mod runtime;
pub mod service;
pub mod store;

/// mimalloc's `mi_option_purge_decommits` (the same index in mimalloc 2
/// and 3; libmimalloc-sys does not name it).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Tune mimalloc (the binaries' allocator) for a server:
///
/// - memory it frees is handed back with `MADV_FREE`, which the kernel
///   reclaims only under memory pressure, instead of being decommitted and
///   faulted back in (0.06–0.08 faults per event under load, about a tenth
///   of the server's CPU; bench/README.md). `MIMALLOC_PURGE_DECOMMITS` in
///   the environment still decides when set.
/// - no transparent huge pages for the process (Linux): mimalloc asks for
///   them on its arenas, and each 2 MiB page faulted in is zeroed in one go
///   on the serving thread — measured 5–15 ms per fault on these VMs,
///   several times a second under load, which set A's p99 at 5–9 ms at a
///   fixed rate of 5,000 events/s (0.35–0.87 ms without). Set
///   `MIMALLOC_ALLOW_THP=1` to keep them.
///
/// Call it first thing in `main`, before other threads start.
pub fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_none() {
        // SAFETY: sets one of mimalloc's option values; called before the
        // program starts other threads (the function is not thread safe).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // mimalloc's own option is read before `main`, after its first arena
        // was already advised for huge pages; the process-wide switch also
        // covers that arena. SAFETY: a plain syscall with integer arguments.
        let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if result != 0 {
            eprintln!(
                "ivr-host: could not turn off transparent huge pages: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
