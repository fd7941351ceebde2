//! Session summaries (VSS) and call traces over real HTTP: summaries stored
//! durably (also across kill -9), repeated deliveries stored once, the app's
//! summary export called on the version that answered the call, traces of
//! every event type, the webhook auth header.

mod common;

use std::time::{Duration, Instant};

use common::{Call, Host, guest, misbehave_host, request, trace_until};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/reference/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A VSS for `session` (the reference's inbound example, re-keyed).
fn summary_for(session: &str) -> Value {
    let mut vss = fixture("vss_inbound_completed");
    vss["payload"]["sessionId"] = session.into();
    vss
}

#[test]
fn a_call_trace_holds_every_event_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("bank", &guest("bank-menu"));
    let mut call = Call::new();
    call.step(&host, None);
    call.step(&host, Some("9"));
    // A call-status event and a recording event for the same session.
    let status_event = json!({ "eventType": "CALL_STATUS", "payload": { "eventId": "st-1", "sessionId": call.session_id, "callStatus": "CALL_CONNECTED" } });
    assert_eq!(
        host.post("/webhooks", &status_event.to_string()),
        (200, "{}".into())
    );
    let mut vru = fixture("vru_recording_uploaded");
    vru["payload"]["sessionId"] = call.session_id.clone().into();
    assert_eq!(host.post("/webhooks", &vru.to_string()), (200, "{}".into()));
    let (status, body) = host.post("/webhooks/vss", &summary_for(&call.session_id).to_string());
    assert_eq!((status, body.as_str()), (200, "{}"));

    let trace = trace_until(&host, &call.session_id, |t| {
        t["events"].as_array().is_some_and(|e| e.len() == 5)
    });
    assert_eq!(trace["status"], "COMPLETED");
    assert_eq!(trace["app"], "bank");
    assert_eq!(trace["version"], 1);
    let events = trace["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "CALL_ACTION",
            "CALL_ACTION",
            "CALL_STATUS",
            "CALL_RECORDING_STATUS",
            "SESSION_SUMMARY"
        ]
    );
    assert_eq!(events[0]["reply"]["clientActionId"], "main-1");
    assert_eq!(events[1]["reply"]["clientActionId"], "main-2");
    assert_eq!(events[1]["request"]["payload"]["eventData"]["dtmf"], "9");
    assert!(events[0]["elapsed_us"].as_u64().is_some());
    assert_eq!(trace["summary"]["details"]["callA"]["callDuration"], 16);

    // Listed, filtered.
    let (_, listed) = host.admin_call("GET", "/sessions?status=COMPLETED&app=bank", None);
    let listed_call = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == call.session_id.as_str())
        .expect("the call is listed");
    assert_eq!(
        listed_call["event_count"], 5,
        "every event counted, also when several arrive in one trace batch"
    );
    let (status, stats) = host.admin_call("GET", "/stats", None);
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["trace_records_dropped"], 0);
    assert!(stats["calls_pinned"].as_u64().is_some(), "{stats}");
    let (_, none) = host.admin_call("GET", "/sessions?status=BUSY", None);
    assert!(none["sessions"].as_array().unwrap().is_empty());
    let (status, _) = host.admin_call("GET", "/sessions?limit=zero", None);
    assert_eq!(status, 400);
    let (status, _) = host.admin_call("GET", "/sessions/no-such-session", None);
    assert_eq!(status, 404);

    // The CLI shows the same.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
        .args([
            "sessions",
            "list",
            "--admin",
            &host.admin,
            "--token",
            common::TOKEN,
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains(&call.session_id) && out.contains("COMPLETED") && out.contains("bank v1"),
        "{out}"
    );
}

#[test]
fn error_summaries_show_the_code_and_its_meaning_and_tolerate_variants() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    let mut error = fixture("vss_error");
    assert_eq!(host.post("/webhooks/vss", &error.to_string()).0, 200);
    // errorCode as a string, a leg keyed CallA with "SourceRefId": "null", unknown values.
    error["payload"]["sessionId"] = "error-as-string".into();
    error["payload"]["errorDetails"]["errorCode"] = "-2005".into();
    error["payload"]["sessionStatus"] = "SOMETHING_NEW".into();
    let leg = error["payload"]["details"]["callA"].take();
    error["payload"]["details"] = json!({ "CallA": leg });
    error["payload"]["details"]["CallA"]["SourceRefId"] = "null".into();
    assert_eq!(host.post("/webhooks", &error.to_string()).0, 200);

    let first = trace_until(&host, "47f19e66-2163-11ee-8ccd-27b543a164ea", |t| {
        t["summary"].is_object()
    });
    assert_eq!(first["status"], "ERROR");
    assert_eq!(first["error_code"], -2004);
    assert_eq!(
        first["error_meaning"],
        "No coverage available for requested area"
    );
    let second = trace_until(&host, "error-as-string", |t| t["summary"].is_object());
    assert_eq!(
        (second["status"].as_str(), second["error_code"].as_i64()),
        (Some("SOMETHING_NEW"), Some(-2005))
    );
    assert_eq!(
        second["error_meaning"],
        "Unable to synthesize text to speech"
    );

    // Malformed summaries are refused, naming the field.
    let mut bad = fixture("vss_error");
    bad["payload"].as_object_mut().unwrap().remove("sessionId");
    let (status, body) = host.post("/webhooks/vss", &bad.to_string());
    assert_eq!(status, 400);
    assert!(body.contains("payload.sessionId is missing"), "{body}");
    let (status, body) = host.post(
        "/webhooks/vss",
        r#"{"eventType":"SESSION_SUMMARY","payload":{"sessionId":"x","callCount":"many"}}"#,
    );
    assert_eq!(status, 400);
    assert!(body.contains("payload.callCount"), "{body}");
}

