//! Reading an object parameter (a form field holding a JSON object) field by field, so that
//! every error names the exact field: `Missing required arguments:infos.status`.

use loanwire_top::{Params, TopDateTime, TopError};
use serde_json::{Map, Value};

/// A plain text API parameter; blank counts as absent.
pub fn required_param(params: &Params, name: &str) -> Result<String, TopError> {
    params
        .non_empty(name)
        .map(str::to_string)
        .ok_or_else(|| TopError::missing_argument(name))
}

pub struct ObjectParam {
    name: &'static str,
    map: Map<String, Value>,
}

impl ObjectParam {
    /// Code 40 when the parameter is absent, 41 when it is not a JSON object.
    pub fn parse(params: &Params, name: &'static str) -> Result<ObjectParam, TopError> {
        let raw = params
            .non_empty(name)
            .ok_or_else(|| TopError::missing_argument(name))?;
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => Ok(ObjectParam { name, map }),
            Ok(_) => Err(TopError::invalid_argument(name, "expected a JSON object")),
            Err(e) => Err(TopError::invalid_argument(
                name,
                format!("not valid JSON: {e}"),
            )),
        }
    }

    fn path(&self, field: &str) -> String {
        format!("{}.{}", self.name, field)
    }

    fn present(&self, field: &str) -> Option<&Value> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(v) => Some(v),
        }
    }

    /// Text; a JSON number is accepted as its decimal text (some SDKs type ids as numbers).
    pub fn optional_str(&self, field: &str) -> Result<Option<String>, TopError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
            Some(_) => Err(TopError::invalid_argument(
                &self.path(field),
                "expected a string",
            )),
        }
    }

    pub fn required_str(&self, field: &str) -> Result<String, TopError> {
        self.optional_str(field)?
            .ok_or_else(|| TopError::missing_argument(&self.path(field)))
    }

    /// A 64-bit integer, as a JSON integer or a string of digits; never through floating point.
    pub fn required_i64(&self, field: &str) -> Result<i64, TopError> {
        let invalid = || TopError::invalid_argument(&self.path(field), "expected a 64-bit integer");
        match self.present(field) {
            None => Err(TopError::missing_argument(&self.path(field))),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(invalid),
            Some(Value::String(s)) => s.trim().parse::<i64>().map_err(|_| invalid()),
            Some(_) => Err(invalid()),
        }
    }

    pub fn optional_time(&self, field: &str) -> Result<Option<TopDateTime>, TopError> {
        let invalid =
            || TopError::invalid_argument(&self.path(field), "expected a time yyyy-MM-dd HH:mm:ss");
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) => TopDateTime::parse(s).map(Some).map_err(|_| invalid()),
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(TopDateTime::from_epoch_millis)
                .map(Some)
                .ok_or_else(invalid),
            Some(_) => Err(invalid()),
        }
    }

    pub fn required_time(&self, field: &str) -> Result<TopDateTime, TopError> {
        self.optional_time(field)?
            .ok_or_else(|| TopError::missing_argument(&self.path(field)))
    }

    /// A list of strings: a JSON array, or (as lenient SDKs send it) one comma-joined string.
    pub fn optional_str_list(&self, field: &str) -> Result<Option<Vec<String>>, TopError> {
        let invalid =
            || TopError::invalid_argument(&self.path(field), "expected a list of strings");
        match self.present(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(invalid))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Some(_) => Err(invalid()),
        }
    }
}
