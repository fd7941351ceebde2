//! The `ivr:app/state` import: string values kept for the rest of a call.
//!
//! The host loads a call's state before each event and keeps it only when
//! the event answered cleanly and the guest changed it (see
//! [`StateImport::take`]); where it is kept between events is the store's.

use std::collections::HashMap;

use wasmtime::component::{HasSelf, Linker};

use super::EventCtx;
use crate::runtime::ivr::app::state;
use crate::runtime::v0_2::ivr::app::state as state_v0_2;

/// The interfaces this capability provides, with the version it implements.
pub(crate) const PROVIDES: &[(&str, &str)] =
    &[("ivr:app/state", "0.3.0"), ("ivr:app/state", "0.2.0")];

/// One call's state: string keys and values.
pub type CallState = HashMap<String, String>;

/// Most keys one call's state may hold.
pub const MAX_STATE_KEYS: usize = 64;
/// Longest state key, in bytes.
pub const MAX_STATE_KEY_BYTES: usize = 256;
/// Longest state value, in bytes.
pub const MAX_STATE_VALUE_BYTES: usize = 8 * 1024;

/// The state of the call one event belongs to.
#[derive(Default)]
pub(crate) struct StateImport {
    values: CallState,
    /// The guest set a key, or deleted one that was present.
    changed: bool,
}

impl StateImport {
    /// The import for an event of a call whose state is `values`.
    pub(crate) fn new(values: CallState) -> Self {
        Self {
            values,
            changed: false,
        }
    }

    /// The call's state after the event, and whether the guest changed it.
    pub(crate) fn take(&mut self) -> (CallState, bool) {
        (
            std::mem::take(&mut self.values),
            std::mem::replace(&mut self.changed, false),
        )
    }
}

pub(crate) fn link(linker: &mut Linker<EventCtx>) -> wasmtime::Result<()> {
    state::add_to_linker::<EventCtx, HasSelf<StateImport>>(linker, |ctx| &mut ctx.state)?;
    state_v0_2::add_to_linker::<EventCtx, HasSelf<StateImport>>(linker, |ctx| &mut ctx.state)
}

/// 0.2.0's `state` is 0.3.0's.
impl state_v0_2::Host for StateImport {
    fn get(&mut self, key: String) -> Option<String> {
        state::Host::get(self, key)
    }

    fn set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        state::Host::set(self, key, value)
    }

    fn delete(&mut self, key: String) {
        state::Host::delete(self, key)
    }
}

impl state::Host for StateImport {
    fn get(&mut self, key: String) -> Option<String> {
        self.values.get(&key).cloned()
    }

    fn set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        if key.len() > MAX_STATE_KEY_BYTES {
            wasmtime::bail!(
                "state key is {} bytes; at most {MAX_STATE_KEY_BYTES} are allowed",
                key.len()
            );
        }
        if value.len() > MAX_STATE_VALUE_BYTES {
            wasmtime::bail!(
                "state value for {key:?} is {} bytes; at most {MAX_STATE_VALUE_BYTES} are allowed",
                value.len()
            );
        }
        if self.values.len() >= MAX_STATE_KEYS && !self.values.contains_key(&key) {
            wasmtime::bail!("call state already holds {MAX_STATE_KEYS} keys; cannot add {key:?}");
        }
        self.values.insert(key, value);
        self.changed = true;
        Ok(())
    }

    fn delete(&mut self, key: String) {
        self.changed |= self.values.remove(&key).is_some();
    }
}
