//! `alibaba.idle.interact.loan.callback` (闲鱼借贷回调): a lending channel reports the progress
//! of a user's credit or loan process (SPEC 2.1).

use loanwire_top::envelope::lenient_bool;
use loanwire_top::{encode, Params, TopDateTime, TopError};
use serde::{Deserialize, Serialize};

use crate::fields::{required_param, ObjectParam};
use crate::{BusinessFailure, BusinessResult, TopApi};

pub const METHOD: &str = "alibaba.idle.interact.loan.callback";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleLoanCallbackRequest {
    /// User identifier (`user`).
    pub user: String,
    pub infos: IdleLoanCallbackInfo,
}

/// `IdleLoanCallbackInfo`. Fields are declared in alphabetical order so that the JSON written
/// matches the official Java SDK's byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleLoanCallbackInfo {
    pub channel_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_time: Option<TopDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fund_products: Option<Vec<String>>,
    pub process_no: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_time: Option<TopDateTime>,
    #[serde(rename = "type")]
    pub process_type: String,
    pub user_id: i64,
}

impl TopApi for IdleLoanCallbackRequest {
    const METHOD: &'static str = METHOD;
    type Response = IdleLoanCallbackResponse;

    fn to_params(&self) -> Vec<(String, String)> {
        let infos = encode::object_param(&self.infos).expect("plain fields always serialize");
        vec![("infos".into(), infos), ("user".into(), self.user.clone())]
    }

