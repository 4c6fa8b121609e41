//! SPEC 4.2: the reconciliation report in JSON and CSV, resolving a flag, the per-app figures
//! (signature failures counted before authentication), stuck processes.

use std::time::Duration;

use loanwire_client::{RetryPolicy, TopClient};
use loanwire_gateway::operators;
use loanwire_store::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// A loan note with a gap: NEW → NORMAL, then a change reported from OVERDUE.
async fn flag_a_gap(app: &TestApp, no: &str) {
    let c = app.client();
    for (before, after, at, id) in [
        ("NEW", "NORMAL", "2024-01-01 00:00:00", "a"),
        ("OVERDUE", "CLEARED", "2024-01-02 00:00:00", "b"),
    ] {
        let r = c
            .call(&change(no, before, after, at, &format!("{no}-{id}")))
            .await
            .unwrap();
        assert!(r.is_accepted());
    }
}

async fn report(app: &TestApp, query: &str) -> Value {
    let (status, v) = app
        .read(&format!("/api/v1/reports/reconciliation{query}"))
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn report_csv(app: &TestApp) -> Vec<csv::StringRecord> {
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/reports/reconciliation?format=csv",
            app.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/csv; charset=utf-8",
        "a CSV answer"
    );
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().get(0),
        Some("section"),
        "a header row"
    );
    reader.records().map(|r| r.unwrap()).collect()
}

#[tokio::test]
async fn the_report_lists_flagged_loan_notes_as_the_read_api_shows_them_in_json_and_csv() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    flag_a_gap(&app, "RC1").await;
    let ok = app.client();
    assert!(ok
        .call(&change(
            "RC2",
            "NEW",
            "NORMAL",
            "2024-01-01 00:00:00",
            "rc2"
        ))
        .await
        .unwrap()
        .is_accepted());

    let r = report(&app, "").await;
    let flagged = r["flagged_loans"].as_array().unwrap();
    assert_eq!(flagged.len(), 1, "only the loan note with a gap: {r}");
    let loan = app.loan("RC1").await;
    let f = &flagged[0];
    assert_eq!(f["loan_apply_no"], "RC1");
    assert_eq!(f["status"], loan["status"]);
    assert_eq!(f["app_key"], loan["app_key"]);
    assert_eq!(f["flags"], loan["reconciliation_reasons"]);
    assert_eq!(f["flags"][0]["expected_status"], "NORMAL");
    assert_eq!(f["flags"][0]["reported_status"], "OVERDUE");
    assert_eq!(f["since"], "2024-01-02 00:00:00");
    assert_eq!(r["stuck_after_hours"], 72);

    let rows = report_csv(&app).await;
    let row = rows
        .iter()
        .find(|r| &r[0] == "flagged_loan")
        .expect("the flagged loan note");
    assert_eq!(&row[1], "RC1");
    assert_eq!(&row[2], loan["app_key"].as_str().unwrap());
    assert_eq!(&row[3], loan["status"].as_str().unwrap());
    assert_eq!(&row[4], "GAP");
    assert_eq!((&row[5], &row[6]), ("NORMAL", "OVERDUE"));
    assert_eq!(
        rows.iter().filter(|r| &r[0] == "flagged_loan").count(),
        1,
        "the CSV lists what the JSON lists"
    );
}

#[tokio::test]
async fn a_resolution_needs_an_operator_and_a_note_and_is_in_the_history_and_the_audit() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    flag_a_gap(&app, "RS1").await;
    let (_, viewer) = operators::create(
        app.store.as_ref(),
        "eve",
        Role::Viewer,
        &operators::cli_actor(),
    )
    .await
    .unwrap();
    let path = "/api/v1/loans/RS1/resolve";
    let note = json!({ "note": "called the institution: the OVERDUE notice was lost" });

    let (status, _) = app
        .admin(Method::POST, path, &viewer, Some(note.clone()))
        .await;
    assert_eq!(status, 403, "a viewer may not resolve");
    let (status, v) = app
        .admin(
            Method::POST,
            path,
            ADMIN_TOKEN,
            Some(json!({ "note": "  " })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, _) = app
        .admin(
            Method::POST,
            "/api/v1/loans/NOPE/resolve",
            ADMIN_TOKEN,
            Some(note.clone()),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.loan("RS1").await["needs_reconciliation"], true);

    let (status, v) = app
        .admin(Method::POST, path, ADMIN_TOKEN, Some(note.clone()))
        .await;
    assert_eq!((status, &v["resolved"]), (200, &json!(1)), "{v}");

    let loan = app.loan("RS1").await;
    assert_eq!(loan["needs_reconciliation"], false);
    assert_eq!(loan["reconciliation_reasons"], json!([]));
    let history = loan["history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["kind"], "resolution", "{loan}");
    assert_eq!(last["by"], "bootstrap");
    assert_eq!(last["note"], note["note"]);
    assert_eq!(last["resolved"][0]["kind"], "GAP");
    assert!(history[..history.len() - 1]
        .iter()
        .all(|h| h["kind"] == "call"));

    let (_, audit) = app.read("/api/v1/audit?target=loan:RS1").await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "loan.resolve");
    assert_eq!(entry["actor"], "bootstrap");
    assert_eq!(entry["detail"]["note"], note["note"]);

    assert!(
        report(&app, "").await["flagged_loans"]
            .as_array()
            .unwrap()
            .is_empty(),
        "resolved: off the report"
    );
    let (status, _) = app.admin(Method::POST, path, ADMIN_TOKEN, Some(note)).await;
    assert_eq!(status, 409, "nothing left to resolve");

    // A new gap flags it again.
    assert!(app
        .client()
        .call(&change(
            "RS1",
            "NORMAL",
            "OVERDUE",
            "2024-01-03 00:00:00",
            "RS1-c"
        ))
        .await
        .unwrap()
        .is_accepted());
    let loan = app.loan("RS1").await;
    assert_eq!(loan["needs_reconciliation"], true);
    let open = loan["reconciliation_reasons"].as_array().unwrap();
    assert!(
        !open.is_empty() && open.iter().all(|f| f["request_id"] == "RS1-c"),
        "only the new flags are open: {loan}"
    );
}

