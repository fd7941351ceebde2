//! The WebAssembly runtime: one wasmtime [`Engine`] per process, apps
//! compiled once into pre-instantiated handles, and a fresh sandboxed
//! instance for every event. Knows nothing about HTTP.

pub mod capabilities;
mod convert;
mod limits;
mod sandbox;
mod ticker;

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::protocol::summary::SessionSummary as Vss;
use crate::protocol::{CallAction, Callflow};
use capabilities::EventCtx;
pub use capabilities::config::AppConfig;
pub use capabilities::http::{OutboundPolicy, OutboundRecord, RequestLog};
pub use capabilities::kv::KvScope;
pub use capabilities::log::LogLimits;
pub use capabilities::secrets::AppSecrets;
pub use capabilities::state::CallState;
pub use limits::GuestLimits;
use ticker::EpochTicker;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "ivr-app",
    imports: {
        "ivr:app/state.set": trappable,
        "ivr:app/log.log": trappable,
        "ivr:app/kv": async,
    },
    exports: {
        default: async,
    },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
    additional_derives: [PartialEq],
    require_store_data_send: true,
});

/// The contract's previous version, `ivr:app@0.2.0`: its imports stay
/// linked so that components built against it keep running unchanged (its
/// exports have the same types as 0.3.0's, so one set of calls serves both).
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2.0",
        world: "ivr-app",
        imports: {
            "ivr:app/state.set": trappable,
            "ivr:app/log.log": trappable,
        },
        exports: {
            default: async,
        },
    });
}

/// How often the epoch ticker advances; the run-time limit's granularity.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// How much of a guest's linear memory stays mapped between instances: the
/// pages an event dirtied are reset in place (found with Linux's
/// `PAGEMAP_SCAN` where available, 6.7+) instead of being unmapped and
/// faulted in again by the next event.
const LINEAR_MEMORY_KEEP_RESIDENT: usize = 1024 * 1024;
/// Largest wasm stack a guest may use; deeper recursion traps.
const MAX_WASM_STACK: usize = 512 * 1024;

/// Most idle warm instances kept per app version.
const MAX_IDLE_WARM_INSTANCES: usize = 8;
/// An idle warm instance unused this long is dropped, giving its pool slot
/// (and its memory) back.
pub const WARM_IDLE_TTL: Duration = Duration::from_secs(30);

/// Sizing of the runtime shared by all apps.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeOptions {
    /// The largest memory any app may be given (sizes the pooling allocator's slots).
    pub max_memory_bytes: usize,
    /// How many guest instances may exist at once, across all apps.
    pub max_concurrent_instances: u32,
    /// Count fuel (instructions) so each event's cost can be reported; adds
    /// overhead to every event, so off unless asked for.
    pub fuel: bool,
    /// Interrupt guests at their deadline (on in production; off only to
    /// measure its cost).
    pub epoch_interruption: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            max_memory_bytes: 32 * 1024 * 1024,
            max_concurrent_instances: 256,
            fuel: false,
            epoch_interruption: true,
        }
    }
}

/// The process-wide engine, the linker with the host's imports, and the
/// epoch ticker thread that enforces run-time limits.
pub struct Runtime {
    max_instances: u32,
    engine: Engine,
    linker: Linker<EventCtx>,
    ticker: EpochTicker,
    epoch_interruption: bool,
    fuel: bool,
}

impl Runtime {
    /// Create the engine (pooling allocator, epoch interruption) and start the ticker.
    pub fn new(options: RuntimeOptions) -> anyhow::Result<Self> {
        let instances = options.max_concurrent_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * limits::MAX_CORE_INSTANCES as u32)
            .total_memories(instances * limits::MAX_MEMORIES as u32)
            .total_tables(instances * limits::MAX_TABLES as u32)
            .max_memories_per_component(limits::MAX_MEMORIES as u32)
            .max_tables_per_component(limits::MAX_TABLES as u32)
            .max_memory_size(options.max_memory_bytes)
            .linear_memory_keep_resident(LINEAR_MEMORY_KEEP_RESIDENT)
            .table_keep_resident(16 * 1024)
            .pagemap_scan(wasmtime::Enabled::Auto);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(options.epoch_interruption)
            .consume_fuel(options.fuel)
            .max_wasm_stack(MAX_WASM_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;

        let mut linker = Linker::new(&engine);
        capabilities::link(&mut linker)?;

        let ticker = EpochTicker::start(engine.clone(), EPOCH_TICK)?;

        Ok(Self {
            max_instances: instances,
            engine,
            linker,
            ticker,
            epoch_interruption: options.epoch_interruption,
            fuel: options.fuel,
        })
    }

