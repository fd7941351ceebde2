//! bench/run-outbound: one event that makes one backend request — the bank
//! menu's balance step with `balance_url` set — on ivr-host (A) and on
//! Node.js plain http doing the same `fetch` (C2), side by side in one run,
//! with the backend answering at once and after 50 ms (many calls waiting
//! at once). Servers on CPU 0; this process (load and backend) on CPU 1.
//! Also: an app's first request to a backend (a new connection) against its
//! second (the app's pooled connection).

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ivr_bench::{TOKEN, cpu_seconds};
use serde_json::json;

const SECS: u64 = 4;
const BACKEND_KEY: &str = "bench-balance-key";

struct Server {
    child: Child,
    webhooks: String,
    admin: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_cpu0(program: impl AsRef<std::ffi::OsStr>) -> Command {
    if Command::new("taskset").arg("-V").output().is_ok() {
        let mut command = Command::new("taskset");
        command.args(["-c", "0"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start(mut command: Command) -> anyhow::Result<Server> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(str::to_owned)
    };
    Ok(Server {
        webhooks: field("webhooks=").with_context(|| format!("no address in {line:?}"))?,
        admin: field("admin="),
        child,
    })
}

/// The backend: `{"cents":12345}` after the delay its path names (`/balance/MS`).
async fn backend() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let delay: u64 = request
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .and_then(|d| d.parse().ok())
                            .unwrap_or(0);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            br#"{"cents":12345}"#,
                        ))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The balance step of a new call `n`: one backend request.
fn balance_event(n: u64) -> String {
    json!({ "eventType": "CALL_ACTION", "payload": {
        "eventId": format!("ob-{n}"), "sessionId": format!("ob-session-{n}"),
        "callStatus": "ACTION_COMPLETED", "callDirection": "INBOUND", "callType": "PSTN",
        "source": "+6591178965", "destination": "+6568332048", "subAccountId": "bench",
        "clientActionId": "account-1", "eventData": { "dtmf": "12345678#" },
        "callDuration": 5, "sipCode": 200, "timestamp": "2026-01-13T08:31:51Z" } })
    .to_string()
}

const EXPECTED_TEXT: &str =
    "The balance of the account ending in 5678 is 123 dollars and 45 cents.";
/// The guest's own derivation for 12345678 (no backend): the start of its text.
const DERIVED_TEXT: &str = "The balance of the account ending in 5678 is ";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn post(client: &HttpClient, url: &str, body: String) -> anyhow::Result<(u16, Bytes)> {
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

struct Measured {
    events_per_sec: f64,
    cpu_us: f64,
    p50_ms: f64,
    p99_ms: f64,
    wrong: u64,
}

/// `callers` closed-loop callers for [`SECS`], each event a new call's balance step.
async fn load(
    server: &Server,
    callers: usize,
    base: u64,
    expected: &'static str,
) -> anyhow::Result<Measured> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(callers)
        .build_http();
    let url = format!("{}/webhooks/vca", server.webhooks);
    let next = Arc::new(AtomicU64::new(base));
    let wrong = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECS);
    let cpu_before = cpu_seconds(server.child.id());
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (client, url, next, wrong) = (client.clone(), url.clone(), next.clone(), wrong.clone());
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).expect("histogram");
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                match post(&client, &url, balance_event(n)).await {
                    Ok((200, body)) if String::from_utf8_lossy(&body).contains(expected) => {}
                    other => {
                        if wrong.fetch_add(1, Ordering::Relaxed) == 0 {
                            match other {
                                Ok((status, body)) => eprintln!(
                                    "first wrong answer: {status} {}",
                                    String::from_utf8_lossy(&body)
                                ),
                                Err(err) => eprintln!("first wrong answer: {err:#}"),
                            }
                        }
                    }
                }
                let _ = histogram.record(started.elapsed().as_micros() as u64);
            }
            histogram
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for task in tasks {
        all.add(task.await?)?;
    }
    let cpu = cpu_seconds(server.child.id()) - cpu_before;
    let events = all.len() as f64;
    Ok(Measured {
        events_per_sec: events / SECS as f64,
        cpu_us: cpu * 1e6 / events.max(1.0),
        p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
        wrong: wrong.load(Ordering::Relaxed),
    })
}

