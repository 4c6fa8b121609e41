//! The load generator: `concurrency` workers, each one keep-alive connection sending signed
//! calls back to back, with unique loan numbers and request ids, a share of each API, and a
//! share of exact replays of earlier calls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use loanwire_api::idle_loan_callback::IdleLoanCallbackInfo;
use loanwire_api::{
    IdleLoanCallbackRequest, TopApi, XfdLoanChangeExternalRequest, XfdLoanChangeNotifyRequest,
};
use loanwire_client::{ClientError, RetryPolicy, TopClient};
use loanwire_top::{Format, SignMethod, TopDateTime};
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub app_key: String,
    pub secret: String,
}

#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub concurrency: usize,
    /// Run this long (unless `requests` ends it first).
    pub duration: Option<Duration>,
    /// Send this many calls in all.
    pub requests: Option<u64>,
    /// Share of calls that are `alibaba.idle.interact.loan.callback`; the rest are loan changes.
    pub callback_share: f64,
    /// Share of calls that replay an earlier call exactly.
    pub duplicate_ratio: f64,
    pub sign_method: SignMethod,
    pub format: Format,
    /// Makes loan numbers and request ids unique across runs.
    pub tag: String,
    /// Keep the acknowledged calls' `request_id`s, to verify them afterwards.
    pub keep_ids: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub concurrency: usize,
    pub requests: u64,
    /// Calls answered with a success envelope (which includes business refusals).
    pub acknowledged: u64,
    pub elapsed_secs: f64,
    pub throughput_rps: f64,
    pub latency: Latency,
    /// Failures by TOP code, or `transport` / `http` / `decode`.
    pub errors: BTreeMap<String, u64>,
    #[serde(skip)]
    pub acknowledged_ids: Vec<String>,
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

impl LoadResult {
    fn from_parts(
        concurrency: usize,
        histogram: Histogram<u64>,
        acknowledged: u64,
        elapsed_secs: f64,
        errors: BTreeMap<String, u64>,
        acknowledged_ids: Vec<String>,
    ) -> LoadResult {
        let requests = histogram.len();
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        LoadResult {
            concurrency,
            requests,
            acknowledged,
            elapsed_secs,
            throughput_rps: requests as f64 / elapsed_secs,
            latency: Latency {
                p50_ms: ms(0.50),
                p90_ms: ms(0.90),
                p99_ms: ms(0.99),
                max_ms: histogram.max() as f64 / 1000.0,
            },
            errors,
            acknowledged_ids,
            histogram,
        }
    }

    /// Several runs of the same settings as one: their calls, time and latencies together.
    pub fn merge(parts: Vec<LoadResult>) -> Option<LoadResult> {
        let mut parts = parts.into_iter();
        let mut all = parts.next()?;
        for p in parts {
            all.histogram.add(&p.histogram).expect("same bounds");
            all.acknowledged += p.acknowledged;
            all.elapsed_secs += p.elapsed_secs;
            for (k, v) in p.errors {
                *all.errors.entry(k).or_default() += v;
            }
            all.acknowledged_ids.extend(p.acknowledged_ids);
        }
        Some(LoadResult::from_parts(
            all.concurrency,
            all.histogram,
            all.acknowledged,
            all.elapsed_secs,
            all.errors,
            all.acknowledged_ids,
        ))
    }
}

struct WorkerResult {
    histogram: Histogram<u64>,
    acknowledged: u64,
    errors: BTreeMap<String, u64>,
    ids: Vec<String>,
}

fn loan_change(tag: &str, n: u64) -> (String, Vec<(String, String)>) {
    let req = XfdLoanChangeNotifyRequest {
        param_xfd_loan_change_external_request: XfdLoanChangeExternalRequest {
            after_status: "NORMAL".into(),
            before_status: "NEW".into(),
            change_time: TopDateTime::parse("2024-01-01 00:00:00").expect("a valid time"),
            customer_id: Some(format!("C{n}")),
            institution_loan_no: Some(format!("I{n}")),
            loan_apply_no: format!("{tag}-L{n}"),
            request_id: format!("{tag}-R{n}"),
        },
    };
    (
        XfdLoanChangeNotifyRequest::METHOD.to_string(),
        req.to_params(),
    )
}

fn callback(tag: &str, n: u64) -> (String, Vec<(String, String)>) {
    let req = IdleLoanCallbackRequest {
        user: format!("u{n}"),
        infos: IdleLoanCallbackInfo {
            channel_id: "wzzx".into(),
            complete_time: None,
            fund_products: Some(vec!["bench".into()]),
            process_no: format!("{tag}-P{n}"),
            status: "IN_PROCESSING".into(),
            submit_time: None,
            process_type: "CREDIT".into(),
            user_id: n as i64,
        },
    };
    (IdleLoanCallbackRequest::METHOD.to_string(), req.to_params())
}

pub async fn run(target: &Target, s: &LoadSettings) -> Result<LoadResult, ClientError> {
    let client = TopClient::builder(&target.url, &target.app_key, &target.secret)
        .sign_method(s.sign_method)
        .format(s.format)
        .gzip(false)
        .retry(RetryPolicy::none())
        .read_timeout(Duration::from_secs(30))
        .build()?;
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = s.duration.map(|d| started + d);
    let mut workers = Vec::with_capacity(s.concurrency);
    for w in 0..s.concurrency {
        let client = client.clone();
        let issued = issued.clone();
        let s = s.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(w as u64 + 1);
            let mut recent: Vec<(String, Vec<(String, String)>)> = Vec::new();
            let mut r = WorkerResult {
                histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
                acknowledged: 0,
                errors: BTreeMap::new(),
                ids: Vec::new(),
            };
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if s.requests.is_some_and(|max| n >= max) {
                    break;
                }
                let (method, params) = if !recent.is_empty() && rng.random_bool(s.duplicate_ratio) {
                    recent[rng.random_range(0..recent.len())].clone()
                } else {
                    let call = if rng.random_bool(s.callback_share) {
                        callback(&s.tag, n)
                    } else {
                        loan_change(&s.tag, n)
                    };
                    if recent.len() < 64 {
                        recent.push(call.clone());
                    } else {
                        let i = rng.random_range(0..recent.len());
                        recent[i] = call.clone();
                    }
                    call
                };
                let t0 = Instant::now();
                let result = client.execute(&method, params).await;
                let micros = t0.elapsed().as_micros() as u64;
                let _ = r.histogram.record(micros.max(1));
                match result {
                    Ok(resp) => {
                        r.acknowledged += 1;
                        if s.keep_ids {
                            if let Some(id) = resp.request_id {
                                r.ids.push(id);
                            }
                        }
                    }
                    Err(e) => {
                        let key = match &e {
                            ClientError::Top { error, .. } => error.code.to_string(),
                            ClientError::Transport { .. } => "transport".into(),
                            ClientError::HttpStatus { status, .. } => format!("http-{status}"),
                            _ => "decode".into(),
                        };
                        *r.errors.entry(key).or_default() += 1;
                    }
                }
            }
            r
        }));
    }
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut acknowledged = 0;
    let mut errors = BTreeMap::new();
    let mut ids = Vec::new();
    for w in workers {
        let r = w.await.expect("a load worker panicked");
        histogram.add(&r.histogram).expect("same bounds");
        acknowledged += r.acknowledged;
        for (k, v) in r.errors {
            *errors.entry(k).or_default() += v;
        }
        ids.extend(r.ids);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(LoadResult::from_parts(
        s.concurrency,
        histogram,
        acknowledged,
        elapsed,
        errors,
        ids,
    ))
}
