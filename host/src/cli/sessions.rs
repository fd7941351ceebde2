//! `ivr-host sessions [list|show ID]`: call traces from the admin API.

use hyper::Method;
use serde_json::Value;

use super::client::AdminTarget;

/// `ivr-host sessions`.
#[derive(Debug, clap::Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub command: Option<SessionsCommand>,
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// What `ivr-host sessions` does.
#[derive(Debug, clap::Subcommand)]
pub enum SessionsCommand {
    /// Recent calls, newest first (the default).
    List {
        /// Only this status (COMPLETED, BUSY, ..., or IN_PROGRESS).
        #[arg(long)]
        status: Option<String>,
        /// Only calls answered by this app.
        #[arg(long)]
        app: Option<String>,
        /// Only calls since this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only calls before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One call's whole trace, as JSON.
    Show {
        /// The session id.
        id: String,
    },
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub fn run(args: SessionsArgs) -> anyhow::Result<()> {
    let command = args.command.unwrap_or(SessionsCommand::List {
        status: None,
        app: None,
        since: None,
        until: None,
        limit: 50,
    });
    match command {
        SessionsCommand::Show { id } => {
            let trace =
                args.admin
                    .call(Method::GET, &format!("/sessions/{}", encode(&id)), None)?;
            say!("{}", serde_json::to_string_pretty(&trace)?);
        }
        SessionsCommand::List {
            status,
            app,
            since,
            until,
            limit,
        } => {
            let mut query = vec![format!("limit={limit}")];
            for (key, value) in [
                ("status", status),
                ("app", app),
                ("since", since),
                ("until", until),
            ] {
                if let Some(value) = value {
                    query.push(format!("{key}={}", encode(&value)));
                }
            }
            let answer =
                args.admin
                    .call(Method::GET, &format!("/sessions?{}", query.join("&")), None)?;
            let sessions = answer["sessions"].as_array().cloned().unwrap_or_default();
            if sessions.is_empty() {
                say!("no calls recorded");
                return Ok(());
            }
            say!(
                "{:<40} {:<12} {:<16} {:>6}  {:<30}  FIRST EVENT",
                "SESSION",
                "STATUS",
                "APP",
                "EVENTS",
                "ERROR"
            );
            for s in sessions {
                let error = match (&s["error_code"], &s["error_meaning"]) {
                    (Value::Number(code), Value::String(meaning)) => format!("{code} {meaning}"),
                    _ => String::new(),
                };
                let app = match (&s["app"], &s["version"]) {
                    (Value::String(a), Value::Number(v)) => format!("{a} v{v}"),
                    _ => "-".into(),
                };
                say!(
                    "{:<40} {:<12} {:<16} {:>6}  {:<30}  {}",
                    s["session_id"].as_str().unwrap_or("?"),
                    s["status"].as_str().unwrap_or("?"),
                    app,
                    s["event_count"].as_u64().unwrap_or(0),
                    error,
                    s["first_at"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}
