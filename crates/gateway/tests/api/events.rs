//! The event feed end to end: what each call leaves in it, its shape, long-polling, retention.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

impl TestApp {
    /// The feed after `after`, waiting up to `wait` seconds for something to come.
    pub async fn feed(&self, query: &str) -> (u16, Value) {
        self.read(&format!("/api/v1/events?{query}")).await
    }

    /// Events after `after` until one with `request_id` is among them (bounded): a call
    /// applied last shows that every event committed before it is visible too.
    pub async fn events_through(&self, after: i64, request_id: &str) -> Vec<Value> {
        let started = Instant::now();
        let (mut cursor, mut events) = (after, Vec::new());
        loop {
            let (status, page) = self
                .feed(&format!("after={cursor}&limit=1000&wait=2"))
                .await;
            assert_eq!(status, 200, "{page}");
            for e in page["events"].as_array().unwrap() {
                events.push(e.clone());
            }
            cursor = page["next_after"].as_i64().unwrap();
            if events.iter().any(|e| e["request_id"] == request_id) {
                return events;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no event for {request_id}: {events:?}"
            );
        }
    }
}

/// The keys of a JSON object in the order they were written.
fn keys(raw: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(raw).unwrap();
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn an_applied_loan_change_leaves_one_event_in_the_spec_shape() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let outcome = app
        .client()
        .call(&change(
            "FI-ev1",
            "NEW",
            "OVERDUE",
            "2024-01-01 00:00:00",
            "R-ev1",
        ))
        .await
        .unwrap();
    assert!(outcome.is_accepted());
    let events = app.events_through(0, "R-ev1").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(
        keys(&e.to_string()),
        [
            "id",
            "seq",
            "type",
            "recorded_at",
            "app_key",
            "request_id",
            "subject",
            "data"
        ]
    );
    assert!(e["id"].as_str().unwrap().starts_with("evt_"), "{e}");
    assert_eq!(
        e["id"].as_str().unwrap().len(),
        30,
        "evt_ and a 26-character ULID: {e}"
    );
    assert_eq!(e["type"], "loan.changed");
    assert_eq!(e["app_key"], app.app_key.as_str());
    let at = e["recorded_at"].as_str().unwrap();
    assert!(
        at.ends_with('Z') && at.len() == 24 && at.contains('T'),
        "{at}"
    );
    assert_eq!(
        e["subject"],
        serde_json::json!({"kind": "loan", "loan_apply_no": "FI-ev1"})
    );
    assert_eq!(
        keys(&e["data"].to_string()),
        [
            "before_status",
            "after_status",
            "previous_status",
            "change_time",
            "customer_id",
            "institution_loan_no",
            "needs_reconciliation",
            "reconciliation_reasons"
        ]
    );
    assert_eq!(e["data"]["previous_status"], Value::Null);
    assert_eq!(e["data"]["after_status"], "OVERDUE");
    assert_eq!(e["data"]["change_time"], "2024-01-01 00:00:00");
    assert_eq!(e["data"]["needs_reconciliation"], false);
    assert_eq!(e["data"]["reconciliation_reasons"], serde_json::json!([]));
}

#[tokio::test]
async fn an_applied_callback_leaves_a_process_event_with_the_previous_status() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let first = app
        .client()
        .call(&callback("P-ev", "IN_PROCESSING"))
        .await
        .unwrap();
    let second = app
        .client()
        .call(&callback("P-ev", "SUCCESS"))
        .await
        .unwrap();
    let last_id = second.reply().request_id.clone().unwrap();
    let events = app.events_through(0, &last_id).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0]["request_id"],
        first.reply().request_id.clone().unwrap().as_str()
    );
    let e = &events[1];
    assert_eq!(e["type"], "process.changed");
    assert_eq!(
        e["subject"],
        serde_json::json!({"kind": "process", "channel_id": "wzzx", "type": "CREDIT", "process_no": "P-ev"})
    );
    assert_eq!(
        keys(&e["data"].to_string()),
        [
            "status",
            "previous_status",
            "user",
            "user_id",
            "submit_time",
            "complete_time",
            "fund_products"
        ]
    );
    assert_eq!(e["data"]["status"], "SUCCESS");
    assert_eq!(e["data"]["previous_status"], "IN_PROCESSING");
    assert_eq!(e["data"]["user_id"], 3);
    assert_eq!(e["data"]["fund_products"], serde_json::json!(["fund-a"]));
    assert!(events[0]["seq"].as_i64() < e["seq"].as_i64());
}

