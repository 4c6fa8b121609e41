//! What a backend provides, and everything built on it once for both.
//!
//! A backend holds its SQL, its connections and its writer. It implements:
//! - [`TxRows`]: the row reads and writes of one unit of work, on its writing connection;
//!   [`Tx`] follows from it (mapping rows to domain states is shared);
//! - [`Queries`]: the read API's reads and app management, on a pooled connection (not the
//!   writer's: app changes are rare and made by other processes too);
//! - [`Backend`]: how units of work reach its writer and reads reach its readers;
//!   [`Store`] follows from it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use async_trait::async_trait;
use loanwire_domain::idempotency::IdempotencyRecord;
use loanwire_domain::loan::{Flag, LoanState};
use loanwire_domain::process::{ProcessKey, ProcessState};
use loanwire_top::time::now_ms;
use serde_json::json;

use crate::delivery::DeliveryRows;
use crate::reports::ReportRows;
use crate::rows::{
    app_exists, flag_to_json, no_app, token_exists, AppRow, AuditRow, EventRow, IdempotencyRow,
    InboxRow, LoanRow, LoanSnapshot, ProcessRow, ProcessSnapshot, TokenRow,
};
use crate::secrets::SecretBox;
use crate::{
    Actor, App, AuditEntry, AuditNote, AuditQuery, EventPage, EventQuery, InboxEntry, InboxQuery,
    InboxRecord, LoanView, NewEvent, ProcessView, Reads, Recorded, Store, StoreError, StoreResult,
    Token, Tx, Work,
};

/// The row operations of one unit of work, inside the writer's transaction. Each row carries
/// its own key; `now_ms` stamps what is written.
pub trait TxRows {
    fn process_row(&mut self, key: &ProcessKey) -> StoreResult<Option<ProcessRow>>;
    fn put_process_row(&mut self, row: &ProcessRow, now_ms: i64) -> StoreResult<()>;
    fn loan_row(&mut self, loan_apply_no: &str) -> StoreResult<Option<LoanRow>>;
    fn put_loan_row(&mut self, row: &LoanRow, now_ms: i64) -> StoreResult<()>;
    /// Appends reconciliation flags (JSON, see `rows::flag_to_json`) to a loan note.
    fn add_loan_flags(&mut self, loan_apply_no: &str, flags: &[String]) -> StoreResult<()>;
    fn idempotency_row(&mut self, app_key: &str, id: &str) -> StoreResult<Option<IdempotencyRow>>;
    fn put_idempotency_row(&mut self, row: &IdempotencyRow, now_ms: i64) -> StoreResult<()>;
    /// `idempotency_row` and `loan_row` at once; a backend with round trips makes them one.
    fn idempotency_and_loan_rows(
        &mut self,
        app_key: &str,
        id: &str,
        loan_apply_no: &str,
    ) -> StoreResult<(Option<IdempotencyRow>, Option<LoanRow>)> {
        Ok((
            self.idempotency_row(app_key, id)?,
            self.loan_row(loan_apply_no)?,
        ))
    }
    fn append_inbox_row(&mut self, entry: &InboxEntry) -> StoreResult<i64>;
    fn append_event_row(&mut self, event: &NewEvent) -> StoreResult<()>;
}

impl<T: TxRows> Tx for T {
    fn process(&mut self, key: &ProcessKey) -> Result<Option<ProcessState>, StoreError> {
        self.process_row(key)?
            .map(ProcessRow::into_state)
            .transpose()
    }

    fn put_process(&mut self, state: &ProcessState, now_ms: i64) -> Result<(), StoreError> {
        self.put_process_row(&ProcessRow::of(state), now_ms)
    }

    fn loan(&mut self, loan_apply_no: &str) -> Result<Option<LoanState>, StoreError> {
        self.loan_row(loan_apply_no)?
            .map(LoanRow::into_state)
            .transpose()
    }

