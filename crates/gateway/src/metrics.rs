//! Prometheus metrics: calls by method and outcome, latency, commit batch sizes.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub endpoint: String,
    /// delivered, retry, failed, gone
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub calls: Family<CallLabels, Counter>,
    pub latency: Histogram,
    pub batch_size: Histogram,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub attempt_latency: Histogram,
    pub backlog: Family<EndpointLabels, Gauge>,
    pub oldest_pending: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    pub nats_published: Counter,
    pub nats_lag: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let calls = Family::<CallLabels, Counter>::default();
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let mut registry = Registry::with_prefix("loanwire");
        registry.register("calls", "TOP calls by method and outcome", calls.clone());
        registry.register(
            "call_latency_seconds",
            "Time from request to answer",
            latency.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Calls committed per transaction",
            batch_size.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by endpoint and result (delivered, retry, failed, gone)",
            deliveries.clone(),
        );
        let attempt_latency = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "webhook_attempt_seconds",
            "Time a receiver took to answer a delivery",
            attempt_latency.clone(),
        );
        let backlog = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "webhook_backlog",
            "Deliveries pending per endpoint",
            backlog.clone(),
        );
        let oldest_pending = Family::<EndpointLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "webhook_oldest_pending_seconds",
            "Age of the oldest pending delivery per endpoint",
            oldest_pending.clone(),
        );
        let nats_published = Counter::default();
        registry.register(
            "nats_published",
            "Events published to NATS JetStream",
            nats_published.clone(),
        );
        let nats_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "nats_lag_seconds",
            "Age of the oldest event not yet published to NATS (0: caught up)",
            nats_lag.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            calls,
            latency,
            batch_size,
            deliveries,
            attempt_latency,
            backlog,
            oldest_pending,
            nats_published,
            nats_lag,
        }
    }
}

impl Metrics {
    pub fn count(&self, method: &str, outcome: &str) {
        self.calls
            .get_or_create(&CallLabels {
                method: method.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String");
        out
    }
}
