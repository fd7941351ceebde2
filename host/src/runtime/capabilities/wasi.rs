//! WASI 0.2, closed: no files, environment, arguments or network; stdin
//! empty; clocks and randomness real; stdout and stderr go to the guest's
//! log (see [`super::log`]). Anything else a component imports is denied by
//! [`crate::runtime::sandbox`].

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::EventCtx;
use super::log::CapturedOutput;

/// The interfaces this capability provides, with the version it implements
/// (a guest built against an older 0.2.x links to them too).
pub(crate) const PROVIDES: &[(&str, &str)] = &[
    ("wasi:cli/environment", "0.2.12"),
    ("wasi:cli/exit", "0.2.12"),
    ("wasi:cli/stdin", "0.2.12"),
    ("wasi:cli/stdout", "0.2.12"),
    ("wasi:cli/stderr", "0.2.12"),
    ("wasi:cli/terminal-input", "0.2.12"),
    ("wasi:cli/terminal-output", "0.2.12"),
    ("wasi:cli/terminal-stdin", "0.2.12"),
    ("wasi:cli/terminal-stdout", "0.2.12"),
    ("wasi:cli/terminal-stderr", "0.2.12"),
    ("wasi:clocks/monotonic-clock", "0.2.12"),
    ("wasi:clocks/wall-clock", "0.2.12"),
    ("wasi:filesystem/types", "0.2.12"),
    ("wasi:filesystem/preopens", "0.2.12"),
    ("wasi:io/error", "0.2.12"),
    ("wasi:io/poll", "0.2.12"),
    ("wasi:io/streams", "0.2.12"),
    ("wasi:random/random", "0.2.12"),
    ("wasi:random/insecure", "0.2.12"),
    ("wasi:random/insecure-seed", "0.2.12"),
    ("wasi:sockets/network", "0.2.12"),
    ("wasi:sockets/instance-network", "0.2.12"),
    ("wasi:sockets/tcp", "0.2.12"),
    ("wasi:sockets/tcp-create-socket", "0.2.12"),
    ("wasi:sockets/udp", "0.2.12"),
    ("wasi:sockets/udp-create-socket", "0.2.12"),
    ("wasi:sockets/ip-name-lookup", "0.2.12"),
];

/// One instance's WASI context and resource table.
pub(crate) struct WasiState {
    ctx: WasiCtx,
    pub(crate) table: ResourceTable,
}

impl WasiState {
    /// A closed context writing stdout and stderr to `output`.
    pub(crate) fn new(output: CapturedOutput) -> Self {
        let ctx = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output)
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Self {
            ctx,
            table: ResourceTable::new(),
        }
    }
}

pub(crate) fn link(linker: &mut Linker<EventCtx>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)
}

impl WasiView for EventCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}
