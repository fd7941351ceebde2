//! `ivr-host webhooks ...` and `ivr-host call` against a mock of 8x8's
//! Webhooks and Callflows APIs: a real HTTP server started by the test that
//! checks the Bearer key and the request bodies of reference §6/§7 and
//! answers with the documented responses and error shapes.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

const KEY: &str = "test-api-key-secret";
const SUBACCOUNT: &str = "acme_ivr";

/// What the mock received.
#[derive(Default)]
struct Seen {
    requests: Vec<(String, String, Value)>,
    webhooks: Vec<Value>,
}

struct Mock {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

fn respond(request: tiny_http::Request, status: u16, body: Value) {
    let response = tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(
            "Content-Type: application/json"
                .parse::<tiny_http::Header>()
                .unwrap(),
        );
    let _ = request.respond(response);
}

fn start_mock() -> Mock {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let method = request.method().to_string();
            let path = request.url().to_owned();
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let auth = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.to_string());
            let mut seen = state.lock().unwrap();
            seen.requests
                .push((method.clone(), path.clone(), json.clone()));
            if auth.as_deref() != Some(&format!("Bearer {KEY}")) {
                respond(
                    request,
                    401,
                    json!({ "statusCode": 401, "statusMessage": "Authentication header not found or token invalid" }),
                );
                continue;
            }
            let prefix = format!("/api/v1/subaccounts/{SUBACCOUNT}");
            let Some(rest) = path.strip_prefix(&prefix) else {
                respond(
                    request,
                    404,
                    json!({ "statusCode": 404, "statusMessage": format!("SubAccount not found by Id : {path}") }),
                );
                continue;
            };
            let list = |seen: &Seen| {
                json!({ "subAccountId": SUBACCOUNT, "count": seen.webhooks.len(), "webhooks": seen.webhooks,
                        "statusCode": 0, "statusMessage": "ok" })
            };
            match (method.as_str(), rest) {
                ("GET", "/webhooks") => respond(request, 200, list(&seen)),
                ("POST", "/webhooks") => {
                    let kind = json["type"].as_str().unwrap_or_default().to_owned();
                    let url = json["url"].as_str().unwrap_or_default().to_owned();
                    if !["VCA", "VSS", "VCS", "VRU", "VNU"].contains(&kind.as_str())
                        || url.is_empty()
                    {
                        respond(
                            request,
                            422,
                            json!({ "errorId": "4e6c0c43-0000-0000-0000-000000000000", "statusCode": "1001",
                            "statusMessage": "Invalid JSON request body", "timestamp": "2026-01-01T00:00:00Z" }),
                        );
                        continue;
                    }
                    let enabled = json
                        .get("enabled")
                        .or(json.get("active"))
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    let auth_available = json["httpAuthHeader"]
                        .as_str()
                        .is_some_and(|s| !s.is_empty());
                    seen.webhooks.retain(|w| w["type"] != kind.as_str());
                    seen.webhooks.push(json!({ "type": kind, "url": url, "enabled": enabled, "httpAuthHeaderAvailable": auth_available }));
                    respond(request, 200, list(&seen));
                }
                ("DELETE", path) if path.starts_with("/webhooks/") => {
                    let kind = &path["/webhooks/".len()..];
                    match seen.webhooks.iter().position(|w| w["type"] == kind) {
                        Some(i) => {
                            let w = seen.webhooks.remove(i);
                            respond(
                                request,
                                200,
                                json!({ "subAccountId": SUBACCOUNT, "type": kind, "url": w["url"], "enabled": w["enabled"],
                                "httpAuthHeaderAvailable": w["httpAuthHeaderAvailable"], "statusCode": 0, "statusMessage": "deleted" }),
                            );
                        }
                        None => respond(request, 404, Value::Null),
                    }
                }
                ("POST", "/callflows") => {
                    if json["callflow"][0]["action"] != "makeCall" {
                        respond(
                            request,
                            422,
                            json!({ "sessionStatus": "NOT_CREATED", "callFlowRequestId": "767ca1b8-0000",
                            "statusCode": -1013, "statusMessage": "Invalid Callflow : First action should be a MakeCall action" }),
                        );
                    } else if json["callflow"][0]["params"]["destination"] == "+000" {
                        respond(
                            request,
                            400,
                            json!({ "sessionStatus": "NOT_CREATED", "callFlowRequestId": "c6e6dee5-0000",
                            "statusCode": -1017, "statusMessage": "Invalid MSISDN format in Destination" }),
                        );
                    } else {
                        respond(
                            request,
                            200,
                            json!({ "sessionId": "03cc8cac-376b-11ef-a28b-0582ff0039d5", "sessionStatus": "CREATED",
                            "callFlowRequestId": "03cc3e8b-376b-11ef-a28b-4dd5d900ecb3", "statusCode": 1, "statusMessage": "Created" }),
                        );
                    }
                }
                _ => respond(request, 404, Value::Null),
            }
        }
    });
    Mock { base, seen }
}

