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

/// Replies by (session id, event id), bounded and expiring.
pub struct ReplyCache {
    inner: Mutex<RecentMap<String, Arc<OnceCell<Bytes>>>>,
}

impl ReplyCache {
    /// Keep up to `max_events` replies, each for `ttl` after it was decided.
    pub fn new(max_events: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(RecentMap::new(max_events, ttl)),
        }
    }

    /// The reply to `event_id` of `session_id`: the stored one, or the one
    /// `decide` produces (run once even when deliveries race).
    pub async fn get_or_decide<F, Fut>(&self, session_id: &str, event_id: &str, decide: F) -> Bytes
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Bytes>,
    {
        let cell = self.slot(event_key(session_id, event_id));
        cell.get_or_init(decide).await.clone()
    }

    /// Put back a reply kept across a restart, given `age` ago.
    pub fn restore(&self, session_id: &str, event_id: &str, reply: Bytes, age: Duration) {
        let cell = Arc::new(OnceCell::new_with(Some(reply)));
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert_aged(event_key(session_id, event_id), cell, age);
    }

    fn slot(&self, key: String) -> Arc<OnceCell<Bytes>> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
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
        let cache = ReplyCache::new(10, Duration::from_secs(60));
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
        let cache = Arc::new(ReplyCache::new(10, Duration::from_secs(60)));
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
        let cache = ReplyCache::new(10, Duration::from_secs(60));
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
    async fn bounded() {
        let cache = ReplyCache::new(2, Duration::from_secs(60));
        for id in ["a", "b", "c"] {
            cache
                .get_or_decide("s", id, || async { Bytes::from_static(b"x") })
                .await;
        }
        assert_eq!(cache.inner.lock().unwrap().len(), 2);
    }
}
