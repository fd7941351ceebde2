//! Deploying and hot-swapping apps on a running host, over real HTTP with
//! real components: pinning, rollback, swaps under load, refused uploads,
//! restarts (graceful and kill -9) and routing.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Call, Host, TOKEN, guest, request};
use serde_json::{Value, json};

const HELLO_TEXT: &str = "Hello from ivr-host. Goodbye!";

/// Which example produced `reply`.
fn flavor(reply: &Value) -> &'static str {
    if reply["callflow"][0]["params"]["text"] == HELLO_TEXT {
        return "hello";
    }
    let id = reply["clientActionId"].as_str().unwrap_or_default();
    let text = reply.to_string();
    if id.starts_with("main-") || id.starts_with("account-") || text.contains("Example Bank") {
        return "bank";
    }
    panic!("a reply from neither example: {reply}");
}

fn active_version(host: &Host, app: &str) -> Option<u64> {
    let (status, json) = host.admin_call("GET", &format!("/apps/{app}"), None);
    assert_eq!(status, 200, "{json}");
    json["active_version"].as_u64()
}

#[test]
fn a_call_in_progress_keeps_its_version_and_rollback_restores_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    assert_eq!(host.deploy("menu", &guest("bank-menu")), 1);

    let mut early = Call::new();
    assert_eq!(flavor(&early.step(&host, None)), "bank");

    assert_eq!(host.deploy("menu", &guest("hello")), 2);
    let mut late = Call::new();
    assert_eq!(
        flavor(&late.step(&host, None)),
        "hello",
        "a new call gets v2"
    );

    // The call that started on v1 stays on v1 through to its end.
    assert_eq!(early.step(&host, Some("1"))["clientActionId"], "account-1");
    assert_eq!(early.step(&host, Some("4321#"))["clientActionId"], "main-1");
    let last = early.step(&host, Some("0"));
    assert_eq!(
        last["callflow"][0]["params"]["text"],
        "Thank you for calling Example Bank. Goodbye."
    );

    // Rollback: new calls get v1 again; the call on v2 stays on v2.
    let (status, json) = host.admin_call("POST", "/apps/menu/rollback", None);
    assert_eq!((status, json["version"].as_u64()), (200, Some(1)), "{json}");
    assert_eq!(flavor(&Call::new().step(&host, None)), "bank");
    assert_eq!(flavor(&late.step(&host, Some("1"))), "hello");

    // A named version, and versions listed with the active one.
    let (status, json) = host.admin_call("POST", "/apps/menu/rollback", Some(br#"{"version": 2}"#));
    assert_eq!((status, json["version"].as_u64()), (200, Some(2)), "{json}");
    let (_, app) = host.admin_call("GET", "/apps/menu", None);
    assert_eq!(app["active_version"], 2);
    assert_eq!(app["versions"].as_array().unwrap().len(), 2);
    assert!(app["versions"][0]["deployed_at"].is_string());
    let (status, json) = host.admin_call("POST", "/apps/menu/rollback", Some(br#"{"version": 9}"#));
    assert_eq!(status, 404, "{json}");
}

#[test]
fn hot_swap_under_load_fails_no_request_and_keeps_every_pin() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::start_admin(dir.path(), &[]));
    host.deploy("menu", &guest("bank-menu"));
    let bank = std::fs::read(guest("bank-menu")).unwrap();
    let hello = std::fs::read(guest("hello")).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (host, stop, requests, failures) = (
                host.clone(),
                stop.clone(),
                requests.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || {
                let mut calls = 0;
                while !stop.load(Ordering::Relaxed) || calls < 10 {
                    calls += 1;
                    let mut call = Call::new();
                    let mut seen = None;
                    for digits in [None, Some("3"), Some("3"), Some("9"), Some("3")] {
                        let event = call.event(digits);
                        let (status, body) = host.post("/webhooks/vca", &event.to_string());
                        requests.fetch_add(1, Ordering::Relaxed);
                        if status != 200 {
                            failures.lock().unwrap().push(format!("{status}: {body}"));
                            continue;
                        }
                        let reply: Value = serde_json::from_str(&body).unwrap();
                        let kind = flavor(&reply);
                        if *seen.get_or_insert(kind) != kind {
                            failures.lock().unwrap().push(format!(
                                "call {} switched versions mid-call",
                                call.session_id
                            ));
                        }
                        call.client_action_id = reply["clientActionId"].as_str().map(str::to_owned);
                    }
                }
            })
        })
        .collect();

    for i in 0..20 {
        let bytes = if i % 2 == 0 { &hello } else { &bank };
        let (status, json) = host.admin_call("PUT", "/apps/menu", Some(bytes));
        assert_eq!(status, 201, "deploy {i}: {json}");
        std::thread::sleep(Duration::from_millis(20));
    }
    while requests.load(Ordering::Relaxed) < 2_000 {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    let failures = failures.lock().unwrap();
    let total = requests.load(Ordering::Relaxed);
    println!(
        "hot swap under load: {total} requests, 20 deploys, {} failures",
        failures.len()
    );
    assert!(total >= 2_000);
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(active_version(&host, "menu"), Some(21));
}

