//! Webhook endpoint administration (SPEC 3.3): add with the SSRF check, enable/disable,
//! rotate the secret with a grace period, remove. Every change is audited.

use std::time::Duration;

use loanwire_store::delivery::Endpoint;
use loanwire_store::{Actor, AuditNote, Store, StoreError};
use loanwire_top::time::now_ms;
use serde_json::{json, Value};

use super::sign;
use super::ssrf::Guard;
use crate::feed::EVENT_TYPES;

#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    /// `None`: every event type.
    pub types: Option<Vec<String>>,
    pub description: String,
}

/// The longest webhook URL taken.
const MAX_URL: usize = 2048;

fn invalid(m: String) -> StoreError {
    StoreError::Invalid(m)
}

/// Adds an endpoint; its secret is in the answer only. The endpoint receives the events
/// applied from now on.
pub async fn add(
    store: &dyn Store,
    guard: &Guard,
    spec: NewEndpoint,
    by: &Actor,
) -> Result<Endpoint, StoreError> {
    if spec.url.len() > MAX_URL {
        return Err(invalid(format!(
            "a webhook URL is at most {MAX_URL} characters"
        )));
    }
    let url = guard.check_url(spec.url.trim()).await.map_err(invalid)?;
    if let Some(types) = &spec.types {
        if types.is_empty() {
            return Err(invalid(
                "--types names no type: leave it out for every type".into(),
            ));
        }
        if let Some(t) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
            return Err(invalid(format!(
                "unknown event type `{t}`: one of {}",
                EVENT_TYPES.join(", ")
            )));
        }
    }
    if spec.description.len() > 500 {
        return Err(invalid("a description is at most 500 characters".into()));
    }
    let now = now_ms();
    let endpoint = Endpoint {
        id: format!("ep_{}", ulid::Ulid::new().to_string().to_lowercase()),
        url: url.to_string(),
        types: spec.types,
        description: spec.description,
        secret: sign::new_secret(),
        previous_secret: None,
        previous_secret_expires_ms: None,
        enabled: true,
        disabled_reason: None,
        failures_in_a_row: 0,
        cursor_seq: 0,
        created_ms: now,
        updated_ms: now,
    };
    store.create_endpoint(&endpoint, by).await?;
    // The store starts its cursor at the newest event.
    find(store, &endpoint.id).await.map(|stored| Endpoint {
        secret: endpoint.secret,
        ..stored
    })
}

pub async fn find(store: &dyn Store, id: &str) -> Result<Endpoint, StoreError> {
    store
        .endpoint(id)
        .await?
        .ok_or_else(|| invalid(format!("no endpoint `{id}`")))
}

/// Disables an endpoint (its events wait), or enables it: what waited is delivered, the
/// failed deliveries included.
pub async fn set_enabled(
    store: &dyn Store,
    id: &str,
    enabled: bool,
    by: &Actor,
) -> Result<Endpoint, StoreError> {
    let mut e = find(store, id).await?;
    e.enabled = enabled;
    e.updated_ms = now_ms();
    if enabled {
        e.disabled_reason = None;
        e.failures_in_a_row = 0;
    } else {
        e.disabled_reason = Some(format!("disabled by {}", by.name));
    }
    let action = if enabled {
        "endpoint.enable"
    } else {
        "endpoint.disable"
    };
    store
        .update_endpoint(&e, &AuditNote::new(action, id, json!({})), by)
        .await?;
    if enabled {
        store.requeue(id, None, None, by).await?;
    }
    Ok(e)
}

/// A new secret; the old one keeps signing (both signatures are sent) for `grace`.
pub async fn rotate_secret(
    store: &dyn Store,
    id: &str,
    grace: Duration,
    by: &Actor,
) -> Result<Endpoint, StoreError> {
    let mut e = find(store, id).await?;
    let now = now_ms();
    e.previous_secret = Some(std::mem::replace(&mut e.secret, sign::new_secret()));
    e.previous_secret_expires_ms = Some(now + grace.as_millis() as i64);
    e.updated_ms = now;
    let note = AuditNote::new(
        "endpoint.rotate_secret",
        id,
        json!({ "grace_secs": grace.as_secs() }),
    );
    store.update_endpoint(&e, &note, by).await?;
    Ok(e)
}

/// An endpoint as the CLI and the API show it; its secret only in the answer that makes one.
pub fn describe(e: &Endpoint, with_secret: bool) -> Value {
    let mut v = serde_json::to_value(e).expect("an endpoint serializes");
    if with_secret {
        v["secret"] = json!(e.secret);
        if let Some(until) = e.previous_secret_expires_ms {
            v["previous_secret_valid_until"] = json!(loanwire_store::rows::rfc3339_ms(until));
        }
    }
    v
}
