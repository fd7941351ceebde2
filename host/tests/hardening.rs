//! The host against hostile clients, forged deliveries, guests that push
//! at their limits, and restarts: each test here failed on the host before
//! the hardening it covers.

mod common;

use std::sync::Arc;

use common::{Call, Host, guest, misbehave_host, trace_until};
use serde_json::{Value, json};

/// A host serving the misbehaving guest (its digit `count` counts events in
/// the call's state, so every fresh decision differs from the last).
fn counting_host() -> Host {
    let app = format!("counter={}", guest("misbehave").display());
    Host::start(&["--app", &app])
}

/// The second event of `call` with `digits`, as 8x8 would send it.
fn pressed(call: &mut Call, digits: &str) -> Value {
    call.client_action_id.get_or_insert_with(|| "start".into());
    call.event(Some(digits))
}

fn said(reply: &Value) -> &str {
    reply["callflow"][0]["params"]["text"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn a_repeated_delivery_gets_the_first_reply_without_running_the_guest_again() {
    let host = counting_host();
    let mut call = Call::new();
    let event = pressed(&mut call, "count");
    let first = host.vca(&event);
    assert_eq!(said(&first), "Count 1.");
    for _ in 0..3 {
        assert_eq!(host.vca(&event), first, "a repeat was decided again");
    }
    // A new event of the same call is a new decision.
    assert_eq!(said(&host.vca(&pressed(&mut call, "count"))), "Count 2.");
}

#[test]
fn concurrent_duplicate_deliveries_are_decided_once() {
    let host = Arc::new(counting_host());
    let mut call = Call::new();
    let event = Arc::new(pressed(&mut call, "count"));
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (host, event, barrier) = (host.clone(), event.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                host.vca(&event)
            })
        })
        .collect();
    let replies: Vec<Value> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for reply in &replies {
        assert_eq!(
            said(reply),
            "Count 1.",
            "decided more than once: {replies:?}"
        );
    }
}

#[test]
fn a_reused_event_id_from_another_session_never_gets_that_sessions_reply() {
    let app = format!("bank={}", guest("bank-menu").display());
    let host = Host::start(&["--app", &app]);
    // Caller A reaches the balance of account 12345678.
    let mut a = Call::new();
    a.step(&host, None);
    a.step(&host, Some("1"));
    let account_event = a.event(Some("12345678#"));
    let a_reply = host.vca(&account_event);
    assert!(said(&a_reply).contains("ending in 5678"), "{a_reply}");

    // The same eventId arrives for caller B's call, B at the account prompt.
    let mut forged = account_event.clone();
    forged["payload"]["sessionId"] = json!("another-session");
    forged["payload"]["eventData"] = json!({ "dtmf": "2468#" });
    let b_reply = host.vca(&forged);
    assert_ne!(b_reply, a_reply, "B got A's reply");
    assert!(said(&b_reply).contains("ending in 2468"), "{b_reply}");
    // A's own repeat still gets A's first reply.
    assert_eq!(host.vca(&account_event), a_reply);
}

#[test]
fn guest_text_is_bounded_in_the_log_the_trace_and_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    for digits in ["huge-error", "huge-number"] {
        let before = host.log().len();
        let mut call = Call::new();
        let reply = host.vca(&pressed(&mut call, digits));
        assert!(said(&reply).contains("sorry"), "{digits}: {reply}");
        let trace = trace_until(&host, &call.session_id, |t| {
            t["events"].as_array().is_some_and(|e| !e.is_empty())
        });
        let fault = trace["events"][0]["fault"].as_str().unwrap_or_default();
        assert!(!fault.is_empty(), "{digits}: no fault in {trace}");
        assert!(
            fault.len() < 4096,
            "{digits}: the trace holds {} bytes of fault text",
            fault.len()
        );
        assert!(fault.contains("cut at"), "{digits}: {fault}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let grown = host.log().len() - before;
        assert!(
            grown < 16 * 1024,
            "{digits}: the host log grew by {grown} bytes"
        );
        assert!(!host.log().contains("\nINFO forged"), "{digits}");
    }
}

