//! Criterion micro-benchmarks of the stages of one event inside ivr-host
//! (A), so a regression can be located: parse, route, instantiate (fresh
//! store + instance), guest run (instantiate + event → WIT + call + reply),
//! validate, serialize. `bench/run-stages` runs them; or
//! `cargo bench -p ivr-bench-runtime` (build the guests first, see
//! bench/README.md).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ivr_bench::{artifact, first_contact};
use ivr_host::apps::routes::RouteTable;
use ivr_host::protocol::event::Webhook;
use ivr_host::protocol::{ReplyLimits, parse_webhook, validate};
use ivr_host::runtime::{CallState, EventContext, GuestLimits, Runtime, RuntimeOptions};

fn stages(c: &mut Criterion) {
    let bytes = std::fs::read(artifact("wasm32-wasip2/release/bank_menu.wasm").expect(
        "the bank-menu component: cargo build --release --target wasm32-wasip2 -p bank-menu",
    ))
    .expect("reading the bank-menu component");
    let body = first_contact(1).to_string();
    let Ok(Webhook::CallAction(event)) = parse_webhook(body.as_bytes()) else {
        panic!("the benchmark's event does not parse");
    };
    let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
    let app = runtime.compile(&bytes).expect("compiling bank-menu");
    let limits = GuestLimits::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config: Arc<BTreeMap<String, String>> = Arc::default();
    let call = || EventContext {
        app: "bank-menu".into(),
        version: "1".into(),
        session_id: event.session_id.clone(),
        state: CallState::new(),
        config: config.clone(),
        secrets: Arc::default(),
        kv: ivr_host::runtime::KvScope::none(),
        outbound: Arc::default(),
        requests: ivr_host::runtime::RequestLog::default(),
    };
    let routes: RouteTable = serde_json::from_str(
        r#"{"default_app":"bank-menu","rules":[{"number":"+6568332048","app":"bank-menu"},{"sub_account":"x","app":"other"}]}"#,
    )
    .expect("route table");
    let flow = rt
        .block_on(runtime.handle_call_action(&app, &event, call(), &limits))
        .result
        .expect("bank-menu answers the first contact");
    let reply_limits = ReplyLimits::default();

    let mut group = c.benchmark_group("event");
    group.bench_function("parse", |b| {
        b.iter(|| parse_webhook(black_box(body.as_bytes())).is_ok())
    });
    group.bench_function("route", |b| {
        b.iter(|| routes.pick(black_box(&event), None).is_some())
    });
    group.bench_function("instantiate", |b| {
        b.iter(|| {
            rt.block_on(runtime.instantiate_only(&app, call(), &limits))
                .is_ok()
        })
    });
    group.bench_function("guest_run", |b| {
        b.iter(|| {
            rt.block_on(runtime.handle_call_action(&app, black_box(&event), call(), &limits))
                .result
                .is_ok()
        })
    });
    group.bench_function("validate", |b| {
        b.iter(|| validate(black_box(&flow), &reply_limits).is_ok())
    });
    group.bench_function("serialize", |b| b.iter(|| black_box(&flow).to_json()));
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
