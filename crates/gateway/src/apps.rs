//! Partner app administration: credentials from a CSPRNG, secret rotation with a grace period.

use std::time::Duration;

use loanwire_store::{Actor, App, AuditNote, Store, StoreError};
use loanwire_top::time::now_ms;
use rand::Rng;
use serde_json::{json, Value};

/// 8 digits, like the app keys of Alibaba's open platform.
fn new_app_key() -> String {
    let n: u32 = rand::rng().random_range(10_000_000..100_000_000);
    n.to_string()
}

/// 32 hex characters (128 bits) from the thread's CSPRNG.
pub fn new_secret() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

#[derive(Debug, Clone, Default)]
pub struct NewApp {
    pub name: String,
    pub app_key: Option<String>,
    pub channels: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub rate_limit: Option<u32>,
}

pub async fn create(store: &dyn Store, spec: NewApp, by: &Actor) -> Result<App, StoreError> {
    if spec.name.trim().is_empty() {
        return Err(StoreError::Invalid("an app needs a name".into()));
    }
    if let Some(methods) = &spec.methods {
        for m in methods {
            if crate::apis::Api::from_method(m).is_none() {
                return Err(StoreError::Invalid(format!("unknown method `{m}`")));
            }
        }
    }
    for attempt in 0.. {
        let now = now_ms();
        let app = App {
            app_key: spec.app_key.clone().unwrap_or_else(new_app_key),
            name: spec.name.clone(),
            secret: new_secret(),
            previous_secret: None,
            previous_secret_expires_ms: None,
            channels: spec.channels.clone(),
            methods: spec.methods.clone(),
            rate_limit: spec.rate_limit,
            enabled: true,
            created_ms: now,
            updated_ms: now,
        };
        match store.create_app(&app, by).await {
            Ok(()) => return Ok(app),
            // A generated key that collides is drawn again; a chosen one is the caller's error.
            Err(StoreError::Invalid(_)) if spec.app_key.is_none() && attempt < 5 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

pub async fn find(store: &dyn Store, app_key: &str) -> Result<App, StoreError> {
    store
        .app(app_key)
        .await?
        .ok_or_else(|| StoreError::Invalid(format!("no app `{app_key}`")))
}

pub async fn set_enabled(
    store: &dyn Store,
    app_key: &str,
    enabled: bool,
    by: &Actor,
) -> Result<App, StoreError> {
    let mut app = find(store, app_key).await?;
    app.enabled = enabled;
    app.updated_ms = now_ms();
    let action = if enabled { "app.enable" } else { "app.disable" };
    let note = AuditNote::new(action, app_key, json!({}));
    store.update_app(&app, &note, by).await?;
    Ok(app)
}

/// A new secret; the old one keeps verifying for `grace`.
pub async fn rotate_secret(
    store: &dyn Store,
    app_key: &str,
    grace: Duration,
    by: &Actor,
) -> Result<App, StoreError> {
    let mut app = find(store, app_key).await?;
    let now = now_ms();
    app.previous_secret = Some(std::mem::replace(&mut app.secret, new_secret()));
    app.previous_secret_expires_ms = Some(now + grace.as_millis() as i64);
    app.updated_ms = now;
    let note = AuditNote::new(
        "app.rotate_secret",
        app_key,
        json!({ "grace_secs": grace.as_secs() }),
    );
    store.update_app(&app, &note, by).await?;
    Ok(app)
}

/// An app as the CLI and the admin API show it; its secret only in the answer that makes it.
pub fn describe(app: &App, with_secret: bool) -> Value {
    let mut v = json!({
        "app_key": app.app_key,
        "name": app.name,
        "enabled": app.enabled,
        "channels": app.channels,
        "methods": app.methods,
        "rate_limit": app.rate_limit,
    });
    if with_secret {
        v["secret"] = json!(app.secret);
        if let Some(until) = app.previous_secret_expires_ms {
            v["previous_secret_valid_until"] = json!(loanwire_top::time::format_ms(until));
        }
    }
    v
}