#[test]
fn a_guest_cannot_start_a_log_line_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    let mut call = Call::new();
    assert_eq!(said(&host.vca(&pressed(&mut call, "forge-log"))), "Logged.");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !host.log().contains("FORGED-STDOUT-LINE") {
        assert!(std::time::Instant::now() < deadline, "{}", host.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = host.log();
    for line in log.lines() {
        if line.contains("FORGED") || line.contains("cleared") {
            assert!(
                line.contains(" guest: ") && line.contains("app=\"app\""),
                "a guest line without the guest's tag: {line:?}"
            );
        }
        assert!(
            !line.contains('\u{1b}'),
            "an escape sequence reached the log: {line:?}"
        );
    }
}

/// Open `n` connections to `base` and send `head` on each.
fn connections(base: &str, n: usize, head: &[u8]) -> Vec<std::net::TcpStream> {
    use std::io::Write as _;
    // This test process holds hundreds of connections at once.
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit on a local.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    });
    let addr = base.trim_start_matches("http://");
    (0..n)
        .map(|_| {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            let mut stream =
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
                    .expect("connect");
            stream.write_all(head).expect("send");
            stream
        })
        .collect()
}

/// How long a `GET /healthz` takes, failing on anything but `200`.
fn healthz_time(base: &str) -> std::time::Duration {
    let started = std::time::Instant::now();
    let (status, body) = common::request("GET", &format!("{base}/healthz"), None, &[]);
    assert_eq!(status, 200, "{body}");
    started.elapsed()
}

/// What the server sends on `stream` until it closes (or 10 s pass).
fn answer_of(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read as _;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_and_idle_clients_are_cut_off_while_calls_keep_being_answered() {
    use std::time::{Duration, Instant};
    let app = format!("bank={}", guest("bank-menu").display());
    let host = Host::start_with_env(&["--app", &app], &[("IVR_REQUEST_READ_SECS", "3")]);
    let slow_head = b"POST /webhooks/vca HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{";
    let chunked_head = b"POST /webhooks/vca HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n{";
    let mut slow = connections(&host.webhooks, 250, slow_head);
    let mut chunked = connections(&host.webhooks, 50, chunked_head);
    let mut idle = connections(&host.webhooks, 100, b"");
    let mut half_headers = connections(&host.admin, 20, b"GET /apps HTTP/1.1\r\n");
    let opened = Instant::now();

    // Trickle one body byte a second on the slow ones; meanwhile calls and
    // both health checks answer as usual.
    let mut worst = Duration::ZERO;
    while opened.elapsed() < Duration::from_secs(5) {
        use std::io::Write as _;
        for stream in &mut slow {
            let _ = stream.write_all(b" ");
        }
        for _ in 0..5 {
            let started = Instant::now();
            let mut call = Call::new();
            let reply = call.step(&host, None);
            assert_eq!(reply["clientActionId"], "main-1", "{reply}");
            worst = worst.max(started.elapsed());
            worst = worst.max(healthz_time(&host.webhooks));
            worst = worst.max(healthz_time(&host.admin));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        worst < Duration::from_millis(500),
        "a request took {worst:?}"
    );

    // Every slow, stalled or idle connection was answered and closed by now
    // (3 s for headers, 3 s for a body).
    for stream in slow.iter_mut().chain(&mut chunked) {
        let answer = answer_of(stream);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    }
    for stream in idle.iter_mut().chain(&mut half_headers) {
        let answer = answer_of(stream);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer:?}"
        );
    }
    assert!(
        opened.elapsed() < Duration::from_secs(9),
        "closing the slow connections took {:?}",
        opened.elapsed()
    );
}

