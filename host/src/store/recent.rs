//! A bounded map of recently used entries: each expires after a time without
//! use, and when the map is full the least recently used one makes room.
//!
//! Entries are kept in order of use, so the expired and the least recently
//! used are always at the front: every operation is O(1) (amortized), however
//! many calls are in progress.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;

/// Entries keyed by `K`, at most `capacity` of them, each forgotten `ttl`
/// after it was last inserted or touched.
pub struct RecentMap<K, V> {
    entries: LinkedHashMap<K, Timed<V>>,
    capacity: usize,
    ttl: Duration,
}

struct Timed<V> {
    used: Instant,
    value: V,
}

impl<K: Hash + Eq, V> RecentMap<K, V> {
    /// An empty map holding at most `capacity` (at least 1) entries. Its
    /// table is allocated for all of them up front: growing it under load
    /// would rehash every entry while a call waits.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: LinkedHashMap::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// The live entry for `key`, left where it is in the use order.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries
            .get(key)
            .filter(|entry| entry.used.elapsed() < self.ttl)
            .map(|entry| &entry.value)
    }

    /// The live entry for `key`, marked as just used.
    pub fn touch<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        if now.duration_since(self.entries.get(key)?.used) >= self.ttl {
            self.entries.remove(key);
            return None;
        }
        let entry = self.entries.to_back(key)?;
        entry.used = now;
        Some(&mut entry.value)
    }

    /// Insert or replace `key`'s entry as the most recently used, after
    /// dropping expired entries and, when still full, the least recently used.
    pub fn insert(&mut self, key: K, value: V) {
        self.insert_aged(key, value, Duration::ZERO);
    }

    /// Insert `key`'s entry as last used `age` ago (restoring entries kept
    /// elsewhere: insert them oldest first, so the use order holds).
    pub fn insert_aged(&mut self, key: K, value: V, age: Duration) {
        let now = Instant::now();
        let used = now.checked_sub(age).unwrap_or(now);
        self.entries.remove(&key);
        while let Some((_, oldest)) = self.entries.front() {
            let expired = now.duration_since(oldest.used) >= self.ttl;
            if !expired && self.entries.len() < self.capacity {
                break;
            }
            self.entries.pop_front();
        }
        self.entries.insert(key, Timed { used, value });
    }

    /// Remove `key`'s entry, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(key).map(|entry| entry.value)
    }

    /// How many entries are held (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_map_drops_the_least_recently_used() {
        let mut map = RecentMap::new(2, Duration::from_secs(60));
        map.insert("a", 1);
        map.insert("b", 2);
        assert_eq!(map.touch("a"), Some(&mut 1));
        map.insert("c", 3);
        assert_eq!(map.len(), 2);
        assert_eq!(map.peek("b"), None, "b was used least recently");
        assert_eq!(map.peek("a"), Some(&1));
        assert_eq!(map.peek("c"), Some(&3));
    }

    #[test]
    fn replacing_does_not_evict() {
        let mut map = RecentMap::new(2, Duration::from_secs(60));
        map.insert("a", 1);
        map.insert("b", 2);
        map.insert("a", 10);
        assert_eq!((map.peek("a"), map.peek("b")), (Some(&10), Some(&2)));
    }

    #[test]
    fn entries_expire_and_are_dropped_on_insert() {
        let mut map = RecentMap::new(10, Duration::from_millis(20));
        map.insert("a", 1);
        map.insert("b", 2);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(map.peek("a"), None);
        assert_eq!(map.touch("b"), None);
        map.insert("c", 3);
        assert_eq!(map.len(), 1, "expired entries go on the next insert");
    }

    #[test]
    fn peek_does_not_refresh() {
        let mut map = RecentMap::new(2, Duration::from_secs(60));
        map.insert("a", 1);
        map.insert("b", 2);
        assert_eq!(map.peek("a"), Some(&1));
        map.insert("c", 3);
        assert_eq!(map.peek("a"), None, "peeking kept a least recently used");
    }
}
