#![allow(dead_code)] // shared by the SQLite and PostgreSQL suites

//! A real webhook receiver for the tests: an HTTP server on a local port that verifies every
//! delivery with the `standardwebhooks` library (not loanwire's signer), answers as its plan
//! says, and records what it was sent.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Waits this long before answering (past the gateway's timeout: a timed-out attempt).
    pub delay: Duration,
    pub retry_after: Option<u64>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            retry_after: None,
            body: String::new(),
        }
    }
}

/// The answer to the `n`th request (from 0), given the event's id.
pub type Plan = Arc<dyn Fn(usize, &str) -> Reply + Send + Sync>;

/// One request, as received.
#[derive(Debug, Clone)]
pub struct Got {
    pub id: String,
    pub seq: i64,
    pub subject: String,
    pub event_type: String,
    pub at: Instant,
    pub status: u16,
    /// Both signatures were sent (a secret in rotation).
    pub signatures: usize,
}

struct State {
    secret: Mutex<String>,
    plan: Mutex<Plan>,
    requests: AtomicUsize,
    got: Mutex<Vec<Got>>,
    in_flight: Mutex<HashSet<String>>,
    overlaps: AtomicUsize,
    concurrent: AtomicUsize,
    max_concurrent: AtomicUsize,
    bad_signatures: AtomicUsize,
}

#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    state: Arc<State>,
    server: Arc<tokio::task::JoinHandle<()>>,
}

/// A port nothing listens on (for now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_on(0).await
    }

    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            secret: Mutex::new(String::new()),
            plan: Mutex::new(Arc::new(|_, _| Reply::status(204))),
            requests: AtomicUsize::new(0),
            got: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashSet::new()),
            overlaps: AtomicUsize::new(0),
            concurrent: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            bad_signatures: AtomicUsize::new(0),
        });
        let s = state.clone();
        let app = Router::new().route(
            "/{*path}",
            post(move |headers: HeaderMap, body: Bytes| receive(s.clone(), headers, body)),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            port,
            state,
            server: Arc::new(server),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub fn set_secret(&self, secret: &str) {
        *self.state.secret.lock().unwrap() = secret.to_string();
    }

    pub fn set_plan(&self, plan: impl Fn(usize, &str) -> Reply + Send + Sync + 'static) {
        *self.state.plan.lock().unwrap() = Arc::new(plan);
    }

    /// Every request, in the order they arrived.
    pub fn got(&self) -> Vec<Got> {
        self.state.got.lock().unwrap().clone()
    }

    /// The requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| (200..300).contains(&g.status))
            .collect()
    }

    /// The distinct event ids delivered.
    pub fn delivered_ids(&self) -> HashSet<String> {
        self.delivered().into_iter().map(|g| g.id).collect()
    }

    pub fn bad_signatures(&self) -> usize {
        self.state.bad_signatures.load(Ordering::SeqCst)
    }

    /// Times one event was received while a request for it was still being answered.
    pub fn overlaps(&self) -> usize {
        self.state.overlaps.load(Ordering::SeqCst)
    }

    pub fn max_concurrent(&self) -> usize {
        self.state.max_concurrent.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.server.abort();
    }
}

async fn receive(state: Arc<State>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = state.secret.lock().unwrap().clone();
    let verified = standardwebhooks::Webhook::new(&secret)
        .and_then(|w| w.verify(&body, &headers))
        .is_ok();
    if !verified {
        state.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = event["id"].as_str().unwrap_or_default().to_string();
    if !state.in_flight.lock().unwrap().insert(id.clone()) {
        state.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    let now = state.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_concurrent.fetch_max(now, Ordering::SeqCst);
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    let plan = state.plan.lock().unwrap().clone();
    let reply = plan(n, &id);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    state.concurrent.fetch_sub(1, Ordering::SeqCst);
    state.in_flight.lock().unwrap().remove(&id);
    let signatures = headers
        .get("webhook-signature")
        .and_then(|v| v.to_str().ok())
        .map_or(0, |v| v.split(' ').count());
    state.got.lock().unwrap().push(Got {
        id,
        seq: event["seq"].as_i64().unwrap_or(-1),
        subject: event["subject"].to_string(),
        event_type: event["type"].as_str().unwrap_or_default().to_string(),
        at: Instant::now(),
        status: reply.status,
        signatures,
    });
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(secs) = reply.retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    resp
}

/// Checks that each subject's events arrived in `seq` order (first receipts) and returns how
/// many subjects there were.
pub fn assert_in_order_per_subject(got: &[Got]) -> usize {
    let mut seen = HashSet::new();
    let mut last: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for g in got {
        if !seen.insert(g.id.clone()) {
            continue;
        }
        if let Some(prev) = last.insert(&g.subject, g.seq) {
            assert!(
                prev < g.seq,
                "subject {} got seq {} after {}",
                g.subject,
                g.seq,
                prev
            );
        }
    }
    last.len()
}

/// Polls `probe` every 50 ms for at most `secs` seconds.
pub async fn within<F, Fut>(secs: u64, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    probe().await
}
