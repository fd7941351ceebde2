//! Per-call state kept in memory between the events of a call: bounded in
//! the number of calls, each call's entry expiring after an idle time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::runtime::CallState;

/// In-memory per-call state, keyed by session id.
pub struct CallStateStore {
    inner: Mutex<HashMap<String, Entry>>,
    max_calls: usize,
    idle_ttl: Duration,
}

struct Entry {
    values: CallState,
    touched: Instant,
}

impl CallStateStore {
    /// A store holding at most `max_calls` calls, each forgotten after
    /// `idle_ttl` without an event.
    pub fn new(max_calls: usize, idle_ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            max_calls: max_calls.max(1),
            idle_ttl,
        }
    }

    /// A copy of the call's state (empty for a new or expired call).
    pub fn load(&self, session_id: &str) -> CallState {
        let map = self.lock();
        match map.get(session_id) {
            Some(entry) if entry.touched.elapsed() < self.idle_ttl => entry.values.clone(),
            _ => CallState::new(),
        }
    }

    /// Replace the call's state with `values` (an empty state removes the call).
    pub fn commit(&self, session_id: &str, values: CallState) {
        let mut map = self.lock();
        if values.is_empty() {
            map.remove(session_id);
            return;
        }
        if map.len() >= self.max_calls && !map.contains_key(session_id) {
            self.make_room(&mut map);
        }
        map.insert(
            session_id.to_owned(),
            Entry {
                values,
                touched: Instant::now(),
            },
        );
    }

    /// Forget a call (it ended).
    pub fn remove(&self, session_id: &str) {
        self.lock().remove(session_id);
    }

    /// How many calls hold state.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no call holds state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop expired calls; if none expired, drop the least recently used one.
    fn make_room(&self, map: &mut HashMap<String, Entry>) {
        let ttl = self.idle_ttl;
        map.retain(|_, e| e.touched.elapsed() < ttl);
        if map.len() >= self.max_calls
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.touched)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(k: &str, v: &str) -> CallState {
        CallState::from([(k.to_owned(), v.to_owned())])
    }

    #[test]
    fn calls_do_not_see_each_other() {
        let store = CallStateStore::new(10, Duration::from_secs(60));
        store.commit("a", state("account", "1234"));
        assert_eq!(
            store.load("a").get("account").map(String::as_str),
            Some("1234")
        );
        assert!(store.load("b").is_empty());
    }

    #[test]
    fn bounded_and_expiring() {
        let store = CallStateStore::new(2, Duration::from_secs(60));
        store.commit("a", state("k", "1"));
        store.commit("b", state("k", "2"));
        store.commit("c", state("k", "3"));
        assert_eq!(store.len(), 2);
        assert!(
            store.load("a").is_empty(),
            "the oldest call is evicted first"
        );

        let short = CallStateStore::new(10, Duration::from_millis(1));
        short.commit("a", state("k", "1"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.load("a").is_empty());
    }

    #[test]
    fn empty_state_removes_the_call() {
        let store = CallStateStore::new(10, Duration::from_secs(60));
        store.commit("a", state("k", "1"));
        store.commit("a", CallState::new());
        assert!(store.is_empty());
    }
}
