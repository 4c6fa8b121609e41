//! The embedded backend: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Every unit of work goes to one writer thread, which owns the only writing connection and
//! commits whatever units are waiting in one transaction (group commit): one fsync serves many
//! calls, and units that touch the same process or loan note are serialised by construction.
//! Each unit runs inside a savepoint, so one failing unit does not take its batch with it.
//! Reads use their own connections.

mod read;
pub mod seed;
mod tx;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use loanwire_domain::process::ProcessKey;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::{
    App, InboxQuery, InboxRecord, LoanView, ProcessView, Recorded, Store, StoreError, Work,
};

const MIGRATIONS: &[&str] = &[include_str!("../../migrations/sqlite/0001_initial.sql")];

pub const DB_FILE: &str = "loanwire.db";

/// Called with the size of every committed batch (for metrics).
pub type BatchObserver = Arc<dyn Fn(usize) + Send + Sync>;

#[derive(Clone)]
pub struct SqliteOptions {
    /// The most units committed in one transaction.
    pub max_batch: usize,
    /// How long a connection waits for another process's lock (the CLI writing apps).
    pub busy_timeout: Duration,
    pub on_batch: Option<BatchObserver>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 512,
            busy_timeout: Duration::from_secs(5),
            on_batch: None,
        }
    }
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

pub struct SqliteStore {
    /// The checkpoint thread runs while this lives.
    _alive: Arc<()>,
    path: PathBuf,
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    busy_timeout: Duration,
}

fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    // WAL lets readers run beside the writer; FULL makes a commit durable before it returns.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// The writer keeps the hot pages of every table and index in memory.
fn tune_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "cache_size", -32_768)?; // KiB: 32 MiB
                                                      // Checkpoints run on their own thread (see `checkpointer`), not inside a commit the
                                                      // callers are waiting for.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(())
}

/// Copies committed WAL frames into the database file every half second with a PASSIVE
/// checkpoint, which never blocks the writer; stops when the store is dropped.
fn checkpointer(path: PathBuf, busy: Duration, alive: std::sync::Weak<()>) {
    let Ok(conn) = open_connection(&path, busy) else {
        return;
    };
    while alive.upgrade().is_some() {
        std::thread::sleep(Duration::from_millis(500));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
    // A last full checkpoint leaves a compact database behind.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Invalid(format!(
            "the database is at schema version {version}, newer than this loanwire knows ({known}); upgrade loanwire"
        )));
    }
    for sql in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `dir`, applies migrations and starts the
    /// writer thread. Must be called within a Tokio runtime.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(DB_FILE);
        let mut writer = open_connection(&path, options.busy_timeout)?;
        migrate(&mut writer)?;
        tune_writer(&writer)?;
        let (tx, rx) = mpsc::channel::<Job>(options.max_batch * 4);
        let max_batch = options.max_batch.max(1);
        let on_batch = options.on_batch.clone();
        std::thread::Builder::new()
            .name("loanwire-sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx, max_batch, on_batch))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        let alive = Arc::new(());
        let weak = Arc::downgrade(&alive);
        let (cp_path, cp_busy) = (path.clone(), options.busy_timeout);
        std::thread::Builder::new()
            .name("loanwire-sqlite-checkpoint".into())
            .spawn(move || checkpointer(cp_path, cp_busy, weak))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(SqliteStore {
            _alive: alive,
            path,
            jobs: tx,
            readers: Arc::new(Mutex::new(Vec::new())),
            busy_timeout: options.busy_timeout,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled reader connection, off the async threads.
    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let busy = self.busy_timeout;
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().expect("reader pool").pop();
            let mut conn = match pooled {
                Some(c) => c,
                None => open_connection(&path, busy)?,
            };
            let result = f(&mut conn);
            // A connection is only pooled again after it worked; a broken one is dropped.
            if result.is_ok() {
                let mut pool = pool.lock().expect("reader pool");
                if pool.len() < 8 {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reader task failed: {e}")))?
    }
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    on_batch: Option<BatchObserver>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let size = batch.len();
        run_batch(&conn, &mut batch);
        if let Some(observe) = &on_batch {
            observe(size);
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Runs a batch of units in one transaction and answers each once the commit is durable.
fn run_batch(conn: &Connection, batch: &mut Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        for job in batch.drain(..) {
            let _ = job.reply.send(Err(unavailable(&e)));
        }
        return;
    }
    let mut done: Vec<(oneshot::Sender<_>, Result<Recorded, StoreError>)> =
        Vec::with_capacity(batch.len());
    let mut batch_lost: Option<String> = None;
    for mut job in batch.drain(..) {
        if batch_lost.is_some() {
            done.push((
                job.reply,
                Err(StoreError::Unavailable("batch aborted".into())),
            ));
            continue;
        }
        let result = run_unit(conn, &mut job.work);
        if let Err(e) = &result {
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (disk full, I/O error): every unit of
                // the batch is lost, not just this one.
                batch_lost = Some(e.to_string());
            }
        }
        done.push((job.reply, result));
    }
    let commit = match &batch_lost {
        Some(why) => Err(why.clone()),
        None => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
    };
    match commit {
        Ok(()) => {
            for (reply, result) in done {
                let _ = reply.send(result);
            }
        }
        Err(why) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            tracing::error!(error = %why, units = done.len(), "batch not committed");
            for (reply, result) in done {
                let _ = reply.send(Err(match result {
                    Err(e) => e,
                    Ok(_) => StoreError::Unavailable(format!("not committed: {why}")),
                }));
            }
        }
    }
}

fn run_unit(conn: &Connection, work: &mut Work) -> Result<Recorded, StoreError> {
    conn.execute_batch("SAVEPOINT unit")?;
    let mut tx = tx::SqliteTx { conn };
    let result = match catch_unwind(AssertUnwindSafe(|| work(&mut tx))) {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unavailable("the unit of work panicked".into())),
    };
    if conn.is_autocommit() {
        return result;
    }
    match &result {
        Ok(_) => conn.execute_batch("RELEASE unit")?,
        Err(_) => conn.execute_batch("ROLLBACK TO unit; RELEASE unit")?,
    }
    result
}

#[async_trait]
impl Store for SqliteStore {
    async fn transact(&self, work: Work) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { work, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
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
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .await
    }
}
