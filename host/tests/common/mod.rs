//! Test support: build the example guests, start the real `ivr-host`
//! binary on ephemeral ports, talk to it over real HTTP.

#![allow(dead_code)]

pub mod backend;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Build every guest crate for wasm32-wasip2 (once per test process) and
/// return the path of `package`'s component.
pub fn guest(package: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = workspace();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .args([
                "-p",
                "hello",
                "-p",
                "bank-menu",
                "-p",
                "misbehave",
                "-p",
                "wrongworld",
                "-p",
                "reach",
                "-p",
                "legacy",
            ])
            .output()
            .expect("running cargo to build the guests");
        assert!(
            output.status.success(),
            "building the guests failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("wasm32-wasip2").join("release")
    });
    let path = dir.join(format!("{}.wasm", package.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// `ivr-host serve` on ephemeral ports; the data directory follows.
pub const SERVE_ON_EPHEMERAL_PORTS: [&str; 6] = [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--admin-listen",
    "127.0.0.1:0",
    "--data-dir",
];

/// The admin token the test hosts started with [`Host::start_admin`] use.
pub const TOKEN: &str = "test-admin-token";

/// A host with the admin token in `dir`, serving the misbehaving test guest
/// as `app`.
pub fn misbehave_host(dir: &Path) -> Host {
    let host = Host::start_admin(dir, &[]);
    host.deploy("app", &guest("misbehave"));
    host
}

/// The JavaScript test app (`tests/guests/js-fetch`) built with
/// componentize-js's defaults (npm's registry; Node.js from tests/setup.sh),
/// once per test process.
pub fn js_guest() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = workspace().join("tests/guests/js-fetch");
            let out = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace().join("target"))
                .join("js-fetch.wasm");
            for (program, args) in [
                ("npm", vec!["ci", "--no-audit", "--no-fund"]),
                ("node", vec!["build.mjs", out.to_str().expect("UTF-8 path")]),
            ] {
                let output = Command::new(program)
                    .args(&args)
                    .current_dir(&dir)
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("running {program} (tests/setup.sh installs it): {e}")
                    });
                assert!(
                    output.status.success(),
                    "{program} {args:?} failed:\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            out
        })
        .clone()
}

/// Run `command` with `stdin` as its input; its output.
pub fn with_stdin(command: &mut Command, stdin: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running ivr-host");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writing stdin");
    child.wait_with_output().expect("waiting for ivr-host")
}

/// A running `ivr-host serve` process.
pub struct Host {
    child: Child,
    /// `http://127.0.0.1:PORT` of the webhook listener.
    pub webhooks: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
    /// The directory holding the data directory (`data/`) and the log.
    pub dir: PathBuf,
    _owned: Option<tempfile::TempDir>,
}

impl Host {
    /// Start `ivr-host serve` with `args` (listeners on ephemeral ports) in
    /// a fresh directory.
    pub fn start(args: &[&str]) -> Host {
        Self::start_with_env(args, &[])
    }

