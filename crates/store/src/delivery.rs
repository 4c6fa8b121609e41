//! What webhook delivery and the NATS publisher keep (SPEC 3.3, 3.4), written once for both
//! backends: endpoints, one delivery per event and endpoint, every attempt, and the published
//! position.
//!
//! Deliveries are made from the feed, not in the call's transaction: a dispatcher reads the
//! events past an endpoint's cursor (the feed's own read, so on PostgreSQL it never passes an
//! event still to commit), and inserts their deliveries and moves the cursor in one transaction,
//! the move guarded by the cursor it started from, so that instances doing the same never make
//! a delivery twice or skip one. Events are kept until every endpoint has made its deliveries
//! and those are delivered: pruning stops below the lowest `seq` still needed.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::backend::{audited, in_transaction, Backend, Queries};
use crate::model::secrets_at;
use crate::rows::{list_to_json, rfc3339_ms, unreadable, AuditRow, EventRow};
use crate::secrets::SecretBox;
use crate::{Actor, AuditNote, EventQuery, StoreError, StoreResult};

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// Event types it receives; `None`: every type.
    pub types: Option<Vec<String>>,
    pub description: String,
    #[serde(skip)]
    pub secret: String,
    /// After a rotation the previous secret signs too, until it expires.
    #[serde(skip)]
    pub previous_secret: Option<String>,
    #[serde(skip)]
    pub previous_secret_expires_ms: Option<i64>,
    pub enabled: bool,
    /// Why it was disabled, when it was.
    pub disabled_reason: Option<String>,
    /// Events that failed one after another; 0 after any success.
    pub failures_in_a_row: i64,
    /// The events up to this `seq` have their deliveries.
    pub cursor_seq: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Endpoint {
    /// The secrets that sign a delivery at `now_ms`: the current one, then the previous one
    /// during its grace period.
    pub fn secrets_at(&self, now_ms: i64) -> impl Iterator<Item = &str> {
        secrets_at(
            &self.secret,
            self.previous_secret.as_deref(),
            self.previous_secret_expires_ms,
            now_ms,
        )
    }
}

/// The `endpoints` table: `types` as JSON, secrets sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub types: Option<String>,
    pub description: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_ms: Option<i64>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failures_in_a_row: i64,
    pub cursor_seq: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The columns of `endpoints`, in [`EndpointRow`]'s order.
pub const ENDPOINT_COLUMNS: &str = "id, url, types, description, secret, previous_secret,
    previous_secret_expires_ms, enabled, disabled_reason, failures_in_a_row, cursor_seq,
    created_ms, updated_ms";

impl EndpointRow {
    fn sealed(e: &Endpoint, secrets: Option<&SecretBox>) -> EndpointRow {
        let seal = |s: &str| secrets.map_or_else(|| s.to_string(), |b| b.seal(s));
        EndpointRow {
            id: e.id.clone(),
            url: e.url.clone(),
            types: list_to_json(&e.types),
            description: e.description.clone(),
            secret: seal(&e.secret),
            previous_secret: e.previous_secret.as_deref().map(seal),
            previous_secret_expires_ms: e.previous_secret_expires_ms,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            failures_in_a_row: e.failures_in_a_row,
            cursor_seq: e.cursor_seq,
            created_ms: e.created_ms,
            updated_ms: e.updated_ms,
        }
    }

    fn opened(self, secrets: Option<&SecretBox>) -> StoreResult<Endpoint> {
        let open = |s: String| secrets.map_or(Ok(s.clone()), |b| b.open(&s));
        Ok(Endpoint {
            types: self
                .types
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| unreadable("endpoint types", e))?,
            secret: open(self.secret)?,
            previous_secret: self.previous_secret.map(open).transpose()?,
            id: self.id,
            url: self.url,
            description: self.description,
            previous_secret_expires_ms: self.previous_secret_expires_ms,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            failures_in_a_row: self.failures_in_a_row,
            cursor_seq: self.cursor_seq,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        })
    }
}

