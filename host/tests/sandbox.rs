//! The hostile-guest suite: each misbehaviour gets the fallback callflow
//! with the right fault kind recorded, while a well-behaved app served by
//! the same host keeps answering correctly; afterwards the host is healthy
//! and its memory has not grown past a bound.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Call, Host, guest, request};
use serde_json::{Value, json};

const APOLOGY: &str = r#"{"callflow":[{"action":"say","params":{"text":"We are sorry, we cannot take your call right now. Please try again later. Goodbye.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}"#;

/// A host serving bank-menu by default and the misbehaving guest for the
/// subaccount `hostile`.
fn two_app_host(dir: &std::path::Path) -> Host {
    let host = Host::start_admin(dir, &[]);
    host.deploy("good", &guest("bank-menu"));
    host.deploy("hostile", &guest("misbehave"));
    let routes =
        json!({ "default_app": "good", "rules": [{ "sub_account": "hostile", "app": "hostile" }] });
    let (status, body) = host.admin_call("PUT", "/routes", Some(routes.to_string().as_bytes()));
    assert_eq!(status, 200, "{body}");
    host
}

/// Send one hostile event (`digits`) as the second event of a new call;
/// return the raw reply and the log line recording its outcome.
fn hostile_event(host: &Host, digits: &str) -> (String, String) {
    let mut call = Call::new();
    call.client_action_id = Some("start".into());
    let mut event = call.event(Some(digits));
    event["payload"]["subAccountId"] = "hostile".into();
    let (status, body) = host.post("/webhooks/vca", &event.to_string());
    assert_eq!(
        status, 200,
        "{digits}: a fault must never become a non-200: {body}"
    );
    let session = format!("session={} ", call.session_id);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = host.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains(&session) && l.contains("kind="))
        {
            return (body, line.to_owned());
        }
        assert!(
            Instant::now() < deadline,
            "{digits}: no fault recorded for {session}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Keeps driving the well-behaved app and counts wrong answers.
struct Bystander {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    wrong: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bystander {
    fn start(host: &Arc<Host>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let wrong = Arc::new(Mutex::new(Vec::new()));
        let (h, s, a, w) = (host.clone(), stop.clone(), answered.clone(), wrong.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let mut call = Call::new();
                let first = call.step(&h, None);
                let again = call.step(&h, Some("3"));
                for (reply, id) in [(&first, "main-1"), (&again, "main-1")] {
                    if reply["clientActionId"] != id
                        || reply["callflow"][0]["action"] != "sayAndCapture"
                    {
                        w.lock().unwrap().push(reply.to_string());
                    }
                }
                a.fetch_add(2, Ordering::Relaxed);
            }
        });
        Self {
            stop,
            answered,
            wrong,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("bystander thread");
        }
        (
            self.answered.load(Ordering::Relaxed),
            self.wrong.lock().unwrap().clone(),
        )
    }
}

#[test]
fn every_hostile_guest_gets_the_fallback_with_its_fault_kind() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(two_app_host(dir.path()));
    // Warm up, then measure memory before the suite.
    for _ in 0..20 {
        Call::new().step(&host, None);
    }
    let rss_before = host.rss_kib();
    let bystander = Bystander::start(&host);

    let cases = [
        ("loop", "deadline"),
        ("memory", "memory"),
        ("recurse", "trap"),
        ("panic", "trap"),
        ("many-actions", "invalid_reply"),
        ("huge-text", "invalid_reply"),
        ("invalid", "invalid_reply"),
        ("three-calls", "invalid_reply"),
        ("max-digits-99", "invalid_reply"),
        ("error", "app_error"),
        ("read-file", "trap"),
        ("read-env", "trap"),
        ("list-args", "trap"),
        ("open-socket", "trap"),
        ("resolve-name", "trap"),
        ("log-flood", "log_flood"),
        ("print-flood", "log_flood"),
        ("sleep-loop", "deadline"),
        ("sleep-long", "deadline"),
    ];
    // The suite runs twice; the host may grow by at most 32 MiB in all and
    // 16 MiB in the second round.
    let mut rss_after_round = Vec::new();
    for round in 1..=2 {
        let mut report = Vec::new();
        for (digits, kind) in cases {
            let started = Instant::now();
            let (reply, line) = hostile_event(&host, digits);
            report.push(format!("{digits}: {} ms", started.elapsed().as_millis()));
            assert_eq!(reply, APOLOGY, "{digits}");
            assert!(
                line.contains(&format!("kind=\"{kind}\"")),
                "{digits}: expected {kind} in {line}"
            );
        }
        std::thread::sleep(Duration::from_secs(3)); // let the sleeping guest finish
        rss_after_round.push(host.rss_kib());
        println!("hostile suite round {round}: {}", report.join(", "));
    }

    let (answered, wrong) = bystander.finish();
    assert!(
        answered > 20,
        "the well-behaved app answered only {answered} events during the suite"
    );
    assert!(
        wrong.is_empty(),
        "{} wrong replies from the well-behaved app, first: {}",
        wrong.len(),
        wrong[0]
    );

    let log = host.log();
    assert!(
        log.contains("stack overflow") || log.contains("call stack exhausted"),
        "stack overflow named"
    );
    assert!(
        log.contains("reading a host file"),
        "the failed file read is in the trap message"
    );
    assert!(
        log.contains("callflow: has 10001 actions; at most 32 are allowed"),
        "the broken rule is named"
    );
    assert!(log.contains("callflow[0].params.text: must be at most 3000 characters"));
    assert!(
        log.contains("guest log output over the per-event limit"),
        "the log flood is cut with a marker"
    );

    // Healthy, and memory bounded.
    let (status, _) = request("GET", &format!("{}/healthz", host.webhooks), None, &[]);
    assert_eq!(status, 200);
    let (first, second) = (rss_after_round[0], rss_after_round[1]);
    println!(
        "host RSS: before {rss_before} KiB, after round 1 {first} KiB, after round 2 {second} KiB"
    );
    assert!(
        second < rss_before + 32 * 1024,
        "RSS grew from {rss_before} KiB to {second} KiB over the suite"
    );
    assert!(
        second < first + 16 * 1024,
        "RSS grew from {first} KiB to {second} KiB in the second round"
    );
}

