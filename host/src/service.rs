//! One webhook in, one answer out: parse, route, run the guest within its
//! limits, check the reply, fall back on any fault. The path of a VCA reads
//! top to bottom in [`IvrService::handle_webhook`]. Knows neither HTTP nor
//! wasm details.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::apps::settings::Effective;
use crate::apps::{AdminError, AppRegistry, LoadedApp, Snapshot};
use crate::protocol::summary::SessionSummary;
use crate::protocol::{self, CallAction, Webhook};
use crate::runtime::{
    AppSecrets, EventContext, Fault, GuestOutcome, KvScope, RequestLog, Runtime, guest_text,
};
use crate::store::calls::Decision;
use crate::store::kv::KvStore;
use crate::store::sessions::{SessionStore, TraceRecord};
use crate::store::{CallJournal, CallStateStore, ReplyCache};
use serde_json::value::RawValue;

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
    /// `500`: a summary could not be stored (8x8 should deliver it again).
    StorageFailed(String),
}

/// Everything needed to answer webhooks.
pub struct IvrService {
    runtime: Arc<Runtime>,
    apps: AppRegistry,
    states: CallStateStore,
    replies: ReplyCache,
    slots: ConcurrencySlots,
    /// One permit per guest instance slot: every app's events together
    /// never ask the pool for more than it has.
    instances: Arc<Semaphore>,
    sessions: Arc<SessionStore>,
    calls: Arc<CallJournal>,
    kv: Arc<dyn KvStore>,
    deliveries: Arc<InFlight>,
    calls_evicted: AtomicU64,
}

/// Work started by a webhook that outlives its answer (session summaries
/// handed to the app), counted so that shutdown can wait for it.
#[derive(Default)]
struct InFlight {
    running: AtomicUsize,
    idle: Notify,
}

