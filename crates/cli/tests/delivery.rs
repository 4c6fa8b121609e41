//! Delivery survives a crash: the gateway killed with SIGKILL while webhooks are in flight and
//! events are being published to NATS; after a restart every event reaches the receiver
//! (`loanwire webhook listen`, which verifies signatures with the `standardwebhooks` library) at
//! least once, and the JetStream stream holds each event once, in `seq` order.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing opened port {port}");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every event id in the feed, in seq order.
fn feed_ids(g: &Gateway) -> Vec<String> {
    let out = bin()
        .args([
            "events",
            "tail",
            "--url",
            &g.url,
            "--admin-token",
            &g.admin_token,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The Nats-Msg-Id of every message in the stream, in stream order.
fn stream_ids(url: &str, stream: &str) -> Vec<String> {
    use futures_util::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let Ok(mut s) = js.get_stream(stream).await else {
            return Vec::new();
        };
        let count = s.info().await.unwrap().state.messages as usize;
        if count == 0 {
            return Vec::new();
        }
        let consumer = s
            .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
            .await
            .unwrap();
        let mut messages = consumer
            .fetch()
            .max_messages(count)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap();
        let mut ids = Vec::new();
        while let Some(m) = messages.next().await {
            let m = m.unwrap();
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .unwrap();
            ids.push(id.to_string());
        }
        ids
    })
}

#[test]
fn after_kill_9_during_delivery_every_event_reaches_the_receiver_and_nats_holds_each_once_in_order()
{
    let nats_port = free_port();
    let nats_dir = tempfile::tempdir().unwrap();
    let broker = match Command::new("nats-server")
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-js",
            "-sd",
        ])
        .arg(nats_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => Killed(c),
        Err(e) => {
            println!("SKIPPED: nats-server cannot be started here ({e})");
            return;
        }
    };
    wait_for_port(nats_port);
    let nats_url = format!("nats://127.0.0.1:{nats_port}");

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("loanwire.toml");
    std::fs::write(
        &conf,
        format!(
            "[events]\nallowed_subnets = [\"127.0.0.0/8\"]\nwebhook_schedule_secs = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nwebhook_timeout_secs = 2\nwebhook_lease_secs = 3\n[events.nats]\nurl = \"{nats_url}\"\nstream = \"LW_KILL\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let conf_env = ("LOANWIRE_CONFIG", conf.to_str().unwrap());
    let listen = format!("127.0.0.1:{}", free_port());
    let g = start_on(bin(), &listen, &data, &[conf_env]);

    // The endpoint, and the receiver: slow, so that deliveries are in flight at the kill.
    let hook_port = free_port();
    let out = bin()
        .args([
            "endpoint",
            "add",
            &format!("http://127.0.0.1:{hook_port}/hooks"),
            "--data-dir",
        ])
        .arg(&data)
        .env("LOANWIRE_CONFIG", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let endpoint: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = endpoint["secret"].as_str().unwrap();
    let mut listener = Killed(
        bin()
            .args([
                "webhook",
                "listen",
                "--port",
                &hook_port.to_string(),
                "--secret",
                secret,
            ])
            .args(["--delay-ms", "300"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let received = received.clone();
        let lines = BufReader::new(listener.0.stdout.take().unwrap()).lines();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                received
                    .lock()
                    .unwrap()
                    .push(v["id"].as_str().unwrap().to_string());
            }
        });
    }
    wait_for_port(hook_port);

    for i in 0..12 {
        send_callback(&g, &format!("P-kill-{i}"));
    }
    // Killed while deliveries wait on the slow receiver.
    let mut g = g;
    g.child.kill().unwrap();
    g.child.wait().unwrap();
    let in_flight_at_kill = received.lock().unwrap().len();
    assert!(in_flight_at_kill < 12, "nothing was in flight at the kill");

    let g = start_on(bin(), &listen, &data, &[conf_env]);
    for i in 0..4 {
        send_callback(&g, &format!("P-after-{i}"));
    }
    let feed = feed_ids(&g);
    assert_eq!(feed.len(), 16);
    let deadline = Instant::now() + Duration::from_secs(40);
    let all = loop {
        let got = received.lock().unwrap().clone();
        if feed.iter().all(|id| got.contains(id)) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let got = received.lock().unwrap().clone();
    assert!(all, "received {} of {}: {got:?}", got.len(), feed.len());

    let deadline = Instant::now() + Duration::from_secs(30);
    let in_stream = loop {
        let ids = stream_ids(&nats_url, "LW_KILL");
        if ids.len() >= feed.len() || Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(in_stream, feed, "NATS holds every event once, in seq order");
    drop(broker);
}
