//! `ivr-host webhooks ...` and `ivr-host call`: the 8x8 Voice API from the
//! command line. The API key is read from a flag or `IVR_8X8_API_KEY` and
//! never printed.

use hyper::Method;

use super::client::AdminTarget;
use crate::apps::routes::{RouteRule, RouteTable};
use crate::protocol::api::{
    ApiClient, CreateWebhook, DEFAULT_API_BASE, Webhook, status_code_meaning,
};
use crate::protocol::callflow::{Action, MakeCall, SayAndCapture};

/// The 8x8 account the command acts on.
#[derive(Debug, Clone, clap::Args)]
pub struct Account {
    /// The 8x8 subaccount id.
    #[arg(long, global = true, env = "IVR_8X8_SUBACCOUNT", value_name = "ID")]
    pub subaccount: Option<String>,
    /// The 8x8 API key (Bearer token).
    #[arg(
        long,
        global = true,
        env = "IVR_8X8_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// The Voice API base URL.
    #[arg(long, global = true, env = "IVR_8X8_API_BASE", default_value = DEFAULT_API_BASE, value_name = "URL")]
    pub api_base: String,
}

impl Account {
    fn client(&self) -> anyhow::Result<ApiClient> {
        let subaccount = self.subaccount.as_deref().ok_or_else(|| {
            anyhow::anyhow!("no subaccount: pass --subaccount or set IVR_8X8_SUBACCOUNT")
        })?;
        let api_key = self
            .api_key
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no API key: pass --api-key or set IVR_8X8_API_KEY"))?;
        ApiClient::new(&self.api_base, subaccount, api_key)
    }
}

/// `ivr-host webhooks ...`.
#[derive(Debug, clap::Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    pub command: WebhooksCommand,
    #[command(flatten)]
    pub account: Account,
}

/// What `ivr-host webhooks` does.
#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Register a webhook URL of one type.
    Create {
        /// VCA, VSS, VCS, VRU or VNU.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// Where 8x8 posts (use https).
        #[arg(long)]
        url: String,
        /// A secret 8x8 sends as the Authorization header (give the host the same value).
        #[arg(long, value_name = "VALUE")]
        auth_header: Option<String>,
        /// Register it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List the subaccount's webhooks.
    List,
    /// Delete the webhook of one type.
    Delete {
        /// VCA, VSS, VCS, VRU or VNU.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
    },
    /// Point the VCA and VSS webhooks at this host's public URL.
    Setup {
        /// The host's public base URL, e.g. https://ivr.example.com.
        #[arg(long, value_name = "URL")]
        public_url: String,
        /// A secret 8x8 sends as the Authorization header; start the host with
        /// the same value as IVR_WEBHOOK_AUTH_HEADER.
        #[arg(long, value_name = "VALUE")]
        auth_header: Option<String>,
    },
}

/// `ivr-host call`.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The caller id: a virtual number of the subaccount.
    #[arg(long, value_name = "VN")]
    pub from: String,
    /// The number to call.
    #[arg(long, value_name = "NUMBER")]
    pub to: String,
    /// What the callee hears before the app takes over; the app answers the
    /// VCA that follows (routed by the virtual number).
    #[arg(
        long,
        default_value = "Hello. Press any key to continue.",
        value_name = "TEXT"
    )]
    pub prompt: String,
    /// Route the virtual number to this app first (adds a rule through the
    /// admin API when the routes do not already send it there).
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// The text-to-speech voice of the prompt.
    #[arg(long, default_value = crate::protocol::callflow::HOST_VOICE, value_name = "VOICE")]
    pub voice: String,
    #[command(flatten)]
    pub account: Account,
    #[command(flatten)]
    pub admin: AdminTarget,
}

fn print_webhooks(webhooks: &[Webhook]) {
    if webhooks.is_empty() {
        say!("no webhooks registered");
        return;
    }
    say!("{:<5} {:<8} {:<5} URL", "TYPE", "ENABLED", "AUTH");
    for w in webhooks {
        let flag = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        say!(
            "{:<5} {:<8} {:<5} {}",
            w.kind,
            flag(w.enabled),
            flag(w.http_auth_header_available),
            w.url
        );
    }
}

