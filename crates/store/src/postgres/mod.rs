//! The PostgreSQL backend, for several gateway instances on one database.
//!
//! Units of work are committed in groups like on SQLite, by a few writer threads that each
//! own a connection: one transaction (one WAL flush) per batch, no savepoint per unit. What
//! serialises units on the same process or loan note is the database itself, so it holds across
//! instances: existing rows are read `FOR UPDATE`; a row that did not exist is inserted plainly,
//! and when a unit loses the race to create it (unique violation) or a deadlock, the whole batch
//! is rolled back and run again, each unit then seeing what the winner committed.
//!
//! The `postgres` client is synchronous; it runs on threads of its own, never on the async
//! runtime's.

mod read;
mod tx;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use crossbeam_channel::{Receiver, Sender};
use loanwire_domain::process::ProcessKey;
use postgres::error::SqlState;
use postgres::{Client, NoTls, Statement};
use tokio::sync::oneshot;

use crate::sqlite::BatchObserver;
use crate::{
    App, InboxQuery, InboxRecord, LoanView, ProcessView, Recorded, Store, StoreError, Work,
};

const MIGRATIONS: &[&str] = &[include_str!("../../migrations/postgres/0001_initial.sql")];

/// Any number: all loanwire instances take the same advisory lock to migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6c6f_616e_7769_7265; // "loanwire"

