//! The platform error codes of SPEC 1.6 and the `error_response` they travel in.

use std::fmt;

/// Every platform error code loanwire emits, with the `msg` the live gateway writes.
///
/// Codes 15 and 50 share a `msg`; what separates them is the `sub_code` prefix: `isp.` (the
/// platform failed, retry later) versus `isv.` (the caller must fix the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    AppCallLimited,
    InsufficientIsvPermissions,
    ServiceUnavailable,
    MissingMethod,
    InvalidMethod,
    InvalidFormat,
    MissingSignature,
    InvalidSignature,
    MissingAppKey,
    InvalidAppKey,
    MissingTimestamp,
    InvalidTimestamp,
    MissingVersion,
    UnsupportedVersion,
    MissingRequiredArguments,
    InvalidArguments,
    BusinessValidation,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::AppCallLimited,
        ErrorCode::InsufficientIsvPermissions,
        ErrorCode::ServiceUnavailable,
        ErrorCode::MissingMethod,
        ErrorCode::InvalidMethod,
        ErrorCode::InvalidFormat,
        ErrorCode::MissingSignature,
        ErrorCode::InvalidSignature,
        ErrorCode::MissingAppKey,
        ErrorCode::InvalidAppKey,
        ErrorCode::MissingTimestamp,
        ErrorCode::InvalidTimestamp,
        ErrorCode::MissingVersion,
        ErrorCode::UnsupportedVersion,
        ErrorCode::MissingRequiredArguments,
        ErrorCode::InvalidArguments,
        ErrorCode::BusinessValidation,
    ];

    pub fn code(self) -> u32 {
        match self {
            ErrorCode::AppCallLimited => 7,
            ErrorCode::InsufficientIsvPermissions => 11,
            ErrorCode::ServiceUnavailable => 15,
            ErrorCode::MissingMethod => 21,
            ErrorCode::InvalidMethod => 22,
            ErrorCode::InvalidFormat => 23,
            ErrorCode::MissingSignature => 24,
            ErrorCode::InvalidSignature => 25,
            ErrorCode::MissingAppKey => 28,
            ErrorCode::InvalidAppKey => 29,
            ErrorCode::MissingTimestamp => 30,
            ErrorCode::InvalidTimestamp => 31,
            ErrorCode::MissingVersion => 32,
            ErrorCode::UnsupportedVersion => 34,
            ErrorCode::MissingRequiredArguments => 40,
            ErrorCode::InvalidArguments => 41,
            ErrorCode::BusinessValidation => 50,
        }
    }

    /// The code's `msg`. Codes 40 and 41 get the argument name appended by [`TopError`].
    pub fn msg(self) -> &'static str {
        match self {
            ErrorCode::AppCallLimited => "App Call Limited",
            ErrorCode::InsufficientIsvPermissions => "Insufficient isv permissions",
            ErrorCode::ServiceUnavailable => "Remote service error",
            ErrorCode::MissingMethod => "Missing method",
            ErrorCode::InvalidMethod => "Invalid method",
            ErrorCode::InvalidFormat => "Invalid format",
            ErrorCode::MissingSignature => "Missing signature",
            ErrorCode::InvalidSignature => "Invalid signature",
            ErrorCode::MissingAppKey => "Missing app key",
            ErrorCode::InvalidAppKey => "Invalid app Key",
            ErrorCode::MissingTimestamp => "Missing timestamp",
            ErrorCode::InvalidTimestamp => "Invalid timestamp",
            ErrorCode::MissingVersion => "Missing version",
            ErrorCode::UnsupportedVersion => "Unsupported version",
            ErrorCode::MissingRequiredArguments => "Missing required arguments",
            ErrorCode::InvalidArguments => "Invalid arguments",
            ErrorCode::BusinessValidation => "Remote service error",
        }
    }

    /// `None` for codes outside SPEC 1.6 (Alibaba's real gateway has many more).
    pub fn from_code(code: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// What a partner engineer should read when this code comes back.
    pub fn explain(self) -> &'static str {
        match self {
            ErrorCode::AppCallLimited => "the app exceeded its call rate limit; slow down and send again later",
            ErrorCode::InsufficientIsvPermissions => "the app is not granted this method, channel or loan note",
            ErrorCode::ServiceUnavailable => "the platform failed on its side; the call was not applied and can be retried",
            ErrorCode::MissingMethod => "the `method` parameter is missing",
            ErrorCode::InvalidMethod => "the gateway does not know this method",
            ErrorCode::InvalidFormat => "`format` must be `xml` or `json`",
            ErrorCode::MissingSignature => "the `sign` parameter is missing",
            ErrorCode::InvalidSignature => "the sign does not match; check the secret, sign_method and the signed string (`loanwire sign --explain`)",
            ErrorCode::MissingAppKey => "the `app_key` parameter is missing",
            ErrorCode::InvalidAppKey => "the app key is unknown or disabled",
            ErrorCode::MissingTimestamp => "the `timestamp` parameter is missing",
            ErrorCode::InvalidTimestamp => "the timestamp is unparsable or too far from the gateway's clock (GMT+8, `yyyy-MM-dd HH:mm:ss`)",
            ErrorCode::MissingVersion => "the `v` parameter is missing",
            ErrorCode::UnsupportedVersion => "only `v=2.0` is supported",
            ErrorCode::MissingRequiredArguments => "a required API parameter is missing",
            ErrorCode::InvalidArguments => "an API parameter has the wrong type or form",
            ErrorCode::BusinessValidation => "the request failed business validation; fix it before sending again",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.msg())
    }
}

