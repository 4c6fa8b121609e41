//! What every request handler shares.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use loanwire_store::{App, Store, StoreError};

use crate::config::Config;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub apps: Arc<AppCache>,
    pub limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    /// Which addresses webhooks may reach.
    pub guard: Arc<crate::delivery::ssrf::Guard>,
    /// Calls refused before authentication, counted until the next roll-up stores them.
    pub rejections: Arc<crate::reports::Rejections>,
    /// Turns true when the gateway begins to stop: waiting requests answer at once.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
}

/// When the record was read, and the app (`None`: no such app).
type CachedApp = (Instant, Option<Arc<App>>);

/// Partner apps, read through a short-lived cache: `loanwire app …` may change them from
/// another process (or another gateway instance), and the change must take effect without a
/// restart, while the hot path must not read the database for every call.
pub struct AppCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, CachedApp>>,
}

impl AppCache {
    pub fn new(ttl: Duration) -> AppCache {
        AppCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    pub async fn get(
        &self,
        store: &dyn Store,
        app_key: &str,
    ) -> Result<Option<Arc<App>>, StoreError> {
        if let Some((at, app)) = self.entries.read().expect("app cache").get(app_key) {
            if at.elapsed() < self.ttl {
                return Ok(app.clone());
            }
        }
        let app = store.app(app_key).await?.map(Arc::new);
        let mut entries = self.entries.write().expect("app cache");
        // Unknown keys are cached too, so a flood of bad keys does not reach the database;
        // bounded so that it cannot grow without limit either.
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(app_key.to_string(), (Instant::now(), app.clone()));
        Ok(app)
    }
}

impl AppCache {
    /// Whether the cache last found an app with this key (a rejected call's key is counted
    /// under its own name only then).
    pub fn known(&self, app_key: &str) -> bool {
        self.entries
            .read()
            .expect("app cache")
            .get(app_key)
            .is_some_and(|(_, app)| app.is_some())
    }
}

/// One token bucket per app, rebuilt when the app's limit changes.
pub struct RateLimits {
    default_per_sec: u32,
    buckets: Mutex<HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl RateLimits {
    pub fn new(default_per_sec: u32) -> RateLimits {
        RateLimits {
            default_per_sec,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from the app's budget; `false` when the budget is spent.
    pub fn allow(&self, app: &App) -> bool {
        let per_sec = app.rate_limit.unwrap_or(self.default_per_sec);
        let Some(rate) = NonZeroU32::new(per_sec) else {
            return true;
        };
        let limiter = {
            let mut buckets = self.buckets.lock().expect("rate limits");
            match buckets.get(&app.app_key) {
                Some((r, l)) if *r == per_sec => l.clone(),
                _ => {
                    let l = Arc::new(RateLimiter::direct(Quota::per_second(rate)));
                    buckets.insert(app.app_key.clone(), (per_sec, l.clone()));
                    l
                }
            }
        };
        limiter.check().is_ok()
    }
}
