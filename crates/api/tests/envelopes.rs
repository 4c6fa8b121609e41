//! Envelope round trips for both seed APIs, in JSON and XML, with and without `simplify`, and
//! the seeds' own examples.

use loanwire_api::idle_loan_callback::{self, IdleLoanCallbackResponse};
use loanwire_api::xfd_loan_change_notify::{self, XfdLoanChangeNotifyResponse};
use loanwire_api::{BusinessResult, TopApi};
use loanwire_top::envelope::{parse_response, render_error, render_success, Style};
use loanwire_top::{Format, ParsedResponse, TopError};
use serde::de::DeserializeOwned;
use serde::Serialize;

const STYLES: [Style; 4] = [
    Style {
        format: Format::Json,
        simplify: false,
    },
    Style {
        format: Format::Json,
        simplify: true,
    },
    Style {
        format: Format::Xml,
        simplify: false,
    },
    Style {
        format: Format::Xml,
        simplify: true,
    },
];

fn round_trip<R: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    method: &str,
    resp: &R,
) {
    let body = serde_json::to_value(resp).unwrap();
    for style in STYLES {
        let raw = render_success(method, body.as_object().unwrap(), "req-1", style);
        match parse_response(&raw, style.format).unwrap() {
            ParsedResponse::Success { body, request_id } => {
                assert_eq!(request_id.as_deref(), Some("req-1"));
                let back: R = serde_json::from_value(serde_json::Value::Object(body)).unwrap();
                assert_eq!(&back, resp, "{style:?}: {raw}");
            }
            ParsedResponse::Error(e) => panic!("{style:?}: unexpected error {e}"),
        }
    }
}

#[test]
fn callback_responses_round_trip_in_every_style() {
    round_trip(
        idle_loan_callback::METHOD,
        &IdleLoanCallbackResponse::accepted(),
    );
    round_trip(
        idle_loan_callback::METHOD,
        &IdleLoanCallbackResponse::refused(
            "TERMINAL_STATUS_CONFLICT",
            "已终态 SUCCESS, 不能变为 FAIL",
        ),
    );
}

#[test]
fn loan_change_responses_round_trip_in_every_style() {
    round_trip(
        xfd_loan_change_notify::METHOD,
        &XfdLoanChangeNotifyResponse::accepted("r-1"),
    );
    round_trip(
        xfd_loan_change_notify::METHOD,
        &XfdLoanChangeNotifyResponse::refused(
            "IDEMPOTENCY_CONFLICT",
            "request_id reused with other content",
            "r-2",
        ),
    );
}

#[test]
fn error_responses_round_trip_in_both_formats() {
    let err = TopError::invalid_parameter("infos.status", "未知状态 DONE").with_request_id("rid-9");
    for format in [Format::Json, Format::Xml] {
        let raw = render_error(&err, format);
        assert_eq!(
            parse_response(&raw, format).unwrap(),
            ParsedResponse::Error(err.clone())
        );
    }
}

#[test]
fn json_success_wraps_under_the_method_root() {
    let body = serde_json::to_value(XfdLoanChangeNotifyResponse::accepted("t")).unwrap();
    let raw = render_success(
        xfd_loan_change_notify::METHOD,
        body.as_object().unwrap(),
        "rid",
        Style {
            format: Format::Json,
            simplify: false,
        },
    );
    assert_eq!(
        raw,
        r#"{"alibaba_finance_xfd_loan_change_notify_response":{"result":{"response_code":"SUCCESS","response_message":"SUCCESS","trace_id":"t","success":true},"request_id":"rid"}}"#
    );
}

const SEED_CALLBACK_XML: &str = r#"<alibaba_idle_interact_loan_callback_response>
    <idle_point_result>
        <success>false</success>
        <data>false</data>
        <biz_error>
            <err_code>xx</err_code>
            <err_msg>xx</err_msg>
        </biz_error>
    </idle_point_result>
</alibaba_idle_interact_loan_callback_response>"#;

const SEED_CHANGE_XML: &str = r#"<alibaba_finance_xfd_loan_change_notify_response>
    <result>
        <response_code>SUCCESS</response_code>
        <response_message>SUCCESS</response_message>
        <trace_id>23234</trace_id>
        <success>true</success>
    </result>
</alibaba_finance_xfd_loan_change_notify_response>"#;

const SEED_ERROR_XML: &str = r#"<error_response>
    <code>50</code>
    <msg>Remote service error</msg>
    <sub_code>isv.invalid-parameter</sub_code>
    <sub_msg>非法参数</sub_msg>
</error_response>"#;

fn parse_seed<R: DeserializeOwned>(raw: &str) -> R {
    match parse_response(raw, Format::Xml).unwrap() {
        ParsedResponse::Success { body, .. } => {
            serde_json::from_value(serde_json::Value::Object(body)).unwrap()
        }
        ParsedResponse::Error(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn the_seeds_response_examples_parse() {
    let cb: IdleLoanCallbackResponse = parse_seed(SEED_CALLBACK_XML);
    let failure = cb
        .business_failure()
        .expect("the seed example is a refusal");
    assert_eq!(
        (failure.code.as_str(), failure.message.as_str()),
        ("xx", "xx")
    );
    assert_eq!(cb.idle_point_result.data.as_deref(), Some("false"));

    let ch: XfdLoanChangeNotifyResponse = parse_seed(SEED_CHANGE_XML);
    assert!(ch.result.success);
    assert_eq!(ch.result.trace_id, "23234");
    assert_eq!(ch.business_failure(), None);

    let ParsedResponse::Error(e) = parse_response(SEED_ERROR_XML, Format::Xml).unwrap() else {
        panic!("the seed's error example is an error")
    };
    assert_eq!(e.code, 50);
    assert_eq!(e.sub_code.as_deref(), Some("isv.invalid-parameter"));
    assert_eq!(e.sub_msg.as_deref(), Some("非法参数"));
    assert!(!e.is_retryable());
}

#[test]
fn the_seeds_request_examples_parse_from_java_sdk_parameters() {
    // What DefaultTaobaoClient sends for the seeds' request examples.
    let p = [
        ("user", "3"),
        ("infos", r#"{"channel_id":"wzzx","complete_time":"2025-01-17 16:00:00","fund_products":["xx"],"process_no":"xxx","status":"IN_PROCESSING","submit_time":"2025-01-17 16:00:00","type":"CREDIT","user_id":3}"#),
    ]
    .into_iter()
    .collect();
    let r = loanwire_api::IdleLoanCallbackRequest::from_params(&p).unwrap();
    assert_eq!(r.infos.channel_id, "wzzx");
    assert_eq!(r.infos.fund_products, Some(vec!["xx".to_string()]));

    let p = [(
        xfd_loan_change_notify::PARAM,
        r#"{"after_status":"OVERDUE","before_status":"NEW","change_time":"2024-01-01 00:00:00","customer_id":"123","institution_loan_no":"123","loan_apply_no":"FI123123121","request_id":"123123131"}"#,
    )]
    .into_iter()
    .collect();
    let r = loanwire_api::XfdLoanChangeNotifyRequest::from_params(&p).unwrap();
    assert_eq!(
        r.param_xfd_loan_change_external_request.loan_apply_no,
        "FI123123121"
    );
}
