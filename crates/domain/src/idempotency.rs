//! Idempotency by (app, `request_id`) with content comparison (SPEC 2.2).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const IDEMPOTENCY_CONFLICT: &str = "IDEMPOTENCY_CONFLICT";

/// What is kept for a `request_id` that was answered: the content it came with and the
/// response fields it got.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub response: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Never seen: decide and apply.
    Fresh,
    /// Seen with the same content: answer what was answered then.
    Replay(Map<String, Value>),
    /// Seen with other content: refuse, change nothing.
    Conflict,
}

/// A digest of the request's meaning: the typed request re-serialized, so that field order,
/// whitespace, `\/` escapes or a time given as epoch milliseconds do not make a difference.
pub fn fingerprint<T: Serialize>(request: &T) -> String {
    let canonical = serde_json::to_vec(request).expect("typed requests serialize");
    hex::encode(Sha256::digest(canonical))
}

pub fn check(existing: Option<&IdempotencyRecord>, fingerprint: &str) -> Check {
    match existing {
        None => Check::Fresh,
        Some(r) if r.fingerprint == fingerprint => Check::Replay(r.response.clone()),
        Some(_) => Check::Conflict,
    }
}

/// The most recently answered `request_id`s of each app, in memory, so that a retry is told
/// apart from a fresh call without asking the database. Only records whose call committed
/// durably go in, and a committed record is never changed or removed (by any gateway instance),
/// so a hit decides exactly as the stored record would; a miss just means "ask the store".
/// Bounded: the oldest entry goes when a new one would exceed the capacity.
pub struct Answered {
    capacity: usize,
    inner: Mutex<AnsweredInner>,
}

type Key = (String, String);

#[derive(Default)]
struct AnsweredInner {
    records: HashMap<Key, Arc<IdempotencyRecord>>,
    order: VecDeque<Key>,
}

impl Answered {
    pub fn new(capacity: usize) -> Answered {
        Answered {
            capacity,
            inner: Mutex::default(),
        }
    }

    pub fn get(&self, app_key: &str, request_id: &str) -> Option<Arc<IdempotencyRecord>> {
        if self.capacity == 0 {
            return None;
        }
        let inner = self.inner.lock().expect("answered map");
        inner
            .records
            .get(&(app_key.to_string(), request_id.to_string()))
            .cloned()
    }

    /// Call only once the call that stored `record` has committed durably.
    pub fn remember(&self, app_key: &str, request_id: &str, record: Arc<IdempotencyRecord>) {
        if self.capacity == 0 {
            return;
        }
        let key = (app_key.to_string(), request_id.to_string());
        let mut inner = self.inner.lock().expect("answered map");
        if inner.records.insert(key.clone(), record).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.records.remove(&oldest);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("answered map").records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> Arc<IdempotencyRecord> {
        Arc::new(IdempotencyRecord {
            fingerprint: fingerprint(&n),
            response: Map::new(),
        })
    }

    #[test]
    fn answered_requests_are_found_per_app_and_the_oldest_go_first() {
        let answered = Answered::new(2);
        answered.remember("a", "r1", record(1));
        answered.remember("a", "r2", record(2));
        assert_eq!(answered.get("a", "r1"), Some(record(1)));
        assert_eq!(
            answered.get("b", "r1"),
            None,
            "another app's request_id space"
        );
        answered.remember("a", "r1", record(1));
        assert_eq!(answered.len(), 2, "remembering again adds nothing");
        answered.remember("a", "r3", record(3));
        assert_eq!(answered.len(), 2);
        assert_eq!(answered.get("a", "r1"), None, "the oldest went");
        assert_eq!(answered.get("a", "r3"), Some(record(3)));
    }

    #[test]
    fn a_map_of_capacity_zero_remembers_nothing() {
        let answered = Answered::new(0);
        answered.remember("a", "r1", record(1));
        assert!(answered.is_empty());
        assert_eq!(answered.get("a", "r1"), None);
    }

    #[test]
    fn same_content_replays_and_other_content_conflicts() {
        let rec = IdempotencyRecord {
            fingerprint: fingerprint(&("a", 1)),
            response: Map::new(),
        };
        assert_eq!(check(None, "x"), Check::Fresh);
        assert_eq!(
            check(Some(&rec), &fingerprint(&("a", 1))),
            Check::Replay(Map::new())
        );
        assert_eq!(check(Some(&rec), &fingerprint(&("a", 2))), Check::Conflict);
    }
}
