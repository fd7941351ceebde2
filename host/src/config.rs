//! Host settings: flags override `IVR_*` environment variables, which
//! override the TOML file given with `--config`, which overrides the
//! defaults. Resolved and validated once, at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use serde::Deserialize;

use crate::apps::routes::RouteTable;
use crate::apps::settings::{AppSettings, HostLimits};
use crate::apps::validate_app_name;
use crate::protocol::ReplyLimits;
use crate::runtime::capabilities::http::network::OutboundNetwork;
use crate::runtime::{AppConfig, GuestLimits, LogLimits};

/// Default webhook listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./ivr-data";

/// `ivr-host serve` flags (each also readable from an `IVR_*` variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "IVR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address for 8x8's webhooks [default: 127.0.0.1:8080].
    #[arg(long, env = "IVR_LISTEN", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub listen: Option<SocketAddr>,
    /// Address for the admin API [default: 127.0.0.1:8081].
    #[arg(long, env = "IVR_ADMIN_LISTEN", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub admin_listen: Option<SocketAddr>,
    /// Where the host keeps its data [default: ./ivr-data].
    #[arg(long, env = "IVR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Load an app at start: NAME=FILE.wasm (repeatable).
    #[arg(long = "app", value_name = "NAME=FILE", value_parser = parse_app_source)]
    pub apps: Vec<AppSource>,
    /// Set an app configuration value: NAME.KEY=VALUE (repeatable).
    #[arg(long = "app-config", value_name = "NAME.KEY=VALUE", value_parser = parse_app_setting)]
    pub app_config: Vec<AppSetting>,
    /// The app answering calls no route matches (optional with a single app).
    #[arg(long, env = "IVR_DEFAULT_APP", value_name = "NAME")]
    pub default_app: Option<String>,
    /// Guest run time per event, in milliseconds [default: 100].
    #[arg(long, env = "IVR_GUEST_TIME_MS", value_name = "MS")]
    pub guest_time_ms: Option<u64>,
    /// Guest linear memory cap, in MiB [default: 32].
    #[arg(long, env = "IVR_GUEST_MEMORY_MIB", value_name = "MIB")]
    pub guest_memory_mib: Option<usize>,
    /// Largest webhook body, in KiB [default: 64].
    #[arg(long, env = "IVR_WEBHOOK_BODY_KIB", value_name = "KIB")]
    pub webhook_body_kib: Option<usize>,
    /// Largest reply, in KiB [default: 64].
    #[arg(long, env = "IVR_REPLY_KIB", value_name = "KIB")]
    pub reply_kib: Option<usize>,
    /// Most actions in a reply [default: 32].
    #[arg(long, env = "IVR_REPLY_ACTIONS", value_name = "N")]
    pub reply_actions: Option<usize>,
    /// Largest uploaded component, in MiB [default: 32].
    #[arg(long, env = "IVR_UPLOAD_MIB", value_name = "MIB")]
    pub upload_mib: Option<usize>,
    /// The `Authorization` header value 8x8 must send on every webhook (the
    /// `--auth-header` given to `ivr-host webhooks create`); unset: open.
    #[arg(
        long,
        env = "IVR_WEBHOOK_AUTH_HEADER",
        hide_env_values = true,
        value_name = "VALUE"
    )]
    pub webhook_auth_header: Option<String>,
    /// Keep call traces and summaries this many days [default: 30].
    #[arg(long, env = "IVR_RETENTION_DAYS", value_name = "DAYS")]
    pub retention_days: Option<u64>,
    /// Most events of one app running at once [default: 2 × CPU cores, at least 4].
    #[arg(long, env = "IVR_APP_CONCURRENCY", value_name = "N")]
    pub app_concurrency: Option<usize>,
    /// Meter fuel and log each event's deterministic cost (adds overhead).
    #[arg(long, env = "IVR_FUEL")]
    pub fuel: bool,
    /// How long a call keeps its version pin and state without an event, in
    /// seconds [default: 7200].
    #[arg(long, env = "IVR_CALL_IDLE_SECS", value_name = "SECS")]
    pub call_idle_secs: Option<u64>,
    /// Memory for the state of calls in progress, in MiB; when full, the
    /// calls idle longest lose their state (logged and counted) [default: 256].
    #[arg(long, env = "IVR_CALL_STATE_MIB", value_name = "MIB")]
    pub call_state_mib: Option<usize>,
    /// Memory for replies remembered for repeated deliveries, in MiB
    /// [default: 128].
    #[arg(long, env = "IVR_REPLY_MEMORY_MIB", value_name = "MIB")]
    pub reply_memory_mib: Option<usize>,
    /// Most disk space the call traces (traces.sqlite3) may use, in MiB; the
    /// oldest calls' traces go first (summaries stay) [default: 1024].
    #[arg(long, env = "IVR_TRACES_MAX_MIB", value_name = "MIB")]
    pub traces_max_mib: Option<u64>,
    /// Memory for call trace records waiting to be written, in MiB; beyond
    /// it records are dropped and counted, calls are unaffected [default: 64].
    #[arg(long, env = "IVR_TRACE_QUEUE_MIB", value_name = "MIB")]
    pub trace_queue_mib: Option<usize>,
    /// Guest instances that may exist at once, across all apps (the pooling
    /// allocator's slots); an event finding none free within 50 ms gets the
    /// fallback as `overloaded` [default: 256].
    #[arg(long, env = "IVR_MAX_INSTANCES", value_name = "N")]
    pub max_instances: Option<u32>,
    /// Most open connections on the webhook listener; more are refused with
    /// `503` [default: 4096, less when the file descriptor limit is lower].
    #[arg(long, env = "IVR_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Start with a new, empty database although the data directory holds
    /// uploaded components (the database was lost): apps, routes and
    /// summaries start empty; the component files are kept.
    #[arg(long, env = "IVR_FRESH_DATABASE")]
    pub fresh_database: bool,
    /// Seconds a client may take to send a request's headers, and again its
    /// body, before the connection is closed (`408`) [default: 10].
    #[arg(long, env = "IVR_REQUEST_READ_SECS", value_name = "SECS")]
    pub request_read_secs: Option<u64>,
    /// Private, loopback or shared networks that apps' outbound requests
    /// may reach (comma-separated CIDRs, e.g. `10.20.0.0/16,127.0.0.1/32`);
    /// unset: none. Link-local and metadata addresses are never reachable.
    #[arg(
        long,
        env = "IVR_OUTBOUND_PRIVATE_NETWORKS",
        value_name = "CIDR,...",
        value_delimiter = ',',
        value_parser = parse_cidr
    )]
    pub outbound_private_networks: Option<Vec<IpNet>>,
}

