//! What the store's integration tests build their units of work from.

use loanwire_domain::process::{ProcessKey, ProcessState};
use loanwire_domain::Outcome;
use loanwire_store::InboxEntry;

pub fn key(no: &str) -> ProcessKey {
    ProcessKey {
        channel_id: "c".into(),
        process_type: "CREDIT".into(),
        process_no: no.into(),
    }
}

/// A process in progress, reported by app `app`.
pub fn process(no: &str) -> ProcessState {
    ProcessState {
        key: key(no),
        user: "u".into(),
        user_id: 1,
        status: "IN_PROCESSING".into(),
        submit_time: None,
        complete_time: None,
        fund_products: None,
        app_key: "app".into(),
    }
}

/// An applied call of app `app`, about no subject.
pub fn entry(call_id: &str) -> InboxEntry {
    InboxEntry {
        call_id: call_id.into(),
        received_ms: 0,
        app_key: "app".into(),
        method: "m".into(),
        params: "{}".into(),
        outcome: Outcome::Applied,
        error_code: None,
        biz_code: None,
        subject: None,
        idempotency_key: None,
        detail: "{}".into(),
        response: "r".into(),
    }
}
