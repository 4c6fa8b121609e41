//! `loanwire bench console`: how fast the console's pages and the report answer on a large
//! database. Stores `preload` loan notes with one call each (1 % of them flagged for
//! reconciliation), starts the gateway on it, waits for the call counts to be rolled up, signs in
//! and times every page `rounds` times, one request at a time.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header;

use crate::procs::Server;
use crate::run::{prepare, random_hex, setup, BenchError};

/// What a page answered and how long it took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageTime {
    pub page: String,
    pub status: u16,
    pub bytes: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

pub struct ConsoleOptions {
    pub exe: std::path::PathBuf,
    pub database: Option<String>,
    pub preload: u64,
    pub rounds: usize,
}

const FLAG: &str = r#"{"kind":"GAP","expected_status":"NORMAL","reported_status":"OVERDUE","after_status":"CLEARED","request_id":"seed","change_time":"2024-01-01 00:00:00"}"#;

/// Flags every loan note whose number ends in `00` (1 %), as the report would find them.
fn flag(dir: &Path, database: Option<&str>, tag: &str) -> Result<(), String> {
    let pattern = format!("{tag}-S%00");
    match database {
        None => {
            let db = rusqlite::Connection::open(dir.join(loanwire_store::sqlite::DB_FILE))
                .map_err(|e| e.to_string())?;
            db.execute(
                "UPDATE loans SET needs_reconciliation = 1 WHERE loan_apply_no LIKE ?1",
                [&pattern],
            )
            .map_err(|e| e.to_string())?;
            db.execute(
                "INSERT INTO loan_flags (loan_apply_no, flag)
                 SELECT loan_apply_no, ?1 FROM loans WHERE needs_reconciliation = 1",
                [FLAG],
            )
            .map_err(|e| e.to_string())?;
        }
        Some(url) => {
            let (url, pattern) = (url.to_string(), pattern.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut c =
                    postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
                c.execute(
                    "UPDATE loans SET needs_reconciliation = TRUE WHERE loan_apply_no LIKE $1",
                    &[&pattern],
                )
                .map_err(|e| e.to_string())?;
                c.execute(
                    "INSERT INTO loan_flags (loan_apply_no, flag)
                     SELECT loan_apply_no, $1 FROM loans WHERE needs_reconciliation",
                    &[&FLAG],
                )
                .map_err(|e| e.to_string())?;
                c.batch_execute("VACUUM (ANALYZE) loans, loan_flags")
                    .map_err(|e| e.to_string())
            })
            .join()
            .map_err(|_| "flagging panicked".to_string())??;
        }
    }
    Ok(())
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

pub async fn run(
    opts: &ConsoleOptions,
    progress: impl Fn(&str),
) -> Result<Vec<PageTime>, BenchError> {
    loanwire_client::install_crypto_provider();
    let tag = format!("c{}", random_hex(4));
    let dir = tempfile::tempdir().map_err(setup("temporary directory"))?;
    let token = random_hex(16);
    progress(&format!("storing {} loan notes and calls", opts.preload));
    prepare(dir.path(), opts.database.as_deref(), opts.preload, &tag).await?;
    flag(dir.path(), opts.database.as_deref(), &tag).map_err(setup("flag loan notes"))?;

    let mut args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--data-dir"]
        .map(String::from)
        .to_vec();
    args.push(dir.path().display().to_string());
    let mut envs = vec![("LOANWIRE_ADMIN_TOKEN".to_string(), token.clone())];
    if let Some(url) = &opts.database {
        args.extend(["--database".to_string(), url.clone()]);
        if std::env::var("LOANWIRE_MASTER_KEY").is_err() {
            let key = loanwire_store::secrets::MasterKey::generate().to_base64();
            envs.push(("LOANWIRE_MASTER_KEY".into(), key));
        }
    }
    let gateway = Server::start(&opts.exe, &args, &envs).map_err(setup("start the gateway"))?;
    let base = gateway.base_url.clone();
    progress(&format!("gateway at {base} (pid {})", gateway.pid()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(setup("HTTP client"))?;

    // The roll-up counts the stored calls in the background: wait (bounded) until it has.
    let started = Instant::now();
    loop {
        let report: serde_json::Value = http
            .get(format!(
                "{base}/api/v1/reports/reconciliation?window_hours=1&limit=1"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(setup("read the report"))?
            .json()
            .await
            .map_err(setup("read the report"))?;
        let counted: i64 = report["apps"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["calls"].as_i64()).sum())
            .unwrap_or(0);
        if counted >= opts.preload as i64 {
            progress(&format!(
                "{counted} calls counted in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(BenchError::Setup(format!(
                "only {counted} of {} calls counted after 600 s",
                opts.preload
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let login = http
        .post(format!("{base}/console/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .map_err(setup("sign in"))?;
    let cookie = login
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| BenchError::Setup("signing in gave no session cookie".into()))?
        .to_string();

    let middle = opts.preload / 2;
    let pages: Vec<(String, bool)> = [
        ("/console/", false),
        ("/console/?window=day", false),
        ("/console/apps", false),
        ("/console/calls", false),
        ("/console/calls?app=20000001", false),
        ("/console/calls?outcome=refused", false),
        (
            "/console/calls?method=alibaba.idle.interact.loan.callback",
            false,
        ),
        (
            "/console/calls?from=2020-01-01T00:00&to=2020-01-02T00:00",
            false,
        ),
        (&format!("/console/calls/{tag}-seed-{middle}"), false),
        (&format!("/console/loans/{tag}-S{middle}"), false),
        ("/console/reconciliation", false),
        ("/console/endpoints", false),
        ("/console/audit", false),
        ("/api/v1/reports/reconciliation", true),
        ("/api/v1/reports/reconciliation?format=csv", true),
    ]
    .iter()
    .map(|(p, api)| (p.to_string(), *api))
    .collect();
    let mut times = Vec::new();
    for (page, api) in &pages {
        let mut took = Vec::with_capacity(opts.rounds);
        let (mut status, mut bytes) = (0, 0);
        for _ in 0..opts.rounds.max(1) {
            let request = http.get(format!("{base}{page}"));
            let request = if *api {
                request.bearer_auth(&token)
            } else {
                request.header(header::COOKIE, &cookie)
            };
            let t = Instant::now();
            let resp = request.send().await.map_err(setup("load a page"))?;
            status = resp.status().as_u16();
            bytes = resp.bytes().await.map_err(setup("read a page"))?.len();
            took.push(t.elapsed());
        }
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
        let t = PageTime {
            page: page.clone(),
            status,
            bytes,
            p50_ms: millis(at(0.5)),
            p95_ms: millis(at(0.95)),
            max_ms: millis(*took.last().expect("rounds")),
        };
        progress(&format!(
            "{:<64} {} {:>8} B  p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms",
            t.page, t.status, t.bytes, t.p50_ms, t.p95_ms, t.max_ms
        ));
        times.push(t);
    }
    drop(gateway);
    Ok(times)
}
