//! `ivr-host serve`: load the apps, bind both listeners, serve until
//! Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::apps::{AppRegistry, RegistryPaths};
use crate::config::{ServeArgs, Settings};
use crate::edge::{self, AdminEdge, ListenerLimits, WebhookEdge};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::service::IvrService;
use crate::store::db::SqliteStore;
use crate::store::sessions::SessionStore;
use crate::store::{CallJournal, CallStateStore, MAX_CALLS, ReplyCache};

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
        fuel: settings.limits.guest.fuel,
        max_concurrent_instances: settings.limits.max_instances,
        ..RuntimeOptions::default()
    })?);
    let db_path = settings.data_dir.join("ivr.sqlite3");
    refuse_a_lost_database(&settings)?;
    let db = Arc::new(SqliteStore::open(&db_path)?);
    let sessions = Arc::new(
        SessionStore::open(&db_path, &settings.data_dir.join("traces.sqlite3"))?
            .with_queue_bytes(settings.limits.trace_queue_bytes),
    );
    let started = std::time::Instant::now();
    let registry = AppRegistry::open(
        runtime.clone(),
        db,
        RegistryPaths {
            components: settings.data_dir.join("components"),
            compiled: settings.data_dir.join("compiled"),
        },
        settings.call_idle_ttl,
        settings.limits.host(),
    )
    .await?;
    apply_startup_settings(&registry, &settings).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apps ready"
    );

    let calls = Arc::new(CallJournal::open(&settings.data_dir.join("calls.sqlite3"))?);
    let service = Arc::new(IvrService::new(
        runtime,
        registry,
        CallStateStore::new(
            MAX_CALLS,
            settings.limits.call_state_bytes,
            settings.call_idle_ttl,
        ),
        ReplyCache::new(
            MAX_REMEMBERED_REPLIES,
            settings.limits.reply_memory_bytes,
            REPLY_TTL,
        ),
        sessions,
        calls.clone(),
    ));
    service
        .restore_calls(
            settings.call_idle_ttl,
            MAX_CALLS,
            REPLY_TTL,
            MAX_REMEMBERED_REPLIES,
        )
        .await
        .context("restoring the calls in progress from calls.sqlite3")?;
    let journal_pruning = tokio::spawn(prune_journal(calls, settings.call_idle_ttl));
    let warm_expiry = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                service.apps().expire_warm_instances();
            }
        })
    };

    let webhook_listener = edge::bind(settings.listen, "webhooks").await?;
    let admin_listener = edge::bind(settings.admin_listen, "the admin API").await?;
    let webhook_addr = webhook_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    if settings.webhook_auth_header.is_none() {
        tracing::warn!(
            "no webhook auth header is configured (IVR_WEBHOOK_AUTH_HEADER): the webhook listener accepts unauthenticated requests"
        );
    }
    let pruning = tokio::spawn(prune_traces(
        service.sessions().clone(),
        settings.retention,
        settings.limits.traces_max_bytes,
    ));
    if settings.admin_token.is_none() {
        tracing::warn!(
            "IVR_ADMIN_TOKEN is not set: the admin API on loopback {admin_addr} is open to local users"
        );
    }

    let (webhook_connections, admin_connections) =
        edge::connection_budget(settings.limits.max_connections);
    tracing::info!(
        webhook_connections,
        admin_connections,
        "connection limits (from --max-connections and the open file limit)"
    );
    let request_read = settings.limits.request_read;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let webhooks = tokio::spawn(edge::serve(
        webhook_listener,
        Arc::new(WebhookEdge {
            service: service.clone(),
            body_limit: settings.limits.webhook_body_bytes,
            auth_header: settings.webhook_auth_header.clone(),
            read_timeout: request_read,
        }),
        ListenerLimits {
            max_connections: webhook_connections,
            header_timeout: request_read,
        },
        stop_rx.clone(),
    ));
    let admin = tokio::spawn(edge::serve(
        admin_listener,
        Arc::new(AdminEdge {
            token: settings.admin_token.clone(),
            service: service.clone(),
            upload_limit: settings.limits.upload_bytes,
        }),
        ListenerLimits {
            max_connections: admin_connections,
            header_timeout: request_read,
        },
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
    tracing::info!("shutting down: refusing new connections, finishing in-flight requests");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(webhooks, admin);
    if !service.finish_deliveries(edge::DRAIN_TIMEOUT).await {
        tracing::warn!(
            "some session summaries were still being handed to apps {:?} after shutdown began",
            edge::DRAIN_TIMEOUT
        );
    }
    pruning.abort();
    journal_pruning.abort();
    warm_expiry.abort();
    let _ = warm_expiry.await;
    let _ = pruning.await;
    // The last holder of the session store: dropping it writes the queued
    // trace records and joins the trace writer.
    let sessions = service.sessions().clone();
    drop(service);
    match Arc::into_inner(sessions) {
        Some(sessions) => {
            let _ = tokio::task::spawn_blocking(move || drop(sessions)).await;
        }
        None => tracing::warn!("the session store is still in use; queued traces may be lost"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Refuse to start when the database is missing or empty but uploaded
/// components are there: it was lost (deleted, truncated, a bad restore),
/// and starting would silently serve with no apps, routes or summaries.
fn refuse_a_lost_database(settings: &Settings) -> anyhow::Result<()> {
    let db_path = settings.data_dir.join("ivr.sqlite3");
    let db_size = std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
    if db_size > 0 || settings.fresh_database {
        return Ok(());
    }
    let components = settings.data_dir.join("components");
    let uploaded = std::fs::read_dir(&components)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
                .count()
        })
        .unwrap_or(0);
    if uploaded == 0 {
        return Ok(());
    }
    anyhow::bail!(
        "the database {} is missing or empty, but {} holds {uploaded} uploaded component(s): \
         the database was lost. Restore it from a backup, or start with --fresh-database \
         (IVR_FRESH_DATABASE=1) to begin again with no apps, routes or summaries",
        db_path.display(),
        components.display()
    )
}

/// Apply what the flags and the config file say, as if through the admin
/// API: deploy each `--app` file (unchanged bytes stay the same version),
/// merge configuration values, replace routes, set the default app.
async fn apply_startup_settings(registry: &AppRegistry, settings: &Settings) -> anyhow::Result<()> {
    for source in &settings.apps {
        let bytes = std::fs::read(&source.file).with_context(|| {
            format!(
                "loading app {:?} from {}",
                source.name,
                source.file.display()
            )
        })?;
        let deployed = registry
            .deploy(&source.name, bytes)
            .await
            .with_context(|| {
                format!(
                    "loading app {:?} from {}",
                    source.name,
                    source.file.display()
                )
            })?;
        if !deployed.unchanged {
            tracing::info!(app = %source.name, version = deployed.record.version, file = %source.file.display(), "deployed from the command line");
        }
    }
    let snapshot = registry.snapshot();
    for (name, values) in &settings.app_config {
        let mut config = (*snapshot.config(name)).clone();
        config.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        registry
            .set_config(name, config)
            .await
            .with_context(|| format!("setting the configuration of {name:?}"))?;
    }
    for (name, app_settings) in &settings.app_settings {
        registry
            .set_settings(name, app_settings.clone())
            .await
            .with_context(|| format!("applying the settings of {name:?}"))?;
    }
    if settings.routes.is_some() || settings.default_app.is_some() {
        let mut routes = settings
            .routes
            .clone()
            .unwrap_or_else(|| registry.snapshot().routes().clone());
        if let Some(default_app) = &settings.default_app {
            routes.default_app = Some(default_app.clone());
        }
        registry
            .set_routes(routes)
            .await
            .context("applying the configured routes")?;
    }
    Ok(())
}

/// Delete journaled calls idle past `call_ttl` and replies past their TTL,
/// every minute.
async fn prune_journal(calls: Arc<CallJournal>, call_ttl: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let calls = calls.clone();
        match tokio::task::spawn_blocking(move || calls.prune(call_ttl, REPLY_TTL)).await {
            Ok(Err(err)) => tracing::warn!("pruning the calls journal failed: {err:#}"),
            Ok(Ok(removed)) if removed > 0 => tracing::debug!(removed, "pruned the calls journal"),
            _ => {}
        }
    }
}

/// Delete traces and summaries older than the retention, and the oldest
/// traces beyond the size cap: at start, then every minute.
async fn prune_traces(sessions: Arc<SessionStore>, retention: Duration, max_bytes: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let Ok(cutoff) = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(retention).unwrap_or_default())
        else {
            continue;
        };
        let sessions = sessions.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            let old = sessions.prune(&cutoff.to_string())?;
            let over = sessions.cap_traces(max_bytes)?;
            anyhow::Ok((old, over))
        })
        .await;
        match pruned {
            Ok(Ok((old, over))) if old + over > 0 => {
                tracing::info!(
                    older_than_retention = old,
                    over_the_size_cap = over,
                    "pruned call traces"
                )
            }
            Ok(Err(err)) => tracing::warn!("pruning call traces failed: {err:#}"),
            _ => {}
        }
    }
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
