//! bench/run: ivr-host (A) against the native limit (B) and the usual
//! alternative in Node.js (C1 Express, C2 plain http), side by side in one
//! run: servers pinned to CPU 0, the load driver to CPU 1.
//!
//! Fails loudly if the four servers' replies to the branch script differ.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ivr_bench::{RATE_WARM_UP_SECS, cpu_seconds, stolen_seconds, workspace};
use serde_json::Value;

const SATURATION_SECS: u64 = 4;
/// The fixed rate runs this many consecutive windows per server; the table
/// shows the median of each percentile (on these shared machines one run's
/// p99 has ranged 0.2–2.2 ms for B and 1–26 ms for A), the text every
/// window's p99.
const RATE_RUNS: usize = 5;
const RATE_SECS: u64 = 2;
const CALLERS: u64 = 64;

struct Server {
    name: &'static str,
    child: Child,
    url: String,
    /// ivr-host's admin listener.
    admin: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `ivr_host::tune_allocator` sets in A, as mimalloc's environment
/// variables, for the other processes that use mimalloc (B and the driver):
/// no decommits on purge, and no transparent huge pages (a 2 MiB page
/// faulted in costs 5–15 ms here).
const ALLOCATOR_AS_IN_A: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DECOMMITS", "0"),
    ("MIMALLOC_ALLOW_THP", "0"),
];

