//! Outbound HTTP over the real path: the `reach` test guest fetches what
//! its digits say, from backends these tests start on 127.0.0.1, through
//! the host's allowlist, address checks and budgets; the reply and the
//! call's trace say what happened.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::{Call, Host, TOKEN, guest, trace_until};
use serde_json::{Value, json};

/// A host serving the `reach` guest as app `reach`, allowed `hosts`.
fn reach_host(extra: &[&str], hosts: &[String], settings: Value) -> Host {
    let host = Host::start_with_env(extra, &[("IVR_ADMIN_TOKEN", TOKEN)]);
    host.deploy("reach", &guest("reach"));
    let mut settings = settings;
    settings["allowed_outbound_hosts"] = json!(hosts);
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/reach/settings",
        Some(settings.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    host
}

/// Run one command on the guest; what it said, and the call's session.
fn ask(host: &Host, command: &str) -> (String, String) {
    let mut call = Call::new();
    call.client_action_id = Some("go".into());
    let reply = call.step(host, Some(command));
    let said = reply["callflow"][0]["params"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (said, call.session_id)
}

fn outbound_of(host: &Host, session: &str) -> Vec<Value> {
    let trace = trace_until(host, session, |t| {
        t["events"].as_array().is_some_and(|e| !e.is_empty())
    });
    trace["events"][0]["outbound"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Why the event's first outbound request failed, from the call's trace.
fn first_error(host: &Host, session: &str) -> String {
    outbound_of(host, session)[0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

const LOOPBACK: [&str; 2] = ["--outbound-private-networks", "127.0.0.0/8"];

#[test]
fn the_allowlist_decides_by_scheme_host_port_and_wildcard() {
    let (a, b, c) = (Backend::start(), Backend::start(), Backend::start());
    let hosts = vec![
        a.url.clone(),
        format!("http://localhost:{}", b.port),
        format!("http://*.ivr-test.invalid:{}", c.port),
    ];
    let host = reach_host(&LOOPBACK, &hosts, json!({}));

    let (said, session) = ask(&host, &format!("get {}/ok?secret=hidden", a.url));
    assert_eq!(said, "status 200 bytes 5");
    let records = outbound_of(&host, &session);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["method"], "GET");
    assert_eq!(records[0]["url"], format!("http://127.0.0.1:{}/ok", a.port));
    assert_eq!(records[0]["status"], 200);
    assert_eq!(records[0]["bytes"], 5);
    assert!(records[0]["ms"].is_u64());

    // A name is allowed as a name: localhost is, 127.0.0.1 on that port is not.
    let (said, _) = ask(&host, &format!("get http://localhost:{}/ok", b.port));
    assert_eq!(said, "status 200 bytes 5");
    let (said, session) = ask(&host, &format!("get http://127.0.0.1:{}/ok", b.port));
    assert!(said.starts_with("error denied by allowlist"), "{said}");
    let error = first_error(&host, &session);
    assert!(error.starts_with("denied: http://127.0.0.1:"), "{error}");
    assert!(host.log().contains("refused: denied"), "{}", host.log());

    // Scheme and port must match too.
    let (said, _) = ask(&host, &format!("get https://127.0.0.1:{}/ok", a.port));
    assert!(said.starts_with("error denied by allowlist"), "{said}");
    let (said, _) = ask(&host, &format!("get http://127.0.0.1:{}/ok", c.port));
    assert!(said.starts_with("error denied by allowlist"), "{said}");

    // `*.` admits exactly one more label: the request gets past the
    // allowlist to DNS (which knows no .invalid name); two labels do not.
    let (said, session) = ask(
        &host,
        &format!("get http://api.ivr-test.invalid:{}/ok", c.port),
    );
    assert!(said.starts_with("error network error"), "{said}");
    let error = first_error(&host, &session);
    assert!(error.contains("DNS lookup"), "{error}");
    let (said, _) = ask(
        &host,
        &format!("get http://a.b.ivr-test.invalid:{}/ok", c.port),
    );
    assert!(said.starts_with("error denied by allowlist"), "{said}");
    assert_eq!(c.requests(), 0);

    // A bad entry is refused, named, and changes nothing.
    for (bad, words) in [
        ("ftp://crm.example.com", "\"ftp://crm.example.com\": scheme"),
        ("https://crm.example.com/api", "without a path"),
        ("https://*.com", "top-level domain"),
    ] {
        let settings = json!({ "allowed_outbound_hosts": [a.url, bad] });
        let (status, body) = host.admin_call(
            "PUT",
            "/apps/reach/settings",
            Some(settings.to_string().as_bytes()),
        );
        assert_eq!(status, 422, "{body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("allowed_outbound_hosts: ") && detail.contains(words),
            "{detail}"
        );
    }
    let (said, _) = ask(&host, &format!("get http://localhost:{}/ok", b.port));
    assert_eq!(said, "status 200 bytes 5");
}

#[test]
fn private_and_metadata_addresses_are_refused_after_dns() {
    let a = Backend::start();
    let hosts = vec![
        a.url.clone(),
        format!("http://localhost:{}", a.port),
        "http://169.254.169.254".to_owned(),
    ];
    // Without outbound_private_networks, loopback is refused, by address
    // and by a name that resolves to it.
    let host = reach_host(&[], &hosts, json!({}));
    for url in [
        format!("{}/ok", a.url),
        format!("http://localhost:{}/ok", a.port),
    ] {
        let (said, session) = ask(&host, &format!("get {url}"));
        assert_eq!(
            said, "error denied by allowlist: the address is not one apps may reach",
            "{url}"
        );
        let error = first_error(&host, &session);
        assert!(
            error.contains("is loopback") && error.contains("outbound_private_networks"),
            "{error}"
        );
    }
    assert_eq!(a.requests(), 0);
    drop(host);

    // Listed, loopback is reachable; metadata never is.
    let host = reach_host(
        &["--outbound-private-networks", "0.0.0.0/0"],
        &hosts,
        json!({}),
    );
    let (said, _) = ask(&host, &format!("get {}/ok", a.url));
    assert_eq!(said, "status 200 bytes 5");
    let (said, session) = ask(&host, "get http://169.254.169.254/latest/meta-data");
    assert!(said.starts_with("error denied by allowlist"), "{said}");
    let error = first_error(&host, &session);
    assert!(error.contains("never allowed"), "{error}");
}

#[test]
fn a_redirect_is_a_new_request_checked_again() {
    let (allowed, other) = (Backend::start(), Backend::start());
    let host = reach_host(&LOOPBACK, std::slice::from_ref(&allowed.url), json!({}));
    let (said, session) = ask(
        &host,
        &format!("get {}/redirect?to={}/ok", allowed.url, other.url),
    );
    assert!(said.starts_with("error denied by allowlist"), "{said}");
    assert_eq!(other.requests(), 0);
    let records = outbound_of(&host, &session);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["status"], 302);
    assert!(records[1]["error"].as_str().unwrap().starts_with("denied"));

    let (said, _) = ask(
        &host,
        &format!("get {}/redirect?to={}/ok", allowed.url, allowed.url),
    );
    assert_eq!(said, "status 200 bytes 5");
}

#[test]
fn budgets_bound_requests_time_and_size() {
    let a = Backend::start();
    let host = reach_host(
        &LOOPBACK,
        std::slice::from_ref(&a.url),
        json!({ "outbound_request_ms": 400, "event_wall_ms": 1500 }),
    );
    // At most 4 requests per event (the default).
    let (said, _) = ask(&host, &format!("getn 5 {}/ok", a.url));
    let results: Vec<&str> = said.split("; ").collect();
    assert_eq!(results[..4], ["status 200 bytes 5"; 4]);
    assert_eq!(results[4], "error too many requests in this event");

    // A backend that never answers: a timeout inside the guest, in time.
    let started = Instant::now();
    let (said, session) = ask(&host, &format!("get {}/hang", a.url));
    assert_eq!(said, "error timeout");
    assert!(started.elapsed() < Duration::from_millis(1200));
    assert!(first_error(&host, &session).starts_with("timeout"));

    // A 5 MiB body is over the 1 MiB default.
    let (said, session) = ask(&host, &format!("get {}/big", a.url));
    assert_eq!(said, "error body too large");
    let error = first_error(&host, &session);
    assert!(error.contains("response body too large"), "{error}");

    // The whole event's wall-clock budget: past it, the fallback.
    let (said, session) = ask(&host, &format!("getn 4 {}/slow/390", a.url));
    assert!(said.starts_with("We are sorry"), "{said}");
    let trace = trace_until(&host, &session, |t| {
        t["events"][0]["fault_kind"].is_string()
    });
    assert_eq!(trace["events"][0]["fault_kind"], "deadline");
    // The requests made before the deadline are still traced.
    assert!(
        trace["events"][0]["outbound"]
            .as_array()
            .is_some_and(|r| r.len() >= 3),
        "{trace}"
    );
}

#[test]
fn a_second_request_to_a_backend_reuses_the_apps_connection() {
    let a = Backend::start();
    let host = reach_host(&LOOPBACK, std::slice::from_ref(&a.url), json!({}));
    for _ in 0..3 {
        let (said, _) = ask(&host, &format!("get {}/ok", a.url));
        assert_eq!(said, "status 200 bytes 5");
    }
    assert_eq!(a.requests(), 3);
    assert_eq!(
        a.connections(),
        1,
        "the app's pool should keep the connection"
    );
}

/// One VCA to the app routed by `destination`; the reply's text and time.
fn timed_call(host: &Host, destination: &str, dtmf: &str) -> (String, Duration) {
    let mut call = Call::new();
    call.client_action_id = Some("go".into());
    let mut event = call.event(Some(dtmf));
    event["payload"]["destination"] = destination.into();
    let started = Instant::now();
    let reply = host.vca(&event);
    let text = reply["callflow"][0]["params"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (text, started.elapsed())
}

#[test]
fn a_thousand_calls_waiting_on_a_slow_backend_starve_no_other_app() {
    const WAITING: usize = 1000;
    let slow = Backend::start();
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::start_in(
        dir.path(),
        &[
            "--outbound-private-networks",
            "127.0.0.0/8",
            "--max-instances",
            "1100",
        ],
        &[("IVR_ADMIN_TOKEN", TOKEN)],
    ));
    host.deploy("reach", &guest("reach"));
    host.deploy("hello", &guest("hello"));
    let settings = json!({
        "allowed_outbound_hosts": [slow.url],
        "max_concurrent": 1050,
        "event_wall_ms": 8000,
        "outbound_request_ms": 6000,
    });
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/reach/settings",
        Some(settings.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    let routes =
        json!({ "default_app": "hello", "rules": [{ "number": "+6560000001", "app": "reach" }] });
    let (status, body) = host.admin_call("PUT", "/routes", Some(routes.to_string().as_bytes()));
    assert_eq!(status, 200, "{body}");

    // The other app's normal latency.
    let baseline: Vec<Duration> = (0..20)
        .map(|_| timed_call(&host, "+6568332048", "1").1)
        .collect();
    let baseline_max = baseline.iter().max().copied().unwrap_or_default();

    let command = format!("get {}/slow/2000", slow.url);
    let waiting: Vec<_> = (0..WAITING)
        .map(|_| {
            let (host, command) = (host.clone(), command.clone());
            std::thread::spawn(move || timed_call(&host, "+6560000001", &command).0)
        })
        .collect();
    // Once every call waits on the backend...
    let deadline = Instant::now() + Duration::from_secs(20);
    while slow.requests() < WAITING {
        assert!(
            Instant::now() < deadline,
            "only {} requests arrived",
            slow.requests()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // ...the other app answers as fast as before.
    let during: Vec<Duration> = (0..20)
        .map(|_| {
            let (text, elapsed) = timed_call(&host, "+6568332048", "1");
            assert!(!text.is_empty());
            elapsed
        })
        .collect();
    let during_max = during.iter().max().copied().unwrap_or_default();
    eprintln!(
        "hello latency max: {baseline_max:?} before, {during_max:?} with {WAITING} calls waiting; host RSS {} MiB",
        host.rss_kib() / 1024
    );
    assert!(
        during_max < Duration::from_millis(100).max(baseline_max * 10),
        "hello took up to {during_max:?} while calls waited (before: {baseline_max:?})"
    );
    let answers: Vec<String> = waiting.into_iter().map(|t| t.join().unwrap()).collect();
    let good = answers
        .iter()
        .filter(|a| a.as_str() == "status 200 bytes 4")
        .count();
    assert_eq!(
        good,
        WAITING,
        "{:?}",
        answers.iter().find(|a| *a != "status 200 bytes 4")
    );
}