#[test]
fn a_connection_flood_never_locks_the_admin_listener_out() {
    let app = format!("bank={}", guest("bank-menu").display());
    // 256 file descriptors: without per-listener limits, 400 connections
    // would take them all and neither listener could accept.
    let host = Host::start_with_open_files(&["--app", &app], 256);
    let mut flood = connections(&host.webhooks, 400, b"");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(healthz_time(&host.admin) < std::time::Duration::from_millis(500));
    let (status, _) = common::request("GET", &format!("{}/apps", host.admin), None, &[]);
    assert_eq!(status, 200);
    // The connections over the webhook listener's share were told why.
    let answers: Vec<String> = flood.iter_mut().rev().take(50).map(answer_of).collect();
    let refused = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503") && a.contains("too many connections"))
        .count();
    assert!(
        refused >= 50,
        "only {refused} of the last 50 were refused with 503: {:?}\n{}",
        answers.iter().find(|a| !a.starts_with("HTTP/1.1 503")),
        host.log()
    );
    drop(flood);
    // Once they are gone, calls are answered again.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut call = Call::new();
    assert_eq!(call.step(&host, None)["clientActionId"], "main-1");
}

#[test]
fn a_stored_summary_is_shown_whatever_its_numbers_and_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    let path = format!(
        "{}/tests/fixtures/reference/vss_inbound_completed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut vss: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (session, extra) in [
        ("huge-number", "1e400".to_owned()),
        (
            "deep-nesting",
            format!("{}1{}", "[".repeat(200), "]".repeat(200)),
        ),
    ] {
        vss["payload"]["sessionId"] = json!(session);
        vss["payload"]["extra"] = json!("EXTRA");
        let body = vss.to_string().replace(r#""EXTRA""#, &extra);
        let (status, answer) = host.post("/webhooks/vss", &body);
        assert_eq!(status, 200, "{session}: {answer}");
        // Polled as text: the answer holds what serde_json cannot parse.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, text) = common::request(
                "GET",
                &format!("{}/sessions/{session}", host.admin),
                None,
                &[("authorization", &format!("Bearer {}", common::TOKEN))],
            );
            if status == 200 && text.contains(r#""summary":"#) {
                assert!(text.contains(&extra), "{session}: {text}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{session}: the summary never showed: {status} {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Run `ivr-host serve` as `command` says, expecting it to refuse to start:
/// its error output. Fails if it is still serving after 15 s.
fn refused_start(command: &mut std::process::Command) -> String {
    let errors = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(errors.reopen().unwrap())
        .spawn()
        .expect("running ivr-host");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ivr-host started and kept serving:\n{}",
                std::fs::read_to_string(errors.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(errors.path()).unwrap_or_default();
    assert!(!status.success(), "{stderr}");
    stderr
}

/// Run the `ivr-host` command line (not `serve`) against `host`'s admin API.
fn cli(host: &Host, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
        .args(args)
        .env("IVR_ADMIN_URL", &host.admin)
        .env("IVR_ADMIN_TOKEN", common::TOKEN)
        .output()
        .expect("running ivr-host")
}

#[test]
fn configuration_for_an_app_that_does_not_exist_is_refused_and_routing_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("bank", &guest("bank-menu"));
    let output = cli(&host, &["config", "nosuch", "a=b"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("404") && stderr.contains("nosuch"),
        "{stderr}"
    );
    let (status, _) = host.admin_call("PUT", "/apps/nosuch/settings", Some(b"{}"));
    assert_eq!(status, 404);
    // bank is still the only app, so it still answers every call.
    let mut call = Call::new();
    assert_eq!(call.step(&host, None)["clientActionId"], "main-1");
    let (_, apps) = host.admin_call("GET", "/apps", None);
    assert_eq!(apps["apps"].as_array().map(Vec::len), Some(1), "{apps}");

    // A typo at start is refused, naming the app.
    drop(host);
    let stderr = refused_start(
        std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
            .args(common::SERVE_ON_EPHEMERAL_PORTS)
            .arg(dir.path().join("data"))
            .args(["--app-config", "helo.greeting=hi"]),
    );
    assert!(stderr.contains("\"helo\""), "{stderr}");
}

#[test]
fn an_app_never_deployed_cannot_be_rolled_back_or_change_routing() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("bank", &guest("bank-menu"));
    host.kill();
    // A database from before: configuration once created an app with no
    // version ("phantom").
    let db = rusqlite::Connection::open(dir.path().join("data/ivr.sqlite3")).unwrap();
    db.execute(
        "INSERT INTO apps (name, active_version) VALUES ('nosuch', NULL)",
        [],
    )
    .unwrap();
    drop(db);
    let host = Host::start_admin(dir.path(), &[]);
    for name in ["nosuch", "never"] {
        let (status, body) = host.admin_call("POST", &format!("/apps/{name}/rollback"), None);
        assert_eq!(status, 404, "{body}");
        let detail = body["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains("no app named"), "{detail}");
    }
    // bank is the only app with a version: it still answers every call.
    let mut call = Call::new();
    assert_eq!(call.step(&host, None)["clientActionId"], "main-1");
}

#[test]
fn piped_output_read_by_nobody_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("bank", &guest("bank-menu"));
    for args in [&["apps", "show", "bank"][..], &["apps"], &["routes"]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
            .args(args)
            .env("IVR_ADMIN_URL", &host.admin)
            .env("IVR_ADMIN_TOKEN", common::TOKEN)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is written.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "{args:?}: {stderr}");
    }
}

#[test]
fn a_lost_database_beside_uploaded_components_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    host.deploy("bank", &guest("bank-menu"));
    host.kill();
    let data = dir.path().join("data");
    for file in ["ivr.sqlite3-wal", "ivr.sqlite3-shm"] {
        let _ = std::fs::remove_file(data.join(file));
    }
    std::fs::write(data.join("ivr.sqlite3"), b"").unwrap();
    let stderr = refused_start(
        std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
            .args(common::SERVE_ON_EPHEMERAL_PORTS)
            .arg(&data),
    );
    assert!(
        stderr.contains("missing or empty") && stderr.contains("--fresh-database"),
        "{stderr}"
    );
    // Told to, it starts afresh.
    let host = Host::start_admin(dir.path(), &["--fresh-database"]);
    let (_, apps) = host.admin_call("GET", "/apps", None);
    assert_eq!(apps["apps"], json!([]));
}

#[test]
fn an_empty_admin_token_in_the_config_file_is_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ivr.toml");
    std::fs::write(
        &config,
        "admin_token = \"\"\nadmin_listen = \"0.0.0.0:0\"\n",
    )
    .unwrap();
    let stderr = refused_start(
        std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .env_remove("IVR_ADMIN_TOKEN"),
    );
    assert!(stderr.contains("without a token"), "{stderr}");
}

