//! What apps keep and read beyond one call, over the real path: secrets
//! (never leaked), the per-app key-value store (scoped, expiring, bounded,
//! durable), and components built against the previous contract
//! (`ivr:app@0.2.0`) still serving.

mod common;

use std::process::Command;
use std::time::Duration;

use common::backend::Backend;
use common::{Call, Host, TOKEN, guest, trace_until};
use serde_json::{Value, json};

/// One command to the app routed by `destination`: what it said, and the session.
fn ask_at(host: &Host, destination: &str, command: &str) -> (String, String) {
    let mut call = Call::new();
    call.client_action_id = Some("go".into());
    let mut event = call.event(Some(command));
    event["payload"]["destination"] = destination.into();
    let reply = host.vca(&event);
    let said = reply["callflow"][0]["params"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (said, call.session_id)
}

fn ask(host: &Host, command: &str) -> (String, String) {
    ask_at(host, "+6568332048", command)
}

const SECRET: &str = "s3cr3t-Api-Value-7731";

fn cli(host: &Host, args: &[&str], stdin: &str) -> std::process::Output {
    common::with_stdin(
        Command::new(env!("CARGO_BIN_EXE_ivr-host"))
            .args(args)
            .args(["--admin", &host.admin])
            .env("IVR_ADMIN_TOKEN", TOKEN),
        stdin,
    )
}

#[test]
fn a_secret_value_never_leaves_the_host() {
    let backend = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let args = ["--outbound-private-networks", "127.0.0.0/8"];
    let host = Host::start_admin(dir.path(), &args);
    host.deploy("reach", &guest("reach"));
    let settings = json!({ "allowed_outbound_hosts": [backend.url] });
    let (status, _) = host.admin_call(
        "PUT",
        "/apps/reach/settings",
        Some(settings.to_string().as_bytes()),
    );
    assert_eq!(status, 200);

    // Set through the API and the CLI (value from stdin); listed by name only.
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/reach/secrets/api_key",
        Some(SECRET.as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let out = cli(
        &host,
        &["secrets", "set", "reach", "cli_key"],
        "from-the-cli-9981\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&host, &["secrets", "list", "reach"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "api_key\ncli_key\n");
    let mode = {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(dir.path().join("data/secrets.json"))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode & 0o777, 0o600);

    // The app reads it; logging it, printing it, failing with it, putting
    // it in a URL or in its reply shows only its name.
    let (said, logged) = ask(&host, "secret-log api_key");
    assert_eq!(
        said,
        format!("secret {SECRET}"),
        "the app itself gets the value"
    );
    let (said, failed) = ask(&host, "secret-error api_key");
    assert!(said.starts_with("We are sorry"), "{said}");
    let (said, fetched) = ask(&host, &format!("secret-fetch api_key {}", backend.url));
    assert_eq!(said, format!("status 200 bytes {}", SECRET.len() + 1));
    let (said, _) = ask(&host, "secret-log cli_key");
    assert_eq!(said, "secret from-the-cli-9981");

    let log = host.log();
    assert!(log.contains("the secret is [secret api_key]"), "{log}");
    assert!(log.contains("printed secret [secret api_key]"), "{log}");
    assert!(log.contains("failed with [secret api_key]"), "{log}");
    for session in [&logged, &failed, &fetched] {
        let trace = trace_until(&host, session, |t| {
            t["events"].as_array().is_some_and(|e| !e.is_empty())
        });
        let text = trace.to_string();
        assert!(!text.contains(SECRET), "trace of {session}: {text}");
        assert!(
            text.contains("[secret api_key]"),
            "trace of {session}: {text}"
        );
    }
    let mut answers = String::new();
    for path in [
        "/apps/reach",
        "/apps/reach/settings",
        "/apps/reach/config",
        "/apps/reach/secrets",
        "/apps",
        "/sessions",
        "/stats",
    ] {
        answers.push_str(&host.admin_call("GET", path, None).1.to_string());
    }
    // A refused value is not quoted back.
    let (status, body) = host.admin_call("PUT", "/apps/reach/secrets/short", Some(b"Zq9"));
    assert_eq!(status, 422);
    answers.push_str(&body.to_string());
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/reach/secrets/bad%20name",
        Some(SECRET.as_bytes()),
    );
    assert_eq!(status, 422);
    answers.push_str(&body.to_string());
    assert!(!answers.contains("Zq9"), "{answers}");
    let log = host.log();
    for leak in [SECRET, "from-the-cli-9981"] {
        assert!(!answers.contains(leak), "{answers}");
        assert!(!log.contains(leak), "{log}");
    }

    // Kept across a restart; deleted once.
    drop(host);
    let host = Host::start_admin(dir.path(), &args);
    let (said, _) = ask(&host, "secret-log api_key");
    assert_eq!(said, format!("secret {SECRET}"));
    let (status, _) = host.admin_call("DELETE", "/apps/reach/secrets/api_key", None);
    assert_eq!(status, 200);
    let (status, _) = host.admin_call("DELETE", "/apps/reach/secrets/api_key", None);
    assert_eq!(status, 404);
    let (said, _) = ask(&host, "secret-log api_key");
    assert_eq!(said, "secret ");
    let (status, _) = host.admin_call("GET", "/apps/nosuch/secrets", None);
    assert_eq!(status, 404);
}

/// A host with the `reach` guest deployed as apps `a` and `b`.
fn two_apps(dir: &std::path::Path) -> Host {
    let host = Host::start_admin(dir, &[]);
    host.deploy("a", &guest("reach"));
    host.deploy("b", &guest("reach"));
    let routes = json!({ "default_app": "a", "rules": [{ "number": "+6560000002", "app": "b" }] });
    let (status, body) = host.admin_call("PUT", "/routes", Some(routes.to_string().as_bytes()));
    assert_eq!(status, 200, "{body}");
    host
}

const B: &str = "+6560000002";

#[test]
fn the_key_value_store_is_scoped_expiring_bounded_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let host = two_apps(dir.path());

    // Scoped: b never sees a's keys.
    assert_eq!(ask(&host, "kv-set lang fr").0, "ok");
    assert_eq!(ask(&host, "kv-get lang").0, "value fr");
    assert_eq!(ask_at(&host, B, "kv-get lang").0, "unset");
    assert_eq!(ask_at(&host, B, "kv-set lang de").0, "ok");
    assert_eq!(ask(&host, "kv-get lang").0, "value fr");

    // Counters, and errors the app handles.
    assert_eq!(ask(&host, "kv-incr calls 1").0, "count 1");
    assert_eq!(ask(&host, "kv-incr calls 41").0, "count 42");
    assert_eq!(
        ask(&host, "kv-incr lang 1").0,
        "error the value is not a 64-bit integer"
    );
    let long = "k".repeat(300);
    assert_eq!(
        ask(&host, &format!("kv-get {long}")).0,
        "error the key is 300 bytes; at most 256"
    );
    assert_eq!(
        ask(&host, "kv-fill big 70000").0,
        "error the value is 70000 bytes; at most 65536"
    );

    // Expiry.
    assert_eq!(ask(&host, "kv-set otp 4821 1").0, "ok");
    assert_eq!(ask(&host, "kv-get otp").0, "value 4821");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(ask(&host, "kv-get otp").0, "unset");

    // The quota (1 MiB here): full is an error, deleting makes room.
    let (status, _) = host.admin_call("PUT", "/apps/a/settings", Some(br#"{"kv_quota_mib":1}"#));
    assert_eq!(status, 200);
    let mut stored = 0;
    let refusal = loop {
        let (said, _) = ask(&host, &format!("kv-fill fill{stored} 60000"));
        if said != "ok" {
            break said;
        }
        stored += 1;
        assert!(stored < 40, "the quota never applied");
    };
    assert_eq!(refusal, "error the app's 1048576-byte quota is used up");
    assert_eq!(stored, 17);
    assert_eq!(ask(&host, "kv-del fill0").0, "ok");
    assert_eq!(ask(&host, "kv-fill again 60000").0, "ok");
    // The other app's quota is its own.
    assert_eq!(ask_at(&host, B, "kv-fill big 60000").0, "ok");

    // Durable: a kill -9 loses nothing that was acknowledged.
    host.kill();
    let host = Host::start_admin(dir.path(), &[]);
    assert_eq!(ask(&host, "kv-get lang").0, "value fr");
    assert_eq!(ask(&host, "kv-incr calls 1").0, "count 43");
    assert_eq!(ask_at(&host, B, "kv-get lang").0, "value de");

    // Deleting an app deletes its keys: a new app of the same name starts empty.
    let (status, body) =
        host.admin_call("PUT", "/routes", Some(br#"{"default_app":"a","rules":[]}"#));
    assert_eq!(status, 200, "{body}");
    let (status, body) = host.admin_call("DELETE", "/apps/b", None);
    assert_eq!(status, 200, "{body}");
    host.deploy("b", &guest("reach"));
    let routes = json!({ "default_app": "a", "rules": [{ "number": B, "app": "b" }] });
    host.admin_call("PUT", "/routes", Some(routes.to_string().as_bytes()));
    assert_eq!(ask_at(&host, B, "kv-get lang").0, "unset");
}

#[test]
fn a_component_built_against_the_previous_contract_still_serves() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("legacy", &guest("legacy"));
    let (status, _) = host.admin_call(
        "PUT",
        "/apps/legacy/config",
        Some(br#"{"greeting":"good morning"}"#),
    );
    assert_eq!(status, 200);
    let mut call = Call::new();
    let first = call.step(&host, None);
    assert_eq!(first["clientActionId"], "legacy-1");
    let second = call.step(&host, Some("1"));
    assert_eq!(second["clientActionId"], "legacy-2", "state kept: {second}");
    let text = second["callflow"][0]["params"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("good morning from 0.2.0, event 2"),
        "{text}"
    );
    assert!(host.log().contains("legacy event 2"), "{}", host.log());
    let (_, app) = host.admin_call("GET", "/apps/legacy", None);
    assert_eq!(app["active_version"], 1, "{app}");
    let _: Value = app;
}
