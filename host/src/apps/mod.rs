//! The app registry: deployed apps and their versions, which version is
//! active, routes, per-app configuration and per-call pins.
//!
//! Readers take an immutable [`Snapshot`] at the start of an event, so a
//! deploy, rollback or route change made meanwhile never affects an event in
//! progress. Writers are serialized, compile off the async executor, make the
//! change durable (blob file, compile cache, one SQLite transaction) and only
//! then swap the snapshot: what was acknowledged survives a crash, and what
//! was not never becomes active half-written.

pub mod pins;
pub mod routes;
pub mod settings;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use serde::Serialize;

use crate::protocol::CallAction;
use crate::runtime::capabilities::secrets::{MAX_SECRETS, validate_secret};
use crate::runtime::{AppConfig, AppSecrets, CompileError, CompiledApp, Runtime};
use crate::store::db::{AppRecord, MetadataStore, VersionRecord};
use crate::store::files::{BlobStore, CompileCache, sha256_hex};
use crate::store::secrets::{SecretFile, SecretValues};
use pins::PinTable;
use routes::RouteTable;
use settings::{AppSettings, Effective, HostLimits};

/// One app version, compiled and ready to run.
pub struct LoadedApp {
    /// The app's name.
    pub name: Arc<str>,
    /// The version number.
    pub version: u32,
    /// The version number as text, for log lines.
    pub version_label: Arc<str>,
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    /// The compiled component.
    pub compiled: CompiledApp,
}

/// An app as the snapshot knows it.
#[derive(Clone)]
pub struct AppSlot {
    /// The version answering new calls, if any.
    pub active: Option<Arc<LoadedApp>>,
    /// The app's configuration values.
    pub config: Arc<AppConfig>,
    /// The app's secrets.
    pub secrets: Arc<AppSecrets>,
    /// The app's settings as stored.
    pub settings: AppSettings,
    /// The app's effective limits and fallback.
    pub effective: Arc<Effective>,
}

/// An immutable view of the registry.
#[derive(Clone)]
pub struct Snapshot {
    apps: BTreeMap<String, AppSlot>,
    routes: RouteTable,
    host_default: Arc<Effective>,
}

impl Snapshot {
    /// The active version routed for `event`, or why there is none.
    pub fn route(&self, event: &CallAction) -> Result<Arc<LoadedApp>, String> {
        let mut deployed = self
            .apps
            .iter()
            .filter(|(_, slot)| slot.active.is_some())
            .map(|(name, _)| name.as_str());
        let only_app = match (deployed.next(), deployed.next()) {
            (Some(name), None) => Some(name),
            _ => None,
        };
        let name = self
            .routes
            .pick(event, only_app)
            .ok_or_else(|| match self.apps.values().any(|s| s.active.is_some()) {
                false => "no app is deployed".to_owned(),
                true => format!(
                    "no route matches virtual number {:?} or subaccount {:?}, and no default app is set",
                    event.virtual_number(),
                    event.sub_account_id
                ),
            })?;
        self.apps
            .get(name)
            .and_then(|slot| slot.active.clone())
            .ok_or_else(|| format!("the routed app {name:?} has no active version"))
    }

    /// An app's configuration.
    pub fn config(&self, app: &str) -> Arc<AppConfig> {
        self.apps
            .get(app)
            .map(|s| s.config.clone())
            .unwrap_or_default()
    }

    /// An app's secrets.
    pub fn secrets(&self, app: &str) -> Arc<AppSecrets> {
        self.apps
            .get(app)
            .map(|s| s.secrets.clone())
            .unwrap_or_default()
    }

    /// An app's effective limits and fallback (the host's for an unknown app).
    pub fn effective(&self, app: &str) -> Arc<Effective> {
        self.apps
            .get(app)
            .map(|s| s.effective.clone())
            .unwrap_or_else(|| self.host_default.clone())
    }

    /// The host's own limits and fallback (for calls no app answers).
    pub fn host_default(&self) -> &Arc<Effective> {
        &self.host_default
    }

