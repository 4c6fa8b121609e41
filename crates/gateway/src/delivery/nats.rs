//! The NATS JetStream publisher (SPEC 3.4): every event, in `seq` order, to the subject
//! `loanwire.<type>` of the stream (created if absent), with `Nats-Msg-Id` = the event id so
//! JetStream drops a re-publish. The published position is stored after JetStream acknowledged
//! everything up to it; after a crash or a broker outage publishing resumes there. On several
//! instances one publishes at a time, by lease.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use loanwire_store::rows::EventRow;
use loanwire_store::Store;
use loanwire_top::time::now_ms;
use tokio::sync::watch;

use crate::config::NatsConfig;
use crate::metrics::Metrics;

/// Events published per round; their acknowledgements are awaited together, in order.
const PAGE: u32 = 256;
/// How long the publishing lease holds without being renewed (it is renewed at least every
/// second): after a crash, publishing resumes within this.
const LEASE_MS: i64 = 10_000;

pub struct Publisher {
    pub store: Arc<dyn Store>,
    pub config: NatsConfig,
    pub metrics: Arc<Metrics>,
    pub owner: String,
}

impl Publisher {
    /// Publishes until `stopping` turns true, riding out broker outages with backoff.
    pub async fn run(self, mut stopping: watch::Receiver<bool>) {
        let mut pause = Duration::from_millis(100);
        let mut down = false;
        loop {
            if *stopping.borrow() {
                return;
            }
            match self.session(&mut stopping).await {
                Ok(()) => return,
                Err(e) => {
                    if !down {
                        tracing::warn!(error = %e, url = %self.config.url, "NATS publishing paused; retrying with backoff");
                        down = true;
                    }
                    self.lag().await;
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        _ = stopping.changed() => return,
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
            if down {
                pause = Duration::from_millis(100);
            }
        }
    }

    /// The lag gauge while the broker is away: the age of the oldest event not published.
    async fn lag(&self) {
        let Ok(Some(pos)) = self.store.nats_claim(&self.owner, LEASE_MS).await else {
            return;
        };
        if let Ok(events) = self.store.events_for(pos, None, 1).await {
            self.set_lag(events.first());
        }
    }

    fn set_lag(&self, oldest: Option<&EventRow>) {
        let lag = oldest.map_or(0.0, |e| (now_ms() - e.recorded_ms).max(0) as f64 / 1000.0);
        self.metrics.nats_lag.set(lag);
    }

    /// One connection's life: publish until stopped (`Ok`) or until anything fails (`Err`).
    async fn session(&self, stopping: &mut watch::Receiver<bool>) -> Result<(), String> {
        let client = tokio::time::timeout(
            Duration::from_secs(5),
            async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_secs(5))
                .connect(self.config.url.as_str()),
        )
        .await
        .map_err(|_| "connecting timed out".to_string())?
        .map_err(|e| format!("cannot connect: {e}"))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: self.config.stream.clone(),
            subjects: vec!["loanwire.>".into()],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {}: {e}", self.config.stream))?;
        tracing::info!(url = %self.config.url, stream = %self.config.stream, "publishing events to NATS JetStream");
        let mut signal = self.store.event_signal();
        loop {
            if *stopping.borrow() {
                return Ok(());
            }
            let claimed = self
                .store
                .nats_claim(&self.owner, LEASE_MS)
                .await
                .map_err(|e| e.to_string())?;
            let events = match claimed {
                Some(pos) => self
                    .store
                    .events_for(pos, None, PAGE)
                    .await
                    .map_err(|e| e.to_string())?,
                // Another instance publishes; this one stands by.
                None => Vec::new(),
            };
            if events.is_empty() {
                if claimed.is_some() {
                    self.set_lag(None);
                }
                tokio::select! {
                    _ = signal.changed() => {}
                    _ = stopping.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            self.set_lag(events.first());
            let mut acks = Vec::with_capacity(events.len());
            for e in &events {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", e.id.as_str());
                let subject = format!("loanwire.{}", e.event_type);
                let body = e.to_json();
                let ack = js
                    .publish_with_headers(subject, headers, body.into())
                    .await
                    .map_err(|err| format!("publish: {err}"))?;
                acks.push(ack);
            }
            let mut last = None;
            for (e, ack) in events.iter().zip(acks) {
                ack.await.map_err(|err| format!("acknowledgement: {err}"))?;
                last = Some(e.seq);
            }
            if let Some(seq) = last {
                self.store
                    .nats_advance(&self.owner, seq)
                    .await
                    .map_err(|e| e.to_string())?;
                self.metrics.nats_published.inc_by(events.len() as u64);
            }
        }
    }
}
