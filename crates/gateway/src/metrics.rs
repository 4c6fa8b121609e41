//! Prometheus metrics: calls by method and outcome, latency, commit batch sizes.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
    pub outcome: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub calls: Family<CallLabels, Counter>,
    pub latency: Histogram,
    pub batch_size: Histogram,
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
        Metrics {
            registry: Mutex::new(registry),
            calls,
            latency,
            batch_size,
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