    fn slot(&self, name: &str, host: &HostLimits) -> AppSlot {
        self.apps.get(name).cloned().unwrap_or_else(|| AppSlot {
            active: None,
            config: Arc::default(),
            secrets: Arc::default(),
            settings: AppSettings::default(),
            effective: Arc::new(AppSettings::default().resolve(host)),
        })
    }

    /// The routing table.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }
}

/// App names are short slugs: lowercase letters, digits, `-` and `_`,
/// starting with a letter or digit, at most 63 characters.
pub fn validate_app_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid app name {name:?}: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}

/// Keep `compiled` in the compile cache (a failure only costs a compile at
/// the next start).
fn keep_compiled(runtime: &Runtime, cache: &CompileCache, sha256: &str, compiled: &CompiledApp) {
    let kept = runtime
        .serialize(compiled)
        .and_then(|bytes| cache.put(sha256, &bytes));
    if let Err(err) = kept {
        tracing::warn!("could not write the compile cache: {err:#}");
    }
}

/// Why an admin operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such app or version (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid (422), e.g. a bad name or route.
    #[error("{0}")]
    Invalid(String),
    /// The component was refused (422).
    #[error("{0}")]
    Refused(#[from] CompileError),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The host failed (500).
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

/// The result of a deploy.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    /// App name.
    pub name: String,
    /// The active version.
    #[serde(flatten)]
    pub record: VersionRecord,
    /// True when the bytes were already the active version (nothing changed).
    pub unchanged: bool,
}

/// Where the registry keeps its files.
#[derive(Debug, Clone)]
pub struct RegistryPaths {
    /// Content-addressed component files.
    pub components: PathBuf,
    /// Compiled code, per engine.
    pub compiled: PathBuf,
    /// The apps' secrets file.
    pub secrets: PathBuf,
}

/// The registry.
pub struct AppRegistry {
    current: ArcSwap<Snapshot>,
    pins: PinTable,
    writer: tokio::sync::Mutex<()>,
    runtime: Arc<Runtime>,
    db: Arc<dyn MetadataStore>,
    blobs: BlobStore,
    compiled: CompileCache,
    secrets: SecretFile,
    host_limits: HostLimits,
}

/// How long a call stays pinned without an event (default).
pub const DEFAULT_PIN_TTL: Duration = Duration::from_secs(2 * 60 * 60);