fn ivr_host(data: &std::path::Path, balance_url: &str) -> anyhow::Result<Server> {
    let component = ivr_bench::workspace().join("target/wasm32-wasip2/release/bank_menu.wasm");
    let mut command = on_cpu0(ivr_bench::sibling_binary("ivr-host")?);
    command
        .args(ivr_bench::SERVE_ON_EPHEMERAL_PORTS)
        .arg(data)
        .arg("--app")
        .arg(format!("bank-menu={}", component.display()))
        .args(if balance_url.is_empty() {
            vec![]
        } else {
            vec![
                "--app-config".to_owned(),
                format!("bank-menu.balance_url={balance_url}"),
            ]
        })
        .args([
            "--outbound-private-networks",
            "127.0.0.1",
            "--max-instances",
            "600",
        ])
        .env("IVR_ADMIN_TOKEN", TOKEN)
        .env("IVR_LOG", "error");
    let server = start(command)?;
    let origin = balance_url.split("/balance").next().unwrap_or(balance_url);
    let hosts: Vec<&str> = Some(origin).filter(|o| !o.is_empty()).into_iter().collect();
    let settings = json!({ "allowed_outbound_hosts": hosts, "max_concurrent": 560 });
    admin_put(&server, "settings", settings.to_string().as_bytes())?;
    admin_put(&server, "secrets/balance_api_key", BACKEND_KEY.as_bytes())?;
    Ok(server)
}

/// `PUT /apps/bank-menu/{what}` on A's admin API.
fn admin_put(server: &Server, what: &str, body: &[u8]) -> anyhow::Result<()> {
    let admin = server.admin.as_deref().context("no admin address")?;
    let auth = format!("Bearer {TOKEN}");
    let (status, answer) = ivr_bench::http(
        "PUT",
        &format!("{admin}/apps/bank-menu/{what}"),
        Some(body),
        &[("authorization", &auth)],
    )?;
    ensure!(status == 200, "{what}: {status} {answer}");
    Ok(())
}

fn node(balance_url: &str) -> anyhow::Result<Server> {
    let mut command = on_cpu0("node");
    command
        .arg(ivr_bench::workspace().join("bench/node/bank.js"))
        .arg("http")
        .env("BALANCE_URL", balance_url)
        .env("BALANCE_API_KEY", BACKEND_KEY);
    start(command)
}

/// An app's first request to a backend against its second: `rounds` times,
/// a settings change (a new pool) then two events; medians in ms.
async fn first_and_second(
    server: &Server,
    origin: &str,
    rounds: u64,
) -> anyhow::Result<(f64, f64)> {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}/webhooks/vca", server.webhooks);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternating the request budget makes each round's settings new.
        let settings = json!({ "allowed_outbound_hosts": [origin], "max_concurrent": 560,
                               "outbound_request_ms": 2000 + round % 2 });
        admin_put(server, "settings", settings.to_string().as_bytes())?;
        for (k, samples) in [&mut first, &mut second].into_iter().enumerate() {
            let started = Instant::now();
            let (status, _) = post(
                &client,
                &url,
                balance_event(900_000_000 + round * 2 + k as u64),
            )
            .await?;
            ensure!(status == 200, "the event answered {status}");
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((median(&mut first), median(&mut second)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let backend = backend().await?;
    println!(
        "One event with one backend request (the bank menu's balance step; a new call each time), {SECS} s closed loop per row. Servers on CPU 0; load and backend on CPU 1.\n"
    );
    println!("| server | backend delay | callers | events/s | CPU µs/event | p50 | p99 | wrong |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut base = 0;
    // The same event without a backend (the balance derived in the guest):
    // what the request itself costs, side by side.
    {
        let server = ivr_host(&data.path().join("no-backend"), "")?;
        base += 10_000_000;
        let m = load(&server, 64, base, DERIVED_TEXT).await?;
        println!(
            "| A: ivr-host, no backend (balance derived in the app) | — | 64 | {:.0} | {:.1} | {:.2} ms | {:.2} ms | {} |",
            m.events_per_sec, m.cpu_us, m.p50_ms, m.p99_ms, m.wrong
        );
    }
    let mut reuse = None;
    for (delay, callers) in [(0u64, 64usize), (50, 512)] {
        let balance_url = format!("http://127.0.0.1:{}/balance/{delay}", backend.port());
        let servers = [
            (
                "A: ivr-host",
                ivr_host(&data.path().join(format!("a{delay}")), &balance_url)?,
            ),
            ("C2: Node.js http + fetch", node(&balance_url)?),
        ];
        for (name, server) in &servers {
            base += 10_000_000;
            let m = load(server, callers, base, EXPECTED_TEXT).await?;
            println!(
                "| {name} | {delay} ms | {callers} | {:.0} | {:.1} | {:.2} ms | {:.2} ms | {} |",
                m.events_per_sec, m.cpu_us, m.p50_ms, m.p99_ms, m.wrong
            );
        }
        if delay == 0 {
            let origin = format!("http://127.0.0.1:{}", backend.port());
            reuse = Some(first_and_second(&servers[0].1, &origin, 21).await?);
        }
    }
    if let Some((first, second)) = reuse {
        println!(
            "\nA: an app's first request to the backend (a new connection) {first:.2} ms, its second (the app's pooled connection) {second:.2} ms (event round trip, median of 21)."
        );
    }
    Ok(())
}
