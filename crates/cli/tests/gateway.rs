//! The `loanwire` binary as an operator and a partner use it: `serve --sandbox`, `call`,
//! `app create` while the gateway runs, the read commands, and a SIGTERM that loses nothing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

mod common;

use common::*;

#[test]
fn a_partner_can_call_the_sandbox_and_an_operator_can_read_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let g = start(dir.path());
    assert!(g.url.ends_with("/router/rest"), "{}", g.url);

    let (code, out, err) = run(
        &g,
        &[
            "call",
            "idle-loan-callback",
            "--user",
            "3",
            "--user-id",
            "3",
            "--status",
            "IN_PROCESSING",
            "--type",
            "CREDIT",
            "--process-no",
            "P-cli",
            "--channel-id",
            "wzzx",
            "--fund-products",
            "a,b",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"success\": true"), "{out}");

    let (code, out, err) = run(
        &g,
        &[
            "call",
            "xfd-loan-change",
            "--loan-apply-no",
            "FI-cli",
            "--before-status",
            "NEW",
            "--after-status",
            "OVERDUE",
            "--change-time",
            "2024-01-01 00:00:00",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("request_id: "),
        "a generated request_id is printed: {err}"
    );

    // A business refusal: exit 3 and an explanation.
    let (code, _, err) = run(
        &g,
        &[
            "call",
            "idle-loan-callback",
            "--user",
            "4",
            "--user-id",
            "4",
            "--status",
            "SUCCESS",
            "--type",
            "CREDIT",
            "--process-no",
            "P-cli",
            "--channel-id",
            "wzzx",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("USER_MISMATCH"), "{err}");

    // A TOP error: exit 1 and whether a retry helps.
    let (code, out, err) = run(
        &g,
        &[
            "call",
            "raw",
            "alibaba.idle.interact.loan.callback",
            "user=3",
        ],
    );
    assert_eq!(code, 1);
    assert!(out.contains("error_response"), "{out}");
    assert!(err.contains("40") && err.contains("will not help"), "{err}");

    // An app created by another process while the gateway runs works at once.
    let created = bin()
        .args([
            "app",
            "create",
            "--name",
            "late",
            "--channels",
            "wzzx",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let app: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let (code, out, err) = run_as(
        &g,
        app["app_key"].as_str().unwrap(),
        app["secret"].as_str().unwrap(),
        &[
            "call",
            "idle-loan-callback",
            "--user",
            "9",
            "--user-id",
            "9",
            "--status",
            "SUCCESS",
            "--type",
            "LOAN",
            "--process-no",
            "P-late",
            "--channel-id",
            "wzzx",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    // SIGTERM: a graceful stop.
    let status = Command::new("kill")
        .args(["-TERM", &g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut g = g;
    let exit = g.child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");

    let g = start(dir.path());
    let (code, out, _) = run(&g, &["process", "show", "wzzx", "CREDIT", "P-cli"]);
    assert_eq!(code, 0);
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["status"], "IN_PROCESSING");
    assert_eq!(p["fund_products"], serde_json::json!(["a", "b"]));
    assert_eq!(p["history"].as_array().unwrap().len(), 2);

    let (code, out, _) = run(&g, &["loan", "show", "FI-cli"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"status\": \"OVERDUE\""), "{out}");

    let (code, out, _) = run(&g, &["inbox", "--outcome", "refused"]);
    assert_eq!(code, 0);
    let page: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["records"].as_array().unwrap().len(), 2, "{out}");

    let (code, _, err) = run(&g, &["loan", "show", "NOPE"]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
}

#[test]
fn bad_configuration_is_refused_at_start_with_a_clear_message() {
    let out = bin()
        .args(["serve", "--listen", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "max_body_bytes = \"big\"\n").unwrap();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_body_bytes"));
}

#[test]
fn sigterm_stops_within_the_grace_even_with_a_half_sent_request_open() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let mut g = start_with(dir.path(), &[("LOANWIRE_SHUTDOWN_GRACE_SECS", "2")]);
    let addr = g
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/router/rest")
        .to_string();
    // A request whose body never finishes: the gateway would wait 30 s (body_timeout_secs).
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"POST /router/rest HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nuser=3")
        .unwrap();
    // The gateway has the request once a normal call on another connection is answered after it.
    send_callback(&g, "P-term");
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &g.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = g.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = signalled.elapsed();
    assert!(exit.success(), "{exit:?}");
    assert!(
        took < Duration::from_secs(8),
        "took {took:?} with a 2 s grace"
    );
    drop(half);
}

#[test]
fn a_data_directory_without_a_database_is_refused_unless_init_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("typo");
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&data.join("loanwire.db").display().to_string()) && err.contains("--init"),
        "{err}"
    );
    assert!(!data.exists(), "nothing is created without --init");
    let out = bin()
        .args(["app", "list", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no loanwire database"));
    assert!(!data.exists(), "reading apps creates nothing");
    let out = bin()
        .args(["app", "create", "--name", "Bank A", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        data.join("loanwire.db").exists(),
        "app create sets a gateway up"
    );
}

#[test]
fn out_of_file_descriptors_the_gateway_backs_off_and_serves_again_once_idle_sockets_close() {
    use std::time::{Duration, Instant};
    // The gateway under a limit of 64 open files, of which idle sockets take the rest.
    let cmd = bin_after("ulimit -n 64");
    let dir = tempfile::tempdir().unwrap();
    let g = start_cmd(cmd, dir.path(), &[("LOANWIRE_HEADER_TIMEOUT_SECS", "1")]);
    let addr = g
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/router/rest")
        .to_string();
    let idle: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(
        idle.len() > 64,
        "the kernel queued the connections the gateway could not accept"
    );
    // Once the idle sockets time out, a call gets through.
    let started = Instant::now();
    send_callback(&g, "P-fd");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn events_tail_prints_one_event_a_line_and_follow_keeps_going_across_a_restart() {
    use std::io::BufRead;
    use std::sync::mpsc;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so that the restarted gateway is where the follower looks.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let token = ("LOANWIRE_ADMIN_TOKEN", "tail-test-token-0123456789");
    let g = start_on(bin(), &listen, dir.path(), &[token]);
    send_callback(&g, "P-t1");
    send_callback(&g, "P-t2");
    let (code, out, err) = run(&g, &["events", "tail"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[1]["subject"]["process_no"], "P-t2");
    let after = lines[0]["seq"].as_i64().unwrap().to_string();
    let (code, out, _) = run(
        &g,
        &[
            "events",
            "tail",
            "--after",
            &after,
            "--types",
            "loan.changed",
        ],
    );
    assert_eq!((code, out.as_str()), (0, ""), "no loan.changed events");

    let mut follower = bin()
        .args(["events", "tail", "--follow", "--after", &after])
        .env("LOANWIRE_URL", &g.url)
        .env("LOANWIRE_ADMIN_TOKEN", &g.admin_token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next_line = || {
        lines_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("a followed event")
    };
    assert!(next_line().contains("P-t2"));
    send_callback(&g, "P-t3");
    assert!(next_line().contains("P-t3"));
    // The gateway stops and comes back on the same address: the follower carries on.
    let mut g = g;
    assert!(Command::new("kill")
        .args(["-TERM", &g.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    g.child.wait().unwrap();
    let g = start_on(bin(), &listen, dir.path(), &[token]);
    send_callback(&g, "P-t4");
    assert!(next_line().contains("P-t4"));
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn after_kill_9_under_load_on_sqlite_every_acknowledged_change_has_its_event_and_every_event_its_call(
) {
    kill_9_under_load(None);
}

#[test]
fn after_kill_9_under_load_on_postgresql_every_acknowledged_change_has_its_event_and_every_event_its_call(
) {
    if let Some(base) = loanwire_testkit::pg_url() {
        kill_9_under_load(Some(loanwire_testkit::fresh_pg_schema(&base)));
    }
}

/// A gateway killed with SIGKILL while 16 clients send loan changes, then restarted: its feed
/// and its inbox agree with what the clients were told.
fn kill_9_under_load(database: Option<String>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut envs = vec![("LOANWIRE_ADMIN_TOKEN", "kill-test-token-0123456789")];
    // A fixed test key: PostgreSQL needs one, and the restart must have the same.
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    if let Some(url) = &database {
        envs.push(("LOANWIRE_DATABASE_URL", url));
        envs.push(("LOANWIRE_MASTER_KEY", key));
    }
    let mut g = start_on(bin(), &listen, dir.path(), &envs);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    loanwire_client::install_crypto_provider();
    let client = loanwire_client::TopClient::builder(&g.url, &g.app_key, &g.secret)
        .retry(loanwire_client::RetryPolicy::none())
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (client, acked, count) = (client.clone(), acked.clone(), count.clone());
            runtime.spawn(async move {
                for i in 0.. {
                    let rid = format!("k{w}-{i}");
                    let req = loanwire_api::XfdLoanChangeNotifyRequest {
                        param_xfd_loan_change_external_request:
                            loanwire_api::XfdLoanChangeExternalRequest {
                                after_status: "NORMAL".into(),
                                before_status: "NEW".into(),
                                change_time: loanwire_top::TopDateTime::parse(
                                    "2024-01-01 00:00:00",
                                )
                                .unwrap(),
                                customer_id: None,
                                institution_loan_no: None,
                                loan_apply_no: format!("FI-{rid}"),
                                request_id: rid.clone(),
                            },
                    };
                    // Calls cut off by the kill fail; only answered ones count.
                    match client.call(&req).await {
                        Ok(o) if o.is_accepted() => {
                            acked.lock().unwrap().push(rid);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while count.load(Ordering::SeqCst) < 300 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "calls are not being answered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(Command::new("kill")
        .args(["-KILL", &g.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    g.child.wait().unwrap();
    for w in workers {
        runtime.block_on(w).unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let g = start_on(bin(), &listen, dir.path(), &envs);
    let (code, out, err) = run(&g, &["events", "tail"]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let with_event: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|r| !with_event.contains(r.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged changes have no event, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    // Every event's call is in the inbox as applied: its loan note's history says so.
    for e in &events {
        let no = e["subject"]["loan_apply_no"].as_str().unwrap();
        let (code, out, err) = run(&g, &["loan", "show", no]);
        assert_eq!(code, 0, "{err}");
        let view: serde_json::Value = serde_json::from_str(&out).unwrap();
        let applied = view["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["request_id"] == e["request_id"] && h["outcome"] == "applied");
        assert!(applied, "event {} has no applied call: {view}", e["id"]);
    }
    assert!(events.len() >= acked.len());
}

#[test]
fn files_are_private_whatever_the_umask_and_the_sandbox_stays_a_sandbox() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A gateway started under the most permissive umask.
    let cmd = bin_after("umask 000");
    let mut g = start_cmd(cmd, &data, &[]);
    send_callback(&g, "P-mode");
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.clone()), 0o700, "data directory");
    assert_eq!(mode(data.join("loanwire.db")), 0o600, "database");
    assert_eq!(mode(data.join("loanwire.db-wal")), 0o600, "WAL");
    let (sandbox_key, sandbox_secret) = (g.app_key.clone(), g.secret.clone());
    assert!(Command::new("kill")
        .args(["-TERM", &g.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    g.child.wait().unwrap();

    // The same directory without --sandbox: the demo app is refused (code 29).
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("LOANWIRE_ADMIN_TOKEN", "no-sandbox-token-0123456789")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the address in the banner")
        .to_string();
    let out = bin()
        .args([
            "call",
            "idle-loan-callback",
            "--user",
            "3",
            "--user-id",
            "3",
            "--status",
            "SUCCESS",
            "--type",
            "CREDIT",
            "--process-no",
            "P-mode",
            "--channel-id",
            "wzzx",
        ])
        .env("LOANWIRE_URL", &url)
        .env("LOANWIRE_APP_KEY", &sandbox_key)
        .env("LOANWIRE_APP_SECRET", &sandbox_secret)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the demo app was taken outside the sandbox: {said}"
    );
    assert!(said.contains("29") && said.contains("--sandbox"), "{said}");

    // A sandbox on an address other machines reach needs saying so.
    let out = bin()
        .args(["serve", "--sandbox", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sandbox-public"));
}

#[test]
fn app_create_on_postgresql_without_a_master_key_refuses_rather_than_seal_with_a_lost_key() {
    let Some(base) = loanwire_testkit::pg_url() else {
        return;
    };
    let url = loanwire_testkit::fresh_pg_schema(&base);
    let out = bin()
        .args(["app", "create", "--name", "Bank A", "--database", &url])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an app was created without a master key"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key"), "{err}");
    let out = bin()
        .args(["app", "create", "--name", "Bank A", "--database", &url])
        .env(
            "LOANWIRE_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