/// Every event starts from pristine guest memory: pages are kept resident
/// between instances for speed, but what one event wrote (statics, the
/// data segment) is never seen by the next, also after a trap or a memory
/// bomb in between.
/// Times the host's epoch ticker thread has been switched out so far.
fn ticker_wakeups(host: &Host) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{}/task", host.pid())).expect("task list");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "ivr-epoch-ticke" {
            let status = std::fs::read_to_string(task.path().join("status")).expect("status");
            return status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    panic!("no epoch ticker thread in the host");
}

#[test]
fn an_idle_host_stops_ticking_and_still_enforces_the_run_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let host = two_app_host(dir.path());
    Call::new().step(&host, None);
    // 100 ticks (~100 ms) after the last guest the ticker parks.
    std::thread::sleep(Duration::from_millis(400));
    let before = ticker_wakeups(&host);
    std::thread::sleep(Duration::from_millis(500));
    let idle = ticker_wakeups(&host) - before;
    assert!(
        idle <= 5,
        "the epoch ticker woke {idle} times in 500 ms with no guest running"
    );

    // A spinning guest after the idle spell is stopped by the epoch deadline
    // (the ticker was woken), not left spinning on the worker.
    let started = Instant::now();
    let (reply, line) = hostile_event(&host, "loop");
    assert_eq!(reply, APOLOGY);
    assert!(
        line.contains("kind=\"deadline\"") && line.contains("run-time limit"),
        "{line}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the looping guest ran for {:?}",
        started.elapsed()
    );

    // Under load it ticks: a busy guest keeps it awake.
    let before = ticker_wakeups(&host);
    let _ = hostile_event(&host, "loop");
    assert!(
        ticker_wakeups(&host) - before >= 50,
        "the ticker did not tick while a guest ran for 100 ms"
    );
}

#[test]
fn every_event_sees_fresh_memory() {
    let dir = tempfile::tempdir().unwrap();
    let host = two_app_host(dir.path());
    let remember = |host: &Host| {
        let mut call = Call::new();
        call.client_action_id = Some("start".into());
        let mut event = call.event(Some("remember"));
        event["payload"]["subAccountId"] = "hostile".into();
        let (status, body) = host.post("/webhooks/vca", &event.to_string());
        assert_eq!(status, 200, "{body}");
        body
    };
    for round in 0..30 {
        let body = remember(&host);
        assert!(
            body.contains("events seen 1, dirty bytes 0"),
            "round {round}: an event saw an earlier event's memory: {body}"
        );
        if round % 10 == 5 {
            hostile_event(&host, "memory");
            hostile_event(&host, "panic");
        }
    }
}

/// Send `digits` to the hostile app as the second event of a new call; the reply.
fn hostile_reply(host: &Host, digits: &str) -> String {
    let mut call = Call::new();
    call.client_action_id = Some("start".into());
    let mut event = call.event(Some(digits));
    event["payload"]["subAccountId"] = "hostile".into();
    let (status, body) = host.post("/webhooks/vca", &event.to_string());
    assert_eq!(status, 200, "{body}");
    body
}

