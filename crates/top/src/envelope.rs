//! Response envelopes (SPEC 1.5): rendering for the gateway, parsing for the SDK.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::error::TopError;
use crate::xml;

/// The wire format of an answer. XML is the protocol's default when `format` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    #[default]
    Xml,
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Xml => "xml",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "text/xml;charset=UTF-8",
            Format::Json => "application/json;charset=UTF-8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported format `{0}`: use xml or json")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "xml" => Ok(Format::Xml),
            "json" => Ok(Format::Json),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// How an answer is to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub format: Format,
    /// JSON only: leave out the `<name>_response` wrapper.
    pub simplify: bool,
}

/// `alibaba.idle.interact.loan.callback` → `alibaba_idle_interact_loan_callback_response`;
/// a leading `taobao.` is dropped (`taobao.item.get` → `item_get_response`).
pub fn root_name(method: &str) -> String {
    let base = method.strip_prefix("taobao.").unwrap_or(method);
    format!("{}_response", base.replace('.', "_"))
}

pub const ERROR_ROOT: &str = "error_response";

/// A success answer: the API's response fields plus `request_id`.
pub fn render_success(
    method: &str,
    body: &Map<String, Value>,
    request_id: &str,
    style: Style,
) -> String {
    let root = root_name(method);
    let inner = WithRequestId { body, request_id };
    match style.format {
        Format::Json if style.simplify => to_json(&inner),
        Format::Json => to_json(&std::collections::BTreeMap::from([(root, inner)])),
        Format::Xml => {
            let mut tree = body.clone();
            tree.insert("request_id".into(), Value::String(request_id.into()));
            xml_document(&root, &Value::Object(tree))
        }
    }
}

/// The response fields followed by `request_id`, serialized without copying the fields (every
/// call's answer is rendered on the single writer's thread).
struct WithRequestId<'a> {
    body: &'a Map<String, Value>,
    request_id: &'a str,
}

impl serde::Serialize for WithRequestId<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.body.iter().filter(|(k, _)| k.as_str() != "request_id") {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("request_id", self.request_id)?;
        map.end()
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("JSON trees serialize")
}

/// An `error_response`, in either format. `simplify` does not apply: real clients recognise
/// errors by the `error_response` key.
pub fn render_error(err: &TopError, format: Format) -> String {
    let tree = error_tree(err);
    match format {
        Format::Json => {
            let mut outer = Map::new();
            outer.insert(ERROR_ROOT.into(), tree);
            Value::Object(outer).to_string()
        }
        Format::Xml => xml_document(ERROR_ROOT, &tree),
    }
}

fn error_tree(err: &TopError) -> Value {
    let mut m = Map::new();
    m.insert("code".into(), Value::from(err.code));
    m.insert("msg".into(), Value::String(err.msg.clone()));
    if let Some(s) = &err.sub_code {
        m.insert("sub_code".into(), Value::String(s.clone()));
    }
    if let Some(s) = &err.sub_msg {
        m.insert("sub_msg".into(), Value::String(s.clone()));
    }
    if let Some(s) = &err.request_id {
        m.insert("request_id".into(), Value::String(s.clone()));
    }
    Value::Object(m)
}