/// Seals again the endpoint secrets not sealed under the key that seals now; how many.
pub(crate) fn reseal_endpoints(q: &mut dyn DeliveryRows, b: &SecretBox) -> StoreResult<usize> {
    let mut n = 0;
    for row in q.endpoints()? {
        let current = b.pair_is_current(&row.secret, row.previous_secret.as_deref());
        if !current {
            let endpoint = row.opened(Some(b))?;
            q.update_endpoint(&EndpointRow::sealed(&endpoint, Some(b)))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Where a delivery stands. `Pending` covers waiting for its time and in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// The `deliveries` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub endpoint_id: String,
    pub seq: i64,
    pub event_id: String,
    /// The event's subject (its JSON text): events of one subject are delivered in order.
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The columns of `deliveries`, in [`DeliveryRow`]'s order.
pub const DELIVERY_COLUMNS: &str = "endpoint_id, seq, event_id, subject, status, attempts,
    next_attempt_ms, lease_owner, lease_until_ms, created_ms, updated_ms";

/// One delivery, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Delivery {
    pub event_id: String,
    pub seq: i64,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// When a pending delivery is tried next (RFC 3339).
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl DeliveryRow {
    fn into_delivery(self) -> StoreResult<Delivery> {
        let status = DeliveryStatus::parse(&self.status)
            .ok_or_else(|| unreadable("delivery status", &self.status))?;
        Ok(Delivery {
            next_attempt_at: (status == DeliveryStatus::Pending)
                .then(|| rfc3339_ms(self.next_attempt_ms)),
            event_id: self.event_id,
            seq: self.seq,
            status,
            attempts: self.attempts,
            created_at: rfc3339_ms(self.created_ms),
            updated_at: rfc3339_ms(self.updated_ms),
        })
    }
}

/// The `attempts` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub endpoint_id: String,
    pub seq: i64,
    pub at_ms: i64,
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub response: Option<String>,
    pub error: Option<String>,
}

/// One attempt, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Attempt {
    pub at: String,
    /// The receiver's HTTP status; absent when none came (refused, timed out, unreachable).
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The first 1 KiB of the answer.
    pub response: Option<String>,
    /// What went wrong in transport, or why the attempt was not made.
    pub error: Option<String>,
}

impl AttemptRow {
    fn into_attempt(self) -> Attempt {
        Attempt {
            at: rfc3339_ms(self.at_ms),
            status_code: self.status_code,
            latency_ms: self.latency_ms,
            response: self.response,
            error: self.error,
        }
    }
}

/// What became of one claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again at this time.
    Retry {
        at_ms: i64,
    },
    /// The schedule is exhausted: it stays `failed`, and counts toward disabling the endpoint.
    Failed,
    /// The receiver answered 410: the endpoint is disabled, the event waits for it.
    Gone,
}

/// An attempt made by a dispatcher, and its verdict.
#[derive(Debug, Clone)]
pub struct Finished {
    pub attempt: AttemptRow,
    pub verdict: Verdict,
}

/// A delivery claimed for sending, with its event.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub endpoint_id: String,
    pub seq: i64,
    /// Attempts made before this one.
    pub attempts: i64,
    /// `None`: the event is gone (it cannot be: pruning keeps what deliveries need).
    pub event: Option<EventRow>,
}

/// One round of a dispatcher's bookkeeping, done in one transaction.
#[derive(Debug, Clone, Default)]
pub struct DispatchStep {
    /// Who claims (an instance id): its leases, and only its, are released by its results.
    pub owner: String,
    pub now_ms: i64,
    /// How long a claim holds before another instance may take it over.
    pub lease_ms: i64,
    /// Attempts made since the last step.
    pub results: Vec<Finished>,
    /// Endpoints to claim for, and at most how many each.
    pub claims: Vec<(String, u32)>,
    /// Events read past each endpoint's cursor since the last step, to make deliveries of:
    /// (endpoint, the cursor they were read from, the events).
    pub fan_out: Vec<(String, i64, Vec<EventRow>)>,
    /// Failed events in a row that disable an endpoint.
    pub disable_after: i64,
}

