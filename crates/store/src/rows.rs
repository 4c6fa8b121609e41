//! Rows as both backends store them, and their mapping to and from the domain and the views.
//!
//! A backend only moves these rows between its SQL and Rust: columns in, columns out. What a
//! column means — JSON lists, epoch milliseconds, flags, the stored idempotency answer — is
//! decided here, once, so that the two backends cannot drift apart.

use loanwire_domain::idempotency::IdempotencyRecord;
use loanwire_domain::loan::{Flag, LoanState};
use loanwire_domain::process::{ProcessKey, ProcessState};
use loanwire_top::time::format_ms;
use loanwire_top::TopDateTime;
use serde_json::Value;

use crate::{
    Actor, App, AuditEntry, AuditNote, Event, HistoryEntry, InboxRecord, LoanView, ProcessView,
    Resolution, Role, StoreError, TimelineEntry, Token,
};

/// A stored value that does not read back as what was written: the database was changed
/// behind loanwire's back, or is damaged.
pub(crate) fn unreadable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("unreadable {what}: {e}"))
}

/// A list of strings as its JSON text; `None` stays NULL.
pub fn list_to_json(v: &Option<Vec<String>>) -> Option<String> {
    v.as_ref()
        .map(|l| serde_json::to_string(l).expect("strings serialize"))
}

fn list_from_json(what: &str, v: Option<String>) -> Result<Option<Vec<String>>, StoreError> {
    v.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| unreadable(what, e))
}

fn time(what: &str, ms: Option<i64>) -> Result<Option<TopDateTime>, StoreError> {
    ms.map(|ms| TopDateTime::from_epoch_millis(ms).ok_or_else(|| unreadable(what, ms)))
        .transpose()
}

/// Epoch milliseconds as RFC 3339, UTC, with milliseconds: how the JSON APIs write times.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The `apps` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    pub app_key: String,
    pub name: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_ms: Option<i64>,
    /// JSON arrays; NULL: any.
    pub channels: Option<String>,
    pub methods: Option<String>,
    pub rate_limit: Option<i64>,
    pub enabled: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl AppRow {
    pub fn of(a: &App) -> AppRow {
        AppRow {
            app_key: a.app_key.clone(),
            name: a.name.clone(),
            secret: a.secret.clone(),
            previous_secret: a.previous_secret.clone(),
            previous_secret_expires_ms: a.previous_secret_expires_ms,
            channels: list_to_json(&a.channels),
            methods: list_to_json(&a.methods),
            rate_limit: a.rate_limit.map(i64::from),
            enabled: a.enabled,
            created_ms: a.created_ms,
            updated_ms: a.updated_ms,
        }
    }

    pub fn into_app(self) -> Result<App, StoreError> {
        Ok(App {
            channels: list_from_json("app channels", self.channels)?,
            methods: list_from_json("app methods", self.methods)?,
            rate_limit: self
                .rate_limit
                .map(|r| u32::try_from(r).map_err(|e| unreadable("app rate limit", e)))
                .transpose()?,
            app_key: self.app_key,
            name: self.name,
            secret: self.secret,
            previous_secret: self.previous_secret,
            previous_secret_expires_ms: self.previous_secret_expires_ms,
            enabled: self.enabled,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        })
    }
}

/// What `create_app` answers when the key is taken.
pub(crate) fn app_exists(app_key: &str) -> StoreError {
    StoreError::Invalid(format!("app `{app_key}` already exists"))
}

/// What `update_app` answers for an unknown key.
pub(crate) fn no_app(app_key: &str) -> StoreError {
    StoreError::Invalid(format!("no app `{app_key}`"))
}

/// A row of `processes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRow {
    pub key: ProcessKey,
    pub user: String,
    pub user_id: i64,
    pub status: String,
    pub submit_ms: Option<i64>,
    pub complete_ms: Option<i64>,
    /// A JSON array.
    pub fund_products: Option<String>,
    pub app_key: String,
}

