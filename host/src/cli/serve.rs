//! `ivr-host serve`: load the apps, bind both listeners, serve until
//! Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::apps::{AppRegistry, LoadedApp};
use crate::config::{ServeArgs, Settings};
use crate::edge::{self, AdminEdge, WebhookEdge};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::service::IvrService;
use crate::store::{CallStateStore, ReplyCache};

/// How long a call's state is kept without an event.
const CALL_IDLE_TTL: Duration = Duration::from_secs(2 * 60 * 60);
/// Most calls with state at once.
const MAX_CALLS_WITH_STATE: usize = 100_000;
/// How long the first reply to an event id is kept for repeated deliveries.
const REPLY_TTL: Duration = Duration::from_secs(15 * 60);
/// Most replies kept for repeated deliveries.
const MAX_REMEMBERED_REPLIES: usize = 100_000;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;

    let runtime = Arc::new(Runtime::new(RuntimeOptions {
        max_memory_bytes: settings.limits.guest.memory_bytes,
        ..RuntimeOptions::default()
    })?);
    let apps = load_apps(&runtime, &settings).await?;
    let registry = AppRegistry::new(apps, settings.default_app.clone())?;
    let service = Arc::new(IvrService::new(
        runtime,
        registry,
        CallStateStore::new(MAX_CALLS_WITH_STATE, CALL_IDLE_TTL),
        ReplyCache::new(MAX_REMEMBERED_REPLIES, REPLY_TTL),
        settings.limits.guest,
        settings.limits.reply,
    ));

    let webhook_listener = edge::bind(settings.listen, "webhooks").await?;
    let admin_listener = edge::bind(settings.admin_listen, "the admin API").await?;
    let webhook_addr = webhook_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    if settings.admin_token.is_none() {
        tracing::warn!(
            "IVR_ADMIN_TOKEN is not set: the admin API on loopback {admin_addr} is open to local users"
        );
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let webhooks = tokio::spawn(edge::serve(
        webhook_listener,
        Arc::new(WebhookEdge {
            service: service.clone(),
            body_limit: settings.limits.webhook_body_bytes,
        }),
        stop_rx.clone(),
    ));
    let admin = tokio::spawn(edge::serve(
        admin_listener,
        Arc::new(AdminEdge {
            token: settings.admin_token.clone(),
        }),
        stop_rx,
    ));

    tracing::info!(webhooks = %webhook_addr, admin = %admin_addr, "ivr-host is serving");
    // One machine-readable line on stdout, for scripts and tests.
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "ivr-host listening webhooks=http://{webhook_addr} admin=http://{admin_addr}"
    );
    let _ = stdout.flush();

    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(webhooks, admin);
    Ok(())
}

/// Compile every `--app` (and config-file app) off the async executor.
async fn load_apps(runtime: &Arc<Runtime>, settings: &Settings) -> anyhow::Result<Vec<LoadedApp>> {
    let mut loaded = Vec::new();
    for source in &settings.apps {
        let bytes = std::fs::read(&source.file).with_context(|| {
            format!(
                "reading app {:?} from {}",
                source.name,
                source.file.display()
            )
        })?;
        let compile_runtime = runtime.clone();
        let compile_bytes = bytes.clone();
        let compiled = tokio::task::spawn_blocking(move || compile_runtime.compile(&compile_bytes))
            .await
            .context("compiling")?
            .with_context(|| {
                format!(
                    "loading app {:?} from {}",
                    source.name,
                    source.file.display()
                )
            })?;
        let config = settings
            .app_config
            .get(&source.name)
            .cloned()
            .unwrap_or_default();
        let app = LoadedApp::new(&source.name, &bytes, compiled, config);
        tracing::info!(app = %app.name, version = %app.version, size = bytes.len(), "app loaded");
        loaded.push(app);
    }
    for name in settings.app_config.keys() {
        if !settings.apps.iter().any(|a| &a.name == name) {
            tracing::warn!(app = %name, "configuration given for an app that is not loaded");
        }
    }
    Ok(loaded)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
