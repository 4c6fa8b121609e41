use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use loanwire_bench::load::Target;
use loanwire_bench::{chart, report, BenchOptions};
use loanwire_top::{Format, SignMethod};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The ceiling server: the gateway's HTTP stack answering a canned response (started by the bench).
    #[command(hide = true)]
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Time the console's pages and the reconciliation report on a database holding `--preload`
    /// loan notes and calls (1 % flagged).
    Console {
        #[arg(long, default_value_t = 1_000_000)]
        preload: u64,
        /// Requests per page.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// PostgreSQL instead of SQLite in a temporary directory.
        #[arg(long, env = "LOANWIRE_DATABASE_URL")]
        database: Option<String>,
        /// Also write the timings as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write pre-signed calls, one a line (the path with its query, a tab, the body), for wrk
    /// (`benchmarks/wrk-presigned.lua`): the same calls the bench's generator sends.
    Sign {
        /// The gateway's (or the ceiling's) `/router/rest` URL.
        #[arg(long)]
        url: String,
        #[arg(long, env = "LOANWIRE_APP_KEY", default_value = "ceiling")]
        app_key: String,
        #[arg(
            long,
            env = "LOANWIRE_APP_SECRET",
            hide_env_values = true,
            default_value = "ceiling"
        )]
        secret: String,
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Draw a chart (PNG) of throughput and p99 against connections from one or more JSON reports.
    Chart {
        /// Reports written by `loanwire bench --json`.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Load this TOP gateway instead of starting one (with --app-key and --secret).
    #[arg(long)]
    target: Option<String>,
    #[arg(long, env = "LOANWIRE_APP_KEY")]
    app_key: Option<String>,
    #[arg(long, env = "LOANWIRE_APP_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The target's read-API token, to verify that every acknowledged call is in its inbox.
    #[arg(long, env = "LOANWIRE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Start the gateway on this PostgreSQL database instead of SQLite in a temporary directory.
    #[arg(long, env = "LOANWIRE_DATABASE_URL")]
    database: Option<String>,
    /// Connections; a comma-separated list runs one level after another.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    concurrency: Vec<usize>,
    /// Seconds per level (unless --requests is given).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Calls per level instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Share of callbacks (alibaba.idle.interact.loan.callback); the rest are loan changes.
    #[arg(long, default_value_t = 0.5)]
    mix: f64,
    /// Share of calls that replay an earlier call exactly.
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,
    #[arg(long, default_value = "hmac-sha256")]
    sign_method: SignMethod,
    #[arg(long, default_value = "json")]
    format: Format,
    /// Loan notes to store before the run (the database-size experiment).
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// Seconds of unmeasured load before each level.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Split each level into this many slices, alternating ceiling and gateway, so that a
    /// machine whose speed drifts during the run weighs on both alike.
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// Subscribe a webhook receiver (in the bench process) and report delivery lag and backlog.
    #[arg(long)]
    webhook: bool,
    /// Also publish every event to NATS JetStream at this URL (e.g. nats://127.0.0.1:4222).
    #[arg(long)]
    nats: Option<String>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw the chart here (PNG).
    #[arg(long)]
    chart: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    match args.command {
        Some(BenchCommand::Ceiling { listen }) => runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::bind(&listen).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let addr = listener.local_addr().expect("bound");
            crate::output::say(&format!("ceiling listening on http://{addr}/router/rest"));
            match loanwire_bench::ceiling::serve(listener).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
        Some(BenchCommand::Console {
            preload,
            rounds,
            database,
            json,
        }) => runtime.block_on(async move {
            let opts = loanwire_bench::console::ConsoleOptions {
                exe: std::env::current_exe().expect("the running binary"),
                database,
                preload,
                rounds,
            };
            match loanwire_bench::console::run(&opts, |m| eprintln!("{m}")).await {
                Ok(times) => {
                    if let Some(path) = json {
                        let text = serde_json::to_string_pretty(&times).expect("serializes");
                        if let Err(e) = std::fs::write(&path, text) {
                            eprintln!("error: {}: {e}", path.display());
                            return ExitCode::FAILURE;
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
        Some(BenchCommand::Sign {
            url,
            app_key,
            secret,
            count,
            out,
        }) => {
            loanwire_client::install_crypto_provider();
            let target = Target {
                url,
                app_key,
                secret,
                cycle: false,
            };
            let settings = loanwire_bench::load::LoadSettings {
                concurrency: 1,
                duration: None,
                requests: Some(count),
                callback_share: 0.5,
                duplicate_ratio: 0.0,
                sign_method: SignMethod::HmacSha256,
                format: Format::Json,
                tag: format!("w{}", std::process::id()),
                keep_ids: false,
            };
            let pool = match loanwire_bench::load::sign_pool(&target, &settings, count) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut text = String::with_capacity(pool.len() * 600);
            for call in &pool {
                text.push_str(&call.path);
                text.push('\t');
                text.push_str(&String::from_utf8_lossy(&call.body));
                text.push('\n');
            }
            match std::fs::write(&out, text) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}: {e}", out.display());
                    ExitCode::FAILURE
                }
            }
        }
        Some(BenchCommand::Chart { reports, out }) => {
            let mut parsed = Vec::new();
            for p in &reports {
                match std::fs::read_to_string(p)
                    .map_err(|e| e.to_string())
                    .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
                {
                    Ok(v) => parsed.push(v),
                    Err(e) => {
                        eprintln!("error: {}: {e}", p.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            match chart::draw(&parsed, &out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => runtime.block_on(bench(args.run)),
    }
}

async fn bench(a: RunArgs) -> ExitCode {
    if !(0.0..=1.0).contains(&a.mix) || !(0.0..=1.0).contains(&a.duplicates) {
        eprintln!("error: --mix and --duplicates are shares between 0 and 1");
        return ExitCode::from(2);
    }
    if a.concurrency.contains(&0) {
        eprintln!("error: --concurrency must be positive");
        return ExitCode::from(2);
    }
    let target = match a.target {
        Some(url) => {
            let (Some(app_key), Some(secret)) = (a.app_key, a.secret) else {
                eprintln!("error: --target needs --app-key and --secret");
                return ExitCode::from(2);
            };
            Some(Target {
                url,
                app_key,
                secret,
                cycle: false,
            })
        }
        None => None,
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find the loanwire binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = BenchOptions {
        target,
        admin_token: a.admin_token,
        database: a.database,
        levels: a.concurrency,
        duration: a
            .requests
            .is_none()
            .then(|| Duration::from_secs_f64(a.duration)),
        requests: a.requests,
        callback_share: a.mix,
        duplicate_ratio: a.duplicates,
        sign_method: a.sign_method,
        format: a.format,
        preload: a.preload,
        warmup: Duration::from_secs_f64(a.warmup),
        rounds: a.rounds,
        exe,
        webhook: a.webhook,
        nats: a.nats,
    };
    let report = match loanwire_bench::run(&opts, |line| eprintln!("{line}")).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report::render(&report));
    let json = serde_json::to_value(&report).expect("reports serialize");
    if let Some(path) = &a.json {
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&json).expect("JSON")) {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &a.chart {
        if let Err(e) = chart::draw(&[json], path) {
            eprintln!("error: chart: {e}");
            return ExitCode::FAILURE;
        }
    }
    match &report.verification {
        Some(v) if v.missing > 0 => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}
