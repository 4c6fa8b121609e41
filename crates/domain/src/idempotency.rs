//! Idempotency by (app, `request_id`) with content comparison (SPEC 2.2).

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

#[cfg(test)]
mod tests {
    use super::*;

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
