//! Received parameters and the system parameters of SPEC 1.2.

use std::collections::BTreeMap;

use crate::envelope::Format;
use crate::error::{ErrorCode, TopError};
use crate::sign::SignMethod;
use crate::time::TopDateTime;

pub const METHOD: &str = "method";
pub const APP_KEY: &str = "app_key";
pub const SIGN_METHOD: &str = "sign_method";
pub const SIGN: &str = "sign";
pub const TIMESTAMP: &str = "timestamp";
pub const VERSION: &str = "v";
pub const FORMAT: &str = "format";
pub const SIMPLIFY: &str = "simplify";
pub const SESSION: &str = "session";
pub const PARTNER_ID: &str = "partner_id";
pub const TARGET_APP_KEY: &str = "target_app_key";

/// The system parameter names; everything else is an API parameter.
pub const SYSTEM_PARAMS: [&str; 11] = [
    METHOD,
    APP_KEY,
    SIGN_METHOD,
    SIGN,
    TIMESTAMP,
    VERSION,
    FORMAT,
    SIMPLIFY,
    SESSION,
    PARTNER_ID,
    TARGET_APP_KEY,
];

/// Text parameters of one call, merged from wherever they arrived, sorted by key. Serializes
/// as a JSON object of them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Params(BTreeMap<String, String>);

/// The same key arrived twice with different values; which one was signed cannot be known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{0}` was sent twice with different values")]
pub struct ConflictingParam(pub String);

impl Params {
    pub fn new() -> Self {
        Params::default()
    }