#[derive(Clone)]
pub struct PgOptions {
    /// Threads committing batches, each with its own connection.
    pub writers: usize,
    pub max_batch: usize,
    /// Threads serving reads.
    pub readers: usize,
    pub connect_timeout: Duration,
    pub on_batch: Option<BatchObserver>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            writers: 4,
            max_batch: 256,
            readers: 2,
            connect_timeout: Duration::from_secs(3),
            on_batch: None,
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Maps a database error: the ones that mean "someone else got there first" are conflicts.
pub(crate) fn classify(e: postgres::Error) -> StoreError {
    match e.code() {
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StoreError::Conflict(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// A connection that reconnects when it is lost, with its prepared statements.
pub(crate) struct Conn {
    config: postgres::Config,
    client: Option<Client>,
    pub(crate) statements: HashMap<&'static str, Statement>,
}

impl Conn {
    fn new(config: postgres::Config) -> Conn {
        Conn {
            config,
            client: None,
            statements: HashMap::new(),
        }
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.statements.clear();
            self.client = Some(self.config.connect(NoTls).map_err(unavailable)?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Forgets a connection that failed, so the next use reconnects.
    fn reset(&mut self) {
        self.client = None;
        self.statements.clear();
    }
}

/// Prepares once per connection.
pub(crate) fn statement<C: postgres::GenericClient>(
    cache: &mut HashMap<&'static str, Statement>,
    client: &mut C,
    sql: &'static str,
) -> Result<Statement, StoreError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql).map_err(unavailable)?;
    cache.insert(sql, s.clone());
    Ok(s)
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(unavailable)?;
    let result = (|| {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS loanwire_migrations (
                     version INTEGER PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .map_err(unavailable)?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM loanwire_migrations",
                &[],
            )
            .map_err(unavailable)?;
        let version: i32 = row.get(0);
        let known = MIGRATIONS.len() as i32;
        if version > known {
            return Err(StoreError::Invalid(format!(
                "the database is at schema version {version}, newer than this loanwire knows ({known}); upgrade loanwire"
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let mut tx = client.transaction().map_err(unavailable)?;
            tx.batch_execute(sql).map_err(unavailable)?;
            tx.execute(
                "INSERT INTO loanwire_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
        }
        Ok(())
    })();
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

type ReadJob = Box<dyn FnOnce(&mut Conn) + Send>;

pub struct PgStore {
    jobs: Sender<Job>,
    reads: Sender<ReadJob>,
}

impl PgStore {
    /// Connects, applies migrations (one instance at a time) and starts the writer and reader
    /// threads. Later outages are survived: calls fail with `Unavailable` until the database
    /// answers again, and connections are re-established as needed.
    pub fn open(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        config.connect_timeout(options.connect_timeout);
        config.application_name("loanwire");
        // The blocking client must not run on an async runtime's thread: connect and migrate
        // on a thread of our own.
        let first_client = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut first = Conn::new(config.clone());
                    migrate(first.client()?)?;
                    Ok::<_, StoreError>(first.client.take())
                })
                .join()
                .map_err(|_| unavailable("migrations panicked"))?
        })?;
        let mut first_client = Some(first_client);

        let (jobs, job_rx) =
            crossbeam_channel::bounded::<Job>(options.max_batch * options.writers.max(1) * 4);
        for i in 0..options.writers.max(1) {
            let rx = job_rx.clone();
            let conn = Conn {
                client: first_client.take().flatten(),
                ..Conn::new(config.clone())
            };
            let max_batch = options.max_batch.max(1);
            let on_batch = options.on_batch.clone();
            std::thread::Builder::new()
                .name(format!("pg-writer-{i}"))
                .spawn(move || writer_loop(conn, rx, max_batch, on_batch))
                .map_err(|e| unavailable(format!("cannot start a writer thread: {e}")))?;
        }
        let (reads, read_rx) = crossbeam_channel::unbounded::<ReadJob>();
        for i in 0..options.readers.max(1) {
            let rx: Receiver<ReadJob> = read_rx.clone();
            let mut conn = Conn::new(config.clone());
            std::thread::Builder::new()
                .name(format!("pg-reader-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job(&mut conn);
                    }
                })
                .map_err(|e| unavailable(format!("cannot start a reader thread: {e}")))?;
        }
        Ok(PgStore { jobs, reads })
    }

    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn: &mut Conn| {
            let result = f(conn);
            if matches!(result, Err(StoreError::Unavailable(_))) {
                conn.reset();
            }
            let _ = tx.send(result);
        });
        self.reads
            .send(job)
            .map_err(|_| unavailable("the readers have stopped"))?;
        rx.await
            .map_err(|_| unavailable("the readers have stopped"))?
    }
}

fn writer_loop(
    mut conn: Conn,
    rx: Receiver<Job>,
    max_batch: usize,
    on_batch: Option<BatchObserver>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        run_batch(&mut conn, batch);
        if let Some(observe) = &on_batch {
            observe(size);
        }
    }
}

/// Attempts at a batch whose units keep losing races before it is given up (code 15, retryable).
const BATCH_ATTEMPTS: u32 = 8;

enum BatchResult {
    Committed(Vec<Recorded>),
    /// This unit failed on its own (not a race, not the database): answer it, run the rest.
    UnitFailed(usize, StoreError),
    /// A unit lost a race; everything was rolled back, run the batch again.
    Conflict(String),
    /// The database or the connection failed; nothing was committed.
    Failed(StoreError),
}

/// Runs the units one after another in one transaction, without a savepoint per unit (two
/// round trips each): a lost race is rare, and then the whole batch is rolled back and run
/// again, each unit seeing what the winner committed.
fn try_batch(conn: &mut Conn, pending: &mut [Job]) -> BatchResult {
    let Conn {
        client,
        statements,
        config,
    } = conn;
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        statements.clear();
        match config.connect(NoTls) {
            Ok(c) => *client = Some(c),
            Err(e) => return BatchResult::Failed(unavailable(e)),
        }
    }
    let client = client.as_mut().expect("connected above");
    let mut txn = match client.transaction() {
        Ok(t) => t,
        Err(e) => return BatchResult::Failed(unavailable(e)),
    };
    let mut results = Vec::with_capacity(pending.len());
    for (i, job) in pending.iter_mut().enumerate() {
        let mut tx = tx::PgTx::new(&mut txn, statements);
        let result = match catch_unwind(AssertUnwindSafe(|| (job.work)(&mut tx))) {
            Ok(r) => r,
            Err(_) => Err(StoreError::Invalid("the unit of work panicked".into())),
        };
        match result {
            Ok(r) => results.push(r),
            Err(StoreError::Conflict(why)) => return BatchResult::Conflict(why),
            Err(e @ StoreError::Unavailable(_)) => return BatchResult::Failed(e),
            Err(e) => return BatchResult::UnitFailed(i, e),
        }
    }
    match txn.commit() {
        Ok(()) => BatchResult::Committed(results),
        Err(e) => match classify(e) {
            StoreError::Conflict(why) => BatchResult::Conflict(why),
            other => BatchResult::Failed(other),
        },
    }
}

fn run_batch(conn: &mut Conn, mut pending: Vec<Job>) {
    let mut conflicts = 0;
    while !pending.is_empty() {
        match try_batch(conn, &mut pending) {
            BatchResult::Committed(results) => {
                for (job, result) in pending.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(result));
                }
            }
            BatchResult::UnitFailed(i, e) => {
                let _ = pending.remove(i).reply.send(Err(e));
            }
            BatchResult::Conflict(why) => {
                conflicts += 1;
                if conflicts >= BATCH_ATTEMPTS {
                    for job in pending.drain(..) {
                        let _ = job.reply.send(Err(unavailable(format!(
                            "gave up after {BATCH_ATTEMPTS} concurrent conflicts: {why}"
                        ))));
                    }
                } else {
                    // Let the winner commit before running again.
                    std::thread::sleep(Duration::from_millis(u64::from(conflicts)));
                }
            }
            BatchResult::Failed(e) => {
                // Nothing of the batch was committed; the connection is rebuilt next time.
                conn.reset();
                for job in pending.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }
}

