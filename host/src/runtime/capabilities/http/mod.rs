//! Outbound HTTP through the standard `wasi:http/outgoing-handler`, so any
//! toolchain's HTTP client works unchanged. Denied unless the operator lists
//! the destination in the app's `allowed_outbound_hosts`; addresses checked
//! after DNS; bounded per event in requests, time and bytes; every request
//! (or its denial) recorded in the call's trace without query or headers.
//!
//! Waiting on the network is not guest CPU time (the run-time limit counts
//! epoch ticks only while wasm runs) and holds no thread: the request runs
//! as its own task and the guest's fiber is parked until it is ready.

mod allowlist;
pub mod network;
mod send;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

use super::EventCtx;
use allowlist::{AllowedHost, Destination};
use network::OutboundNetwork;
use send::AppClient;

/// The interfaces this capability provides, with the version it implements.
pub(crate) const PROVIDES: &[(&str, &str)] = &[
    ("wasi:http/outgoing-handler", "0.2.12"),
    ("wasi:http/types", "0.2.12"),
];

pub(crate) fn link(linker: &mut Linker<EventCtx>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// Ceilings of the per-app budgets.
const MAX_REQUESTS: u32 = 64;
const MAX_TIMEOUT_MS: u64 = 10_000;
const MAX_RESPONSE_KIB: u64 = 16 * 1024;
const MAX_ALLOWED_HOSTS: usize = 256;

/// The per-app settings of this capability; unset takes the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpSettings {
    /// Where the app may send requests: `scheme://host[:port]`, `*.` for one
    /// subdomain level. Empty or unset: nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// Most requests per event (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_requests: Option<u32>,
    /// Time to connect to a backend, in ms (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_connect_ms: Option<u64>,
    /// Time for one request, response body included, in ms (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_request_ms: Option<u64>,
    /// Largest response body, in KiB (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_response_kib: Option<u64>,
    /// Wall-clock time for a whole event of an app with allowed hosts, in
    /// ms (default 3000): past it the call gets the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_wall_ms: Option<u64>,
}

/// An app's outbound budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budgets {
    pub(crate) requests: u32,
    pub(crate) connect: Duration,
    pub(crate) request: Duration,
    pub(crate) response_bytes: u64,
    pub(crate) event_wall: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            requests: 4,
            connect: Duration::from_secs(1),
            request: Duration::from_secs(2),
            response_bytes: 1024 * 1024,
            event_wall: Duration::from_secs(3),
        }
    }
}

impl HttpSettings {
    /// Check the settings; the error names the setting and the bad entry.
    pub fn validate(&self) -> Result<(), String> {
        let hosts = self.allowed_outbound_hosts.as_deref().unwrap_or_default();
        if hosts.len() > MAX_ALLOWED_HOSTS {
            return Err(format!(
                "allowed_outbound_hosts has {} entries; at most {MAX_ALLOWED_HOSTS}",
                hosts.len()
            ));
        }
        for entry in hosts {
            AllowedHost::parse(entry)
                .map_err(|why| format!("allowed_outbound_hosts: {entry:?}: {why}"))?;
        }
        let bounded = [
            (
                "outbound_requests",
                self.outbound_requests.map(u64::from),
                u64::from(MAX_REQUESTS),
            ),
            (
                "outbound_connect_ms",
                self.outbound_connect_ms,
                MAX_TIMEOUT_MS,
            ),
            (
                "outbound_request_ms",
                self.outbound_request_ms,
                MAX_TIMEOUT_MS,
            ),
            (
                "outbound_response_kib",
                self.outbound_response_kib,
                MAX_RESPONSE_KIB,
            ),
            ("event_wall_ms", self.event_wall_ms, MAX_TIMEOUT_MS),
        ];
        for (name, value, max) in bounded {
            match value {
                Some(0) => return Err(format!("{name} must be greater than zero")),
                Some(v) if v > max => return Err(format!("{name} {v} is over {max}")),
                _ => {}
            }
        }
        Ok(())
    }

    /// The app's outbound policy: these settings over the defaults, with a
    /// connection pool of its own when any host is allowed.
    pub fn resolve(&self, network: &Arc<OutboundNetwork>) -> Arc<OutboundPolicy> {
        let defaults = Budgets::default();
        let ms = Duration::from_millis;
        let budgets = Budgets {
            requests: self.outbound_requests.unwrap_or(defaults.requests),
            connect: self.outbound_connect_ms.map_or(defaults.connect, ms),
            request: self.outbound_request_ms.map_or(defaults.request, ms),
            response_bytes: self
                .outbound_response_kib
                .map_or(defaults.response_bytes, |kib| kib * 1024),
            event_wall: self.event_wall_ms.map_or(defaults.event_wall, ms),
        };
        let allowed: Vec<AllowedHost> = self
            .allowed_outbound_hosts
            .iter()
            .flatten()
            .filter_map(|entry| AllowedHost::parse(entry).ok())
            .collect();
        let client = if allowed.is_empty() {
            None
        } else {
            match send::app_client(network.clone(), budgets.connect) {
                Ok(client) => Some(client),
                Err(err) => {
                    tracing::error!("outbound HTTP is unavailable: {err:#}");
                    None
                }
            }
        };
        Arc::new(OutboundPolicy {
            allowed,
            budgets,
            client,
        })
    }
}

/// An app's outbound HTTP: where it may go, its budgets, its pool.
#[derive(Default)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
    budgets: Budgets,
    client: Option<AppClient>,
}

impl std::fmt::Debug for OutboundPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundPolicy")
            .field("allowed", &self.allowed)
            .field("budgets", &self.budgets)
            .finish_non_exhaustive()
    }
}

