//! Durable state: partner apps, processes, loan notes, idempotency records and the append-only
//! inbox, behind two narrow traits.
//!
//! - [`Store`]: what the gateway and the CLI ask of a backend (async).
//! - [`Tx`]: the reads and writes one call's unit of work makes inside a transaction. The
//!   gateway's API modules write their `apply` against it, so every backend runs the same rules,
//!   and everything a call changes, its inbox record included, commits together or not at all.

pub mod backend;
pub mod delivery;
pub mod model;
pub mod postgres;
pub mod reports;
pub mod rows;
pub mod secrets;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use loanwire_domain::idempotency::IdempotencyRecord;
use loanwire_domain::loan::{Flag, LoanState};
use loanwire_domain::process::{ProcessKey, ProcessState};

pub use model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be used right now (unreachable, locked, full, corrupt). The unit of
    /// work was rolled back; the caller may retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request to the store itself is wrong (an unknown app to update, a bad value).
    #[error("{0}")]
    Invalid(String),
    /// There is no database where one was expected, and creating one was not asked for.
    #[error("there is no loanwire database at {}", .0.display())]
    Missing(std::path::PathBuf),
    /// Another writer got there first (a row created concurrently, a deadlock victim): the unit
    /// of work is rolled back and run again, and then sees what the other one committed.
    #[error("concurrent change, retry: {0}")]
    Conflict(String),
}

/// What a store operation answers.
pub type StoreResult<T> = Result<T, StoreError>;

/// Told what a writer does, for metrics: how big its batches are and where a call's time goes
/// between its submission and its durable answer.
pub trait WriterObserver: Send + Sync {
    /// A batch of this many units ended (committed or not).
    fn batch(&self, size: usize);
    /// Time spent in one stage (see [`Stage`] for which are per call and which per batch).
    fn stage(&self, stage: Stage, took: std::time::Duration);
}

/// A writer observer as the store's options hold it.
pub type WriterObserverRef = Arc<dyn WriterObserver>;

/// The stages of a call's way through a writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Per call: from its submission until a writer runs it.
    Queue,
    /// Per call (SQLite): from its run until its batch's commit begins; the writer runs later
    /// arrivals meanwhile, or waits for the disk to finish an earlier sync.
    CommitWait,
    /// Per batch: the commit (on PostgreSQL, the batch's whole transaction, statements and
    /// commit with its flush).
    Commit,
    /// Per batch (SQLite): from the commit until the WAL's sync begins (an earlier sync is
    /// under way).
    SyncWait,
    /// Per batch (SQLite): the `fdatasync` of the WAL.
    Sync,
}

impl Stage {
    /// In pipeline order, which is also declaration order: `stage as usize` indexes it.
    pub const ALL: [Stage; 5] = [
        Stage::Queue,
        Stage::CommitWait,
        Stage::Commit,
        Stage::SyncWait,
        Stage::Sync,
    ];

    /// Whether it is timed per call (else per batch).
    pub fn per_call(self) -> bool {
        matches!(self, Stage::Queue | Stage::CommitWait)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::CommitWait => "commit_wait",
            Stage::Commit => "commit",
            Stage::SyncWait => "sync_wait",
            Stage::Sync => "sync",
        }
    }
}

/// One call's unit of work, run by the backend inside a transaction; on `Err` nothing of it
/// stays. It may run again if the backend has to retry the transaction.
pub type Work = Box<dyn FnMut(&mut dyn Tx) -> Result<Recorded, StoreError> + Send>;

/// The rows a unit of work will read, named before it runs, so that a backend with round trips
/// can read (and lock) those of a whole batch at once. A unit may read other rows too; they are
/// read when it asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    pub processes: Vec<ProcessKey>,
    pub loans: Vec<String>,
    /// `(app_key, request_id)`.
    pub idempotency: Vec<(String, String)>,
}

