//! A whole benchmark: start (or target) a gateway, start the ceiling, load both at each
//! concurrency level with the same generator and settings, verify the acknowledged calls, report.

use std::path::PathBuf;
use std::time::Duration;

use loanwire_store::postgres::{PgOptions, PgStore};
use loanwire_store::sqlite::{SqliteOptions, SqliteStore};
use loanwire_store::{App, Store, StoreError};
use loanwire_top::time::now_ms;

use crate::seed;
use loanwire_top::{Format, SignMethod};
use rand::Rng;
use serde::Serialize;

use crate::load::{self, LoadResult, LoadSettings, Target};
use crate::procs::Server;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Load this gateway instead of starting one.
    pub target: Option<Target>,
    /// The target's read-API token, to verify acknowledged calls.
    pub admin_token: Option<String>,
    /// PostgreSQL URL for the gateway the bench starts; SQLite in a temporary directory if `None`.
    pub database: Option<String>,
    pub levels: Vec<usize>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub callback_share: f64,
    pub duplicate_ratio: f64,
    pub sign_method: SignMethod,
    pub format: Format,
    /// Loan notes stored before the run.
    pub preload: u64,
    pub warmup: Duration,
    /// Each level's duration (or count) is split into this many slices, run ceiling, gateway,
    /// ceiling, gateway…, so that a machine whose speed drifts during the run weighs on both
    /// alike.
    pub rounds: u32,
    /// The `loanwire` binary, to start the servers with.
    pub exe: PathBuf,
    /// Subscribe a webhook receiver in the bench process to the gateway it starts.
    pub webhook: bool,
    /// Publish every event to NATS JetStream at this URL.
    pub nats: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    pub concurrency: usize,
    pub gateway: LoadResult,
    pub ceiling: Option<LoadResult>,
    pub ratio_to_ceiling: Option<f64>,
    /// Where the gateway's time went (when the bench started it).
    pub waits: Option<crate::waits::Waits>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub acknowledged: u64,
    pub checked: u64,
    pub missing: u64,
    pub missing_examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub backend: String,
    pub target: Option<String>,
    pub duration_secs: Option<f64>,
    pub requests: Option<u64>,
    pub callback_share: f64,
    pub duplicate_ratio: f64,
    pub sign_method: String,
    pub format: String,
    pub preload_loans: u64,
    pub rounds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The gateway's throughput over the ceiling's at 64 connections (the level the targets are
    /// set at) when the run has that level, else at the first level.
    pub ratio_to_ceiling: Option<f64>,
    /// The connections `ratio_to_ceiling` was measured at.
    pub ratio_connections: Option<usize>,
    pub settings: Settings,
    pub runs: Vec<LevelReport>,
    pub gateway_peak_memory_mib: Option<f64>,
    pub verification: Option<Verification>,
    /// With `--webhook`: delivery lag and the backlog at the end.
    pub delivery: Option<crate::delivery::DeliveryReport>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("load: {0}")]
    Load(#[from] loanwire_client::ClientError),
}

pub(crate) fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::Setup(format!("{what}: {e}"))
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// Registers (or finds) the bench's app in the gateway's database, and seeds it.
pub(crate) async fn prepare(
    dir: &std::path::Path,
    database: Option<&str>,
    preload: u64,
    tag: &str,
) -> Result<(String, String), BenchError> {
    let store: Box<dyn Store> = match database {
        Some(url) => Box::new(
            PgStore::open(
                url,
                PgOptions {
                    writers: 1,
                    readers: 1,
                    ..PgOptions::default()
                },
            )
            .map_err(setup("open the database"))?,
        ),
        None => Box::new(
            SqliteStore::open(dir, SqliteOptions::default()).map_err(setup("open the database"))?,
        ),
    };
    let app = App {
        app_key: "20000001".into(),
        name: "bench".into(),
        secret: random_hex(16),
        previous_secret: None,
        previous_secret_expires_ms: None,
        channels: None,
        methods: None,
        rate_limit: None,
        enabled: true,
        created_ms: now_ms(),
        updated_ms: now_ms(),
    };
    let by = loanwire_store::Actor {
        name: "bench".into(),
        source: "bench".into(),
    };
    let app = match store.create_app(&app, &by).await {
        Ok(()) => app,
        // A database that served an earlier bench keeps its app.
        Err(StoreError::Invalid(_)) => store
            .app(&app.app_key)
            .await
            .map_err(setup("read the bench app"))?
            .expect("it exists"),
        Err(e) => return Err(setup("create the bench app")(e)),
    };
    drop(store);
    if preload > 0 {
        match database {
            Some(url) => seed::postgres(url, &app.app_key, preload, tag),
            None => seed::sqlite(dir, &app.app_key, preload, tag),
        }
        .map_err(setup("seed loan notes"))?;
    }
    Ok((app.app_key, app.secret))
}