/// Run the CLI with the mock's account; returns (success, stdout, stderr).
fn cli(mock: &Mock, key: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ivr-host"))
        .args(args)
        .env("IVR_8X8_SUBACCOUNT", SUBACCOUNT)
        .env("IVR_8X8_API_KEY", key)
        .env("IVR_8X8_API_BASE", &mock.base)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn webhooks_are_created_listed_and_deleted() {
    let mock = start_mock();
    let (ok, out, err) = cli(
        &mock,
        KEY,
        &[
            "webhooks",
            "setup",
            "--public-url",
            "https://ivr.example.com/",
            "--auth-header",
            "Basic c2VjcmV0",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("https://ivr.example.com/webhooks/vca")
            && out.contains("https://ivr.example.com/webhooks/vss"),
        "{out}"
    );
    {
        let seen = mock.seen.lock().unwrap();
        let bodies: Vec<&Value> = seen
            .requests
            .iter()
            .filter(|(m, _, _)| m == "POST")
            .map(|(_, _, b)| b)
            .collect();
        assert_eq!(
            bodies[0],
            &json!({ "type": "VCA", "url": "https://ivr.example.com/webhooks/vca", "enabled": true, "httpAuthHeader": "Basic c2VjcmV0" })
        );
        assert_eq!(bodies[1]["type"], "VSS");
    }

    let (ok, out, err) = cli(
        &mock,
        KEY,
        &[
            "webhooks",
            "create",
            "--type",
            "vcs",
            "--url",
            "https://ivr.example.com/webhooks",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("VCS"), "{out}");
    let (ok, out, _) = cli(&mock, KEY, &["webhooks", "list"]);
    assert!(ok);
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("VC") || l.starts_with("VSS"))
            .count(),
        3,
        "{out}"
    );
    assert!(out.contains("VCS   yes      no"), "{out}");

    let (ok, out, err) = cli(&mock, KEY, &["webhooks", "delete", "--type", "VCS"]);
    assert!(ok, "{err}");
    assert!(out.contains("deleted the VCS webhook"), "{out}");
    let (ok, _, err) = cli(&mock, KEY, &["webhooks", "delete", "--type", "VCS"]);
    assert!(!ok);
    assert!(err.contains("HTTP 404"), "{err}");
}

#[test]
fn errors_are_clear_and_never_show_the_key() {
    let mock = start_mock();
    let (ok, _, err) = cli(&mock, "wrong-key", &["webhooks", "list"]);
    assert!(!ok);
    assert!(
        err.contains("HTTP 401") && err.contains("check the API key"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-key"),
        "the key must never be printed: {err}"
    );

    let (ok, _, err) = cli(
        &mock,
        KEY,
        &["webhooks", "create", "--type", "XYZ", "--url", "https://x"],
    );
    assert!(!ok);
    assert!(err.contains("unknown webhook type \"XYZ\""), "{err}");

    // 422 with the documented string statusCode.
    let (ok, _, err) = cli(
        &mock,
        KEY,
        &["webhooks", "create", "--type", "VCA", "--url", ""],
    );
    assert!(!ok);
    assert!(
        err.contains("8x8 status 1001: Invalid JSON request body"),
        "{err}"
    );
    assert!(!err.contains(KEY));

    let output = Command::new(env!("CARGO_BIN_EXE_ivr-host"))
        .args([
            "webhooks",
            "list",
            "--subaccount",
            SUBACCOUNT,
            "--api-key",
            KEY,
            "--api-base",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("cannot reach the 8x8 API at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(!err.contains(KEY));
}

#[test]
fn an_outbound_call_starts_with_make_call_and_reports_the_session() {
    let mock = start_mock();
    let (ok, out, err) = cli(
        &mock,
        KEY,
        &["call", "--from", "+6561115777", "--to", "+6512345678"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("session 03cc8cac-376b-11ef-a28b-0582ff0039d5 (status 1: Created)"),
        "{out}"
    );
    let body = mock.seen.lock().unwrap().requests.last().unwrap().2.clone();
    assert_eq!(
        body["callflow"][0],
        json!({ "action": "makeCall", "params": { "source": "+6561115777", "destination": "+6512345678" } })
    );
    assert_eq!(body["callflow"][1]["action"], "sayAndCapture");
    let flow: ivr_host::protocol::Callflow = serde_json::from_value(body).unwrap();
    ivr_host::protocol::validate(&flow, &Default::default()).unwrap();

    let (ok, _, err) = cli(
        &mock,
        KEY,
        &["call", "--from", "+6561115777", "--to", "+000"],
    );
    assert!(!ok);
    assert!(
        err.contains("8x8 status -1017 (Invalid MSISDN format in Destination)"),
        "{err}"
    );
}

#[test]
fn call_with_app_routes_the_virtual_number_to_it_first() {
    let mock = start_mock();
    let dir = tempfile::tempdir().unwrap();
    let host = common::Host::start_admin(dir.path(), &[]);
    host.deploy("bank", &common::guest("bank-menu"));
    host.deploy("greeter", &common::guest("hello"));
    let admin = ["--admin", host.admin.as_str(), "--token", common::TOKEN];
    let mut args = vec![
        "call",
        "--from",
        "+6561115777",
        "--to",
        "+6512345678",
        "--app",
        "greeter",
    ];
    args.extend(admin);
    let (ok, out, err) = cli(&mock, KEY, &args);
    assert!(ok, "{err}");
    assert!(out.contains("routed +6561115777 to greeter"), "{out}");
    let (_, routes) = host.admin_call("GET", "/routes", None);
    assert_eq!(
        routes["rules"][0],
        json!({ "number": "+6561115777", "app": "greeter" })
    );
    // The VCA after the capture (outbound leg: the VN is the source) reaches greeter.
    let event = json!({ "eventType": "CALL_ACTION", "payload": { "eventId": "out-1", "sessionId": "03cc8cac-376b-11ef-a28b-0582ff0039d5",
        "callStatus": "ACTION_COMPLETED", "callDirection": "OUTBOUND", "source": "+6561115777", "destination": "+6512345678",
        "eventData": { "dtmf": "1" } } });
    assert_eq!(
        host.vca(&event)["callflow"][0]["params"]["text"],
        "Hello from ivr-host. Goodbye!"
    );
    // Calling again changes nothing.
    let (ok, out, _) = cli(&mock, KEY, &args);
    assert!(ok && !out.contains("routed"), "{out}");
}