#[test]
fn refused_uploads_name_the_reason_and_the_active_version_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &["--upload-mib", "3"]);
    host.deploy("menu", &guest("bank-menu"));
    let serves = |host: &Host| assert_eq!(flavor(&Call::new().step(host, None)), "bank");

    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let wrong_world = std::fs::read(guest("wrongworld")).unwrap();
    for (what, bytes, needle) in [
        (
            "a core module",
            core_module,
            "core WebAssembly module, not a component",
        ),
        ("random bytes", random, "not WebAssembly"),
        ("another world", wrong_world, "handle-call-action"),
        ("nothing", Vec::new(), "empty"),
    ] {
        let (status, json) = host.admin_call("PUT", "/apps/menu", Some(&bytes));
        assert_eq!(status, 422, "{what}: {json}");
        let detail = json["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(needle), "{what}: {detail}");
        serves(&host);
    }

    // Over the limit: refused from the declared length, before the body is read.
    let head = format!(
        "PUT /apps/menu HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        4 * 1024 * 1024
    );
    let answer = common::raw_request(&host.admin, head.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("over the 3145728 byte limit"), "{answer}");
    serves(&host);

    // Without the right token the upload is refused before its body is read.
    let bank = std::fs::read(guest("bank-menu")).unwrap();
    for auth in [
        "",
        "Authorization: Bearer wrong\r\n",
        &format!("Authorization: {TOKEN}\r\n"),
    ] {
        let head = format!(
            "PUT /apps/menu HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
            bank.len()
        );
        let answer = common::raw_request(&host.admin, head.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 401"), "{auth:?}: {answer}");
    }
    let (status, body) = request("GET", &format!("{}/apps", host.admin), None, &[]);
    assert_eq!(status, 401, "no token: {body}");

    let (status, json) = host.admin_call("PUT", "/apps/Bad%20Name", Some(&bank));
    assert_eq!(status, 422, "{json}");
    assert_eq!(active_version(&host, "menu"), Some(1));
    serves(&host);
}

#[test]
fn a_restart_serves_the_same_apps_routes_and_config_from_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("bank", &guest("bank-menu"));
    host.deploy("bank", &guest("hello"));
    host.deploy("bank", &guest("bank-menu")); // v3, same bytes as v1
    host.deploy("greeter", &guest("hello"));
    let config = json!({ "agent_number": "+6560002222", "caller_id": "+6561110000" });
    let (status, _) = host.admin_call(
        "PUT",
        "/apps/bank/config",
        Some(config.to_string().as_bytes()),
    );
    assert_eq!(status, 200);
    let routes =
        json!({ "default_app": "greeter", "rules": [{ "number": "+6568332048", "app": "bank" }] });
    let (status, json) = host.admin_call("PUT", "/routes", Some(routes.to_string().as_bytes()));
    assert_eq!(status, 200, "{json}");
    let (_, apps_before) = host.admin_call("GET", "/apps", None);
    host.kill();

    let log_start = std::fs::read_to_string(dir.path().join("host.log"))
        .unwrap()
        .len();
    let host = Host::start_admin(dir.path(), &[]);
    let (_, apps_after) = host.admin_call("GET", "/apps", None);
    assert_eq!(apps_after, apps_before);
    assert_eq!(host.admin_call("GET", "/routes", None).1, routes);
    assert_eq!(host.admin_call("GET", "/apps/bank/config", None).1, config);

    // Routed by number to bank (with its config), else the default greeter.
    let mut call = Call::new();
    call.step(&host, None);
    let transfer = call.step(&host, Some("2"));
    assert_eq!(
        transfer["callflow"][1]["params"]["destination"],
        "+6560002222"
    );
    let mut other = Call::new();
    let mut event = other.event(None);
    event["payload"]["destination"] = "+6500000000".into();
    assert_eq!(flavor(&host.vca(&event)), "hello");

    let restart_log = &host.log()[log_start..];
    assert!(restart_log.contains("source=\"cache\""), "{restart_log}");
    assert!(
        !restart_log.contains("source=\"compiled\""),
        "recompiled on restart:\n{restart_log}"
    );
}