/// The opt-in warm-instance mode's isolation rules: an instance answers at
/// most `warm_instance_events` events, only of the app version it was made
/// for, and never one more after a fault; events stay sequential per
/// instance, and per-call state stays per call.
#[test]
fn warm_instances_are_bounded_and_never_reused_after_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let host = two_app_host(dir.path());
    let settings = json!({ "warm_instance_events": 3 });
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/hostile/settings",
        Some(settings.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let seen = |host: &Host| -> u32 {
        let body = hostile_reply(host, "remember");
        let n = body
            .split("events seen ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok());
        n.unwrap_or_else(|| panic!("no count in {body}"))
    };

    // Reused, up to 3 events per instance, then a fresh one.
    let counts: Vec<u32> = (0..7).map(|_| seen(&host)).collect();
    assert_eq!(counts, [1, 2, 3, 1, 2, 3, 1]);

    // A fault discards the instance: the next event starts fresh.
    assert_eq!(seen(&host), 2);
    hostile_event(&host, "panic");
    assert_eq!(seen(&host), 1, "an instance was reused after a trap");
    assert_eq!(seen(&host), 2);
    hostile_event(&host, "error");
    assert_eq!(seen(&host), 1, "an instance was reused after an app error");
    hostile_event(&host, "loop");
    assert_eq!(seen(&host), 1, "an instance was reused after its deadline");

    // A new version (the same code with a custom section appended: a new
    // sha256) never gets an instance of the old one.
    assert_eq!(seen(&host), 2);
    let mut version_two = std::fs::read(guest("misbehave")).unwrap();
    version_two.extend_from_slice(&[0, 6, 5, b'i', b'v', b'r', b'-', b'2']);
    let file = dir.path().join("misbehave-v2.wasm");
    std::fs::write(&file, version_two).unwrap();
    host.deploy("hostile", &file);
    assert_eq!(seen(&host), 1, "an instance outlived its version");

    // Per-call state is still the host's, per call.
    let saved = hostile_reply(&host, "state-then-ok");
    assert!(saved.contains("Saved"), "{saved}");
    let read = hostile_reply(&host, "read-state");
    assert!(read.contains("State holds nothing"), "{read}");

    // Off again: a fresh instance per event.
    let (status, body) = host.admin_call("PUT", "/apps/hostile/settings", Some(b"{}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!((seen(&host), seen(&host)), (1, 1));
}

#[test]
fn per_app_limits_and_fallback_apply() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(two_app_host(dir.path()));
    let settings = json!({
        "guest_time_ms": 30,
        "max_concurrent": 1,
        "fallback": { "callflow": [
            { "action": "say", "params": { "text": "Please hold for an operator.", "voiceProfile": "en-GB-Emma" } },
            { "action": "makeCall", "params": { "source": "+6561110000", "destination": "+6560009999" } }
        ] }
    });
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/hostile/settings",
        Some(settings.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let operator = json!({ "callflow": [
        { "action": "say", "params": { "text": "Please hold for an operator.", "voiceProfile": "en-GB-Emma" } },
        { "action": "makeCall", "params": { "source": "+6561110000", "destination": "+6560009999" } }
    ] });

    let started = Instant::now();
    let (reply, line) = hostile_event(&host, "loop");
    assert_eq!(serde_json::from_str::<Value>(&reply).unwrap(), operator);
    assert!(line.contains("kind=\"deadline\""), "{line}");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the 30 ms limit applies"
    );

    // One event at a time for this app: concurrent ones are turned away.
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || hostile_event(&host, "sleep-long"))
        })
        .collect();
    let lines: Vec<String> = workers.into_iter().map(|w| w.join().unwrap().1).collect();
    assert!(
        lines.iter().any(|l| l.contains("kind=\"overloaded\"")),
        "{lines:#?}"
    );
    // The other app is not affected.
    assert_eq!(Call::new().step(&host, None)["clientActionId"], "main-1");

    // Invalid settings are refused with a reason.
    for (settings, reason) in [
        (
            r#"{"warm_instance_events":0}"#,
            "warm_instance_events must be greater than zero",
        ),
        (
            r#"{"warm_instance_events":10001}"#,
            "warm_instance_events 10001 is over 10000",
        ),
    ] {
        let (status, body) =
            host.admin_call("PUT", "/apps/hostile/settings", Some(settings.as_bytes()));
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["detail"], reason, "{body}");
    }
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/hostile/settings",
        Some(br#"{"fallback":{"callflow":[{"action":"hangup"},{"action":"hangup"}]}}"#),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("fallback: callflow[0]"),
        "{body}"
    );
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/hostile/settings",
        Some(br#"{"guest_memory_mib": 4096}"#),
    );
    assert_eq!(status, 422, "{body}");
    let (status, body) = host.admin_call("GET", "/apps/hostile/settings", None);
    assert_eq!((status, body["guest_time_ms"].as_u64()), (200, Some(30)));
}

