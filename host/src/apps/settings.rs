//! Per-app settings: limits that override the host's, and the app's own
//! fallback callflow (`GET`/`PUT /apps/{name}/settings`, `[apps.NAME.settings]`).

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::protocol::{Callflow, ReplyLimits, validate};
use crate::runtime::{GuestLimits, LogLimits};

/// What an app may change about how it is run. Every field is optional: an
/// unset one takes the host's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    /// Guest run time per event, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_time_ms: Option<u64>,
    /// Guest linear memory cap, in MiB (at most the host's `guest_memory_mib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_memory_mib: Option<usize>,
    /// Largest reply, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_kib: Option<usize>,
    /// Most actions in a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_actions: Option<usize>,
    /// Guest log output per event, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_kib: Option<usize>,
    /// Guest log lines per event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_lines: Option<usize>,
    /// Most events of this app running at once; more wait briefly, then get the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// Events one instance may answer before a fresh one is made (default 1:
    /// a fresh instance per event). Opt-in speed-up: the app's memory then
    /// carries over between those events (of any calls); never after a fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_instance_events: Option<u32>,
    /// The callflow answered when the app faults (default: an apology and hangup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Callflow>,
}

/// Most events one warm instance may answer.
pub const MAX_WARM_INSTANCE_EVENTS: u32 = 10_000;

/// The host-wide values the per-app settings override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Guest limits.
    pub guest: GuestLimits,
    /// Reply limits.
    pub reply: ReplyLimits,
    /// Most events of one app running at once.
    pub max_concurrent: usize,
}

/// An app's effective limits and fallback, resolved once per change.
#[derive(Debug, Clone)]
pub struct Effective {
    /// Guest limits.
    pub guest: GuestLimits,
    /// Reply limits.
    pub reply: ReplyLimits,
    /// Most events running at once.
    pub max_concurrent: usize,
    /// The fallback callflow, serialized.
    pub fallback: Bytes,
}

impl AppSettings {
    /// Check the settings against the host's ceilings.
    pub fn validate(&self, host: &HostLimits) -> Result<(), String> {
        let positive = [
            ("guest_time_ms", self.guest_time_ms.map(|v| v as usize)),
            ("guest_memory_mib", self.guest_memory_mib),
            ("reply_kib", self.reply_kib),
            ("reply_actions", self.reply_actions),
            ("log_kib", self.log_kib),
            ("log_lines", self.log_lines),
            ("max_concurrent", self.max_concurrent),
            (
                "warm_instance_events",
                self.warm_instance_events.map(|v| v as usize),
            ),
        ];
        for (name, value) in positive {
            if value == Some(0) {
                return Err(format!("{name} must be greater than zero"));
            }
        }
        if let Some(mib) = self.guest_memory_mib
            && mib * 1024 * 1024 > host.guest.memory_bytes
        {
            return Err(format!(
                "guest_memory_mib {mib} is over the host's limit of {} MiB",
                host.guest.memory_bytes / (1024 * 1024)
            ));
        }
        if let Some(ms) = self.guest_time_ms
            && ms > 10_000
        {
            return Err(format!(
                "guest_time_ms {ms} is over 10000 (8x8 waits for the reply)"
            ));
        }
        if let Some(events) = self.warm_instance_events
            && events > MAX_WARM_INSTANCE_EVENTS
        {
            return Err(format!(
                "warm_instance_events {events} is over {MAX_WARM_INSTANCE_EVENTS}"
            ));
        }
        if let Some(fallback) = &self.fallback {
            let limits = self.resolve(host).reply;
            validate(fallback, &limits).map_err(|v| format!("fallback: {v}"))?;
        }
        Ok(())
    }

    /// The effective limits: these settings over the host's.
    pub fn resolve(&self, host: &HostLimits) -> Effective {
        let guest = GuestLimits {
            run_time: self
                .guest_time_ms
                .map(Duration::from_millis)
                .unwrap_or(host.guest.run_time),
            memory_bytes: self
                .guest_memory_mib
                .map(|m| m * 1024 * 1024)
                .unwrap_or(host.guest.memory_bytes),
            log: LogLimits {
                bytes: self
                    .log_kib
                    .map(|k| k * 1024)
                    .unwrap_or(host.guest.log.bytes),
                lines: self.log_lines.unwrap_or(host.guest.log.lines),
            },
            fuel: host.guest.fuel,
            warm_events: self.warm_instance_events.unwrap_or(1),
        };
        let reply = ReplyLimits {
            max_actions: self.reply_actions.unwrap_or(host.reply.max_actions),
            max_bytes: self
                .reply_kib
                .map(|k| k * 1024)
                .unwrap_or(host.reply.max_bytes),
        };
        let fallback = self.fallback.clone().unwrap_or_else(Callflow::apology);
        Effective {
            guest,
            reply,
            max_concurrent: self.max_concurrent.unwrap_or(host.max_concurrent),
            fallback: Bytes::from(fallback.to_json()),
        }
    }
}
