//! `ivr-host serve`: load the apps, bind both listeners, serve until
//! Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::{ServeArgs, Settings};
use crate::edge::{self, AdminEdge, ListenerLimits, WebhookEdge};
use crate::embedded;
use crate::store::CallJournal;
use crate::store::kv::KvStore;
use crate::store::sessions::SessionStore;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let service = embedded::open(&settings).await?;
    let calls = service.call_journal().clone();
    let journal_compaction = tokio::spawn(compact_journal(calls, settings.call_idle_ttl));
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
    let kv_expiry = tokio::spawn(purge_expired_keys(service.kv().clone()));

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
    journal_compaction.abort();
    warm_expiry.abort();
    let _ = warm_expiry.await;
    kv_expiry.abort();
    let _ = kv_expiry.await;
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

/// Fold the calls journal's finished segments into what is still live,
/// every minute (the first tick: at start, folding what the last run left).
async fn compact_journal(calls: Arc<CallJournal>, call_ttl: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let calls = calls.clone();
        let compacted = tokio::task::spawn_blocking(move || {
            calls.compact(
                call_ttl,
                crate::store::MAX_CALLS,
                embedded::REPLY_TTL,
                embedded::MAX_REMEMBERED_REPLIES,
            )
        })
        .await;
        match compacted {
            Ok(Err(err)) => tracing::warn!("compacting the calls journal failed: {err:#}"),
            Ok(Ok(folded)) if folded > 0 => {
                tracing::debug!(folded, "compacted the calls journal")
            }
            _ => {}
        }
    }
}

/// Drop the apps' expired keys every minute (reads never see them; this
/// gives their space back to the quota).
async fn purge_expired_keys(kv: Arc<dyn KvStore>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let kv = kv.clone();
        match tokio::task::spawn_blocking(move || kv.purge_expired()).await {
            Ok(Err(err)) => tracing::warn!("purging expired keys failed: {err}"),
            Ok(Ok(purged)) if purged > 0 => tracing::debug!(purged, "purged expired keys"),
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