    fn from_params(params: &Params) -> Result<Self, TopError> {
        let user = required_param(params, "user")?;
        let o = ObjectParam::parse(params, "infos")?;
        let infos = IdleLoanCallbackInfo {
            user_id: o.required_i64("user_id")?,
            status: o.required_str("status")?,
            process_type: o.required_str("type")?,
            process_no: o.required_str("process_no")?,
            channel_id: o.required_str("channel_id")?,
            submit_time: o.optional_time("submit_time")?,
            complete_time: o.optional_time("complete_time")?,
            fund_products: o.optional_str_list("fund_products")?,
        };
        Ok(IdleLoanCallbackRequest { user, infos })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleLoanCallbackResponse {
    pub idle_point_result: IdlePointResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdlePointResult {
    #[serde(deserialize_with = "lenient_bool")]
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_error: Option<BizError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BizError {
    pub err_code: String,
    pub err_msg: String,
}

impl IdleLoanCallbackResponse {
    /// The success answer: `success=true`, `data="true"`.
    pub fn accepted() -> Self {
        IdleLoanCallbackResponse {
            idle_point_result: IdlePointResult {
                success: true,
                data: Some("true".into()),
                biz_error: None,
            },
        }
    }

    /// A business refusal, shaped like the seed's response example.
    pub fn refused(err_code: impl Into<String>, err_msg: impl Into<String>) -> Self {
        IdleLoanCallbackResponse {
            idle_point_result: IdlePointResult {
                success: false,
                data: Some("false".into()),
                biz_error: Some(BizError {
                    err_code: err_code.into(),
                    err_msg: err_msg.into(),
                }),
            },
        }
    }
}

impl BusinessResult for IdleLoanCallbackResponse {
    fn business_failure(&self) -> Option<BusinessFailure> {
        let r = &self.idle_point_result;
        if r.success {
            return None;
        }
        Some(match &r.biz_error {
            Some(e) => BusinessFailure {
                code: e.err_code.clone(),
                message: e.err_msg.clone(),
            },
            None => BusinessFailure {
                code: "UNKNOWN".into(),
                message: format!("success=false, data={:?}", r.data),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(infos: &str) -> Params {
        [("user", "3"), ("infos", infos)].into_iter().collect()
    }

    fn sample() -> IdleLoanCallbackRequest {
        IdleLoanCallbackRequest {
            user: "3".into(),
            infos: IdleLoanCallbackInfo {
                channel_id: "wzzx".into(),
                complete_time: Some(TopDateTime::parse("2025-01-17 16:00:00").unwrap()),
                fund_products: Some(vec!["xx".into()]),
                process_no: "xxx".into(),
                status: "IN_PROCESSING".into(),
                submit_time: Some(TopDateTime::parse("2025-01-17 16:00:00").unwrap()),
                process_type: "CREDIT".into(),
                user_id: 3,
            },
        }
    }

    #[test]
    fn the_seed_example_is_written_like_the_java_sdk() {
        let p = sample().to_params();
        assert_eq!(p[0].0, "infos");
        assert_eq!(
            p[0].1,
            r#"{"channel_id":"wzzx","complete_time":"2025-01-17 16:00:00","fund_products":["xx"],"process_no":"xxx","status":"IN_PROCESSING","submit_time":"2025-01-17 16:00:00","type":"CREDIT","user_id":3}"#
        );
    }

    #[test]
    fn params_round_trip_to_the_same_request() {
        let p: Params = sample().to_params().into_iter().collect();
        assert_eq!(IdleLoanCallbackRequest::from_params(&p).unwrap(), sample());
    }

    #[test]
    fn missing_fields_are_code_40_with_their_path() {
        let e = IdleLoanCallbackRequest::from_params(&params(
            r#"{"user_id":3,"type":"CREDIT","process_no":"x","channel_id":"w"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (40, "Missing required arguments:infos.status")
        );
        let e = IdleLoanCallbackRequest::from_params(&[("infos", "{}")].into_iter().collect())
            .unwrap_err();
        assert_eq!(e.msg, "Missing required arguments:user");
    }

    #[test]
    fn wrong_types_are_code_41_with_their_path() {
        let cases = [
            ("not json", "Invalid arguments:infos"),
            ("[1]", "Invalid arguments:infos"),
            (
                r#"{"user_id":3.5,"status":"S","type":"T","process_no":"p","channel_id":"c"}"#,
                "Invalid arguments:infos.user_id",
            ),
            (
                r#"{"user_id":"abc","status":"S","type":"T","process_no":"p","channel_id":"c"}"#,
                "Invalid arguments:infos.user_id",
            ),
            (
                r#"{"user_id":99999999999999999999,"status":"S","type":"T","process_no":"p","channel_id":"c"}"#,
                "Invalid arguments:infos.user_id",
            ),
            (
                r#"{"user_id":3,"status":"S","type":"T","process_no":"p","channel_id":"c","submit_time":"yesterday"}"#,
                "Invalid arguments:infos.submit_time",
            ),
            (
                r#"{"user_id":3,"status":"S","type":"T","process_no":"p","channel_id":"c","fund_products":[1]}"#,
                "Invalid arguments:infos.fund_products",
            ),
            (
                r#"{"user_id":3,"status":true,"type":"T","process_no":"p","channel_id":"c"}"#,
                "Invalid arguments:infos.status",
            ),
        ];
        for (infos, msg) in cases {
            let e = IdleLoanCallbackRequest::from_params(&params(infos)).unwrap_err();
            assert_eq!((e.code, e.msg.as_str()), (41, msg), "for {infos}");
        }
    }

    #[test]
    fn large_user_ids_keep_every_digit() {
        let r = IdleLoanCallbackRequest::from_params(&params(r#"{"user_id":9007199254740993,"status":"S","type":"T","process_no":"p","channel_id":"c"}"#)).unwrap();
        assert_eq!(r.infos.user_id, 9_007_199_254_740_993);
        let r = IdleLoanCallbackRequest::from_params(&params(r#"{"user_id":"9223372036854775807","status":"S","type":"T","process_no":"p","channel_id":"c"}"#)).unwrap();
        assert_eq!(r.infos.user_id, i64::MAX);
    }

    #[test]
    fn refusals_are_business_failures_and_acceptance_is_not() {
        assert_eq!(
            IdleLoanCallbackResponse::accepted().business_failure(),
            None
        );
        let f = IdleLoanCallbackResponse::refused("USER_MISMATCH", "bound to another user")
            .business_failure()
            .unwrap();
        assert_eq!(f.code, "USER_MISMATCH");
    }
}
