//! `ivr-host deploy`, `apps`, `rollback`, `routes`, `config`, `settings`: the admin API
//! from the command line.

use std::path::PathBuf;

use anyhow::Context as _;
use hyper::Method;
use serde_json::Value;

use super::client::AdminTarget;
use crate::apps::routes::RouteTable;

/// `ivr-host deploy NAME FILE.wasm`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// App name (a short slug, e.g. bank-menu).
    pub name: String,
    /// The component file.
    pub file: PathBuf,
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// `ivr-host apps [list|show NAME]`.
#[derive(Debug, clap::Args)]
pub struct AppsArgs {
    #[command(subcommand)]
    pub command: Option<AppsCommand>,
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// What `ivr-host apps` does.
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// List apps and their active versions (the default).
    List,
    /// Show one app: every version, which is active, its configuration.
    Show {
        /// App name.
        name: String,
    },
    /// Remove an app (refused while a route names it).
    Delete {
        /// App name.
        name: String,
    },
}

/// `ivr-host rollback NAME [VERSION]`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// App name.
    pub name: String,
    /// The version to make active [default: the one before the active one].
    pub version: Option<u32>,
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// `ivr-host routes [show|set FILE]`.
#[derive(Debug, clap::Args)]
pub struct RoutesArgs {
    #[command(subcommand)]
    pub command: Option<RoutesCommand>,
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// What `ivr-host routes` does.
#[derive(Debug, clap::Subcommand)]
pub enum RoutesCommand {
    /// Print the routing table as JSON (the default).
    Show,
    /// Replace the routing table with FILE (JSON, or TOML when it ends in .toml).
    Set {
        /// The routes file.
        file: PathBuf,
    },
}

/// `ivr-host config NAME [KEY=VALUE ...]`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// App name.
    pub name: String,
    /// Values to set (others are kept); none: print the configuration.
    #[arg(value_name = "KEY=VALUE")]
    pub values: Vec<String>,
    /// Remove these keys.
    #[arg(long = "unset", value_name = "KEY")]
    pub unset: Vec<String>,
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// `ivr-host settings NAME [KEY=VALUE...] [--unset KEY]`.
#[derive(Debug, clap::Args)]
pub struct SettingsArgs {
    /// App name.
    pub name: String,
    /// Settings to set (others are kept), e.g. `guest_time_ms=200`; a value
    /// is read as JSON when it is JSON (numbers, a fallback callflow), else
    /// as text. None: print the settings.
    #[arg(value_name = "KEY=VALUE")]
    pub values: Vec<String>,
    /// Remove these settings (back to the host's value).
    #[arg(long = "unset", value_name = "KEY")]
    pub unset: Vec<String>,
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// Show or change an app's settings (limits, fallback) through the admin API.
pub fn settings(args: SettingsArgs) -> anyhow::Result<()> {
    let path = format!("/apps/{}/settings", args.name);
    edit_object(&args.admin, &path, &args.values, &args.unset, |text| {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
    })
}

fn print(value: &Value) {
    say!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

pub fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let size = bytes.len();
    let answer = args
        .admin
        .call(Method::PUT, &format!("/apps/{}", args.name), Some(bytes))?;
    let version = &answer["version"];
    if answer["unchanged"] == Value::Bool(true) {
        say!(
            "{} version {version} is already active ({} bytes, sha256 {})",
            args.name,
            size,
            answer["sha256"].as_str().unwrap_or("?")
        );
    } else {
        say!(
            "deployed {} version {version} ({} bytes, sha256 {}); live for new calls",
            args.name,
            size,
            answer["sha256"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

pub fn apps(args: AppsArgs) -> anyhow::Result<()> {
    match args.command.unwrap_or(AppsCommand::List) {
        AppsCommand::List => {
            let answer = args.admin.call(Method::GET, "/apps", None)?;
            let apps = answer["apps"].as_array().cloned().unwrap_or_default();
            if apps.is_empty() {
                say!("no apps deployed");
            }
            say!(
                "{:<24} {:>7} {:>9}  {:<12}  deployed",
                "APP",
                "ACTIVE",
                "VERSIONS",
                "SHA256"
            );
            for app in apps {
                let active = app["active_version"].as_u64();
                let record = app["versions"]
                    .as_array()
                    .and_then(|v| v.iter().find(|r| r["version"].as_u64() == active));
                say!(
                    "{:<24} {:>7} {:>9}  {:<12}  {}",
                    app["name"].as_str().unwrap_or("?"),
                    active.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                    app["versions"].as_array().map(Vec::len).unwrap_or(0),
                    record
                        .and_then(|r| r["sha256"].as_str())
                        .map(|s| &s[..12.min(s.len())])
                        .unwrap_or("-"),
                    record
                        .and_then(|r| r["deployed_at"].as_str())
                        .unwrap_or("-"),
                );
            }
        }
        AppsCommand::Show { name } => print(&args.admin.call(
            Method::GET,
            &format!("/apps/{name}"),
            None,
        )?),
        AppsCommand::Delete { name } => {
            args.admin
                .call(Method::DELETE, &format!("/apps/{name}"), None)?;
            say!("deleted {name}");
        }
    }
    Ok(())
}

pub fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let body = match args.version {
        Some(v) => serde_json::json!({ "version": v }),
        None => serde_json::json!({}),
    };
    let answer = args.admin.call(
        Method::POST,
        &format!("/apps/{}/rollback", args.name),
        Some(body.to_string().into_bytes()),
    )?;
    say!(
        "{} version {} is active for new calls",
        args.name,
        answer["version"]
    );
    Ok(())
}

pub fn routes(args: RoutesArgs) -> anyhow::Result<()> {
    match args.command.unwrap_or(RoutesCommand::Show) {
        RoutesCommand::Show => print(&args.admin.call(Method::GET, "/routes", None)?),
        RoutesCommand::Set { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let table: RouteTable = if file.extension().is_some_and(|e| e == "toml") {
                toml::from_str(&text).with_context(|| format!("in {}", file.display()))?
            } else {
                serde_json::from_str(&text).with_context(|| format!("in {}", file.display()))?
            };
            let answer =
                args.admin
                    .call(Method::PUT, "/routes", Some(serde_json::to_vec(&table)?))?;
            say!("routes replaced:");
            print(&answer);
        }
    }
    Ok(())
}

pub fn config(args: ConfigArgs) -> anyhow::Result<()> {
    let path = format!("/apps/{}/config", args.name);
    edit_object(&args.admin, &path, &args.values, &args.unset, |text| {
        Value::String(text.to_owned())
    })
}

/// Print the JSON object at `path`, or change it: set each `KEY=VALUE`
/// (the value read by `parse`), remove each of `unset`, and print the
/// result.
fn edit_object(
    admin: &AdminTarget,
    path: &str,
    values: &[String],
    unset: &[String],
    parse: impl Fn(&str) -> Value,
) -> anyhow::Result<()> {
    let current = admin.call(Method::GET, path, None)?;
    if values.is_empty() && unset.is_empty() {
        print(&current);
        return Ok(());
    }
    let mut object = match current {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    for pair in values {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("expected KEY=VALUE, got {pair:?}"))?;
        object.insert(key.to_owned(), parse(value));
    }
    for key in unset {
        object.remove(key);
    }
    print(&admin.call(Method::PUT, path, Some(serde_json::to_vec(&object)?))?);
    Ok(())
}

/// `ivr-host secrets list APP | set APP KEY | delete APP KEY`.
#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
    #[command(flatten)]
    pub admin: AdminTarget,
}

/// What `ivr-host secrets` does.
#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// List an app's secret names (values are never shown).
    List {
        /// App name.
        app: String,
    },
    /// Set a secret, reading its value from stdin (one trailing newline is
    /// dropped): `printf %s "$KEY" | ivr-host secrets set bank api_key`.
    Set {
        /// App name.
        app: String,
        /// The secret's name.
        key: String,
    },
    /// Remove a secret.
    Delete {
        /// App name.
        app: String,
        /// The secret's name.
        key: String,
    },
}

/// List, set or delete an app's secrets through the admin API.
pub fn secrets(args: SecretsArgs) -> anyhow::Result<()> {
    match args.command {
        SecretsCommand::List { app } => {
            let answer = args
                .admin
                .call(Method::GET, &format!("/apps/{app}/secrets"), None)?;
            for secret in answer["secrets"].as_array().into_iter().flatten() {
                say!("{}", secret.as_str().unwrap_or("?"));
            }
        }
        SecretsCommand::Set { app, key } => {
            let mut value = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut value)
                .context("reading the secret's value from stdin")?;
            if value.ends_with(b"\n") {
                value.pop();
                if value.ends_with(b"\r") {
                    value.pop();
                }
            }
            args.admin.call(
                Method::PUT,
                &format!("/apps/{app}/secrets/{key}"),
                Some(value),
            )?;
            say!("set secret {key} of {app}");
        }
        SecretsCommand::Delete { app, key } => {
            args.admin
                .call(Method::DELETE, &format!("/apps/{app}/secrets/{key}"), None)?;
            say!("deleted secret {key} of {app}");
        }
    }
    Ok(())
}
