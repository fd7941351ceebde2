//! Per-call state kept in memory between the events of a call: bounded in
//! the number of calls and in bytes, each call's entry expiring after an
//! idle time.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::recent::RecentMap;

/// A call's state: string values by key (the guest's `state` import).
pub type CallState = std::collections::HashMap<String, String>;

/// In-memory per-call state, keyed by session id.
pub struct CallStateStore {
    inner: Mutex<RecentMap<String, CallState>>,
}

impl CallStateStore {
    /// A store holding at most `max_calls` calls and `max_bytes` of state,
    /// each call forgotten after `idle_ttl` without an event; when full, the
    /// calls idle longest go.
    pub fn new(max_calls: usize, max_bytes: usize, idle_ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(RecentMap::with_max_weight(max_calls, max_bytes, idle_ttl)),
        }
    }

    /// A copy of the call's state (empty for a new or expired call).
    pub fn load(&self, session_id: &str) -> CallState {
        self.lock().peek(session_id).cloned().unwrap_or_default()
    }

    /// Replace the call's state with `values` (an empty state removes the
    /// call). Returns the calls in progress whose state was dropped to make
    /// room.
    #[must_use = "a call whose state was dropped must be told about (logged, counted, unpinned)"]
    pub fn commit(&self, session_id: &str, values: CallState) -> Vec<String> {
        let mut map = self.lock();
        if values.is_empty() {
            map.remove(session_id);
            Vec::new()
        } else {
            let weight = state_bytes(session_id, &values);
            map.insert_weighted(session_id.to_owned(), values, weight, Duration::ZERO)
        }
    }

    /// Bytes of state held.
    pub fn bytes(&self) -> usize {
        self.lock().weight()
    }

    /// Put back a call's state kept across a restart, idle for `idle`.
    pub fn restore(&self, session_id: &str, values: CallState, idle: Duration) {
        if !values.is_empty() {
            let weight = state_bytes(session_id, &values);
            let _ = self
                .lock()
                .insert_weighted(session_id.to_owned(), values, weight, idle);
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

/// Bytes counted for a key or value besides its text (the map's entry, the
/// strings' headers).
const PER_ENTRY: usize = 64;

/// About how many bytes a call's state takes.
fn state_bytes(session_id: &str, values: &CallState) -> usize {
    PER_ENTRY
        + session_id.len()
        + values
            .iter()
            .map(|(k, v)| PER_ENTRY + k.len() + v.len())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(k: &str, v: &str) -> CallState {
        CallState::from([(k.to_owned(), v.to_owned())])
    }

    #[test]
    fn calls_do_not_see_each_other() {
        let store = CallStateStore::new(10, usize::MAX, Duration::from_secs(60));
        let _ = store.commit("a", state("account", "1234"));
        assert_eq!(
            store.load("a").get("account").map(String::as_str),
            Some("1234")
        );
        assert!(store.load("b").is_empty());
    }

    #[test]
    fn bounded_and_expiring() {
        let store = CallStateStore::new(2, usize::MAX, Duration::from_secs(60));
        let _ = store.commit("a", state("k", "1"));
        let _ = store.commit("b", state("k", "2"));
        assert_eq!(store.commit("c", state("k", "3")), ["a"]);
        assert_eq!(store.len(), 2);
        assert!(
            store.load("a").is_empty(),
            "the oldest call is evicted first"
        );

        let short = CallStateStore::new(10, usize::MAX, Duration::from_millis(1));
        let _ = short.commit("a", state("k", "1"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.load("a").is_empty());
    }

    #[test]
    fn bounded_in_bytes() {
        let big = |c: char| state("k", &c.to_string().repeat(1000));
        let store = CallStateStore::new(100, 2500, Duration::from_secs(60));
        assert!(store.commit("a", big('a')).is_empty());
        assert!(store.commit("b", big('b')).is_empty());
        assert_eq!(
            store.commit("c", big('c')),
            ["a"],
            "the idle-longest call went"
        );
        assert!(store.bytes() <= 2500);
        assert!(store.load("a").is_empty());
    }

    #[test]
    fn empty_state_removes_the_call() {
        let store = CallStateStore::new(10, usize::MAX, Duration::from_secs(60));
        let _ = store.commit("a", state("k", "1"));
        let _ = store.commit("a", CallState::new());
        assert!(store.is_empty());
    }
}
