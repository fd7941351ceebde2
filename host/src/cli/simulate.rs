//! `ivr-host simulate FILE.wasm`: a whole call through the real runtime and
//! sandbox, no HTTP and no 8x8: prints what the caller hears, the state the
//! app keeps, its outbound requests and any fault, step by step. Digits come
//! from `--press` (in order), else from stdin (one line per step; on a
//! terminal it asks). Exits non-zero on a fault, so it serves in CI.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::protocol::callflow::Action;
use crate::protocol::{self, ReplyLimits, Webhook};
use crate::runtime::capabilities::http::HttpSettings;
use crate::runtime::capabilities::http::network::OutboundNetwork;
use crate::runtime::{
    AppSecrets, CallState, EventContext, GuestLimits, KvScope, RequestLog, Runtime, RuntimeOptions,
};
use crate::store::kv::SqliteKv;

/// `ivr-host simulate FILE.wasm [--press DIGITS]...`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The app's component.
    pub file: PathBuf,
    /// Digits the caller presses, one step each, in order (`--press 1
    /// --press 1234#`); an empty value is a timeout (nothing pressed).
    #[arg(long = "press", value_name = "DIGITS")]
    pub press: Vec<String>,
    /// A configuration value (`KEY=VALUE`, repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// A secret (`KEY=VALUE`, repeatable).
    #[arg(long = "secret", value_name = "KEY=VALUE")]
    pub secret: Vec<String>,
    /// Allow outbound requests to `scheme://host[:port]` (repeatable).
    #[arg(long = "allow", value_name = "ORIGIN")]
    pub allow: Vec<String>,
    /// Private networks outbound requests may reach (comma-separated CIDRs).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub outbound_private_networks: Vec<ipnet::IpNet>,
    /// The caller's number.
    #[arg(long, default_value = "+6591234567")]
    pub from: String,
    /// The virtual number called.
    #[arg(long, default_value = "+6568888888")]
    pub to: String,
    /// Most steps before the simulation stops.
    #[arg(long, default_value_t = 50)]
    pub max_steps: u32,
}

/// Run the simulation.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(simulate(args))
}

fn pairs(values: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    values
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("{what} {pair:?}: give KEY=VALUE"),
        })
        .collect()
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let runtime = Runtime::new(RuntimeOptions {
        fuel: true,
        ..RuntimeOptions::default()
    })?;
    let app = runtime
        .compile(&bytes)
        .with_context(|| format!("{} was refused", args.file.display()))?;
    let config = Arc::new(pairs(&args.config, "--config")?);
    let secrets = Arc::new(AppSecrets::new(pairs(&args.secret, "--secret")?));
    let http = HttpSettings {
        allowed_outbound_hosts: Some(args.allow.clone()),
        ..HttpSettings::default()
    };
    http.validate().map_err(anyhow::Error::msg)?;
    let outbound = http.resolve(&Arc::new(OutboundNetwork {
        private_networks: args.outbound_private_networks.clone(),
    }));
    let kv: Arc<dyn crate::store::kv::KvStore> =
        Arc::new(SqliteKv::open(std::path::Path::new(":memory:"))?);
    let limits = GuestLimits {
        fuel: true,
        ..GuestLimits::default()
    };
    let name: Arc<str> = Arc::from("simulated");

    let mut presses = args.press.clone().into_iter();
    let interactive = args.press.is_empty() && std::io::stdin().is_terminal();
    let mut stdin = std::io::stdin().lock();
    let mut state = CallState::new();
    let mut client_action_id: Option<String> = None;
    let out = &mut std::io::stdout().lock();
    for step in 1..=args.max_steps {
        let digits = if step == 1 {
            None
        } else {
            match next_digits(
                &mut presses,
                args.press.is_empty(),
                interactive,
                &mut stdin,
                out,
            )? {
                Some(digits) => digits,
                None => {
                    writeln!(out, "(no more input: the caller hangs up)")?;
                    return Ok(());
                }
            }
        };
        let event = event_json(&args, step, digits.as_deref(), client_action_id.as_deref());
        let Webhook::CallAction(event) = protocol::parse_webhook(event.as_bytes())
            .map_err(|e| anyhow::anyhow!("building the event: {e}"))?
        else {
            bail!("the simulated event is not a call action");
        };
        let requests = RequestLog::default();
        let call = EventContext {
            app: name.clone(),
            version: Arc::from("1"),
            session_id: event.session_id.clone(),
            state: state.clone(),
            config: config.clone(),
            secrets: secrets.clone(),
            kv: KvScope::new(kv.clone(), name.clone(), 16 << 20),
            outbound: outbound.clone(),
            requests: requests.clone(),
        };
        let started = Instant::now();
        let outcome = runtime
            .handle_call_action(&app, &event, call, &limits)
            .await;
        let elapsed = started.elapsed();
        let pressed = match &digits {
            None if step == 1 => "the call arrives".to_owned(),
            None => "no digits (timeout)".to_owned(),
            Some(d) => format!("presses {d}"),
        };
        writeln!(
            out,
            "── step {step}: {pressed}  [{:.2} ms, fuel {}]",
            elapsed.as_secs_f64() * 1000.0,
            outcome.fuel_used.unwrap_or(0)
        )?;
        // What the guest printed (a panic's message lands here); its log
        // import lines go to the log on stderr (IVR_LOG).
        for line in String::from_utf8_lossy(&outcome.output).lines() {
            if !line.trim().is_empty() {
                writeln!(out, "   print {}", crate::runtime::escape_controls(line))?;
            }
        }
        for record in requests.records() {
            let result = match (&record.status, &record.error) {
                (_, Some(error)) => error.clone(),
                (Some(status), None) => format!("{status}, {} bytes", record.bytes),
                (None, None) => "no answer".into(),
            };
            writeln!(out, "   http  {} {} → {result}", record.method, record.url)?;
        }
        let flow = match outcome.result.and_then(|flow| {
            protocol::validate(&flow, &ReplyLimits::default())
                .map_err(|rule| crate::runtime::Fault::InvalidReply(rule.to_string()))?;
            Ok(flow)
        }) {
            Ok(flow) => flow,
            Err(fault) => {
                writeln!(out, "   FAULT {}: {fault}", fault.kind())?;
                writeln!(
                    out,
                    "   (the caller would hear the app's fallback callflow)"
                )?;
                out.flush()?;
                std::process::exit(1);
            }
        };
        if outcome.state_changed {
            show_state_changes(out, &state, &outcome.state)?;
        }
        state = outcome.state;
        let mut ends = false;
        for action in &flow.callflow {
            match action {
                Action::Say(say) => writeln!(out, "   says  \"{}\"", say.text)?,
                Action::SayAndCapture(capture) => writeln!(
                    out,
                    "   asks  \"{}\"  (digits {}–{}{})",
                    capture.prompt_message,
                    capture.min_digits.unwrap_or(1),
                    capture.max_digits.unwrap_or(1),
                    if capture.complete_on_hash == Some(true) {
                        ", # ends"
                    } else {
                        ""
                    }
                )?,
                Action::PlayFile(file) => writeln!(out, "   plays {}", file.file_url)?,
                Action::MakeCall(dial) => {
                    ends = true;
                    writeln!(
                        out,
                        "   dials {} (caller id {})",
                        dial.destination, dial.source
                    )?
                }
                Action::Hangup => {
                    ends = true;
                    writeln!(out, "   hangs up")?
                }
            }
        }
        if ends {
            return Ok(());
        }
        client_action_id = flow.client_action_id;
    }
    writeln!(out, "(stopped after {} steps)", args.max_steps)?;
    Ok(())
}