#[test]
fn the_summary_reaches_the_version_that_answered_the_call_once() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    let mut call = Call::new();
    call.client_action_id = Some("start".into());
    host.vca(&call.event(Some("state-then-ok")));
    host.deploy("app", &guest("hello")); // v2 answers new calls from now on

    let vss = summary_for(&call.session_id);
    for _ in 0..3 {
        assert_eq!(
            host.post("/webhooks/vss", &vss.to_string()),
            (200, "{}".into())
        );
    }
    let heard = format!(
        "summary heard: session {} ended COMPLETED with state by a good event",
        call.session_id
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host.log().contains(&heard) {
        assert!(
            Instant::now() < deadline,
            "the summary export was not called:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A stop finishes every summary delivery in progress: after it, the log
    // holds every delivery there ever was.
    let mut host = host;
    host.terminate();
    assert!(
        host.wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
    let log = host.log();
    let line = log.lines().find(|l| l.contains(&heard)).unwrap();
    assert!(line.contains("version=\"1\""), "heard by version 1: {line}");
    assert_eq!(
        log.matches(&heard).count(),
        1,
        "a repeated summary is not handed over again"
    );
    drop(host);
    let host = Host::start_admin(dir.path(), &[]);
    let trace = trace_until(&host, &call.session_id, |t| {
        t["events"].as_array().is_some_and(|e| e.len() == 2)
    });
    assert_eq!(trace["events"][1]["version"], 1);

    // The call ended: its pin and state are released.
    let mut late = call.event(Some("read-state"));
    late["payload"]["eventId"] = "after-the-end".into();
    let reply = host.vca(&late);
    assert_eq!(
        reply["callflow"][0]["params"]["text"], "Hello from ivr-host. Goodbye!",
        "routed afresh to v2"
    );
}

#[test]
fn a_summary_acknowledged_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    let vss = summary_for("durable-session");
    assert_eq!(
        host.post("/webhooks/vss", &vss.to_string()),
        (200, "{}".into())
    );
    host.kill();
    let host = Host::start_admin(dir.path(), &[]);
    let (status, trace) = host.admin_call("GET", "/sessions/durable-session", None);
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["summary"]["sessionId"], "durable-session");
    assert_eq!(trace["status"], "COMPLETED");
}

#[test]
fn the_webhook_auth_header_is_required_when_configured() {
    let app = format!("hello={}", guest("hello").display());
    let host = Host::start_with_env(
        &["--app", &app],
        &[("IVR_WEBHOOK_AUTH_HEADER", "Basic dXNlcjpwYXNz")],
    );
    let event = Call::new().event(None).to_string();
    let url = format!("{}/webhooks/vca", host.webhooks);
    let (status, body) = request("POST", &url, Some(event.as_bytes()), &[]);
    assert_eq!(status, 401, "{body}");
    let (status, _) = request(
        "POST",
        &url,
        Some(event.as_bytes()),
        &[("authorization", "Basic wrong")],
    );
    assert_eq!(status, 401);
    let (status, body) = request(
        "POST",
        &url,
        Some(event.as_bytes()),
        &[("authorization", "Basic dXNlcjpwYXNz")],
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = request("GET", &format!("{}/healthz", host.webhooks), None, &[]);
    assert_eq!(status, 200, "health checks need no auth");

    let open = Host::start_admin(&tempfile::tempdir().unwrap().keep(), &["--app", &app]);
    let vnu = json!({ "namespace": "VOICE", "eventType": "VIRTUAL_NUMBER_UPDATE", "payload": {
        "subAccountId": "acme", "totalNumbers": 1, "updateEventType": "UPDATES", "virtualNumbers": [] } });
    assert_eq!(open.post("/webhooks", &vnu.to_string()), (200, "{}".into()));
    let trace = trace_until(&open, "VIRTUAL_NUMBER_UPDATE:acme", |t| {
        t["events"].as_array().is_some_and(|e| e.len() == 1)
    });
    assert_eq!(trace["events"][0]["request"]["payload"]["totalNumbers"], 1);
    assert!(
        open.log().contains("no webhook auth header is configured"),
        "a warning when open"
    );
}