    /// How many guest instances may exist at once (the pool's slots).
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// Compile a component and check that it fits the `ivr-app` world.
    ///
    /// Blocking and CPU-heavy: call it off the async executor. Imports the
    /// host does not provide are linked as functions that trap when called.
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledApp, CompileError> {
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', _, _, 1, 0]) => {}
            Some([0, b'a', b's', b'm', _, _, 0, 0]) => {
                return Err(CompileError::NotAComponent(
                    "this is a core WebAssembly module, not a component: build the app with \
                     `cargo build --target wasm32-wasip2` (or wrap a module with `wasm-tools component new`)"
                        .into(),
                ));
            }
            _ => {
                return Err(CompileError::NotAComponent(
                    "the bytes are not WebAssembly (no \\0asm header)".into(),
                ));
            }
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| CompileError::NotAComponent(format!("{e:#}")))?;
        self.prepare(component)
    }

    /// A key naming this engine's configuration and wasmtime version:
    /// compiled code is only ever loaded into an engine with the same key.
    pub fn engine_key(&self) -> String {
        let mut hasher = std::hash::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }

    /// `app`'s compiled code, to keep (see [`Runtime::load_compiled`]).
    pub fn serialize(&self, app: &CompiledApp) -> anyhow::Result<Vec<u8>> {
        app.pre
            .instance_pre()
            .component()
            .serialize()
            .map_err(anyhow::Error::from)
            .context("serializing compiled code")
    }

    /// An app from compiled code [`Runtime::serialize`] produced.
    ///
    /// # Safety
    ///
    /// `bytes` must be exactly what `serialize` returned on an engine with
    /// the same [`Runtime::engine_key`]: wasmtime runs the machine code in
    /// it as it is (the compile cache checks both, by directory and seal).
    pub unsafe fn load_compiled(&self, bytes: &[u8]) -> Result<CompiledApp, CompileError> {
        // SAFETY: the caller guarantees the bytes' origin (above).
        let component = unsafe { Component::deserialize(&self.engine, bytes) }
            .map_err(|e| CompileError::NotAComponent(format!("{e:#}")))?;
        self.prepare(component)
    }

    fn prepare(&self, component: Component) -> Result<CompiledApp, CompileError> {
        let mut linker = self.linker.clone();
        sandbox::stub_unknown_imports(&self.engine, &mut linker, &component)
            .map_err(|e| CompileError::WrongWorld(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| CompileError::WrongWorld(format!("{e:#}")))?;
        let pre = IvrAppPre::new(pre).map_err(|e| CompileError::WrongWorld(format!("{e:#}")))?;
        Ok(CompiledApp {
            pre,
            warm: Arc::default(),
        })
    }

    /// Run one VCA event on a fresh instance of `app` (or on a warm one,
    /// when `limits.warm_events` allows more than one event per instance).
    ///
    /// The guest runs on the calling task: CPU-bound guest code yields to
    /// the executor at every epoch tick and traps once it has used up
    /// `limits.run_time`; WASI calls that wait (sleeping) are async. Drop
    /// the future to abandon the guest (that is how a wall-clock deadline
    /// is enforced).
    pub async fn handle_call_action(
        &self,
        app: &CompiledApp,
        event: &CallAction,
        call: EventContext,
        limits: &GuestLimits,
    ) -> GuestOutcome {
        let _running = self.ticker.running();
        let wit_event = convert::event_to_wit(event);
        let warm = if limits.warm_events > 1 {
            // An instance kept under a larger bound retires now.
            app.take_warm()
                .filter(|warm| warm.served < limits.warm_events)
        } else {
            None
        };
        let (mut store, instance, served) = match warm {
            Some(mut warm) => {
                warm.store.data_mut().begin(call, limits);
                (warm.store, Some(warm.instance), warm.served)
            }
            None => (self.new_store(call, limits), None, 0),
        };
        self.arm(&mut store, limits);
        let result = async {
            let instance = match instance {
                Some(instance) => instance,
                None => app.pre.instantiate_async(&mut store).await?,
            };
            let reply = instance
                .call_handle_call_action(&mut store, &wit_event)
                .await?;
            Ok((instance, reply))
        }
        .await;
        let outcome = self.finish(&mut store, limits, result);
        let result = match outcome.result {
            Ok((instance, Ok(reply))) => {
                let served = served + 1;
                if served < limits.warm_events && store.data().is_clean() {
                    app.keep_warm(WarmInstance {
                        store,
                        instance,
                        served,
                    });
                }
                Ok(convert::reply_from_wit(reply))
            }
            Ok((_, Err(app_error))) => Err(Fault::AppError(guest_text(&app_error.message))),
            Err(fault) => Err(fault),
        };
        GuestOutcome {
            result,
            state: outcome.state,
            state_changed: outcome.state_changed,
            output: outcome.output,
            fuel_used: outcome.fuel_used,
        }
    }

    /// Hand a session summary to a fresh instance of `app` (like
    /// [`Runtime::handle_call_action`]).
    pub async fn handle_session_summary(
        &self,
        app: &CompiledApp,
        summary: &Vss,
        call: EventContext,
        limits: &GuestLimits,
    ) -> GuestOutcome<()> {
        let _running = self.ticker.running();
        let wit_summary = convert::summary_to_wit(summary);
        let mut store = self.new_store(call, limits);
        self.arm(&mut store, limits);
        let result = async {
            let instance = app.pre.instantiate_async(&mut store).await?;
            instance
                .call_handle_session_summary(&mut store, &wit_summary)
                .await
        }
        .await;
        self.finish(&mut store, limits, result)
    }

    /// Create a fresh store and instance of `app` and drop them, calling
    /// nothing: the fixed cost of an event's sandbox (for benchmarks).
    pub async fn instantiate_only(
        &self,
        app: &CompiledApp,
        call: EventContext,
        limits: &GuestLimits,
    ) -> Result<(), Fault> {
        let _running = self.ticker.running();
        let mut store = self.new_store(call, limits);
        self.arm(&mut store, limits);
        let result = app.pre.instantiate_async(&mut store).await.map(|_| ());
        self.finish(&mut store, limits, result).result
    }

    /// A fresh store for one event (arm it with [`Runtime::arm`]).
    fn new_store(&self, call: EventContext, limits: &GuestLimits) -> Store<EventCtx> {
        let mut store = Store::new(&self.engine, EventCtx::new(call, limits));
        store.limiter(|ctx| &mut ctx.limiter);
        store
    }

    /// Arm a store's per-event limits: the run-time deadline and fuel.
    fn arm(&self, store: &mut Store<EventCtx>, limits: &GuestLimits) {
        if self.epoch_interruption {
            // One tick at a time: at each tick the guest yields to the
            // executor (other calls run), until its run time is used up.
            let budget = limits
                .run_time
                .as_millis()
                .div_ceil(EPOCH_TICK.as_millis())
                .max(1);
            let mut ticks_left = u64::try_from(budget).unwrap_or(u64::MAX);
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                ticks_left = ticks_left.saturating_sub(1);
                if ticks_left == 0 {
                    Ok(wasmtime::UpdateDeadline::Interrupt)
                } else {
                    // tokio's own yield: the worker polls for I/O and
                    // timers before resuming this guest. (A plain wake-up
                    // would requeue it straight away and leave other
                    // connections unnoticed for dozens of ticks.)
                    Ok(wasmtime::UpdateDeadline::YieldCustom(
                        1,
                        Box::pin(tokio::task::yield_now()),
                    ))
                }
            });
        }
        if self.fuel {
            // Fuel only measures here; the run-time limit is the epoch deadline.
            let _ = store.set_fuel(u64::MAX);
        }
    }

    /// Take an event's state and output out of its store and classify the outcome.
    fn finish<R>(
        &self,
        store: &mut Store<EventCtx>,
        limits: &GuestLimits,
        result: wasmtime::Result<R>,
    ) -> GuestOutcome<R> {
        let fuel_used = if self.fuel && limits.fuel {
            store.get_fuel().ok().map(|left| u64::MAX - left)
        } else {
            None
        };
        let ctx = store.data_mut();
        let memory_exceeded = ctx.limiter.exceeded;
        let flooded = ctx.flooded();
        let capabilities::EventLeftovers {
            state,
            state_changed,
            output,
        } = ctx.finish();
        let result = match result {
            Ok(value) => Ok(value),
            Err(err) if flooded => Err(Fault::LogFlood(format!("{err:#}"))),
            Err(err) => Err(classify(err, memory_exceeded)),
        };
        GuestOutcome {
            result,
            state,
            state_changed,
            output,
            fuel_used,
        }
    }
}

