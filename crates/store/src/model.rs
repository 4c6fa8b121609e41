//! What the store keeps and shows.

use loanwire_domain::loan::Flag;
use loanwire_domain::Outcome;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The secrets in use at `now_ms` after a rotation: the current one, then the previous one until
/// its grace ends.
pub(crate) fn secrets_at<'a>(
    current: &'a str,
    previous: Option<&'a str>,
    previous_until_ms: Option<i64>,
    now_ms: i64,
) -> impl Iterator<Item = &'a str> {
    let previous = previous.filter(|_| previous_until_ms.is_some_and(|until| now_ms < until));
    std::iter::once(current).chain(previous)
}

/// A registered partner app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct App {
    pub app_key: String,
    pub name: String,
    #[serde(skip)]
    pub secret: String,
    /// After a rotation, the old secret keeps working until `previous_secret_expires_ms`.
    #[serde(skip)]
    pub previous_secret: Option<String>,
    #[serde(skip)]
    pub previous_secret_expires_ms: Option<i64>,
    /// Channels it may report processes for; `None`: any.
    pub channels: Option<Vec<String>>,
    /// Methods it may call; `None`: every method the gateway serves.
    pub methods: Option<Vec<String>>,
    /// Calls per second; `None`: the gateway's default.
    pub rate_limit: Option<u32>,
    pub enabled: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl App {
    /// The secrets a signature may be made with at `now_ms`: the current one, then the
    /// previous one during its grace period.
    pub fn secrets_at(&self, now_ms: i64) -> impl Iterator<Item = &str> {
        secrets_at(
            &self.secret,
            self.previous_secret.as_deref(),
            self.previous_secret_expires_ms,
            now_ms,
        )
    }

    pub fn may_call(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == method))
    }

    pub fn may_report_for(&self, channel_id: &str) -> bool {
        self.channels
            .as_ref()
            .is_none_or(|cs| cs.iter().any(|c| c == channel_id))
    }
}

/// What a unit of work answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub outcome: Outcome,
    /// The exact response body sent.
    pub response: String,
    pub inbox_id: i64,
}

/// One authenticated call, as appended to the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    /// The `request_id` of the call's envelope.
    pub call_id: String,
    pub received_ms: i64,
    pub app_key: String,
    pub method: String,
    /// Every parameter as received: a JSON object, rendered before the unit of work so that the
    /// single writer does not have to.
    pub params: String,
    pub outcome: Outcome,
    /// The TOP error code, when the answer was an `error_response`.
    pub error_code: Option<u32>,
    /// The business code of a `success=false` answer.
    pub biz_code: Option<String>,
    /// What the call was about (`loan:…`, `process:…`), for histories.
    pub subject: Option<String>,
    /// The caller's idempotency key (`request_id` of a loan change).
    pub idempotency_key: Option<String>,
    /// What the call reported, in a few fields (statuses, times): a JSON object.
    pub detail: String,
    pub response: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InboxRecord {
    pub id: i64,
    /// The envelope's `request_id`.
    pub call_id: String,
    pub received_at: String,
    pub app_key: String,
    pub method: String,
    pub outcome: String,
    pub error_code: Option<u32>,
    pub biz_code: Option<String>,
    pub subject: Option<String>,
    pub idempotency_key: Option<String>,
    /// Every parameter as received.
    #[schema(value_type = Object)]
    pub params: Value,
    /// What the call reported, in a few fields.
    #[schema(value_type = Object)]
    pub detail: Value,
    /// The exact response sent.
    pub response: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxQuery {
    pub app_key: Option<String>,
    pub method: Option<String>,
    pub outcome: Option<Outcome>,
    /// Pagination: only records older than this id.
    pub before_id: Option<i64>,
    /// Only records newer than this id (a time range turned into ids).
    pub after_id: Option<i64>,
    /// At most [`InboxQuery::MAX_LIMIT`].
    pub limit: u32,
}

impl InboxQuery {
    /// The most records one query answers.
    pub const MAX_LIMIT: u32 = 1000;
}

/// One call in a history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The caller's `request_id` for a loan change; the call's envelope `request_id` otherwise.
    pub request_id: String,
    /// The envelope's `request_id`.
    pub call_id: String,
    pub received_at: String,
    pub app_key: String,
    pub outcome: String,
    pub error_code: Option<u32>,
    pub biz_code: Option<String>,
    /// The statuses and times the call reported, as fields of the entry.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<&InboxRecord> for HistoryEntry {
    fn from(r: &InboxRecord) -> Self {
        HistoryEntry {
            request_id: r
                .idempotency_key
                .clone()
                .unwrap_or_else(|| r.call_id.clone()),
            call_id: r.call_id.clone(),
            received_at: r.received_at.clone(),
            app_key: r.app_key.clone(),
            outcome: r.outcome.clone(),
            error_code: r.error_code,
            biz_code: r.biz_code.clone(),
            detail: r.detail.clone(),
        }
    }
}

