//! SPEC 2.1: `alibaba.idle.interact.loan.callback`.

use loanwire_client::Outcome;
use loanwire_gateway::apps::NewApp;
use loanwire_top::TopDateTime;

use crate::helpers::*;

#[tokio::test]
async fn a_first_callback_creates_the_process_bound_to_its_user() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let outcome = app
        .client()
        .call(&callback("P1", "IN_PROCESSING"))
        .await
        .unwrap();
    let Outcome::Accepted(reply) = outcome else {
        panic!("refused")
    };
    assert!(reply.response.idle_point_result.success);
    assert_eq!(
        reply.response.idle_point_result.data.as_deref(),
        Some("true")
    );

    let p = app.process("wzzx", "CREDIT", "P1").await;
    assert_eq!(p["status"], "IN_PROCESSING");
    assert_eq!(p["user"], "u-3");
    assert_eq!(p["user_id"], 3);
    assert_eq!(p["fund_products"], serde_json::json!(["fund-a"]));
    assert_eq!(p["submit_time"], "2025-01-17 16:00:00");
    assert_eq!(history_outcomes(&p), vec!["applied"]);
    assert_eq!(
        p["history"][0]["request_id"],
        serde_json::json!(reply.request_id.unwrap())
    );
}

#[tokio::test]
async fn repeating_the_current_status_is_acknowledged_as_a_duplicate() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&callback("P2", "IN_PROCESSING"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let again = c.call(&callback("P2", "IN_PROCESSING")).await.unwrap();
    assert!(again.is_accepted());
    assert_eq!(
        history_outcomes(&app.process("wzzx", "CREDIT", "P2").await),
        vec!["applied", "duplicate"]
    );
}

#[tokio::test]
async fn in_processing_then_success_is_applied_and_a_late_in_processing_is_stale() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&callback("P3", "IN_PROCESSING"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let mut done = callback("P3", "SUCCESS");
    done.infos.complete_time = Some(TopDateTime::parse("2025-01-18 10:00:00").unwrap());
    c.call(&done).await.unwrap().into_result().unwrap();
    let late = c.call(&callback("P3", "IN_PROCESSING")).await.unwrap();
    assert!(late.is_accepted(), "a stale delivery is acknowledged");
    let p = app.process("wzzx", "CREDIT", "P3").await;
    assert_eq!(p["status"], "SUCCESS");
    assert_eq!(p["complete_time"], "2025-01-18 10:00:00");
    assert_eq!(history_outcomes(&p), vec!["applied", "applied", "stale"]);
}

#[tokio::test]
async fn a_contradicting_terminal_status_is_a_conflict() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&callback("P4", "SUCCESS"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let outcome = c.call(&callback("P4", "FAIL")).await.unwrap();
    let failure = outcome.failure().expect("refused").clone();
    assert_eq!(failure.code, "TERMINAL_STATUS_CONFLICT");
    let r = &outcome.reply().response.idle_point_result;
    assert!(!r.success);
    assert_eq!(r.data.as_deref(), Some("false"));
    let p = app.process("wzzx", "CREDIT", "P4").await;
    assert_eq!(p["status"], "SUCCESS");
    assert_eq!(history_outcomes(&p), vec!["applied", "refused"]);
    assert_eq!(p["history"][1]["biz_code"], "TERMINAL_STATUS_CONFLICT");
}

#[tokio::test]
async fn another_user_for_a_bound_process_is_a_mismatch() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&callback("P5", "IN_PROCESSING"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let mut other = callback("P5", "SUCCESS");
    other.infos.user_id = 4;
    let outcome = c.call(&other).await.unwrap();
    assert_eq!(outcome.failure().unwrap().code, "USER_MISMATCH");
    let mut other = callback("P5", "SUCCESS");
    other.user = "someone-else".into();
    assert_eq!(
        c.call(&other).await.unwrap().failure().unwrap().code,
        "USER_MISMATCH"
    );
    assert_eq!(
        app.process("wzzx", "CREDIT", "P5").await["status"],
        "IN_PROCESSING"
    );
}