fn classify(err: wasmtime::Error, memory_exceeded: bool) -> Fault {
    if memory_exceeded {
        return Fault::Memory(format!("{err:#}"));
    }
    if err
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return Fault::Overloaded(format!("every guest instance slot is in use: {err}"));
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::Deadline("the guest ran past its run-time limit".into()),
        Some(_) | None => Fault::Trap(guest_text(&format!("{err:?}"))),
    }
}

/// A component compiled for this engine and checked against the world,
/// ready to be instantiated cheaply for each event.
#[derive(Clone)]
pub struct CompiledApp {
    pre: IvrAppPre<EventCtx>,
    /// Idle instances kept for apps that allow more than one event per
    /// instance ([`GuestLimits::warm_events`]).
    warm: Arc<Mutex<WarmPool>>,
}

/// A version's idle warm instances.
#[derive(Default)]
struct WarmPool {
    /// Each with the moment it went idle, oldest first.
    idle: Vec<(Instant, WarmInstance)>,
    /// The version no longer answers new calls: keep nothing more.
    retired: bool,
}

impl WarmPool {
    fn expire(&mut self, ttl: Duration) {
        let fresh_from = self
            .idle
            .iter()
            .position(|(since, _)| since.elapsed() < ttl)
            .unwrap_or(self.idle.len());
        self.idle.drain(..fresh_from);
    }
}