    fn put_loan(
        &mut self,
        state: &LoanState,
        flags: &[Flag],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let flags: Vec<String> = flags.iter().map(flag_to_json).collect();
        self.put_loan_row(&LoanRow::of(state), now_ms)?;
        if flags.is_empty() {
            return Ok(());
        }
        self.add_loan_flags(&state.loan_apply_no, &flags)
    }

    fn idempotency(
        &mut self,
        app_key: &str,
        request_id: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.idempotency_row(app_key, request_id)?
            .map(IdempotencyRow::into_record)
            .transpose()
    }

    fn put_idempotency(
        &mut self,
        app_key: &str,
        request_id: &str,
        record: &IdempotencyRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let row = IdempotencyRow::of(app_key, request_id, record);
        self.put_idempotency_row(&row, now_ms)
    }

    fn idempotency_and_loan(
        &mut self,
        app_key: &str,
        request_id: &str,
        loan_apply_no: &str,
    ) -> Result<(Option<IdempotencyRecord>, Option<LoanState>), StoreError> {
        let (seen, loan) = self.idempotency_and_loan_rows(app_key, request_id, loan_apply_no)?;
        Ok((
            seen.map(IdempotencyRow::into_record).transpose()?,
            loan.map(LoanRow::into_state).transpose()?,
        ))
    }

    fn append_inbox(&mut self, entry: &InboxEntry) -> Result<i64, StoreError> {
        self.append_inbox_row(entry)
    }

    fn append_event(&mut self, event: &NewEvent) -> Result<(), StoreError> {
        self.append_event_row(event)
    }
}

/// Runs one unit of work. A unit that panics is a bug in the unit, not in the batch it shares
/// a transaction with: it fails alone, like a unit that returned an error, and what it wrote
/// is rolled back with it; the other units of its batch commit.
pub fn run_unit(work: &mut Work, tx: &mut dyn Tx) -> Result<Recorded, StoreError> {
    match catch_unwind(AssertUnwindSafe(|| work(tx))) {
        Ok(result) => result,
        Err(_) => Err(StoreError::Invalid(UNIT_PANICKED.into())),
    }
}

/// The error of a unit of work that panicked.
pub const UNIT_PANICKED: &str = "the unit of work panicked";

/// Refuses a database whose schema is newer than this binary's migrations.
pub fn check_schema_version(found: i64, known: i64) -> Result<(), StoreError> {
    if found > known {
        return Err(StoreError::Invalid(format!(
            "the database is at schema version {found}, newer than this loanwire knows ({known}); upgrade loanwire"
        )));
    }
    Ok(())
}

/// Whether the last batch a writer tried to commit made it: while commits fail (disk full, the
/// database refusing), the store is not ready, even if it still answers queries.
#[derive(Debug, Default)]
pub struct CommitHealth {
    failing: Mutex<Option<String>>,
}

impl CommitHealth {
    pub fn committed(&self) {
        let mut failing = self.failing.lock().expect("commit health");
        if failing.take().is_some() {
            tracing::info!("commits succeed again");
        }
    }

    pub fn failed(&self, why: &str) {
        *self.failing.lock().expect("commit health") = Some(why.to_string());
    }

    /// Why the last commit failed, if it did.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().expect("commit health").clone()
    }
}

/// One argument of a query built at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlArg {
    Text(String),
    Int(i64),
}

/// The newest inbox records first, filtered as `q` says: SQL (placeholders written by
/// `placeholder(n)`, from 1) and its arguments.
pub fn inbox_query_sql(q: &InboxQuery, placeholder: fn(usize) -> String) -> (String, Vec<SqlArg>) {
    let mut sql = format!(
        "SELECT {} FROM inbox WHERE 1 = 1",
        crate::rows::INBOX_COLUMNS
    );
    let mut args = Vec::new();
    let mut filter = |column: &str, op: &str, arg: SqlArg| {
        args.push(arg);
        sql.push_str(&format!(" AND {column} {op} {}", placeholder(args.len())));
    };
    if let Some(a) = &q.app_key {
        filter("app_key", "=", SqlArg::Text(a.clone()));
    }
    if let Some(m) = &q.method {
        filter("method", "=", SqlArg::Text(m.clone()));
    }
    if let Some(o) = q.outcome {
        filter("outcome", "=", SqlArg::Text(o.as_str().into()));
    }
    if let Some(before) = q.before_id {
        filter("id", "<", SqlArg::Int(before));
    }
    if let Some(after) = q.after_id {
        filter("id", ">", SqlArg::Int(after));
    }
    args.push(SqlArg::Int(i64::from(
        q.limit.clamp(1, InboxQuery::MAX_LIMIT),
    )));
    sql.push_str(&format!(
        " ORDER BY id DESC LIMIT {}",
        placeholder(args.len())
    ));
    (sql, args)
}

