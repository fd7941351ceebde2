//! Exactly-once decisions: the first reply to each event, kept for a while
//! so that a repeated delivery gets the same bytes and the guest does not
//! run twice — also when the repeat arrives while the first is running.
//!
//! An event is its (`sessionId`, `eventId`) pair: the same `eventId` posted
//! for another call is that call's own new event, decided for it, never
//! answered with the first call's reply (which may carry that caller's
//! data). A 400 would also keep the reply in its call, but would fail a
//! genuine call whose id collided; deciding it anew costs nothing extra.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::recent::RecentMap;

/// Replies by (session id, event id), bounded in number and bytes, expiring.
pub struct ReplyCache {
    inner: Mutex<RecentMap<String, Arc<OnceCell<Bytes>>>>,
}

/// Bytes counted for a remembered reply besides its key and body.
const ENTRY_OVERHEAD: usize = 128;

impl ReplyCache {
    /// Keep up to `max_events` replies of at most `max_bytes` together, each
    /// for `ttl` after it was decided.
    pub fn new(max_events: usize, max_bytes: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(RecentMap::with_max_weight(max_events, max_bytes, ttl)),
        }
    }

    /// The reply to `event_id` of `session_id`: the stored one, or the one
    /// `decide` produces (run once even when deliveries race).
    pub async fn get_or_decide<F, Fut>(&self, session_id: &str, event_id: &str, decide: F) -> Bytes
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Bytes>,
    {
        let key = event_key(session_id, event_id);
        let cell = self.slot(key.clone());
        let mut decided_here = false;
        let reply = cell
            .get_or_init(|| {
                decided_here = true;
                decide()
            })
            .await
            .clone();
        if decided_here {
            self.lock()
                .reweigh(&key, key.len() + reply.len() + ENTRY_OVERHEAD);
        }
        reply
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecentMap<String, Arc<OnceCell<Bytes>>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Put back a reply kept across a restart, given `age` ago (oldest
    /// first: the first reply kept for an event is the one that stays).
    pub fn restore(&self, session_id: &str, event_id: &str, reply: Bytes, age: Duration) {
        let key = event_key(session_id, event_id);
        let weight = key.len() + reply.len() + ENTRY_OVERHEAD;
        let mut map = self.lock();
        if map.peek(&key).is_some() {
            return;
        }
        let cell = Arc::new(OnceCell::new_with(Some(reply)));
        let _ = map.insert_weighted(key, cell, weight, age);
    }

    fn slot(&self, key: String) -> Arc<OnceCell<Bytes>> {
        let mut map = self.lock();
        if let Some(reply) = map.peek(&key) {
            return reply.clone();
        }
        let reply = Arc::new(OnceCell::new());
        map.insert(key, reply.clone());
        reply
    }
}

/// One key for a (session, event) pair, unambiguous whatever characters
/// either id holds: the session id's length comes first.
fn event_key(session_id: &str, event_id: &str) -> String {
    format!("{}:{session_id}{event_id}", session_id.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_repeated_event_gets_the_first_reply() {
        let cache = ReplyCache::new(10, usize::MAX, Duration::from_secs(60));
        let runs = AtomicUsize::new(0);
        let decide = |text: &'static str| {
            let runs = &runs;
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Bytes::from_static(text.as_bytes())
            }
        };
        assert_eq!(
            cache.get_or_decide("s", "e1", decide("first")).await,
            "first"
        );
        assert_eq!(
            cache.get_or_decide("s", "e1", decide("second")).await,
            "first"
        );
        assert_eq!(
            cache.get_or_decide("s", "e2", decide("other")).await,
            "other"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_deliveries_are_decided_once() {
        let cache = Arc::new(ReplyCache::new(10, usize::MAX, Duration::from_secs(60)));
        let runs = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let (cache, runs, barrier) = (cache.clone(), runs.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    cache
                        .get_or_decide("s", "e", || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            // Still deciding while the others arrive.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Bytes::from(format!("decided by {n}"))
                        })
                        .await
                })
            })
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.unwrap());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "decided more than once");
        assert!(replies.iter().all(|r| *r == replies[0]), "{replies:?}");
    }

    #[tokio::test]
    async fn the_same_event_id_in_another_session_is_another_event() {
        let cache = ReplyCache::new(10, usize::MAX, Duration::from_secs(60));
        let reply = |text: &'static str| move || async move { Bytes::from_static(text.as_bytes()) };
        assert_eq!(
            cache.get_or_decide("a", "e1", reply("for a")).await,
            "for a"
        );
        assert_eq!(
            cache.get_or_decide("b", "e1", reply("for b")).await,
            "for b"
        );
        // Ids that concatenate alike stay apart.
        assert_eq!(cache.get_or_decide("a", "be1", reply("ab")).await, "ab");
        assert_eq!(cache.get_or_decide("ab", "e1", reply("ab2")).await, "ab2");
    }

    #[tokio::test]
    async fn bounded_in_bytes() {
        let cache = ReplyCache::new(
            100,
            3 * (1000 + ENTRY_OVERHEAD + 8),
            Duration::from_secs(60),
        );
        for id in ["a", "b", "c", "d"] {
            cache
                .get_or_decide("s", id, || async { Bytes::from(vec![b'x'; 1000]) })
                .await;
        }
        let map = cache.lock();
        assert_eq!(map.len(), 3, "the oldest reply made room");
        assert!(map.weight() <= 3 * (1000 + ENTRY_OVERHEAD + 8));
    }

    #[tokio::test]
    async fn bounded() {
        let cache = ReplyCache::new(2, usize::MAX, Duration::from_secs(60));
        for id in ["a", "b", "c"] {
            cache
                .get_or_decide("s", id, || async { Bytes::from_static(b"x") })
                .await;
        }
        assert_eq!(cache.inner.lock().unwrap().len(), 2);
    }
}
