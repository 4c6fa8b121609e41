//! `loanwire report reconciliation` and `loanwire loan resolve` against a running gateway.

mod common;

use common::{run, start};

fn change(g: &common::Gateway, before: &str, after: &str, at: &str) {
    let (code, out, err) = run(
        g,
        &[
            "call",
            "xfd-loan-change",
            "--loan-apply-no",
            "FI-rep",
            "--before-status",
            before,
            "--after-status",
            after,
            "--change-time",
            at,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn an_operator_reads_the_report_as_json_and_csv_and_resolves_a_flag_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let g = start(dir.path());
    change(&g, "NEW", "NORMAL", "2024-01-01 00:00:00");
    change(&g, "OVERDUE", "CLEARED", "2024-01-02 00:00:00");

    let (code, out, err) = run(&g, &["report", "reconciliation"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["flagged_loans"][0]["loan_apply_no"], "FI-rep",
        "{out}"
    );
    assert_eq!(report["flagged_loans"][0]["flags"][0]["kind"], "GAP");

    let (code, out, err) = run(&g, &["report", "reconciliation", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("section,key,app_key,status,flags"));
    assert!(
        lines.any(|l| l.starts_with("flagged_loan,FI-rep,")),
        "{out}"
    );

    let (code, _, err) = run(&g, &["loan", "resolve", "FI-rep", "--note", " "]);
    assert_ne!(code, 0, "an empty note is refused");
    assert!(err.contains("400"), "{err}");
    let (code, out, err) = run(
        &g,
        &["loan", "resolve", "FI-rep", "--note", "confirmed by phone"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"resolved\": 1"), "{out}");
    let (code, out, err) = run(&g, &["loan", "show", "FI-rep"]);
    assert_eq!(code, 0, "{err}");
    let loan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(loan["needs_reconciliation"], false);
    let last = loan["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "resolution");
    assert_eq!(last["note"], "confirmed by phone");

    let (code, _, err) = run(&g, &["report", "reconciliation", "--format", "xml"]);
    assert_ne!(code, 0);
    assert!(err.contains("xml"), "{err}");
}