/// Well-known sub-codes.
pub mod sub_code {
    pub const INVALID_PARAMETER: &str = "isv.invalid-parameter";
    pub const MISSING_PARAMETER: &str = "isv.missing-parameter";
    pub const PERMISSION_DENIED: &str = "isv.permission-denied";
    pub const LIMITED_BY_APP: &str = "accesscontrol.limited-by-app-access-count";
    pub const SERVICE_UNAVAILABLE: &str = "isp.service-unavailable";
}

/// An `error_response`: as built by the gateway, or as received by the SDK (which may see codes
/// outside SPEC 1.6 from Alibaba's real gateway, hence the raw `code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopError {
    pub code: u32,
    pub msg: String,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
    pub request_id: Option<String>,
}

impl TopError {
    pub fn new(code: ErrorCode) -> Self {
        TopError {
            code: code.code(),
            msg: code.msg().to_string(),
            sub_code: None,
            sub_msg: None,
            request_id: None,
        }
    }

    /// Code 40 with the live gateway's `msg`, e.g. `Missing required arguments:infos.status`.
    pub fn missing_argument(name: &str) -> Self {
        let mut e = TopError::new(ErrorCode::MissingRequiredArguments);
        e.msg = format!("{}:{}", e.msg, name);
        e.sub_code = Some(sub_code::MISSING_PARAMETER.to_string());
        e.sub_msg = Some(format!("缺少参数: {name}"));
        e
    }

    /// Code 41, e.g. `Invalid arguments:infos.user_id`, with the reason as `sub_msg`.
    pub fn invalid_argument(name: &str, reason: impl Into<String>) -> Self {
        let mut e = TopError::new(ErrorCode::InvalidArguments);
        e.msg = format!("{}:{}", e.msg, name);
        e.sub_code = Some(sub_code::INVALID_PARAMETER.to_string());
        e.sub_msg = Some(format!("非法参数: {name}: {}", reason.into()));
        e
    }

    /// Code 50 `isv.invalid-parameter`, the seeds' 异常示例 (`非法参数: <field>: <why>`).
    pub fn invalid_parameter(field: &str, reason: impl Into<String>) -> Self {
        TopError::new(ErrorCode::BusinessValidation).with_sub(
            sub_code::INVALID_PARAMETER,
            format!("非法参数: {field}: {}", reason.into()),
        )
    }

