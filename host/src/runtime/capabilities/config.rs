//! The `ivr:app/config` import: the app's configuration values, set by the
//! operator (`PUT /apps/{name}/config`, `--app-config`, the TOML file) and
//! read-only to the guest.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::EventCtx;
use crate::runtime::ivr::app::config;
use crate::runtime::v0_2::ivr::app::config as config_v0_2;

/// The interfaces this capability provides, with the version it implements.
pub(crate) const PROVIDES: &[(&str, &str)] =
    &[("ivr:app/config", "0.3.0"), ("ivr:app/config", "0.2.0")];

/// An app's configuration values.
pub type AppConfig = BTreeMap<String, String>;

/// The configuration of the app an event runs (shared by all its events).
#[derive(Default)]
pub(crate) struct ConfigImport {
    values: Arc<AppConfig>,
}

impl ConfigImport {
    pub(crate) fn new(values: Arc<AppConfig>) -> Self {
        Self { values }
    }
}

pub(crate) fn link(linker: &mut Linker<EventCtx>) -> wasmtime::Result<()> {
    config::add_to_linker::<EventCtx, HasSelf<ConfigImport>>(linker, |ctx| &mut ctx.config)?;
    config_v0_2::add_to_linker::<EventCtx, HasSelf<ConfigImport>>(linker, |ctx| &mut ctx.config)
}

/// 0.2.0's `config` is 0.3.0's.
impl config_v0_2::Host for ConfigImport {
    fn get(&mut self, key: String) -> Option<String> {
        config::Host::get(self, key)
    }
}

impl config::Host for ConfigImport {
    fn get(&mut self, key: String) -> Option<String> {
        self.values.get(&key).cloned()
    }
}
