//! Loan notes, changed by `alibaba.finance.xfd.loan.change.notify` (SPEC 2.2).

use std::time::Duration;

use loanwire_api::xfd_loan_change_notify::XfdLoanChangeExternalRequest;
use loanwire_top::TopDateTime;
use serde::{Deserialize, Serialize};

use crate::process::check_vocabulary;
use crate::{DomainConfig, Invalid, Outcome, Refusal};

pub const ILLEGAL_STATUS_TRANSITION: &str = "ILLEGAL_STATUS_TRANSITION";
pub const LOAN_IDENTITY_MISMATCH: &str = "LOAN_IDENTITY_MISMATCH";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanState {
    pub loan_apply_no: String,
    pub status: String,
    /// The institution's app that reported it first; only it may change it.
    pub app_key: String,
    pub customer_id: Option<String>,
    pub institution_loan_no: Option<String>,
    /// The `change_time` of the last applied change.
    pub last_change_time: TopDateTime,
    pub needs_reconciliation: bool,
}

pub fn subject(loan_apply_no: &str) -> String {
    format!("loan:{loan_apply_no}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlagKind {
    /// `before_status` was not the stored status: a change was missed somewhere.
    Gap,
    /// A reversal (`CLEARED` → `OVERDUE`, a write-off undone …).
    Reversal,
}

impl FlagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::Gap => "GAP",
            FlagKind::Reversal => "REVERSAL",
        }
    }
}

/// Why a loan note needs reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub kind: FlagKind,
    /// The status the platform had.
    pub expected_status: String,
    /// The `before_status` the institution reported.
    pub reported_status: String,
    pub after_status: String,
    pub request_id: String,
    pub change_time: TopDateTime,
}

/// A change whose statuses are known, that changes something and is not from the future: the
/// only kind [`decide`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidChange(XfdLoanChangeExternalRequest);

impl ValidChange {
    pub fn request(&self) -> &XfdLoanChangeExternalRequest {
        &self.0
    }
}