/// What a dispatch step answers.
#[derive(Debug, Clone, Default)]
pub struct Dispatched {
    pub claimed: Vec<Claimed>,
    /// Endpoints this step disabled, and why.
    pub disabled: Vec<(String, String)>,
}

/// What waits for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct Backlog {
    pub pending: i64,
    /// When the oldest pending delivery was made (epoch ms).
    pub oldest_pending_ms: Option<i64>,
}

/// Which deliveries a claim leases: at most `limit` of the endpoint's, due at `now_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub endpoint_id: &'a str,
    pub owner: &'a str,
    pub now_ms: i64,
    pub lease_until_ms: i64,
    pub limit: u32,
}

/// A pending delivery, as a claim weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub seq: i64,
    pub subject: String,
    pub next_attempt_ms: i64,
    pub lease_until_ms: Option<i64>,
}

/// A page of an endpoint's pending deliveries, in `seq` order.
#[derive(Debug, Clone, Copy)]
pub struct PendingPage<'a> {
    pub endpoint_id: &'a str,
    pub after_seq: i64,
    pub limit: u32,
}

/// How many of an endpoint's first pending deliveries a claim looks at: a subject whose first
/// pending delivery is among them is decided by it; a claim never looks past them.
const CLAIM_WINDOW: u32 = 2000;

/// Leases up to `c.limit` pending deliveries of the endpoint that are due, not leased (or their
/// lease ran out), and first of their subject among its pending ones — chosen here rather than
/// by a query planner, which, on a queue whose statistics lag behind it, can turn the
/// first-of-its-subject test into a scan per row.
///
/// The pending deliveries are read a page at a time, and no further than the claim needs: under
/// load the first pages are what is in flight (leased) and what comes next, so a claim reads
/// about its own size, not the whole backlog, each round.
fn claim(q: &mut dyn DeliveryRows, c: &Claim<'_>) -> StoreResult<Vec<DeliveryRow>> {
    let page = c.limit.saturating_mul(2).clamp(64, CLAIM_WINDOW);
    let mut decided = std::collections::HashSet::new();
    let mut chosen = Vec::new();
    let (mut after, mut looked) = (i64::MIN, 0u32);
    'pages: while looked < CLAIM_WINDOW {
        let want = page.min(CLAIM_WINDOW - looked);
        let pending = q.first_pending(&PendingPage {
            endpoint_id: c.endpoint_id,
            after_seq: after,
            limit: want,
        })?;
        let Some(last) = pending.last() else { break };
        after = last.seq;
        looked += pending.len() as u32;
        // A short page is the end of what is pending.
        let short = (pending.len() as u32) < want;
        for p in pending {
            // Only the first pending delivery of a subject may go; later ones wait for it.
            if !decided.insert(p.subject) {
                continue;
            }
            let due = p.next_attempt_ms <= c.now_ms;
            let free = p.lease_until_ms.is_none_or(|until| until < c.now_ms);
            if due && free {
                chosen.push(p.seq);
                if chosen.len() == c.limit as usize {
                    break 'pages;
                }
            }
        }
        if short {
            break;
        }
    }
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = q.lease(c, &chosen)?;
    rows.sort_by_key(|d| d.seq);
    Ok(rows)
}

