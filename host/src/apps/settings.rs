//! Per-app settings: limits that override the host's, and the app's own
//! fallback callflow (`GET`/`PUT /apps/{name}/settings`, `[apps.NAME.settings]`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::protocol::{Callflow, ReplyLimits, validate};
use std::sync::Arc;

use crate::runtime::GuestLimits;
use crate::runtime::capabilities::http::network::OutboundNetwork;
use crate::runtime::capabilities::http::{HttpSettings, OutboundPolicy};
use crate::runtime::capabilities::kv::KvSettings;
use crate::runtime::capabilities::log::LogSettings;

/// What an app may change about how it is run. Every field is optional: an
/// unset one takes the host's value. A capability's own settings are its
/// module's (flattened in: the operator sees one flat object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The log capability's settings (`log_kib`, `log_lines`).
    #[serde(flatten)]
    pub log: LogSettings,
    /// The outbound HTTP capability's settings (`allowed_outbound_hosts`,
    /// `outbound_*`, `event_wall_ms`).
    #[serde(flatten)]
    pub http: HttpSettings,
    /// The key-value capability's settings (`kv_quota_mib`).
    #[serde(flatten)]
    pub kv: KvSettings,
    /// Names no part of the settings knows (refused by [`AppSettings::validate`];
    /// serde's `deny_unknown_fields` does not work with flattened parts).
    #[serde(flatten, skip_serializing)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

/// Every setting's name, for the error naming an unknown one.
const KNOWN_SETTINGS: &[&str] = &[
    "guest_time_ms",
    "guest_memory_mib",
    "reply_kib",
    "reply_actions",
    "log_kib",
    "log_lines",
    "max_concurrent",
    "warm_instance_events",
    "fallback",
    "allowed_outbound_hosts",
    "outbound_requests",
    "outbound_connect_ms",
    "outbound_request_ms",
    "outbound_response_kib",
    "event_wall_ms",
    "kv_quota_mib",
];

/// Largest reply an app may be allowed, in KiB (8x8 has no documented cap;
/// this keeps one reply far below the remembered-replies memory).
pub const MAX_REPLY_KIB: usize = 1024;

/// Most events one warm instance may answer.
pub const MAX_WARM_INSTANCE_EVENTS: u32 = 10_000;

/// The host-wide values the per-app settings override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLimits {
    /// Guest limits.
    pub guest: GuestLimits,
    /// Reply limits.
    pub reply: ReplyLimits,
    /// Most events of one app running at once.
    pub max_concurrent: usize,
    /// Which addresses outbound requests may reach.
    pub network: Arc<OutboundNetwork>,
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
    /// Outbound HTTP: allowed hosts, budgets, the app's connection pool.
    pub outbound: Arc<OutboundPolicy>,
    /// Bytes the app may keep in its key-value store.
    pub kv_quota_bytes: u64,
}

impl AppSettings {
    /// Check the settings against the host's ceilings.
    pub fn validate(&self, host: &HostLimits) -> Result<(), String> {
        if let Some(name) = self.unknown.keys().next() {
            return Err(format!(
                "unknown setting `{name}`; the settings are {}",
                KNOWN_SETTINGS.join(", ")
            ));
        }
        let positive = [
            ("guest_time_ms", self.guest_time_ms.map(|v| v as usize)),
            ("guest_memory_mib", self.guest_memory_mib),
            ("reply_kib", self.reply_kib),
            ("reply_actions", self.reply_actions),
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
            && mib.saturating_mul(1024 * 1024) > host.guest.memory_bytes
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
        if let Some(kib) = self.reply_kib
            && kib > MAX_REPLY_KIB
        {
            return Err(format!("reply_kib {kib} is over {MAX_REPLY_KIB}"));
        }
        self.log.validate()?;
        self.http.validate()?;
        self.kv.validate()?;
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
            log: self.log.resolve(&host.guest.log),
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
            outbound: self.http.resolve(&host.network),
            kv_quota_bytes: self.kv.quota_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostLimits {
        HostLimits {
            guest: GuestLimits::default(),
            reply: ReplyLimits::default(),
            max_concurrent: 4,
            network: Arc::default(),
        }
    }

    fn parse(json: &str) -> AppSettings {
        serde_json::from_str(json).expect("settings parse")
    }

    #[test]
    fn capability_settings_read_and_write_flat() {
        let json = r#"{"guest_time_ms":30,"log_kib":4,"log_lines":7}"#;
        let settings = parse(json);
        assert_eq!(settings.log.log_kib, Some(4));
        assert_eq!(settings.validate(&host()), Ok(()));
        let effective = settings.resolve(&host());
        assert_eq!(effective.guest.log.bytes, 4096);
        assert_eq!(effective.guest.log.lines, 7);
        assert_eq!(effective.guest.run_time, Duration::from_millis(30));
        let back: serde_json::Value = serde_json::to_value(&settings).unwrap();
        let expected: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, expected);
        let from_toml: AppSettings =
            toml::from_str("log_kib = 4\nlog_lines = 7\nguest_time_ms = 30").unwrap();
        assert_eq!(from_toml.log, settings.log);
    }

    #[test]
    fn every_setting_is_known_by_name() {
        let all = AppSettings {
            guest_time_ms: Some(1),
            guest_memory_mib: Some(1),
            reply_kib: Some(1),
            reply_actions: Some(1),
            max_concurrent: Some(1),
            warm_instance_events: Some(1),
            fallback: Some(Callflow::apology()),
            log: LogSettings {
                log_kib: Some(1),
                log_lines: Some(1),
            },
            http: HttpSettings {
                allowed_outbound_hosts: Some(vec![]),
                outbound_requests: Some(1),
                outbound_connect_ms: Some(1),
                outbound_request_ms: Some(1),
                outbound_response_kib: Some(1),
                event_wall_ms: Some(1),
            },
            kv: KvSettings {
                kv_quota_mib: Some(1),
            },
            unknown: BTreeMap::new(),
        };
        let json = serde_json::to_value(&all).unwrap();
        let mut names: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut known = KNOWN_SETTINGS.to_vec();
        names.sort_unstable();
        known.sort_unstable();
        assert_eq!(names, known);
    }

    #[test]
    fn an_unknown_setting_is_named() {
        let err = parse(r#"{"guest_tme_ms":30}"#)
            .validate(&host())
            .unwrap_err();
        assert!(err.starts_with("unknown setting `guest_tme_ms`"), "{err}");
        assert!(err.contains("log_kib"), "{err}");
    }

    #[test]
    fn sizes_that_cannot_be_counted_are_refused_not_wrapped() {
        for (json, reason) in [
            (
                r#"{"guest_memory_mib":17592186044416}"#,
                "guest_memory_mib 17592186044416 is over the host's limit of 32 MiB",
            ),
            (
                r#"{"log_kib":18014398509481984}"#,
                "log_kib 18014398509481984 is over 1024 (the per-event log flood limit)",
            ),
            (
                r#"{"reply_kib":18014398509481984}"#,
                "reply_kib 18014398509481984 is over 1024",
            ),
            (r#"{"log_lines":0}"#, "log_lines must be greater than zero"),
        ] {
            assert_eq!(parse(json).validate(&host()).unwrap_err(), reason);
        }
    }
}