/// The reads and writes of one unit of work. Reads see the unit's own writes and those of every
/// unit committed before it; a backend serialises units that touch the same process or loan.
pub trait Tx {
    fn process(&mut self, key: &ProcessKey) -> Result<Option<ProcessState>, StoreError>;
    fn put_process(&mut self, state: &ProcessState, now_ms: i64) -> Result<(), StoreError>;
    fn loan(&mut self, loan_apply_no: &str) -> Result<Option<LoanState>, StoreError>;
    fn put_loan(
        &mut self,
        state: &LoanState,
        flags: &[Flag],
        now_ms: i64,
    ) -> Result<(), StoreError>;
    fn idempotency(
        &mut self,
        app_key: &str,
        request_id: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    fn put_idempotency(
        &mut self,
        app_key: &str,
        request_id: &str,
        record: &IdempotencyRecord,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// What `idempotency` and `loan` read, read together — the reads of a loan change, in one
    /// round trip on a backend that has round trips.
    fn idempotency_and_loan(
        &mut self,
        app_key: &str,
        request_id: &str,
        loan_apply_no: &str,
    ) -> Result<(Option<IdempotencyRecord>, Option<LoanState>), StoreError>;
    /// Appends to the inbox; returns the record's id.
    fn append_inbox(&mut self, entry: &InboxEntry) -> Result<i64, StoreError>;
    /// Appends the event of an applied change; it commits with the change or not at all.
    fn append_event(&mut self, event: &NewEvent) -> Result<(), StoreError>;
}

#[async_trait]
pub trait Store: delivery::DeliveryStore + reports::ReportStore + Send + Sync + 'static {
    /// Runs one unit of work durably: when this returns `Ok`, it is committed to disk.
    async fn transact(&self, work: Work) -> Result<Recorded, StoreError>;
    /// `transact`, for a unit that names the rows it will read.
    async fn transact_reading(&self, reads: Reads, work: Work) -> Result<Recorded, StoreError>;

    async fn app(&self, app_key: &str) -> Result<Option<App>, StoreError>;
    async fn apps(&self) -> Result<Vec<App>, StoreError>;
    /// Adds an app, and its `app.create` audit entry in the same commit.
    async fn create_app(&self, app: &App, by: &Actor) -> Result<(), StoreError>;
    /// Replaces an app's record (enable/disable, secret rotation, grants), and records `note`
    /// in the audit in the same commit.
    async fn update_app(&self, app: &App, note: &AuditNote, by: &Actor) -> Result<(), StoreError>;
    /// Seals again every app and endpoint secret not sealed under the key that seals now (stored as given
    /// by an older release, or under a key rotated out), in one commit with its audit entry
    /// (`keys.rotate` for a `rotation`, always; else `secrets.seal` when it sealed any); how
    /// many apps and endpoints it sealed.
    async fn seal_secrets(&self, rotation: bool, by: &Actor) -> Result<usize, StoreError>;

    /// Adds an operator token (its secret only as a hash), audited in the same commit.
    async fn create_token(&self, token: &Token, by: &Actor) -> Result<(), StoreError>;
    async fn token(&self, id: &str) -> Result<Option<Token>, StoreError>;
    async fn tokens(&self) -> Result<Vec<Token>, StoreError>;
    /// Revokes the active token with this name, audited in the same commit.
    async fn revoke_token(&self, name: &str, by: &Actor) -> Result<Token, StoreError>;
    /// Admin changes, newest first.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    async fn loan_view(&self, loan_apply_no: &str) -> Result<Option<LoanView>, StoreError>;
    async fn process_view(&self, key: &ProcessKey) -> Result<Option<ProcessView>, StoreError>;
    async fn inbox(&self, query: &InboxQuery) -> Result<Vec<InboxRecord>, StoreError>;
    /// One inbox record by the call's `request_id`.
    async fn inbox_call(&self, call_id: &str) -> Result<Option<InboxRecord>, StoreError>;

    /// Of the given call `request_id`s, those the inbox does not hold.
    async fn inbox_missing(&self, call_ids: &[String]) -> Result<Vec<String>, StoreError>;

    /// A page of the event feed: events with a `seq` above the cursor, in `seq` order.
    async fn events(&self, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// Removes the events recorded before `before_ms`; how many were removed.
    async fn prune_events(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Changes whenever events may have been committed (here, or by another instance on the
    /// same database): what a long-polling reader waits on.
    fn event_signal(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Whether the store can take calls now: the database answers, its last commit succeeded,
    /// and it has not stopped (a failed disk sync, its files removed).
    async fn ping(&self) -> Result<(), StoreError>;
}
