//! The embedded host: every store in the data directory (SQLite, files,
//! memory), assembled into the service that answers webhooks. `serve` runs
//! it behind the listeners; tests and fuzz targets open it directly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::apps::{AppRegistry, RegistryPaths};
use crate::config::Settings;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::service::IvrService;
use crate::store::db::SqliteStore;
use crate::store::kv::SqliteKv;
use crate::store::sessions::SessionStore;
use crate::store::{CallJournal, CallStateStore, MAX_CALLS, ReplyCache};

/// How long the first reply to an event is kept for repeated deliveries.
pub const REPLY_TTL: Duration = Duration::from_secs(15 * 60);
/// Most replies kept for repeated deliveries.
pub const MAX_REMEMBERED_REPLIES: usize = 100_000;

/// Open the data directory as `settings` say: load the apps, apply the
/// flags' and file's apps, configuration and routes, and put back the
/// calls in progress.
pub async fn open(settings: &Settings) -> anyhow::Result<Arc<IvrService>> {
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
    refuse_a_lost_database(settings)?;
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
            secrets: settings.data_dir.join("secrets.json"),
        },
        settings.call_idle_ttl,
        settings.host_limits(),
    )
    .await?;
    apply_startup_settings(&registry, settings).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apps ready"
    );

    let calls = Arc::new(CallJournal::open(&settings.data_dir.join("calls"))?);
    let kv = Arc::new(SqliteKv::open(&settings.data_dir.join("kv.sqlite3"))?);
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
        kv,
    ));
    service
        .restore_calls(
            settings.call_idle_ttl,
            MAX_CALLS,
            REPLY_TTL,
            MAX_REMEMBERED_REPLIES,
        )
        .await
        .context("restoring the calls in progress from the calls journal")?;
    Ok(service)
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
