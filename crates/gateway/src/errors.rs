//! Every TOP error the gateway builds itself, one constructor each; and how the domain's words
//! (an invalid report) become the protocol's.

use loanwire_domain::Invalid;
use loanwire_top::error::sub_code;
use loanwire_top::text::echo;
use loanwire_top::{ErrorCode, TopError};

/// Code 11: the app may not do this (a method, a channel, another app's loan note).
pub fn permission_denied(detail: impl Into<String>) -> TopError {
    TopError::new(ErrorCode::InsufficientIsvPermissions)
        .with_sub(sub_code::PERMISSION_DENIED, detail)
}

/// Code 7: the app's rate limit is spent.
pub fn rate_limited() -> TopError {
    TopError::new(ErrorCode::AppCallLimited).with_sub(
        sub_code::LIMITED_BY_APP,
        "the app's call rate limit is exceeded; slow down",
    )
}

/// Code 22: a method this gateway does not serve.
pub fn unknown_method(method: &str) -> TopError {
    TopError::new(ErrorCode::InvalidMethod).with_sub(
        "isv.method-not-exists",
        format!("this gateway does not serve `{}`", echo(method)),
    )
}

/// Code 15: nothing was applied; the caller retries later.
pub fn storage_unavailable() -> TopError {
    TopError::service_unavailable(
        "服务暂不可用, 请稍后重试: storage unavailable, nothing was applied",
    )
}

/// Code 50: a report the domain found invalid, its field named inside the API parameter
/// `param` that carried it (`infos.status`).
pub fn invalid_report(param: &str, invalid: Invalid) -> TopError {
    TopError::invalid_parameter(&format!("{param}.{}", invalid.field), invalid.reason)
}