    /// Adds one received parameter. A repeat with the same value (query and body both carrying
    /// it) is harmless; a repeat with another value is refused.
    pub fn merge(&mut self, key: String, value: String) -> Result<(), ConflictingParam> {
        match self.0.get(&key) {
            Some(existing) if *existing != value => Err(ConflictingParam(key)),
            Some(_) => Ok(()),
            None => {
                self.0.insert(key, value);
                Ok(())
            }
        }
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A parameter that is present and not blank; TOP treats an empty value as absent.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.trim().is_empty())
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// API parameters only: everything that is not a system parameter.
    pub fn api_params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().filter(|(k, _)| !SYSTEM_PARAMS.contains(k))
    }

    pub fn into_inner(self) -> BTreeMap<String, String> {
        self.0
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        Params(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// The system parameters of a call, parsed. What needs the app's secret or the clock (the sign
/// itself, the timestamp's skew) is checked by the receiver afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemParams {
    pub method: String,
    pub app_key: String,
    pub sign_method: SignMethod,
    pub sign: String,
    pub timestamp: TopDateTime,
    pub version: String,
    pub format: Format,
    pub simplify: bool,
    pub session: Option<String>,
    pub partner_id: Option<String>,
    pub target_app_key: Option<String>,
}

impl SystemParams {
    /// Where the answer to a call goes: known even when the rest of the parameters are bad, so
    /// that an error is written in the format the caller asked for.
    pub fn response_format(params: &Params) -> (Format, bool) {
        let format = params
            .non_empty(FORMAT)
            .and_then(|f| f.parse().ok())
            .unwrap_or_default();
        let simplify = params.get(SIMPLIFY).is_some_and(parse_bool);
        (format, simplify)
    }

    /// Checks presence and form, in the order the checks are reported.
    pub fn parse(params: &Params) -> Result<SystemParams, TopError> {
        let format = match params.non_empty(FORMAT) {
            None => Format::default(),
            Some(f) => f.parse().map_err(|_| {
                TopError::new(ErrorCode::InvalidFormat).with_sub(
                    "isv.invalid-format",
                    format!("format `{f}` is not supported: use xml or json"),
                )
            })?,
        };
        let method = params
            .non_empty(METHOD)
            .ok_or_else(|| TopError::new(ErrorCode::MissingMethod))?;
        let app_key = params
            .non_empty(APP_KEY)
            .ok_or_else(|| TopError::new(ErrorCode::MissingAppKey))?;
        let sign = params
            .non_empty(SIGN)
            .ok_or_else(|| TopError::new(ErrorCode::MissingSignature))?;
        // Older TOP clients leave sign_method out and mean md5, the protocol's original digest.
        let sign_method = match params.non_empty(SIGN_METHOD) {
            None => SignMethod::Md5,
            Some(m) => m.parse().map_err(|e: crate::sign::UnknownSignMethod| {
                TopError::new(ErrorCode::InvalidSignature)
                    .with_sub("isv.invalid-signature-method", e.to_string())
            })?,
        };
        let raw_ts = params
            .non_empty(TIMESTAMP)
            .ok_or_else(|| TopError::new(ErrorCode::MissingTimestamp))?;
        let timestamp = TopDateTime::parse(raw_ts).map_err(|e| {
            TopError::new(ErrorCode::InvalidTimestamp)
                .with_sub("isv.invalid-timestamp", e.to_string())
        })?;
        let version = params
            .non_empty(VERSION)
            .ok_or_else(|| TopError::new(ErrorCode::MissingVersion))?;
        if version.trim() != crate::API_VERSION {
            return Err(TopError::new(ErrorCode::UnsupportedVersion).with_sub(
                "isv.unsupported-version",
                format!("v `{version}` is not supported: use 2.0"),
            ));
        }
        Ok(SystemParams {
            method: method.to_string(),
            app_key: app_key.to_string(),
            sign_method,
            sign: sign.to_string(),
            timestamp,
            version: version.trim().to_string(),
            format,
            simplify: params.get(SIMPLIFY).is_some_and(parse_bool),
            session: params.non_empty(SESSION).map(str::to_string),
            partner_id: params.non_empty(PARTNER_ID).map(str::to_string),
            target_app_key: params.non_empty(TARGET_APP_KEY).map(str::to_string),
        })
    }

    /// Refuses a timestamp further than `skew` from `now`, either way (a replay window).
    pub fn check_skew(&self, now: TopDateTime, skew: std::time::Duration) -> Result<(), TopError> {
        let drift = self.timestamp.utc() - now.utc();
        let allowed = chrono::Duration::from_std(skew).unwrap_or(chrono::Duration::MAX);
        if drift.abs() > allowed {
            return Err(TopError::new(ErrorCode::InvalidTimestamp).with_sub(
                "isv.invalid-timestamp",
                format!(
                    "timestamp {} is {}s away from the gateway's clock {} (GMT+8); allowed ±{}s",
                    self.timestamp,
                    drift.num_seconds(),
                    now,
                    skew.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

fn parse_bool(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case("true") || s.trim() == "1"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Params {
        [
            ("method", "alibaba.idle.interact.loan.callback"),
            ("app_key", "12345678"),
            ("sign_method", "hmac-sha256"),
            ("sign", "ABC"),
            ("timestamp", "2025-01-17 16:00:00"),
            ("v", "2.0"),
            ("format", "json"),
            ("user", "3"),
        ]
        .into_iter()
        .collect()
    }

    fn code_without(key: &str) -> u32 {
        let mut p = valid();
        p.remove(key);
        SystemParams::parse(&p).unwrap_err().code
    }

    #[test]
    fn valid_system_params_parse() {
        let s = SystemParams::parse(&valid()).unwrap();
        assert_eq!(s.method, "alibaba.idle.interact.loan.callback");
        assert_eq!(s.sign_method, SignMethod::HmacSha256);
        assert_eq!(s.format, Format::Json);
        assert!(!s.simplify);
        assert_eq!(s.timestamp.format(), "2025-01-17 16:00:00");
    }

    #[test]
    fn each_missing_parameter_has_its_code() {
        assert_eq!(code_without("method"), 21);
        assert_eq!(code_without("app_key"), 28);
        assert_eq!(code_without("sign"), 24);
        assert_eq!(code_without("timestamp"), 30);
        assert_eq!(code_without("v"), 32);
    }

    #[test]
    fn bad_values_have_their_codes() {
        let with = |k: &str, v: &str| {
            let mut p = valid();
            p.insert(k, v);
            SystemParams::parse(&p).unwrap_err().code
        };
        assert_eq!(with("format", "yaml"), 23);
        assert_eq!(with("timestamp", "17/01/2025"), 31);
        assert_eq!(with("v", "3.0"), 34);
        assert_eq!(with("sign_method", "sha1"), 25);
    }

    #[test]
    fn absent_sign_method_means_md5_and_absent_format_means_xml() {
        let mut p = valid();
        p.remove("sign_method");
        p.remove("format");
        let s = SystemParams::parse(&p).unwrap();
        assert_eq!(s.sign_method, SignMethod::Md5);
        assert_eq!(s.format, Format::Xml);
    }

    #[test]
    fn skew_is_enforced_both_ways() {
        let s = SystemParams::parse(&valid()).unwrap();
        let ten = std::time::Duration::from_secs(600);
        let at = |t: &str| TopDateTime::parse(t).unwrap();
        assert!(s.check_skew(at("2025-01-17 16:09:59"), ten).is_ok());
        assert_eq!(
            s.check_skew(at("2025-01-17 16:10:01"), ten)
                .unwrap_err()
                .code,
            31
        );
        assert_eq!(
            s.check_skew(at("2025-01-17 15:49:59"), ten)
                .unwrap_err()
                .code,
            31
        );
    }

    #[test]
    fn repeated_parameters_must_agree() {
        let mut p = Params::new();
        p.merge("a".into(), "1".into()).unwrap();
        p.merge("a".into(), "1".into()).unwrap();
        assert!(p.merge("a".into(), "2".into()).is_err());
    }

    #[test]
    fn api_params_exclude_system_params() {
        let p = valid();
        let keys: Vec<&str> = p.api_params().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["user"]);
    }
}