#[test]
fn a_storage_failure_tells_8x8_to_retry_without_the_storage_internals() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    // Another process holds the write lock of the summaries' database.
    let db = rusqlite_lock(&dir.path().join("data/ivr.sqlite3"));
    let path = format!(
        "{}/tests/fixtures/reference/vss_inbound_completed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let vss = std::fs::read_to_string(path).unwrap();
    let (status, body) = host.post("/webhooks/vss", &vss);
    drop(db);
    assert_eq!(status, 500, "{body}");
    assert!(!body.to_lowercase().contains("database"), "{body}");
    assert!(!body.to_lowercase().contains("sqlite"), "{body}");
    assert!(body.contains("deliver it again"), "{body}");
}

/// Hold `BEGIN EXCLUSIVE` on the database at `path` until dropped.
fn rusqlite_lock(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open the database");
    conn.execute_batch("BEGIN EXCLUSIVE;").expect("lock");
    conn
}

/// A VSS for `session` with `status`.
fn summary(session: &str, status: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/reference/vss_inbound_completed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut vss: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    vss["payload"]["sessionId"] = json!(session);
    vss["payload"]["sessionStatus"] = json!(status);
    vss.to_string()
}

#[test]
fn sigterm_finishes_summary_deliveries_and_queued_traces_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start_admin(dir.path(), &["--guest-time-ms", "2000"]);
    host.deploy("app", &guest("misbehave"));
    let mut calls = Vec::new();
    for _ in 0..20 {
        let mut call = Call::new();
        assert_eq!(
            said(&host.vca(&pressed(&mut call, "state-then-ok"))),
            "Saved."
        );
        calls.push(call);
    }
    // The app is still hearing this summary when the host is told to stop.
    let (status, body) = host.post("/webhooks/vss", &summary(&calls[0].session_id, "SLOW"));
    assert_eq!(status, 200, "{body}");
    host.terminate();
    let exit = host.wait_exit(std::time::Duration::from_secs(15));
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}\n{}",
        host.log()
    );
    let heard = format!("summary heard: session {} ended SLOW", calls[0].session_id);
    assert!(host.log().contains(&heard), "{}", host.log());

    // Every trace record queued before the stop was written.
    drop(host);
    let host = Host::start_admin(dir.path(), &[]);
    for call in &calls {
        let trace = trace_until(&host, &call.session_id, |t| t["events"].is_array());
        assert_eq!(trace["events"][0]["event_type"], "CALL_ACTION", "{trace}");
    }
    let trace = trace_until(&host, &calls[0].session_id, |t| t["events"].is_array());
    let types: Vec<&str> = trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(types, ["CALL_ACTION", "SESSION_SUMMARY"], "{trace}");
}