impl OutboundPolicy {
    /// Wall-clock time an event of this app may take, when the app may
    /// reach the network at all.
    pub fn event_wall_time(&self) -> Option<Duration> {
        (!self.allowed.is_empty()).then_some(self.budgets.event_wall)
    }
}

/// One outbound request as the call's trace shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `scheme://host:port/path`: no query string, no user, no headers.
    pub url: String,
    /// The response status, when one arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response body bytes the app received.
    pub bytes: u64,
    /// Milliseconds from sending to the end of the body (or the failure).
    pub ms: u64,
    /// Why the request failed or was refused (`denied: ...`, `timeout: ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The requests of one event, shared with the tasks sending them (which
/// outlive a guest abandoned at its deadline: what they did is still traced).
#[derive(Clone, Default)]
pub struct RequestLog {
    records: Arc<Mutex<Vec<OutboundRecord>>>,
}

impl RequestLog {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<OutboundRecord>) -> R) -> R {
        f(&mut self.records.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn start(&self, method: &str, url: String) -> usize {
        self.with(|records| {
            records.push(OutboundRecord {
                method: method.to_owned(),
                url,
                status: None,
                bytes: 0,
                ms: 0,
                error: None,
            });
            records.len() - 1
        })
    }

    fn status(&self, index: usize, status: u16, started: Instant) {
        self.with(|records| {
            if let Some(record) = records.get_mut(index) {
                record.status = Some(status);
                record.ms = started.elapsed().as_millis() as u64;
            }
        })
    }

    fn finish(&self, index: usize, status: Option<u16>, error: String, started: Instant) {
        self.with(|records| {
            if let Some(record) = records.get_mut(index) {
                record.status = status;
                record.ms = started.elapsed().as_millis() as u64;
                record.error = Some(error);
            }
        })
    }

    fn body_end(&self, index: usize, bytes: u64, error: Option<String>, started: Instant) {
        self.with(|records| {
            if let Some(record) = records.get_mut(index) {
                record.bytes = bytes;
                record.ms = started.elapsed().as_millis() as u64;
                if error.is_some() {
                    record.error = error;
                }
            }
        })
    }

    /// The records so far.
    pub fn records(&self) -> Vec<OutboundRecord> {
        self.with(|records| records.clone())
    }
}

/// One event's outbound HTTP: the wasi:http context and the hooks that
/// send (or refuse) its requests.
pub(crate) struct HttpImport {
    ctx: WasiHttpCtx,
    hooks: OutboundHooks,
}

impl HttpImport {
    pub(crate) fn new(policy: Arc<OutboundPolicy>, log: RequestLog) -> Self {
        Self {
            ctx: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                policy,
                log,
                sent: 0,
            },
        }
    }
}

struct OutboundHooks {
    policy: Arc<OutboundPolicy>,
    log: RequestLog,
    /// Requests this event has made (sent or refused).
    sent: u32,
}

impl OutboundHooks {
    /// Whether `request` may be sent; a refusal is logged and recorded.
    fn admit(
        &mut self,
        request: &http::Request<WasiBody>,
        url: &str,
    ) -> Result<(AppClient, usize), HttpError> {
        let method = request.method().as_str();
        let refuse = |log: &RequestLog, code: HttpError, why: String| {
            tracing::warn!(target: "ivr_host::outbound", "{method} {url} refused: {why}");
            let index = log.start(method, url.to_owned());
            log.finish(index, None, why, Instant::now());
            Err(code)
        };
        self.sent += 1;
        if self.sent > self.policy.budgets.requests {
            return refuse(
                &self.log,
                HttpError::ConnectionLimitReached,
                format!(
                    "denied: over the {} requests allowed per event",
                    self.policy.budgets.requests
                ),
            );
        }
        let destination = match Destination::of(request.uri()) {
            Ok(destination) => destination,
            Err(why) => return refuse(&self.log, HttpError::HttpRequestUriInvalid, why),
        };
        if !self.policy.allowed.iter().any(|a| a.allows(&destination)) {
            return refuse(
                &self.log,
                HttpError::HttpRequestDenied,
                format!("denied: {destination} is not in allowed_outbound_hosts"),
            );
        }
        let Some(client) = self.policy.client.clone() else {
            return refuse(
                &self.log,
                HttpError::HttpRequestDenied,
                "denied: outbound HTTP is unavailable on this host".into(),
            );
        };
        Ok((client, self.log.start(method, url.to_owned())))
    }
}

type Response = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = Response> + Send> {
        let url = trace_url(request.uri());
        let admitted = self.admit(&request, &url);
        let mut budgets = self.policy.budgets;
        // A guest may ask for shorter timeouts, never longer ones.
        if let Some(first_byte) = options.and_then(|o| o.first_byte_timeout) {
            budgets.request = budgets.request.min(first_byte);
        }
        let log = self.log.clone();
        Box::new(
            async move {
                let (client, index) = admitted?;
                let response = send::send(client, request, budgets, log, index).await?;
                let done: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                    Box::new(async { Ok(()) });
                Ok((response, done))
            }
            .in_current_span(),
        )
    }
}

/// `scheme://host:port/path` of `uri`: what a trace may show (a query
/// string often carries keys, so it never does).
fn trace_url(uri: &http::Uri) -> String {
    let path = uri.path();
    match Destination::of(uri) {
        Ok(destination) => format!("{destination}{path}"),
        Err(_) => format!("(invalid){path}"),
    }
}

impl WasiHttpView for EventCtx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.wasi.table,
            hooks: &mut self.http.hooks,
        }
    }
}
