//! Per-call version pinning: every event of a call goes to the app version
//! that answered its first event, until the call ends or goes idle.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::LoadedApp;
use crate::store::recent::RecentMap;

/// Session id → the app version answering it.
pub struct PinTable {
    inner: Mutex<RecentMap<String, Arc<LoadedApp>>>,
}

impl PinTable {
    /// At most `max_calls` pins, each dropped after `idle_ttl` without an event.
    pub fn new(max_calls: usize, idle_ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(RecentMap::new(max_calls, idle_ttl)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RecentMap<String, Arc<LoadedApp>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The version pinned for `session_id`, or the one `choose` picks, which
    /// is then pinned. `choose` runs under the table's lock: keep it cheap.
    pub fn get_or_pin<E>(
        &self,
        session_id: &str,
        choose: impl FnOnce() -> Result<Arc<LoadedApp>, E>,
    ) -> Result<Arc<LoadedApp>, E> {
        let mut map = self.lock();
        if let Some(app) = map.touch(session_id) {
            return Ok(app.clone());
        }
        let app = choose()?;
        let evicted = map.insert(session_id.to_owned(), app.clone());
        if !evicted.is_empty() {
            tracing::warn!(
                evicted = evicted.len(),
                "calls in progress lost their version pin: more calls than the host keeps at once"
            );
        }
        Ok(app)
    }

    /// The version pinned for `session_id`, without pinning anything.
    pub fn get(&self, session_id: &str) -> Option<Arc<LoadedApp>> {
        self.lock().peek(session_id).cloned()
    }

    /// Put back a pin kept across a restart, idle for `idle`.
    pub fn restore(&self, session_id: &str, app: Arc<LoadedApp>, idle: Duration) {
        let _ = self.lock().insert_aged(session_id.to_owned(), app, idle);
    }

    /// Forget a call's pin (the call ended).
    pub fn release(&self, session_id: &str) {
        self.lock().remove(session_id);
    }

    /// How many calls are pinned.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no call is pinned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