/// A page of an endpoint's deliveries, newest first.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPage<'a> {
    pub endpoint_id: &'a str,
    pub status: Option<&'a str>,
    /// Only deliveries of events with a lower `seq`.
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Which deliveries to make pending again, due at `now_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Requeue<'a> {
    pub endpoint_id: &'a str,
    pub event_id: Option<&'a str>,
    pub since_ms: Option<i64>,
    pub now_ms: i64,
}

/// When failed events in a row disable an endpoint, and what it then says.
#[derive(Debug, Clone, Copy)]
pub struct Disabling<'a> {
    pub after: i64,
    pub reason: &'a str,
    pub now_ms: i64,
}

/// What becomes of a claimed delivery after an attempt.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    pub endpoint_id: &'a str,
    pub seq: i64,
    pub status: DeliveryStatus,
    /// `None`: left as it is.
    pub next_attempt_ms: Option<i64>,
}

/// The rows of deliveries, in a backend's SQL, on one of its pooled connections.
pub trait DeliveryRows {
    fn insert_endpoint(&mut self, row: &EndpointRow) -> StoreResult<bool>;
    /// The newest event a reader may see now (0: none): where a new endpoint starts.
    fn latest_event_seq(&mut self) -> StoreResult<i64>;
    fn update_endpoint(&mut self, row: &EndpointRow) -> StoreResult<bool>;
    fn endpoint(&mut self, id: &str) -> StoreResult<Option<EndpointRow>>;
    fn endpoints(&mut self) -> StoreResult<Vec<EndpointRow>>;
    /// Removes an endpoint with its deliveries and attempts.
    fn delete_endpoint(&mut self, id: &str) -> StoreResult<bool>;
    /// Moves the cursor from `from` to `to`; `false` when it is no longer at `from`.
    fn advance_cursor(&mut self, id: &str, from: i64, to: i64) -> StoreResult<bool>;
    /// Inserts deliveries, leaving any that exist.
    fn insert_deliveries(&mut self, rows: &[DeliveryRow]) -> StoreResult<()>;
    /// The endpoint's pending deliveries with the lowest `seq` above `p.after_seq`, in `seq`
    /// order, at most `p.limit`.
    fn first_pending(&mut self, p: &PendingPage<'_>) -> StoreResult<Vec<Pending>>;
    /// Leases those of `seqs` that are still pending and not leased (or their lease ran out);
    /// the rows leased.
    fn lease(&mut self, c: &Claim<'_>, seqs: &[i64]) -> StoreResult<Vec<DeliveryRow>>;
    fn events_by_seq(&mut self, seqs: &[i64]) -> StoreResult<Vec<EventRow>>;
    /// Counts an attempt of each claimed delivery, sets its status (and, if given, when it is
    /// tried next) and releases its lease, where `owner` still holds it; which ones it did.
    fn finish(&mut self, owner: &str, now_ms: i64, all: &[Finish<'_>]) -> StoreResult<Vec<bool>>;
    fn append_attempts(&mut self, rows: &[AttemptRow]) -> StoreResult<()>;
    /// After a success: no failures in a row.
    fn reset_failures(&mut self, id: &str) -> StoreResult<()>;
    /// After a failed event: one more in a row; the endpoint is disabled (with `reason`) when
    /// they reach `disable_after`. Whether it was disabled now.
    fn add_failure(&mut self, id: &str, d: &Disabling<'_>) -> StoreResult<bool>;
    fn disable_endpoint(&mut self, id: &str, reason: &str, now_ms: i64) -> StoreResult<()>;
    /// Deliveries of an endpoint, newest first.
    fn deliveries(&mut self, q: &DeliveryPage<'_>) -> StoreResult<Vec<DeliveryRow>>;
    fn delivery_of(&mut self, endpoint: &str, event: &str) -> StoreResult<Option<DeliveryRow>>;
    fn attempts(&mut self, endpoint_id: &str, seq: i64) -> StoreResult<Vec<AttemptRow>>;
    /// Makes deliveries pending again, due now: the one of `event_id` whatever its status, or
    /// the failed ones made since `since_ms`; how many.
    fn requeue(&mut self, r: &Requeue<'_>) -> StoreResult<u64>;
    fn backlog(&mut self, endpoint_id: &str) -> StoreResult<Backlog>;
    /// The lowest `seq` deliveries and the NATS publisher still need; `None`: nothing.
    fn delivery_floor(&mut self) -> StoreResult<Option<i64>>;
    /// Takes (or renews) the NATS publisher's lease; the published position, or `None` when
    /// another instance holds it.
    fn nats_claim(&mut self, owner: &str, now_ms: i64, until_ms: i64) -> StoreResult<Option<i64>>;
    /// Moves the published position, if `owner` holds the lease.
    fn nats_advance(&mut self, owner: &str, seq: i64) -> StoreResult<bool>;
}

/// Webhook endpoints, deliveries and the NATS position, for every backend.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Adds an endpoint (its secret sealed), audited in the same commit; it receives the events
    /// after the newest one readers see now.
    async fn create_endpoint(&self, e: &Endpoint, by: &Actor) -> StoreResult<()>;
    /// Replaces an endpoint's settings (not its cursor), audited in the same commit.
    async fn update_endpoint(&self, e: &Endpoint, note: &AuditNote, by: &Actor) -> StoreResult<()>;
    async fn remove_endpoint(&self, id: &str, by: &Actor) -> StoreResult<()>;
    async fn endpoint(&self, id: &str) -> StoreResult<Option<Endpoint>>;
    async fn endpoints(&self) -> StoreResult<Vec<Endpoint>>;
    /// Events past `after` that an endpoint of `types` receives (the feed's read).
    async fn events_for(
        &self,
        after: i64,
        types: Option<Vec<String>>,
        limit: u32,
    ) -> StoreResult<Vec<EventRow>>;
    /// One round of a dispatcher: record results, make deliveries, claim what is due.
    async fn dispatch(&self, step: DispatchStep) -> StoreResult<Dispatched>;
    async fn deliveries(
        &self,
        endpoint_id: &str,
        status: Option<DeliveryStatus>,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    async fn delivery(
        &self,
        endpoint_id: &str,
        event_id: &str,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>>;
    /// Sends again: one event's delivery, or the failed ones since a time; audited.
    async fn requeue(
        &self,
        endpoint_id: &str,
        event_id: Option<&str>,
        since_ms: Option<i64>,
        by: &Actor,
    ) -> StoreResult<u64>;
    async fn backlog(&self, endpoint_id: &str) -> StoreResult<Backlog>;
    async fn nats_claim(&self, owner: &str, lease_ms: i64) -> StoreResult<Option<i64>>;
    async fn nats_advance(&self, owner: &str, seq: i64) -> StoreResult<bool>;
}

fn no_endpoint(id: &str) -> StoreError {
    StoreError::Invalid(format!("no endpoint `{id}`"))
}

fn now_ms() -> i64 {
    loanwire_top::time::now_ms()
}

#[async_trait]
impl<B> DeliveryStore for B
where
    B: Backend,
    B::Queries: DeliveryRows,
{
    async fn create_endpoint(&self, e: &Endpoint, by: &Actor) -> StoreResult<()> {
        let mut row = EndpointRow::sealed(e, self.secrets());
        let note = AuditNote::new(
            "endpoint.create",
            &e.id,
            json!({ "url": e.url, "types": e.types, "description": e.description }),
        );
        let audit = AuditRow::of(&note, by, e.created_ms);
        let id = e.id.clone();
        let insert = move |q: &mut B::Queries| {
            row.cursor_seq = q.latest_event_seq()?;
            q.insert_endpoint(&row)
        };
        audited(self, audit, insert, move || {
            StoreError::Invalid(format!("endpoint `{id}` already exists"))
        })
        .await
    }

    async fn update_endpoint(&self, e: &Endpoint, note: &AuditNote, by: &Actor) -> StoreResult<()> {
        let row = EndpointRow::sealed(e, self.secrets());
        let audit = AuditRow::of(note, by, e.updated_ms);
        let id = e.id.clone();
        audited(
            self,
            audit,
            move |q| q.update_endpoint(&row),
            move || no_endpoint(&id),
        )
        .await
    }

    async fn remove_endpoint(&self, id: &str, by: &Actor) -> StoreResult<()> {
        let audit = AuditRow::of(
            &AuditNote::new("endpoint.remove", id, json!({})),
            by,
            now_ms(),
        );
        let (id, missing) = (id.to_string(), id.to_string());
        audited(
            self,
            audit,
            move |q| q.delete_endpoint(&id),
            move || no_endpoint(&missing),
        )
        .await
    }

    async fn endpoint(&self, id: &str) -> StoreResult<Option<Endpoint>> {
        let id = id.to_string();
        let row = self.query(move |q| q.endpoint(&id)).await?;
        row.map(|r| r.opened(self.secrets())).transpose()
    }

    async fn endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let rows = self.query(|q| q.endpoints()).await?;
        rows.into_iter().map(|r| r.opened(self.secrets())).collect()
    }

    async fn events_for(
        &self,
        after: i64,
        types: Option<Vec<String>>,
        limit: u32,
    ) -> StoreResult<Vec<EventRow>> {
        let q = EventQuery {
            after,
            limit,
            types,
        };
        Ok(self.query(move |r| Queries::events(r, &q)).await?.rows)
    }

    async fn dispatch(&self, step: DispatchStep) -> StoreResult<Dispatched> {
        self.write_rows(move |rows| dispatch_step(rows, &step))
            .await
    }

    async fn deliveries(
        &self,
        endpoint_id: &str,
        status: Option<DeliveryStatus>,
        before_seq: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        let id = endpoint_id.to_string();
        let rows = self
            .query(move |q| {
                q.deliveries(&DeliveryPage {
                    endpoint_id: &id,
                    status: status.map(|s| s.as_str()),
                    before_seq,
                    limit,
                })
            })
            .await?;
        rows.into_iter().map(DeliveryRow::into_delivery).collect()
    }

    async fn delivery(
        &self,
        endpoint_id: &str,
        event_id: &str,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let (id, event) = (endpoint_id.to_string(), event_id.to_string());
        let found = self
            .query(move |q| {
                let Some(row) = q.delivery_of(&id, &event)? else {
                    return Ok(None);
                };
                let attempts = q.attempts(&id, row.seq)?;
                Ok(Some((row, attempts)))
            })
            .await?;
        found
            .map(|(row, attempts)| {
                Ok((
                    row.into_delivery()?,
                    attempts.into_iter().map(AttemptRow::into_attempt).collect(),
                ))
            })
            .transpose()
    }

    async fn requeue(
        &self,
        endpoint_id: &str,
        event_id: Option<&str>,
        since_ms: Option<i64>,
        by: &Actor,
    ) -> StoreResult<u64> {
        let (id, event) = (endpoint_id.to_string(), event_id.map(str::to_string));
        let by = by.clone();
        self.query(move |q| {
            in_transaction(q, |q| {
                if q.endpoint(&id)?.is_none() {
                    return Err(no_endpoint(&id));
                }
                let now = now_ms();
                let n = q.requeue(&Requeue {
                    endpoint_id: &id,
                    event_id: event.as_deref(),
                    since_ms,
                    now_ms: now,
                })?;
                // Nothing to send again is not a change: no audit entry for it.
                if let (Some(e), 0) = (&event, n) {
                    return Err(StoreError::Invalid(format!(
                        "no delivery of `{e}` to `{id}`"
                    )));
                }
                let (action, detail) = match &event {
                    Some(e) => ("delivery.retry", json!({ "event_id": e })),
                    None => (
                        "endpoint.recover",
                        json!({ "since": since_ms.map(rfc3339_ms), "deliveries": n }),
                    ),
                };
                q.append_audit(&AuditRow::of(
                    &AuditNote::new(action, &id, detail),
                    &by,
                    now,
                ))?;
                Ok(n)
            })
        })
        .await
    }

    async fn backlog(&self, endpoint_id: &str) -> StoreResult<Backlog> {
        let id = endpoint_id.to_string();
        self.query(move |q| q.backlog(&id)).await
    }

    async fn nats_claim(&self, owner: &str, lease_ms: i64) -> StoreResult<Option<i64>> {
        let owner = owner.to_string();
        self.write_rows(move |rows| {
            let now = now_ms();
            rows.nats_claim(&owner, now, now + lease_ms)
        })
        .await
    }

    async fn nats_advance(&self, owner: &str, seq: i64) -> StoreResult<bool> {
        let owner = owner.to_string();
        self.write_rows(move |rows| rows.nats_advance(&owner, seq))
            .await
    }
}

/// The bookkeeping of one dispatch step, inside its transaction.
fn dispatch_step(q: &mut dyn DeliveryRows, step: &DispatchStep) -> StoreResult<Dispatched> {
    let mut done = Dispatched::default();
    let mut succeeded = std::collections::BTreeSet::new();
    let attempts: Vec<AttemptRow> = step.results.iter().map(|f| f.attempt.clone()).collect();
    q.append_attempts(&attempts)?;
    let finishes: Vec<Finish<'_>> = step
        .results
        .iter()
        .map(|f| {
            let (status, next_attempt_ms) = match f.verdict {
                Verdict::Delivered => (DeliveryStatus::Delivered, None),
                Verdict::Retry { at_ms } => (DeliveryStatus::Pending, Some(at_ms)),
                Verdict::Failed => (DeliveryStatus::Failed, None),
                Verdict::Gone => (DeliveryStatus::Pending, Some(step.now_ms)),
            };
            Finish {
                endpoint_id: &f.attempt.endpoint_id,
                seq: f.attempt.seq,
                status,
                next_attempt_ms,
            }
        })
        .collect();
    let finished = q.finish(&step.owner, step.now_ms, &finishes)?;
    for (f, finished) in step.results.iter().zip(finished) {
        let a = &f.attempt;
        // Not finished: the lease ran out and another instance took the delivery over, or
        // the endpoint was removed meanwhile.
        if !finished {
            continue;
        }
        match f.verdict {
            Verdict::Delivered => {
                succeeded.insert(a.endpoint_id.as_str());
            }
            Verdict::Retry { .. } => {}
            Verdict::Failed => {
                let reason = format!("{} failed events in a row", step.disable_after);
                let d = Disabling {
                    after: step.disable_after,
                    reason: &reason,
                    now_ms: step.now_ms,
                };
                if q.add_failure(&a.endpoint_id, &d)? {
                    done.disabled.push((a.endpoint_id.clone(), reason));
                }
            }
            Verdict::Gone => {
                let reason = "the receiver answered 410 Gone".to_string();
                q.disable_endpoint(&a.endpoint_id, &reason, step.now_ms)?;
                done.disabled.push((a.endpoint_id.clone(), reason));
            }
        }
    }
    for id in succeeded {
        q.reset_failures(id)?;
    }
    for (id, from, events) in &step.fan_out {
        let Some(last) = events.last().map(|e| e.seq) else {
            continue;
        };
        // Another instance made these deliveries first: leave them to it.
        if !q.advance_cursor(id, *from, last)? {
            continue;
        }
        let rows: Vec<DeliveryRow> = events
            .iter()
            .map(|e| DeliveryRow {
                endpoint_id: id.clone(),
                seq: e.seq,
                event_id: e.id.clone(),
                subject: e.subject.clone(),
                status: DeliveryStatus::Pending.as_str().into(),
                attempts: 0,
                next_attempt_ms: step.now_ms,
                lease_owner: None,
                lease_until_ms: None,
                created_ms: step.now_ms,
                updated_ms: step.now_ms,
            })
            .collect();
        q.insert_deliveries(&rows)?;
    }
    let mut claimed = Vec::new();
    for (id, limit) in &step.claims {
        // Enabled as of this transaction: not disabled by this step's results, nor by an
        // operator since the dispatcher last looked.
        if *limit == 0 || !q.endpoint(id)?.is_some_and(|e| e.enabled) {
            continue;
        }
        let until = step.now_ms + step.lease_ms;
        claimed.extend(claim(
            q,
            &Claim {
                endpoint_id: id,
                owner: &step.owner,
                now_ms: step.now_ms,
                lease_until_ms: until,
                limit: *limit,
            },
        )?);
    }
    let seqs: Vec<i64> = claimed.iter().map(|d| d.seq).collect();
    let mut events: std::collections::HashMap<i64, EventRow> = q
        .events_by_seq(&seqs)?
        .into_iter()
        .map(|e| (e.seq, e))
        .collect();
    done.claimed = claimed
        .into_iter()
        .map(|d| Claimed {
            event: events.remove(&d.seq),
            endpoint_id: d.endpoint_id,
            seq: d.seq,
            attempts: d.attempts,
        })
        .collect();
    Ok(done)
}
