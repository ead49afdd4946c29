//! The in-memory store of Responses API answers that makes `previous_response_id` (and
//! retrieving or deleting a response) work on engines that keep no state.
//!
//! It is bounded by a number of entries: when full, the oldest entry goes. Entries are shared
//! (`Arc`) so reading one copies nothing under the lock, and the lock is only ever held for a
//! map operation, never across an `await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

/// One stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The Responses object as the client received it.
    pub response: Value,
    /// The conversation in chat format, ending with the assistant's answer: what a follow-up
    /// naming this response continues from.
    pub messages: Vec<Value>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Arc<StoredResponse>>,
    /// Ids from oldest to newest.
    order: VecDeque<String>,
}

/// A bounded, thread-safe map from response id to [`StoredResponse`].
#[derive(Debug)]
pub struct ResponsesStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl ResponsesStore {
    /// A store keeping at most `capacity` responses (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        ResponsesStore {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// How many responses the store keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many responses it holds now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `stored` under `id` as the newest entry (replacing an entry with the same id),
    /// evicting the oldest entries beyond the capacity.
    pub fn insert(&self, id: impl Into<String>, stored: StoredResponse) {
        if self.capacity == 0 {
            return;
        }
        let id = id.into();
        let stored = Arc::new(stored);
        // Evicted entries are dropped after the lock is released: a long conversation's memory
        // is freed without holding up other requests.
        let mut evicted = Vec::new();
        {
            let mut inner = self.lock();
            if inner.entries.insert(id.clone(), stored).is_some() {
                inner.order.retain(|k| *k != id);
            }
            inner.order.push_back(id);
            while inner.entries.len() > self.capacity {
                let Some(oldest) = inner.order.pop_front() else {
                    break;
                };
                evicted.extend(inner.entries.remove(&oldest));
            }
        }
        drop(evicted);
    }

    /// The stored response `id`, if the store still has it.
    pub fn get(&self, id: &str) -> Option<Arc<StoredResponse>> {
        self.lock().entries.get(id).cloned()
    }

    /// Removes response `id`; returns whether it was there.
    pub fn delete(&self, id: &str) -> bool {
        let removed = {
            let mut inner = self.lock();
            let removed = inner.entries.remove(id);
            if removed.is_some() {
                inner.order.retain(|k| k != id);
            }
            removed
        };
        removed.is_some()
    }

    /// The conversation (chat-format messages) a follow-up to response `id` continues from.
    pub fn conversation(&self, id: &str) -> Option<Vec<Value>> {
        // Cloned outside the lock: a conversation can be large.
        self.get(id).map(|stored| stored.messages.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock cannot leave the map half-updated in a way
        // that matters here (every update is a single map or queue operation), so carry on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(n: u64) -> StoredResponse {
        StoredResponse {
            response: json!({"id": format!("resp_{n}")}),
            messages: vec![json!({"role": "user", "content": n.to_string()})],
        }
    }

    #[test]
    fn insert_get_delete_conversation() {
        let store = ResponsesStore::new(4);
        assert!(store.is_empty());
        store.insert("resp_1", stored(1));
        assert_eq!(store.get("resp_1").unwrap().response["id"], "resp_1");
        assert_eq!(
            store.conversation("resp_1").unwrap(),
            vec![json!({"role": "user", "content": "1"})]
        );
        assert!(store.get("resp_2").is_none());
        assert!(store.conversation("resp_2").is_none());
        assert!(store.delete("resp_1"));
        assert!(!store.delete("resp_1"));
        assert!(store.get("resp_1").is_none());
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn evicts_the_oldest_beyond_capacity() {
        let store = ResponsesStore::new(2);
        store.insert("a", stored(1));
        store.insert("b", stored(2));
        store.insert("c", stored(3));
        assert!(store.get("a").is_none());
        assert!(store.get("b").is_some() && store.get("c").is_some());
        // Re-inserting makes an entry the newest again.
        store.insert("b", stored(4));
        store.insert("d", stored(5));
        assert!(store.get("c").is_none());
        assert_eq!(store.get("b").unwrap().messages[0]["content"], "4");
        assert_eq!(store.len(), 2);
        // A deleted entry frees its place without evicting another.
        assert!(store.delete("d"));
        store.insert("e", stored(6));
        assert!(store.get("b").is_some() && store.get("e").is_some());
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let store = ResponsesStore::new(0);
        store.insert("a", stored(1));
        assert!(store.get("a").is_none());
        assert_eq!(store.capacity(), 0);
    }

    #[test]
    fn shared_between_threads() {
        let store = Arc::new(ResponsesStore::new(100));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        store.insert(format!("{t}-{i}"), stored(i));
                        let _ = store.get(&format!("{t}-{}", i / 2));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(store.len(), 100);
    }
}
