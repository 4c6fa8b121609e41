//! SPEC 2.2: `alibaba.finance.xfd.loan.change.notify`.

use loanwire_client::Outcome;
use loanwire_gateway::apps::NewApp;
use loanwire_top::TopDateTime;

use crate::helpers::*;

#[tokio::test]
async fn a_first_notification_creates_the_loan_note_and_trace_id_is_the_calls_request_id() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let outcome = app
        .client()
        .call(&change(
            "FI1",
            "NEW",
            "OVERDUE",
            "2024-01-01 00:00:00",
            "r1",
        ))
        .await
        .unwrap();
    let Outcome::Accepted(reply) = outcome else {
        panic!("refused")
    };
    let r = &reply.response.result;
    assert_eq!(
        (
            r.response_code.as_str(),
            r.response_message.as_str(),
            r.success
        ),
        ("SUCCESS", "SUCCESS", true)
    );
    assert_eq!(Some(r.trace_id.clone()), reply.request_id);

    let loan = app.loan("FI1").await;
    assert_eq!(loan["status"], "OVERDUE");
    assert_eq!(loan["app_key"], app.app_key.as_str());
    assert_eq!(loan["customer_id"], "C-1");
    assert_eq!(loan["institution_loan_no"], "I-1");
    assert_eq!(loan["needs_reconciliation"], false);
    assert_eq!(loan["history"][0]["request_id"], "r1");
    assert_eq!(loan["history"][0]["outcome"], "applied");
}

#[tokio::test]
async fn the_same_request_id_with_the_same_content_replays_the_stored_answer() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    let req = change("FI2", "NEW", "NORMAL", "2024-01-01 00:00:00", "r2");
    let first = c.call(&req).await.unwrap();
    let again = c.call(&req).await.unwrap();
    assert_eq!(
        first.reply().response,
        again.reply().response,
        "the stored answer, trace_id included"
    );
    assert_ne!(
        first.reply().request_id,
        again.reply().request_id,
        "each call has its own envelope id"
    );
    assert_eq!(
        history_outcomes(&app.loan("FI2").await),
        vec!["applied", "duplicate"]
    );
}

#[tokio::test]
async fn after_a_restart_a_retry_still_gets_the_exact_first_answer_and_a_conflict_is_still_refused()
{
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let req = change("FI2R", "NEW", "NORMAL", "2024-01-01 00:00:00", "r2r");
    let first = app.client().call(&req).await.unwrap();
    let (dir, config, creds) = app.stop().await;
    let app = spawn_in(dir, config, Some(creds)).await;
    let again = app.client().call(&req).await.unwrap();
    assert_eq!(first.reply().response, again.reply().response);
    let conflicting = change("FI2R", "NORMAL", "OVERDUE", "2024-01-02 00:00:00", "r2r");
    let refused = app.client().call(&conflicting).await.unwrap();
    assert_eq!(refused.failure().unwrap().code, "IDEMPOTENCY_CONFLICT");
    let loan = app.loan("FI2R").await;
    assert_eq!(loan["status"], "NORMAL", "state unchanged");
    assert_eq!(
        history_outcomes(&loan),
        vec!["applied", "duplicate", "refused"]
    );
}

#[tokio::test]
async fn the_same_request_id_with_other_content_is_an_idempotency_conflict() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&change("FI3", "NEW", "NORMAL", "2024-01-01 00:00:00", "r3"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let outcome = c
        .call(&change(
            "FI3",
            "NORMAL",
            "OVERDUE",
            "2024-01-02 00:00:00",
            "r3",
        ))
        .await
        .unwrap();
    assert_eq!(outcome.failure().unwrap().code, "IDEMPOTENCY_CONFLICT");
    assert!(!outcome.reply().response.result.success);
    let loan = app.loan("FI3").await;
    assert_eq!(loan["status"], "NORMAL", "state unchanged");
    assert_eq!(history_outcomes(&loan), vec!["applied", "refused"]);
}

