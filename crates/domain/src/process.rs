//! Xianyu credit/loan processes, reported by `alibaba.idle.interact.loan.callback` (SPEC 2.1).

use loanwire_api::idle_loan_callback::IdleLoanCallbackRequest;
use serde::{Deserialize, Serialize};

use crate::{DomainConfig, Invalid, Outcome, Refusal};
use loanwire_top::text::echo;
use loanwire_top::TopDateTime;

pub const USER_MISMATCH: &str = "USER_MISMATCH";
pub const TERMINAL_STATUS_CONFLICT: &str = "TERMINAL_STATUS_CONFLICT";

/// A process is identified by (`channel_id`, `type`, `process_no`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessKey {
    pub channel_id: String,
    pub process_type: String,
    pub process_no: String,
}

impl ProcessKey {
    pub fn of(req: &IdleLoanCallbackRequest) -> ProcessKey {
        ProcessKey {
            channel_id: req.infos.channel_id.clone(),
            process_type: req.infos.process_type.clone(),
            process_no: req.infos.process_no.clone(),
        }
    }

    /// The inbox subject of calls about this process; JSON keeps a `/` in a part unambiguous.
    pub fn subject(&self) -> String {
        format!(
            "process:{}",
            serde_json::json!([self.channel_id, self.process_type, self.process_no])
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessState {
    pub key: ProcessKey,
    pub user: String,
    pub user_id: i64,
    pub status: String,
    pub submit_time: Option<TopDateTime>,
    pub complete_time: Option<TopDateTime>,
    pub fund_products: Option<Vec<String>>,
    /// The app that reported it first.
    pub app_key: String,
}

/// A callback whose vocabulary and times are valid: the only kind [`decide`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCallback(IdleLoanCallbackRequest);

impl ValidCallback {
    pub fn request(&self) -> &IdleLoanCallbackRequest {
        &self.0
    }
}

/// Checks what needs no stored state.
pub fn validate(
    cfg: &DomainConfig,
    req: IdleLoanCallbackRequest,
) -> Result<ValidCallback, Invalid> {
    let i = &req.infos;
    check_vocabulary("type", &i.process_type, &cfg.process.types)?;
    check_vocabulary("status", &i.status, &cfg.process.statuses)?;
    for (field, t) in [
        ("submit_time", i.submit_time),
        ("complete_time", i.complete_time),
    ] {
        if let Some(t) = t {
            crate::check_plausible(field, t)?;
        }
    }
    if let (Some(submit), Some(complete)) = (i.submit_time, i.complete_time) {
        if complete < submit {
            return Err(Invalid {
                field: "complete_time",
                reason: format!("complete_time {complete} is earlier than submit_time {submit}"),
            });
        }
    }
    Ok(ValidCallback(req))
}

pub(crate) fn check_vocabulary(
    field: &'static str,
    value: &str,
    allowed: &[String],
) -> Result<(), Invalid> {
    if allowed.iter().any(|a| a == value) {
        return Ok(());
    }
    Err(Invalid {
        field,
        reason: format!(
            "unknown value `{}`; allowed: {}",
            echo(value),
            allowed.join(", ")
        ),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessDecision {
    /// Store this state (new or changed).
    Apply(ProcessState),
    Duplicate,
    Stale,
    Refused(Refusal),
}

impl ProcessDecision {
    pub fn outcome(&self) -> Outcome {
        match self {
            ProcessDecision::Apply(_) => Outcome::Applied,
            ProcessDecision::Duplicate => Outcome::Duplicate,
            ProcessDecision::Stale => Outcome::Stale,
            ProcessDecision::Refused(_) => Outcome::Refused,
        }
    }
}

/// Decides what a valid callback does to the process as stored.
pub fn decide(
    cfg: &DomainConfig,
    current: Option<&ProcessState>,
    callback: &ValidCallback,
    app_key: &str,
) -> ProcessDecision {
    let req = callback.request();
    let i = &req.infos;
    let Some(cur) = current else {
        return ProcessDecision::Apply(ProcessState {
            key: ProcessKey::of(req),
            user: req.user.clone(),
            user_id: i.user_id,
            status: i.status.clone(),
            submit_time: i.submit_time,
            complete_time: i.complete_time,
            fund_products: i.fund_products.clone(),
            app_key: app_key.to_string(),
        });
    };
    if cur.user != req.user || cur.user_id != i.user_id {
        return ProcessDecision::Refused(Refusal {
            code: USER_MISMATCH,
            message: "流程已绑定其他用户: the process is bound to another user / user_id".into(),
        });
    }
    if cur.status == i.status {
        return ProcessDecision::Duplicate;
    }
    if cfg.process_status_is_terminal(&cur.status) {
        if cfg.process_status_is_terminal(&i.status) {
            return ProcessDecision::Refused(Refusal {
                code: TERMINAL_STATUS_CONFLICT,
                message: format!(
                    "流程已终态: the process already ended {}, it cannot become {}",
                    cur.status, i.status
                ),
            });
        }
        // A late report of an earlier, non-terminal step.
        return ProcessDecision::Stale;
    }
    let mut next = cur.clone();
    next.status = i.status.clone();
    if i.submit_time.is_some() {
        next.submit_time = i.submit_time;
    }
    if i.complete_time.is_some() {
        next.complete_time = i.complete_time;
    }
    if i.fund_products.is_some() {
        next.fund_products = i.fund_products.clone();
    }
    ProcessDecision::Apply(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loanwire_api::idle_loan_callback::IdleLoanCallbackInfo;

    fn req(status: &str, user: &str, user_id: i64) -> IdleLoanCallbackRequest {
        IdleLoanCallbackRequest {
            user: user.into(),
            infos: IdleLoanCallbackInfo {
                channel_id: "wzzx".into(),
                complete_time: None,
                fund_products: None,
                process_no: "P1".into(),
                status: status.into(),
                submit_time: None,
                process_type: "CREDIT".into(),
                user_id,
            },
        }
    }

    fn valid(r: IdleLoanCallbackRequest) -> ValidCallback {
        validate(&DomainConfig::default(), r).unwrap()
    }

    fn stored(status: &str) -> ProcessState {
        match decide(
            &DomainConfig::default(),
            None,
            &valid(req(status, "u", 1)),
            "app",
        ) {
            ProcessDecision::Apply(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn after(current: &str, report: &str) -> ProcessDecision {
        decide(
            &DomainConfig::default(),
            Some(&stored(current)),
            &valid(req(report, "u", 1)),
            "app",
        )
    }

    #[test]
    fn a_first_callback_creates_the_process_in_any_status() {
        for s in ["IN_PROCESSING", "SUCCESS", "FAIL"] {
            assert_eq!(stored(s).status, s);
        }
    }

    #[test]
    fn in_processing_moves_to_either_terminal_status() {
        assert!(
            matches!(after("IN_PROCESSING", "SUCCESS"), ProcessDecision::Apply(s) if s.status == "SUCCESS")
        );
        assert!(
            matches!(after("IN_PROCESSING", "FAIL"), ProcessDecision::Apply(s) if s.status == "FAIL")
        );
    }

    #[test]
    fn repeating_the_current_status_is_a_duplicate() {
        assert_eq!(
            after("IN_PROCESSING", "IN_PROCESSING"),
            ProcessDecision::Duplicate
        );
        assert_eq!(after("SUCCESS", "SUCCESS"), ProcessDecision::Duplicate);
    }

    #[test]
    fn a_late_in_processing_after_a_terminal_status_is_stale() {
        assert_eq!(after("SUCCESS", "IN_PROCESSING"), ProcessDecision::Stale);
        assert_eq!(after("FAIL", "IN_PROCESSING"), ProcessDecision::Stale);
    }

    #[test]
    fn contradicting_terminal_statuses_conflict() {
        let d = after("SUCCESS", "FAIL");
        assert_eq!(d.outcome(), Outcome::Refused);
        assert!(
            matches!(d, ProcessDecision::Refused(ref f) if f.code == TERMINAL_STATUS_CONFLICT),
            "{d:?}"
        );
    }

    #[test]
    fn another_user_is_a_mismatch() {
        let cur = stored("IN_PROCESSING");
        for (user, id) in [("other", 1), ("u", 2)] {
            let d = decide(
                &DomainConfig::default(),
                Some(&cur),
                &valid(req("SUCCESS", user, id)),
                "app",
            );
            assert!(
                matches!(d, ProcessDecision::Refused(ref f) if f.code == USER_MISMATCH),
                "{d:?}"
            );
        }
    }

    #[test]
    fn unknown_vocabulary_and_reversed_times_are_invalid_and_name_the_field() {
        let cfg = DomainConfig::default();
        let e = validate(&cfg, req("DONE", "u", 1)).unwrap_err();
        assert_eq!(e.field, "status");
        assert!(e.reason.contains("IN_PROCESSING, SUCCESS, FAIL"), "{e}");
        let mut r = req("SUCCESS", "u", 1);
        r.infos.process_type = "MORTGAGE".into();
        assert_eq!(validate(&cfg, r).unwrap_err().field, "type");
        let mut r = req("SUCCESS", "u", 1);
        r.infos.submit_time = Some(TopDateTime::parse("2025-01-17 16:00:00").unwrap());
        r.infos.complete_time = Some(TopDateTime::parse("2025-01-17 15:59:59").unwrap());
        assert_eq!(validate(&cfg, r).unwrap_err().field, "complete_time");
        let mut r = req("SUCCESS", "u", 1);
        r.infos.submit_time = Some(TopDateTime::parse("0000-01-01 00:00:00").unwrap());
        assert_eq!(validate(&cfg, r).unwrap_err().field, "submit_time");
    }
}