    /// Start with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Host {
        let owned = tempfile::tempdir().expect("temp dir");
        let mut host = Self::start_in(owned.path(), args, env);
        host._owned = Some(owned);
        host
    }

    /// Start with the admin token [`TOKEN`] in `dir` (reusing its data).
    pub fn start_admin(dir: &Path, args: &[&str]) -> Host {
        Self::start_in(dir, args, &[("IVR_ADMIN_TOKEN", TOKEN)])
    }

    /// Start in `dir`: its `data/` is the data directory, the log is appended
    /// to `host.log`.
    pub fn start_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Host {
        Self::launch(Self::command(dir, args, env), dir)
    }

    /// Start with at most `files` open file descriptors (soft and hard limit).
    pub fn start_with_open_files(args: &[&str], files: u64) -> Host {
        use std::os::unix::process::CommandExt as _;
        let owned = tempfile::tempdir().expect("temp dir");
        let mut command = Self::command(owned.path(), args, &[]);
        // SAFETY: only setrlimit, async-signal-safe, runs in the child.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: files,
                    rlim_max: files,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut host = Self::launch(command, owned.path());
        host._owned = Some(owned);
        host
    }

    /// The `ivr-host serve` command for `dir`, its log appended to `host.log`.
    fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("host.log"))
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ivr-host"));
        for (key, _) in std::env::vars() {
            if key.starts_with("IVR_") {
                command.env_remove(key);
            }
        }
        command
            .args(SERVE_ON_EPHEMERAL_PORTS)
            .arg(dir.join("data"))
            .args(args)
            .env("IVR_LOG", "info,guest=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        command
    }

    /// Spawn `command` and wait for its ready line.
    fn launch(mut command: Command, dir: &Path) -> Host {
        let mut child = command.spawn().expect("starting ivr-host");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reading the ready line");
        let log_path = dir.join("host.log");
        if line.is_empty() {
            let _ = child.wait();
            panic!(
                "ivr-host exited before listening:\n{}",
                std::fs::read_to_string(log_path).unwrap_or_default()
            );
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_owned()
        };
        Host {
            webhooks: field("webhooks="),
            admin: field("admin="),
            child,
            dir: dir.to_path_buf(),
            _owned: None,
        }
    }

    /// Everything the host logged so far (in this directory).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("host.log")).unwrap_or_default()
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The host's resident memory, in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Ask the process to stop (SIGTERM), without waiting.
    pub fn terminate(&self) {
        // SAFETY: sends a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Wait (at most `limit`) for the process to exit; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kill the process with SIGKILL (no chance to clean up) and wait for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An admin API request with the test token; returns status and JSON.
    pub fn admin_call(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
        let auth = format!("Bearer {TOKEN}");
        let (status, text) = request(
            method,
            &format!("{}{path}", self.admin),
            body,
            &[("authorization", &auth)],
        );
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// Deploy `file` as `app` through the admin API; returns the version.
    pub fn deploy(&self, app: &str, file: &Path) -> u64 {
        let bytes = std::fs::read(file).expect("component file");
        let (status, json) = self.admin_call("PUT", &format!("/apps/{app}"), Some(&bytes));
        assert!(
            status == 201 || status == 200,
            "deploy {app}: {status} {json}"
        );
        json["version"].as_u64().expect("version")
    }

    /// POST `body` to the webhook listener's `path`.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        request(
            "POST",
            &format!("{}{path}", self.webhooks),
            Some(body.as_bytes()),
            &[],
        )
    }

    /// POST a VCA and return the parsed callflow, asserting a 200.
    pub fn vca(&self, body: &Value) -> Value {
        let (status, text) = self.post("/webhooks/vca", &body.to_string());
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text}"))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `GET /sessions/{id}` until `ready` holds.
pub fn trace_until(host: &Host, session: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, trace) = host.admin_call("GET", &format!("/sessions/{session}"), None);
        if status == 200 && ready(&trace) {
            return trace;
        }
        assert!(
            Instant::now() < deadline,
            "trace of {session} never got ready: {status} {trace}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP request; returns the status and the body.
pub fn request(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let result = match body {
        Some(bytes) => agent.run(
            builder
                .header("content-type", "application/json")
                .body(bytes.to_vec())
                .unwrap(),
        ),
        None => agent.run(builder.body(()).unwrap()),
    };
    let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()
        .unwrap_or_default();
    (status, text)
}

/// Send raw bytes on a fresh connection and return the raw response.
pub fn raw_request(base: &str, bytes: &[u8]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// A simulated caller: numbers its events and threads the session id and
/// the `clientActionId` 8x8 would echo.
pub struct Call {
    pub session_id: String,
    pub client_action_id: Option<String>,
    events: u64,
}

impl Call {
    /// A new call with a unique session id.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self {
            session_id: format!("session-{}-{n}", std::process::id()),
            client_action_id: None,
            events: 0,
        }
    }

    /// The next VCA of this call: first contact (inbound `CALL_RECEIVED`)
    /// when `dtmf` is `None` and nothing was echoed yet, else an
    /// `ACTION_COMPLETED` with the digits (or `null`).
    pub fn event(&mut self, dtmf: Option<&str>) -> Value {
        self.events += 1;
        let mut payload = serde_json::json!({
            "eventId": format!("{}-event-{}", self.session_id, self.events),
            "callId": format!("{}-leg-a", self.session_id),
            "sessionId": self.session_id,
            "subAccountId": "account_x",
            "callStatus": if self.client_action_id.is_some() { "ACTION_COMPLETED" } else { "CALL_RECEIVED" },
            "callDirection": "INBOUND",
            "callType": "PSTN",
            "source": "+6591178965",
            "destination": "+6568332048",
            "sourceFormat": "MSISDN",
            "destinationFormat": "MSISDN",
            "sourceCountryCode": "SG",
            "destinationCountryCode": "SG",
            "destinationRefId": "virtual-number-trunk-01",
            "callDuration": self.events * 5,
            "sipCode": 200,
            "timestamp": "2026-01-13T08:31:51.123Z",
        });
        if let Some(id) = &self.client_action_id {
            payload["clientActionId"] = id.clone().into();
            payload["eventData"] = serde_json::json!({ "dtmf": dtmf });
        }
        serde_json::json!({
            "namespace": "VOICE",
            "eventType": "CALL_ACTION",
            "description": "Action request of a call",
            "payload": payload,
        })
    }

    /// Send the next event to `host`, remember the reply's
    /// `clientActionId` as 8x8 would, and return the reply.
    pub fn step(&mut self, host: &Host, dtmf: Option<&str>) -> Value {
        let event = self.event(dtmf);
        let reply = host.vca(&event);
        self.client_action_id = reply
            .get("clientActionId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        reply
    }
}

impl Default for Call {
    fn default() -> Self {
        Self::new()
    }
}