fn pinned(cpu: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    if Command::new("taskset").arg("-V").output().is_ok() {
        let mut command = Command::new("taskset");
        command.args(["-c", cpu]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start(name: &'static str, mut command: Command) -> anyhow::Result<Server> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let base = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("webhooks="))
        .with_context(|| format!("{name} printed no address: {line:?}"))?;
    let admin = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .map(str::to_owned);
    Ok(Server {
        name,
        child,
        url: format!("{base}/webhooks/vca"),
        admin,
    })
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn drive(args: &[&str]) -> anyhow::Result<String> {
    let driver = ivr_bench::sibling_binary("drive")?;
    // The driver's own stalls would show in every server's latency.
    let output = pinned("1", driver)
        .args(args)
        .envs(ALLOCATOR_AS_IN_A)
        .output()?;
    ensure!(
        output.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// wrk's Lua script: one first-contact VCA per request, each of a new call
/// (unique eventId and sessionId, so no server can answer from a cache).
fn wrk_script(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    const MARK: u64 = 987_654_321;
    let template = ivr_bench::first_contact(MARK).to_string();
    ensure!(
        !template.contains('\'') && !template.contains('%'),
        "the body template cannot be quoted for Lua"
    );
    let script = format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local template = '{template}'
local n = 0
request = function()
  n = n + 1
  local body = template:gsub("{MARK}", "wrk" .. n)
  return wrk.format(nil, nil, nil, body)
end
"#
    );
    let path = dir.join("first-contact.lua");
    std::fs::write(&path, script)?;
    Ok(path)
}

/// Single-event saturation with wrk (pinned to the driver's CPU): events/s
/// and wrong answers (non-2xx replies, socket errors).
fn wrk_saturation(url: &str, script: &Path) -> anyhow::Result<(f64, u64)> {
    let output = pinned("1", "wrk")
        .args(["-t1", "-c64", &format!("-d{SATURATION_SECS}s"), "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk (bench/run installs it)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "wrk failed: {text}");
    let number = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let per_sec = number("Requests/sec:").context("wrk printed no Requests/sec")?;
    let non_2xx = number("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64;
    let socket_errors = text
        .lines()
        .find(|l| l.trim().starts_with("Socket errors:"))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|d| d.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok((per_sec, non_2xx + socket_errors))
}

/// ivr-host's count of trace records dropped so far (0 for other servers).
fn traces_dropped(server: &Server) -> anyhow::Result<u64> {
    let Some(admin) = &server.admin else {
        return Ok(0);
    };
    let (status, stats) = ivr_bench::http("GET", &format!("{admin}/stats"), None, &[])?;
    ensure!(
        status == 200,
        "{}: /stats answered {status} {stats}",
        server.name
    );
    let stats: Value = serde_json::from_str(&stats)?;
    stats["trace_records_dropped"]
        .as_u64()
        .context("/stats without trace_records_dropped")
}

/// ivr-host's dropped trace records: at saturation, then at the fixed rate.
struct TraceDrops {
    saturation: u64,
    saturation_events: f64,
    rate: u64,
    rate_events: f64,
}

/// "A 35 %, B 83 %, ...": a share per row, labelled by the row's letter.
fn percent_per_row(rows: &[Row], decimals: usize, share: impl Fn(&Row) -> f64) -> String {
    let shares: Vec<String> = rows
        .iter()
        .map(|r| {
            let label = r.name.split(':').next().unwrap_or(r.name);
            format!("{label} {:.decimals$} %", share(r) * 100.0)
        })
        .collect();
    shares.join(", ")
}

struct Row {
    name: &'static str,
    traces: Option<TraceDrops>,
    events_per_sec: f64,
    wrk_per_sec: f64,
    wrk_cpu_us: f64,
    cpu_us_per_event: f64,
    p50: u64,
    p99: u64,
    /// Each fixed-rate run's p99.
    p99_runs: Vec<u64>,
    /// Time the hypervisor took from either CPU during each fixed-rate run.
    rate_steal_ms: Vec<f64>,
    p999: u64,
    rss_mib: f64,
    errors: u64,
    /// Where the errors happened: calls, wrk, fixed rate.
    error_phases: [u64; 3],
    /// The driver's CPU share during the realistic-calls saturation run.
    driver_busy: f64,
    /// Share of the server's CPU the hypervisor gave to other guests while
    /// this row was measured.
    stolen: f64,
}

fn main() -> anyhow::Result<()> {
    let root = workspace();
    let data = tempfile::tempdir()?;
    let node_script = root.join("bench/node/bank.js");
    let component = root.join("target/wasm32-wasip2/release/bank_menu.wasm");
    ensure!(
        Path::new(&component).exists(),
        "build the guests first (bench/run does)"
    );

    let ivr_host = |data_dir: &str| -> anyhow::Result<Command> {
        let mut command = pinned("0", ivr_bench::sibling_binary("ivr-host")?);
        command
            .args(ivr_bench::SERVE_ON_EPHEMERAL_PORTS)
            .arg(data.path().join(data_dir))
            .arg("--app")
            .arg(format!("bank-menu={}", component.display()))
            .args([
                "--app-config",
                "bank-menu.agent_number=+6560002222",
                "--app-config",
                "bank-menu.caller_id=+6561110000",
            ])
            .env("IVR_LOG", "error");
        Ok(command)
    };
    let a = ivr_host("ivr-data")?;
    let a_warm = ivr_host("ivr-data-warm")?;
    let mut b = pinned("0", ivr_bench::sibling_binary("native")?);
    // A's allocator settings (ivr_host::tune_allocator), through the
    // environment: B does not link ivr-host.
    b.arg("127.0.0.1:0").envs(ALLOCATOR_AS_IN_A);
    let mut c1 = pinned("0", "node");
    c1.arg(&node_script).arg("express");
    let mut c2 = pinned("0", "node");
    c2.arg(&node_script).arg("http");
    let servers = vec![
        start("A: ivr-host (bank-menu component)", a)?,
        start("A-warm: ivr-host, warm_instance_events 1000", a_warm)?,
        start("B: native Rust + hyper", b)?,
        start("C1: Node.js + Express", c1)?,
        start("C2: Node.js plain http", c2)?,
    ];

    // The opt-in warm-instance mode, set through the admin API.
    let warm_admin = servers[1]
        .admin
        .as_deref()
        .context("A-warm printed no admin address")?;
    let (status, body) = ivr_bench::http(
        "PUT",
        &format!("{warm_admin}/apps/bank-menu/settings"),
        Some(br#"{"warm_instance_events":1000}"#),
        &[],
    )?;
    ensure!(status == 200, "A-warm settings: {status} {body}");

    // Byte-identical replies over every branch, or no numbers at all.
    let reference = drive(&["check", &servers[0].url])?;
    ensure!(
        reference.lines().count() >= 20,
        "the branch script produced too few replies"
    );
    for server in &servers[1..] {
        let replies = drive(&["check", &server.url])?;
        if let Some(difference) = ivr_bench::first_difference(&reference, &replies) {
            bail!(
                "REPLIES DIFFER between {} and {}: {difference}",
                servers[0].name,
                server.name
            );
        }
    }
    println!(
        "replies byte-identical across A, B, C1, C2 ({} replies over every branch)\n",
        reference.lines().count()
    );

    let script = wrk_script(data.path())?;
    let mut rows = Vec::new();
    let mut half_of_a = 0u64;
    for server in &servers {
        let pid = server.child.id();
        let (started, stolen_before) = (Instant::now(), stolen_seconds("cpu0"));
        let cpu_before = cpu_seconds(pid);
        let saturation: Value = serde_json::from_str(&drive(&[
            "calls",
            &server.url,
            &CALLERS.to_string(),
            &SATURATION_SECS.to_string(),
        ])?)?;
        let cpu = cpu_seconds(pid) - cpu_before;
        let events = saturation["events"].as_f64().unwrap_or(0.0);
        let eps = saturation["events_per_sec"].as_f64().unwrap_or(0.0);
        if half_of_a == 0 {
            half_of_a = (eps / 2.0) as u64;
        }
        let cpu_before_wrk = cpu_seconds(pid);
        let (wrk_per_sec, wrk_errors) = wrk_saturation(&server.url, &script)?;
        let wrk_cpu = cpu_seconds(pid) - cpu_before_wrk;
        if server.admin.is_some() {
            // Let the trace writer catch up before the fixed rate.
            std::thread::sleep(Duration::from_secs(2));
        }
        let dropped_before_rate = traces_dropped(server)?;
        // A server whose saturation is below the offered rate (C1) gets
        // one window: its queue, not the noise, sets its tail, and more
        // windows would only grow the queue it must drain.
        let runs = if eps < half_of_a as f64 { 1 } else { RATE_RUNS };
        let output = drive(&[
            "rate",
            &server.url,
            &half_of_a.to_string(),
            &RATE_SECS.to_string(),
            &runs.to_string(),
        ])?;
        let rates = output
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<Vec<Value>, _>>()?;
        let rate_steal_ms: Vec<f64> = rates
            .iter()
            .map(|r| r["steal_ms"].as_f64().unwrap_or(0.0))
            .collect();
        let median = |key: &str| {
            let mut values: Vec<u64> = rates.iter().filter_map(|r| r[key].as_u64()).collect();
            values.sort_unstable();
            values.get(values.len() / 2).copied().unwrap_or(0)
        };
        let sum = |key: &str| rates.iter().filter_map(|r| r[key].as_f64()).sum::<f64>();
        let traces = match server.admin {
            Some(_) => Some(TraceDrops {
                saturation: dropped_before_rate,
                saturation_events: events + wrk_per_sec * SATURATION_SECS as f64,
                rate: traces_dropped(server)? - dropped_before_rate,
                rate_events: sum("sent") + (half_of_a * RATE_WARM_UP_SECS) as f64,
            }),
            None => None,
        };
        let error_phases = [
            saturation["errors"].as_u64().unwrap_or(0),
            wrk_errors,
            (sum("errors") + sum("warm_up_errors")) as u64,
        ];
        rows.push(Row {
            name: server.name,
            traces,
            events_per_sec: eps,
            wrk_per_sec,
            wrk_cpu_us: wrk_cpu * 1e6 / (wrk_per_sec * SATURATION_SECS as f64).max(1.0),
            cpu_us_per_event: cpu * 1e6 / events.max(1.0),
            p50: median("p50_us"),
            p99: median("p99_us"),
            p99_runs: rates.iter().filter_map(|r| r["p99_us"].as_u64()).collect(),
            rate_steal_ms,
            p999: median("p999_us"),
            rss_mib: peak_rss_mib(pid),
            driver_busy: saturation["driver_busy"].as_f64().unwrap_or(0.0),
            stolen: (stolen_seconds("cpu0") - stolen_before) / started.elapsed().as_secs_f64(),
            errors: error_phases.iter().sum(),
            error_phases,
        });
        std::thread::sleep(Duration::from_millis(500));
    }

    println!(
        "Realistic calls (first contact → 1 → account number → 0): {CALLERS} concurrent callers of our own driver, {SATURATION_SECS} s. \
         Single event: wrk, 64 connections, {SATURATION_SECS} s, each request the first contact of a new call. Server on CPU 0, load on CPU 1."
    );
    println!(
        "Latency at a fixed offered rate of {half_of_a} events/s (half of A's saturation), open loop, realistic calls: \
         after an unrecorded second, {RATE_RUNS} consecutive windows of {RATE_SECS} s per server (one for a server whose saturation is below that rate); \
         the median of each percentile.\n"
    );
    println!(
        "| server | calls: events/s | calls: CPU per event | wrk: events/s | wrk: CPU per event | p50 | p99 | p99.9 | peak RSS | errors |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.1} µs | {:.0} | {:.1} µs | {} µs | {} µs | {} µs | {:.0} MiB | {} |",
            r.name,
            r.events_per_sec,
            r.cpu_us_per_event,
            r.wrk_per_sec,
            r.wrk_cpu_us,
            r.p50,
            r.p99,
            r.p999,
            r.rss_mib,
            r.errors
        );
    }
    println!("\n| ratio (events/s) | realistic calls | single event (wrk) | target |");
    println!("| --- | ---: | ---: | ---: |");
    for (a, a_name) in [(0, "A"), (1, "A-warm")] {
        for (other, other_name, target) in [
            (2, "B", "as high as it goes (stretch 0.5)"),
            (3, "C1", "≥ 3"),
            (4, "C2", "≥ 1.2"),
        ] {
            println!(
                "| {a_name} / {other_name} | {:.2} | {:.2} | {target} |",
                rows[a].events_per_sec / rows[other].events_per_sec,
                rows[a].wrk_per_sec / rows[other].wrk_per_sec,
            );
        }
    }
    for (a, a_name) in [(0, "A"), (1, "A-warm")] {
        println!(
            "| {a_name} p99 at the fixed rate | {} µs | | ≤ 1000 µs |",
            rows[a].p99
        );
    }
    println!();
    println!(
        "The driver's CPU use during the realistic-calls saturation run (near 100 %, the driver set that row's figure, not the server): {}.",
        percent_per_row(&rows, 0, |r| r.driver_busy)
    );
    println!(
        "CPU 0's time taken by the hypervisor for other guests while each row was measured (steal in /proc/stat; a few per cent makes that row's figures unreliable): {}.",
        percent_per_row(&rows, 1, |r| r.stolen)
    );
    for row in &rows {
        let runs: Vec<String> = row
            .p99_runs
            .iter()
            .zip(&row.rate_steal_ms)
            .map(|(p, stolen)| format!("{p} µs (steal {stolen:.0} ms)"))
            .collect();
        println!(
            "{}: p99 of each fixed-rate window (and the time stolen from CPU 0 and 1 by the hypervisor during it): {}.",
            row.name,
            runs.join(", ")
        );
    }
    println!();
    for row in &rows {
        if let Some(t) = &row.traces {
            println!(
                "{}: trace records dropped: {} of {:.0} events in the two saturation runs, {} of {:.0} sent at the fixed rate \
                 (its unrecorded first second included; the trace writer runs only on CPU the calls leave idle).",
                row.name, t.saturation, t.saturation_events, t.rate, t.rate_events
            );
        }
    }
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    let failing: Vec<String> = rows
        .iter()
        .filter(|r| r.errors > 0)
        .map(|r| {
            let [calls, wrk, rate] = r.error_phases;
            format!("{}: calls {calls}, wrk {wrk}, fixed rate {rate}", r.name)
        })
        .collect();
    ensure!(
        errors == 0,
        "{errors} requests failed or got a wrong answer ({})",
        failing.join("; ")
    );
    Ok(())
}