fn xml_document(root: &str, tree: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(xml::DECLARATION);
    xml::write_element(&mut out, root, tree);
    out
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedResponse {
    Success {
        /// The API's response fields, without the wrapper and without `request_id`.
        body: Map<String, Value>,
        request_id: Option<String>,
    },
    Error(TopError),
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the body is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Xml(#[from] xml::XmlError),
    #[error("the body is not a TOP envelope: {0}")]
    Shape(String),
}

/// Parses an answer in the given format, accepting both the wrapped and the simplified shape.
pub fn parse_response(raw: &str, format: Format) -> Result<ParsedResponse, EnvelopeError> {
    let (root, tree) = match format {
        Format::Json => {
            let mut top = match serde_json::from_str::<Value>(raw)? {
                Value::Object(m) => m,
                other => {
                    return Err(EnvelopeError::Shape(format!(
                        "expected an object, got {other}"
                    )))
                }
            };
            if let Some(err) = top.remove(ERROR_ROOT) {
                (ERROR_ROOT.to_string(), err)
            } else if top.len() == 1 && top.keys().all(|k| k.ends_with("_response")) {
                top.into_iter().next().expect("one entry")
            } else {
                (String::new(), Value::Object(top))
            }
        }
        Format::Xml => xml::parse(raw)?,
    };
    let mut map = match tree {
        Value::Object(m) => m,
        // `<x_response></x_response>`: an answer with no fields at all.
        Value::String(s) if s.trim().is_empty() => Map::new(),
        other => {
            return Err(EnvelopeError::Shape(format!(
                "expected fields under <{root}>, got {other}"
            )))
        }
    };
    let request_id = map.remove("request_id").and_then(|v| text(&v));
    if root == ERROR_ROOT {
        let code = map
            .get("code")
            .and_then(|v| match v {
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .ok_or_else(|| EnvelopeError::Shape("error_response without a numeric code".into()))?;
        return Ok(ParsedResponse::Error(TopError {
            code,
            msg: map.get("msg").and_then(text).unwrap_or_default(),
            sub_code: map.get("sub_code").and_then(text),
            sub_msg: map.get("sub_msg").and_then(text),
            request_id,
        }));
    }
    Ok(ParsedResponse::Success {
        body: map,
        request_id,
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A boolean that arrives as a JSON `true` or, from XML, as the text `true`.
pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bool(b) => Ok(b),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(serde::de::Error::custom(format!("`{s}` is not a boolean"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    fn body() -> Map<String, Value> {
        json!({"result": {"response_code": "SUCCESS", "response_message": "SUCCESS", "trace_id": "t<1>", "success": true}})
            .as_object()
            .unwrap()
            .clone()
    }

    const M: &str = "alibaba.finance.xfd.loan.change.notify";

    #[test]
    fn root_name_follows_the_rule() {
        assert_eq!(
            root_name(M),
            "alibaba_finance_xfd_loan_change_notify_response"
        );
        assert_eq!(
            root_name("taobao.item.seller.get"),
            "item_seller_get_response"
        );
    }

    #[test]
    fn json_success_is_wrapped_unless_simplified() {
        let wrapped = render_success(
            M,
            &body(),
            "rid",
            Style {
                format: Format::Json,
                simplify: false,
            },
        );
        assert_eq!(
            wrapped,
            r#"{"alibaba_finance_xfd_loan_change_notify_response":{"result":{"response_code":"SUCCESS","response_message":"SUCCESS","trace_id":"t<1>","success":true},"request_id":"rid"}}"#
        );
        let simple = render_success(
            M,
            &body(),
            "rid",
            Style {
                format: Format::Json,
                simplify: true,
            },
        );
        assert!(simple.starts_with(r#"{"result":{"#), "{simple}");
        for raw in [wrapped, simple] {
            assert_eq!(
                parse_response(&raw, Format::Json).unwrap(),
                ParsedResponse::Success {
                    body: body(),
                    request_id: Some("rid".into())
                }
            );
        }
    }

    #[test]
    fn xml_success_has_the_declaration_and_text_leaves() {
        let raw = render_success(
            M,
            &body(),
            "rid",
            Style {
                format: Format::Xml,
                simplify: true,
            },
        );
        assert_eq!(
            raw,
            r#"<?xml version="1.0" encoding="utf-8" ?><alibaba_finance_xfd_loan_change_notify_response><result><response_code>SUCCESS</response_code><response_message>SUCCESS</response_message><trace_id>t&lt;1&gt;</trace_id><success>true</success></result><request_id>rid</request_id></alibaba_finance_xfd_loan_change_notify_response>"#
        );
        let ParsedResponse::Success { body, request_id } =
            parse_response(&raw, Format::Xml).unwrap()
        else {
            panic!("expected success")
        };
        assert_eq!(request_id.as_deref(), Some("rid"));
        assert_eq!(body["result"]["success"], "true");
        assert_eq!(body["result"]["trace_id"], "t<1>");
    }

    #[test]
    fn errors_round_trip_in_both_formats() {
        let err =
            TopError::invalid_parameter("infos.status", "unknown value").with_request_id("r1");
        for format in [Format::Json, Format::Xml] {
            let raw = render_error(&err, format);
            assert_eq!(
                parse_response(&raw, format).unwrap(),
                ParsedResponse::Error(err.clone())
            );
        }
        assert_eq!(
            render_error(
                &TopError::new(ErrorCode::MissingMethod).with_request_id("r"),
                Format::Json
            ),
            r#"{"error_response":{"code":21,"msg":"Missing method","request_id":"r"}}"#
        );
    }

    #[test]
    fn lists_and_empty_elements_parse() {
        let (root, v) = xml::parse(
            r#"<r><a list="true"><string>x</string><string>y</string></a><b/><c list="true"/></r>"#,
        )
        .unwrap();
        assert_eq!(root, "r");
        assert_eq!(v, json!({"a": ["x", "y"], "b": "", "c": []}));
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        assert!(parse_response("<a><b></a>", Format::Xml).is_err());
        assert!(parse_response("not json", Format::Json).is_err());
        assert!(parse_response("[1,2]", Format::Json).is_err());
        assert!(parse_response(r#"{"error_response":{"msg":"x"}}"#, Format::Json).is_err());
    }
}