/// Polls the report until `probe` holds; PostgreSQL counts an inbox row only once it has
/// settled (10 s), so the wait is bounded at 20 s.
async fn report_until(app: &TestApp, probe: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = report(app, "?window_hours=1").await;
        if probe(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the report never showed it: {last}");
}

fn app_row<'a>(r: &'a Value, key: &str) -> Option<&'a Value> {
    r["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_key"] == key)
}

#[tokio::test]
async fn per_app_figures_count_calls_and_signature_failures_and_unknown_keys_share_one_row() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    let first = change("PA1", "NEW", "NORMAL", "2024-01-01 00:00:00", "p1");
    assert!(c.call(&first).await.unwrap().is_accepted());
    assert!(c.call(&first).await.unwrap().is_accepted(), "a duplicate");
    let bad = change("PA1", "NORMAL", "NOT_A_STATUS", "2024-01-02 00:00:00", "p2");
    let refused = c.call(&bad).await;
    assert!(
        refused.as_ref().map_or(true, |r| !r.is_accepted()),
        "refused: {refused:?}"
    );
    let forged = TopClient::builder(app.url(), &app.app_key, "not-the-secret")
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = forged.call(&callback("PX", "IN_PROCESSING")).await;
        assert!(r.is_err() || !r.unwrap().is_accepted());
    }
    for i in 0..5 {
        let stranger = TopClient::builder(app.url(), format!("9{i:07}"), "x")
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let _ = stranger.call(&callback("PY", "IN_PROCESSING")).await;
    }

    let r = report_until(&app, |r| {
        app_row(r, &app.app_key).is_some_and(|a| a["calls"] == 3 && a["signature_failures"] == 3)
            && app_row(r, "-").is_some_and(|a| a["rejected"] == 5)
    })
    .await;
    let mine = app_row(&r, &app.app_key).unwrap();
    assert_eq!(mine["applied"], 1);
    assert_eq!(mine["duplicate"], 1);
    assert_eq!(mine["refused"], 1);
    assert_eq!(mine["duplicate_share"], 0.3333);
    assert_eq!(
        mine["top_error_codes"][0],
        json!({ "code": "25", "n": 3 }),
        "{mine}"
    );
    assert_eq!(
        mine["top_error_codes"][1],
        json!({ "code": "50", "n": 1 }),
        "{mine}"
    );
    assert!(
        r["apps"].as_array().unwrap().len() == 2,
        "five unknown app keys make no rows of their own: {r}"
    );
}

#[tokio::test]
async fn a_process_in_processing_for_longer_than_the_limit_is_listed_as_stuck() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let c = app.client();
    for (no, status) in [
        ("ST1", "IN_PROCESSING"),
        ("ST2", "IN_PROCESSING"),
        ("ST3", "SUCCESS"),
    ] {
        assert!(c.call(&callback(no, status)).await.unwrap().is_accepted());
    }
    // ST1 and ST3 last changed four days ago; ST2 just now.
    let aged = app
        .exec_sql(
            "UPDATE processes SET updated_ms = updated_ms - 345600000 WHERE process_no IN ('ST1', 'ST3')",
        )
        .unwrap();
    assert_eq!(aged, 2);
    let r = report(&app, "").await;
    let stuck = r["stuck_processes"].as_array().unwrap();
    assert_eq!(stuck.len(), 1, "{r}");
    assert_eq!(stuck[0]["process_no"], "ST1");
    assert_eq!(stuck[0]["status"], "IN_PROCESSING");
    assert_eq!(stuck[0]["app_key"], app.app_key.as_str());
}

#[tokio::test]
async fn bad_report_parameters_are_refused_with_a_sentence() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    for query in [
        "?format=xml",
        "?window_hours=0",
        "?window_hours=721",
        "?limit=0",
        "?flagged_before=nonsense",
    ] {
        let (status, v) = app
            .read(&format!("/api/v1/reports/reconciliation{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, _) = app
        .admin(
            Method::GET,
            "/api/v1/reports/reconciliation",
            "lwt_000000000000_forged",
            None,
        )
        .await;
    assert_eq!(status, 401);
}
