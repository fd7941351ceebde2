//! The webhook listener over real HTTP: bad input gets a clear answer and
//! changes nothing; faults inside a guest become the fallback callflow;
//! other event types are acknowledged.

mod common;

use common::{Call, Host, guest, raw_request, request};
use serde_json::{Value, json};

const FALLBACK: &str = r#"{"callflow":[{"action":"say","params":{"text":"We are sorry, we cannot take your call right now. Please try again later. Goodbye.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}"#;

fn hello_host() -> Host {
    Host::start(&["--app", &format!("hello={}", guest("hello").display())])
}

fn hello_reply() -> Value {
    json!({ "callflow": [
        { "action": "say", "params": { "text": "Hello from ivr-host. Goodbye!", "voiceProfile": "en-US-ZiraRUS" } },
        { "action": "hangup" }
    ] })
}

/// A normal request still works (the bad one changed nothing).
fn still_serves(host: &Host) {
    let mut call = Call::new();
    assert_eq!(call.step(host, None), hello_reply());
}

fn error_json(text: &str) -> Value {
    let value: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    assert!(
        value["error"].is_string() && value["detail"].is_string(),
        "{value}"
    );
    value
}

#[test]
fn hello_answers_any_call() {
    let host = hello_host();
    still_serves(&host);
    let fixture = format!(
        "{}/tests/fixtures/reference/vca_action_completed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (status, body) = host.post("/webhooks/vca", &std::fs::read_to_string(fixture).unwrap());
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), hello_reply());
}

#[test]
fn the_printed_seed_sample_gets_400_and_changes_nothing() {
    let host = hello_host();
    let fixture = format!(
        "{}/tests/fixtures/reference/vca_seed_printed_sample_invalid.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (status, body) = host.post("/webhooks/vca", &std::fs::read_to_string(fixture).unwrap());
    assert_eq!(status, 400);
    assert!(
        error_json(&body)["detail"]
            .as_str()
            .unwrap()
            .starts_with("body is not valid JSON"),
        "{body}"
    );
    still_serves(&host);
}

#[test]
fn a_missing_session_id_gets_400_naming_it() {
    let host = hello_host();
    let mut event = Call::new().event(None);
    event["payload"]
        .as_object_mut()
        .unwrap()
        .remove("sessionId");
    let (status, body) = host.post("/webhooks/vca", &event.to_string());
    assert_eq!(status, 400);
    assert_eq!(error_json(&body)["detail"], "payload.sessionId is missing");
    still_serves(&host);
}

#[test]
fn a_body_over_64_kib_gets_413() {
    let host = hello_host();
    let mut event = Call::new().event(None);
    event["payload"]["padding"] = "x".repeat(65 * 1024).into();
    let (status, body) = host.post("/webhooks/vca", &event.to_string());
    assert_eq!(status, 413);
    error_json(&body);
    still_serves(&host);

    // Without a Content-Length (chunked), the limit holds too.
    let chunk = "x".repeat(70 * 1024);
    let raw = format!(
        "POST /webhooks/vca HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let response = raw_request(&host.webhooks, raw.as_bytes());
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    still_serves(&host);
}

#[test]
fn wrong_methods_get_405_and_unknown_paths_404() {
    let host = hello_host();
    for path in ["/webhooks/vca", "/webhooks/vss", "/webhooks"] {
        let (status, body) = request("GET", &format!("{}{path}", host.webhooks), None, &[]);
        assert_eq!(status, 405, "GET {path}");
        error_json(&body);
    }
    let (status, _) = request(
        "POST",
        &format!("{}/healthz", host.webhooks),
        Some(b"{}"),
        &[],
    );
    assert_eq!(status, 405);
    let (status, body) = request("GET", &format!("{}/nope", host.webhooks), None, &[]);
    assert_eq!(status, 404);
    error_json(&body);
    still_serves(&host);
}

#[test]
fn health_checks_answer_on_both_listeners() {
    let host = hello_host();
    for base in [&host.webhooks, &host.admin] {
        let (status, body) = request("GET", &format!("{base}/healthz"), None, &[]);
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"status":"ok"}"#),
            "{base}"
        );
    }
}

#[test]
fn other_event_types_are_acknowledged_without_a_callflow() {
    let host = hello_host();
    let fixtures = format!("{}/tests/fixtures/reference", env!("CARGO_MANIFEST_DIR"));
    let status_event = json!({ "namespace": "VOICE", "eventType": "CALL_STATUS", "description": "Status update of a call",
        "payload": { "eventId": "x", "sessionId": "s", "callStatus": "CALL_RECEIVED", "callDirection": "INBOUND" } });
    let vss = std::fs::read_to_string(format!("{fixtures}/vss_inbound_completed.json")).unwrap();
    let vru = std::fs::read_to_string(format!("{fixtures}/vru_recording_uploaded.json")).unwrap();
    for (path, body) in [
        ("/webhooks/vca", status_event.to_string()),
        ("/webhooks/vss", vss),
        ("/webhooks", vru),
    ] {
        let (status, reply) = host.post(path, &body);
        assert_eq!((status, reply.as_str()), (200, "{}"), "{path}");
    }
}

