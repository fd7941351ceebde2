//! One webhook in, one answer out: parse, route, run the guest, check the
//! reply, fall back on any fault. The path of a VCA reads top to bottom in
//! [`IvrService::handle_webhook`]. Knows neither HTTP nor wasm details.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::apps::AppRegistry;
use crate::protocol::{self, CallAction, Callflow, ReplyLimits, Webhook};
use crate::runtime::{EventContext, Fault, GuestLimits, Runtime};
use crate::store::{CallStateStore, ReplyCache};

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
    guest_limits: GuestLimits,
    reply_limits: ReplyLimits,
    fallback: Bytes,
}

impl IvrService {
    /// Assemble the service.
    pub fn new(
        runtime: Arc<Runtime>,
        apps: AppRegistry,
        states: CallStateStore,
        replies: ReplyCache,
        guest_limits: GuestLimits,
        reply_limits: ReplyLimits,
    ) -> Self {
        Self {
            runtime,
            apps,
            states,
            replies,
            guest_limits,
            reply_limits,
            fallback: Bytes::from(Callflow::apology().to_json()),
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

    /// Route the event, run the app on a fresh instance, check its reply.
    async fn decide(&self, event: CallAction) -> Bytes {
        let started = Instant::now();
        let snapshot = self.apps.snapshot();
        let app = match self.apps.resolve(&snapshot, &event) {
            Ok(app) => app,
            Err(reason) => {
                let fault = Fault::NoRoute(reason);
                tracing::warn!(session = %event.session_id, event = %event.event_id, kind = fault.kind(), "{fault}; answering with the fallback callflow");
                return self.fallback.clone();
            }
        };
        let call = EventContext {
            app: app.name.clone(),
            version: app.version_label.clone(),
            session_id: event.session_id.clone(),
            state: self.states.load(&event.session_id),
            config: snapshot.config(&app.name),
        };
        let runtime = self.runtime.clone();
        let limits = self.guest_limits;
        let guest_app = app.clone();
        // The guest runs on a blocking thread: it may take up to its run-time
        // limit, and WASI's synchronous bindings must not run on an async worker.
        let joined = tokio::task::spawn_blocking(move || {
            let outcome = runtime.handle_call_action(&guest_app.compiled, &event, call, &limits);
            (outcome, event)
        })
        .await;
        let (outcome, event) = match joined {
            Ok(done) => done,
            Err(err) => {
                tracing::error!(app = %app.name, version = app.version, "guest run aborted: {err}; answering with the fallback callflow");
                return self.fallback.clone();
            }
        };
        let checked = outcome.result.and_then(|flow| {
            protocol::validate(&flow, &self.reply_limits)
                .map_err(|v| Fault::InvalidReply(v.to_string()))?;
            let json = flow.to_json();
            protocol::check_size(&json, &self.reply_limits)
                .map_err(|v| Fault::InvalidReply(v.to_string()))?;
            Ok(json)
        });
        let elapsed_us = started.elapsed().as_micros();
        match checked {
            Ok(json) => {
                self.states.commit(&event.session_id, outcome.state);
                tracing::debug!(app = %app.name, version = app.version, session = %event.session_id, event = %event.event_id, elapsed_us, "answered");
                Bytes::from(json)
            }
            Err(fault) => {
                tracing::warn!(
                    app = %app.name, version = app.version, session = %event.session_id, event = %event.event_id,
                    kind = fault.kind(), elapsed_us, "{fault}; answering with the fallback callflow"
                );
                self.fallback.clone()
            }
        }
    }
}
