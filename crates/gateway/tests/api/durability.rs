//! Acknowledged means committed: state survives a restart; the inbox cannot be rewritten.

use loanwire_store::InboxQuery;

use crate::helpers::*;

#[tokio::test]
async fn every_acknowledged_call_and_all_state_survive_a_restart() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let r = c
            .call(&change(
                &format!("FI-D{i}"),
                "NEW",
                "NORMAL",
                "2024-01-01 00:00:00",
                &format!("d{i}"),
            ))
            .await
            .unwrap();
        acknowledged.push(r.reply().request_id.clone().unwrap());
        let r = c
            .call(&callback(&format!("P-D{i}"), "SUCCESS"))
            .await
            .unwrap();
        acknowledged.push(r.reply().request_id.clone().unwrap());
    }
    let (dir, config, creds) = app.stop().await;

    let app = spawn_in(dir, config, Some(creds)).await;
    for i in 0..20 {
        assert_eq!(app.loan(&format!("FI-D{i}")).await["status"], "NORMAL");
        assert_eq!(
            app.process("wzzx", "CREDIT", &format!("P-D{i}")).await["status"],
            "SUCCESS"
        );
    }
    for id in &acknowledged {
        let (status, record) = app.read(&format!("/api/v1/inbox/{id}")).await;
        assert_eq!(status, 200, "call {id} missing after restart");
        assert_eq!(record["outcome"], "applied");
    }
    // Idempotency survives too: a replay after the restart is a duplicate.
    let again = app
        .client()
        .call(&change(
            "FI-D0",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "d0",
        ))
        .await
        .unwrap();
    assert!(again.is_accepted());
    let records = app
        .store
        .inbox(&InboxQuery {
            limit: 1,
            ..InboxQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(records[0].outcome, "duplicate");
}

#[tokio::test]
async fn the_inbox_is_append_only() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let r = app
        .client()
        .call(&callback("P-ao", "IN_PROCESSING"))
        .await
        .unwrap();
    let id = r.reply().request_id.clone().unwrap();
    assert!(
        app.exec_sql("UPDATE inbox SET outcome = 'applied'")
            .is_err(),
        "an inbox record was changed"
    );
    assert!(
        app.exec_sql("DELETE FROM inbox").is_err(),
        "an inbox record was removed"
    );
    let (status, record) = app.read(&format!("/api/v1/inbox/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(record["outcome"], "applied");
}

#[tokio::test]
async fn the_inbox_keeps_parameters_outcome_and_the_exact_response() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let reply = app
        .client()
        .call(&callback("P-ex", "IN_PROCESSING"))
        .await
        .unwrap();
    let id = reply.reply().request_id.clone().unwrap();
    let (_, record) = app.read(&format!("/api/v1/inbox/{id}")).await;
    assert_eq!(
        record["response"],
        reply.reply().raw.as_str(),
        "the exact bytes sent"
    );
    assert_eq!(record["params"]["user"], "u-3");
    assert_eq!(record["params"]["method"], CALLBACK);
    assert!(record["params"]["infos"].as_str().unwrap().contains("P-ex"));
    assert_eq!(record["app_key"], app.app_key.as_str());
}