#[tokio::test]
async fn processes_are_keyed_by_channel_type_and_number() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    c.call(&callback("P6", "SUCCESS"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let mut loan = callback("P6", "FAIL");
    loan.infos.process_type = "LOAN".into();
    assert!(
        c.call(&loan).await.unwrap().is_accepted(),
        "another type is another process"
    );
    let mut other_channel = callback("P6", "FAIL");
    other_channel.infos.channel_id = "other".into();
    assert!(
        c.call(&other_channel).await.unwrap().is_accepted(),
        "another channel is another process"
    );
}

#[tokio::test]
async fn unknown_vocabulary_is_code_50_naming_the_field_and_allowed_values() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let e = app
        .client()
        .call(&callback("P7", "DONE"))
        .await
        .unwrap_err();
    let top = e.top_error().unwrap();
    assert_eq!((top.code, top.msg.as_str()), (50, "Remote service error"));
    assert_eq!(top.sub_code.as_deref(), Some("isv.invalid-parameter"));
    let sub = top.sub_msg.as_deref().unwrap();
    assert!(
        sub.contains("infos.status") && sub.contains("IN_PROCESSING, SUCCESS, FAIL"),
        "{sub}"
    );

    let mut r = callback("P7", "SUCCESS");
    r.infos.process_type = "MORTGAGE".into();
    let e = app.client().call(&r).await.unwrap_err();
    assert!(e
        .top_error()
        .unwrap()
        .sub_msg
        .as_deref()
        .unwrap()
        .contains("CREDIT, LOAN"));
}

#[tokio::test]
async fn the_vocabulary_is_configuration() {
    crate::skip_unless_backend!();
    let app = spawn_app_with(|c| c.domain.process.types.push("MORTGAGE".into())).await;
    let mut r = callback("P8", "SUCCESS");
    r.infos.process_type = "MORTGAGE".into();
    assert!(app.client().call(&r).await.unwrap().is_accepted());
}

#[tokio::test]
async fn complete_time_before_submit_time_is_code_50() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let mut r = callback("P9", "SUCCESS");
    r.infos.complete_time = Some(TopDateTime::parse("2025-01-17 15:00:00").unwrap());
    let e = app.client().call(&r).await.unwrap_err();
    let top = e.top_error().unwrap();
    assert_eq!(top.code, 50);
    assert!(top.sub_msg.as_deref().unwrap().contains("complete_time"));
    let (status, _) = app.read("/api/v1/processes/wzzx/CREDIT/P9").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_app_reports_only_for_its_channels() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let channel_bound = app
        .create_app(NewApp {
            name: "ch".into(),
            channels: Some(vec!["other".into()]),
            ..NewApp::default()
        })
        .await;
    let e = app
        .client_for(&channel_bound)
        .call(&callback("P10", "IN_PROCESSING"))
        .await
        .unwrap_err();
    assert_eq!(e.top_error().unwrap().code, 11);
    let mut ok = callback("P10", "IN_PROCESSING");
    ok.infos.channel_id = "other".into();
    assert!(app
        .client_for(&channel_bound)
        .call(&ok)
        .await
        .unwrap()
        .is_accepted());
}

#[tokio::test]
async fn an_infos_object_naming_a_field_twice_is_code_41() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let infos = r#"{"channel_id":"wzzx","process_no":"P-dup","status":"SUCCESS","status":"FAIL","type":"CREDIT","user_id":3}"#;
    let e = app
        .client()
        .execute(CALLBACK, [("user", "3"), ("infos", infos)])
        .await
        .unwrap_err();
    let e = e.top_error().unwrap();
    assert_eq!(e.code, 41, "{e:?}");
    assert!(e.msg.contains("infos"), "{e:?}");
}
