//! A bounded map of recently used entries: each expires after a time without
//! use, and when the map is full — in entries or in bytes — the least
//! recently used ones make room.
//!
//! Entries are kept in order of use, so the expired and the least recently
//! used are always at the front: every operation is O(1) (amortized), however
//! many calls are in progress.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::{Duration, Instant};

use hashlink::LinkedHashMap;

/// Entries keyed by `K`, at most `capacity` of them weighing at most
/// `max_weight` together, each forgotten `ttl` after it was last inserted or
/// touched.
pub struct RecentMap<K, V> {
    entries: LinkedHashMap<K, Timed<V>>,
    capacity: usize,
    max_weight: usize,
    weight: usize,
    ttl: Duration,
}

struct Timed<V> {
    used: Instant,
    weight: usize,
    value: V,
}

impl<K: Hash + Eq, V> RecentMap<K, V> {
    /// An empty map holding at most `capacity` (at least 1) entries. Its
    /// table is allocated for all of them up front: growing it under load
    /// would rehash every entry while a call waits.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self::with_max_weight(capacity, usize::MAX, ttl)
    }

    /// Like [`RecentMap::new`], and the entries' weights (their bytes, as
    /// the caller counts them) together at most `max_weight`.
    pub fn with_max_weight(capacity: usize, max_weight: usize, ttl: Duration) -> Self {
        Self {
            entries: LinkedHashMap::with_capacity(capacity.max(1)),
            capacity: capacity.max(1),
            max_weight,
            weight: 0,
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
            self.remove(key);
            return None;
        }
        let entry = self.entries.to_back(key)?;
        entry.used = now;
        Some(&mut entry.value)
    }

    /// Insert or replace `key`'s entry as the most recently used, after
    /// dropping expired entries and, when still full, the least recently used.
    pub fn insert(&mut self, key: K, value: V) -> Vec<K> {
        self.insert_weighted(key, value, 0, Duration::ZERO)
    }

    /// Insert `key`'s entry as last used `age` ago (restoring entries kept
    /// elsewhere: insert them oldest first, so the use order holds).
    pub fn insert_aged(&mut self, key: K, value: V, age: Duration) -> Vec<K> {
        self.insert_weighted(key, value, 0, age)
    }

    /// Insert `key`'s entry weighing `weight`, last used `age` ago. Expired
    /// entries are dropped; then, while the map is over its entry or weight
    /// bound, the least recently used. Returns the keys of the live entries
    /// dropped to make room (expired ones are not news).
    pub fn insert_weighted(&mut self, key: K, value: V, weight: usize, age: Duration) -> Vec<K> {
        let now = Instant::now();
        let used = now.checked_sub(age).unwrap_or(now);
        self.remove(&key);
        let mut evicted = Vec::new();
        while let Some((_, oldest)) = self.entries.front() {
            let expired = now.duration_since(oldest.used) >= self.ttl;
            let full = self.entries.len() >= self.capacity
                || self.weight.saturating_add(weight) > self.max_weight;
            if !expired && !full {
                break;
            }
            if let Some((oldest_key, oldest)) = self.entries.pop_front() {
                self.weight -= oldest.weight;
                if !expired {
                    evicted.push(oldest_key);
                }
            }
        }
        self.weight += weight;
        self.entries.insert(
            key,
            Timed {
                used,
                weight,
                value,
            },
        );
        evicted
    }

    /// Set the weight of `key`'s entry (known only once its value is
    /// complete), then drop the least recently used others while the map is
    /// over its weight bound; the keys of those dropped.
    pub fn reweigh<Q>(&mut self, key: &Q, weight: usize) -> Vec<K>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut evicted = Vec::new();
        let Some(entry) = self.entries.get_mut(key) else {
            return evicted;
        };
        self.weight = self.weight - entry.weight + weight;
        entry.weight = weight;
        while self.weight > self.max_weight {
            match self.entries.front() {
                Some((front, _)) if front.borrow() != key => {}
                _ => break,
            }
            if let Some((front, oldest)) = self.entries.pop_front() {
                self.weight -= oldest.weight;
                evicted.push(front);
            }
        }
        evicted
    }

    /// Remove `key`'s entry, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.entries.remove(key)?;
        self.weight -= entry.weight;
        Some(entry.value)
    }

    /// Every entry, least recently used first.
    pub fn into_entries(self) -> impl Iterator<Item = (K, V)> {
        self.entries
            .into_iter()
            .map(|(key, entry)| (key, entry.value))
    }

    /// The entries' weights together.
    pub fn weight(&self) -> usize {
        self.weight
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
    fn the_weight_bound_drops_the_least_recently_used_and_names_them() {
        let mut map = RecentMap::with_max_weight(10, 100, Duration::from_secs(60));
        assert!(map.insert_weighted("a", 1, 40, Duration::ZERO).is_empty());
        assert!(map.insert_weighted("b", 2, 40, Duration::ZERO).is_empty());
        assert_eq!(map.insert_weighted("c", 3, 40, Duration::ZERO), ["a"]);
        assert_eq!(map.weight(), 80);
        // Replacing an entry counts its new weight only.
        assert!(map.insert_weighted("c", 3, 60, Duration::ZERO).is_empty());
        assert_eq!(map.weight(), 100);
        map.remove("b");
        assert_eq!(map.weight(), 60);
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
