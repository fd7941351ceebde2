//! Per-call state kept in memory between the events of a call: bounded in
//! the number of calls, each call's entry expiring after an idle time.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::recent::RecentMap;
use crate::runtime::CallState;

/// In-memory per-call state, keyed by session id.
pub struct CallStateStore {
    inner: Mutex<RecentMap<String, CallState>>,
}

impl CallStateStore {
    /// A store holding at most `max_calls` calls, each forgotten after
    /// `idle_ttl` without an event; when full, the call idle longest goes.
    pub fn new(max_calls: usize, idle_ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(RecentMap::new(max_calls, idle_ttl)),
        }
    }

    /// A copy of the call's state (empty for a new or expired call).
    pub fn load(&self, session_id: &str) -> CallState {
        self.lock().peek(session_id).cloned().unwrap_or_default()
    }

    /// Replace the call's state with `values` (an empty state removes the call).
    pub fn commit(&self, session_id: &str, values: CallState) {
        let mut map = self.lock();
        if values.is_empty() {
            map.remove(session_id);
        } else {
            map.insert(session_id.to_owned(), values);
        }
    }

    /// Put back a call's state kept across a restart, idle for `idle`.
    pub fn restore(&self, session_id: &str, values: CallState, idle: Duration) {
        if !values.is_empty() {
            self.lock().insert_aged(session_id.to_owned(), values, idle);
        }
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

    fn lock(&self) -> MutexGuard<'_, RecentMap<String, CallState>> {
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
