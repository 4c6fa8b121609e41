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

/// Parses JSON, refusing an object that names a key twice (at any depth): which of the two
/// values counts is not written anywhere, and a signed request must mean one thing.
pub fn parse_strict(raw: &str) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(raw);
    let value = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A JSON value whose objects have unique keys.
struct Strict;

impl<'de> serde::de::DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key `{}` appears twice",
                    loanwire_top::text::echo(&key)
                )));
            }
            let value = map.next_value_seed(Strict)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
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
        match parse_strict(raw) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_named_twice_is_refused_at_any_depth_and_the_rest_reads_like_serde_json() {
        let e = parse_strict(r#"{"status":"SUCCESS","status":"FAIL"}"#).unwrap_err();
        assert!(e.to_string().contains("`status` appears twice"), "{e}");
        assert!(parse_strict(r#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(parse_strict(r#"{"a":[{"b":1,"b":2}]}"#).is_err());
        let text =
            r#"{"a":[1,-2,3.5,"x\/y",true,null,{"b":{}}],"c":"借","d":18446744073709551615}"#;
        assert_eq!(
            parse_strict(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert!(parse_strict(r#"{"a":1} trailing"#).is_err());
    }
}
