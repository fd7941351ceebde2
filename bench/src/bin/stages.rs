//! Where an event's time goes inside ivr-host (A), stage by stage, measured
//! in-process on one thread so a regression can be located: parse, route,
//! sandbox (fresh store + instance), the whole guest run (sandbox + event →
//! WIT + call + WIT → reply), validate, serialize.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use ivr_bench::{artifact, first_contact};
use ivr_host::apps::routes::RouteTable;
use ivr_host::protocol::event::Webhook;
use ivr_host::protocol::{ReplyLimits, parse_webhook, validate};
use ivr_host::runtime::{CallState, EventContext, GuestLimits, Runtime, RuntimeOptions};

const ITERATIONS: u32 = 20_000;
const ROUNDS: usize = 5;

/// Median over rounds of the mean time per iteration, in nanoseconds.
fn measure(mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() -> anyhow::Result<()> {
    let bytes = std::fs::read(artifact("wasm32-wasip2/release/bank_menu.wasm")?)?;
    let body = first_contact(1).to_string();
    let Ok(Webhook::CallAction(event)) = parse_webhook(body.as_bytes()) else {
        anyhow::bail!("the event does not parse");
    };
    let runtime = Runtime::new(RuntimeOptions::default())?;
    let app = runtime.compile(&bytes)?;
    let limits = GuestLimits::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config: Arc<BTreeMap<String, String>> = Arc::default();
    let call = || EventContext {
        app: "bank-menu".into(),
        version: "1".into(),
        session_id: event.session_id.clone(),
        state: CallState::new(),
        config: config.clone(),
    };
    let routes: RouteTable = serde_json::from_str(
        r#"{"default_app":"bank-menu","rules":[{"number":"+6568332048","app":"bank-menu"},{"sub_account":"x","app":"other"}]}"#,
    )?;
    let flow = rt
        .block_on(runtime.handle_call_action(&app, &event, call(), &limits))
        .result
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    let reply_limits = ReplyLimits::default();

    let rows = [
        (
            "parse the webhook (bytes → typed event)",
            measure(|| {
                black_box(parse_webhook(black_box(body.as_bytes())).is_ok());
            }),
        ),
        (
            "route (rules → app name)",
            measure(|| {
                black_box(routes.pick(black_box(&event), None));
            }),
        ),
        (
            "sandbox: fresh store + instance, dropped",
            measure(|| {
                black_box(
                    rt.block_on(runtime.instantiate_only(&app, call(), &limits))
                        .is_ok(),
                );
            }),
        ),
        (
            "guest run: sandbox + event → WIT + call + reply",
            measure(|| {
                black_box(
                    rt.block_on(runtime.handle_call_action(&app, &event, call(), &limits))
                        .result
                        .is_ok(),
                );
            }),
        ),
        (
            "validate the reply",
            measure(|| {
                black_box(validate(black_box(&flow), &reply_limits).is_ok());
            }),
        ),
        (
            "serialize the reply",
            measure(|| {
                black_box(flow.to_json());
            }),
        ),
    ];
    println!(
        "## Stages of one event in A (bank-menu first contact, one thread, median of {ROUNDS} × {ITERATIONS})\n"
    );
    println!("| stage | time |");
    println!("| --- | ---: |");
    for (stage, ns) in rows {
        println!("| {stage} | {:.2} µs |", ns / 1000.0);
    }
    Ok(())
}
