//! `alibaba.finance.xfd.loan.change.notify` (消费贷借据变更通知): a lending institution reports
//! a status change of a loan note (SPEC 2.2).

use loanwire_top::envelope::lenient_bool;
use loanwire_top::{encode, Params, TopDateTime, TopError};
use serde::{Deserialize, Serialize};

use crate::fields::ObjectParam;
use crate::{BusinessFailure, BusinessResult, TopApi};

pub const METHOD: &str = "alibaba.finance.xfd.loan.change.notify";
pub const PARAM: &str = "param_xfd_loan_change_external_request";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfdLoanChangeNotifyRequest {
    pub param_xfd_loan_change_external_request: XfdLoanChangeExternalRequest,
}

/// `XfdLoanChangeExternalRequest`, fields in alphabetical order (see the Java SDK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfdLoanChangeExternalRequest {
    pub after_status: String,
    pub before_status: String,
    pub change_time: TopDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution_loan_no: Option<String>,
    pub loan_apply_no: String,
    /// The idempotency key (幂等号).
    pub request_id: String,
}

impl TopApi for XfdLoanChangeNotifyRequest {
    const METHOD: &'static str = METHOD;
    type Response = XfdLoanChangeNotifyResponse;

    fn to_params(&self) -> Vec<(String, String)> {
        let body = encode::object_param(&self.param_xfd_loan_change_external_request)
            .expect("plain fields always serialize");
        vec![(PARAM.into(), body)]
    }

    fn from_params(params: &Params) -> Result<Self, TopError> {
        let o = ObjectParam::parse(params, PARAM)?;
        let req = XfdLoanChangeExternalRequest {
            after_status: o.required_str("after_status")?,
            before_status: o.required_str("before_status")?,
            change_time: o.required_time("change_time")?,
            customer_id: o.optional_str("customer_id")?,
            institution_loan_no: o.optional_str("institution_loan_no")?,
            loan_apply_no: o.required_str("loan_apply_no")?,
            request_id: o.required_str("request_id")?,
        };
        Ok(XfdLoanChangeNotifyRequest {
            param_xfd_loan_change_external_request: req,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfdLoanChangeNotifyResponse {
    pub result: XfdExternalResponse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfdExternalResponse {
    pub response_code: String,
    #[serde(default)]
    pub response_message: String,
    #[serde(default)]
    pub trace_id: String,
    #[serde(deserialize_with = "lenient_bool")]
    pub success: bool,
}

pub const SUCCESS: &str = "SUCCESS";

impl XfdLoanChangeNotifyResponse {
    /// The success answer; `trace_id` is the call's `request_id`.
    pub fn accepted(trace_id: impl Into<String>) -> Self {
        XfdLoanChangeNotifyResponse {
            result: XfdExternalResponse {
                response_code: SUCCESS.into(),
                response_message: SUCCESS.into(),
                trace_id: trace_id.into(),
                success: true,
            },
        }
    }

    pub fn refused(
        code: impl Into<String>,
        message: impl Into<String>,
        trace_id: impl Into<String>,
    ) -> Self {
        XfdLoanChangeNotifyResponse {
            result: XfdExternalResponse {
                response_code: code.into(),
                response_message: message.into(),
                trace_id: trace_id.into(),
                success: false,
            },
        }
    }
}

impl BusinessResult for XfdLoanChangeNotifyResponse {
    fn business_failure(&self) -> Option<BusinessFailure> {
        (!self.result.success).then(|| BusinessFailure {
            code: self.result.response_code.clone(),
            message: self.result.response_message.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> XfdLoanChangeNotifyRequest {
        XfdLoanChangeNotifyRequest {
            param_xfd_loan_change_external_request: XfdLoanChangeExternalRequest {
                after_status: "OVERDUE".into(),
                before_status: "NEW".into(),
                change_time: TopDateTime::parse("2024-01-01 00:00:00").unwrap(),
                customer_id: Some("123".into()),
                institution_loan_no: Some("123".into()),
                loan_apply_no: "FI123123121".into(),
                request_id: "123123131".into(),
            },
        }
    }

    #[test]
    fn the_seed_example_is_written_like_the_java_sdk() {
        assert_eq!(
            sample().to_params(),
            vec![(
                PARAM.to_string(),
                r#"{"after_status":"OVERDUE","before_status":"NEW","change_time":"2024-01-01 00:00:00","customer_id":"123","institution_loan_no":"123","loan_apply_no":"FI123123121","request_id":"123123131"}"#.to_string()
            )]
        );
    }

    #[test]
    fn params_round_trip_to_the_same_request() {
        let p: Params = sample().to_params().into_iter().collect();
        assert_eq!(
            XfdLoanChangeNotifyRequest::from_params(&p).unwrap(),
            sample()
        );
    }

    #[test]
    fn required_fields_and_types_are_checked_with_their_path() {
        let parse = |json: &str| {
            XfdLoanChangeNotifyRequest::from_params(&[(PARAM, json)].into_iter().collect())
                .unwrap_err()
        };
        let e = parse(
            r#"{"after_status":"OVERDUE","before_status":"NEW","change_time":"2024-01-01 00:00:00","loan_apply_no":"FI1"}"#,
        );
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                40,
                "Missing required arguments:param_xfd_loan_change_external_request.request_id"
            )
        );
        let e = parse(
            r#"{"after_status":"OVERDUE","before_status":"NEW","change_time":"01/01/2024","loan_apply_no":"FI1","request_id":"r"}"#,
        );
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                41,
                "Invalid arguments:param_xfd_loan_change_external_request.change_time"
            )
        );
        let e = XfdLoanChangeNotifyRequest::from_params(&Params::new()).unwrap_err();
        assert_eq!(
            e.msg,
            "Missing required arguments:param_xfd_loan_change_external_request"
        );
    }

    #[test]
    fn numeric_ids_are_read_as_text() {
        let p: Params = [(PARAM, r#"{"after_status":"OVERDUE","before_status":"NEW","change_time":1704038400000,"customer_id":123,"loan_apply_no":"FI1","request_id":123123131}"#)].into_iter().collect();
        let r = XfdLoanChangeNotifyRequest::from_params(&p)
            .unwrap()
            .param_xfd_loan_change_external_request;
        assert_eq!(r.customer_id.as_deref(), Some("123"));
        assert_eq!(r.request_id, "123123131");
        assert_eq!(r.change_time.format(), "2024-01-01 00:00:00");
    }
}