/// An instance that answered its events cleanly, kept for the next one.
struct WarmInstance {
    store: Store<EventCtx>,
    instance: IvrApp,
    /// Events it has answered.
    served: u32,
}

impl CompiledApp {
    fn pool(&self) -> std::sync::MutexGuard<'_, WarmPool> {
        self.warm.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_warm(&self) -> Option<WarmInstance> {
        let mut pool = self.pool();
        pool.expire(WARM_IDLE_TTL);
        pool.idle.pop().map(|(_, instance)| instance)
    }

    fn keep_warm(&self, instance: WarmInstance) {
        let mut pool = self.pool();
        if !pool.retired && pool.idle.len() < MAX_IDLE_WARM_INSTANCES {
            pool.idle.push((Instant::now(), instance));
        }
    }

    /// Drop the warm instances idle for [`WARM_IDLE_TTL`] (an app that no
    /// longer gets events must not hold pool slots forever).
    pub fn expire_warm_instances(&self) {
        self.pool().expire(WARM_IDLE_TTL);
    }

    /// How many warm instances are idle.
    pub fn idle_warm_instances(&self) -> usize {
        self.pool().idle.len()
    }

    /// Drop the idle warm instances (the app's settings changed), freeing
    /// their slots in the instance pool.
    pub fn drop_warm_instances(&self) {
        self.pool().idle.clear();
    }

    /// Drop the idle warm instances and keep none from now on: this version
    /// was replaced or deleted, and only its calls in progress still use it.
    pub fn retire_warm_instances(&self) {
        let mut pool = self.pool();
        pool.idle.clear();
        pool.retired = true;
    }
}

