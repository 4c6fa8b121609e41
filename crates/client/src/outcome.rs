use loanwire_api::BusinessFailure;

use crate::ClientError;

/// A decoded answer with what came with it.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub response: T,
    /// The envelope's `request_id`, to quote to the platform's operators.
    pub request_id: Option<String>,
    /// The body exactly as received.
    pub raw: String,
}

/// The answer to a typed call that reached the platform. A refusal (`success=false`) is not a
/// transport or protocol error, but it is not a success either: the caller has to look.
#[must_use = "a business refusal arrives as Outcome::Refused, not as Err: look at the outcome"]
#[derive(Debug, Clone)]
pub enum Outcome<T> {
    Accepted(Reply<T>),
    Refused {
        failure: BusinessFailure,
        reply: Reply<T>,
    },
}

impl<T> Outcome<T> {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted(_))
    }

    pub fn reply(&self) -> &Reply<T> {
        match self {
            Outcome::Accepted(r) | Outcome::Refused { reply: r, .. } => r,
        }
    }

    pub fn failure(&self) -> Option<&BusinessFailure> {
        match self {
            Outcome::Accepted(_) => None,
            Outcome::Refused { failure, .. } => Some(failure),
        }
    }

    /// Treats a refusal as an error, for callers that only continue on acceptance.
    pub fn into_result(self) -> Result<Reply<T>, ClientError> {
        match self {
            Outcome::Accepted(r) => Ok(r),
            Outcome::Refused { failure, .. } => Err(ClientError::Business(failure)),
        }
    }
}
