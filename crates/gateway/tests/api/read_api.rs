//! The operators' read API, health and metrics.

use crate::helpers::*;

#[tokio::test]
async fn the_read_api_needs_the_admin_token() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/api/v1/inbox", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .get(format!("{}/api/v1/inbox", app.base))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, _) = app.read("/api/v1/inbox").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_a_bootstrap_token_only_named_tokens_open_the_read_api() {
    crate::skip_unless_backend!();
    let app = spawn_app_with(|c| c.admin_token = None).await;
    let (status, body) = app.read("/api/v1/inbox").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("loanwire token create"),
        "{body}"
    );
    let by = loanwire_gateway::operators::cli_actor();
    let (_, token) = loanwire_gateway::operators::create(
        app.store.as_ref(),
        "reader",
        loanwire_store::Role::Viewer,
        &by,
    )
    .await
    .unwrap();
    let (status, body) = app
        .admin(reqwest::Method::GET, "/api/v1/inbox", &token, None)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn unknown_loans_and_processes_are_404() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    assert_eq!(app.read("/api/v1/loans/NOPE").await.0, 404);
    assert_eq!(app.read("/api/v1/processes/a/b/c").await.0, 404);
}

#[tokio::test]
async fn the_inbox_is_newest_first_filterable_and_paginated() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    for i in 0..5 {
        c.call(&callback(&format!("P-in-{i}"), "IN_PROCESSING"))
            .await
            .unwrap()
            .into_result()
            .unwrap();
    }
    c.call(&change(
        "FI-in",
        "NEW",
        "NORMAL",
        "2024-01-01 00:00:00",
        "in",
    ))
    .await
    .unwrap()
    .into_result()
    .unwrap();
    let _ = c.call(&callback("P-in-0", "DONE")).await;

    let (_, page) = app.read("/api/v1/inbox?limit=3").await;
    let recs = page["records"].as_array().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["outcome"], "refused", "newest first");
    let ids: Vec<i64> = recs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    let next = page["next_before"].as_i64().unwrap();
    let (_, page2) = app
        .read(&format!("/api/v1/inbox?limit=3&before={next}"))
        .await;
    let ids2: Vec<i64> = page2["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids2.len(), 3);
    assert!(ids2.iter().all(|i| *i < next));

    let (_, changes) = app.read(&format!("/api/v1/inbox?method={CHANGE}")).await;
    assert_eq!(changes["records"].as_array().unwrap().len(), 1);
    let (_, refused) = app.read("/api/v1/inbox?outcome=refused").await;
    assert_eq!(refused["records"].as_array().unwrap().len(), 1);
    let (_, mine) = app
        .read(&format!("/api/v1/inbox?app={}", app.app_key))
        .await;
    assert_eq!(mine["records"].as_array().unwrap().len(), 7);
    assert_eq!(app.read("/api/v1/inbox?outcome=weird").await.0, 400);
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    app.client()
        .call(&callback("P-m", "IN_PROCESSING"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"loanwire_calls_total{method="alibaba.idle.interact.loan.callback",outcome="applied"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("loanwire_call_latency_seconds_bucket"));
    assert!(metrics.contains("loanwire_commit_batch_size_count"));
    // The call went through the writer: its wait in the queue and its batch's commit were timed
    // (both backends have these stages).
    for stage in ["queue", "commit"] {
        let prefix = format!("loanwire_store_stage_seconds_count{{stage=\"{stage}\"}} ");
        let count: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
            .parse()
            .unwrap();
        assert!(count >= 1.0, "{stage}: {count}");
    }
}

#[tokio::test]
async fn the_inbox_check_names_the_calls_it_does_not_hold() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let r = app
        .client()
        .call(&callback("P-chk", "IN_PROCESSING"))
        .await
        .unwrap();
    let known = r.reply().request_id.clone().unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/inbox/check", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!([known, "never-sent"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(v["checked"], 2);
    assert_eq!(v["missing"], serde_json::json!(["never-sent"]));
}

#[tokio::test]
async fn a_bad_limit_is_a_json_error_and_zero_is_out_of_range() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    for query in ["limit=many", "limit=0", "limit=100000", "before=x"] {
        let (status, body) = app.read(&format!("/api/v1/inbox?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{query}: {body}"
        );
    }
    let (status, body) = app.read("/api/v1/inbox?limit=1").await;
    assert_eq!(status, 200, "{body}");
}