pub async fn run(opts: &BenchOptions, progress: impl Fn(&str)) -> Result<Report, BenchError> {
    let tag = format!("b{}", random_hex(4));
    let data_dir = tempfile::tempdir().map_err(setup("temporary directory"))?;
    let admin_token = opts.admin_token.clone().unwrap_or_else(|| random_hex(16));
    let mut servers: Vec<Server> = Vec::new();

    let target = match &opts.target {
        Some(t) => t.clone(),
        None => {
            let (app_key, secret) = prepare(
                data_dir.path(),
                opts.database.as_deref(),
                opts.preload,
                &tag,
            )
            .await?;
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--data-dir".into(),
            ];
            args.push(data_dir.path().display().to_string());
            if let Some(url) = &opts.database {
                args.push("--database".into());
                args.push(url.clone());
            }
            let mut envs = vec![("LOANWIRE_ADMIN_TOKEN".to_string(), admin_token.clone())];
            if opts.webhook {
                envs.push((
                    "LOANWIRE_EVENTS_ALLOWED_SUBNETS".into(),
                    "127.0.0.0/8".into(),
                ));
            }
            if let Some(url) = &opts.nats {
                envs.push(("LOANWIRE_NATS_URL".into(), url.clone()));
                envs.push(("LOANWIRE_NATS_STREAM".into(), format!("LW_BENCH_{tag}")));
            }
            if opts.database.is_some() && std::env::var("LOANWIRE_MASTER_KEY").is_err() {
                // PostgreSQL needs a master key; one for this run seals the bench app's secret.
                let key = loanwire_store::secrets::MasterKey::generate().to_base64();
                envs.push(("LOANWIRE_MASTER_KEY".to_string(), key));
            }
            let gateway =
                Server::start(&opts.exe, &args, &envs).map_err(setup("start the gateway"))?;
            progress(&format!(
                "gateway at {} (pid {})",
                gateway.base_url,
                gateway.pid()
            ));
            let url = format!("{}/router/rest", gateway.base_url);
            servers.push(gateway);
            Target {
                url,
                app_key,
                secret,
                cycle: false,
            }
        }
    };
    let receiver = match (opts.webhook, &opts.target) {
        (true, None) => {
            let r = crate::delivery::Receiver::start()
                .await
                .map_err(setup("start the webhook receiver"))?;
            let base = target.url.trim_end_matches("/router/rest");
            let id = subscribe(base, &admin_token, &r.url).await?;
            progress(&format!("webhook receiver at {} (endpoint {id})", r.url));
            Some((r, id))
        }
        _ => None,
    };
    let ceiling = if opts.target.is_none() {
        let args: Vec<String> = ["bench", "ceiling", "--listen", "127.0.0.1:0"]
            .map(String::from)
            .to_vec();
        let c = Server::start(&opts.exe, &args, &[]).map_err(setup("start the ceiling"))?;
        progress(&format!("ceiling at {} (pid {})", c.base_url, c.pid()));
        Some(c)
    } else {
        None
    };
    let ceiling_target = ceiling.as_ref().map(|c| Target {
        url: format!("{}/router/rest", c.base_url),
        app_key: "ceiling".into(),
        secret: "ceiling".into(),
        cycle: true,
    });

    // The gateway the bench started, to read its stages and threads around each slice.
    let watched = servers.first().map(|g| (g.base_url.clone(), g.pid()));
    let rounds = opts.rounds.max(1);
    let mut runs = Vec::new();
    let mut acknowledged_ids: Vec<String> = Vec::new();
    for (i, &concurrency) in opts.levels.iter().enumerate() {
        let settings = |tag: String,
                        keep_ids: bool,
                        duration: Option<Duration>,
                        requests: Option<u64>| LoadSettings {
            concurrency,
            duration,
            requests,
            callback_share: opts.callback_share,
            duplicate_ratio: opts.duplicate_ratio,
            sign_method: opts.sign_method,
            format: opts.format,
            tag,
            keep_ids,
        };
        if !opts.warmup.is_zero() {
            let warm = settings(format!("{tag}-w{i}"), false, Some(opts.warmup), None);
            load::run(&target, &warm).await?;
            if let Some(c) = &ceiling_target {
                load::run(c, &warm).await?;
            }
        }
        let slice = opts.duration.map(|d| d / rounds);
        let (mut ceiling_parts, mut gateway_parts) = (Vec::new(), Vec::new());
        let mut tally = crate::waits::Tally::default();
        for r in 0..rounds {
            let count = opts.requests.map(|n| {
                let (each, rest) = (n / u64::from(rounds), n % u64::from(rounds));
                each + u64::from(u64::from(r) < rest)
            });
            if let Some(c) = &ceiling_target {
                let s = settings(format!("{tag}-c{i}r{r}"), false, slice, count);
                ceiling_parts.push(load::run(c, &s).await?);
            }
            let s = settings(format!("{tag}-g{i}r{r}"), true, slice, count);
            let before = match &watched {
                Some((url, pid)) => crate::waits::mark(url, *pid).await.ok(),
                None => None,
            };
            gateway_parts.push(load::run(&target, &s).await?);
            if let (Some(before), Some((url, pid))) = (&before, &watched) {
                if let Ok(after) = crate::waits::mark(url, *pid).await {
                    tally.add(before, &after);
                }
            }
        }
        let ceiling_result = LoadResult::merge(ceiling_parts);
        if let Some(r) = &ceiling_result {
            progress(&format!(
                "ceiling  @{concurrency:>4}: {:>9.0} calls/s, p99 {:.2} ms",
                r.throughput_rps, r.latency.p99_ms
            ));
        }
        let mut gateway = LoadResult::merge(gateway_parts).expect("at least one round");
        progress(&format!(
            "gateway  @{concurrency:>4}: {:>9.0} calls/s, p99 {:.2} ms, errors {:?}",
            gateway.throughput_rps, gateway.latency.p99_ms, gateway.errors
        ));
        acknowledged_ids.append(&mut gateway.acknowledged_ids);
        let ratio = ceiling_result
            .as_ref()
            .map(|c| gateway.throughput_rps / c.throughput_rps);
        runs.push(LevelReport {
            concurrency,
            gateway,
            ceiling: ceiling_result,
            ratio_to_ceiling: ratio,
            waits: tally.waits(),
        });
    }

    let base = target.url.trim_end_matches("/router/rest").to_string();
    let delivery = match &receiver {
        Some((r, id)) => {
            Some(delivery_report(&base, &admin_token, r, id, opts.nats.is_some()).await)
        }
        None => None,
    };
    let peak = servers.first().and_then(Server::peak_memory_mib);
    let verification = if opts.target.is_none() || opts.admin_token.is_some() {
        let base = target.url.trim_end_matches("/router/rest").to_string();
        Some(verify(&base, &admin_token, &acknowledged_ids).await?)
    } else {
        None
    };
    drop(ceiling);
    drop(servers);
    let mut delivery = delivery;
    if let (Some(url), None) = (&opts.nats, &opts.target) {
        match crate::delivery::nats_count_and_remove(url, &format!("LW_BENCH_{tag}")).await {
            Ok(n) => {
                progress(&format!(
                    "NATS: {n} events in the run's stream (now removed)"
                ));
                if let Some(d) = delivery.as_mut() {
                    d.nats_published = Some(n);
                }
            }
            Err(e) => progress(&format!("NATS stream of the run: {e}")),
        }
    }
    let headline = headline(&runs);
    Ok(Report {
        ratio_to_ceiling: headline.and_then(|r| r.ratio_to_ceiling),
        ratio_connections: headline.map(|r| r.concurrency),
        settings: Settings {
            backend: if opts.database.is_some() {
                "postgres".into()
            } else {
                "sqlite".into()
            },
            target: opts.target.as_ref().map(|t| t.url.clone()),
            duration_secs: opts.duration.map(|d| d.as_secs_f64()),
            requests: opts.requests,
            callback_share: opts.callback_share,
            duplicate_ratio: opts.duplicate_ratio,
            sign_method: opts.sign_method.to_string(),
            format: opts.format.to_string(),
            preload_loans: opts.preload,
            rounds,
        },
        runs,
        gateway_peak_memory_mib: peak,
        verification,
        delivery,
    })
}

