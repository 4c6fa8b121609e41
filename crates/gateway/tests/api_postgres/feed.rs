//! The event feed with two gateway instances committing at once on one PostgreSQL database:
//! a reader following it never skips an event, and a waiting reader wakes for either instance.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

async fn get(http: &reqwest::Client, url: String) -> Value {
    let resp = http.get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_tailing_the_feed_of_two_busy_instances_sees_every_event_once_in_order() {
    crate::skip_unless_backend!();
    let a = spawn_app().await;
    let b = a.another_instance().await;
    let http = reqwest::Client::new();
    let mut cursor = 0i64;
    let mut seen: Vec<(i64, String)> = Vec::new();
    for round in 0..10 {
        let done = Arc::new(AtomicBool::new(false));
        // The reader tails instance A with a cursor, while 32 writers call both instances.
        let reader = {
            let (base, http, done) = (a.base.clone(), http.clone(), done.clone());
            tokio::spawn(async move {
                let (mut cursor, mut got) = (cursor, Vec::new());
                let started = Instant::now();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = get(
                        &http,
                        format!("{base}/api/v1/events?after={cursor}&limit=1000"),
                    )
                    .await;
                    let events = page["events"].as_array().unwrap();
                    for e in events {
                        let seq = e["seq"].as_i64().unwrap();
                        assert!(seq > cursor, "seq {seq} after cursor {cursor}");
                        cursor = seq;
                        got.push((seq, e["request_id"].as_str().unwrap().to_string()));
                    }
                    if finished && events.is_empty() {
                        // Caught up, unless some are still held back by a transaction ending.
                        let settled =
                            get(&http, format!("{base}/api/v1/events?after={cursor}&wait=1")).await;
                        if settled["events"].as_array().unwrap().is_empty() {
                            return (cursor, got);
                        }
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "never caught up"
                    );
                }
            })
        };
        let clients = [a.client(), b.client()];
        let writers: Vec<_> = (0..32)
            .map(|w| {
                let c = clients[w % 2].clone();
                tokio::spawn(async move {
                    for i in 0..5 {
                        let rid = format!("n{round}-{w}-{i}");
                        let req = change(
                            &format!("FI-{rid}"),
                            "NEW",
                            "NORMAL",
                            "2024-01-01 00:00:00",
                            &rid,
                        );
                        assert!(c.call(&req).await.unwrap().is_accepted());
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let (next, got) = reader.await.unwrap();
        cursor = next;
        seen.extend(got);
        let expected: HashSet<String> = (0..32)
            .flat_map(|w| (0..5).map(move |i| format!("n{round}-{w}-{i}")))
            .collect();
        let this_round: Vec<&String> = seen
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.starts_with(&format!("n{round}-")))
            .collect();
        let unique: HashSet<&String> = this_round.iter().copied().collect();
        assert_eq!(
            unique.len(),
            this_round.len(),
            "round {round}: an event came twice"
        );
        let missing = expected.iter().filter(|r| !unique.contains(r)).count();
        assert_eq!(
            missing, 0,
            "round {round}: the reader skipped {missing} events"
        );
    }
    // Everything the feed holds, read afresh, is what the tailing reader saw, in order.
    let mut all = Vec::new();
    let mut after = 0i64;
    loop {
        let page = get(
            &http,
            format!("{}/api/v1/events?after={after}&limit=1000", b.base),
        )
        .await;
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        after = page["next_after"].as_i64().unwrap();
        all.extend(events.iter().map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["request_id"].as_str().unwrap().to_string(),
            )
        }));
    }
    assert_eq!(all, seen);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "seq increases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_on_one_instance_returns_within_a_second_of_a_commit_on_the_other() {
    crate::skip_unless_backend!();
    let a = spawn_app().await;
    let b = a.another_instance().await;
    let http = reqwest::Client::new();
    let mut cursor = get(&http, format!("{}/api/v1/events?after=0", a.base)).await["next_after"]
        .as_i64()
        .unwrap();
    for round in 0..3 {
        let waiting = {
            let (base, http) = (a.base.clone(), http.clone());
            tokio::spawn(async move {
                let page = get(
                    &http,
                    format!("{base}/api/v1/events?after={cursor}&wait=30"),
                )
                .await;
                (Instant::now(), page)
            })
        };
        // Stage the commit after the request has begun waiting on instance A.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rid = format!("lp-{round}");
        let outcome = b
            .client()
            .call(&change(
                &format!("FI-{rid}"),
                "NEW",
                "NORMAL",
                "2024-01-01 00:00:00",
                &rid,
            ))
            .await
            .unwrap();
        let committed = Instant::now();
        assert!(outcome.is_accepted());
        let (answered, page) = waiting.await.unwrap();
        let late = answered.saturating_duration_since(committed);
        assert!(
            late < Duration::from_secs(1),
            "answered {late:?} after the commit"
        );
        assert_eq!(page["events"][0]["request_id"], rid.as_str(), "{page}");
        let next = page["next_after"].as_i64().unwrap();
        assert!(next > cursor);
        cursor = next;
    }
}
