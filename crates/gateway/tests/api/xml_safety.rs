//! Whatever a caller sends, an XML answer parses with a strict XML 1.0 parser — also the copy
//! the inbox keeps — and what it quotes back is cut to a sane length.

use loanwire_top::{Format, SignMethod};

use crate::helpers::*;

/// Parses `xml` strictly (roxmltree refuses every character XML 1.0 forbids); the text of the
/// first element named `name`.
fn strict_text(xml: &str, name: &str) -> String {
    let doc =
        roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("ill-formed XML ({e}): {xml:?}"));
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_string()
}

const CONTROL: &str = "A\u{1}B\u{0}C\u{1b}[31mD\u{FFFF}";

#[tokio::test]
async fn control_characters_in_a_method_never_reach_an_xml_answer() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let (sys, api) = app.signed(CALLBACK, &[], SignMethod::HmacSha256, Format::Xml, |s| {
        s[0].1 = format!("evil.{CONTROL}.method");
    });
    let raw = app.send(Transport::Form, &sys, &api).await;
    let sub_msg = strict_text(&raw.body, "sub_msg");
    assert!(sub_msg.contains("evil.A\u{FFFD}B"), "{sub_msg:?}");
}

#[tokio::test]
async fn control_characters_in_a_status_and_a_request_id_give_well_formed_answers_and_records() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let infos = format!(
        r#"{{"channel_id":"wzzx","process_no":"P-x","status":"BAD{}","type":"CREDIT","user_id":3}}"#,
        "\\u0001\\u0007"
    );
    let (sys, api) = app.signed(
        CALLBACK,
        &[("user", "3"), ("infos", &infos)],
        SignMethod::HmacSha256,
        Format::Xml,
        |_| {},
    );
    let raw = app.send(Transport::Form, &sys, &api).await;
    assert!(
        strict_text(&raw.body, "sub_msg").contains("infos.status"),
        "{}",
        raw.body
    );

    // A loan change whose request_id holds control characters, sent twice with different
    // content: the conflict answer quotes the request_id.
    let rid = "R\u{2}\u{3}x";
    for (after, want_success) in [("NORMAL", "true"), ("OVERDUE", "false")] {
        let param = serde_json::json!({
            "after_status": after, "before_status": "NEW", "change_time": "2024-01-01 00:00:00",
            "loan_apply_no": "FI-xml", "request_id": rid,
        })
        .to_string();
        let (sys, api) = app.signed(
            CHANGE,
            &[("param_xfd_loan_change_external_request", &param)],
            SignMethod::HmacSha256,
            Format::Xml,
            |_| {},
        );
        let raw = app.send(Transport::Form, &sys, &api).await;
        assert_eq!(
            strict_text(&raw.body, "success"),
            want_success,
            "{}",
            raw.body
        );
    }
    let (_, inbox) = app.read("/api/v1/inbox?limit=3").await;
    for record in inbox["records"].as_array().unwrap() {
        strict_text(record["response"].as_str().unwrap(), "request_id");
    }
}

#[tokio::test]
async fn a_huge_app_key_is_not_echoed_back_whole() {
    crate::skip_unless_backend!();
    let app = spawn_app().await;
    let huge = "9".repeat(50_000);
    let (sys, api) = app.signed(CALLBACK, &[], SignMethod::HmacSha256, Format::Xml, |s| {
        s[1].1 = huge.clone();
    });
    let raw = app.send(Transport::Form, &sys, &api).await;
    assert!(raw.body.len() < 2_000, "{} bytes answered", raw.body.len());
    assert!(
        strict_text(&raw.body, "sub_msg").contains("50000 bytes"),
        "{}",
        raw.body
    );
}