#[tokio::test]
async fn duplicate_stale_and_refused_calls_leave_no_event() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    // (loan change, accepted?) in order: applied, replay, repeated status, older change,
    // applied, forbidden transition, request_id conflict.
    let sent = [
        ("NEW", "NORMAL", "2024-01-02 00:00:00", "R-1", true),
        ("NEW", "NORMAL", "2024-01-02 00:00:00", "R-1", true),
        ("NEW", "NORMAL", "2024-01-03 00:00:00", "R-2", true),
        ("NEW", "OVERDUE", "2024-01-01 00:00:00", "R-3", true),
        ("NORMAL", "CANCELLED", "2024-01-04 00:00:00", "R-4", true),
        ("CANCELLED", "NORMAL", "2024-01-05 00:00:00", "R-5", false),
        ("NEW", "OVERDUE", "2024-01-06 00:00:00", "R-1", false),
    ];
    for (before, after, at, rid, accepted) in sent {
        let outcome = c
            .call(&change("FI-ne", before, after, at, rid))
            .await
            .unwrap();
        assert_eq!(outcome.is_accepted(), accepted, "{rid} {before}->{after}");
    }
    let first = c.call(&callback("P-ne", "SUCCESS")).await.unwrap();
    let again = c.call(&callback("P-ne", "SUCCESS")).await.unwrap(); // a duplicate
    let marker = c
        .call(&change(
            "FI-marker",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "R-m",
        ))
        .await
        .unwrap();
    assert!(first.is_accepted() && again.is_accepted() && marker.is_accepted());
    let events = app.events_through(0, "R-m").await;
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    // R-1 applied, R-4 applied (NORMAL → CANCELLED), the first callback, the marker.
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[0], "R-1");
    assert_eq!(ids[1], "R-4");
    assert_eq!(ids[3], "R-m");
}

#[tokio::test]
async fn a_waiting_request_returns_as_soon_as_an_event_commits() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let (_, page) = app.feed("after=0").await;
    let cursor = page["next_after"].as_i64().unwrap();
    let waiting = {
        let (base, http) = (app.base.clone(), reqwest::Client::new());
        tokio::spawn(async move {
            let started = Instant::now();
            let resp = http
                .get(format!("{base}/api/v1/events?after={cursor}&wait=30"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            (started.elapsed(), body)
        })
    };
    // Stage the call after the request has begun waiting; the answer must not wait 30 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let committed = Instant::now();
    let outcome = app
        .client()
        .call(&change(
            "FI-lp",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "R-lp",
        ))
        .await
        .unwrap();
    assert!(outcome.is_accepted());
    let (took, body) = waiting.await.unwrap();
    assert!(committed.elapsed() < Duration::from_secs(5), "{took:?}");
    assert!(
        took < Duration::from_secs(10),
        "the long-poll waited {took:?}"
    );
    assert_eq!(body["events"][0]["request_id"], "R-lp", "{body}");
}

#[tokio::test]
async fn an_empty_wait_answers_when_it_runs_out_and_bad_parameters_are_json_errors() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let started = Instant::now();
    let (status, page) = app.feed("after=0&wait=1").await;
    assert_eq!(status, 200, "{page}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(page, serde_json::json!({"events": [], "next_after": 0}));
    for query in [
        "limit=0",
        "limit=1001",
        "after=-1",
        "types=loan.deleted",
        "after=x",
    ] {
        let (status, body) = app.feed(query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
    }
}

#[tokio::test]
async fn a_cursor_older_than_the_retention_gets_410_and_saying_where_to_start() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    for i in 0..3 {
        let rid = format!("R-old{i}");
        let outcome = app
            .client()
            .call(&change(
                &format!("FI-old{i}"),
                "NEW",
                "NORMAL",
                "2024-01-01 00:00:00",
                &rid,
            ))
            .await
            .unwrap();
        assert!(outcome.is_accepted());
    }
    app.events_through(0, "R-old2").await;
    let pruned = app
        .store
        .prune_events(loanwire_top::time::now_ms() + 60_000)
        .await
        .unwrap();
    assert_eq!(pruned, 3);
    let (status, body) = app.feed("after=0").await;
    assert_eq!(status, 410, "{body}");
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("retention"), "{why}");
    let restart_at = why.rsplit("after=").next().unwrap().trim().to_string();
    let (status, body) = app.feed(&format!("after={restart_at}")).await;
    assert_eq!(status, 200, "{body}");
}
