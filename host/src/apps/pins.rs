//! Per-call version pinning: every event of a call goes to the app version
//! that answered its first event, until the call ends or goes idle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::LoadedApp;

/// Session id → the app version answering it.
pub struct PinTable {
    inner: Mutex<HashMap<String, Pin>>,
    max_calls: usize,
    idle_ttl: Duration,
}

struct Pin {
    app: Arc<LoadedApp>,
    touched: Instant,
}

impl PinTable {
    /// At most `max_calls` pins, each dropped after `idle_ttl` without an event.
    pub fn new(max_calls: usize, idle_ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            max_calls: max_calls.max(1),
            idle_ttl,
        }
    }

    /// The version pinned for `session_id`, or the one `choose` picks, which
    /// is then pinned. `choose` runs under the table's lock: keep it cheap.
    pub fn get_or_pin<E>(
        &self,
        session_id: &str,
        choose: impl FnOnce() -> Result<Arc<LoadedApp>, E>,
    ) -> Result<Arc<LoadedApp>, E> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(pin) = map.get_mut(session_id)
            && now.duration_since(pin.touched) < self.idle_ttl
        {
            pin.touched = now;
            return Ok(pin.app.clone());
        }
        let app = choose()?;
        if map.len() >= self.max_calls && !map.contains_key(session_id) {
            let ttl = self.idle_ttl;
            map.retain(|_, p| now.duration_since(p.touched) < ttl);
            if map.len() >= self.max_calls
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, p)| p.touched)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            session_id.to_owned(),
            Pin {
                app: app.clone(),
                touched: now,
            },
        );
        Ok(app)
    }

    /// The version pinned for `session_id`, without pinning anything.
    pub fn get(&self, session_id: &str) -> Option<Arc<LoadedApp>> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session_id)
            .map(|p| p.app.clone())
    }

    /// Forget a call's pin (the call ended).
    pub fn release(&self, session_id: &str) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(session_id);
    }

    /// How many calls are pinned.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no call is pinned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