impl AppRegistry {
    /// Open the registry: read the stored apps and load every active version
    /// (from the compile cache when possible).
    pub async fn open(
        runtime: Arc<Runtime>,
        db: Arc<dyn MetadataStore>,
        paths: RegistryPaths,
        pin_ttl: Duration,
        host_limits: HostLimits,
    ) -> anyhow::Result<Self> {
        let host_default = Arc::new(AppSettings::default().resolve(&host_limits));
        let compiled = CompileCache::new(&paths.compiled, &runtime.engine_key());
        let registry = Self {
            current: ArcSwap::from_pointee(Snapshot {
                apps: BTreeMap::new(),
                routes: RouteTable::default(),
                host_default: host_default.clone(),
            }),
            host_limits: host_limits.clone(),
            pins: PinTable::new(crate::store::MAX_CALLS, pin_ttl),
            writer: tokio::sync::Mutex::new(()),
            runtime,
            db,
            blobs: BlobStore::new(paths.components),
            compiled,
            secrets: SecretFile::new(&paths.secrets),
        };
        let _guard = registry.writer.lock().await;
        let records = registry.blocking(|db| db.apps()).await?;
        let mut secrets = registry.secrets.load()?;
        let mut apps = BTreeMap::new();
        for record in records {
            let active = match record.active() {
                Some(v) => Some(registry.load_version(&record.name, v).await.with_context(
                    || format!("loading version {} of {:?}", v.version, record.name),
                )?),
                None => None,
            };
            let settings: AppSettings = serde_json::from_value(record.settings.clone())
                .with_context(|| {
                    format!("the stored settings of {:?} are unreadable", record.name)
                })?;
            let effective = Arc::new(settings.resolve(&host_limits));
            apps.insert(
                record.name.clone(),
                AppSlot {
                    active,
                    config: Arc::new(record.config),
                    secrets: Arc::new(AppSecrets::new(
                        secrets.remove(&record.name).unwrap_or_default(),
                    )),
                    settings,
                    effective,
                },
            );
        }
        let routes = match registry.blocking(|db| db.routes()).await? {
            Some(stored) => {
                serde_json::from_value(stored).context("the stored routes are unreadable")?
            }
            None => RouteTable::default(),
        };
        registry.current.store(Arc::new(Snapshot {
            apps,
            routes,
            host_default,
        }));
        drop(_guard);
        Ok(registry)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The version answering `event`'s call: the one pinned to its session,
    /// else the routed app's active version (which is then pinned).
    /// Also says whether the call was pinned just now (its first event).
    pub fn resolve(
        &self,
        snapshot: &Snapshot,
        event: &CallAction,
    ) -> Result<(Arc<LoadedApp>, bool), String> {
        let mut pinned_now = false;
        let app = self.pins.get_or_pin(&event.session_id, || {
            pinned_now = true;
            snapshot.route(event)
        })?;
        Ok((app, pinned_now))
    }

    /// Put back the pins of calls in progress kept across a restart, each
    /// `(session, app, version, idle)`, oldest first. A version no longer
    /// stored is skipped: that call goes to the routed app. How many were
    /// restored.
    pub async fn restore_pins(&self, pins: Vec<(String, String, u32, Duration)>) -> usize {
        let records = match self.list().await {
            Ok(records) => records,
            Err(err) => {
                tracing::warn!("cannot restore the calls' version pins: {err}");
                return 0;
            }
        };
        let mut loaded: std::collections::HashMap<(String, u32), Arc<LoadedApp>> =
            std::collections::HashMap::new();
        let mut restored = 0;
        for (session, app, version, idle) in pins {
            let key = (app, version);
            let pinned = match loaded.get(&key) {
                Some(pinned) => pinned.clone(),
                None => {
                    let Some(record) = records
                        .iter()
                        .find(|a| a.name == key.0)
                        .and_then(|a| a.versions.iter().find(|v| v.version == version))
                    else {
                        continue;
                    };
                    match self.load_version(&key.0, record).await {
                        Ok(pinned) => {
                            loaded.insert(key.clone(), pinned.clone());
                            pinned
                        }
                        Err(err) => {
                            tracing::warn!(app = %key.0, version, "cannot load a pinned version: {err}");
                            continue;
                        }
                    }
                }
            };
            self.pins.restore(&session, pinned, idle);
            restored += 1;
        }
        restored
    }

    /// The version pinned to a call, if any.
    pub fn pinned(&self, session_id: &str) -> Option<Arc<LoadedApp>> {
        self.pins.get(session_id)
    }

    /// Forget a call's pin (it ended).
    pub fn release(&self, session_id: &str) {
        self.pins.release(session_id);
    }

    /// Drop every active version's warm instances idle past their TTL.
    pub fn expire_warm_instances(&self) {
        for slot in self.snapshot().apps.values() {
            if let Some(active) = &slot.active {
                active.compiled.expire_warm_instances();
            }
        }
    }

    /// Warm instances idle across the active versions.
    pub fn idle_warm_instances(&self) -> usize {
        self.snapshot()
            .apps
            .values()
            .filter_map(|slot| slot.active.as_ref())
            .map(|active| active.compiled.idle_warm_instances())
            .sum()
    }

    /// How many calls are pinned.
    pub fn pinned_calls(&self) -> usize {
        self.pins.len()
    }

    /// Every app with its versions.
    pub async fn list(&self) -> Result<Vec<AppRecord>, AdminError> {
        Ok(self.blocking(|db| db.apps()).await?)
    }

    /// One app.
    pub async fn show(&self, name: &str) -> Result<AppRecord, AdminError> {
        self.list()
            .await?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| AdminError::NotFound(format!("no app named {name:?}")))
    }