/// The read API's reads and app management, in a backend's SQL, on one of its pooled
/// connections.
pub trait Queries {
    fn app(&mut self, app_key: &str) -> Result<Option<AppRow>, StoreError>;
    fn apps(&mut self) -> Result<Vec<AppRow>, StoreError>;
    /// `false` when the key is taken (nothing written).
    fn insert_app(&mut self, row: &AppRow) -> Result<bool, StoreError>;
    /// `false` when there is no such app.
    fn update_app(&mut self, row: &AppRow) -> Result<bool, StoreError>;
    fn loan(&mut self, loan_apply_no: &str) -> Result<Option<LoanSnapshot>, StoreError>;
    fn process(&mut self, key: &ProcessKey) -> Result<Option<ProcessSnapshot>, StoreError>;
    fn inbox(&mut self, q: &InboxQuery) -> Result<Vec<InboxRow>, StoreError>;
    fn inbox_call(&mut self, call_id: &str) -> Result<Option<InboxRow>, StoreError>;
    fn inbox_missing(&mut self, call_ids: &[String]) -> Result<Vec<String>, StoreError>;
    /// Events past the cursor that readers may see now, in `seq` order.
    fn events(&mut self, q: &EventQuery) -> Result<EventRows, StoreError>;
    /// Deletes the oldest events, those recorded before `before_ms` and below `keep_from`, and
    /// raises the pruned mark to the highest `seq` deleted; how many were deleted.
    fn prune_events(&mut self, before_ms: i64, keep_from: i64) -> Result<u64, StoreError>;
    fn ping(&mut self) -> Result<(), StoreError>;

    /// Opens a write transaction on this connection: an admin change and its audit entry
    /// commit together ([`in_transaction`]).
    fn begin(&mut self) -> StoreResult<()>;
    fn commit(&mut self) -> StoreResult<()>;
    fn rollback(&mut self);
    /// `false` when a token not revoked has the name (nothing written).
    fn insert_token(&mut self, row: &TokenRow) -> StoreResult<bool>;
    fn token(&mut self, id: &str) -> StoreResult<Option<TokenRow>>;
    fn tokens(&mut self) -> StoreResult<Vec<TokenRow>>;
    /// Marks the token named `name` that is not revoked yet as revoked; its row, if any.
    fn revoke_token(&mut self, name: &str, at_ms: i64) -> StoreResult<Option<TokenRow>>;
    fn append_audit(&mut self, row: &AuditRow) -> StoreResult<()>;
    /// The newest entries first, filtered as `q` says.
    fn audit(&mut self, q: &AuditQuery) -> StoreResult<Vec<AuditRow>>;
}

/// Makes an admin change and writes its audit entry in one transaction, on a pooled
/// connection. `change` answers whether it found what it changes; when it did not, nothing is
/// written and the answer is `missed()`.
pub(crate) async fn audited<B, F, E>(
    backend: &B,
    audit: AuditRow,
    change: F,
    missed: E,
) -> StoreResult<()>
where
    B: Backend,
    F: FnOnce(&mut B::Queries) -> StoreResult<bool> + Send + 'static,
    E: FnOnce() -> StoreError + Send + 'static,
{
    backend
        .query(move |q| {
            in_transaction(q, |q| {
                if !change(q)? {
                    return Err(missed());
                }
                q.append_audit(&audit)
            })
        })
        .await
}

