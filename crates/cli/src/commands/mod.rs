pub mod app;
pub mod bench;
pub mod call;
pub mod database;
pub mod endpoint;
pub mod events;
pub mod keys;
pub mod serve;
pub mod show;
pub mod sign;
pub mod token;
pub mod webhook;

/// Exit statuses, so that scripts can tell failures apart.
pub mod exit {
    pub const TOP_ERROR: u8 = 1;
    pub const BUSINESS_REFUSAL: u8 = 3;
    pub const TRANSPORT: u8 = 4;
}

/// `key=value` (the value may itself contain `=` and may be empty).
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not key=value")),
    }
}
