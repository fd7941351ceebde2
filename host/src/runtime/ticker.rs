//! The epoch ticker: a thread that advances the engine's epoch every tick
//! while guests run, which is how their run-time limits are enforced. Once
//! no guest has run for [`IDLE_TICKS_BEFORE_PARKING`] ticks it parks, so an
//! idle host does not wake a thousand times a second; the next guest to
//! start wakes it before it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::Engine;

/// Ticks without a running guest before the ticker parks (under load it
/// never does, so waking it costs nothing per event there).
const IDLE_TICKS_BEFORE_PARKING: u32 = 100;

/// The ticker thread and what it shares with the guests.
pub(crate) struct EpochTicker {
    shared: Arc<Shared>,
    thread: Thread,
}

#[derive(Default)]
struct Shared {
    /// Guests that may be running now.
    running: AtomicUsize,
    /// The ticker is parked, or about to be: wake it to start a guest.
    parked: AtomicBool,
    stop: AtomicBool,
}

impl EpochTicker {
    /// Start ticking `engine` every `tick`.
    pub(crate) fn start(engine: Engine, tick: Duration) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let handle = std::thread::Builder::new()
            .name("ivr-epoch-ticker".into())
            .spawn(move || tick_while_guests_run(&engine, tick, &state))
            .context("starting the epoch ticker thread")?;
        Ok(Self {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// Mark a guest as running until the guard is dropped; wakes the ticker
    /// if it was parked.
    pub(crate) fn running(&self) -> Running<'_> {
        // SeqCst pairs with the ticker's store of `parked` then load of
        // `running`: either it sees this guest and stays awake, or this
        // sees it parked and wakes it (an unpark before the park is kept).
        if self.shared.running.fetch_add(1, Ordering::SeqCst) == 0
            && self.shared.parked.load(Ordering::SeqCst)
        {
            self.thread.unpark();
        }
        Running(&self.shared)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// A guest that may be running (see [`EpochTicker::running`]).
pub(crate) struct Running<'a>(&'a Shared);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn tick_while_guests_run(engine: &Engine, tick: Duration, shared: &Shared) {
    let mut idle_ticks = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.running.load(Ordering::SeqCst) > 0 {
            idle_ticks = 0;
        } else if idle_ticks < IDLE_TICKS_BEFORE_PARKING {
            idle_ticks += 1;
        } else {
            shared.parked.store(true, Ordering::SeqCst);
            if shared.running.load(Ordering::SeqCst) == 0 && !shared.stop.load(Ordering::SeqCst) {
                // Returns at once if a guest unparked it since the store above.
                std::thread::park();
            }
            shared.parked.store(false, Ordering::SeqCst);
            idle_ticks = 0;
            continue;
        }
        std::thread::sleep(tick);
        engine.increment_epoch();
    }
}