pub fn webhooks(args: WebhooksArgs) -> anyhow::Result<()> {
    let client = args.account.client()?;
    match args.command {
        WebhooksCommand::Create {
            kind,
            url,
            auth_header,
            disabled,
        } => {
            let listed = client.create_webhook(&CreateWebhook {
                kind: kind.to_ascii_uppercase(),
                url,
                enabled: !disabled,
                http_auth_header: auth_header,
            })?;
            say!("created; the subaccount's webhooks are now:");
            print_webhooks(&listed);
        }
        WebhooksCommand::List => print_webhooks(&client.list_webhooks()?),
        WebhooksCommand::Delete { kind } => {
            let deleted = client.delete_webhook(&kind.to_ascii_uppercase())?;
            say!("deleted the {} webhook ({})", deleted.kind, deleted.url);
        }
        WebhooksCommand::Setup {
            public_url,
            auth_header,
        } => {
            let base = public_url.trim_end_matches('/');
            if !base.starts_with("https://") && !base.starts_with("http://") {
                anyhow::bail!("--public-url must be an http(s) URL, got {public_url:?}");
            }
            let mut listed = Vec::new();
            for (kind, path) in [("VCA", "/webhooks/vca"), ("VSS", "/webhooks/vss")] {
                listed = client.create_webhook(&CreateWebhook {
                    kind: kind.into(),
                    url: format!("{base}{path}"),
                    enabled: true,
                    http_auth_header: auth_header.clone(),
                })?;
            }
            say!("VCA and VSS point at {base}; the subaccount's webhooks:");
            print_webhooks(&listed);
            if auth_header.is_some() {
                say!(
                    "start the host with the same value: IVR_WEBHOOK_AUTH_HEADER=... ivr-host serve"
                );
            } else if base.starts_with("http://") {
                say!("warning: 8x8 advises https endpoints");
            }
        }
    }
    Ok(())
}

/// Make sure calls on `number` go to `app`: put a number rule first unless
/// one already routes it there.
fn route_number_to(admin: &AdminTarget, number: &str, app: &str) -> anyhow::Result<()> {
    let current = admin.call(Method::GET, "/routes", None)?;
    let mut routes: RouteTable = serde_json::from_value(current)?;
    let already = routes.rules.iter().find(|r| {
        r.number
            .as_deref()
            .is_some_and(|n| crate::protocol::rules::same_number(n, number))
            && r.sub_account.is_none()
    });
    match already {
        Some(rule) if rule.app == app => return Ok(()),
        _ => {}
    }
    routes.rules.retain(|r| {
        !(r.sub_account.is_none()
            && r.number
                .as_deref()
                .is_some_and(|n| crate::protocol::rules::same_number(n, number)))
    });
    routes.rules.insert(
        0,
        RouteRule {
            number: Some(number.to_owned()),
            sub_account: None,
            app: app.to_owned(),
        },
    );
    admin.call(Method::PUT, "/routes", Some(serde_json::to_vec(&routes)?))?;
    say!("routed {number} to {app}");
    Ok(())
}

pub fn call(args: CallArgs) -> anyhow::Result<()> {
    let client = args.account.client()?;
    if let Some(app) = &args.app {
        route_number_to(&args.admin, &args.from, app)?;
    }
    let callflow = vec![
        Action::MakeCall(MakeCall {
            source: args.from,
            destination: args.to,
            call_recording: None,
        }),
        Action::SayAndCapture(SayAndCapture {
            prompt_message: args.prompt,
            voice_profile: args.voice,
            speed: None,
            repetition: None,
            min_digits: Some(1),
            max_digits: Some(1),
            digit_timeout: Some(5_000),
            overall_timeout: Some(10_000),
            complete_on_hash: Some(false),
            no_of_tries: Some(1),
            success_message: None,
            failure_message: None,
        }),
    ];
    let answer = client.send_callflow(&callflow)?;
    let code = answer.status_code.unwrap_or(1);
    say!(
        "call created: session {} (status {code}: {})",
        answer.session_id.as_deref().unwrap_or("?"),
        status_code_meaning(code)
    );
    Ok(())
}