/// Runs `f` inside one transaction on `q`: all of it commits, or none of it.
pub fn in_transaction<Q: Queries, R>(
    q: &mut Q,
    f: impl FnOnce(&mut Q) -> StoreResult<R>,
) -> StoreResult<R> {
    q.begin()?;
    match f(q) {
        Ok(r) => {
            q.commit()?;
            Ok(r)
        }
        Err(e) => {
            q.rollback();
            Err(e)
        }
    }
}

/// What a backend answers for a page of the feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRows {
    pub rows: Vec<EventRow>,
    pub pruned_through: i64,
    pub pending: bool,
}

/// The types a feed query asks for, as a JSON array (`None`: all), for SQL to unpack.
pub fn event_types_json(q: &EventQuery) -> Option<String> {
    q.types
        .as_ref()
        .map(|t| serde_json::to_string(t).expect("strings serialize"))
}

/// A feed query's limit, within bounds.
pub fn event_limit(q: &EventQuery) -> i64 {
    i64::from(q.limit.clamp(1, EventQuery::MAX_LIMIT))
}

/// The bookkeeping a backend writes off the calls' path (deliveries, the report's counts).
pub trait WriteRows: DeliveryRows + ReportRows {}

impl<T: DeliveryRows + ReportRows> WriteRows for T {}

/// How work reaches a backend's threads.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    type Queries: Queries + DeliveryRows + ReportRows;

    /// Hands a unit of work to the writer; answers once it is durably committed.
    async fn submit(&self, work: Work) -> Result<Recorded, StoreError>;

    /// `submit`, for a unit that names the rows it will read; a backend without round trips
    /// has no use for the names.
    async fn submit_reading(&self, reads: Reads, work: Work) -> Result<Recorded, StoreError> {
        let _ = reads;
        self.submit(work).await
    }

    /// Runs `f` on a pooled connection (not the writer's), off the async threads.
    async fn query<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Self::Queries) -> Result<R, StoreError> + Send + 'static;

    /// Runs delivery bookkeeping `f` in a write transaction: all of it commits, or none of it.
    /// By default on a pooled connection; a backend with a single writer runs it in the
    /// writer's transaction instead, so that it never holds the write lock against calls.
    async fn write_rows<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnMut(&mut dyn WriteRows) -> StoreResult<R> + Send + 'static,
    {
        let mut f = f;
        self.query(move |q| in_transaction(q, |q| f(q))).await
    }

    /// Why the backend takes no work at all now, if it does not (checked by `ping`).
    fn stopped(&self) -> Option<StoreError> {
        None
    }

    /// What every backend keeps the same way.
    fn shared(&self) -> &Shared;

    fn commits(&self) -> &CommitHealth {
        &self.shared().health
    }

    fn events_committed(&self) -> &tokio::sync::watch::Sender<u64> {
        &self.shared().events_committed
    }

    fn secrets(&self) -> Option<&SecretBox> {
        self.shared().secrets.as_deref()
    }
}

/// The state every backend keeps, whatever its database.
pub struct Shared {
    /// Whether the writers' last commits succeeded (checked by `ping`).
    pub health: std::sync::Arc<CommitHealth>,
    /// Bumped whenever events may have been committed.
    pub events_committed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// What seals app secrets at rest; `None`: they are stored as given.
    pub secrets: Option<std::sync::Arc<SecretBox>>,
}

impl Shared {
    pub fn new(secrets: Option<std::sync::Arc<SecretBox>>) -> Shared {
        Shared {
            health: Default::default(),
            events_committed: std::sync::Arc::new(tokio::sync::watch::channel(0).0),
            secrets,
        }
    }
}

/// An app's row as stored: its secrets sealed when there is a box.
fn sealed_row(secrets: Option<&SecretBox>, app: &App) -> AppRow {
    let mut row = AppRow::of(app);
    if let Some(b) = secrets {
        row.secret = b.seal(&row.secret);
        row.previous_secret = row.previous_secret.map(|s| b.seal(&s));
    }
    row
}

