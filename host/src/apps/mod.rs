//! The app registry: which compiled apps exist and which one answers a call.
//!
//! Readers take an immutable snapshot at the start of an event, so a change
//! made meanwhile never affects an event in progress.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::protocol::CallAction;
use crate::runtime::{AppConfig, CompiledApp};

/// One app version, compiled and ready to run.
pub struct LoadedApp {
    /// The app's name (a route target).
    pub name: Arc<str>,
    /// The version id: the first 12 hex digits of the component's sha256.
    pub version: Arc<str>,
    /// The full sha256 of the component bytes, hex.
    pub sha256: String,
    /// The compiled component.
    pub compiled: CompiledApp,
    /// The app's configuration values.
    pub config: Arc<AppConfig>,
}

impl LoadedApp {
    /// Wrap a compiled component, deriving its version from `bytes`.
    pub fn new(name: &str, bytes: &[u8], compiled: CompiledApp, config: AppConfig) -> Self {
        let sha256 = hex::encode(Sha256::digest(bytes));
        Self {
            name: name.into(),
            version: sha256[..12].into(),
            sha256,
            compiled,
            config: Arc::new(config),
        }
    }
}

/// An immutable view of the registry.
#[derive(Default)]
pub struct Snapshot {
    apps: BTreeMap<String, Arc<LoadedApp>>,
    default_app: Option<String>,
}

impl Snapshot {
    /// The app that answers `event`: the default app (or the only app).
    pub fn route(&self, _event: &CallAction) -> Result<Arc<LoadedApp>, String> {
        let name = match (&self.default_app, self.apps.len()) {
            (Some(name), _) => name,
            (None, 1) => self.apps.keys().next().ok_or("no app is loaded")?,
            (None, 0) => return Err("no app is loaded".into()),
            (None, _) => return Err("several apps are loaded and no default app is set".into()),
        };
        self.apps
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the default app {name:?} is not loaded"))
    }

    /// The loaded apps, by name.
    pub fn apps(&self) -> impl Iterator<Item = &Arc<LoadedApp>> {
        self.apps.values()
    }
}

/// The registry of loaded apps.
pub struct AppRegistry {
    current: ArcSwap<Snapshot>,
}

impl AppRegistry {
    /// A registry serving `apps`, with `default_app` answering unrouted calls.
    pub fn new(apps: Vec<LoadedApp>, default_app: Option<String>) -> anyhow::Result<Self> {
        let apps: BTreeMap<_, _> = apps
            .into_iter()
            .map(|a| (a.name.to_string(), Arc::new(a)))
            .collect();
        if let Some(name) = &default_app
            && !apps.contains_key(name)
        {
            anyhow::bail!("the default app {name:?} is not among the loaded apps");
        }
        Ok(Self {
            current: ArcSwap::from_pointee(Snapshot { apps, default_app }),
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}
