//! NATS JetStream (SPEC 3.4): a consumer receives every event once, in `seq` order, with
//! `Nats-Msg-Id` = the event id — also across a broker restart (a broker of the test's own,
//! never the shared one). Without a broker, each test says SKIPPED and why.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::*;
use crate::receiver::{free_port, within};

/// A `nats-server -js` of the test's own, on a free port with its own store directory.
struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Option<Broker> {
        let b = Broker {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        b.restarted()
    }

    fn restarted(mut self) -> Option<Broker> {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => self.child = Some(c),
            Err(e) => {
                skipped(&format!("nats-server cannot be started here ({e})"));
                return None;
            }
        }
        // Bounded: up to 5 s for the port to open.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Some(self);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not open its port");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every message of the stream, in stream order: (event, Nats-Msg-Id, subject).
async fn read_stream(url: &str, stream: &str) -> Vec<(Value, String, String)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let mut s = js.get_stream(stream).await.unwrap();
    let count = s.info().await.unwrap().state.messages;
    let consumer = s
        .create_consumer(jetstream::consumer::pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut messages = consumer
        .fetch()
        .max_messages(count as usize)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        out.push((
            serde_json::from_slice(&m.payload).unwrap(),
            id,
            m.subject.to_string(),
        ));
    }
    out
}

async fn stream_count(url: &str, stream: &str) -> u64 {
    let Ok(client) = async_nats::connect(url).await else {
        return 0;
    };
    let js = jetstream::new(client);
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
        Err(_) => 0,
    }
}

async fn send(app: &TestApp, tag: &str, n: usize) {
    for i in 0..n {
        let outcome = app
            .client()
            .call(&callback(&format!("P-{tag}-{i}"), "IN_PROCESSING"))
            .await
            .unwrap();
        assert!(outcome.is_accepted(), "{outcome:?}");
    }
}

/// What the feed holds, in seq order: (id, seq).
async fn feed(app: &TestApp) -> Vec<(String, i64)> {
    let (_, page) = app.read("/api/v1/events?limit=1000").await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["seq"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn assert_stream_is_the_feed(got: &[(Value, String, String)], feed: &[(String, i64)]) {
    let ids: Vec<&str> = got.iter().map(|(_, id, _)| id.as_str()).collect();
    let want: Vec<&str> = feed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, want, "every event once, in seq order");
    for (event, id, subject) in got {
        assert_eq!(event["id"].as_str(), Some(id.as_str()));
        assert_eq!(
            subject,
            &format!("loanwire.{}", event["type"].as_str().unwrap())
        );
    }
}

#[tokio::test]
async fn a_jetstream_consumer_receives_every_event_once_in_seq_order() {
    crate::skip_unless_backend!();
    let Some(broker) = Broker::start() else {
        return;
    };
    let url = broker.url();
    let app = spawn_app_with(|c| {
        c.events.nats = Some(loanwire_gateway::config::NatsConfig {
            url: url.clone(),
            stream: "LOANWIRE".into(),
        })
    })
    .await;
    send(&app, "nats", 25).await;
    let all = within(15, || async { stream_count(&url, "LOANWIRE").await == 25 }).await;
    assert!(
        all,
        "{} of 25 published",
        stream_count(&url, "LOANWIRE").await
    );
    let got = read_stream(&url, "LOANWIRE").await;
    assert_stream_is_the_feed(&got, &feed(&app).await);
}

#[tokio::test]
async fn publishing_rides_out_a_broker_restart_and_resumes_where_it_stopped() {
    crate::skip_unless_backend!();
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let url = broker.url();
    let app = spawn_app_with(|c| {
        c.events.nats = Some(loanwire_gateway::config::NatsConfig {
            url: url.clone(),
            stream: "LW_RESTART".into(),
        })
    })
    .await;
    send(&app, "before", 10).await;
    assert!(
        within(15, || async {
            stream_count(&url, "LW_RESTART").await == 10
        })
        .await
    );

    broker.stop();
    // Calls go on, and the gateway stays ready, while the broker is away.
    send(&app, "during", 10).await;
    let (status, _) = app.read("/readyz").await;
    assert_eq!(status, 200);

    let broker = broker.restarted().expect("the broker starts again");
    let all = within(30, || async {
        stream_count(&url, "LW_RESTART").await == 20
    })
    .await;
    assert!(
        all,
        "{} of 20 published",
        stream_count(&url, "LW_RESTART").await
    );
    let got = read_stream(&url, "LW_RESTART").await;
    assert_stream_is_the_feed(&got, &feed(&app).await);
    drop(broker);
}