#[test]
fn sigterm_refuses_new_connections_and_answers_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start_admin(dir.path(), &["--guest-time-ms", "2000"]);
    host.deploy("app", &guest("misbehave"));
    let addr = host.webhooks.trim_start_matches("http://").to_owned();
    // A keep-alive connection that has finished one request, idle.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    {
        use std::io::{Read as _, Write as _};
        idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = idle.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    // A request whose guest sleeps until its 2.1 s wall-clock limit.
    let mut call = Call::new();
    let event = pressed(&mut call, "sleep-long").to_string();
    let request = format!(
        "POST /webhooks/vca HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{event}",
        event.len()
    );
    let base = host.webhooks.clone();
    let in_flight = std::thread::spawn(move || common::raw_request(&base, request.as_bytes()));
    std::thread::sleep(std::time::Duration::from_millis(300));
    host.terminate();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // New connections are refused at once, not left hanging.
    let started = std::time::Instant::now();
    let refused = std::net::TcpStream::connect(&addr);
    assert!(
        refused.is_err(),
        "a new connection was accepted during the drain"
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    // The idle keep-alive connection was closed cleanly (EOF, no reset).
    {
        use std::io::Read as _;
        idle.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(idle.read(&mut buf).map_err(|e| e.kind()), Ok(0));
    }
    // The request in flight got its answer, and was told the connection closes.
    let answer = in_flight.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    let exit = host.wait_exit(std::time::Duration::from_secs(15));
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
}

#[test]
fn a_call_survives_kill_9_on_its_version_with_its_state_and_its_replies() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &[]);
    assert_eq!(host.deploy("app", &guest("misbehave")), 1);
    let mut call = Call::new();
    let first = pressed(&mut call, "count");
    let first_reply = host.vca(&first);
    assert_eq!(said(&first_reply), "Count 1.");
    assert_eq!(
        said(&host.vca(&pressed(&mut call, "state-then-ok"))),
        "Saved."
    );
    host.kill();

    let host = Host::start_admin(dir.path(), &[]);
    // A new version goes live; the call in progress stays on version 1.
    assert_eq!(host.deploy("app", &guest("bank-menu")), 2);
    assert_eq!(host.vca(&first), first_reply, "a repeat was decided again");
    assert_eq!(said(&host.vca(&pressed(&mut call, "count"))), "Count 2.");
    assert_eq!(
        said(&host.vca(&pressed(&mut call, "read-state"))),
        "State holds by a good event."
    );
    // A new call gets the new version.
    let mut new_call = Call::new();
    assert_eq!(new_call.step(&host, None)["clientActionId"], "main-1");
}