/// An app as read: its secrets opened.
fn opened_app(secrets: Option<&SecretBox>, row: AppRow) -> Result<App, StoreError> {
    let mut app = row.into_app()?;
    if let Some(b) = secrets {
        app.secret = b.open(&app.secret)?;
        app.previous_secret = app.previous_secret.map(|s| b.open(&s)).transpose()?;
    }
    Ok(app)
}

#[async_trait]
impl<B: Backend> Store for B {
    async fn transact(&self, work: Work) -> Result<Recorded, StoreError> {
        self.submit(work).await
    }

    async fn transact_reading(&self, reads: Reads, work: Work) -> Result<Recorded, StoreError> {
        self.submit_reading(reads, work).await
    }

    async fn app(&self, app_key: &str) -> Result<Option<App>, StoreError> {
        let key = app_key.to_string();
        let row = self.query(move |r| r.app(&key)).await?;
        row.map(|r| opened_app(self.secrets(), r)).transpose()
    }

    async fn apps(&self) -> Result<Vec<App>, StoreError> {
        let rows = self.query(|r| r.apps()).await?;
        rows.into_iter()
            .map(|r| opened_app(self.secrets(), r))
            .collect()
    }

    async fn seal_secrets(&self, rotation: bool, by: &Actor) -> Result<usize, StoreError> {
        let Some(b) = self.shared().secrets.clone() else {
            return Ok(0);
        };
        let by = by.clone();
        self.query(move |q| {
            in_transaction(q, |q| {
                let mut sealed = 0;
                for row in q.apps()? {
                    let current = b.pair_is_current(&row.secret, row.previous_secret.as_deref());
                    if !current {
                        let app = opened_app(Some(&b), row)?;
                        q.update_app(&sealed_row(Some(&b), &app))?;
                        sealed += 1;
                    }
                }
                let endpoints = crate::delivery::reseal_endpoints(q, &b)?;
                if sealed + endpoints > 0 || rotation {
                    let action = if rotation {
                        "keys.rotate"
                    } else {
                        "secrets.seal"
                    };
                    let detail = json!({ "apps": sealed, "endpoints": endpoints });
                    let note = AuditNote::new(action, "apps", detail);
                    q.append_audit(&AuditRow::of(&note, &by, now_ms()))?;
                }
                Ok(sealed + endpoints)
            })
        })
        .await
    }

    async fn create_app(&self, app: &App, by: &Actor) -> Result<(), StoreError> {
        let row = sealed_row(self.secrets(), app);
        let note = AuditNote::new(
            "app.create",
            &app.app_key,
            json!({ "name": app.name, "channels": app.channels, "methods": app.methods,
                    "rate_limit": app.rate_limit }),
        );
        let audit = AuditRow::of(&note, by, app.created_ms);
        let key = app.app_key.clone();
        audited(
            self,
            audit,
            move |q| q.insert_app(&row),
            move || app_exists(&key),
        )
        .await
    }

    async fn update_app(&self, app: &App, note: &AuditNote, by: &Actor) -> Result<(), StoreError> {
        let row = sealed_row(self.secrets(), app);
        let audit = AuditRow::of(note, by, app.updated_ms);
        let key = app.app_key.clone();
        audited(
            self,
            audit,
            move |q| q.update_app(&row),
            move || no_app(&key),
        )
        .await
    }

    async fn create_token(&self, token: &Token, by: &Actor) -> Result<(), StoreError> {
        let row = TokenRow::of(token);
        let note = AuditNote::new("token.create", &token.name, json!({ "role": token.role }));
        let audit = AuditRow::of(&note, by, token.created_ms);
        let name = token.name.clone();
        audited(
            self,
            audit,
            move |q| q.insert_token(&row),
            move || token_exists(&name),
        )
        .await
    }

