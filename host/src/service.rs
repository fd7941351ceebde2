//! One webhook in, one answer out: parse, route, run the guest within its
//! limits, check the reply, fall back on any fault. The path of a VCA reads
//! top to bottom in [`IvrService::handle_webhook`]. Knows neither HTTP nor
//! wasm details.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::apps::settings::Effective;
use crate::apps::{AppRegistry, LoadedApp};
use crate::protocol::{self, CallAction, Webhook};
use crate::runtime::{EventContext, Fault, GuestOutcome, Runtime};
use crate::store::{CallStateStore, ReplyCache};

/// How long an event waits for a slot when its app already runs its maximum
/// of concurrent events, before it gets the fallback.
const QUEUE_WAIT: Duration = Duration::from_millis(50);
/// Wall-clock allowance past the run-time limit (time blocked in host calls
/// is not CPU time, so the epoch deadline alone cannot bound it).
const WALL_CLOCK_GRACE: Duration = Duration::from_millis(100);

/// The answer to one webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `200` with this callflow JSON.
    Callflow(Bytes),
    /// `200` with `{}`: an event that takes no callflow.
    Acknowledged,
    /// `400`: the body could not be read; names the field or rule.
    BadRequest(protocol::ParseError),
}

/// Everything needed to answer webhooks.
pub struct IvrService {
    runtime: Arc<Runtime>,
    apps: AppRegistry,
    states: CallStateStore,
    replies: ReplyCache,
    slots: ConcurrencySlots,
}

impl IvrService {
    /// Assemble the service.
    pub fn new(
        runtime: Arc<Runtime>,
        apps: AppRegistry,
        states: CallStateStore,
        replies: ReplyCache,
    ) -> Self {
        Self {
            runtime,
            apps,
            states,
            replies,
            slots: ConcurrencySlots::default(),
        }
    }

    /// The app registry.
    pub fn apps(&self) -> &AppRegistry {
        &self.apps
    }

    /// Answer one webhook body, whatever URL it arrived on (8x8 may send any
    /// event type to any URL; the body's `eventType` decides).
    pub async fn handle_webhook(&self, body: &[u8]) -> Answer {
        match protocol::parse_webhook(body) {
            Err(err) => Answer::BadRequest(err),
            Ok(Webhook::CallAction(event)) => {
                Answer::Callflow(self.answer_call_action(event).await)
            }
            Ok(Webhook::Other { event_type, .. }) => {
                tracing::debug!(event_type = event_type.as_str(), "acknowledged");
                Answer::Acknowledged
            }
        }
    }

    /// The callflow for a VCA: the first reply given to its `eventId`, or a
    /// new decision.
    async fn answer_call_action(&self, event: CallAction) -> Bytes {
        if event.event_id.is_empty() {
            return self.decide(event).await;
        }
        let event_id = event.event_id.clone();
        self.replies
            .get_or_decide(&event_id, || self.decide(event))
            .await
    }

    /// Route the event (or follow its call's pin), run the app on a fresh
    /// instance within its limits, check its reply.
    async fn decide(&self, event: CallAction) -> Bytes {
        let started = Instant::now();
        let snapshot = self.apps.snapshot();
        let app = match self.apps.resolve(&snapshot, &event) {
            Ok(app) => app,
            Err(reason) => {
                let fault = Fault::NoRoute(reason);
                tracing::warn!(session = %event.session_id, event = %event.event_id, kind = fault.kind(), "{fault}; answering with the fallback callflow");
                return snapshot.host_default().fallback.clone();
            }
        };
        let limits = snapshot.effective(&app.name);
        let call = EventContext {
            app: app.name.clone(),
            version: app.version_label.clone(),
            session_id: event.session_id.clone(),
            state: self.states.load(&event.session_id),
            config: snapshot.config(&app.name),
        };
        let session_id = event.session_id.clone();
        let event_id = event.event_id.clone();
        let (result, outcome) = match self.run_guest(&app, &limits, event, call).await {
            Ok(outcome) => (self.check(outcome.result.clone(), &limits), Some(outcome)),
            Err(fault) => (Err(fault), None),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        let fuel = outcome.as_ref().and_then(|o| o.fuel_used);
        match result {
            Ok(json) => {
                if let Some(outcome) = outcome {
                    self.states.commit(&session_id, outcome.state);
                }
                tracing::debug!(app = %app.name, version = app.version, session = %session_id, event = %event_id, elapsed_us, fuel, "answered");
                Bytes::from(json)
            }
            Err(fault) => {
                tracing::warn!(
                    app = %app.name, version = app.version, session = %session_id, event = %event_id,
                    kind = fault.kind(), elapsed_us, fuel, "{fault}; answering with the fallback callflow"
                );
                limits.fallback.clone()
            }
        }
    }

    /// Run the guest on a blocking thread, within the app's concurrency
    /// bound and a wall-clock deadline.
    async fn run_guest(
        &self,
        app: &Arc<LoadedApp>,
        limits: &Arc<Effective>,
        event: CallAction,
        call: EventContext,
    ) -> Result<GuestOutcome, Fault> {
        let permit = self.slots.acquire(&app.name, limits.max_concurrent).await?;
        let runtime = self.runtime.clone();
        let guest_limits = limits.guest;
        let guest_app = app.clone();
        // The guest runs on a blocking thread: it may take up to its run-time
        // limit, and WASI's synchronous bindings must not run on an async
        // worker. The permit goes with it, so a guest still stuck in a host
        // call after the wall-clock deadline keeps counting against its app.
        let task = tokio::task::spawn_blocking(move || {
            let outcome =
                runtime.handle_call_action(&guest_app.compiled, &event, call, &guest_limits);
            drop(permit);
            outcome
        });
        let wall_clock = guest_limits.run_time + WALL_CLOCK_GRACE;
        match tokio::time::timeout(wall_clock, task).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(err)) => Err(Fault::Trap(format!("the guest run was aborted: {err}"))),
            Err(_) => Err(Fault::Deadline(format!(
                "no reply within the {} ms wall-clock limit (blocked in a host call)",
                wall_clock.as_millis()
            ))),
        }
    }

    /// Validate and serialize a guest's callflow against the app's limits.
    fn check(
        &self,
        result: Result<protocol::Callflow, Fault>,
        limits: &Effective,
    ) -> Result<Vec<u8>, Fault> {
        let flow = result?;
        protocol::validate(&flow, &limits.reply).map_err(|v| Fault::InvalidReply(v.to_string()))?;
        let json = flow.to_json();
        protocol::check_size(&json, &limits.reply)
            .map_err(|v| Fault::InvalidReply(v.to_string()))?;
        Ok(json)
    }
}

/// Per-app bounds on concurrently running events.
#[derive(Default)]
struct ConcurrencySlots {
    by_app: Mutex<HashMap<Arc<str>, Bound>>,
}

/// One app's bound: its limit and the semaphore enforcing it.
type Bound = (usize, Arc<Semaphore>);

impl ConcurrencySlots {
    /// A slot for one event of `app`, waiting at most [`QUEUE_WAIT`].
    async fn acquire(&self, app: &Arc<str>, limit: usize) -> Result<OwnedSemaphorePermit, Fault> {
        let semaphore = {
            let mut map = self.by_app.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = map
                .entry(app.clone())
                .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit))));
            if entry.0 != limit {
                *entry = (limit, Arc::new(Semaphore::new(limit)));
            }
            entry.1.clone()
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(QUEUE_WAIT, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Fault::Overloaded(format!(
                "{limit} events of this app are already running; waited {} ms",
                QUEUE_WAIT.as_millis()
            ))),
        }
    }
}