impl ProcessRow {
    pub fn of(s: &ProcessState) -> ProcessRow {
        ProcessRow {
            key: s.key.clone(),
            user: s.user.clone(),
            user_id: s.user_id,
            status: s.status.clone(),
            submit_ms: s.submit_time.map(|t| t.epoch_millis()),
            complete_ms: s.complete_time.map(|t| t.epoch_millis()),
            fund_products: list_to_json(&s.fund_products),
            app_key: s.app_key.clone(),
        }
    }

    pub fn into_state(self) -> Result<ProcessState, StoreError> {
        Ok(ProcessState {
            key: self.key,
            submit_time: time("submit_ms", self.submit_ms)?,
            complete_time: time("complete_ms", self.complete_ms)?,
            fund_products: list_from_json("fund_products", self.fund_products)?,
            user: self.user,
            user_id: self.user_id,
            status: self.status,
            app_key: self.app_key,
        })
    }
}

/// A row of `loans`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanRow {
    pub loan_apply_no: String,
    pub status: String,
    pub app_key: String,
    pub customer_id: Option<String>,
    pub institution_loan_no: Option<String>,
    pub last_change_ms: i64,
    pub needs_reconciliation: bool,
}

impl LoanRow {
    pub fn of(s: &LoanState) -> LoanRow {
        LoanRow {
            loan_apply_no: s.loan_apply_no.clone(),
            status: s.status.clone(),
            app_key: s.app_key.clone(),
            customer_id: s.customer_id.clone(),
            institution_loan_no: s.institution_loan_no.clone(),
            last_change_ms: s.last_change_time.epoch_millis(),
            needs_reconciliation: s.needs_reconciliation,
        }
    }

    pub fn into_state(self) -> Result<LoanState, StoreError> {
        Ok(LoanState {
            loan_apply_no: self.loan_apply_no,
            last_change_time: time("last_change_ms", Some(self.last_change_ms))?
                .expect("a time was given"),
            status: self.status,
            app_key: self.app_key,
            customer_id: self.customer_id,
            institution_loan_no: self.institution_loan_no,
            needs_reconciliation: self.needs_reconciliation,
        })
    }
}

/// A reconciliation flag as `loan_flags.flag` holds it.
pub fn flag_to_json(f: &Flag) -> String {
    serde_json::to_string(f).expect("flags serialize")
}

pub(crate) fn flag_from_json(s: &str) -> Result<Flag, StoreError> {
    serde_json::from_str(s).map_err(|e| unreadable("flag", e))
}

/// A row of `idempotency`: an app's `request_id`, the fingerprint of what came with it and the
/// response fields first answered (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRow {
    pub app_key: String,
    pub request_id: String,
    pub fingerprint: String,
    pub response: String,
}

impl IdempotencyRow {
    pub fn of(app_key: &str, request_id: &str, r: &IdempotencyRecord) -> IdempotencyRow {
        IdempotencyRow {
            app_key: app_key.to_string(),
            request_id: request_id.to_string(),
            fingerprint: r.fingerprint.clone(),
            response: serde_json::to_string(&r.response).expect("JSON serializes"),
        }
    }

    pub fn into_record(self) -> Result<IdempotencyRecord, StoreError> {
        Ok(IdempotencyRecord {
            response: serde_json::from_str(&self.response)
                .map_err(|e| unreadable("idempotency response", e))?,
            fingerprint: self.fingerprint,
        })
    }
}

/// The inbox columns every read selects, in [`InboxRow`]'s order.
pub const INBOX_COLUMNS: &str = "id, call_id, received_ms, app_key, method, outcome, error_code,
    biz_code, subject, idempotency_key, params, detail, response";

/// A row of `inbox`, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    pub id: i64,
    pub call_id: String,
    pub received_ms: i64,
    pub app_key: String,
    pub method: String,
    pub outcome: String,
    pub error_code: Option<i64>,
    pub biz_code: Option<String>,
    pub subject: Option<String>,
    pub idempotency_key: Option<String>,
    pub params: String,
    pub detail: String,
    pub response: String,
}