/// Start a PUT of `bytes` on a raw connection; send all but `hold_back` bytes.
fn start_upload(host: &Host, app: &str, bytes: &[u8], hold_back: usize) -> TcpStream {
    let mut stream = TcpStream::connect(host.admin.trim_start_matches("http://")).unwrap();
    let head = format!(
        "PUT /apps/{app} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bytes[..bytes.len() - hold_back]).unwrap();
    stream
}

#[test]
fn kill_9_during_an_upload_never_leaves_a_broken_version() {
    let dir = tempfile::tempdir().unwrap();
    let hello = std::fs::read(guest("hello")).unwrap();
    let bank = std::fs::read(guest("bank-menu")).unwrap();

    // Killed while the body is still arriving: the old version stays.
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("menu", &guest("bank-menu"));
    let _partial = start_upload(&host, "menu", &hello, 1000);
    std::thread::sleep(Duration::from_millis(100));
    host.kill();
    let host = Host::start_admin(dir.path(), &[]);
    assert_eq!(active_version(&host, "menu"), Some(1));
    assert_eq!(flavor(&Call::new().step(&host, None)), "bank");

    // Killed at various moments after the whole body arrived (compiling,
    // writing, committing): after restart the active version is the old or
    // the complete new one, and it serves.
    let mut expected_old = "bank";
    let mut host = host;
    let mut acknowledged = 0;
    // The last delay is long enough for the upload to finish: at least one
    // kill comes after a 201, whose version must then be the one serving.
    for delay_ms in [0u64, 5, 20, 60, 150, 400, 5000] {
        let (bytes, new) = if expected_old == "bank" {
            (&hello, "hello")
        } else {
            (&bank, "bank")
        };
        let mut upload = start_upload(&host, "menu", bytes, 0);
        std::thread::sleep(Duration::from_millis(delay_ms));
        host.kill();
        let mut answer = String::new();
        let _ = upload.read_to_string(&mut answer);
        host = Host::start_admin(dir.path(), &[]);
        let now = flavor(&Call::new().step(&host, None));
        assert!(
            now == expected_old || now == new,
            "after kill at {delay_ms} ms: {now}"
        );
        if answer.starts_with("HTTP/1.1 201") {
            acknowledged += 1;
            assert_eq!(
                now, new,
                "an acknowledged upload was lost (kill at {delay_ms} ms)"
            );
        }
        let (status, apps) = host.admin_call("GET", "/apps/menu", None);
        assert_eq!(status, 200, "{apps}");
        expected_old = now;
    }
    assert!(
        acknowledged > 0,
        "no upload was acknowledged before its kill"
    );
}

#[test]
fn routing_by_number_subaccount_default_and_none() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("bank", &guest("bank-menu"));
    host.deploy("greeter", &guest("hello"));
    host.deploy("faulty", &guest("misbehave"));
    let route = |destination: &str, direction: &str, sub: &str| -> Value {
        let mut event = Call::new().event(None);
        let payload = &mut event["payload"];
        payload["callDirection"] = direction.into();
        payload["subAccountId"] = sub.into();
        if direction == "OUTBOUND" {
            payload["source"] = destination.into();
            payload["destination"] = "+6591178965".into();
        } else {
            payload["destination"] = destination.into();
        }
        host.vca(&event)
    };

    // Several apps and no routes: no route, so the fallback (and a reason in the log).
    let fallback = route("+6568332048", "INBOUND", "acme");
    assert_eq!(fallback["callflow"][1]["action"], "hangup");
    assert!(host.log().contains("no route matches"), "{}", host.log());

    let routes = json!({ "default_app": "faulty", "rules": [
        { "number": "6568332048", "app": "bank" },
        { "sub_account": "acme", "app": "greeter" }
    ] });
    let (status, json) = host.admin_call("PUT", "/routes", Some(routes.to_string().as_bytes()));
    assert_eq!(status, 200, "{json}");
    assert_eq!(
        flavor(&route("+6568332048", "INBOUND", "acme")),
        "bank",
        "number (with +) wins over subaccount"
    );
    assert_eq!(
        flavor(&route("+6568332048", "OUTBOUND", "x")),
        "bank",
        "outbound: the VN is the source"
    );
    assert_eq!(
        flavor(&route("+6500000001", "INBOUND", "acme")),
        "hello",
        "subaccount"
    );
    assert_eq!(
        route("+6500000001", "INBOUND", "other"),
        json!({ "callflow": [{ "action": "hangup" }] }),
        "default app"
    );

    // Bad routes are refused with the rule named; deleting a routed app is refused.
    let (status, json) = host.admin_call(
        "PUT",
        "/routes",
        Some(br#"{"rules":[{"number":"+1555","app":"ghost"}]}"#),
    );
    assert_eq!(status, 422);
    assert_eq!(json["detail"], "rules[0].app: no app named \"ghost\"");
    let (status, json) = host.admin_call("DELETE", "/apps/bank", None);
    assert_eq!(status, 409, "{json}");
    let (status, _) = host.admin_call("PUT", "/routes", Some(br#"{"default_app":"faulty"}"#));
    assert_eq!(status, 200);
    let (status, json) = host.admin_call("DELETE", "/apps/bank", None);
    assert_eq!(status, 200, "{json}");
    let (status, _) = host.admin_call("GET", "/apps/bank", None);
    assert_eq!(status, 404);
}