    async fn token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        let id = id.to_string();
        self.query(move |q| q.token(&id)?.map(TokenRow::into_token).transpose())
            .await
    }

    async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.query(|q| q.tokens()?.into_iter().map(TokenRow::into_token).collect())
            .await
    }

    async fn revoke_token(&self, name: &str, by: &Actor) -> Result<Token, StoreError> {
        let (name, by) = (name.to_string(), by.clone());
        self.query(move |q| {
            in_transaction(q, |q| {
                let now = now_ms();
                let row = q.revoke_token(&name, now)?.ok_or_else(|| {
                    StoreError::Invalid(format!("no token named `{name}` that is not revoked"))
                })?;
                let note = AuditNote::new("token.revoke", &name, json!({ "id": row.id }));
                q.append_audit(&AuditRow::of(&note, &by, now))?;
                row.into_token()
            })
        })
        .await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let q = query.clone();
        self.query(move |r| Ok(r.audit(&q)?.into_iter().map(AuditRow::into_entry).collect()))
            .await
    }

    async fn loan_view(&self, loan_apply_no: &str) -> Result<Option<LoanView>, StoreError> {
        let no = loan_apply_no.to_string();
        self.query(move |r| {
            let Some(snapshot) = r.loan(&no)? else {
                return Ok(None);
            };
            let resolutions = r.audit(&AuditQuery {
                target: Some(crate::reports::loan_target(&no)),
                limit: AuditQuery::MAX_LIMIT,
                ..AuditQuery::default()
            })?;
            snapshot.into_view(resolutions).map(Some)
        })
        .await
    }

    async fn process_view(&self, key: &ProcessKey) -> Result<Option<ProcessView>, StoreError> {
        let key = key.clone();
        self.query(move |r| r.process(&key)?.map(ProcessSnapshot::into_view).transpose())
            .await
    }

    async fn inbox(&self, query: &InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
        let q = query.clone();
        self.query(move |r| {
            Ok(r.inbox(&q)?
                .into_iter()
                .map(InboxRow::into_record)
                .collect())
        })
        .await
    }

    async fn inbox_call(&self, call_id: &str) -> Result<Option<InboxRecord>, StoreError> {
        let id = call_id.to_string();
        self.query(move |r| Ok(r.inbox_call(&id)?.map(InboxRow::into_record)))
            .await
    }

    async fn inbox_missing(&self, call_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let ids = call_ids.to_vec();
        self.query(move |r| r.inbox_missing(&ids)).await
    }

    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let q = query.clone();
        let found = self.query(move |r| r.events(&q)).await?;
        Ok(EventPage {
            events: found.rows.into_iter().map(EventRow::into_event).collect(),
            pruned_through: found.pruned_through,
            pending: found.pending,
        })
    }

    async fn prune_events(&self, before_ms: i64) -> Result<u64, StoreError> {
        // What deliveries and the NATS publisher still need stays.
        self.query(move |r| {
            let floor = r.delivery_floor()?.unwrap_or(i64::MAX);
            r.prune_events(before_ms, floor)
        })
        .await
    }

    fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events_committed().subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if let Some(e) = self.stopped() {
            return Err(e);
        }
        if let Some(why) = self.commits().failing() {
            return Err(StoreError::Unavailable(format!(
                "the last commit failed: {why}"
            )));
        }
        self.query(|r| r.ping()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inbox_filter_numbers_its_placeholders_and_clamps_the_limit() {
        let q = InboxQuery {
            app_key: Some("a".into()),
            before_id: Some(9),
            limit: 5000,
            ..InboxQuery::default()
        };
        let (sql, args) = inbox_query_sql(&q, |n| format!("${n}"));
        assert!(
            sql.ends_with("AND app_key = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
            "{sql}"
        );
        assert_eq!(
            args,
            vec![
                SqlArg::Text("a".into()),
                SqlArg::Int(9),
                SqlArg::Int(i64::from(InboxQuery::MAX_LIMIT))
            ]
        );
    }

    #[test]
    fn a_newer_schema_is_refused_and_an_equal_or_older_one_is_not() {
        assert!(check_schema_version(2, 2).is_ok());
        assert!(check_schema_version(1, 2).is_ok());
        let e = check_schema_version(3, 2).unwrap_err().to_string();
        assert!(e.contains("newer") && e.contains("upgrade"), "{e}");
    }
}
