//! The load generator: the calls are signed and encoded before the timed window (a pool of
//! unique, valid calls with a share of each API and a share of exact replays), then
//! `concurrency` workers, each one keep-alive HTTP/1.1 connection, write them back to back and
//! read the answers — no signing, no JSON parsing, no client library in the measured loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use loanwire_api::idle_loan_callback::IdleLoanCallbackInfo;
use loanwire_api::{
    IdleLoanCallbackRequest, TopApi, XfdLoanChangeExternalRequest, XfdLoanChangeNotifyRequest,
};
use loanwire_client::{ClientError, TopClient};
use loanwire_top::{Format, SignMethod, TopDateTime};
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub app_key: String,
    pub secret: String,
    /// It answers the same whatever it is sent (the ceiling): a run may cycle through a smaller
    /// pool of signed calls instead of signing one per call.
    pub cycle: bool,
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
    /// The load generator's own CPU time per call (user and system, microseconds): what the
    /// generator costs the machine the gateway shares.
    pub generator_cpu_us_per_call: f64,
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
            generator_cpu_us_per_call: 0.0,
            acknowledged_ids,
            histogram,
        }
    }

    /// Several runs of the same settings as one: their calls, time and latencies together.
    pub fn merge(parts: Vec<LoadResult>) -> Option<LoadResult> {
        let cpu_us: f64 = parts
            .iter()
            .map(|p| p.generator_cpu_us_per_call * p.requests as f64)
            .sum();
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
        let mut merged = LoadResult::from_parts(
            all.concurrency,
            all.histogram,
            all.acknowledged,
            all.elapsed_secs,
            all.errors,
            all.acknowledged_ids,
        );
        merged.generator_cpu_us_per_call = cpu_us / merged.requests.max(1) as f64;
        Some(merged)
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

/// How many calls a duration-bound run signs per second of its duration: above what any
/// gateway level has reached on this machine (~18,000 calls/s). A run that uses them all before
/// its deadline ends early; its throughput is still calls over elapsed time.
const POOL_PER_SEC: f64 = 40_000.0;

/// The most calls signed for a target that may cycle through them (the ceiling).
const CYCLED_POOL: u64 = 50_000;

/// One call as it goes on the wire, signed and encoded before the timed window: signing is the
/// partner's work, not the gateway's.
#[derive(Debug, Clone)]
pub struct Wire {
    /// `/router/rest?` and the system parameters with `sign` (as the Java SDK sends them).
    pub path: String,
    /// The API parameters, form-encoded.
    pub body: bytes::Bytes,
}

/// Signs `n` calls: unique loan numbers, process numbers and request ids, a `callback_share` of
/// callbacks, and a `duplicate_ratio` share of exact replays of one of the 64 calls before them.
/// Signed on every core, outside any timed window.
pub fn sign_pool(target: &Target, s: &LoadSettings, n: u64) -> Result<Vec<Wire>, ClientError> {
    let client = TopClient::builder(&target.url, &target.app_key, &target.secret)
        .sign_method(s.sign_method)
        .format(s.format)
        .build()?;
    let path = client.url().path().to_string();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let per = n.div_ceil(threads.max(1));
    let mut pool: Vec<Wire> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (client, path) = (&client, &path);
                scope.spawn(move || {
                    let mut rng = rand::rngs::SmallRng::seed_from_u64(t + 1);
                    (t * per..((t + 1) * per).min(n))
                        .map(|i| {
                            let (method, params) = if rng.random_bool(s.callback_share) {
                                callback(&s.tag, i)
                            } else {
                                loan_change(&s.tag, i)
                            };
                            let prepared = client.prepare(&method, params);
                            Wire {
                                path: format!("{path}?{}", prepared.query()),
                                body: bytes::Bytes::from(prepared.body()),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a signing thread panicked"))
            .collect()
    });
    if s.duplicate_ratio > 0.0 {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0);
        for i in 1..pool.len() {
            if rng.random_bool(s.duplicate_ratio) {
                let j = rng.random_range(i.saturating_sub(64)..i);
                pool[i] = pool[j].clone();
            }
        }
    }
    Ok(pool)
}

/// CPU time this process has used (user and system), for the generator's own cost per call.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// What an answer says: acknowledged (with its `request_id`), or the failure's key.
fn classify(status: u16, body: &[u8], format: Format) -> Result<Option<String>, String> {
    if status != 200 {
        return Err(format!("http-{status}"));
    }
    let text = std::str::from_utf8(body).map_err(|_| "decode".to_string())?;
    let between = |open: &str, close: &str| {
        let at = text.find(open)? + open.len();
        text[at..]
            .find(close)
            .map(|end| text[at..at + end].to_string())
    };
    let (error, code, id) = match format {
        Format::Xml => (
            "<error_response>",
            between("<code>", "</code>"),
            between("<request_id>", "</request_id>"),
        ),
        _ => (
            "\"error_response\"",
            between("\"code\":", ","),
            between("\"request_id\":\"", "\""),
        ),
    };
    if text.contains(error) {
        return Err(code.unwrap_or_else(|| "decode".into()));
    }
    Ok(id)
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

async fn connect(addr: &str) -> std::io::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends the calls of `s` to `target`: `concurrency` keep-alive connections, each writing one
/// pre-signed call after another and reading its answer, as light as wrk's loop. The calls are
/// signed before the clock starts; the report includes this process's CPU per call.
pub async fn run(target: &Target, s: &LoadSettings) -> Result<LoadResult, ClientError> {
    let wanted = match (s.requests, s.duration) {
        (Some(n), _) => n,
        (None, Some(d)) => (d.as_secs_f64() * POOL_PER_SEC).ceil() as u64,
        (None, None) => 10_000,
    };
    let signed = if target.cycle {
        wanted.min(CYCLED_POOL)
    } else {
        wanted
    };
    let pool = Arc::new(sign_pool(target, s, signed.max(1))?);
    let url = reqwest::Url::parse(&target.url).map_err(|e| ClientError::Decode {
        reason: format!("target URL: {e}"),
        raw: target.url.clone(),
    })?;
    let host = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port_or_known_default().unwrap_or(80)
    );
    let limit = match (s.requests, target.cycle) {
        (Some(n), _) => n,
        (None, true) => u64::MAX,
        (None, false) => pool.len() as u64,
    };
    let issued = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time();
    let started = Instant::now();
    let deadline = s.duration.map(|d| started + d);
    let mut workers = Vec::with_capacity(s.concurrency);
    for _ in 0..s.concurrency {
        let (pool, issued, host) = (pool.clone(), issued.clone(), host.clone());
        let (keep_ids, format) = (s.keep_ids, s.format);
        workers.push(tokio::spawn(async move {
            let mut r = WorkerResult {
                histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
                acknowledged: 0,
                errors: BTreeMap::new(),
                ids: Vec::new(),
            };
            let mut sender: Option<Sender> = None;
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= limit {
                    break;
                }
                let call = &pool[(n % pool.len() as u64) as usize];
                let request = hyper::Request::post(&call.path)
                    .header(hyper::header::HOST, &host)
                    .header(
                        hyper::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded;charset=utf-8",
                    )
                    .body(http_body_util::Full::new(call.body.clone()))
                    .expect("a valid request");
                let t0 = Instant::now();
                let answer = async {
                    if sender.as_ref().is_none_or(|s| s.is_closed()) {
                        sender = Some(connect(&host).await.map_err(|_| "transport")?);
                    }
                    let ready = sender.as_mut().expect("connected");
                    ready.ready().await.map_err(|_| "transport")?;
                    let resp = ready.send_request(request).await.map_err(|_| "transport")?;
                    let status = resp.status().as_u16();
                    let body = http_body_util::BodyExt::collect(resp.into_body())
                        .await
                        .map_err(|_| "transport")?
                        .to_bytes();
                    Ok::<_, &str>((status, body))
                }
                .await;
                let micros = t0.elapsed().as_micros() as u64;
                let _ = r.histogram.record(micros.max(1));
                match answer
                    .map_err(String::from)
                    .and_then(|(status, body)| classify(status, &body, format))
                {
                    Ok(id) => {
                        r.acknowledged += 1;
                        if let (true, Some(id)) = (keep_ids, id) {
                            r.ids.push(id);
                        }
                    }
                    Err(key) => {
                        if key == "transport" {
                            sender = None;
                        }
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
    let cpu = cpu_time().saturating_sub(cpu_before);
    let mut result =
        LoadResult::from_parts(s.concurrency, histogram, acknowledged, elapsed, errors, ids);
    result.generator_cpu_us_per_call = cpu.as_secs_f64() * 1e6 / (result.requests.max(1) as f64);
    Ok(result)
}
