//! The load driver of bench/run: simulated callers that walk whole
//! bank-menu calls with correct sessionId, eventId and clientActionId
//! threading (generic load tools cannot thread call state).
//!
//!   drive check URL              the branch script; prints every reply
//!   drive calls URL CALLERS SECS closed loop at saturation; prints JSON
//!   drive rate URL RATE SECS RUNS open loop at a fixed rate: RUNS
//!                                consecutive windows of SECS; one JSON
//!                                line per window
//!
//! Latency in `rate` is measured from each event's scheduled send time, so a
//! stalled server is not hidden (no coordinated omission). Its first second
//! runs at the same rate unrecorded: it opens the connections the rate needs
//! (at 18,000 events/s, connection setup alone took the first 100 ms of
//! replies to 60 ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;
// Links the benchmarks' library, and with it mimalloc as this binary's
// allocator (as in the servers).
use ivr_bench::{RATE_WARM_UP_SECS, cpu_seconds, stolen_seconds};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The first call number of this run: runs against the same server never
/// repeat an eventId, so no event is answered from its reply cache.
fn run_base() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        // Calls of one run stay under 10^11 apart.
        (nanos % 1_000_000) as u64 * 100_000_000_000
    })
}

/// One simulated call.
struct Caller {
    id: u64,
    events: u64,
    client_action_id: Option<String>,
}

/// The digits a caller presses, step by step: balance, then goodbye.
const WALK: [Option<&str>; 4] = [None, Some("1"), Some("12345678#"), Some("0")];

impl Caller {
    fn new(id: u64) -> Self {
        Self {
            id,
            events: 0,
            client_action_id: None,
        }
    }

    fn event(&mut self, dtmf: Option<&str>) -> Vec<u8> {
        self.events += 1;
        let (event_id, call_id, session_id) = (
            format!("c{}-e{}", self.id, self.events),
            format!("c{}-leg", self.id),
            format!("bench-call-{}", self.id),
        );
        let envelope = Envelope {
            namespace: "VOICE",
            event_type: "CALL_ACTION",
            description: "Action request of a call",
            payload: Payload {
                event_id: &event_id,
                call_id: &call_id,
                session_id: &session_id,
                sub_account_id: "bench",
                call_status: if self.client_action_id.is_some() {
                    "ACTION_COMPLETED"
                } else {
                    "CALL_RECEIVED"
                },
                call_direction: "INBOUND",
                call_type: "PSTN",
                source: "+6591178965",
                destination: "+6568332048",
                source_format: "MSISDN",
                destination_format: "MSISDN",
                source_country_code: "SG",
                destination_country_code: "SG",
                call_duration: 0,
                sip_code: 200,
                timestamp: "2026-01-13T08:31:51Z",
                client_action_id: self.client_action_id.as_deref(),
                event_data: self.client_action_id.as_ref().map(|_| EventData { dtmf }),
            },
        };
        serde_json::to_vec(&envelope).unwrap_or_default()
    }

    /// Keep the reply's `clientActionId` for the next event (other fields
    /// are skipped, not built into a tree).
    fn absorb(&mut self, reply: &[u8]) {
        #[derive(Deserialize)]
        struct Reply {
            #[serde(rename = "clientActionId")]
            client_action_id: Option<String>,
        }
        self.client_action_id = serde_json::from_slice::<Reply>(reply)
            .ok()
            .and_then(|r| r.client_action_id);
    }
}

/// A VCA webhook as 8x8 posts it (the fields bank-menu and the servers read).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    namespace: &'a str,
    event_type: &'a str,
    description: &'a str,
    payload: Payload<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    event_id: &'a str,
    call_id: &'a str,
    session_id: &'a str,
    sub_account_id: &'a str,
    call_status: &'a str,
    call_direction: &'a str,
    call_type: &'a str,
    source: &'a str,
    destination: &'a str,
    source_format: &'a str,
    destination_format: &'a str,
    source_country_code: &'a str,
    destination_country_code: &'a str,
    call_duration: u32,
    sip_code: u32,
    timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_action_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_data: Option<EventData<'a>>,
}

#[derive(Serialize)]
struct EventData<'a> {
    dtmf: Option<&'a str>,
}

async fn post(client: &HttpClient, url: &str, body: Vec<u8>) -> anyhow::Result<Bytes> {
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    read_reply(client.request(request).await?).await
}

/// The body of a `200`, or an error naming the status.
async fn read_reply(response: hyper::Response<hyper::body::Incoming>) -> anyhow::Result<Bytes> {
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status == 200,
        "status {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(bytes)
}

