//! Concurrent duplicates apply once; concurrent conflicts leave one consistent state.

use std::collections::HashSet;

use futures_util::future::join_all;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_calls_with_one_request_id_apply_once_and_get_the_same_answer() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let client = app.client();
    let req = change(
        "FI-C1",
        "NEW",
        "OVERDUE",
        "2024-01-01 00:00:00",
        "same-request",
    );
    let answers = join_all((0..50).map(|_| {
        let c = client.clone();
        let r = req.clone();
        async move { c.call(&r).await.unwrap() }
    }))
    .await;
    let bodies: HashSet<String> = answers
        .iter()
        .map(|a| serde_json::to_string(&a.reply().response).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "answers differ: {bodies:?}");
    assert!(answers.iter().all(|a| a.is_accepted()));

    let loan = app.loan("FI-C1").await;
    let outcomes: Vec<&str> = loan["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 50, "every call is recorded");
    assert_eq!(
        outcomes.iter().filter(|o| **o == "applied").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "duplicate").count(), 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_conflicting_callbacks_leave_a_consistent_state() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let client = app.client();
    client
        .call(&callback("P-C2", "IN_PROCESSING"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let statuses = ["SUCCESS", "FAIL", "IN_PROCESSING"];
    let answers = join_all((0..50).map(|i| {
        let c = client.clone();
        let status = statuses[i % 3];
        async move { (status, c.call(&callback("P-C2", status)).await.unwrap()) }
    }))
    .await;
    let process = app.process("wzzx", "CREDIT", "P-C2").await;
    let final_status = process["status"].as_str().unwrap().to_string();
    assert!(
        final_status == "SUCCESS" || final_status == "FAIL",
        "{final_status}"
    );
    for (status, answer) in &answers {
        if *status == final_status || *status == "IN_PROCESSING" {
            assert!(
                answer.is_accepted(),
                "{status} after {final_status} must be acknowledged"
            );
        } else {
            assert_eq!(
                answer.failure().unwrap().code,
                "TERMINAL_STATUS_CONFLICT",
                "{status} vs {final_status}"
            );
        }
    }
    let history = process["history"].as_array().unwrap();
    assert_eq!(history.len(), 51);
    let terminal_applied: Vec<&serde_json::Value> = history
        .iter()
        .filter(|h| h["outcome"] == "applied" && h["status"] != "IN_PROCESSING")
        .collect();
    assert_eq!(
        terminal_applied.len(),
        1,
        "exactly one terminal status was applied"
    );
    assert_eq!(terminal_applied[0]["status"], final_status.as_str());
}
