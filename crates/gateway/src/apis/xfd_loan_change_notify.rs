//! `alibaba.finance.xfd.loan.change.notify`: parse, check, apply (SPEC 2.2).

use std::sync::{Arc, Mutex};

use loanwire_api::xfd_loan_change_notify::{
    XfdLoanChangeExternalRequest, XfdLoanChangeNotifyResponse,
};
use loanwire_api::{TopApi, XfdLoanChangeNotifyRequest};
use loanwire_domain::idempotency::{self, Check, IdempotencyRecord, IDEMPOTENCY_CONFLICT};
use loanwire_domain::loan::{self, LoanDecision};
use loanwire_domain::Outcome;
use loanwire_store::{App, Tx, Work};
use loanwire_top::Params;
use serde_json::{json, Map, Value};

use super::{body_of, refusal, CallMeta, Prepared, Subject};
use crate::state::AppState;

pub fn prepare(state: &AppState, _app: &App, params: &Params, meta: CallMeta) -> Prepared {
    let req = match XfdLoanChangeNotifyRequest::from_params(params) {
        Ok(r) => r.param_xfd_loan_change_external_request,
        Err(e) => return refusal(meta, e, None).into(),
    };
    let about = Subject {
        subject: Some(loan::subject(&req.loan_apply_no)),
        idempotency_key: Some(req.request_id.clone()),
        detail: json!({
            "before_status": req.before_status,
            "after_status": req.after_status,
            "change_time": req.change_time,
        })
        .to_string(),
    };
    let skew =
        chrono::Duration::from_std(state.config.skew()).unwrap_or(chrono::Duration::minutes(10));
    if let Err(e) = loan::validate(&state.config.domain, &req, meta.now, skew) {
        return refusal(meta, e, Some(about)).into();
    }
    let fingerprint = idempotency::fingerprint(&req);
    if let Some(seen) = state.answered.get(&meta.app_key, &req.request_id) {
        // Answered and committed before, and a committed record never changes: decided here,
        // rendered here, and the writer only records the call.
        let (outcome, biz_code, body) = seen_before(&seen, &fingerprint, &req, &meta);
        let response = meta.render(&body);
        let work: Work = Box::new(move |tx: &mut dyn Tx| {
            meta.record(tx, outcome, &about, biz_code.clone(), response.clone())
        });
        return work.into();
    }
    // The record this call answered with or found, for the in-memory map once it commits.
    let known: Arc<Mutex<Option<Arc<IdempotencyRecord>>>> = Arc::default();
    let committed = {
        let (known, answered) = (known.clone(), state.answered.clone());
        let (app_key, request_id) = (meta.app_key.clone(), req.request_id.clone());
        Box::new(move || {
            if let Some(record) = known.lock().expect("known record").take() {
                answered.remember(&app_key, &request_id, record);
            }
        })
    };
    let config = state.config.clone();
    let work = Box::new(move |tx: &mut dyn Tx| {
        // The unit may run again after a rollback: only what this run found or wrote counts.
        *known.lock().expect("known record") = None;
        let seen = tx.idempotency(&meta.app_key, &req.request_id)?;
        if let Some(seen) = seen {
            let (outcome, biz_code, body) = seen_before(&seen, &fingerprint, &req, &meta);
            *known.lock().expect("known record") = Some(Arc::new(seen));
            return meta.answer_body(tx, outcome, &about, biz_code, &body);
        }
        let current = tx.loan(&req.loan_apply_no)?;
        let decision = loan::decide(&config.domain, current.as_ref(), &req, &meta.app_key);
        let response = match decision.response(&meta.call_id) {
            Ok(r) => r,
            // Another institution's loan note: not this app's request_id space to remember.
            Err(e) => return meta.fail(tx, &about, &e),
        };
        if let LoanDecision::Apply { state, flags } = &decision {
            tx.put_loan(state, flags, meta.received_ms)?;
        }
        let body = body_of(&response);
        let record = IdempotencyRecord {
            fingerprint: fingerprint.clone(),
            response: body.clone(),
        };
        tx.put_idempotency(&meta.app_key, &req.request_id, &record, meta.received_ms)?;
        *known.lock().expect("known record") = Some(Arc::new(record));
        let biz_code = (!response.result.success).then(|| response.result.response_code.clone());
        meta.answer_body(tx, decision.outcome(), &about, biz_code, &body)
    });
    Prepared {
        work,
        committed: Some(committed),
    }
}

/// How a call is answered whose `request_id` was answered before: the same content replays the
/// stored answer, other content is an idempotency conflict (outcome, biz code, response fields).
fn seen_before(
    seen: &IdempotencyRecord,
    fingerprint: &str,
    req: &XfdLoanChangeExternalRequest,
    meta: &CallMeta,
) -> (Outcome, Option<String>, Map<String, Value>) {
    match idempotency::check(Some(seen), fingerprint) {
        Check::Replay(body) => (Outcome::Duplicate, None, body),
        // With a record, `check` is never `Fresh`.
        Check::Fresh | Check::Conflict => {
            let resp = XfdLoanChangeNotifyResponse::refused(
                IDEMPOTENCY_CONFLICT,
                format!(
                    "幂等号冲突: request_id `{}` was used before with other content",
                    req.request_id
                ),
                &meta.call_id,
            );
            (
                Outcome::Refused,
                Some(IDEMPOTENCY_CONFLICT.into()),
                body_of(&resp),
            )
        }
    }
}