/// One keep-alive HTTP/1 connection of one simulated caller in the closed
/// loop: a caller has one event in flight at a time, so it needs no pool
/// (a pool's checkout and return cost the driver CPU that B's and A-warm's
/// saturation figures would otherwise be limited by).
struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    authority: String,
    path: String,
}

impl Connection {
    async fn open(url: &hyper::Uri) -> anyhow::Result<Self> {
        let host = url.host().context("the URL names no host")?;
        let stream = tokio::net::TcpStream::connect((host, url.port_u16().unwrap_or(80))).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            authority: url.authority().map(ToString::to_string).unwrap_or_default(),
            path: url.path().to_owned(),
        })
    }

    async fn post(&mut self, body: Vec<u8>) -> anyhow::Result<Bytes> {
        self.sender.ready().await?;
        let request = hyper::Request::post(self.path.as_str())
            .header(hyper::header::HOST, self.authority.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        read_reply(self.sender.send_request(request).await?).await
    }
}

fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector)
}

/// Every branch of the menu, replies printed one per line.
async fn check(url: &str) -> anyhow::Result<()> {
    let client = client();
    let scripts: [&[Option<&str>]; 7] = [
        &[None, Some("1"), Some("12345678#"), Some("1"), Some("0")],
        &[None, Some("2"), None],
        &[None, Some("3"), Some("3"), Some("0")],
        &[None, Some("9"), None, None],
        &[None, Some("1"), Some("12#"), None, Some("123456789")],
        &[None, Some("7"), Some("1"), Some("4321#"), Some("2")],
        &[None, Some("0")],
    ];
    for (n, script) in scripts.iter().enumerate() {
        let mut caller = Caller::new(1_000_000 + n as u64);
        for digits in *script {
            let reply = post(&client, url, caller.event(*digits)).await?;
            caller.absorb(&reply);
            println!("{}", String::from_utf8_lossy(&reply));
        }
    }
    Ok(())
}