    /// Deploy `bytes` as the new active version of `name`: check it fits the
    /// world, store it durably, then make it live for new calls.
    pub async fn deploy(&self, name: &str, bytes: Vec<u8>) -> Result<Deployed, AdminError> {
        validate_app_name(name).map_err(AdminError::Invalid)?;
        let _guard = self.writer.lock().await;
        let sha256 = sha256_hex(&bytes);
        if let Some(record) = self.active_record(name).await?
            && record.sha256 == sha256
        {
            return Ok(Deployed {
                name: name.to_owned(),
                record,
                unchanged: true,
            });
        }
        let size = bytes.len() as u64;
        let runtime = self.runtime.clone();
        let blobs = self.blobs.clone();
        let cache = self.compiled.clone();
        let sha = sha256.clone();
        let compiled = tokio::task::spawn_blocking(move || -> Result<CompiledApp, AdminError> {
            let compiled = runtime.compile(&bytes)?;
            blobs.put(&sha, &bytes)?;
            keep_compiled(&runtime, &cache, &sha, &compiled);
            Ok(compiled)
        })
        .await
        .map_err(|e| AdminError::Internal(anyhow::anyhow!("compile task failed: {e}")))??;
        let app_name = name.to_owned();
        let sha = sha256.clone();
        let record = self
            .blocking(move |db| db.add_active_version(&app_name, &sha, size))
            .await?;
        self.activate_in_snapshot(name, Some(self.loaded(name, &record, compiled)));
        tracing::info!(app = name, version = record.version, sha256 = %record.sha256, "deployed and active");
        Ok(Deployed {
            name: name.to_owned(),
            record,
            unchanged: false,
        })
    }

