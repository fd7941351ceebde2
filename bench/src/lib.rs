//! Shared helpers of the benchmarks: start the release `ivr-host`, talk to
//! it over HTTP, format tables.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Every benchmark binary allocates with mimalloc, as the `ivr-host` binary
/// does: B (native) and the in-process stage benchmarks get the same
/// allocator as A, so ratios measure wasm, not malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Seconds of unrecorded events at the start of the driver's fixed-rate
/// run (`drive rate`): they open the connections the rate needs.
pub const RATE_WARM_UP_SECS: u64 = 1;

/// `ivr-host serve` on ephemeral ports; the data directory follows.
pub const SERVE_ON_EPHEMERAL_PORTS: [&str; 6] = [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--admin-listen",
    "127.0.0.1:0",
    "--data-dir",
];

/// The admin token the benchmark hosts use.
pub const TOKEN: &str = "bench-token";

/// The workspace root (the benchmarks run from anywhere inside it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The release binary and guest components, built by `bench/run-*`.
pub fn artifact(relative: &str) -> anyhow::Result<PathBuf> {
    let path = workspace().join("target").join(relative);
    if !path.exists() {
        bail!(
            "{} is missing: run the benchmark through its bench/ script, which builds it",
            path.display()
        );
    }
    Ok(path)
}

/// A binary built beside the running benchmark (`ivr-host`, `native`,
/// `drive`): in `target/release`, or in `target/bench-release` for
/// bench/run's build.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} is missing: run the benchmark through its bench/ script, which builds it",
            path.display()
        );
    }
    Ok(path)
}

/// A running release `ivr-host serve`.
pub struct Host {
    child: Child,
    /// Webhook base URL.
    pub webhooks: String,
    /// Admin base URL.
    pub admin: String,
    /// Time from spawning the process to its ready line.
    pub startup: Duration,
}

impl Host {
    /// Start on ephemeral ports with `data_dir`.
    pub fn start(data_dir: &Path) -> anyhow::Result<Host> {
        let binary = sibling_binary("ivr-host")?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args(SERVE_ON_EPHEMERAL_PORTS)
            .arg(data_dir)
            .env("IVR_ADMIN_TOKEN", TOKEN)
            .env("IVR_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting ivr-host")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let startup = started.elapsed();
        let field = |name: &str| -> anyhow::Result<String> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_owned)
                .with_context(|| format!("no {name} in {line:?}"))
        };
        Ok(Host {
            webhooks: field("webhooks=")?,
            admin: field("admin=")?,
            child,
            startup,
        })
    }

    /// An admin request; returns status and JSON.
    pub fn admin_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> anyhow::Result<(u16, Value)> {
        let auth = format!("Bearer {TOKEN}");
        let (status, text) = http(
            method,
            &format!("{}{path}", self.admin),
            body,
            &[("authorization", &auth)],
        )?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// POST a VCA body; returns the reply JSON.
    pub fn vca(&self, body: &Value) -> anyhow::Result<Value> {
        let (status, text) = http(
            "POST",
            &format!("{}/webhooks/vca", self.webhooks),
            Some(body.to_string().as_bytes()),
            &[],
        )?;
        if status != 200 {
            bail!("VCA answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request.
pub fn http(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let mut response = match body {
        Some(bytes) => agent.run(builder.body(bytes.to_vec())?)?,
        None => agent.run(builder.body(())?)?,
    };
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()?;
    Ok((status, text))
}

/// A first-contact VCA of a new call `n`.
pub fn first_contact(n: u64) -> Value {
    serde_json::json!({ "eventType": "CALL_ACTION", "payload": {
        "eventId": format!("bench-{n}-1"), "sessionId": format!("bench-session-{n}"),
        "callStatus": "CALL_RECEIVED", "callDirection": "INBOUND", "callType": "PSTN",
        "source": "+6591178965", "destination": "+6568332048", "subAccountId": "bench",
        "callDuration": 0, "sipCode": 200, "timestamp": "2026-01-13T08:31:51Z" } })
}

/// The component with a custom section appended: the same code under a
/// different sha256 (a distinct app for the compile cache).
pub fn with_custom_section(component: &[u8], tag: &str) -> Vec<u8> {
    let name = b"ivr-bench";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

/// Median and maximum of durations, in milliseconds.
pub fn summary_ms(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
    )
}
pub mod bank;

/// Seconds of `cpu` (e.g. `"cpu0"`) that the hypervisor gave to other
/// guests so far (the steal column of `/proc/stat`); 0 where not reported.
pub fn stolen_seconds(cpu: &str) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some(cpu)).then(|| fields.nth(7))?
        })
        .and_then(|ticks| ticks.parse::<f64>().ok())
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Where two servers' replies to the driver's branch script (`drive
/// check`, one reply per line) first differ, in words; `None` when they are
/// byte-identical.
pub fn first_difference(reference: &str, replies: &str) -> Option<String> {
    if reference == replies {
        return None;
    }
    let (mut left, mut right) = (reference.lines(), replies.lines());
    let mut line = 1;
    loop {
        match (left.next(), right.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (None, None) => {
                return Some("the same replies, but different line endings".into());
            }
            (a, b) => {
                return Some(format!(
                    "reply {line}: {} against {}",
                    a.unwrap_or("(no reply)"),
                    b.unwrap_or("(no reply)")
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    #[test]
    fn identical_replies_have_no_difference() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
    }

    #[test]
    fn the_first_differing_reply_is_named() {
        assert_eq!(
            first_difference("a\nb\nc\n", "a\nB\nc\n").as_deref(),
            Some("reply 2: b against B")
        );
    }

    #[test]
    fn a_missing_or_extra_reply_is_a_difference() {
        assert_eq!(
            first_difference("a\nb\n", "a\n").as_deref(),
            Some("reply 2: b against (no reply)")
        );
        assert_eq!(
            first_difference("a\n", "a\nb\n").as_deref(),
            Some("reply 2: (no reply) against b")
        );
        assert!(first_difference("a\n", "a\r\n").is_some());
    }
}
