//! The `ivr-host` command line: one file per subcommand.

/// `println!` for the client commands (see [`write_line`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

mod admin;
mod client;
mod eightbyeight;
mod new;
mod serve;
mod sessions;
mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;

/// A WebAssembly-scriptable IVR runtime answering 8x8 CPaaS Voice webhooks.
#[derive(Debug, Parser)]
#[command(
    name = "ivr-host",
    version,
    about,
    after_help = "Environment: IVR_ADMIN_TOKEN (the admin API's bearer token, for `serve` and \
                  the client commands), IVR_LOG (log filter: a level such as `debug` for the host \
                  and its guests, or a full filter such as `info,wasmtime=debug`); every `serve` \
                  flag also reads the IVR_* variable its help names."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the host: answer 8x8 webhooks with the deployed apps.
    #[command(
        after_help = "Environment: IVR_ADMIN_TOKEN is the admin API's bearer token (required on a \
                      non-loopback --admin-listen). IVR_LOG sets the log filter: `info` (the \
                      default: one line per answered event), `warn`, `debug` for the host and its \
                      guests, or a full filter such as `info,wasmtime=debug`."
    )]
    Serve(Box<ServeArgs>),
    /// Upload a component as the new active version of an app.
    Deploy(admin::DeployArgs),
    /// List apps, or show one.
    Apps(admin::AppsArgs),
    /// Make an earlier version of an app active again.
    Rollback(admin::RollbackArgs),
    /// Show or replace the routes.
    Routes(admin::RoutesArgs),
    /// Show or change an app's configuration values.
    Config(admin::ConfigArgs),
    /// Show or change an app's settings (limits, fallback callflow).
    Settings(admin::SettingsArgs),
    /// List, set or delete an app's secrets (values are read from stdin, never shown).
    Secrets(admin::SecretsArgs),
    /// List call traces, or show one call's trace.
    Sessions(sessions::SessionsArgs),
    /// Create a new app project (Rust), with passing tests.
    New(new::NewArgs),
    /// Run a whole call through an app's component, without 8x8 or a server:
    /// what the caller hears, the state, requests and faults, step by step.
    Simulate(Box<simulate::SimulateArgs>),
    /// Create, list or delete the subaccount's 8x8 webhooks.
    Webhooks(eightbyeight::WebhooksArgs),
    /// Start an outbound call with 8x8's Send Callflow API.
    Call(eightbyeight::CallArgs),
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let command = cli.command.unwrap_or(Command::Serve(Box::default()));
    let result = match command {
        Command::Serve(args) => serve::run(*args),
        Command::Deploy(args) => admin::deploy(args),
        Command::Apps(args) => admin::apps(args),
        Command::Rollback(args) => admin::rollback(args),
        Command::Routes(args) => admin::routes(args),
        Command::Config(args) => admin::config(args),
        Command::Settings(args) => admin::settings(args),
        Command::Secrets(args) => admin::secrets(args),
        Command::Sessions(args) => sessions::run(args),
        Command::Simulate(args) => simulate::run(*args),
        Command::New(args) => new::run(args),
        Command::Webhooks(args) => eightbyeight::webhooks(args),
        Command::Call(args) => eightbyeight::call(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ivr-host: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log filter for `IVR_LOG`: a bare level (`debug`) applies to the host
/// and its guests, while the libraries stay at `warn` (Cranelift alone
/// writes thousands of debug lines per compile); a full filter
/// (`info,wasmtime=debug`) is taken as written.
fn log_filter(setting: &str) -> String {
    let setting = setting.trim();
    if setting.contains('=') || setting.contains(',') {
        return setting.to_owned();
    }
    format!("warn,ivr_host={setting},guest={setting}")
}

/// One line of a client command's output. A reader that went away early
/// (`ivr-host apps show X | head`) ends the command quietly, as other Unix
/// tools do, instead of panicking as `println!` would. (Restoring
/// `SIGPIPE` instead would also kill the command silently when the admin
/// API closes a connection mid-upload.)
pub(crate) fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush())
        && err.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Log to stderr; `IVR_LOG` (or `RUST_LOG`) sets the filter, default `info`.
fn init_logging() {
    let filter = std::env::var("IVR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(&filter)))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
