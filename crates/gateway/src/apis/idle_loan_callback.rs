//! `alibaba.idle.interact.loan.callback`: parse, check, apply (SPEC 2.1).

use loanwire_api::{IdleLoanCallbackRequest, TopApi};
use loanwire_domain::process::{self, ProcessDecision, ProcessKey};
use loanwire_store::{App, Work};
use loanwire_top::error::sub_code;
use loanwire_top::{ErrorCode, Params, TopError};
use serde_json::json;

use super::{refusal, CallMeta, Subject};
use crate::state::AppState;

pub fn prepare(state: &AppState, app: &App, params: &Params, meta: CallMeta) -> Work {
    let req = match IdleLoanCallbackRequest::from_params(params) {
        Ok(r) => r,
        Err(e) => return refusal(meta, e, None),
    };
    let key = ProcessKey::of(&req);
    let about = Subject {
        subject: Some(key.subject()),
        idempotency_key: None,
        detail: json!({
            "status": req.infos.status,
            "user": req.user,
            "user_id": req.infos.user_id,
        })
        .to_string(),
    };
    if !app.may_report_for(&req.infos.channel_id) {
        let e = TopError::new(ErrorCode::InsufficientIsvPermissions).with_sub(
            sub_code::PERMISSION_DENIED,
            format!("the app is not granted channel `{}`", req.infos.channel_id),
        );
        return refusal(meta, e, Some(about));
    }
    if let Err(e) = process::validate(&state.config.domain, &req) {
        return refusal(meta, e, Some(about));
    }
    let config = state.config.clone();
    Box::new(move |tx| {
        let current = tx.process(&key)?;
        let decision = process::decide(&config.domain, current.as_ref(), &req, &meta.app_key);
        if let ProcessDecision::Apply(next) = &decision {
            tx.put_process(next, meta.received_ms)?;
        }
        let biz_code = match &decision {
            ProcessDecision::Refused(f) => Some(f.code.clone()),
            _ => None,
        };
        meta.answer(
            tx,
            decision.outcome(),
            &about,
            biz_code,
            &decision.response(),
        )
    })
}
