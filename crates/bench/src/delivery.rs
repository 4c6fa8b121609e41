//! Delivery under load: a webhook receiver in the bench process, subscribed to the gateway the
//! bench starts, measuring how long each event took from its call to the receiver (the lag),
//! and what still waits when the load stops.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// What the delivery part of a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    /// Deliveries the receiver took (at least once: a few may be repeats).
    pub received: u64,
    /// From the call (the event's `recorded_at`) to the receiver.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// Deliveries pending when the load stopped, and how long they took to drain.
    pub backlog_at_end: Option<i64>,
    pub drained_after_secs: Option<f64>,
    /// `loanwire_nats_lag_seconds` when the load stopped, when NATS was on.
    pub nats_lag_at_end_secs: Option<f64>,
    /// Messages in the bench's JetStream stream once the gateway stopped.
    pub nats_published: Option<u64>,
}

/// The messages in `stream`, then the stream removed (the bench's own, named for its run: a
/// NATS server holds one stream for the `loanwire.>` subjects at a time).
pub async fn nats_count_and_remove(url: &str, stream: &str) -> Result<u64, String> {
    let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let n = s.info().await.map_err(|e| e.to_string())?.state.messages;
    js.delete_stream(stream).await.map_err(|e| e.to_string())?;
    Ok(n)
}

struct Seen {
    lag: Histogram<u64>,
}

/// The receiver: answers 204 at once and notes each event's lag.
pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Seen>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Deserialize)]
struct Stamp<'a> {
    recorded_at: &'a str,
}

impl Receiver {
    pub async fn start() -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/bench", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Seen {
            lag: Histogram::new(3).expect("a histogram"),
        }));
        let s = seen.clone();
        let app = Router::new().route(
            "/bench",
            post(move |body: Bytes| {
                let s = s.clone();
                async move {
                    let now = loanwire_top::time::now_ms();
                    if let Some(at) = serde_json::from_slice::<Stamp>(&body)
                        .ok()
                        .and_then(|st| chrono::DateTime::parse_from_rfc3339(st.recorded_at).ok())
                    {
                        let lag = (now - at.timestamp_millis()).max(0) as u64;
                        let _ = s.lock().expect("lag histogram").lag.record(lag);
                    }
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { url, seen, server })
    }

    /// (received, p50, p99, max) in ms.
    pub fn lag(&self) -> (u64, f64, f64, f64) {
        let seen = self.seen.lock().expect("lag histogram");
        let h = &seen.lag;
        (
            h.len(),
            h.value_at_quantile(0.5) as f64,
            h.value_at_quantile(0.99) as f64,
            h.max() as f64,
        )
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