/// A CIDR, or a bare address as its own /32 or /128.
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8"))
}

/// `--app NAME=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSource {
    /// App name.
    pub name: String,
    /// Component file.
    pub file: PathBuf,
}

/// `--app-config NAME.KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSetting {
    /// App name.
    pub app: String,
    /// Configuration key.
    pub key: String,
    /// Value.
    pub value: String,
}

fn parse_app_source(arg: &str) -> Result<AppSource, String> {
    let (name, file) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=FILE.wasm, got {arg:?}"))?;
    validate_app_name(name)?;
    if file.is_empty() {
        return Err(format!("no file given for app {name:?}"));
    }
    Ok(AppSource {
        name: name.to_owned(),
        file: file.into(),
    })
}

fn parse_app_setting(arg: &str) -> Result<AppSetting, String> {
    let (target, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected NAME.KEY=VALUE, got {arg:?}"))?;
    let (app, key) = target
        .split_once('.')
        .ok_or_else(|| format!("expected NAME.KEY=VALUE, got {arg:?}"))?;
    validate_app_name(app)?;
    if key.is_empty() {
        return Err(format!("empty key in {arg:?}"));
    }
    Ok(AppSetting {
        app: app.to_owned(),
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// The TOML configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    admin_token: Option<String>,
    default_app: Option<String>,
    call_idle_secs: Option<u64>,
    webhook_auth_header: Option<String>,
    retention_days: Option<u64>,
    outbound_private_networks: Option<Vec<String>>,
    routes: Option<RouteTable>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    apps: BTreeMap<String, FileApp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    guest_time_ms: Option<u64>,
    guest_memory_mib: Option<usize>,
    webhook_body_kib: Option<usize>,
    reply_kib: Option<usize>,
    reply_actions: Option<usize>,
    upload_mib: Option<usize>,
    app_concurrency: Option<usize>,
    fuel: Option<bool>,
    max_connections: Option<usize>,
    request_read_secs: Option<u64>,
    max_instances: Option<u32>,
    call_state_mib: Option<usize>,
    reply_memory_mib: Option<usize>,
    trace_queue_mib: Option<usize>,
    traces_max_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    file: Option<PathBuf>,
    #[serde(default)]
    config: AppConfig,
    settings: Option<AppSettings>,
}

/// Every limit the host enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per-event guest limits.
    pub guest: GuestLimits,
    /// Largest webhook body, in bytes.
    pub webhook_body_bytes: usize,
    /// Reply size limits.
    pub reply: ReplyLimits,
    /// Largest uploaded component, in bytes.
    pub upload_bytes: usize,
    /// Most events of one app running at once.
    pub app_concurrency: usize,
    /// Most open connections on the webhook listener (before the file
    /// descriptor limit is applied).
    pub max_connections: usize,
    /// Time allowed to read a request's headers, and again its body.
    pub request_read: Duration,
    /// Guest instances that may exist at once, across all apps.
    pub max_instances: u32,
    /// Bytes of call state held in memory.
    pub call_state_bytes: usize,
    /// Bytes of remembered replies held in memory.
    pub reply_memory_bytes: usize,
    /// Bytes of trace records waiting for the writer.
    pub trace_queue_bytes: usize,
    /// Most bytes the traces file may use.
    pub traces_max_bytes: u64,
}

/// The resolved settings of `ivr-host serve`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Webhook listener address.
    pub listen: SocketAddr,
    /// Admin listener address.
    pub admin_listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Admin bearer token (`IVR_ADMIN_TOKEN` or the file's `admin_token`).
    pub admin_token: Option<String>,
    /// Apps to load at start.
    pub apps: Vec<AppSource>,
    /// Configuration values per app.
    pub app_config: BTreeMap<String, AppConfig>,
    /// Per-app settings from the config file (replace the stored ones at start).
    pub app_settings: BTreeMap<String, AppSettings>,
    /// The app answering unrouted calls (overrides the routes' default).
    pub default_app: Option<String>,
    /// Routes from the config file (replace the stored routes at start).
    pub routes: Option<RouteTable>,
    /// Start with an empty database even beside uploaded components.
    pub fresh_database: bool,
    /// How long a call keeps its pin and state without an event.
    pub call_idle_ttl: Duration,
    /// The `Authorization` value required on webhooks.
    pub webhook_auth_header: Option<String>,
    /// How long traces and summaries are kept.
    pub retention: Duration,
    /// Limits.
    pub limits: Limits,
    /// Where apps' outbound requests may connect.
    pub outbound: OutboundNetwork,
}

impl Settings {
    /// The host-wide limits per-app settings override.
    pub fn host_limits(&self) -> HostLimits {
        HostLimits {
            guest: self.limits.guest,
            reply: self.limits.reply,
            max_concurrent: self.limits.app_concurrency,
            network: Arc::new(self.outbound.clone()),
        }
    }
}

impl Settings {
    /// Resolve flags, environment, file and defaults into settings.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let base_dir = args
            .config
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();

        let mut apps: Vec<AppSource> = Vec::new();
        let mut app_config: BTreeMap<String, AppConfig> = BTreeMap::new();
        let mut app_settings: BTreeMap<String, AppSettings> = BTreeMap::new();
        for (name, app) in file.apps {
            validate_app_name(&name)
                .map_err(anyhow::Error::msg)
                .context("in the config file's [apps] table")?;
            if let Some(path) = app.file {
                apps.push(AppSource {
                    name: name.clone(),
                    file: base_dir.join(path),
                });
            }
            if let Some(settings) = app.settings {
                app_settings.insert(name.clone(), settings);
            }
            app_config.insert(name, app.config);
        }
        for source in args.apps {
            apps.retain(|a| a.name != source.name);
            apps.push(source);
        }
        for setting in args.app_config {
            app_config
                .entry(setting.app)
                .or_default()
                .insert(setting.key, setting.value);
        }

        let guest_time_ms = args
            .guest_time_ms
            .or(file.limits.guest_time_ms)
            .unwrap_or(100);
        let guest_memory_mib = args
            .guest_memory_mib
            .or(file.limits.guest_memory_mib)
            .unwrap_or(32);
        let webhook_body_kib = args
            .webhook_body_kib
            .or(file.limits.webhook_body_kib)
            .unwrap_or(64);
        let reply_kib = args.reply_kib.or(file.limits.reply_kib).unwrap_or(64);
        let reply_actions = args
            .reply_actions
            .or(file.limits.reply_actions)
            .unwrap_or(32);
        let upload_mib = args.upload_mib.or(file.limits.upload_mib).unwrap_or(32);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let app_concurrency = args
            .app_concurrency
            .or(file.limits.app_concurrency)
            .unwrap_or((2 * cores).max(4));
        let fuel = args.fuel || file.limits.fuel.unwrap_or(false);
        let max_connections = args
            .max_connections
            .or(file.limits.max_connections)
            .unwrap_or(4096);
        let max_instances = args
            .max_instances
            .or(file.limits.max_instances)
            .unwrap_or(256);
        let call_state_mib = args
            .call_state_mib
            .or(file.limits.call_state_mib)
            .unwrap_or(256);
        let reply_memory_mib = args
            .reply_memory_mib
            .or(file.limits.reply_memory_mib)
            .unwrap_or(128);
        let trace_queue_mib = args
            .trace_queue_mib
            .or(file.limits.trace_queue_mib)
            .unwrap_or(64);
        let traces_max_mib = args
            .traces_max_mib
            .or(file.limits.traces_max_mib)
            .unwrap_or(1024);
        let request_read_secs = args
            .request_read_secs
            .or(file.limits.request_read_secs)
            .unwrap_or(10);
        let call_idle_secs = args
            .call_idle_secs
            .or(file.call_idle_secs)
            .unwrap_or(2 * 60 * 60);
        if guest_time_ms == 0
            || guest_memory_mib == 0
            || webhook_body_kib == 0
            || reply_kib == 0
            || reply_actions == 0
            || upload_mib == 0
            || app_concurrency == 0
            || call_idle_secs == 0
            || max_connections == 0
            || max_instances == 0
            || call_state_mib == 0
            || reply_memory_mib == 0
            || trace_queue_mib == 0
            || traces_max_mib == 0
            || request_read_secs == 0
        {
            bail!("limits must be greater than zero");
        }
        let outbound_private_networks = match args.outbound_private_networks {
            Some(networks) => networks,
            None => file
                .outbound_private_networks
                .iter()
                .flatten()
                .map(|text| {
                    parse_cidr(text)
                        .map_err(|why| anyhow::anyhow!("outbound_private_networks: {why}"))
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let retention_days = args
            .retention_days
            .or(file.retention_days)
            .unwrap_or(30)
            .max(1);
        if retention_days > MAX_RETENTION_DAYS {
            bail!("retention_days is {retention_days}; at most {MAX_RETENTION_DAYS} is supported");
        }
        if guest_memory_mib > 4096 {
            bail!("guest_memory_mib is {guest_memory_mib}; at most 4096 is supported");
        }

        let settings = Self {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| default_addr(DEFAULT_LISTEN)),
            admin_listen: args
                .admin_listen
                .or(file.admin_listen)
                .unwrap_or_else(|| default_addr(DEFAULT_ADMIN_LISTEN)),
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            // An empty token is no token, from either source: on a
            // non-loopback address both refuse to start below.
            admin_token: std::env::var("IVR_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .or(file.admin_token.filter(|t| !t.is_empty())),
            apps,
            app_config,
            app_settings,
            default_app: args.default_app.or(file.default_app),
            routes: file.routes,
            fresh_database: args.fresh_database,
            call_idle_ttl: Duration::from_secs(call_idle_secs),
            webhook_auth_header: args
                .webhook_auth_header
                .or(file.webhook_auth_header)
                .filter(|v| !v.is_empty()),
            retention: Duration::from_secs(retention_days * 24 * 60 * 60),
            outbound: OutboundNetwork {
                private_networks: outbound_private_networks,
            },
            limits: Limits {
                guest: GuestLimits {
                    run_time: Duration::from_millis(guest_time_ms),
                    memory_bytes: guest_memory_mib << 20,
                    log: LogLimits::default(),
                    fuel,
                    warm_events: 1,
                },
                webhook_body_bytes: in_bytes("webhook_body_kib", webhook_body_kib, 10)?,
                reply: ReplyLimits {
                    max_actions: reply_actions,
                    max_bytes: in_bytes("reply_kib", reply_kib, 10)?,
                },
                upload_bytes: in_bytes("upload_mib", upload_mib, 20)?,
                app_concurrency,
                max_connections,
                request_read: Duration::from_secs(request_read_secs),
                max_instances,
                call_state_bytes: in_bytes("call_state_mib", call_state_mib, 20)?,
                reply_memory_bytes: in_bytes("reply_memory_mib", reply_memory_mib, 20)?,
                trace_queue_bytes: in_bytes("trace_queue_mib", trace_queue_mib, 20)?,
                traces_max_bytes: in_bytes(
                    "traces_max_mib",
                    usize::try_from(traces_max_mib).unwrap_or(usize::MAX),
                    20,
                )? as u64,
            },
        };
        if let Some(name) = &settings.default_app {
            validate_app_name(name).map_err(anyhow::Error::msg)?;
        }
        if settings.admin_token.is_none() && !settings.admin_listen.ip().is_loopback() {
            bail!(
                "refusing to start the admin listener on non-loopback {} without a token: set IVR_ADMIN_TOKEN",
                settings.admin_listen
            );
        }
        Ok(settings)
    }
}

/// Longest retention of traces and summaries (a century).
const MAX_RETENTION_DAYS: u64 = 36_500;

/// `value` units of `2^shift` bytes, or an error naming the setting when
/// that many bytes cannot be counted.
fn in_bytes(name: &str, value: usize, shift: u32) -> anyhow::Result<usize> {
    if value.leading_zeros() < shift {
        bail!("{name} is {value}: far more than this machine can address");
    }
    Ok(value << shift)
}

/// A listen address: `IP:PORT` or `HOST:PORT` (`localhost:8080`; the name
/// is resolved, the first address taken), with an optional `http://`.
fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let bare = text
        .strip_prefix("http://")
        .unwrap_or(text)
        .trim_end_matches('/');
    if let Ok(addr) = bare.parse() {
        return Ok(addr);
    }
    if !bare.contains(':') {
        return Err(format!(
            "{text:?} has no port; write HOST:PORT, e.g. 127.0.0.1:8080"
        ));
    }
    bare.to_socket_addrs()
        .map_err(|err| format!("cannot resolve {text:?}: {err}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn default_addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in the config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_names_and_a_scheme() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:9000").unwrap().to_string(),
            "127.0.0.1:9000"
        );
        assert!(
            parse_listen_addr("localhost:9000")
                .unwrap()
                .ip()
                .is_loopback()
        );
        assert_eq!(
            parse_listen_addr("http://127.0.0.1:9000/")
                .unwrap()
                .to_string(),
            "127.0.0.1:9000"
        );
        assert!(
            parse_listen_addr("localhost")
                .unwrap_err()
                .contains("no port")
        );
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(ServeArgs::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.admin_listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(s.limits.guest.run_time, Duration::from_millis(100));
        assert_eq!(s.limits.guest.memory_bytes, 32 << 20);
        assert_eq!(s.limits.webhook_body_bytes, 64 << 10);
        assert_eq!(
            s.limits.reply,
            ReplyLimits {
                max_actions: 32,
                max_bytes: 64 << 10
            }
        );
    }

    #[test]
    fn flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("ivr-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ivr.toml");
        std::fs::write(
            &path,
            r#"
listen = "127.0.0.1:9000"
default_app = "bank-menu"
[limits]
guest_time_ms = 50
[apps.bank-menu]
file = "bank.wasm"
config = { agent_number = "+6560000000", caller_id = "+6561111111" }
"#,
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            app_config: vec![parse_app_setting("bank-menu.agent_number=+6560002222").unwrap()],
            ..ServeArgs::default()
        };
        let s = Settings::resolve(args).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(s.limits.guest.run_time, Duration::from_millis(50));
        assert_eq!(
            s.apps,
            vec![AppSource {
                name: "bank-menu".into(),
                file: dir.join("bank.wasm")
            }]
        );
        let config = &s.app_config["bank-menu"];
        assert_eq!(config["agent_number"], "+6560002222");
        assert_eq!(config["caller_id"], "+6561111111");
        assert_eq!(s.default_app.as_deref(), Some("bank-menu"));
    }

    #[test]
    fn outbound_settings_come_from_the_file_and_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ivr.toml");
        std::fs::write(
            &path,
            r#"
outbound_private_networks = ["10.20.0.0/16", "127.0.0.1"]
[apps.bank-menu.settings]
allowed_outbound_hosts = ["https://*.bank.example", "http://127.0.0.1:9000"]
outbound_request_ms = 1500
kv_quota_mib = 4
"#,
        )
        .unwrap();
        let s = Settings::resolve(ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(
            s.outbound.private_networks,
            vec![
                "10.20.0.0/16".parse::<IpNet>().unwrap(),
                "127.0.0.1/32".parse().unwrap()
            ]
        );
        let app = &s.app_settings["bank-menu"];
        assert_eq!(app.http.outbound_request_ms, Some(1500));
        assert_eq!(app.kv.kv_quota_mib, Some(4));
        assert_eq!(app.validate(&s.host_limits()), Ok(()));
        let s = Settings::resolve(ServeArgs {
            config: Some(path.clone()),
            outbound_private_networks: Some(vec![parse_cidr("192.168.0.0/24").unwrap()]),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(s.outbound.private_networks.len(), 1);
        std::fs::write(&path, "outbound_private_networks = [\"10.0.0.0/33\"]").unwrap();
        let err = Settings::resolve(ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("outbound_private_networks: \"10.0.0.0/33\" is not a CIDR"),
            "{err:#}"
        );
    }

    #[test]
    fn bad_arguments_are_named() {
        assert!(
            parse_app_source("nofile")
                .unwrap_err()
                .contains("NAME=FILE")
        );
        assert!(
            parse_app_source("Bad Name=x.wasm")
                .unwrap_err()
                .contains("invalid app name")
        );
        assert!(
            parse_app_setting("bank-menu=1")
                .unwrap_err()
                .contains("NAME.KEY=VALUE")
        );
        assert_eq!(
            parse_app_setting("bank-menu.caller_id=+65=1").unwrap(),
            AppSetting {
                app: "bank-menu".into(),
                key: "caller_id".into(),
                value: "+65=1".into()
            }
        );
    }
}