/// Subscribes the receiver; the endpoint's id.
async fn subscribe(base: &str, token: &str, url: &str) -> Result<String, BenchError> {
    loanwire_client::install_crypto_provider();
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/endpoints"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "url": url, "description": "bench receiver" }))
        .send()
        .await
        .map_err(setup("subscribe the receiver"))?;
    let body: serde_json::Value = resp.json().await.map_err(setup("subscribe the receiver"))?;
    body["id"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| BenchError::Setup(format!("subscribe the receiver: {body}")))
}

/// The backlog when the load stopped, how long it took to drain (at most 60 s), the lag.
async fn delivery_report(
    base: &str,
    token: &str,
    receiver: &crate::delivery::Receiver,
    endpoint: &str,
    nats: bool,
) -> crate::delivery::DeliveryReport {
    let http = reqwest::Client::new();
    let backlog = || async {
        let v: serde_json::Value = http
            .get(format!("{base}/api/v1/endpoints/{endpoint}"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["backlog"]["pending"].as_i64()
    };
    let nats_lag = if nats {
        let text = http.get(format!("{base}/metrics")).send().await.ok();
        match text {
            Some(t) => t.text().await.ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("loanwire_nats_lag_seconds "))
                    .and_then(|v| v.trim().parse().ok())
            }),
            None => None,
        }
    } else {
        None
    };
    let at_end = backlog().await;
    let started = std::time::Instant::now();
    let mut drained = None;
    while started.elapsed() < Duration::from_secs(60) {
        if backlog().await == Some(0) {
            drained = Some(started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (received, p50, p99, max) = receiver.lag();
    crate::delivery::DeliveryReport {
        received,
        lag_p50_ms: p50,
        lag_p99_ms: p99,
        lag_max_ms: max,
        backlog_at_end: at_end,
        drained_after_secs: drained,
        nats_lag_at_end_secs: nats_lag,
        nats_published: None,
    }
}

/// The level whose ratio heads the report.
fn headline(runs: &[LevelReport]) -> Option<&LevelReport> {
    runs.iter().find(|r| r.concurrency == 64).or(runs.first())
}

/// Asks the gateway's read API which acknowledged calls its inbox does not hold.
async fn verify(base: &str, token: &str, ids: &[String]) -> Result<Verification, BenchError> {
    let http = reqwest::Client::new();
    let mut missing = Vec::new();
    let mut checked = 0u64;
    for chunk in ids.chunks(5000) {
        let resp = http
            .post(format!("{base}/api/v1/inbox/check"))
            .bearer_auth(token)
            .json(chunk)
            .send()
            .await
            .map_err(setup("verify through the read API"))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(setup("verify through the read API"))?;
        if !status.is_success() {
            return Err(BenchError::Setup(format!(
                "verification answered HTTP {status}: {body}"
            )));
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(setup("verification answer"))?;
        checked += v["checked"].as_u64().unwrap_or(0);
        if let Some(m) = v["missing"].as_array() {
            missing.extend(m.iter().filter_map(|x| x.as_str().map(String::from)));
        }
    }
    Ok(Verification {
        acknowledged: ids.len() as u64,
        checked,
        missing: missing.len() as u64,
        missing_examples: missing.into_iter().take(10).collect(),
    })
}