/// Send a whole request (headers and `body`) without waiting for an early
/// answer, as clients without `Expect: 100-continue` do; then read the
/// answer. `Err` names what the client saw instead.
fn send_whole_then_read(base: &str, head: &str, body: &[u8]) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let request = format!("{head}content-length: {}\r\n\r\n", body.len());
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|err| format!("sending: {err}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|err| format!("reading: {err}"))?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn early_answers_reach_clients_that_send_the_whole_body_first() {
    let app = format!("bank={}", guest("bank-menu").display());
    let host = Host::start_with_env(
        &["--app", &app],
        &[("IVR_WEBHOOK_AUTH_HEADER", "Basic secret")],
    );
    let body = vec![b' '; 6 << 20];
    for (head, status) in [
        // Unauthorized: refused before the body is read.
        ("POST /webhooks/vca HTTP/1.1\r\nhost: x\r\n", "HTTP/1.1 401"),
        // Over the 64 KiB limit, declared up front.
        (
            "POST /webhooks/vca HTTP/1.1\r\nhost: x\r\nauthorization: Basic secret\r\n",
            "HTTP/1.1 413",
        ),
    ] {
        for _ in 0..5 {
            let answer = send_whole_then_read(&host.webhooks, head, &body);
            assert!(
                answer.as_ref().is_ok_and(|a| a.starts_with(status)),
                "expected {status}, the client saw {answer:?}"
            );
        }
    }
    let (status, _) = common::request("GET", &format!("{}/healthz", host.webhooks), None, &[]);
    assert_eq!(status, 200);
}

#[test]
fn a_full_instance_pool_is_overloaded_not_the_apps_trap() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::start_admin(
        dir.path(),
        &[
            "--max-instances",
            "2",
            "--app-concurrency",
            "16",
            "--guest-time-ms",
            "1000",
        ],
    ));
    host.deploy("app", &guest("misbehave"));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || {
                let mut call = Call::new();
                host.vca(&pressed(&mut call, "sleep-long"));
                call.session_id
            })
        })
        .collect();
    let sessions: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut kinds = Vec::new();
    for session in &sessions {
        let trace = trace_until(&host, session, |t| {
            t["events"].as_array().is_some_and(|e| !e.is_empty())
        });
        kinds.push(
            trace["events"][0]["fault_kind"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    let overloaded = kinds.iter().filter(|k| *k == "overloaded").count();
    assert!(overloaded >= 3, "{kinds:?}");
    assert!(
        kinds.iter().all(|k| k == "overloaded" || k == "deadline"),
        "{kinds:?}"
    );
}

#[test]
fn a_call_idle_past_call_idle_secs_loses_its_pin_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &["--call-idle-secs", "1"]);
    host.deploy("app", &guest("misbehave"));
    let mut call = Call::new();
    assert_eq!(
        said(&host.vca(&pressed(&mut call, "state-then-ok"))),
        "Saved."
    );
    assert_eq!(
        said(&host.vca(&pressed(&mut call, "read-state"))),
        "State holds by a good event.",
        "kept while the call is active"
    );
    host.deploy("app", &guest("hello"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        said(&host.vca(&pressed(&mut call, "read-state"))),
        "Hello from ivr-host. Goodbye!",
        "the idle call's pin expired: routed afresh"
    );
}

#[test]
fn guests_filling_state_and_replies_stay_within_the_memory_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Host::start_admin(
        dir.path(),
        &[
            "--call-state-mib",
            "16",
            "--reply-memory-mib",
            "16",
            "--trace-queue-mib",
            "8",
        ],
    ));
    host.deploy("app", &guest("misbehave"));
    // Warm up: the first events size the allocator's pools.
    for _ in 0..20 {
        host.vca(&pressed(&mut Call::new(), "big-reply"));
    }
    let before = host.rss_kib();
    // 200 calls × 64 keys × 8 KiB (~105 MiB unbounded), then 2,000 replies
    // of ~61 KiB (~120 MiB unbounded), from 4 callers at once.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let host = host.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let reply = host.vca(&pressed(&mut Call::new(), "fill-state"));
                    assert_eq!(said(&reply), "Filled.");
                }
                for _ in 0..500 {
                    let reply = host.vca(&pressed(&mut Call::new(), "big-reply"));
                    assert_eq!(reply["callflow"].as_array().map(Vec::len), Some(21));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let grown_mib = host.rss_kib().saturating_sub(before) / 1024;
    eprintln!("under the hostile load the host grew by {grown_mib} MiB");
    assert!(grown_mib < 80, "the host grew by {grown_mib} MiB");
    let (_, stats) = host.admin_call("GET", "/stats", None);
    let evicted = stats["calls_evicted"].as_u64().unwrap_or(0);
    assert!(evicted > 0, "{stats}");
    assert!(host.log().contains("lost its state and version pin"));
}