/// The digits of the next step: `Some(None)` for a timeout, `None` when the
/// input has ended.
fn next_digits(
    presses: &mut impl Iterator<Item = String>,
    from_stdin: bool,
    interactive: bool,
    stdin: &mut impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<Option<Option<String>>> {
    let line = if from_stdin {
        if interactive {
            write!(out, "digits (empty: timeout, q: hang up)> ")?;
            out.flush()?;
        }
        let mut line = String::new();
        if stdin.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim().to_owned();
        if line == "q" {
            return Ok(None);
        }
        line
    } else {
        match presses.next() {
            Some(press) => press,
            None => return Ok(None),
        }
    };
    Ok(Some(Some(line).filter(|d| !d.is_empty())))
}

fn show_state_changes(
    out: &mut impl Write,
    before: &CallState,
    after: &CallState,
) -> anyhow::Result<()> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        match (before.get(key), after.get(key)) {
            (old, Some(new)) if old != Some(new) => writeln!(out, "   state {key} = {new:?}")?,
            (Some(_), None) => writeln!(out, "   state {key} deleted")?,
            _ => {}
        }
    }
    Ok(())
}

/// The VCA 8x8 would send for `step` of the call, as JSON.
fn event_json(args: &SimulateArgs, step: u32, digits: Option<&str>, echo: Option<&str>) -> String {
    let mut payload = serde_json::json!({
        "eventId": format!("simulated-event-{step}"),
        "callId": "simulated-leg",
        "sessionId": "simulated-session",
        "subAccountId": "simulated",
        "callStatus": if step == 1 { "CALL_RECEIVED" } else { "ACTION_COMPLETED" },
        "callDirection": "INBOUND",
        "callType": "PSTN",
        "source": args.from,
        "destination": args.to,
        "callDuration": (step - 1) * 5,
        "sipCode": 200,
        "timestamp": "2026-01-13T08:31:51.123Z",
    });
    if step > 1 {
        payload["eventData"] = serde_json::json!({ "dtmf": digits });
        if let Some(id) = echo {
            payload["clientActionId"] = id.into();
        }
    }
    serde_json::json!({ "eventType": "CALL_ACTION", "payload": payload }).to_string()
}
