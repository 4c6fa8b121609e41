//! PostgreSQL stops during a load of calls and starts again: calls refused meanwhile got `isp.`
//! errors, no acknowledged call is lost, and the gateway serves again without a restart.
//! This runs its own PostgreSQL server (initdb in a temporary directory, on a free port), so
//! that stopping it disturbs nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loanwire_client::ClientError;

use crate::helpers::*;

fn pg_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok();
    let from_config = out
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    from_config
        .filter(|p| p.join("initdb").exists())
        .or_else(|| {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .map(|e| e.path().join("bin"))
                .collect();
            dirs.sort();
            dirs.into_iter().rev().find(|p| p.join("initdb").exists())
        })
}

/// A throwaway PostgreSQL server, run as the `postgres` user when we are root.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

impl Server {
    fn create(bin: PathBuf) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("loanwire-pg-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let _ = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .status();
        let _ = Command::new("chmod").args(["755"]).arg(dir.path()).status();
        let ok = as_postgres(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "initdb failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Server {
            bin,
            data,
            port,
            _dir: dir,
        }
    }

    fn start(&self) {
        let ok = as_postgres(&self.bin, "pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-w", "-l"])
            .arg(self.data.join("log"))
            .args([
                "-o",
                &format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
                    self.port,
                    self.data.display()
                ),
            ])
            .arg("start")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctl start failed");
    }

    fn stop(&self) {
        let ok = as_postgres(&self.bin, "pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-w", "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctl stop failed");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_refuses_calls_with_isp_errors_loses_nothing_and_heals_itself() {
    crate::skip_unless_backend!();
    let Some(bin) = pg_bindir() else {
        crate::helpers::skipped("no PostgreSQL server binaries (initdb) on this machine");
        return;
    };
    let server = Server::create(bin);
    server.start();
    let dir = tempfile::TempDir::new().unwrap();
    let mut config = test_config(&dir);
    config.database = Some(server.url());
    let app = spawn_in(dir, config, None).await;

    let stop = Arc::new(AtomicBool::new(false));
    // What the workers have seen so far, for the test to wait on instead of sleeping.
    let acks = Arc::new(AtomicU32::new(0));
    let refusals = Arc::new(AtomicU32::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let client = app.client();
        let stop = stop.clone();
        let (acks, refusals) = (acks.clone(), refusals.clone());
        workers.push(tokio::spawn(async move {
            let (mut acked, mut isp, mut n) = (Vec::new(), 0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let req = change(
                    &format!("FI-o{w}-{n}"),
                    "NEW",
                    "NORMAL",
                    "2024-01-01 00:00:00",
                    &format!("o{w}-{n}"),
                );
                match client.call(&req).await {
                    Ok(outcome) => {
                        acked.push((
                            outcome.reply().request_id.clone().unwrap(),
                            format!("FI-o{w}-{n}"),
                        ));
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(ClientError::Top { error, .. }) => {
                        assert!(
                            error.sub_code.as_deref().unwrap_or("").starts_with("isp."),
                            "{error:?}"
                        );
                        assert_eq!(error.code, 15);
                        isp += 1;
                        refusals.fetch_add(1, Ordering::Relaxed);
                        // Pace retries like a client backing off, not a synchronisation.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(other) => panic!("a call failed other than with an isp. error: {other}"),
                }
            }
            (acked, isp)
        }));
    }
    let calls_flow = until(Duration::from_secs(30), || {
        acks.load(Ordering::Relaxed) >= 50
    })
    .await;
    assert!(calls_flow, "calls were not acknowledged before the outage");
    server.stop();
    let http = reqwest::Client::new();
    let not_ready = eventually(|| async {
        http.get(format!("{}/readyz", app.base))
            .send()
            .await
            .map(|r| r.status() == 503)
            .unwrap_or(false)
    })
    .await;
    assert!(
        not_ready,
        "/readyz kept answering ready while the database was down"
    );
    let refused_meanwhile = until(Duration::from_secs(30), || {
        refusals.load(Ordering::Relaxed) >= 20
    })
    .await;
    assert!(
        refused_meanwhile,
        "calls were not refused during the outage"
    );
    server.start();
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gateway did not recover");
    let before = acks.load(Ordering::Relaxed);
    let flowing_again = until(Duration::from_secs(30), || {
        acks.load(Ordering::Relaxed) >= before + 50
    })
    .await;
    assert!(
        flowing_again,
        "calls were not acknowledged after the recovery"
    );
    stop.store(true, Ordering::Relaxed);

    let mut acked = Vec::new();
    let mut refused = 0;
    for w in workers {
        let (a, isp) = w.await.unwrap();
        acked.extend(a);
        refused += isp;
    }
    assert!(refused > 0, "no call was refused during the outage");
    assert!(!acked.is_empty());
    let ids: Vec<String> = acked.iter().map(|(id, _)| id.clone()).collect();
    let missing = app.store.inbox_missing(&ids).await.unwrap();
    assert!(
        missing.is_empty(),
        "{} acknowledged calls lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    for (_, loan) in acked.iter().step_by(7) {
        assert_eq!(app.loan(loan).await["status"], "NORMAL");
    }
    // Served again, unaided.
    assert!(app
        .client()
        .call(&callback("P-after", "IN_PROCESSING"))
        .await
        .unwrap()
        .is_accepted());
}

/// Polls `done` every 10 ms until it holds or `limit` passes; whether it held.
async fn until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}
