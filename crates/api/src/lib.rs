//! The two seed APIs as typed values, shared by the SDK (which writes them) and the gateway
//! (which reads them): one module per API, each with its request, its response, and the
//! parsing of TOP parameters into the request with the exact error codes of SPEC 1.6.
//! No loan semantics live here: what a status means is the domain's business.

pub mod fields;
pub mod idle_loan_callback;
pub mod xfd_loan_change_notify;

use loanwire_top::{Params, TopError};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use idle_loan_callback::{
    IdleLoanCallbackInfo, IdleLoanCallbackRequest, IdleLoanCallbackResponse,
};
pub use xfd_loan_change_notify::{
    XfdLoanChangeExternalRequest, XfdLoanChangeNotifyRequest, XfdLoanChangeNotifyResponse,
};

/// A TOP API: its method name, how its request becomes parameters and back, its response.
pub trait TopApi: Sized {
    const METHOD: &'static str;
    type Response: Serialize + DeserializeOwned + BusinessResult;

    /// The API parameters (system parameters are the client's business).
    fn to_params(&self) -> Vec<(String, String)>;

    /// Reads the API parameters of a received call: code 40 for an absent required parameter,
    /// 41 for one of the wrong type.
    fn from_params(params: &Params) -> Result<Self, TopError>;
}

/// A business failure carried inside a success envelope (`success=false`): the call reached
/// the platform and was understood, but refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessFailure {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for BusinessFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

pub trait BusinessResult {
    fn business_failure(&self) -> Option<BusinessFailure>;
}
