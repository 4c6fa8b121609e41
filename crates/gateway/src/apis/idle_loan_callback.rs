//! `alibaba.idle.interact.loan.callback`: parse, check, apply (SPEC 2.1).

use loanwire_api::idle_loan_callback::IdleLoanCallbackResponse;
use loanwire_api::{IdleLoanCallbackRequest, TopApi};
use loanwire_domain::process::{self, ProcessDecision, ProcessKey, ProcessState};
use loanwire_store::{App, NewEvent, Reads, Work};
use loanwire_top::text::echo;
use loanwire_top::{Params, TopDateTime};
use serde::Serialize;
use serde_json::json;

use super::{json_text, refusal, CallMeta, Prepared, Subject};
use crate::errors;
use crate::state::AppState;

/// The API parameter that carries the report.
const PARAM: &str = "infos";

/// A `process.changed` event's subject, in the SPEC's field order.
#[derive(Serialize)]
struct ProcessSubject<'a> {
    kind: &'static str,
    channel_id: &'a str,
    #[serde(rename = "type")]
    process_type: &'a str,
    process_no: &'a str,
}

/// A `process.changed` event's data, in the SPEC's field order.
#[derive(Serialize)]
struct ProcessChanged<'a> {
    status: &'a str,
    previous_status: Option<&'a str>,
    user: &'a str,
    user_id: i64,
    submit_time: &'a Option<TopDateTime>,
    complete_time: &'a Option<TopDateTime>,
    fund_products: &'a Option<Vec<String>>,
}

/// The `process.changed` event of a callback that changed `previous` into `next`.
fn changed(meta: &CallMeta, previous: Option<&ProcessState>, next: &ProcessState) -> NewEvent {
    let subject = ProcessSubject {
        kind: "process",
        channel_id: &next.key.channel_id,
        process_type: &next.key.process_type,
        process_no: &next.key.process_no,
    };
    let data = ProcessChanged {
        status: &next.status,
        previous_status: previous.map(|p| p.status.as_str()),
        user: &next.user,
        user_id: next.user_id,
        submit_time: &next.submit_time,
        complete_time: &next.complete_time,
        fund_products: &next.fund_products,
    };
    meta.event(PROCESS_CHANGED, &meta.call_id, &subject, &data)
}

/// The type of the events this API produces.
pub const PROCESS_CHANGED: &str = "process.changed";

pub fn prepare(state: &AppState, app: &App, params: &Params, meta: CallMeta) -> Prepared {
    let req = match IdleLoanCallbackRequest::from_params(params) {
        Ok(r) => r,
        Err(e) => return refusal(meta, e, None).into(),
    };
    let key = ProcessKey::of(&req);
    let about = Subject {
        subject: Some(key.subject()),
        idempotency_key: None,
        detail: json_text(&json!({
            "status": req.infos.status,
            "user": req.user,
            "user_id": req.infos.user_id,
        })),
    };
    if !app.may_report_for(&req.infos.channel_id) {
        let e = errors::permission_denied(format!(
            "the app is not granted channel `{}`",
            echo(&req.infos.channel_id)
        ));
        return refusal(meta, e, Some(about)).into();
    }
    let callback = match process::validate(&state.config.domain, req) {
        Ok(c) => c,
        Err(invalid) => {
            return refusal(meta, errors::invalid_report(PARAM, invalid), Some(about)).into()
        }
    };
    let config = state.config.clone();
    let reads = Reads {
        processes: vec![key.clone()],
        ..Reads::default()
    };
    let work: Work = Box::new(move |tx| {
        let current = tx.process(&key)?;
        let decision = process::decide(&config.domain, current.as_ref(), &callback, &meta.app_key);
        let (response, biz_code) = match &decision {
            ProcessDecision::Apply(next) => {
                tx.put_process(next, meta.received_ms())?;
                tx.append_event(&changed(&meta, current.as_ref(), next))?;
                (IdleLoanCallbackResponse::accepted(), None)
            }
            ProcessDecision::Refused(f) => (
                IdleLoanCallbackResponse::refused(f.code, &f.message),
                Some(f.code.to_string()),
            ),
            ProcessDecision::Duplicate | ProcessDecision::Stale => {
                (IdleLoanCallbackResponse::accepted(), None)
            }
        };
        meta.answer(tx, decision.outcome(), &about, biz_code, &response)
    });
    Prepared { work, reads }
}