#[test]
fn since_a_whole_second_includes_the_calls_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    let mut call = Call::new();
    host.vca(&pressed(&mut call, "state-then-ok"));
    let trace = trace_until(&host, &call.session_id, |t| t["first_at"].is_string());
    let first_at = trace["first_at"].as_str().unwrap().to_owned();
    // The same instant without its fraction: the call began at or after it.
    let whole_second = format!("{}Z", &first_at[..19]);
    assert_ne!(whole_second, first_at, "the host's times carry fractions");
    let (status, listed) = host.admin_call("GET", &format!("/sessions?since={whole_second}"), None);
    assert_eq!(status, 200, "{listed}");
    let sessions: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert!(
        sessions.contains(&call.session_id.as_str()),
        "{first_at}: {listed}"
    );
}

/// Bytes of pages the traces file uses (its free pages not counted).
fn traces_used_bytes(data: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(data.join("traces.sqlite3")).unwrap();
    let pragma = |name: &str| -> i64 {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap()
    };
    ((pragma("page_count") - pragma("freelist_count")) * pragma("page_size")) as u64
}

#[test]
fn the_traces_file_stays_within_its_size_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = misbehave_host(dir.path());
    // ~63 KiB of reply per call: 40 calls are over 2 MiB of traces.
    let mut calls = Vec::new();
    for _ in 0..40 {
        let mut call = Call::new();
        host.vca(&pressed(&mut call, "big-reply"));
        calls.push(call.session_id);
    }
    host.terminate();
    assert!(host.wait_exit(std::time::Duration::from_secs(15)).is_some());
    let data = dir.path().join("data");
    assert!(traces_used_bytes(&data) > 2 << 20);

    // Pruning runs at start, then every minute.
    let host = Host::start_admin(dir.path(), &["--traces-max-mib", "1"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while traces_used_bytes(&data) > 1 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "still {} bytes",
            traces_used_bytes(&data)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The newest calls' traces are the ones kept.
    let (status, _) = host.admin_call("GET", &format!("/sessions/{}", calls[39]), None);
    assert_eq!(status, 200);
    let (status, _) = host.admin_call("GET", &format!("/sessions/{}", calls[0]), None);
    assert_eq!(status, 404);
}

#[test]
fn the_command_line_sets_per_app_settings_and_serve_help_names_its_variables() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    let output = cli(
        &host,
        &["settings", "app", "guest_time_ms=250", "max_concurrent=3"],
    );
    assert!(output.status.success(), "{output:?}");
    let (_, settings) = host.admin_call("GET", "/apps/app/settings", None);
    assert_eq!(
        settings,
        json!({ "guest_time_ms": 250, "max_concurrent": 3 })
    );
    let output = cli(&host, &["settings", "app", "--unset", "max_concurrent"]);
    assert!(output.status.success(), "{output:?}");
    let (_, settings) = host.admin_call("GET", "/apps/app/settings", None);
    assert_eq!(settings, json!({ "guest_time_ms": 250 }));
    // A bad value is refused with the reason.
    let output = cli(&host, &["settings", "app", "guest_time_ms=0"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("422"));

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("IVR_ADMIN_TOKEN") && help.contains("IVR_LOG"),
        "{help}"
    );
}

