//! The XML face of a TOP response tree: the same tree as the JSON one, with every leaf as text.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::{Map, Value};

pub const DECLARATION: &str = r#"<?xml version="1.0" encoding="utf-8" ?>"#;

/// Writes `<name>…</name>` for a JSON value. `null` fields are left out, as TOP leaves out
/// absent fields; a list is marked `list="true"` with one child per item.
pub fn write_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => leaf(out, name, if *b { "true" } else { "false" }),
        Value::Number(n) => leaf(out, name, &n.to_string()),
        Value::String(s) => leaf(out, name, s),
        Value::Object(map) => {
            open(out, name, "");
            for (k, v) in map {
                write_element(out, k, v);
            }
            close(out, name);
        }
        Value::Array(items) => {
            open(out, name, r#" list="true""#);
            for item in items {
                let item_name = match item {
                    Value::Bool(_) => "boolean",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    _ => "item",
                };
                write_element(out, item_name, item);
            }
            close(out, name);
        }
    }
}

fn leaf(out: &mut String, name: &str, text: &str) {
    open(out, name, "");
    out.push_str(&quick_xml::escape::escape(
        crate::text::xml_safe(text).as_ref(),
    ));
    close(out, name);
}

fn open(out: &mut String, name: &str, attrs: &str) {
    out.push('<');
    out.push_str(&element_name(name));
    out.push_str(attrs);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(&element_name(name));
    out.push('>');
}

/// `name` as an XML element name. TOP's names (`result`, `alibaba_…_response`) pass unchanged;
/// anything else has its other characters replaced by `_`, so that no name makes the answer
/// ill-formed.
fn element_name(name: &str) -> std::borrow::Cow<'_, str> {
    let ok_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.starts_with(ok_start) && name.chars().all(ok) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut fixed: String = name.chars().map(|c| if ok(c) { c } else { '_' }).collect();
    if !fixed.starts_with(ok_start) {
        fixed.insert(0, '_');
    }
    std::borrow::Cow::Owned(fixed)
}

#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("the XML document has no root element")]
    NoRoot,
}

struct Frame {
    name: String,
    is_list: bool,
    text: String,
    children: Vec<(String, Value)>,
}

impl Frame {
    fn start(e: &BytesStart<'_>) -> Result<Frame, XmlError> {
        let name = String::from_utf8(e.name().as_ref().to_vec())
            .map_err(|err| XmlError::Malformed(err.to_string()))?;
        let is_list = e
            .attributes()
            .flatten()
            .any(|a| a.key.as_ref() == b"list" && a.value.as_ref().eq_ignore_ascii_case(b"true"));
        Ok(Frame {
            name,
            is_list,
            text: String::new(),
            children: Vec::new(),
        })
    }

    fn into_value(self) -> (String, Value) {
        let value = if self.is_list {
            Value::Array(self.children.into_iter().map(|(_, v)| v).collect())
        } else if self.children.is_empty() {
            Value::String(self.text)
        } else {
            let mut map = Map::new();
            for (k, v) in self.children {
                match map.get_mut(&k) {
                    // A repeated element without `list="true"` is still a list.
                    Some(Value::Array(items)) => items.push(v),
                    Some(existing) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, v]);
                    }
                    None => {
                        map.insert(k, v);
                    }
                }
            }
            Value::Object(map)
        };
        (self.name, value)
    }
}

/// Parses a document into its root element's name and value tree (leaves are strings).
pub fn parse(xml: &str) -> Result<(String, Value), XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Frame> = Vec::new();
    let bad = |e: quick_xml::Error| XmlError::Malformed(e.to_string());
    loop {
        match reader.read_event().map_err(bad)? {
            Event::Start(e) => stack.push(Frame::start(&e)?),
            Event::Empty(e) => {
                let (name, value) = Frame::start(&e)?.into_value();
                match stack.last_mut() {
                    Some(parent) => parent.children.push((name, value)),
                    None => return Ok((name, value)),
                }
            }
            Event::Text(t) => {
                if let Some(frame) = stack.last_mut() {
                    frame.text.push_str(&t.unescape().map_err(bad)?);
                }
            }
            Event::CData(c) => {
                if let Some(frame) = stack.last_mut() {
                    let text =
                        std::str::from_utf8(&c).map_err(|e| XmlError::Malformed(e.to_string()))?;
                    frame.text.push_str(text);
                }
            }
            Event::End(_) => {
                let frame = stack.pop().ok_or(XmlError::NoRoot)?;
                let (name, value) = frame.into_value();
                match stack.last_mut() {
                    Some(parent) => parent.children.push((name, value)),
                    None => return Ok((name, value)),
                }
            }
            Event::Eof => {
                return Err(if stack.is_empty() {
                    XmlError::NoRoot
                } else {
                    XmlError::Malformed("document ends inside an element".into())
                })
            }
            _ => {}
        }
    }
}