impl InboxRow {
    pub fn into_record(self) -> InboxRecord {
        // Written by loanwire as JSON; shown as text if a row holds something else.
        let json = |s: String| serde_json::from_str(&s).unwrap_or(Value::String(s));
        InboxRecord {
            id: self.id,
            call_id: self.call_id,
            received_at: format_ms(self.received_ms),
            app_key: self.app_key,
            method: self.method,
            outcome: self.outcome,
            error_code: self.error_code.and_then(|c| u32::try_from(c).ok()),
            biz_code: self.biz_code,
            subject: self.subject,
            idempotency_key: self.idempotency_key,
            params: json(self.params),
            detail: json(self.detail),
            response: self.response,
        }
    }
}

fn history(rows: Vec<InboxRow>) -> Vec<HistoryEntry> {
    rows.into_iter()
        .map(|r| HistoryEntry::from(&r.into_record()))
        .collect()
}

/// A loan note with its flags and history, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanSnapshot {
    pub row: LoanRow,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// `loan_flags.flag`, oldest first.
    pub flags: Vec<String>,
    /// The loan note's inbox records, oldest first.
    pub history: Vec<InboxRow>,
}

impl LoanSnapshot {
    /// The view, with the loan note's resolutions (audit rows) placed among its calls by time.
    pub fn into_view(self, resolutions: Vec<AuditRow>) -> Result<LoanView, StoreError> {
        let reasons = self
            .flags
            .iter()
            .map(|f| flag_from_json(f))
            .collect::<Result<_, _>>()?;
        let r = self.row;
        Ok(LoanView {
            loan_apply_no: r.loan_apply_no,
            status: r.status,
            app_key: r.app_key,
            customer_id: r.customer_id,
            institution_loan_no: r.institution_loan_no,
            last_change_time: format_ms(r.last_change_ms),
            needs_reconciliation: r.needs_reconciliation,
            reconciliation_reasons: reasons,
            created_at: format_ms(self.created_ms),
            updated_at: format_ms(self.updated_ms),
            history: timeline(self.history, resolutions),
        })
    }
}

fn timeline(calls: Vec<InboxRow>, mut resolutions: Vec<AuditRow>) -> Vec<TimelineEntry> {
    resolutions.sort_by_key(|a| (a.at_ms, a.id));
    let mut resolutions = resolutions.into_iter().peekable();
    let mut entries = Vec::with_capacity(calls.len() + resolutions.len());
    for call in calls {
        while let Some(r) = resolutions.next_if(|r| r.at_ms < call.received_ms) {
            entries.push(resolution(r));
        }
        entries.push(TimelineEntry::Call(HistoryEntry::from(&call.into_record())));
    }
    entries.extend(resolutions.map(resolution));
    entries
}

fn resolution(a: AuditRow) -> TimelineEntry {
    let detail: Value = serde_json::from_str(&a.detail).unwrap_or_default();
    TimelineEntry::Resolution(Resolution {
        at: format_ms(a.at_ms),
        by: a.actor,
        source: a.source,
        note: detail["note"].as_str().unwrap_or_default().to_string(),
        resolved: detail["resolved"].clone(),
    })
}

/// A process with its history, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSnapshot {
    pub row: ProcessRow,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub history: Vec<InboxRow>,
}

impl ProcessSnapshot {
    pub fn into_view(self) -> Result<ProcessView, StoreError> {
        let r = self.row;
        Ok(ProcessView {
            channel_id: r.key.channel_id,
            process_type: r.key.process_type,
            process_no: r.key.process_no,
            user: r.user,
            user_id: r.user_id,
            status: r.status,
            submit_time: r.submit_ms.map(format_ms),
            complete_time: r.complete_ms.map(format_ms),
            fund_products: list_from_json("fund_products", r.fund_products)?,
            app_key: r.app_key,
            created_at: format_ms(self.created_ms),
            updated_at: format_ms(self.updated_ms),
            history: history(self.history),
        })
    }
}

/// The event columns every read selects, in [`EventRow`]'s order.
pub const EVENT_COLUMNS: &str = "seq, id, type, recorded_ms, app_key, request_id, subject, data";

/// A row of `events`, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub event_type: String,
    pub recorded_ms: i64,
    pub app_key: String,
    pub request_id: String,
    pub subject: String,
    pub data: String,
}

