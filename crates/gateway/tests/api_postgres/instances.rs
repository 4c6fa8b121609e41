//! Two gateway instances on one PostgreSQL database: the rules hold across them.

use futures_util::future::join_all;
use loanwire_domain::DomainConfig;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_of_one_request_id_split_across_two_instances_apply_once() {
    crate::skip_unless_backend!();
    let a = spawn_app().await;
    let b = a.another_instance().await;
    let req = change(
        "FI-2i",
        "NEW",
        "OVERDUE",
        "2024-01-01 00:00:00",
        "split-request",
    );
    let clients = [a.client(), b.client()];
    let answers = join_all((0..50).map(|i| {
        let c = clients[i % 2].clone();
        let r = req.clone();
        async move { c.call(&r).await.unwrap() }
    }))
    .await;
    let bodies: std::collections::HashSet<String> = answers
        .iter()
        .map(|x| serde_json::to_string(&x.reply().response).unwrap())
        .collect();
    assert_eq!(
        bodies.len(),
        1,
        "both instances give the same answer: {bodies:?}"
    );
    let outcomes = history_outcomes(&a.loan("FI-2i").await);
    assert_eq!(outcomes.len(), 50);
    assert_eq!(
        outcomes.iter().filter(|o| *o == "applied").count(),
        1,
        "{outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_changes_across_two_instances_end_in_one_state_the_history_explains() {
    crate::skip_unless_backend!();
    let a = spawn_app().await;
    let b = a.another_instance().await;
    a.client()
        .call(&change(
            "FI-cf",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "start",
        ))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let targets = ["OVERDUE", "CLEARED", "WRITTEN_OFF", "CANCELLED", "NEW"];
    let clients = [a.client(), b.client()];
    join_all((0..40).map(|i| {
        let c = clients[i % 2].clone();
        let after = targets[i % targets.len()];
        let at = format!("2024-01-02 00:{:02}:00", i % 60);
        async move {
            c.call(&change("FI-cf", "NORMAL", after, &at, &format!("cf-{i}")))
                .await
                .unwrap()
        }
    }))
    .await;

    let loan = b.loan("FI-cf").await;
    let rules = DomainConfig::default();
    let mut status = String::new();
    let mut last_applied_time = String::new();
    for h in loan["history"].as_array().unwrap() {
        if h["outcome"] != "applied" {
            continue;
        }
        let after = h["after_status"].as_str().unwrap();
        let at = h["change_time"].as_str().unwrap();
        if !status.is_empty() {
            assert!(
                rules.loan_transition_allowed(&status, after),
                "history applies {status} → {after}"
            );
            assert!(
                at >= last_applied_time.as_str(),
                "an older change was applied after a newer one"
            );
        }
        status = after.to_string();
        last_applied_time = at.to_string();
    }
    assert_eq!(
        loan["status"],
        status.as_str(),
        "the state is the last applied change"
    );
    assert_eq!(
        history_outcomes(&loan).len(),
        41,
        "every call is in the history"
    );
}

#[tokio::test]
async fn an_app_disabled_through_one_instance_is_refused_by_the_other() {
    crate::skip_unless_backend!();
    let a = spawn_app().await;
    let b = a.another_instance().await;
    assert!(b
        .client()
        .call(&callback("P-2d", "IN_PROCESSING"))
        .await
        .unwrap()
        .is_accepted());
    loanwire_gateway::apps::set_enabled(
        a.store.as_ref(),
        &a.app_key,
        false,
        &loanwire_gateway::operators::cli_actor(),
    )
    .await
    .unwrap();
    let refused = eventually(|| async {
        matches!(b.client().call(&callback("P-2d", "IN_PROCESSING")).await, Err(e) if e.top_error().is_some_and(|t| t.code == 29))
    })
    .await;
    assert!(refused);
}