#[test]
fn fuel_metering_reports_a_deterministic_cost_per_event() {
    let app = format!("bank={}", guest("bank-menu").display());
    let host = Host::start_with_env(&["--app", &app, "--fuel"], &[("IVR_LOG", "debug")]);
    let costs: Vec<u64> = (0..3)
        .map(|_| {
            let mut call = Call::new();
            call.step(&host, None);
            let session = format!("session={} ", call.session_id);
            let log = host.log();
            let line = log
                .lines()
                .find(|l| l.contains(&session) && l.contains("answered"))
                .unwrap_or_else(|| panic!("no answered line for {session}"));
            line.split_whitespace()
                .find_map(|w| w.strip_prefix("fuel="))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no fuel figure in {line}"))
        })
        .collect();
    assert!(costs[0] > 1000, "{costs:?}");
    assert!(
        costs.iter().all(|c| *c == costs[0]),
        "the same event costs the same: {costs:?}"
    );
}

/// Idle warm instances hold slots of the instance pool. A version that is
/// replaced (and so answers only its calls in progress) gives them back: in
/// a pool of 2, replaced versions never starve the active one — and without
/// retirement the same pool is exhausted.
#[tokio::test]
async fn replaced_versions_give_their_warm_instances_back() {
    use ivr_host::protocol::{CallAction, Webhook, parse_webhook};
    use ivr_host::runtime::{
        CallState, CompiledApp, EventContext, GuestLimits, Runtime, RuntimeOptions,
    };

    let runtime = Runtime::new(RuntimeOptions {
        max_concurrent_instances: 2,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let bytes = std::fs::read(guest("misbehave")).unwrap();
    let body = json!({ "eventType": "CALL_ACTION", "payload": {
        "eventId": "e1", "sessionId": "s1", "clientActionId": "start",
        "eventData": { "dtmf": "remember" } } });
    let Ok(Webhook::CallAction(event)) = parse_webhook(body.to_string().as_bytes()) else {
        panic!("the event does not parse");
    };
    let limits = GuestLimits {
        warm_events: 100,
        ..GuestLimits::default()
    };
    async fn answer(
        runtime: &Runtime,
        version: &CompiledApp,
        event: &CallAction,
        limits: &GuestLimits,
    ) -> Result<(), String> {
        let call = EventContext {
            app: "app".into(),
            version: "v".into(),
            session_id: "s1".into(),
            state: CallState::new(),
            config: Arc::default(),
            secrets: Arc::default(),
            kv: ivr_host::runtime::KvScope::none(),
            outbound: Arc::default(),
            requests: ivr_host::runtime::RequestLog::default(),
        };
        let outcome = runtime
            .handle_call_action(version, event, call, limits)
            .await;
        outcome
            .result
            .map(|_| ())
            .map_err(|fault| fault.to_string())
    }

    // Three versions in turn, each replacing the last.
    let mut previous: Option<CompiledApp> = None;
    for round in 0..3 {
        let version = runtime.compile(&bytes).unwrap();
        if let Some(replaced) = previous.take() {
            replaced.retire_warm_instances();
            // A call still pinned to it is answered, and keeps nothing.
            assert!(answer(&runtime, &replaced, &event, &limits).await.is_ok());
        }
        let outcome = answer(&runtime, &version, &event, &limits).await;
        assert!(outcome.is_ok(), "round {round}: {outcome:?}");
        previous = Some(version);
    }

    // The control: versions that are not retired keep their idle instance,
    // and the third one finds the pool exhausted.
    let kept: Vec<CompiledApp> = (0..2).map(|_| runtime.compile(&bytes).unwrap()).collect();
    if let Some(last) = previous.take() {
        last.retire_warm_instances();
    }
    for version in &kept {
        assert!(answer(&runtime, version, &event, &limits).await.is_ok());
    }
    let starved = runtime.compile(&bytes).unwrap();
    assert!(
        answer(&runtime, &starved, &event, &limits).await.is_err(),
        "the pool of 2 should be held by the two idle warm instances"
    );
    kept[0].drop_warm_instances();
    assert!(answer(&runtime, &starved, &event, &limits).await.is_ok());
}