fn misbehave_host() -> Host {
    Host::start(&[
        "--app",
        &format!("misbehave={}", guest("misbehave").display()),
    ])
}

/// Send a call's second event with `digits` and return the raw reply.
fn press(host: &Host, digits: &str) -> String {
    let mut call = Call::new();
    call.client_action_id = Some("start".into());
    let (status, body) = host.post("/webhooks/vca", &call.event(Some(digits)).to_string());
    assert_eq!(status, 200, "a fault must never become a non-200: {body}");
    body
}

#[test]
fn guest_faults_get_the_fallback_callflow_with_the_reason_logged() {
    let host = misbehave_host();
    for (digits, kind) in [
        ("panic", "trap"),
        ("error", "app_error"),
        ("invalid", "invalid_reply"),
        ("loop", "deadline"),
        ("memory", "memory"),
    ] {
        assert_eq!(press(&host, digits), FALLBACK, "{digits}");
        let log = host.log();
        assert!(
            log.contains(&format!("kind=\"{kind}\"")) || log.contains(&format!("kind={kind}")),
            "{digits}: no {kind} fault in\n{log}"
        );
        // The host keeps serving well-behaved events between faults.
        assert_eq!(
            press(&host, "fine"),
            r#"{"callflow":[{"action":"hangup"}]}"#
        );
    }
    let log = host.log();
    assert!(
        log.contains("deliberate panic"),
        "the panic message is logged"
    );
    assert!(
        log.contains("callflow[0]: hangup must be the last action"),
        "the broken rule is named"
    );
}

#[test]
fn state_is_kept_only_when_the_event_succeeds() {
    let host = misbehave_host();
    let mut call = Call::new();
    call.client_action_id = Some("start".into());
    let say = |text: &str| json!({ "callflow": [{ "action": "say", "params": { "text": text, "voiceProfile": "en-US-ZiraRUS" } }, { "action": "hangup" }] });
    assert_eq!(
        host.vca(&call.event(Some("state-then-error"))).to_string(),
        FALLBACK
    );
    assert_eq!(
        host.vca(&call.event(Some("read-state"))),
        say("State holds nothing.")
    );
    assert_eq!(host.vca(&call.event(Some("state-then-ok"))), say("Saved."));
    assert_eq!(
        host.vca(&call.event(Some("read-state"))),
        say("State holds by a good event.")
    );
    // Another call never sees it.
    let mut other = Call::new();
    other.client_action_id = Some("start".into());
    assert_eq!(
        host.vca(&other.event(Some("read-state"))),
        say("State holds nothing.")
    );
}

#[test]
fn guest_stdout_and_stderr_go_to_the_host_log() {
    let host = misbehave_host();
    press(&host, "print");
    let log = host.log();
    assert!(log.contains("hello from the guest's stdout"), "{log}");
    assert!(log.contains("hello from the guest's stderr"), "{log}");
}

#[test]
fn no_app_loaded_gets_the_fallback() {
    let host = Host::start(&[]);
    assert_eq!(press(&host, "1"), FALLBACK);
    assert!(host.log().contains("no app is deployed"));
}

#[test]
fn an_upload_that_is_not_a_component_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm\x01\0\0\0").unwrap(); // an empty core module
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
        .args(common::SERVE_ON_EPHEMERAL_PORTS)
        .arg(dir.path().join("data"))
        .arg("--app")
        .arg(format!("bogus={}", bogus.display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("loading app \"bogus\"")
            && stderr.contains("not a valid WebAssembly component"),
        "{stderr}"
    );
}

/// The allocator's transparent huge pages are off (each 2 MiB fault stalled
/// a reply by 5–15 ms; `ivr_host::tune_allocator`), unless the operator asks
/// for them.
#[cfg(target_os = "linux")]
#[test]
fn the_host_runs_without_transparent_huge_pages_unless_asked() {
    let thp_enabled = |host: &Host| -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", host.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_owned())
            .expect("THP_enabled in /proc/PID/status (Linux 5.0+)")
    };
    let app = format!("hello={}", guest("hello").display());
    let host = Host::start(&["--app", &app]);
    assert_eq!(thp_enabled(&host), "0");
    assert_eq!(
        host.vca(&Call::new().event(None))["callflow"][0]["action"],
        "say"
    );
    let host = Host::start_with_env(&["--app", &app], &[("MIMALLOC_ALLOW_THP", "1")]);
    assert_eq!(thp_enabled(&host), "1");
}
