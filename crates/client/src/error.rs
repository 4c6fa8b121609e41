use loanwire_api::BusinessFailure;
use loanwire_top::TopError;

/// Everything that can go wrong with a call, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The platform answered with an `error_response` (kept raw as well, to show or log).
    #[error("{}", .error.explain())]
    Top { error: Box<TopError>, raw: String },
    /// The call may or may not have reached the platform: connection refused or dropped, timeout.
    #[error("transport failure: {message}")]
    Transport {
        message: String,
        timeout: bool,
        #[source]
        source: Option<reqwest::Error>,
    },
    /// A non-200 HTTP status; TOP always answers 200, so this is a proxy or gateway failure.
    #[error(
        "HTTP status {status} (TOP answers 200 to every call, so something in between failed)"
    )]
    HttpStatus { status: u16, body: String },
    /// A 200 answer that is not a TOP envelope of the expected shape; the raw body is kept.
    #[error("undecodable response: {reason}")]
    Decode { reason: String, raw: String },
    /// The platform understood the call and refused it (`success=false`).
    #[error(
        "business failure {0}; fix the request or the state it refers to, retrying will not help"
    )]
    Business(BusinessFailure),
    /// The client was built with settings that cannot work.
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Transport failures, 5xx/429 statuses and `isp.*` errors; never `isv.*`, business
    /// failures or undecodable answers.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Top { error, .. } => error.is_retryable(),
            ClientError::Transport { .. } => true,
            ClientError::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            ClientError::Decode { .. } | ClientError::Business(_) | ClientError::Config(_) => false,
        }
    }

    pub fn top_error(&self) -> Option<&TopError> {
        match self {
            ClientError::Top { error, .. } => Some(error),
            _ => None,
        }
    }

    pub(crate) fn transport(e: reqwest::Error) -> Self {
        let timeout = e.is_timeout();
        // The chain holds the useful part ("connection refused", "operation timed out").
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ClientError::Transport {
            message,
            timeout,
            source: Some(e),
        }
    }
}