/// What the host knows about the call an event belongs to.
pub struct EventContext {
    /// App name, for log lines.
    pub app: Arc<str>,
    /// App version, for log lines.
    pub version: Arc<str>,
    /// The call's session id, for log lines.
    pub session_id: String,
    /// The call's state before this event.
    pub state: CallState,
    /// The app's configuration values.
    pub config: Arc<AppConfig>,
    /// The app's secrets (the `secrets` import; masked in its log lines).
    pub secrets: Arc<AppSecrets>,
    /// The app's key-value store.
    pub kv: KvScope,
    /// The app's outbound HTTP policy (none allowed by default).
    pub outbound: Arc<OutboundPolicy>,
    /// Where the event's outbound requests are recorded (kept by the
    /// caller: it outlives a guest abandoned at its deadline).
    pub requests: RequestLog,
}

/// The result of one guest run.
pub struct GuestOutcome<R = Callflow> {
    /// What the guest returned (for an event: the callflow), or why there is none.
    pub result: Result<R, Fault>,
    /// The call's state after the event (commit it only on success).
    pub state: CallState,
    /// Whether the guest set or deleted a key (the state needs writing).
    pub state_changed: bool,
    /// What the guest wrote to stdout and stderr (already logged).
    pub output: Vec<u8>,
    /// Fuel the event consumed, when fuel metering is on.
    pub fuel_used: Option<u64>,
}

/// Why a guest produced no usable reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The guest ran past its run-time limit (CPU, or wall clock in a host call).
    #[error("deadline: {0}")]
    Deadline(String),
    /// The guest tried to grow its memory past the cap.
    #[error("memory: {0}")]
    Memory(String),
    /// The guest trapped (panic, unreachable, stack overflow, a denied import...).
    #[error("trap: {0}")]
    Trap(String),
    /// The guest returned an error.
    #[error("app error: {0}")]
    AppError(String),
    /// The reply broke one of 8x8's rules or the reply limits.
    #[error("invalid reply: {0}")]
    InvalidReply(String),
    /// No app is routed for the call.
    #[error("no route: {0}")]
    NoRoute(String),
    /// The guest tried to write far more log output than allowed.
    #[error("log flood: {0}")]
    LogFlood(String),
    /// The app already runs its maximum of concurrent events.
    #[error("overloaded: {0}")]
    Overloaded(String),
}

impl Fault {
    /// A short machine-readable kind: `deadline`, `memory`, `trap`,
    /// `app_error`, `invalid_reply`, `no_route`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Deadline(_) => "deadline",
            Fault::Memory(_) => "memory",
            Fault::Trap(_) => "trap",
            Fault::AppError(_) => "app_error",
            Fault::InvalidReply(_) => "invalid_reply",
            Fault::NoRoute(_) => "no_route",
            Fault::Overloaded(_) => "overloaded",
            Fault::LogFlood(_) => "log_flood",
        }
    }
}

/// Most bytes of guest-derived text a fault carries into a log line, a
/// trace or an API answer (an app's error message, a trap's backtrace, a
/// reply rule quoting the offending value).
pub const MAX_GUEST_TEXT_BYTES: usize = 2048;

/// Guest-derived text made safe to log, trace and answer with: control
/// characters (newline, carriage return, escape sequences...) escaped, so
/// it can never start a line of its own that looks like the host's, and
/// cut to [`MAX_GUEST_TEXT_BYTES`] with the original size named.
pub fn guest_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_GUEST_TEXT_BYTES) + 48);
    for (at, c) in text.char_indices() {
        if out.len() >= MAX_GUEST_TEXT_BYTES {
            out.push_str(&format!("… [cut at {at} of {} bytes]", text.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `text` with its control characters escaped (`\n`, `\r`, `\u{1b}`...),
/// borrowed when it has none.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Why a component was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Not a WebAssembly component (a core module, or not wasm at all).
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    /// A component that does not fit the `ivr:app/ivr-app` world.
    #[error("the component does not fit the ivr:app/ivr-app world: {0}")]
    WrongWorld(String),
}