    /// Make `version` (default: the one before the active one) active again.
    pub async fn rollback(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<VersionRecord, AdminError> {
        let _guard = self.writer.lock().await;
        let app = self.show(name).await?;
        if app.versions.is_empty() {
            return Err(AdminError::NotFound(format!("no app named {name:?}")));
        }
        let target = match version {
            Some(v) => app
                .versions
                .iter()
                .find(|r| r.version == v)
                .ok_or_else(|| AdminError::NotFound(format!("{name:?} has no version {v}")))?,
            None => {
                let Some(active) = app.active_version else {
                    return Err(AdminError::Conflict(format!(
                        "{name:?} has no active version; name the version to make active"
                    )));
                };
                app.versions
                    .iter()
                    .rev()
                    .find(|r| r.version < active)
                    .ok_or_else(|| {
                        AdminError::Conflict(format!("{name:?} has no version before {active}"))
                    })?
            }
        };
        let loaded = self.load_version(name, target).await?;
        let (app_name, v) = (name.to_owned(), target.version);
        let record = self.blocking(move |db| db.activate(&app_name, v)).await?;
        self.activate_in_snapshot(name, Some(loaded));
        tracing::info!(app = name, version = record.version, "rolled back; active");
        Ok(record)
    }

    /// Remove an app. Refused while a route names it.
    pub async fn delete(&self, name: &str) -> Result<(), AdminError> {
        let _guard = self.writer.lock().await;
        let snapshot = self.snapshot();
        if !snapshot.apps.contains_key(name) {
            return Err(AdminError::NotFound(format!("no app named {name:?}")));
        }
        if snapshot.routes.mentions(name) {
            return Err(AdminError::Conflict(format!(
                "{name:?} is named in the routes; change the routes first"
            )));
        }
        let app_name = name.to_owned();
        self.blocking(move |db| db.delete_app(&app_name)).await?;
        if !snapshot.secrets(name).is_empty() {
            self.write_secrets(name, None).await?;
        }
        let mut next = (*snapshot).clone();
        let removed = next.apps.remove(name);
        self.current.store(Arc::new(next));
        if let Some(active) = removed.and_then(|slot| slot.active) {
            active.compiled.retire_warm_instances();
        }
        tracing::info!(
            app = name,
            "deleted (calls in progress finish on their version)"
        );
        Ok(())
    }

    /// Replace an app's configuration. Refused for an app never deployed:
    /// a typo in a name must not create a phantom app.
    pub async fn set_config(&self, name: &str, config: AppConfig) -> Result<(), AdminError> {
        validate_app_name(name).map_err(AdminError::Invalid)?;
        let _guard = self.writer.lock().await;
        self.require_deployed(name)?;
        let (app_name, stored) = (name.to_owned(), config.clone());
        self.blocking(move |db| db.set_config(&app_name, &stored))
            .await?;
        let snapshot = self.snapshot();
        let mut next = (*snapshot).clone();
        let mut slot = next.slot(name, &self.host_limits);
        slot.config = Arc::new(config);
        next.apps.insert(name.to_owned(), slot);
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// The names of an app's secrets (never their values).
    pub fn secret_names(&self, name: &str) -> Result<Vec<String>, AdminError> {
        let snapshot = self.snapshot();
        match snapshot.apps.get(name) {
            Some(slot) => Ok(slot.secrets.names()),
            None => Err(AdminError::NotFound(format!("no app named {name:?}"))),
        }
    }

    /// Set one secret of a deployed app (kept in the 0600 secrets file).
    pub async fn set_secret(&self, name: &str, key: &str, value: String) -> Result<(), AdminError> {
        validate_app_name(name).map_err(AdminError::Invalid)?;
        validate_secret(key, &value).map_err(AdminError::Invalid)?;
        let _guard = self.writer.lock().await;
        self.require_deployed(name)?;
        let mut values = self.secret_values(name);
        if values.len() >= MAX_SECRETS && !values.contains_key(key) {
            return Err(AdminError::Invalid(format!(
                "{name:?} already has {MAX_SECRETS} secrets"
            )));
        }
        values.insert(key.to_owned(), value);
        self.write_secrets(name, Some(values)).await
    }

    /// Remove one secret; 404 when the app has no secret of that name.
    pub async fn delete_secret(&self, name: &str, key: &str) -> Result<(), AdminError> {
        let _guard = self.writer.lock().await;
        self.require_deployed(name)?;
        let mut values = self.secret_values(name);
        if values.remove(key).is_none() {
            return Err(AdminError::NotFound(format!(
                "{name:?} has no secret named {key:?}"
            )));
        }
        self.write_secrets(name, Some(values)).await
    }

    fn secret_values(&self, name: &str) -> BTreeMap<String, String> {
        self.snapshot().secrets(name).values().clone()
    }

    /// Make `values` (none: no secrets) `name`'s secrets: the file first,
    /// then the snapshot. Holds the writer lock.
    async fn write_secrets(
        &self,
        name: &str,
        values: Option<BTreeMap<String, String>>,
    ) -> Result<(), AdminError> {
        let snapshot = self.snapshot();
        let mut all: SecretValues = snapshot
            .apps
            .keys()
            .filter(|app| app.as_str() != name)
            .map(|app| (app.clone(), self.secret_values(app)))
            .filter(|(_, values)| !values.is_empty())
            .collect();
        if let Some(values) = &values
            && !values.is_empty()
        {
            all.insert(name.to_owned(), values.clone());
        }
        let file = self.secrets.clone();
        tokio::task::spawn_blocking(move || file.save(&all))
            .await
            .map_err(|e| AdminError::Internal(anyhow::anyhow!("secrets task failed: {e}")))??;
        let mut next = (*snapshot).clone();
        if let Some(slot) = next.apps.get_mut(name) {
            slot.secrets = Arc::new(AppSecrets::new(values.unwrap_or_default()));
        }
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Replace an app's settings (limits, fallback), after checking them.
    pub async fn set_settings(&self, name: &str, settings: AppSettings) -> Result<(), AdminError> {
        validate_app_name(name).map_err(AdminError::Invalid)?;
        settings
            .validate(&self.host_limits)
            .map_err(AdminError::Invalid)?;
        let _guard = self.writer.lock().await;
        self.require_deployed(name)?;
        let stored = serde_json::to_value(&settings).context("encoding the settings")?;
        let app_name = name.to_owned();
        self.blocking(move |db| db.set_settings(&app_name, &stored))
            .await?;
        let snapshot = self.snapshot();
        let mut next = (*snapshot).clone();
        let mut slot = next.slot(name, &self.host_limits);
        slot.effective = Arc::new(settings.resolve(&self.host_limits));
        slot.settings = settings;
        let active = slot.active.clone();
        next.apps.insert(name.to_owned(), slot);
        self.current.store(Arc::new(next));
        if let Some(active) = active {
            active.compiled.drop_warm_instances();
        }
        Ok(())
    }

    /// Replace the routing table, after checking it.
    pub async fn set_routes(&self, routes: RouteTable) -> Result<(), AdminError> {
        let _guard = self.writer.lock().await;
        let snapshot = self.snapshot();
        routes
            .validate(|app| snapshot.apps.contains_key(app))
            .map_err(AdminError::Invalid)?;
        let stored = serde_json::to_value(&routes).context("encoding the routes")?;
        self.blocking(move |db| db.set_routes(&stored)).await?;
        let mut next = (*snapshot).clone();
        next.routes = routes;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// `NotFound` unless `name` has been deployed (it may have no active
    /// version).
    fn require_deployed(&self, name: &str) -> Result<(), AdminError> {
        match self.snapshot().apps.get(name) {
            Some(slot) if slot.active.is_some() => Ok(()),
            _ => Err(AdminError::NotFound(format!(
                "no app named {name:?} is deployed (deploy it first)"
            ))),
        }
    }

    async fn active_record(&self, name: &str) -> Result<Option<VersionRecord>, AdminError> {
        let apps = self.blocking(|db| db.apps()).await?;
        Ok(apps
            .into_iter()
            .find(|a| a.name == name)
            .and_then(|a| a.active().cloned()))
    }

    fn loaded(&self, name: &str, record: &VersionRecord, compiled: CompiledApp) -> Arc<LoadedApp> {
        Arc::new(LoadedApp {
            name: name.into(),
            version: record.version,
            version_label: record.version.to_string().into(),
            sha256: record.sha256.clone(),
            compiled,
        })
    }

    /// Load a stored version: the compile cache, else the stored component.
    async fn load_version(
        &self,
        name: &str,
        record: &VersionRecord,
    ) -> Result<Arc<LoadedApp>, AdminError> {
        let snapshot = self.snapshot();
        if let Some(active) = snapshot.apps.get(name).and_then(|s| s.active.as_ref())
            && active.version == record.version
        {
            return Ok(active.clone());
        }
        let runtime = self.runtime.clone();
        let blobs = self.blobs.clone();
        let cache = self.compiled.clone();
        let sha = record.sha256.clone();
        let app = name.to_owned();
        let version = record.version;
        let compiled = tokio::task::spawn_blocking(move || -> Result<CompiledApp, AdminError> {
            if let Some(artifact) = cache.get(&sha) {
                // SAFETY: the cache's directory is keyed by this engine's
                // `engine_key`, and `get` hands back only bytes matching the
                // seal written after `Runtime::serialize`'s output.
                match unsafe { runtime.load_compiled(&artifact) } {
                    Ok(compiled) => {
                        tracing::info!(app, version, source = "cache", "app loaded");
                        return Ok(compiled);
                    }
                    Err(err) => tracing::warn!(
                        app,
                        version,
                        "cached compiled code unusable ({err}); recompiling"
                    ),
                }
            }
            let bytes = blobs.get(&sha)?;
            let compiled = runtime.compile(&bytes)?;
            keep_compiled(&runtime, &cache, &sha, &compiled);
            tracing::info!(app, version, source = "compiled", "app loaded");
            Ok(compiled)
        })
        .await
        .map_err(|e| AdminError::Internal(anyhow::anyhow!("load task failed: {e}")))??;
        Ok(self.loaded(name, record, compiled))
    }

    fn activate_in_snapshot(&self, name: &str, active: Option<Arc<LoadedApp>>) {
        let snapshot = self.snapshot();
        let mut next = (*snapshot).clone();
        let mut slot = next.slot(name, &self.host_limits);
        let replaced = std::mem::replace(&mut slot.active, active);
        next.apps.insert(name.to_owned(), slot);
        self.current.store(Arc::new(next));
        if let Some(replaced) = replaced {
            replaced.compiled.retire_warm_instances();
        }
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn MetadataStore) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(db.as_ref()))
            .await
            .context("database task failed")?
    }
}