#[tokio::test]
async fn idempotency_is_per_app() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let other = app
        .create_app(NewApp {
            name: "other".into(),
            ..NewApp::default()
        })
        .await;
    app.client()
        .call(&change(
            "FI4a",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "shared",
        ))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let outcome = app
        .client_for(&other)
        .call(&change(
            "FI4b",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "shared",
        ))
        .await
        .unwrap();
    assert!(outcome.is_accepted());
    assert_eq!(app.loan("FI4b").await["status"], "NORMAL");
}

#[tokio::test]
async fn an_older_change_is_stale_and_never_rolls_state_back() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&change("FI5", "NEW", "NORMAL", "2024-01-01 00:00:00", "a"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    c.call(&change(
        "FI5",
        "NORMAL",
        "OVERDUE",
        "2024-02-01 00:00:00",
        "b",
    ))
    .await
    .unwrap()
    .into_result()
    .unwrap();
    let delayed = c
        .call(&change(
            "FI5",
            "OVERDUE",
            "NORMAL",
            "2024-01-15 00:00:00",
            "c",
        ))
        .await
        .unwrap();
    assert!(delayed.is_accepted(), "stale deliveries are acknowledged");
    let loan = app.loan("FI5").await;
    assert_eq!(loan["status"], "OVERDUE");
    assert_eq!(loan["last_change_time"], "2024-02-01 00:00:00");
    assert_eq!(history_outcomes(&loan), vec!["applied", "applied", "stale"]);
}

#[tokio::test]
async fn a_change_time_in_the_future_is_code_50() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let future =
        TopDateTime::from_utc(TopDateTime::now().utc() + chrono::Duration::hours(1)).format();
    let e = app
        .client()
        .call(&change("FI6", "NEW", "NORMAL", &future, "r6"))
        .await
        .unwrap_err();
    let top = e.top_error().unwrap();
    assert_eq!(top.code, 50);
    assert!(top.sub_msg.as_deref().unwrap().contains("change_time"));
}

#[tokio::test]
async fn unknown_statuses_and_no_change_are_code_50() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    let e = c
        .call(&change("FI7", "NEW", "PAID", "2024-01-01 00:00:00", "r7"))
        .await
        .unwrap_err();
    let sub = e.top_error().unwrap().sub_msg.clone().unwrap();
    assert!(
        sub.contains("after_status") && sub.contains("WRITTEN_OFF"),
        "{sub}"
    );
    let e = c
        .call(&change("FI7", "NEW", "NEW", "2024-01-01 00:00:00", "r7b"))
        .await
        .unwrap_err();
    assert_eq!(e.top_error().unwrap().code, 50);
}

#[tokio::test]
async fn a_gap_is_applied_and_flagged_with_the_expected_and_reported_statuses() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&change("FI8", "NEW", "NORMAL", "2024-01-01 00:00:00", "a"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    c.call(&change(
        "FI8",
        "OVERDUE",
        "CLEARED",
        "2024-03-01 00:00:00",
        "b",
    ))
    .await
    .unwrap()
    .into_result()
    .unwrap();
    let loan = app.loan("FI8").await;
    assert_eq!(loan["status"], "CLEARED");
    assert_eq!(loan["needs_reconciliation"], true);
    let reason = &loan["reconciliation_reasons"][0];
    assert_eq!(reason["kind"], "GAP");
    assert_eq!(reason["expected_status"], "NORMAL");
    assert_eq!(reason["reported_status"], "OVERDUE");
    assert_eq!(reason["request_id"], "b");
}

#[tokio::test]
async fn a_reversal_is_applied_and_flagged() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&change("FI9", "NEW", "CLEARED", "2024-01-01 00:00:00", "a"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    c.call(&change(
        "FI9",
        "CLEARED",
        "OVERDUE",
        "2024-01-02 00:00:00",
        "b",
    ))
    .await
    .unwrap()
    .into_result()
    .unwrap();
    let loan = app.loan("FI9").await;
    assert_eq!(loan["status"], "OVERDUE");
    assert_eq!(loan["needs_reconciliation"], true);
    assert_eq!(loan["reconciliation_reasons"][0]["kind"], "REVERSAL");
}