impl EventRow {
    /// The event's JSON, as the feed writes it, straight from the stored texts: what webhooks
    /// and NATS send for every event, without parsing and writing its parts again.
    pub fn to_json(&self) -> String {
        let text = |s: &str| serde_json::to_string(s).expect("strings serialize");
        format!(
            r#"{{"id":{},"seq":{},"type":{},"recorded_at":"{}","app_key":{},"request_id":{},"subject":{},"data":{}}}"#,
            text(&self.id),
            self.seq,
            text(&self.event_type),
            rfc3339_ms(self.recorded_ms),
            text(&self.app_key),
            text(&self.request_id),
            self.subject,
            self.data
        )
    }

    pub fn into_event(self) -> Event {
        let json = |s: String| serde_json::from_str(&s).unwrap_or(Value::String(s));
        let recorded_at = rfc3339_ms(self.recorded_ms);
        Event {
            id: self.id,
            seq: self.seq,
            event_type: self.event_type,
            recorded_at,
            app_key: self.app_key,
            request_id: self.request_id,
            subject: json(self.subject),
            data: json(self.data),
        }
    }
}

/// The `tokens` table; `role` as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub secret_hash: String,
    pub created_ms: i64,
    pub created_by: String,
    pub revoked_ms: Option<i64>,
}

impl TokenRow {
    pub fn of(t: &Token) -> TokenRow {
        TokenRow {
            id: t.id.clone(),
            name: t.name.clone(),
            role: t.role.as_str().into(),
            secret_hash: t.secret_hash.clone(),
            created_ms: t.created_ms,
            created_by: t.created_by.clone(),
            revoked_ms: t.revoked_ms,
        }
    }

    pub fn into_token(self) -> Result<Token, StoreError> {
        Ok(Token {
            role: Role::parse(&self.role).ok_or_else(|| unreadable("token role", &self.role))?,
            id: self.id,
            name: self.name,
            secret_hash: self.secret_hash,
            created_ms: self.created_ms,
            created_by: self.created_by,
            revoked_ms: self.revoked_ms,
        })
    }
}

/// What `create_token` answers when an active token has the name.
pub(crate) fn token_exists(name: &str) -> StoreError {
    StoreError::Invalid(format!("a token named `{name}` exists; revoke it first"))
}

/// The `audit` table; `detail` as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

impl AuditRow {
    pub fn of(note: &AuditNote, by: &Actor, at_ms: i64) -> AuditRow {
        AuditRow {
            id: 0,
            at_ms,
            actor: by.name.clone(),
            source: by.source.clone(),
            action: note.action.clone(),
            target: note.target.clone(),
            detail: note.detail.to_string(),
        }
    }

    pub fn into_entry(self) -> AuditEntry {
        AuditEntry {
            id: self.id,
            at: rfc3339_ms(self.at_ms),
            actor: self.actor,
            source: self.source,
            action: self.action,
            target: self.target,
            detail: serde_json::from_str(&self.detail).unwrap_or(Value::String(self.detail)),
        }
    }
}

/// The columns of `tokens`, in [`TokenRow`]'s order.
pub const TOKEN_COLUMNS: &str = "id, name, role, secret_hash, created_ms, created_by, revoked_ms";
/// The columns of `audit`, in [`AuditRow`]'s order.
pub const AUDIT_COLUMNS: &str = "id, at_ms, actor, source, action, target, detail";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_the_same_written_from_its_texts_as_through_the_feed() {
        let row = EventRow {
            seq: 42,
            id: "evt_01".into(),
            event_type: "loan.changed".into(),
            recorded_ms: 1_700_000_000_123,
            app_key: "12345678".into(),
            request_id: "r\"1\u{2028}".into(),
            subject: r#"{"kind":"loan","loan_apply_no":"FI1"}"#.into(),
            data: r#"{"before_status":"NEW","after_status":"NORMAL","previous_status":null}"#
                .into(),
        };
        assert_eq!(
            row.to_json(),
            serde_json::to_string(&row.clone().into_event()).unwrap()
        );
    }
}
