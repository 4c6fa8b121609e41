//! Prometheus metrics: calls by method and outcome, latency, commit batch sizes, the store's
//! stages.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use loanwire_store::{Stage, WriterObserver};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// queue, commit_wait, commit, sync_wait, sync (`loanwire_store::Stage`)
    pub stage: &'static str,
}

fn stage_histogram() -> Histogram {
    // 10 µs to about 2.6 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 19))
}

/// What the store's writers report: batch sizes, and the time spent in each stage. The
/// histograms are looked up once, not at every call.
pub struct WriterMetrics {
    batch_size: Histogram,
    stages: [Histogram; Stage::ALL.len()],
}

impl WriterObserver for WriterMetrics {
    fn batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    fn stage(&self, stage: Stage, took: Duration) {
        self.stages[stage as usize].observe(took.as_secs_f64());
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub calls: Family<CallLabels, Counter>,
    pub latency: Histogram,
    pub batch_size: Histogram,
    pub store_stages: Family<StageLabels, Histogram, fn() -> Histogram>,
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
        let store_stages: Family<StageLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(stage_histogram);
        registry.register(
            "store_stage_seconds",
            "Where a call's time goes in the store: per call, `queue` (until a writer runs it) and `commit_wait` (until its batch commits, SQLite); per batch, `commit` (PostgreSQL: the whole transaction), `sync_wait` (until the WAL's sync begins) and `sync` (the fdatasync)",
            store_stages.clone(),
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
            store_stages,
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

    /// The observer the store's writers report to.
    pub fn writer_observer(&self) -> WriterMetrics {
        WriterMetrics {
            batch_size: self.batch_size.clone(),
            stages: Stage::ALL.map(|stage| {
                self.store_stages
                    .get_or_create(&StageLabels {
                        stage: stage.as_str(),
                    })
                    .clone()
            }),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry");
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String");
        out
    }
}