    /// Code 15 with an `isp.` sub-code: the platform failed, the caller should retry.
    pub fn service_unavailable(detail: impl Into<String>) -> Self {
        TopError::new(ErrorCode::ServiceUnavailable).with_sub(sub_code::SERVICE_UNAVAILABLE, detail)
    }

    /// Sets the sub-code and its message, cut to [`crate::text::SUB_MSG_CHARS`]: a message that
    /// quotes what a caller sent stays readable however much was sent.
    pub fn with_sub(mut self, sub_code: &str, sub_msg: impl Into<String>) -> Self {
        let sub_msg = sub_msg.into();
        self.sub_code = Some(sub_code.to_string());
        self.sub_msg = Some(
            match crate::text::cut(&sub_msg, crate::text::SUB_MSG_CHARS) {
                std::borrow::Cow::Borrowed(_) => sub_msg,
                std::borrow::Cow::Owned(cut) => cut,
            },
        );
        self
    }

    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.code)
    }

    /// `isp.*` means "retry later"; `isv.*` and everything else means "fix the request".
    /// A bare code 15 without a sub-code is a platform failure too.
    pub fn is_retryable(&self) -> bool {
        match &self.sub_code {
            Some(sub) => sub.starts_with("isp."),
            None => self.code == ErrorCode::ServiceUnavailable.code(),
        }
    }

    /// A one-line explanation for a human: the code, what it means, whether a retry helps.
    pub fn explain(&self) -> String {
        let meaning = self
            .error_code()
            .map(|c| c.explain())
            .unwrap_or("a platform error outside the codes loanwire knows");
        let sub = match (&self.sub_code, &self.sub_msg) {
            (Some(c), Some(m)) => format!(" [{c}: {m}]"),
            (Some(c), None) => format!(" [{c}]"),
            (None, Some(m)) => format!(" [{m}]"),
            (None, None) => String::new(),
        };
        let retry = if self.is_retryable() {
            "a retry can help"
        } else {
            "retrying the same request will not help"
        };
        format!(
            "TOP error {} {}{}: {}; {}",
            self.code, self.msg, sub, meaning, retry
        )
    }
}

impl fmt::Display for TopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.msg)?;
        if let Some(sub) = &self.sub_code {
            write!(f, " ({sub}")?;
            if let Some(m) = &self.sub_msg {
                write!(f, ": {m}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

impl std::error::Error for TopError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_number() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ErrorCode::from_code(999), None);
    }

    #[test]
    fn argument_errors_name_the_argument_in_msg() {
        assert_eq!(
            TopError::missing_argument("infos.status").msg,
            "Missing required arguments:infos.status"
        );
        assert_eq!(
            TopError::invalid_argument("infos.user_id", "not a number").msg,
            "Invalid arguments:infos.user_id"
        );
    }

    #[test]
    fn isp_is_retryable_and_isv_is_not() {
        assert!(TopError::service_unavailable("db down").is_retryable());
        assert!(!TopError::invalid_parameter("infos.status", "x").is_retryable());
        assert!(!TopError::new(ErrorCode::InvalidSignature).is_retryable());
        assert!(TopError::new(ErrorCode::ServiceUnavailable).is_retryable());
        let limited =
            TopError::new(ErrorCode::AppCallLimited).with_sub(sub_code::LIMITED_BY_APP, "x");
        assert!(!limited.is_retryable());
    }

    #[test]
    fn explanation_says_whether_retry_helps() {
        let e = TopError::service_unavailable("database unavailable");
        assert!(e.explain().contains("a retry can help"), "{}", e.explain());
        let e = TopError::new(ErrorCode::InvalidSignature);
        assert!(e.explain().contains("will not help"), "{}", e.explain());
    }
}