#[tokio::test]
async fn a_forbidden_transition_is_refused_and_recorded() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&change(
        "FI10",
        "NEW",
        "CANCELLED",
        "2024-01-01 00:00:00",
        "a",
    ))
    .await
    .unwrap()
    .into_result()
    .unwrap();
    let outcome = c
        .call(&change(
            "FI10",
            "CANCELLED",
            "NORMAL",
            "2024-01-02 00:00:00",
            "b",
        ))
        .await
        .unwrap();
    assert_eq!(outcome.failure().unwrap().code, "ILLEGAL_STATUS_TRANSITION");
    let loan = app.loan("FI10").await;
    assert_eq!(loan["status"], "CANCELLED");
    assert_eq!(history_outcomes(&loan), vec!["applied", "refused"]);
    assert_eq!(loan["history"][1]["biz_code"], "ILLEGAL_STATUS_TRANSITION");
}

#[tokio::test]
async fn another_institution_touching_a_loan_note_gets_code_11() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    app.client()
        .call(&change("FI11", "NEW", "NORMAL", "2024-01-01 00:00:00", "a"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let intruder = app
        .create_app(NewApp {
            name: "intruder".into(),
            ..NewApp::default()
        })
        .await;
    let e = app
        .client_for(&intruder)
        .call(&change(
            "FI11",
            "NORMAL",
            "OVERDUE",
            "2024-01-02 00:00:00",
            "x",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.top_error().unwrap().code, 11);
    let loan = app.loan("FI11").await;
    assert_eq!(loan["status"], "NORMAL");
    assert_eq!(history_outcomes(&loan), vec!["applied", "refused"]);
}

#[tokio::test]
async fn a_contradicting_identity_is_a_mismatch() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&change("FI12", "NEW", "NORMAL", "2024-01-01 00:00:00", "a"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let mut other = change("FI12", "NORMAL", "OVERDUE", "2024-01-02 00:00:00", "b");
    other.param_xfd_loan_change_external_request.customer_id = Some("C-2".into());
    let outcome = c.call(&other).await.unwrap();
    assert_eq!(outcome.failure().unwrap().code, "LOAN_IDENTITY_MISMATCH");
    assert_eq!(app.loan("FI12").await["status"], "NORMAL");
}

#[tokio::test]
async fn the_same_content_written_differently_is_the_same_request() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let first = r#"{"after_status":"NORMAL","before_status":"NEW","change_time":"2024-01-01 00:00:00","loan_apply_no":"FI13","request_id":"r13"}"#;
    let again = r#"{ "request_id": "r13", "loan_apply_no": "FI13", "change_time": 1704038400000, "before_status": "NEW", "after_status": "NORMAL" }"#;
    for body in [first, again] {
        let outcome = app
            .client()
            .execute(CHANGE, [("param_xfd_loan_change_external_request", body)])
            .await
            .unwrap();
        assert_eq!(outcome.body["result"]["response_code"], "SUCCESS");
    }
    assert_eq!(
        history_outcomes(&app.loan("FI13").await),
        vec!["applied", "duplicate"]
    );
}

#[tokio::test]
async fn a_change_time_before_2000_is_code_50() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let e = app
        .client()
        .call(&change(
            "FI-zero",
            "NEW",
            "NORMAL",
            "0000-01-01 00:00:00",
            "R-zero",
        ))
        .await
        .unwrap_err();
    let e = e.top_error().unwrap();
    assert_eq!(e.code, 50, "{e:?}");
    assert!(
        e.sub_msg.as_deref().unwrap_or("").contains("change_time"),
        "{e:?}"
    );
}
