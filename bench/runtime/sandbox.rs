//! What the sandbox costs, and what it protects.
//!
//! 1. Epoch interruption on vs off: per-event time of a fresh bank-menu
//!    instance run in-process, the two engines interleaved in one run.
//! 2. Latency of a well-behaved app over HTTP, alone vs while a hostile app
//!    (every event an infinite loop, stopped at its 100 ms deadline) is
//!    driven at its concurrency bound, in one run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ivr_bench::{Host, artifact, first_contact, http};
use ivr_host::protocol::event::{Webhook, parse_webhook};
use ivr_host::runtime::{CallState, EventContext, GuestLimits, Runtime, RuntimeOptions};

const EVENTS_PER_BLOCK: u32 = 5_000;
const BLOCKS: u32 = 5;
const LATENCY_REQUESTS: u64 = 4_000;

fn main() -> anyhow::Result<()> {
    epoch_cost()?;
    latency_under_hostile_load()
}

fn epoch_cost() -> anyhow::Result<()> {
    let bytes = std::fs::read(artifact("wasm32-wasip2/release/bank_menu.wasm")?)?;
    let body = first_contact(1).to_string();
    let Ok(Webhook::CallAction(event)) = parse_webhook(body.as_bytes()) else {
        anyhow::bail!("the benchmark event does not parse");
    };
    let mut engines = Vec::new();
    for epoch in [true, false] {
        let runtime = Runtime::new(RuntimeOptions {
            epoch_interruption: epoch,
            ..RuntimeOptions::default()
        })?;
        let app = runtime.compile(&bytes)?;
        engines.push((epoch, runtime, app));
    }
    let limits = GuestLimits::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut per_event_ns = [Vec::new(), Vec::new()];
    for _ in 0..BLOCKS {
        for (i, (_, runtime, app)) in engines.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..EVENTS_PER_BLOCK {
                let call = EventContext {
                    app: "bank-menu".into(),
                    version: "1".into(),
                    session_id: event.session_id.clone(),
                    state: CallState::new(),
                    config: Arc::default(),
                    secrets: Arc::default(),
                    kv: ivr_host::runtime::KvScope::none(),
                    outbound: Arc::default(),
                    requests: ivr_host::runtime::RequestLog::default(),
                };
                let outcome = rt.block_on(runtime.handle_call_action(app, &event, call, &limits));
                anyhow::ensure!(outcome.result.is_ok(), "the guest failed");
            }
            per_event_ns[i].push(started.elapsed().as_nanos() as f64 / f64::from(EVENTS_PER_BLOCK));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let on = median(&mut per_event_ns[0]) / 1000.0;
    let off = median(&mut per_event_ns[1]) / 1000.0;
    println!(
        "## Epoch interruption (fresh instance + guest call, bank-menu first contact, in-process, one thread)\n"
    );
    println!("| engine | per event (median of {BLOCKS} blocks of {EVENTS_PER_BLOCK}) |");
    println!("| --- | ---: |");
    println!("| epoch interruption on | {on:.2} µs |");
    println!("| epoch interruption off | {off:.2} µs |");
    println!(
        "| cost of the deadline | {:.2} µs ({:+.1} %) |\n",
        on - off,
        (on / off - 1.0) * 100.0
    );
    Ok(())
}

fn measure(host: &Host, requests: u64) -> anyhow::Result<Histogram<u64>> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let url = format!("{}/webhooks/vca", host.webhooks);
    for n in 0..requests {
        let body = first_contact(1_000_000 + n).to_string();
        let started = Instant::now();
        let (status, text) = http("POST", &url, Some(body.as_bytes()), &[])?;
        anyhow::ensure!(
            status == 200 && text.contains("main-1"),
            "wrong reply: {status} {text}"
        );
        histogram.record(started.elapsed().as_micros() as u64)?;
    }
    Ok(histogram)
}

fn latency_under_hostile_load() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Arc::new(Host::start(&dir.path().join("data"))?);
    let deploy = |name: &str, file: &str| -> anyhow::Result<()> {
        let (status, json) = host.admin_call(
            "PUT",
            &format!("/apps/{name}"),
            Some(&std::fs::read(artifact(file)?)?),
        )?;
        anyhow::ensure!(status == 201, "deploy {name}: {status} {json}");
        Ok(())
    };
    deploy("good", "wasm32-wasip2/release/bank_menu.wasm")?;
    deploy("hostile", "wasm32-wasip2/release/misbehave.wasm")?;
    let bound = 2;
    let (status, json) = host.admin_call(
        "PUT",
        "/apps/hostile/settings",
        Some(format!(r#"{{"max_concurrent":{bound}}}"#).as_bytes()),
    )?;
    anyhow::ensure!(status == 200, "{json}");
    let routes = r#"{"default_app":"good","rules":[{"sub_account":"hostile","app":"hostile"}]}"#;
    let (status, json) = host.admin_call("PUT", "/routes", Some(routes.as_bytes()))?;
    anyhow::ensure!(status == 200, "{json}");

    measure(&host, 500)?; // warm up
    let alone = measure(&host, LATENCY_REQUESTS)?;

    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..bound + 2)
        .map(|t| {
            let (host, stop) = (host.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = serde_json::json!({ "eventType": "CALL_ACTION", "payload": {
                        "eventId": format!("attack-{t}-{n}"), "sessionId": format!("attack-{t}-{n}"),
                        "subAccountId": "hostile", "clientActionId": "x", "eventData": { "dtmf": "loop" } } });
                    let _ = http("POST", &format!("{}/webhooks/vca", host.webhooks), Some(body.to_string().as_bytes()), &[]);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let under_attack = measure(&host, LATENCY_REQUESTS)?;
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.join();
    }

    println!(
        "## A well-behaved app's latency over HTTP ({LATENCY_REQUESTS} sequential first-contact events)\n"
    );
    println!(
        "Hostile app: every event loops until its 100 ms deadline; {} client threads keep it at its concurrency bound of {bound}.\n",
        bound + 2
    );
    println!("| condition | p50 | p99 | p99.9 | max |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, h) in [
        ("alone", &alone),
        ("hostile app at its bound", &under_attack),
    ] {
        println!(
            "| {name} | {} µs | {} µs | {} µs | {} µs |",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    println!(
        "| ratio p50 / p99 (hostile ÷ alone) | {:.2}× | {:.2}× | | |",
        under_attack.value_at_quantile(0.5) as f64 / alone.value_at_quantile(0.5) as f64,
        under_attack.value_at_quantile(0.99) as f64 / alone.value_at_quantile(0.99) as f64
    );
    Ok(())
}