/// One piece of [`InFlight`] work; finishing it is dropping the guard.
struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    fn start(self: &Arc<Self>) -> InFlightGuard {
        self.running.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    async fn until_idle(&self) {
        loop {
            let idle = self.idle.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl IvrService {
    /// Assemble the service.
    pub fn new(
        runtime: Arc<Runtime>,
        apps: AppRegistry,
        states: CallStateStore,
        replies: ReplyCache,
        sessions: Arc<SessionStore>,
        calls: Arc<CallJournal>,
        kv: Arc<dyn KvStore>,
    ) -> Self {
        Self {
            kv,
            apps,
            states,
            replies,
            instances: Arc::new(Semaphore::new(runtime.max_instances() as usize)),
            slots: ConcurrencySlots::default(),
            sessions,
            calls,
            deliveries: Arc::default(),
            calls_evicted: AtomicU64::new(0),
            runtime,
        }
    }

    /// Put back the calls in progress and recent replies the journal kept
    /// (a restart, or a crash): `call_ttl` and `reply_ttl` as in memory,
    /// at most `max_calls` and `max_replies` of them.
    pub async fn restore_calls(
        &self,
        call_ttl: Duration,
        max_calls: usize,
        reply_ttl: Duration,
        max_replies: usize,
    ) -> anyhow::Result<()> {
        let calls = self.calls.clone();
        let (stored_calls, stored_replies) = tokio::task::spawn_blocking(move || {
            calls.load(call_ttl, max_calls, reply_ttl, max_replies)
        })
        .await??;
        let mut pins = Vec::with_capacity(stored_calls.len());
        for call in stored_calls {
            if let Some(state) = call.state.as_deref() {
                match serde_json::from_str(state) {
                    Ok(state) => self.states.restore(&call.session_id, state, call.idle),
                    Err(err) => {
                        tracing::warn!(session = %call.session_id, "journaled state unreadable: {err}")
                    }
                }
            }
            pins.push((call.session_id, call.app, call.version, call.idle));
        }
        let calls = pins.len();
        let pinned = self.apps.restore_pins(pins).await;
        let replies = stored_replies.len();
        for reply in stored_replies {
            self.replies.restore(
                &reply.session_id,
                &reply.event_id,
                Bytes::from(reply.reply),
                reply.age,
            );
        }
        if calls + replies > 0 {
            tracing::info!(calls, pinned, replies, "restored the calls in progress");
        }
        Ok(())
    }

    /// The calls-in-progress journal.
    pub fn call_journal(&self) -> &Arc<CallJournal> {
        &self.calls
    }

    /// Wait (at most `limit`) for the session summaries being handed to
    /// apps; `false` when some were still running.
    pub async fn finish_deliveries(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.deliveries.until_idle())
            .await
            .is_ok()
    }

    /// Delete an app (see [`AppRegistry::delete`]) and its key-value store:
    /// a new app given the same name starts with none of its keys.
    pub async fn delete_app(&self, name: &str) -> Result<(), AdminError> {
        self.apps.delete(name).await?;
        let (kv, app) = (self.kv.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || kv.clear(&app))
            .await
            .map_err(|e| AdminError::Internal(anyhow::anyhow!("kv task failed: {e}")))?
            .map_err(|e| AdminError::Internal(anyhow::anyhow!("deleting the app's keys: {e}")))
    }

    /// The apps' key-value stores.
    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    /// Call traces and session summaries.
    pub fn sessions(&self) -> &Arc<SessionStore> {
        &self.sessions
    }

    /// The app registry.
    pub fn apps(&self) -> &AppRegistry {
        &self.apps
    }

    /// Answer one webhook body, whatever URL it arrived on (8x8 may send any
    /// event type to any URL; the body's `eventType` decides).
    pub async fn handle_webhook(self: &Arc<Self>, body: Bytes) -> Answer {
        match protocol::parse_webhook(&body) {
            Err(err) => Answer::BadRequest(err),
            Ok(Webhook::CallAction(event)) => {
                Answer::Callflow(self.answer_call_action(event, body).await)
            }
            Ok(Webhook::SessionSummary { summary, payload }) => {
                self.accept_summary(*summary, payload, body).await
            }
            Ok(Webhook::Other {
                event_type,
                payload,
            }) => {
                #[derive(serde::Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Ids {
                    session_id: Option<String>,
                    event_id: Option<String>,
                    sub_account_id: Option<String>,
                }
                let ids: Option<Ids> = serde_json::from_str(payload.get()).ok();
                let (session_id, event_id, sub_account) = ids
                    .map(|i| (i.session_id, i.event_id, i.sub_account_id))
                    .unwrap_or_default();
                tracing::debug!(event_type = event_type.as_str(), session = ?session_id, "acknowledged");
                // Events without a session (VIRTUAL_NUMBER_UPDATE) are kept
                // under a trace named after their type and subaccount.
                let session_id = session_id.unwrap_or_else(|| {
                    format!(
                        "{}:{}",
                        event_type.as_str(),
                        sub_account.as_deref().unwrap_or("unknown")
                    )
                });
                self.sessions.record(TraceRecord {
                    session_id,
                    at: now(),
                    event_type: event_type.as_str().to_owned(),
                    event_id,
                    request_bytes: Some(body),
                    ..TraceRecord::default()
                });
                Answer::Acknowledged
            }
        }
    }

    /// Store a session summary durably, acknowledge it, then let the app
    /// that answered the call hear it and release the call's pin and state.
    async fn accept_summary(
        self: &Arc<Self>,
        summary: SessionSummary,
        payload: Box<RawValue>,
        body: Bytes,
    ) -> Answer {
        let started = Instant::now();
        let sessions = self.sessions.clone();
        let stored = {
            let summary = summary.clone();
            tokio::task::spawn_blocking(move || sessions.insert_summary(&summary, payload.get()))
                .await
        };
        let is_new = match stored {
            Ok(Ok(is_new)) => is_new,
            Ok(Err(err)) => return Answer::StorageFailed(format!("{err:#}")),
            Err(err) => return Answer::StorageFailed(format!("storing the summary failed: {err}")),
        };
        if !is_new {
            tracing::debug!(session = %summary.session_id, "repeated session summary; already stored");
            return Answer::Acknowledged;
        }
        let service = self.clone();
        let running = self.deliveries.start();
        tokio::spawn(async move {
            service.deliver_summary(summary, body, started).await;
            drop(running);
        });
        Answer::Acknowledged
    }

    /// Run the app's summary export on the version that answered the call.
    async fn deliver_summary(&self, summary: SessionSummary, body: Bytes, started: Instant) {
        let session_id = summary.session_id.clone();
        let snapshot = self.apps.snapshot();
        let app = self.apps.pinned(&session_id);
        let mut record = TraceRecord {
            session_id: session_id.clone(),
            at: now(),
            event_type: "SESSION_SUMMARY".into(),
            request_bytes: Some(body),
            ..TraceRecord::default()
        };
        if let Some(app) = app {
            let limits = snapshot.effective(&app.name);
            let requests = RequestLog::default();
            let call = self.event_context(&snapshot, &app, &limits, &session_id, requests.clone());
            record.app = Some(app.name.to_string());
            record.version = Some(app.version);
            let result = self
                .within_limits(
                    &app,
                    &limits,
                    self.runtime.handle_session_summary(
                        &app.compiled,
                        &summary,
                        call,
                        &limits.guest,
                    ),
                )
                .await
                .and_then(|outcome| outcome.result);
            let secrets = snapshot.secrets(&app.name);
            record.outbound = outbound_trace(&requests, &secrets);
            if let Err(fault) = result {
                let shown = secrets.mask(&fault.to_string()).into_owned();
                tracing::warn!(app = %app.name, version = app.version, session = %session_id, kind = fault.kind(), "the session summary handler failed: {shown}");
                record.fault_kind = Some(fault.kind().to_owned());
                record.fault = Some(shown);
            }
        } else {
            tracing::debug!(session = %session_id, "session summary for a call no app version is pinned to");
        }
        record.elapsed_us = Some(started.elapsed().as_micros() as u64);
        self.sessions.record(record);
        self.apps.release(&session_id);
        self.states.remove(&session_id);
        // One appended line, like the decisions the journal records inline.
        if let Err(err) = self.calls.forget(&session_id) {
            tracing::warn!("could not remove an ended call from the journal: {err:#}");
        }
    }

    /// The callflow for a VCA: the first reply given to its (`sessionId`,
    /// `eventId`), or a new decision.
    async fn answer_call_action(&self, event: CallAction, body: Bytes) -> Bytes {
        if event.event_id.is_empty() {
            return self.decide(event, body).await;
        }
        let (session_id, event_id) = (event.session_id.clone(), event.event_id.clone());
        self.replies
            .get_or_decide(&session_id, &event_id, || self.decide(event, body))
            .await
    }

    /// Route the event (or follow its call's pin), run the app on a fresh
    /// instance within its limits, check its reply.
    async fn decide(&self, event: CallAction, body: Bytes) -> Bytes {
        let started = Instant::now();
        let mut record = TraceRecord {
            session_id: event.session_id.clone(),
            at: now(),
            event_type: "CALL_ACTION".into(),
            event_id: Some(event.event_id.clone()),
            request_bytes: Some(body),
            ..TraceRecord::default()
        };
        let snapshot = self.apps.snapshot();
        let (app, pinned_now) = match self.apps.resolve(&snapshot, &event) {
            Ok(resolved) => resolved,
            Err(reason) => {
                let fault = Fault::NoRoute(reason);
                tracing::warn!(session = %event.session_id, event = %event.event_id, kind = fault.kind(), "{fault}; answering with the fallback callflow");
                let fallback = snapshot.host_default().fallback.clone();
                record.fault_kind = Some(fault.kind().to_owned());
                record.fault = Some(fault.to_string());
                self.journal(Decision {
                    session_id: event.session_id.clone(),
                    event_id: event.event_id.clone(),
                    pin: None,
                    state: None,
                    reply: fallback.clone(),
                })
                .await;
                record.reply_bytes = Some(fallback.clone());
                self.sessions.record(record);
                return fallback;
            }
        };
        let limits = snapshot.effective(&app.name);
        let requests = RequestLog::default();
        let call = self.event_context(
            &snapshot,
            &app,
            &limits,
            &event.session_id,
            requests.clone(),
        );
        let session_id = event.session_id.clone();
        let event_id = event.event_id.clone();
        let (result, state, fuel) = match self.run_guest(&app, &limits, event, call).await {
            Ok(outcome) => (
                self.check(outcome.result, &limits),
                Some((outcome.state, outcome.state_changed)),
                outcome.fuel_used,
            ),
            Err(fault) => (Err(fault), None, None),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        record.app = Some(app.name.to_string());
        record.version = Some(app.version);
        record.elapsed_us = Some(elapsed_us);
        let secrets = snapshot.secrets(&app.name);
        record.outbound = outbound_trace(&requests, &secrets);
        let mut kept_state = None;
        let reply = match result {
            Ok(json) => {
                if let Some((state, changed)) = state {
                    if changed {
                        kept_state = serde_json::to_string(&state).ok();
                    }
                    let evicted = self.states.commit(&session_id, state);
                    self.forget_evicted(evicted);
                }
                tracing::info!(app = %app.name, version = app.version, session = %session_id, event = %event_id, elapsed_us, fuel, "answered");
                Bytes::from(json)
            }
            Err(fault) => {
                let shown = secrets.mask(&fault.to_string()).into_owned();
                tracing::warn!(
                    app = %app.name, version = app.version, session = %session_id, event = %event_id,
                    kind = fault.kind(), elapsed_us, fuel, "{shown}; answering with the fallback callflow"
                );
                record.fault_kind = Some(fault.kind().to_owned());
                record.fault = Some(shown);
                limits.fallback.clone()
            }
        };
        // The call's row is written when it changes: its first event (the
        // pin) and events that changed its state.
        let call_changed = pinned_now || kept_state.is_some();
        self.journal(Decision {
            session_id: session_id.clone(),
            event_id: event_id.clone(),
            pin: call_changed.then(|| (app.name.clone(), app.version)),
            state: kept_state,
            reply: reply.clone(),
        })
        .await;
        record.reply_bytes = Some(masked(&reply, &secrets));
        self.sessions.record(record);
        reply
    }

    /// Calls whose state was dropped to keep the host within its memory
    /// bound: their version pin goes too (pins and state share one bound),
    /// and each is logged and counted — never silent.
    fn forget_evicted(&self, sessions: Vec<String>) {
        for session in sessions {
            self.apps.release(&session);
            let evicted = self.calls_evicted.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                session = %session, evicted,
                "a call in progress lost its state and version pin: the call state memory bound (--call-state-mib) is full"
            );
        }
    }

    /// Calls in progress that lost their state to the memory bound.
    pub fn calls_evicted(&self) -> u64 {
        self.calls_evicted.load(Ordering::Relaxed)
    }

    /// Keep a decision on disk before its reply leaves, so that a restart
    /// neither changes the call's version, loses its state, nor decides a
    /// repeated delivery again. A failure is logged; the call is answered.
    async fn journal(&self, decision: Decision) {
        if let Err(err) = self.calls.record(decision).await {
            tracing::error!("could not journal a call's decision: {err:#}");
        }
    }

    /// What the guest's imports need for one event of `session_id` on `app`.
    fn event_context(
        &self,
        snapshot: &Snapshot,
        app: &LoadedApp,
        limits: &Effective,
        session_id: &str,
        requests: RequestLog,
    ) -> EventContext {
        EventContext {
            app: app.name.clone(),
            version: app.version_label.clone(),
            session_id: session_id.to_owned(),
            state: self.states.load(session_id),
            config: snapshot.config(&app.name),
            secrets: snapshot.secrets(&app.name),
            kv: KvScope::new(self.kv.clone(), app.name.clone(), limits.kv_quota_bytes),
            outbound: limits.outbound.clone(),
            requests,
        }
    }

    /// Run a VCA on the guest.
    async fn run_guest(
        &self,
        app: &Arc<LoadedApp>,
        limits: &Arc<Effective>,
        event: CallAction,
        call: EventContext,
    ) -> Result<GuestOutcome, Fault> {
        self.within_limits(
            app,
            limits,
            self.runtime
                .handle_call_action(&app.compiled, &event, call, &limits.guest),
        )
        .await
    }

    /// Run a guest future within the app's concurrency bound and a
    /// wall-clock deadline. The guest runs on this task and yields at every
    /// epoch tick, so a busy guest never holds an async worker for long; on
    /// the deadline the future is dropped, which abandons the guest.
    async fn within_limits<R>(
        &self,
        app: &Arc<LoadedApp>,
        limits: &Arc<Effective>,
        run: impl Future<Output = R>,
    ) -> Result<R, Fault> {
        let _permit = self.slots.acquire(&app.name, limits.max_concurrent).await?;
        let _instance = acquire_within(&self.instances, QUEUE_WAIT)
            .await
            .ok_or_else(|| {
                Fault::Overloaded(format!(
                    "all {} guest instance slots are in use; waited {} ms",
                    self.runtime.max_instances(),
                    QUEUE_WAIT.as_millis()
                ))
            })?;
        let wall_clock = limits
            .outbound
            .event_wall_time()
            .unwrap_or(limits.guest.run_time + WALL_CLOCK_GRACE);
        tokio::time::timeout(wall_clock, run).await.map_err(|_| {
            Fault::Deadline(format!(
                "no reply within the {} ms wall-clock limit (waiting in a host call)",
                wall_clock.as_millis()
            ))
        })
    }

    /// Validate and serialize a guest's callflow against the app's limits.
    fn check(
        &self,
        result: Result<protocol::Callflow, Fault>,
        limits: &Effective,
    ) -> Result<Vec<u8>, Fault> {
        let flow = result?;
        let invalid =
            |rule: protocol::Violation| Fault::InvalidReply(guest_text(&rule.to_string()));
        protocol::validate(&flow, &limits.reply).map_err(invalid)?;
        let json = flow.to_json();
        protocol::check_size(&json, &limits.reply).map_err(invalid)?;
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
        acquire_within(&semaphore, QUEUE_WAIT).await.ok_or_else(|| {
            Fault::Overloaded(format!(
                "{limit} events of this app are already running; waited {} ms",
                QUEUE_WAIT.as_millis()
            ))
        })
    }
}

/// A permit of `semaphore`, waiting at most `wait`.
async fn acquire_within(
    semaphore: &Arc<Semaphore>,
    wait: Duration,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = semaphore.clone().try_acquire_owned() {
        return Some(permit);
    }
    tokio::time::timeout(wait, semaphore.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
}

/// The event's outbound requests as the trace keeps them (none: absent),
/// secret values masked.
fn outbound_trace(requests: &RequestLog, secrets: &AppSecrets) -> Option<Box<RawValue>> {
    let mut records = requests.records();
    if records.is_empty() {
        return None;
    }
    for record in &mut records {
        record.url = secrets.mask(&record.url).into_owned();
        if let Some(error) = &mut record.error {
            *error = secrets.mask(error).into_owned();
        }
    }
    serde_json::value::to_raw_value(&records).ok()
}

/// `reply` for the trace: secret values the app put in it masked.
fn masked(reply: &Bytes, secrets: &AppSecrets) -> Bytes {
    if secrets.is_empty() {
        return reply.clone();
    }
    match std::str::from_utf8(reply).map(|text| secrets.mask(text)) {
        Ok(std::borrow::Cow::Owned(text)) => Bytes::from(text),
        _ => reply.clone(),
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}
