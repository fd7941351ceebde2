//! The `ivr:app/kv` import: the app's own key-value store, kept across
//! calls and restarts, bounded per app by `kv_quota_mib`. Every failure is
//! an error the guest handles (never a trap). The backend is the store's
//! [`KvStore`]; its calls run off the async executor.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

use super::EventCtx;
use crate::runtime::ivr::app::kv;
use crate::store::kv::{KvError, KvStore};

/// The interfaces this capability provides, with the version it implements.
pub(crate) const PROVIDES: &[(&str, &str)] = &[("ivr:app/kv", "0.3.0")];

/// Default per-app quota, in MiB.
pub const DEFAULT_QUOTA_MIB: u64 = 16;
/// Largest per-app quota, in MiB.
pub const MAX_QUOTA_MIB: u64 = 1024;

/// The per-app settings of this capability.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvSettings {
    /// Bytes of keys and values the app may keep, in MiB (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_quota_mib: Option<u64>,
}

impl KvSettings {
    /// Check the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        match self.kv_quota_mib {
            Some(0) => Err("kv_quota_mib must be greater than zero".into()),
            Some(mib) if mib > MAX_QUOTA_MIB => {
                Err(format!("kv_quota_mib {mib} is over {MAX_QUOTA_MIB}"))
            }
            _ => Ok(()),
        }
    }

    /// The quota, in bytes.
    pub fn quota_bytes(&self) -> u64 {
        self.kv_quota_mib.unwrap_or(DEFAULT_QUOTA_MIB) << 20
    }
}

/// One app's view of the store: its name scopes every key.
#[derive(Clone)]
pub struct KvScope {
    store: Option<Arc<dyn KvStore>>,
    app: Arc<str>,
    quota: u64,
}

impl KvScope {
    /// `app`'s keys in `store`, within `quota` bytes.
    pub fn new(store: Arc<dyn KvStore>, app: Arc<str>, quota: u64) -> Self {
        Self {
            store: Some(store),
            app,
            quota,
        }
    }

    /// No store at all (every call fails as unavailable): for embedders
    /// and benchmarks that run guests without one.
    pub fn none() -> Self {
        Self {
            store: None,
            app: Arc::from(""),
            quota: 0,
        }
    }

    async fn run<R: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn KvStore, &str, u64) -> Result<R, KvError> + Send + 'static,
    ) -> Result<R, KvError> {
        let Some(store) = self.store.clone() else {
            return Err(KvError::Unavailable(
                "no key-value store on this host".into(),
            ));
        };
        let (app, quota) = (self.app.clone(), self.quota);
        tokio::task::spawn_blocking(move || op(&*store, &app, quota))
            .await
            .unwrap_or_else(|err| {
                Err(KvError::Unavailable(format!(
                    "the store task failed: {err}"
                )))
            })
    }
}

/// The key-value store of the app an event runs.
pub(crate) struct KvImport {
    scope: KvScope,
}

impl KvImport {
    pub(crate) fn new(scope: KvScope) -> Self {
        Self { scope }
    }
}

pub(crate) fn link(linker: &mut Linker<EventCtx>) -> wasmtime::Result<()> {
    kv::add_to_linker::<EventCtx, HasSelf<KvImport>>(linker, |ctx| &mut ctx.kv)
}

fn to_wit(err: KvError) -> kv::Error {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match err {
        KvError::KeyTooLong(n) => kv::Error::KeyTooLong(clamp(n)),
        KvError::ValueTooLarge(n) => kv::Error::ValueTooLarge(clamp(n)),
        KvError::QuotaExceeded(quota) => kv::Error::QuotaExceeded(quota),
        KvError::NotANumber => kv::Error::NotANumber,
        KvError::Unavailable(why) => {
            tracing::warn!("key-value store unavailable: {why}");
            kv::Error::Unavailable("the key-value store is unavailable".into())
        }
    }
}

impl kv::Host for KvImport {
    async fn get(&mut self, key: String) -> Result<Option<String>, kv::Error> {
        self.scope
            .run(move |store, app, _| store.get(app, &key))
            .await
            .map_err(to_wit)
    }

    async fn set(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u32>,
    ) -> Result<(), kv::Error> {
        let ttl = ttl_seconds.map(|s| Duration::from_secs(u64::from(s)));
        self.scope
            .run(move |store, app, quota| store.set(app, &key, &value, ttl, quota))
            .await
            .map_err(to_wit)
    }

    async fn delete(&mut self, key: String) -> Result<(), kv::Error> {
        self.scope
            .run(move |store, app, _| store.delete(app, &key))
            .await
            .map_err(to_wit)
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, kv::Error> {
        self.scope
            .run(move |store, app, quota| store.increment(app, &key, delta, quota))
            .await
            .map_err(to_wit)
    }
}
