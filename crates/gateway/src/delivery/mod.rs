//! Pushing events out (SPEC 3.3, 3.4): signed webhooks with per-subject order, and a NATS
//! JetStream publisher.
//!
//! - [`endpoints`]: adding and changing endpoints; [`api`]: the same over HTTP, with the
//!   delivery log;
//! - [`Dispatcher`]: one per gateway instance. Each round, in one transaction
//!   (`DeliveryStore::dispatch`), it records the attempts made since the last round, makes the
//!   deliveries of new events, and claims (leases) what is due — only the first pending delivery
//!   of each subject, so one subject's events go one at a time, in `seq` order, while different
//!   subjects go in parallel, at most `webhook_parallelism` per endpoint;
//! - [`sign`]: Standard Webhooks signatures; [`ssrf`]: which addresses a webhook may reach;
//! - [`nats`]: the JetStream publisher.

pub mod api;
pub mod endpoints;
pub mod nats;
pub mod sign;
pub mod ssrf;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loanwire_store::delivery::{AttemptRow, Claimed, DispatchStep, Endpoint, Finished, Verdict};
use loanwire_store::rows::EventRow;
use loanwire_store::Store;
use loanwire_top::time::now_ms;
use tokio::sync::{mpsc, watch};

use crate::config::EventsConfig;
use crate::metrics::{DeliveryLabels, EndpointLabels, Metrics};
use ssrf::{Guard, GuardedResolver};

/// The most of an answer an attempt keeps.
const KEEP_ANSWER_BYTES: usize = 1024;
/// The longest a `Retry-After` may push a delivery back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Events read past a cursor per round.
const FAN_OUT_PAGE: u32 = 1000;
/// The shortest time between two rounds: under load every commit signals new events, and a
/// round per signal would spend on bookkeeping what one round does for many.
const MIN_ROUND: Duration = Duration::from_millis(10);
/// How often a dispatcher with no endpoint looks for one.
const NO_ENDPOINTS_RECHECK: Duration = Duration::from_secs(1);

/// The webhook client: no redirects (a redirect could lead past the SSRF guard), the guard's
/// resolver, the attempt's timeout.
pub fn http_client(guard: Arc<Guard>, timeout: Duration) -> reqwest::Client {
    // Any provider the process installed first is as good; ring otherwise.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver(guard)))
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("loanwire-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the webhook client builds")
}

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub config: EventsConfig,
    pub guard: Arc<Guard>,
    pub metrics: Arc<Metrics>,
    /// This instance, as the owner of its leases.
    pub owner: String,
}