#[test]
fn answered_calls_are_logged_at_info_and_libraries_stay_quiet_at_debug() {
    let app = format!("bank={}", guest("bank-menu").display());
    let host = Host::start_with_env(&["--app", &app], &[("IVR_LOG", "debug")]);
    let mut call = Call::new();
    call.step(&host, None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !host.log().contains("answered") {
        assert!(std::time::Instant::now() < deadline, "{}", host.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = host.log();
    let line = log.lines().find(|l| l.contains("answered")).unwrap();
    assert!(line.contains(&call.session_id), "{line}");
    assert!(
        !log.contains("cranelift") && !log.contains("wasmtime"),
        "library debug lines: {} lines in all",
        log.lines().count()
    );
}

#[test]
fn pruning_the_traces_under_load_delays_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = misbehave_host(dir.path());
    // Over 4 MiB of traces to prune.
    for _ in 0..80 {
        host.vca(&pressed(&mut Call::new(), "big-reply"));
    }
    host.terminate();
    assert!(host.wait_exit(std::time::Duration::from_secs(15)).is_some());
    // The restart prunes to 1 MiB at once while callers keep calling and
    // summaries keep arriving.
    let host = Arc::new(Host::start_admin(dir.path(), &["--traces-max-mib", "1"]));
    let mut worst = std::time::Duration::ZERO;
    for _ in 0..100 {
        let asked = std::time::Instant::now();
        let mut call = Call::new();
        let reply = host.vca(&pressed(&mut call, "state-then-ok"));
        assert_eq!(said(&reply), "Saved.");
        let (status, body) = host.post("/webhooks/vss", &summary(&call.session_id, "COMPLETED"));
        assert_eq!(status, 200, "{body}");
        worst = worst.max(asked.elapsed());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !host.log().contains("over_the_size_cap=") {
        assert!(
            std::time::Instant::now() < deadline,
            "never pruned:\n{}",
            host.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        worst < std::time::Duration::from_millis(500),
        "a call waited {worst:?}"
    );
}

#[test]
fn small_usability_fixes_hold() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    // The admin API asked of the webhook listener says where it is.
    let (status, body) = common::request("GET", &format!("{}/apps", host.webhooks), None, &[]);
    assert_eq!(status, 404);
    assert!(body.contains("admin listener"), "{body}");
    // --admin without a scheme.
    let bare = host.admin.trim_start_matches("http://").to_owned();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
        .args(["apps", "--admin", &bare])
        .env("IVR_ADMIN_TOKEN", common::TOKEN)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("app"));
    // A status filter in lower case finds the calls in upper case.
    let mut call = Call::new();
    host.vca(&pressed(&mut call, "state-then-ok"));
    let (status, _) = host.post("/webhooks/vss", &summary(&call.session_id, "ERROR"));
    assert_eq!(status, 200);
    let listed = trace_until(&host, &call.session_id, |t| t["status"] == "ERROR");
    assert_eq!(listed["status"], "ERROR");
    let (_, found) = host.admin_call("GET", "/sessions?status=error", None);
    let found: Vec<&str> = found["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert_eq!(found, [call.session_id.as_str()]);
}

#[test]
fn idle_warm_instances_expire() {
    let dir = tempfile::tempdir().unwrap();
    let host = misbehave_host(dir.path());
    let settings = json!({ "warm_instance_events": 100 });
    let (status, body) = host.admin_call(
        "PUT",
        "/apps/app/settings",
        Some(settings.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{body}");
    host.vca(&pressed(&mut Call::new(), "state-then-ok"));
    let idle =
        |host: &Host| host.admin_call("GET", "/stats", None).1["warm_instances_idle"].as_u64();
    assert_eq!(idle(&host), Some(1), "kept warm after a clean event");
    // Dropped 30 s after its last use (checked every 5 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    while idle(&host) != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "still idle after 45 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn a_deploy_far_over_the_upload_limit_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_admin(dir.path(), &["--upload-mib", "1"]);
    let huge = dir.path().join("huge.wasm");
    std::fs::write(&huge, vec![0u8; 64 << 20]).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ivr-host"))
        .args(["deploy", "x"])
        .arg(&huge)
        .args(["--admin", &host.admin])
        .env("IVR_ADMIN_TOKEN", common::TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Either the 413 arrived, or the connection closed mid-upload: both
    // name the limit; the command never dies silently (SIGPIPE).
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("413") || stderr.contains("over the host's limit (`--upload-mib`"),
        "{stderr}"
    );
}
