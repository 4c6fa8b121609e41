//! `alibaba.finance.xfd.loan.change.notify`: parse, check, apply (SPEC 2.2).

use loanwire_api::xfd_loan_change_notify::{
    XfdLoanChangeExternalRequest, XfdLoanChangeNotifyResponse, PARAM,
};
use loanwire_api::{TopApi, XfdLoanChangeNotifyRequest};
use loanwire_domain::idempotency::{self, Check, IdempotencyRecord, IDEMPOTENCY_CONFLICT};
use loanwire_domain::loan::{self, Flag, LoanDecision, LoanState};
use loanwire_domain::Outcome;
use loanwire_store::{App, NewEvent, Reads, Work};
use loanwire_top::text::echo;
use loanwire_top::{Params, TopDateTime};
use serde::Serialize;
use serde_json::json;

use super::{body_of, json_text, refusal, CallMeta, Prepared, Subject};
use crate::errors;
use crate::state::AppState;

/// The type of the events this API produces.
pub const LOAN_CHANGED: &str = "loan.changed";

/// A `loan.changed` event's subject, in the SPEC's field order.
#[derive(Serialize)]
struct LoanSubject<'a> {
    kind: &'static str,
    loan_apply_no: &'a str,
}

/// A `loan.changed` event's data, in the SPEC's field order.
#[derive(Serialize)]
struct LoanChanged<'a> {
    before_status: &'a str,
    after_status: &'a str,
    previous_status: Option<&'a str>,
    change_time: &'a TopDateTime,
    customer_id: &'a Option<String>,
    institution_loan_no: &'a Option<String>,
    needs_reconciliation: bool,
    reconciliation_reasons: &'a [Flag],
}

/// The `loan.changed` event of a change that turned `previous` into `next`.
fn changed(
    meta: &CallMeta,
    req: &XfdLoanChangeExternalRequest,
    previous: Option<&LoanState>,
    next: &LoanState,
    flags: &[Flag],
) -> NewEvent {
    let subject = LoanSubject {
        kind: "loan",
        loan_apply_no: &next.loan_apply_no,
    };
    let data = LoanChanged {
        before_status: &req.before_status,
        after_status: &req.after_status,
        previous_status: previous.map(|p| p.status.as_str()),
        change_time: &req.change_time,
        customer_id: &next.customer_id,
        institution_loan_no: &next.institution_loan_no,
        needs_reconciliation: next.needs_reconciliation,
        reconciliation_reasons: flags,
    };
    meta.event(LOAN_CHANGED, &req.request_id, &subject, &data)
}

pub fn prepare(state: &AppState, _app: &App, params: &Params, meta: CallMeta) -> Prepared {
    let req = match XfdLoanChangeNotifyRequest::from_params(params) {
        Ok(r) => r.param_xfd_loan_change_external_request,
        Err(e) => return refusal(meta, e, None).into(),
    };
    let about = Subject {
        subject: Some(loan::subject(&req.loan_apply_no)),
        idempotency_key: Some(req.request_id.clone()),
        detail: json_text(&json!({
            "before_status": req.before_status,
            "after_status": req.after_status,
            "change_time": req.change_time,
        })),
    };
    let fingerprint = idempotency::fingerprint(&req);
    let skew = state.config.skew();
    let change = match loan::validate(&state.config.domain, req, meta.now, skew) {
        Ok(c) => c,
        Err(invalid) => {
            return refusal(meta, errors::invalid_report(PARAM, invalid), Some(about)).into()
        }
    };
    let config = state.config.clone();
    let reads = {
        let req = change.request();
        Reads {
            loans: vec![req.loan_apply_no.clone()],
            idempotency: vec![(meta.app_key.clone(), req.request_id.clone())],
            ..Reads::default()
        }
    };
    let work: Work = Box::new(move |tx| {
        let req = change.request();
        // Read together even though a replay does not need the loan note: both are named in
        // `reads`, so PostgreSQL has read them with the batch before this runs.
        let (seen, current) =
            tx.idempotency_and_loan(&meta.app_key, &req.request_id, &req.loan_apply_no)?;
        match idempotency::check(seen.as_ref(), &fingerprint) {
            Check::Fresh => {}
            Check::Replay(body) => {
                return meta.answer_body(tx, Outcome::Duplicate, &about, None, &body)
            }
            Check::Conflict => {
                let resp = XfdLoanChangeNotifyResponse::refused(
                    IDEMPOTENCY_CONFLICT,
                    format!(
                        "幂等号冲突: request_id `{}` was used before with other content",
                        echo(&req.request_id)
                    ),
                    &meta.call_id,
                );
                return meta.answer(
                    tx,
                    Outcome::Refused,
                    &about,
                    Some(IDEMPOTENCY_CONFLICT.into()),
                    &resp,
                );
            }
        }
        let decision = loan::decide(&config.domain, current.as_ref(), &change, &meta.app_key);
        let response = match &decision {
            LoanDecision::Apply { state, flags } => {
                tx.put_loan(state, flags, meta.received_ms())?;
                tx.append_event(&changed(&meta, req, current.as_ref(), state, flags))?;
                XfdLoanChangeNotifyResponse::accepted(&meta.call_id)
            }
            LoanDecision::Duplicate | LoanDecision::Stale => {
                XfdLoanChangeNotifyResponse::accepted(&meta.call_id)
            }
            LoanDecision::Refused(f) => {
                XfdLoanChangeNotifyResponse::refused(f.code, &f.message, &meta.call_id)
            }
            // Another institution's loan note: not this app's request_id space to remember.
            LoanDecision::NotOwner => {
                let e = errors::permission_denied(format!(
                    "借据 {} 属于其他机构: the loan note belongs to another app",
                    echo(&req.loan_apply_no)
                ));
                return meta.fail(tx, &about, &e);
            }
        };
        let body = body_of(&response);
        tx.put_idempotency(
            &meta.app_key,
            &req.request_id,
            &IdempotencyRecord {
                fingerprint: fingerprint.clone(),
                response: body.clone(),
            },
            meta.received_ms(),
        )?;
        let biz_code = (!response.result.success).then(|| response.result.response_code.clone());
        meta.answer_body(tx, decision.outcome(), &about, biz_code, &body)
    });
    Prepared { work, reads }
}