/// An operator's resolution of a loan note's flags (SPEC 4.2), as its history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Resolution {
    /// When (GMT+8).
    pub at: String,
    /// Who: the operator token's name, or `cli:<user>`.
    pub by: String,
    /// From where: the caller's address, or `cli`.
    pub source: String,
    pub note: String,
    /// The flags it resolved.
    #[schema(value_type = Vec<Object>)]
    pub resolved: Value,
}

/// One entry of a loan note's history: a call about it, or a resolution of its flags.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TimelineEntry {
    Call(HistoryEntry),
    Resolution(Resolution),
}

impl TimelineEntry {
    /// The call, when the entry is one.
    pub fn call(&self) -> Option<&HistoryEntry> {
        match self {
            TimelineEntry::Call(c) => Some(c),
            TimelineEntry::Resolution(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LoanView {
    pub loan_apply_no: String,
    pub status: String,
    pub app_key: String,
    pub customer_id: Option<String>,
    pub institution_loan_no: Option<String>,
    pub last_change_time: String,
    pub needs_reconciliation: bool,
    /// Why: gaps and reversals, with the expected and reported statuses.
    #[schema(value_type = Vec<Object>)]
    pub reconciliation_reasons: Vec<Flag>,
    pub created_at: String,
    pub updated_at: String,
    /// Calls about the loan note and resolutions of its flags, oldest first.
    pub history: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProcessView {
    pub channel_id: String,
    #[serde(rename = "type")]
    pub process_type: String,
    pub process_no: String,
    pub user: String,
    pub user_id: i64,
    pub status: String,
    pub submit_time: Option<String>,
    pub complete_time: Option<String>,
    pub fund_products: Option<Vec<String>>,
    pub app_key: String,
    pub created_at: String,
    pub updated_at: String,
    pub history: Vec<HistoryEntry>,
}

/// An applied change as it leaves the store (SPEC 3.1), written by the unit of work that
/// applied it. `seq` is the store's to give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `evt_` and a ULID: unique, and the de-duplication key on every channel.
    pub id: String,
    /// `loan.changed` or `process.changed`.
    pub event_type: String,
    pub recorded_ms: i64,
    pub app_key: String,
    pub request_id: String,
    /// JSON objects, rendered before the unit of work.
    pub subject: String,
    pub data: String,
}

/// An event as the feed shows it, fields in the SPEC's order.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339, UTC, milliseconds.
    pub recorded_at: String,
    pub app_key: String,
    pub request_id: String,
    /// `{"kind":"loan","loan_apply_no"}` or `{"kind":"process","channel_id","type","process_no"}`.
    #[schema(value_type = Object)]
    pub subject: Value,
    /// What changed (SPEC 3.1).
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Events with a `seq` greater than this.
    pub after: i64,
    /// At most [`EventQuery::MAX_LIMIT`].
    pub limit: u32,
    /// Only these types; `None`: every type.
    pub types: Option<Vec<String>>,
}

impl EventQuery {
    pub const MAX_LIMIT: u32 = 1000;
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Events with a `seq` up to this were pruned: a cursor below it has missed some.
    pub pruned_through: i64,
    /// On an empty page: events past the cursor are committed but not yet shown, waiting for
    /// an earlier transaction to end (PostgreSQL), so it is worth asking again soon. (A page
    /// with events says nothing of what comes after them: ask from its last `seq`.)
    pub pending: bool,
}

/// Who makes an admin change, and from where (SPEC 5): a token's name and the caller's address,
/// or the local user and `cli`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub source: String,
}

/// What an admin change records in the audit, beside who and when.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditNote {
    /// `app.create`, `app.disable`, `token.revoke`, `keys.rotate`, …
    pub action: String,
    /// What it changed: an app key, a token name.
    pub target: String,
    /// What else is worth knowing; never a secret.
    pub detail: Value,
}

impl AuditNote {
    pub fn new(action: &str, target: &str, detail: Value) -> AuditNote {
        AuditNote {
            action: action.into(),
            target: target.into(),
            detail,
        }
    }
}

/// One admin change, as the audit shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    /// The operator token's name (`bootstrap` for `LOANWIRE_ADMIN_TOKEN`), or `cli:<user>`.
    pub actor: String,
    /// The caller's address, or `cli`.
    pub source: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries older than this id (the previous page's last).
    pub before_id: Option<i64>,
    /// Only entries about this target.
    pub target: Option<String>,
    /// At most [`AuditQuery::MAX_LIMIT`].
    pub limit: u32,
}

impl AuditQuery {
    pub const MAX_LIMIT: u32 = 500;
}

/// What an operator token may do (SPEC 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The read API, the feed, the audit.
    Viewer,
    /// Also apps, endpoints, resolutions.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// A named operator token as stored: its secret only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token's secret part, hex.
    #[serde(skip)]
    pub secret_hash: String,
    pub created_ms: i64,
    pub created_by: String,
    pub revoked_ms: Option<i64>,
}