/// Closed loop: `callers` concurrent callers for `secs` seconds, each on a
/// connection of its own.
async fn calls(url: &str, callers: u64, secs: u64) -> anyhow::Result<()> {
    let uri: hyper::Uri = url.parse().context("the server URL")?;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let cpu_at_start = cpu_seconds(std::process::id());
    let mut tasks = Vec::new();
    for c in 0..callers {
        let (uri, done, errors, histogram) =
            (uri.clone(), done.clone(), errors.clone(), histogram.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut connection: Option<Connection> = None;
            let mut call = run_base() + c * 1_000_000;
            while Instant::now() < end {
                call += 1;
                let mut caller = Caller::new(call);
                for digits in WALK {
                    if connection.is_none() {
                        connection = Connection::open(&uri).await.ok();
                    }
                    let Some(open) = connection.as_mut() else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        break;
                    };
                    let t = Instant::now();
                    match open.post(caller.event(digits)).await {
                        Ok(reply) => {
                            caller.absorb(&reply);
                            local.record(t.elapsed().as_micros() as u64).ok();
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            connection = None;
                            break;
                        }
                    }
                }
            }
            histogram.lock().await.add(&local).ok();
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = histogram.lock().await;
    let events = done.load(Ordering::Relaxed);
    // The driver's own CPU share: near 1.0, the driver (not the server) set
    // the saturation figure.
    let driver_busy = (cpu_seconds(std::process::id()) - cpu_at_start) / elapsed;
    println!(
        "{}",
        json!({ "events": events, "errors": errors.load(Ordering::Relaxed), "seconds": elapsed,
                "events_per_sec": events as f64 / elapsed, "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99),
                "driver_busy": driver_busy })
    );
    Ok(())
}

/// Wait until `at`, on time to a few microseconds: tokio's timer ticks in
/// milliseconds, which alone would add up to 1 ms of the driver's own
/// lateness to every measured latency. The last stretch yields in a loop
/// (the driver has a CPU of its own), letting replies be read meanwhile.
async fn send_at(at: Instant) {
    const TIMER_SLACK: Duration = Duration::from_millis(2);
    if let Some(early) = at.checked_duration_since(Instant::now())
        && early > TIMER_SLACK
    {
        tokio::time::sleep_until((at - TIMER_SLACK).into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// One measured window of `rate`.
struct Window {
    histogram: Histogram<u64>,
    errors: u64,
}

/// Open loop at `rate` events/s: one unrecorded second (it opens the
/// connections), then `runs` consecutive windows of `secs` seconds, each
/// reported on a line of its own with the time the hypervisor stole from
/// both CPUs during it. Each event is the next step of one of many
/// concurrent calls and counts in the window it was scheduled in.
async fn rate(url: &str, rate: u64, secs: u64, runs: u64) -> anyhow::Result<()> {
    let client = client();
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let warm_up = rate * RATE_WARM_UP_SECS;
    let per_window = (rate * secs).max(1);
    let runs = runs.max(1);
    let total = warm_up + per_window * runs;
    let windows: Arc<Vec<Mutex<Window>>> = Arc::new(
        (0..runs)
            .map(|_| {
                Ok(Mutex::new(Window {
                    histogram: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?,
                    errors: 0,
                }))
            })
            .collect::<anyhow::Result<_>>()?,
    );
    // Failures in the unrecorded second still count (on the first window's line).
    let warm_up_errors = Arc::new(AtomicU64::new(0));
    let stolen_from_both = || stolen_seconds("cpu0") + stolen_seconds("cpu1");
    // The stolen time at each window's scheduled start, and at the end.
    let mut stolen_at = Vec::with_capacity(runs as usize + 1);
    // Callers are reused round-robin; each event continues its caller's call.
    let callers: Vec<Arc<Mutex<Caller>>> = (0..512)
        .map(|i| Arc::new(Mutex::new(Caller::new(run_base() + 9_000_000 + i))))
        .collect();
    let steps: Vec<Arc<AtomicU64>> = (0..512).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let start = Instant::now();
    // Finished events are reaped as the run goes: a kept handle would keep
    // its task's memory, and the driver would grow by ~100,000 of them per
    // run, page-faulting as it went (that put 4-50 ms into its measured p99).
    let mut in_flight = tokio::task::JoinSet::new();
    for n in 0..total {
        let scheduled = start + interval * n as u32;
        send_at(scheduled).await;
        if n >= warm_up && (n - warm_up).is_multiple_of(per_window) {
            stolen_at.push(stolen_from_both());
        }
        while let Some(done) = in_flight.try_join_next() {
            done?;
        }
        let slot = (n % 512) as usize;
        let window = n.checked_sub(warm_up).map(|k| (k / per_window) as usize);
        let (client, url, windows, warm_up_errors, caller, step) = (
            client.clone(),
            url.to_owned(),
            windows.clone(),
            warm_up_errors.clone(),
            callers[slot].clone(),
            steps[slot].clone(),
        );
        in_flight.spawn(async move {
            let mut caller = caller.lock().await;
            let s = step.fetch_add(1, Ordering::Relaxed) as usize % WALK.len();
            if s == 0 {
                let next = caller.id + 512;
                *caller = Caller::new(next);
            }
            let reply = post(&client, &url, caller.event(WALK[s])).await;
            let latency = scheduled.elapsed().as_micros() as u64;
            if let Ok(reply) = &reply {
                caller.absorb(reply);
            }
            if window.is_none() && reply.is_err() {
                warm_up_errors.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(window) = window.and_then(|w| windows.get(w)) {
                let mut window = window.lock().await;
                if reply.is_ok() {
                    window.histogram.record(latency).ok();
                } else {
                    window.errors += 1;
                }
            }
        });
    }
    send_at(start + interval * total as u32).await;
    stolen_at.push(stolen_from_both());
    while let Some(done) = in_flight.join_next().await {
        done?;
    }
    for (i, window) in windows.iter().enumerate() {
        let window = window.lock().await;
        let h = &window.histogram;
        let steal_ms = (stolen_at[i + 1] - stolen_at[i]) * 1e3;
        let warm_up_errors = if i == 0 {
            warm_up_errors.load(Ordering::Relaxed)
        } else {
            0
        };
        println!(
            "{}",
            json!({ "events": h.len(), "sent": per_window, "errors": window.errors, "rate": rate,
                    "p50_us": h.value_at_quantile(0.5), "p99_us": h.value_at_quantile(0.99),
                    "p999_us": h.value_at_quantile(0.999), "max_us": h.max(), "steal_ms": steal_ms,
                    "warm_up_errors": warm_up_errors })
        );
    }
    Ok(())
}

const USAGE: &str = "usage: drive check URL | calls URL CALLERS SECS | rate URL RATE SECS RUNS";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let arg = |i: usize| args.get(i).map(String::as_str).context(USAGE);
    let number = |i: usize| -> anyhow::Result<u64> { arg(i)?.parse().context(USAGE) };
    match arg(1)? {
        "check" => runtime.block_on(check(arg(2)?)),
        "calls" => runtime.block_on(calls(arg(2)?, number(3)?, number(4)?)),
        "rate" => runtime.block_on(rate(arg(2)?, number(3)?, number(4)?, number(5)?)),
        _ => anyhow::bail!(USAGE),
    }
}
