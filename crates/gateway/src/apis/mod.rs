//! One module per TOP API. Its `prepare` parses the parameters into a typed request, has the
//! domain validate what needs no stored state, and returns the unit of work that decides on
//! the stored state, applies the decision, renders the answer and appends the inbox record —
//! all in one transaction. Here the domain's decisions become TOP answers.

pub mod idle_loan_callback;
pub mod xfd_loan_change_notify;

use loanwire_domain::Outcome;
use loanwire_store::{App, InboxEntry, NewEvent, Reads, Recorded, Tx, Work};
use loanwire_top::envelope::{render_error, render_success, Style};
use loanwire_top::{Params, TopDateTime, TopError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::state::AppState;

/// The APIs this gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    IdleLoanCallback,
    XfdLoanChangeNotify,
}

impl Api {
    pub const ALL: [Api; 2] = [Api::IdleLoanCallback, Api::XfdLoanChangeNotify];

    pub fn method(self) -> &'static str {
        match self {
            Api::IdleLoanCallback => loanwire_api::idle_loan_callback::METHOD,
            Api::XfdLoanChangeNotify => loanwire_api::xfd_loan_change_notify::METHOD,
        }
    }

    pub fn from_method(method: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|a| a.method() == method)
    }

    pub fn prepare(self, state: &AppState, app: &App, params: &Params, meta: CallMeta) -> Prepared {
        match self {
            Api::IdleLoanCallback => idle_loan_callback::prepare(state, app, params, meta),
            Api::XfdLoanChangeNotify => xfd_loan_change_notify::prepare(state, app, params, meta),
        }
    }
}

/// A call's unit of work and the rows it will read (so that a store with round trips reads them
/// with the rest of its batch's).
pub struct Prepared {
    pub work: Work,
    pub reads: Reads,
}

impl From<Work> for Prepared {
    /// A unit that reads nothing (a refusal).
    fn from(work: Work) -> Prepared {
        Prepared {
            work,
            reads: Reads::default(),
        }
    }
}

/// What is known of an authenticated call before its API runs.
#[derive(Debug, Clone)]
pub struct CallMeta {
    /// The envelope's `request_id`.
    pub call_id: String,
    /// When the call was received: its one clock reading.
    pub now: TopDateTime,
    pub app_key: String,
    pub method: String,
    /// Every parameter as received, rendered as a JSON object.
    pub params: String,
    pub style: Style,
}

/// What a call was about, for the inbox.
#[derive(Debug, Clone)]
pub struct Subject {
    pub subject: Option<String>,
    pub idempotency_key: Option<String>,
    /// A JSON object, rendered before the unit of work.
    pub detail: String,
}

impl Default for Subject {
    /// A call refused before its API could say what it was about: no subject, no detail.
    fn default() -> Self {
        Subject {
            subject: None,
            idempotency_key: None,
            detail: "{}".into(),
        }
    }
}

impl CallMeta {
    pub fn received_ms(&self) -> i64 {
        self.now.epoch_millis()
    }

    fn entry(&self, outcome: Outcome, about: &Subject, response: &str) -> InboxEntry {
        InboxEntry {
            call_id: self.call_id.clone(),
            received_ms: self.received_ms(),
            app_key: self.app_key.clone(),
            method: self.method.clone(),
            params: self.params.clone(),
            outcome,
            error_code: None,
            biz_code: None,
            subject: about.subject.clone(),
            idempotency_key: about.idempotency_key.clone(),
            detail: about.detail.clone(),
            response: response.to_string(),
        }
    }

    /// Records and renders a success envelope (which may carry `success=false`).
    pub fn answer<R: Serialize>(
        &self,
        tx: &mut dyn Tx,
        outcome: Outcome,
        about: &Subject,
        biz_code: Option<String>,
        response: &R,
    ) -> Result<Recorded, loanwire_store::StoreError> {
        let body = body_of(response);
        self.answer_body(tx, outcome, about, biz_code, &body)
    }

    pub fn answer_body(
        &self,
        tx: &mut dyn Tx,
        outcome: Outcome,
        about: &Subject,
        biz_code: Option<String>,
        body: &Map<String, Value>,
    ) -> Result<Recorded, loanwire_store::StoreError> {
        let response = render_success(&self.method, body, &self.call_id, self.style);
        let mut entry = self.entry(outcome, about, &response);
        entry.biz_code = biz_code;
        let inbox_id = tx.append_inbox(&entry)?;
        Ok(Recorded {
            outcome,
            response,
            inbox_id,
        })
    }

    /// The event of the change this call applied (SPEC 3.1): `subject` and `data` in the
    /// SPEC's field order.
    pub fn event(
        &self,
        event_type: &str,
        request_id: &str,
        subject: &impl Serialize,
        data: &impl Serialize,
    ) -> NewEvent {
        NewEvent {
            id: format!("evt_{}", ulid::Ulid::new()),
            event_type: event_type.to_string(),
            recorded_ms: self.received_ms(),
            app_key: self.app_key.clone(),
            request_id: request_id.to_string(),
            subject: json_text(subject),
            data: json_text(data),
        }
    }

    /// Records and renders an `error_response`.
    pub fn fail(
        &self,
        tx: &mut dyn Tx,
        about: &Subject,
        error: &TopError,
    ) -> Result<Recorded, loanwire_store::StoreError> {
        let error = error.clone().with_request_id(&self.call_id);
        let response = render_error(&error, self.style.format);
        let mut entry = self.entry(Outcome::Refused, about, &response);
        entry.error_code = Some(error.code);
        let inbox_id = tx.append_inbox(&entry)?;
        Ok(Recorded {
            outcome: Outcome::Refused,
            response,
            inbox_id,
        })
    }
}

/// Event and detail fields as JSON text, written into one buffer by `serde_json::to_string`
/// (`Value`'s `Display` goes through a formatter per fragment, at about twice the instructions,
/// on every call).
pub fn json_text(v: &impl Serialize) -> String {
    serde_json::to_string(v).expect("event and detail fields serialize")
}

pub fn body_of<R: Serialize>(response: &R) -> Map<String, Value> {
    match serde_json::to_value(response).expect("responses serialize") {
        Value::Object(m) => m,
        other => panic!("a response must be an object, got {other}"),
    }
}

/// A call refused before its API's work: recorded with its error answer, nothing else changes.
pub fn refusal(meta: CallMeta, error: TopError, about: Option<Subject>) -> Work {
    let about = about.unwrap_or_default();
    Box::new(move |tx| meta.fail(tx, &about, &error))
}