/// Checks what needs no stored state. `now` and `skew` bound how far in the future a
/// `change_time` may be.
pub fn validate(
    cfg: &DomainConfig,
    req: XfdLoanChangeExternalRequest,
    now: TopDateTime,
    skew: Duration,
) -> Result<ValidChange, Invalid> {
    check_vocabulary("before_status", &req.before_status, &cfg.loan.statuses)?;
    check_vocabulary("after_status", &req.after_status, &cfg.loan.statuses)?;
    if req.before_status == req.after_status {
        return Err(Invalid {
            field: "after_status",
            reason: format!("after_status equals before_status ({})", req.after_status),
        });
    }
    crate::check_plausible("change_time", req.change_time)?;
    let latest = chrono::Duration::from_std(skew)
        .ok()
        .and_then(|skew| now.utc().checked_add_signed(skew));
    if latest.is_some_and(|latest| req.change_time.utc() > latest) {
        return Err(Invalid {
            field: "change_time",
            reason: format!(
                "change_time {} is in the future (gateway clock {now}, allowed skew {}s)",
                req.change_time,
                skew.as_secs()
            ),
        });
    }
    Ok(ValidChange(req))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoanDecision {
    /// Store this state, and these reasons for reconciliation.
    Apply {
        state: LoanState,
        flags: Vec<Flag>,
    },
    Duplicate,
    Stale,
    Refused(Refusal),
    /// The loan note belongs to another app (institution).
    NotOwner,
}

impl LoanDecision {
    pub fn outcome(&self) -> Outcome {
        match self {
            LoanDecision::Apply { .. } => Outcome::Applied,
            LoanDecision::Duplicate => Outcome::Duplicate,
            LoanDecision::Stale => Outcome::Stale,
            LoanDecision::Refused(_) | LoanDecision::NotOwner => Outcome::Refused,
        }
    }
}

/// Decides what a valid, fresh (not an idempotent replay) change does to the loan note.
pub fn decide(
    cfg: &DomainConfig,
    current: Option<&LoanState>,
    change: &ValidChange,
    app_key: &str,
) -> LoanDecision {
    let req = change.request();
    let Some(cur) = current else {
        return LoanDecision::Apply {
            state: LoanState {
                loan_apply_no: req.loan_apply_no.clone(),
                status: req.after_status.clone(),
                app_key: app_key.to_string(),
                customer_id: req.customer_id.clone(),
                institution_loan_no: req.institution_loan_no.clone(),
                last_change_time: req.change_time,
                needs_reconciliation: false,
            },
            flags: Vec::new(),
        };
    };
    if cur.app_key != app_key {
        return LoanDecision::NotOwner;
    }
    let contradicts = |bound: &Option<String>, reported: &Option<String>| matches!((bound, reported), (Some(b), Some(r)) if b != r);
    if contradicts(&cur.customer_id, &req.customer_id)
        || contradicts(&cur.institution_loan_no, &req.institution_loan_no)
    {
        return LoanDecision::Refused(Refusal {
            code: LOAN_IDENTITY_MISMATCH,
            message: "借据身份不一致: customer_id or institution_loan_no contradicts the loan note"
                .into(),
        });
    }
    if req.change_time < cur.last_change_time {
        return LoanDecision::Stale;
    }
    if req.after_status == cur.status {
        return LoanDecision::Duplicate;
    }
    if !cfg.loan_transition_allowed(&cur.status, &req.after_status) {
        return LoanDecision::Refused(Refusal {
            code: ILLEGAL_STATUS_TRANSITION,
            message: format!(
                "非法状态变更: a loan note cannot go from {} to {}",
                cur.status, req.after_status
            ),
        });
    }
    let mut flags = Vec::new();
    let flag = |kind| Flag {
        kind,
        expected_status: cur.status.clone(),
        reported_status: req.before_status.clone(),
        after_status: req.after_status.clone(),
        request_id: req.request_id.clone(),
        change_time: req.change_time,
    };
    if req.before_status != cur.status {
        flags.push(flag(FlagKind::Gap));
    }
    if cfg.loan_transition_is_reversal(&cur.status, &req.after_status) {
        flags.push(flag(FlagKind::Reversal));
    }
    let state = LoanState {
        status: req.after_status.clone(),
        customer_id: cur.customer_id.clone().or_else(|| req.customer_id.clone()),
        institution_loan_no: cur
            .institution_loan_no
            .clone()
            .or_else(|| req.institution_loan_no.clone()),
        last_change_time: req.change_time,
        needs_reconciliation: cur.needs_reconciliation || !flags.is_empty(),
        ..cur.clone()
    };
    LoanDecision::Apply { state, flags }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TopDateTime {
        TopDateTime::parse(s).unwrap()
    }

    fn change(before: &str, after: &str, at: &str) -> ValidChange {
        let later = t("2100-01-01 00:00:00");
        validate(
            &DomainConfig::default(),
            report(before, after, at),
            later,
            Duration::ZERO,
        )
        .unwrap()
    }

    fn report(before: &str, after: &str, at: &str) -> XfdLoanChangeExternalRequest {
        XfdLoanChangeExternalRequest {
            after_status: after.into(),
            before_status: before.into(),
            change_time: t(at),
            customer_id: Some("C1".into()),
            institution_loan_no: Some("I1".into()),
            loan_apply_no: "FI1".into(),
            request_id: format!("{before}-{after}-{at}"),
        }
    }

    fn loan(status: &str, at: &str) -> LoanState {
        LoanState {
            loan_apply_no: "FI1".into(),
            status: status.into(),
            app_key: "inst".into(),
            customer_id: Some("C1".into()),
            institution_loan_no: Some("I1".into()),
            last_change_time: t(at),
            needs_reconciliation: false,
        }
    }

    fn decide_on(status: &str, req: &ValidChange) -> LoanDecision {
        decide(
            &DomainConfig::default(),
            Some(&loan(status, "2024-01-01 00:00:00")),
            req,
            "inst",
        )
    }

    #[test]
    fn a_first_notification_creates_the_loan_note_bound_to_its_app_and_identity() {
        let d = decide(
            &DomainConfig::default(),
            None,
            &change("NEW", "NORMAL", "2024-01-01 00:00:00"),
            "inst",
        );
        let LoanDecision::Apply { state, flags } = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            (state.status.as_str(), state.app_key.as_str()),
            ("NORMAL", "inst")
        );
        assert_eq!(state.customer_id.as_deref(), Some("C1"));
        assert!(flags.is_empty());
    }

    #[test]
    fn an_allowed_transition_applies() {
        let d = decide_on(
            "NORMAL",
            &change("NORMAL", "OVERDUE", "2024-01-02 00:00:00"),
        );
        assert!(
            matches!(d, LoanDecision::Apply { ref state, ref flags } if state.status == "OVERDUE" && flags.is_empty())
        );
    }

    #[test]
    fn an_older_change_is_stale() {
        assert_eq!(
            decide_on("NORMAL", &change("NEW", "NORMAL", "2023-12-31 23:59:59")),
            LoanDecision::Stale
        );
    }

    #[test]
    fn a_forbidden_transition_is_refused() {
        let d = decide_on(
            "CANCELLED",
            &change("CANCELLED", "NORMAL", "2024-01-02 00:00:00"),
        );
        assert!(
            matches!(d, LoanDecision::Refused(ref f) if f.code == ILLEGAL_STATUS_TRANSITION),
            "{d:?}"
        );
        let d = decide_on(
            "OVERDUE",
            &change("OVERDUE", "CANCELLED", "2024-01-02 00:00:00"),
        );
        assert!(matches!(d, LoanDecision::Refused(_)));
    }

    #[test]
    fn a_gap_is_applied_and_flagged_with_both_statuses() {
        let d = decide_on(
            "NORMAL",
            &change("OVERDUE", "CLEARED", "2024-01-02 00:00:00"),
        );
        let LoanDecision::Apply { state, flags } = d else {
            panic!()
        };
        assert_eq!(state.status, "CLEARED");
        assert!(state.needs_reconciliation);
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].kind, FlagKind::Gap);
        assert_eq!(
            (
                flags[0].expected_status.as_str(),
                flags[0].reported_status.as_str()
            ),
            ("NORMAL", "OVERDUE")
        );
    }

    #[test]
    fn a_reversal_is_applied_and_flagged() {
        let d = decide_on(
            "CLEARED",
            &change("CLEARED", "OVERDUE", "2024-01-02 00:00:00"),
        );
        let LoanDecision::Apply { state, flags } = d else {
            panic!()
        };
        assert_eq!(state.status, "OVERDUE");
        assert!(state.needs_reconciliation);
        assert_eq!(flags[0].kind, FlagKind::Reversal);
    }

    #[test]
    fn another_app_is_not_the_owner() {
        let d = decide(
            &DomainConfig::default(),
            Some(&loan("NORMAL", "2024-01-01 00:00:00")),
            &change("NORMAL", "OVERDUE", "2024-01-02 00:00:00"),
            "intruder",
        );
        assert_eq!(d, LoanDecision::NotOwner);
        assert_eq!(d.outcome(), Outcome::Refused);
    }

    #[test]
    fn a_contradicting_identity_is_refused_and_a_missing_one_is_filled() {
        let mut r = report("NORMAL", "OVERDUE", "2024-01-02 00:00:00");
        r.customer_id = Some("C2".into());
        let r = validate(
            &DomainConfig::default(),
            r,
            t("2100-01-01 00:00:00"),
            Duration::ZERO,
        )
        .unwrap();
        assert!(
            matches!(decide_on("NORMAL", &r), LoanDecision::Refused(ref f) if f.code == LOAN_IDENTITY_MISMATCH)
        );
        let mut cur = loan("NORMAL", "2024-01-01 00:00:00");
        cur.institution_loan_no = None;
        let r = change("NORMAL", "OVERDUE", "2024-01-02 00:00:00");
        let LoanDecision::Apply { state, .. } =
            decide(&DomainConfig::default(), Some(&cur), &r, "inst")
        else {
            panic!()
        };
        assert_eq!(state.institution_loan_no.as_deref(), Some("I1"));
    }

    #[test]
    fn validation_refuses_unknown_statuses_no_change_and_the_future() {
        let cfg = DomainConfig::default();
        let now = t("2024-01-01 00:00:00");
        let skew = Duration::from_secs(600);
        let field = |r| validate(&cfg, r, now, skew).map(|_| ()).unwrap_err().field;
        assert_eq!(
            field(report("NEW", "PAID", "2024-01-01 00:00:00")),
            "after_status"
        );
        assert_eq!(
            field(report("PAID", "NEW", "2024-01-01 00:00:00")),
            "before_status"
        );
        assert_eq!(
            field(report("NEW", "NEW", "2024-01-01 00:00:00")),
            "after_status"
        );
        assert_eq!(
            field(report("NEW", "NORMAL", "2024-01-01 00:10:01")),
            "change_time"
        );
        assert!(validate(
            &cfg,
            report("NEW", "NORMAL", "2024-01-01 00:09:59"),
            now,
            skew
        )
        .is_ok());
    }
}