#[async_trait]
impl Store for PgStore {
    async fn transact(&self, work: Work) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.jobs.clone();
        // The channel is bounded: wait for room off the async threads.
        tokio::task::spawn_blocking(move || jobs.send(Job { work, reply }))
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(|_| unavailable("the writers have stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the writers have stopped"))?
    }

    async fn app(&self, app_key: &str) -> Result<Option<App>, StoreError> {
        let key = app_key.to_string();
        self.read(move |c| read::app(c, &key)).await
    }

    async fn apps(&self) -> Result<Vec<App>, StoreError> {
        self.read(read::apps).await
    }

    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        self.read(move |c| read::insert_app(c, &app)).await
    }

    async fn update_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        self.read(move |c| read::update_app(c, &app)).await
    }

    async fn loan_view(&self, loan_apply_no: &str) -> Result<Option<LoanView>, StoreError> {
        let no = loan_apply_no.to_string();
        self.read(move |c| read::loan_view(c, &no)).await
    }

    async fn process_view(&self, key: &ProcessKey) -> Result<Option<ProcessView>, StoreError> {
        let key = key.clone();
        self.read(move |c| read::process_view(c, &key)).await
    }

    async fn inbox(&self, query: &InboxQuery) -> Result<Vec<InboxRecord>, StoreError> {
        let q = query.clone();
        self.read(move |c| read::inbox(c, &q)).await
    }

    async fn inbox_call(&self, call_id: &str) -> Result<Option<InboxRecord>, StoreError> {
        let id = call_id.to_string();
        self.read(move |c| read::inbox_call(c, &id)).await
    }

    async fn inbox_missing(&self, call_ids: &[String]) -> Result<Vec<String>, StoreError> {
        let ids = call_ids.to_vec();
        self.read(move |c| read::inbox_missing(c, &ids)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.client()?.simple_query("SELECT 1").map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

/// Bulk data for benchmarks: `n` loan notes owned by `app_key`, each with its idempotency
/// record and inbox entry.
pub fn seed_loans(url: &str, app_key: &str, n: u64, tag: &str) -> Result<(), StoreError> {
    let (url, app_key, tag) = (url.to_string(), app_key.to_string(), tag.to_string());
    std::thread::spawn(move || {
        let mut client = Client::connect(&url, NoTls).map_err(unavailable)?;
        let now = crate::now_ms();
        let n = n as i64;
        client
            .execute(
                "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
                     last_change_ms, needs_reconciliation, created_ms, updated_ms)
                 SELECT $3 || '-S' || i, 'NORMAL', $1, 'C' || i, 'I' || i, 1704038400000, FALSE, $4, $4
                 FROM generate_series(0, $2::bigint - 1) AS i",
                &[&app_key, &n, &tag, &now],
            )
            .map_err(unavailable)?;
        client
            .execute(
                "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms)
                 SELECT $1, $3 || '-SR' || i, md5(i::text), '{}', $4 FROM generate_series(0, $2::bigint - 1) AS i",
                &[&app_key, &n, &tag, &now],
            )
            .map_err(unavailable)?;
        client
            .execute(
                "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, subject,
                     idempotency_key, detail, response)
                 SELECT $3 || '-seed-' || i, $4, $1, 'alibaba.finance.xfd.loan.change.notify', '{}', 'applied',
                        'loan:' || $3 || '-S' || i, $3 || '-SR' || i, '{}', ''
                 FROM generate_series(0, $2::bigint - 1) AS i",
                &[&app_key, &n, &tag, &now],
            )
            .map_err(unavailable)?;
        // Measure the steady state, not the bulk load's aftermath: vacuum and flush it now
        // rather than have autovacuum and a checkpoint storm run during the benchmark.
        client
            .batch_execute("VACUUM (ANALYZE) loans, idempotency, inbox")
            .map_err(unavailable)?;
        let _ = client.batch_execute("CHECKPOINT");
        Ok(())
    })
    .join()
    .map_err(|_| unavailable("seeding panicked"))?
}
