//! Exactly-once decisions: the first reply to each `eventId`, kept for a
//! while so that a repeated delivery gets the same bytes and the guest does
//! not run twice — also when the repeat arrives while the first is running.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::recent::RecentMap;

/// Replies by event id, bounded and expiring.
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

    /// The reply for `event_id`: the stored one, or the one `decide`
    /// produces (run once even when deliveries race).
    pub async fn get_or_decide<F, Fut>(&self, event_id: &str, decide: F) -> Bytes
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Bytes>,
    {
        let cell = self.slot(event_id);
        cell.get_or_init(decide).await.clone()
    }

    fn slot(&self, event_id: &str) -> Arc<OnceCell<Bytes>> {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reply) = map.peek(event_id) {
            return reply.clone();
        }
        let reply = Arc::new(OnceCell::new());
        map.insert(event_id.to_owned(), reply.clone());
        reply
    }
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
        assert_eq!(cache.get_or_decide("e1", decide("first")).await, "first");
        assert_eq!(cache.get_or_decide("e1", decide("second")).await, "first");
        assert_eq!(cache.get_or_decide("e2", decide("other")).await, "other");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn bounded() {
        let cache = ReplyCache::new(2, Duration::from_secs(60));
        for id in ["a", "b", "c"] {
            cache
                .get_or_decide(id, || async { Bytes::from_static(b"x") })
                .await;
        }
        assert_eq!(cache.inner.lock().unwrap().len(), 2);
    }
}
