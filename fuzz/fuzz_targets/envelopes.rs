//! Rendering answers: for any text in any field, an XML answer is well-formed XML 1.0 (checked
//! by a strict parser) and a JSON answer reads back exactly.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use loanwire_top::envelope::{parse_response, render_error, render_success, Style};
use loanwire_top::{ErrorCode, Format, ParsedResponse, TopError};
use serde_json::{Map, Value};

#[derive(Debug, Arbitrary)]
struct Input {
    code: u8,
    sub_code: String,
    sub_msg: String,
    request_id: String,
    method: String,
    fields: Vec<(String, String)>,
    flag: bool,
    simplify: bool,
}

fn well_formed(xml: &str) {
    if let Err(e) = roxmltree::Document::parse(xml) {
        panic!("ill-formed XML ({e}): {xml:?}");
    }
}

fuzz_target!(|input: Input| {
    let code = ErrorCode::ALL[usize::from(input.code) % ErrorCode::ALL.len()];
    let err = TopError::new(code)
        .with_sub(&input.sub_code, input.sub_msg.clone())
        .with_request_id(&input.request_id);
    well_formed(&render_error(&err, Format::Xml));
    match parse_response(&render_error(&err, Format::Json), Format::Json) {
        Ok(ParsedResponse::Error(back)) => assert_eq!(back, err),
        other => panic!("a JSON error answer reads back as itself: {other:?}"),
    }

    let mut body = Map::new();
    for (k, v) in &input.fields {
        body.insert(k.clone(), Value::String(v.clone()));
    }
    body.insert("success".into(), Value::Bool(input.flag));
    let xml_style = Style {
        format: Format::Xml,
        simplify: false,
    };
    well_formed(&render_success(
        &input.method,
        &body,
        &input.request_id,
        xml_style,
    ));
    let json_style = Style {
        format: Format::Json,
        simplify: input.simplify,
    };
    let json = render_success(&input.method, &body, &input.request_id, json_style);
    serde_json::from_str::<Value>(&json).expect("a JSON answer is JSON");
});