impl Dispatcher {
    /// Delivers until `stopping` turns true; attempts in flight then finish (within the
    /// timeout) and are recorded.
    pub async fn run(self, mut stopping: watch::Receiver<bool>) {
        let timeout = Duration::from_secs(self.config.webhook_timeout_secs);
        let http = http_client(self.guard.clone(), timeout);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, Finished)>();
        let mut signal = self.store.event_signal();
        let mut in_flight: HashMap<String, u32> = HashMap::new();
        let mut results: Vec<Finished> = Vec::new();
        let mut endpoints: HashMap<String, Arc<Endpoint>> = HashMap::new();
        let mut last_gauges = Instant::now() - Duration::from_secs(60);
        let mut failing_since: Option<Instant> = None;
        let mut last_round = Instant::now() - MIN_ROUND;
        let mut last_listed = Instant::now() - NO_ENDPOINTS_RECHECK;
        loop {
            let since = last_round.elapsed();
            if since < MIN_ROUND {
                tokio::time::sleep(MIN_ROUND - since).await;
            }
            last_round = Instant::now();
            while let Ok((id, f)) = done_rx.try_recv() {
                *in_flight.entry(id).or_default() -= 1;
                results.push(f);
            }
            let stop = *stopping.borrow();
            // Without endpoints, committed events are nobody's to deliver: look for new
            // endpoints once a second, not at every commit.
            let idle =
                endpoints.is_empty() && results.is_empty() && in_flight.values().all(|n| *n == 0);
            if idle && !stop && last_listed.elapsed() < NO_ENDPOINTS_RECHECK {
                tokio::select! {
                    _ = stopping.changed() => {}
                    () = tokio::time::sleep(NO_ENDPOINTS_RECHECK - last_listed.elapsed()) => {}
                }
                continue;
            }
            last_listed = Instant::now();
            match self
                .round(
                    &mut endpoints,
                    &in_flight,
                    std::mem::take(&mut results),
                    stop,
                )
                .await
            {
                Ok(claimed) => {
                    if failing_since.take().is_some() {
                        tracing::info!("webhook delivery works again");
                    }
                    for c in claimed {
                        let Some(endpoint) = endpoints.get(&c.endpoint_id).cloned() else {
                            continue;
                        };
                        *in_flight.entry(c.endpoint_id.clone()).or_default() += 1;
                        let (http, guard, done) =
                            (http.clone(), self.guard.clone(), done_tx.clone());
                        let (schedule, metrics) = (
                            self.config.webhook_schedule_secs.clone(),
                            self.metrics.clone(),
                        );
                        tokio::spawn(async move {
                            let f = attempt(&http, &guard, &endpoint, &c, &schedule).await;
                            observe(&metrics, &endpoint.id, &f);
                            let _ = done.send((endpoint.id.clone(), f));
                        });
                    }
                }
                Err((e, lost)) => {
                    // The results stay for the next round: an attempt made is recorded once
                    // the store takes it.
                    results = lost;
                    if failing_since.is_none() {
                        tracing::warn!(error = %e, "webhook dispatch cannot reach the store; retrying");
                        failing_since = Some(Instant::now());
                    }
                }
            }
            if stop && in_flight.values().all(|n| *n == 0) && results.is_empty() {
                return;
            }
            if last_gauges.elapsed() > Duration::from_secs(5) {
                last_gauges = Instant::now();
                self.gauges(&endpoints).await;
            }
            let busy = in_flight.values().any(|n| *n > 0);
            let pause = if busy || failing_since.is_some() {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                got = done_rx.recv() => {
                    if let Some((id, f)) = got {
                        *in_flight.entry(id).or_default() -= 1;
                        results.push(f);
                    }
                }
                _ = signal.changed() => {}
                _ = stopping.changed(), if !stop => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One round: endpoints read again, new events read past each cursor, then the store's
    /// transaction. On failure, the results not recorded are handed back.
    async fn round(
        &self,
        endpoints: &mut HashMap<String, Arc<Endpoint>>,
        in_flight: &HashMap<String, u32>,
        results: Vec<Finished>,
        stopping: bool,
    ) -> Result<Vec<Claimed>, (loanwire_store::StoreError, Vec<Finished>)> {
        let listed = match self.store.endpoints().await {
            Ok(l) => l,
            Err(e) => return Err((e, results)),
        };
        *endpoints = listed
            .into_iter()
            .map(|e| (e.id.clone(), Arc::new(e)))
            .collect();
        // Nothing to deliver to and nothing to record: no transaction at all.
        if endpoints.is_empty() && results.is_empty() {
            return Ok(Vec::new());
        }
        let mut fan_out = Vec::new();
        for e in endpoints.values() {
            match self
                .store
                .events_for(e.cursor_seq, e.types.clone(), FAN_OUT_PAGE)
                .await
            {
                Ok(events) if !events.is_empty() => {
                    fan_out.push((e.id.clone(), e.cursor_seq, events))
                }
                Ok(_) => {}
                Err(e) => return Err((e, results)),
            }
        }
        let claims = if stopping {
            Vec::new()
        } else {
            endpoints
                .values()
                .filter(|e| e.enabled)
                .map(|e| {
                    let busy = in_flight.get(&e.id).copied().unwrap_or(0);
                    (
                        e.id.clone(),
                        self.config.webhook_parallelism.saturating_sub(busy),
                    )
                })
                .collect()
        };
        let step = DispatchStep {
            owner: self.owner.clone(),
            now_ms: now_ms(),
            lease_ms: (self.config.webhook_lease_secs * 1000) as i64,
            results: results.clone(),
            claims,
            fan_out,
            disable_after: i64::from(self.config.webhook_disable_after),
        };
        match self.store.dispatch(step).await {
            Ok(d) => {
                for (id, why) in d.disabled {
                    tracing::warn!(endpoint = %id, reason = %why, "webhook endpoint disabled; its events wait until it is enabled");
                }
                Ok(d.claimed)
            }
            Err(e) => Err((e, results)),
        }
    }

    async fn gauges(&self, endpoints: &HashMap<String, Arc<Endpoint>>) {
        for id in endpoints.keys() {
            if let Ok(b) = self.store.backlog(id).await {
                let labels = EndpointLabels {
                    endpoint: id.clone(),
                };
                self.metrics.backlog.get_or_create(&labels).set(b.pending);
                let age = b
                    .oldest_pending_ms
                    .map_or(0.0, |ms| (now_ms() - ms).max(0) as f64 / 1000.0);
                self.metrics.oldest_pending.get_or_create(&labels).set(age);
            }
        }
    }
}

fn observe(metrics: &Metrics, endpoint: &str, f: &Finished) {
    let result = match f.verdict {
        Verdict::Delivered => "delivered",
        Verdict::Retry { .. } => "retry",
        Verdict::Failed => "failed",
        Verdict::Gone => "gone",
    };
    metrics
        .deliveries
        .get_or_create(&DeliveryLabels {
            endpoint: endpoint.to_string(),
            result: result.into(),
        })
        .inc();
    metrics
        .attempt_latency
        .observe(f.attempt.latency_ms as f64 / 1000.0);
}

/// When the next attempt is due after `made` attempts: per the schedule, or `None` when it is
/// used up.
fn next_attempt(schedule: &[u64], made: i64, now: i64) -> Option<i64> {
    schedule
        .get(usize::try_from(made).unwrap_or(usize::MAX))
        .map(|secs| now + (*secs as i64) * 1000)
}

/// `Retry-After` as seconds or an HTTP date, capped.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
            (at.timestamp_millis() - now_ms())
                .try_into()
                .map(Duration::from_millis)
                .unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// Sends one claimed delivery and judges the answer.
async fn attempt(
    http: &reqwest::Client,
    guard: &Guard,
    endpoint: &Endpoint,
    claimed: &Claimed,
    schedule: &[u64],
) -> Finished {
    let started = Instant::now();
    let at_ms = now_ms();
    let made = claimed.attempts + 1;
    let mut record = AttemptRow {
        endpoint_id: endpoint.id.clone(),
        seq: claimed.seq,
        at_ms,
        status_code: None,
        latency_ms: 0,
        response: None,
        error: None,
    };
    let Some(event) = &claimed.event else {
        record.error = Some("the event is no longer stored".into());
        return Finished {
            attempt: record,
            verdict: Verdict::Failed,
        };
    };
    let outcome = send(http, guard, endpoint, event).await;
    record.latency_ms = started.elapsed().as_millis() as i64;
    let now = now_ms();
    // A failure is tried again per the schedule (sooner or later as `Retry-After` says), or is
    // `failed` once the schedule is used up.
    let again = |wait: Option<Duration>| match next_attempt(schedule, made, now) {
        None => Verdict::Failed,
        Some(at_ms) => Verdict::Retry {
            at_ms: wait.map_or(at_ms, |w| now + w.as_millis() as i64),
        },
    };
    let verdict = match outcome {
        Err(why) => {
            record.error = Some(why);
            again(None)
        }
        Ok((status, wait, body)) => {
            record.status_code = Some(i64::from(status));
            record.response = Some(body);
            match status {
                200..=299 => Verdict::Delivered,
                410 => Verdict::Gone,
                429 | 503 => again(wait),
                _ => again(None),
            }
        }
    };
    Finished {
        attempt: record,
        verdict,
    }
}

/// The POST of one event: the answer's status, its `Retry-After`, and the first 1 KiB of its
/// body; or why there was none.
async fn send(
    http: &reqwest::Client,
    guard: &Guard,
    endpoint: &Endpoint,
    event: &EventRow,
) -> Result<(u16, Option<Duration>, String), String> {
    let url = url::Url::parse(&endpoint.url).map_err(|e| format!("bad URL: {e}"))?;
    if let Some(why) = guard.refuse_literal(&url) {
        return Err(why);
    }
    let body = event.to_json().into_bytes();
    let now = now_ms();
    let timestamp = now / 1000;
    let signature = sign::signatures(endpoint.secrets_at(now), &event.id, timestamp, &body);
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(describe)?;
    let status = resp.status().as_u16();
    let wait = retry_after(&resp);
    let mut kept = Vec::new();
    let mut resp = resp;
    while kept.len() < KEEP_ANSWER_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(KEEP_ANSWER_BYTES);
    Ok((status, wait, String::from_utf8_lossy(&kept).into_owned()))
}

/// A transport error in a sentence, with its causes.
fn describe(e: reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_gives_the_next_attempt_until_it_is_used_up() {
        let s = [0, 5, 300];
        assert_eq!(next_attempt(&s, 1, 1000), Some(6000));
        assert_eq!(next_attempt(&s, 2, 1000), Some(301_000));
        assert_eq!(next_attempt(&s, 3, 1000), None);
    }
}
