//! The embedded backend: one SQLite file in WAL mode.
//!
//! Every unit of work goes to one writer thread, which owns the connection that runs them and
//! commits whatever units are waiting in one transaction (group commit): units that touch the
//! same process or loan note are serialised by construction, and one `fdatasync` serves many
//! calls. A unit's answer is released only once its commit is on disk (see `writer`).
//! Checkpoints run on a thread of their own (see `checkpoint`). Reads and app changes use pooled
//! connections of their own (see `queries`).

mod checkpoint;
mod delivery;
pub mod files;
mod queries;
mod reports;
mod subjects;
mod tx;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use writer::{failed_error, Failure, Job, Msg, RowsWork, Unit, Writer};

use crate::backend::WriteRows;
use crate::backend::{check_schema_version, Backend, Shared};
use crate::secrets::SecretBox;
use crate::StoreResult;
use crate::{Recorded, StoreError, Work, WriterObserverRef};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../migrations/sqlite/0002_subjects_indexed_in_bulk.sql"),
    include_str!("../../migrations/sqlite/0003_events.sql"),
    include_str!("../../migrations/sqlite/0004_operators.sql"),
    include_str!("../../migrations/sqlite/0005_delivery.sql"),
    include_str!("../../migrations/sqlite/0006_console.sql"),
    include_str!("../../migrations/sqlite/0007_numbers_without_autoincrement.sql"),
];

pub const DB_FILE: &str = "loanwire.db";

#[derive(Clone)]
pub struct SqliteOptions {
    /// The most units committed in one transaction.
    pub max_batch: usize,
    /// How long a connection waits for another process's lock (the CLI writing apps).
    pub busy_timeout: Duration,
    /// Told every batch's size and the time spent in each stage (metrics).
    pub observer: Option<WriterObserverRef>,
    /// Frames (pages of about 4 KiB) the WAL may hold before the writer has it start over. A
    /// WAL that is reused is rewritten in place, in the page cache; one that only grows costs a
    /// new file block for every frame, and its index grows with it.
    pub wal_restart_frames: i64,
    /// Inbox records whose subjects the writer indexes together (see `subjects`). Larger chunks
    /// write each hot subject's index page less often, but the batch that indexes them waits
    /// longer when subjects are spread out: with a million random subjects indexed, a chunk of
    /// 2,048 took ~49 ms, one of 512 ~14 ms (BENCHMARKS.md).
    pub subject_chunk: i64,
    /// Create the data directory and the database when they do not exist; otherwise opening
    /// them fails with `StoreError::Missing`.
    pub create: bool,
    /// What seals app secrets at rest; `None`: stored as given.
    pub secrets: Option<Arc<SecretBox>>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 512,
            busy_timeout: Duration::from_secs(5),
            observer: None,
            wal_restart_frames: 4096,
            subject_chunk: 512,
            create: true,
            secrets: None,
        }
    }
}

pub struct SqliteStore {
    /// The checkpoint thread runs while this lives.
    _alive: Arc<()>,
    path: PathBuf,
    jobs: mpsc::Sender<Msg>,
    failure: Failure,
    shared: Shared,
    readers: Arc<Mutex<Vec<Connection>>>,
    busy_timeout: Duration,
}

/// Opens a connection to an existing database: a connection never creates one, so that a
/// database removed under the store is not quietly replaced by an empty one.
fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    connect(path, busy_timeout, OpenFlags::empty())
}

fn connect(
    path: &Path,
    busy_timeout: Duration,
    extra: OpenFlags,
) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra,
    )?;
    conn.busy_timeout(busy_timeout)?;
    // WAL lets readers run beside the writer; FULL makes a commit durable before it returns
    // (the writer relaxes it, and syncs the WAL itself: see `writer`).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn tune_writer(conn: &Connection) -> Result<(), StoreError> {
    // The hot pages of every table and index stay in memory: 32 MiB (negative means KiB).
    conn.pragma_update(None, "cache_size", -32_768)?;
    // Checkpoints run on their own thread, not inside a commit that callers wait for.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // A commit writes its WAL frames without waiting for the disk; the sync thread makes them
    // durable before anyone is answered.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    check_schema_version(version, known)?;
    for sql in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens the database in `dir` (creating it only if `options.create`), applies migrations
    /// and starts the writer thread. Must be called within a Tokio runtime.
    pub fn open(dir: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = dir.join(DB_FILE);
        files::require(&path, options.create)?;
        files::create_private(dir, &path, b"")?;
        files::warn_if_open(dir, &path);
        let mut writer = open_connection(&path, options.busy_timeout)?;
        let identity = files::Identity::of(&path)?;
        migrate(&mut writer)?;
        tune_writer(&writer)?;
        // Opened while the writer's connection keeps the WAL in place: SQLite removes it only
        // when the last connection closes.
        let wal_path = dir.join(format!("{DB_FILE}-wal"));
        let wal = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&wal_path)
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", wal_path.display()))
            })?;
        let (tx, rx) = mpsc::channel::<Msg>(options.max_batch * 4);
        let restart = Arc::new(AtomicBool::new(false));
        let failure = Failure::default();
        let shared = Shared::new(options.secrets.clone());
        let (health, events_committed) = (shared.health.clone(), shared.events_committed.clone());
        let writer = Writer {
            conn: writer,
            jobs: rx,
            wake: tx.downgrade(),
            max_batch: options.max_batch.max(1),
            observer: options.observer.clone(),
            restart_wal: restart.clone(),
            failure: failure.clone(),
            health: health.clone(),
            events_committed: events_committed.clone(),
            subject_chunk: options.subject_chunk.max(1),
        };
        // Thread names are cut to 15 bytes by the kernel: short enough to tell them apart in
        // `top -H` and profiles.
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(wal))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        let alive = Arc::new(());
        let weak = Arc::downgrade(&alive);
        let checkpointer = checkpoint::Checkpointer {
            path: path.clone(),
            busy: options.busy_timeout,
            alive: weak,
            restart,
            restart_frames: options.wal_restart_frames.max(1),
            identity,
            failure: failure.clone(),
        };
        std::thread::Builder::new()
            .name("sqlite-checkpt".into())
            .spawn(move || checkpointer.run())
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(SqliteStore {
            _alive: alive,
            path,
            jobs: tx,
            failure,
            shared,
            readers: Arc::new(Mutex::new(Vec::new())),
            busy_timeout: options.busy_timeout,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Indexes the subject of every inbox record now, rather than a chunk per batch: for a
    /// database just filled in bulk (the benchmark's preloaded loan notes).
    pub fn index_all_subjects(dir: &Path) -> Result<(), StoreError> {
        let conn = open_connection(&dir.join(DB_FILE), Duration::from_secs(30))?;
        let (last, upto) = subjects::marks(&conn)?;
        let tx = conn.unchecked_transaction()?;
        subjects::index_tail(&tx, upto, last)?;
        tx.commit()?;
        Ok(())
    }
}

impl SqliteStore {
    /// Hands a unit to the writer; answers once it is durably committed.
    async fn send_unit(&self, unit: Unit) -> Result<Recorded, StoreError> {
        if let Some(why) = self.failure.get() {
            return Err(failed_error(why));
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Msg::Job(Job {
                work: unit,
                reply,
                queued: std::time::Instant::now(),
            }))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }
}

#[async_trait]
impl Backend for SqliteStore {
    type Queries = Connection;

    async fn submit(&self, work: Work) -> Result<Recorded, StoreError> {
        self.send_unit(Unit::Call(work)).await
    }

    /// In the writer's transaction: SQLite has one write lock, and a second writer holding it
    /// (even briefly, many times a second) makes the writer's batches wait on it.
    async fn write_rows<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnMut(&mut dyn WriteRows) -> StoreResult<R> + Send + 'static,
    {
        let slot: Arc<std::sync::Mutex<Option<R>>> = Arc::default();
        let put = slot.clone();
        let mut f = f;
        let work: RowsWork = Box::new(move |rows| {
            let r = f(rows)?;
            *put.lock().expect("rows result") = Some(r);
            Ok(())
        });
        self.send_unit(Unit::Rows(work)).await?;
        let answer = slot.lock().expect("rows result").take();
        answer.ok_or_else(|| StoreError::Unavailable("the writer gave no answer".into()))
    }

    /// Runs `f` on a pooled reader connection, off the async threads.
    async fn query<R, F>(&self, f: F) -> Result<R, StoreError>
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
                None => {
                    let c = open_connection(&path, busy)?;
                    // App changes are made here: what they overwrite (a secret stored in the
                    // clear by an older release) is zeroed, not left in free space.
                    c.pragma_update(None, "secure_delete", "ON")?;
                    c
                }
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

    fn stopped(&self) -> Option<StoreError> {
        self.failure.get().map(|why| failed_error(why))
    }

    fn shared(&self) -> &Shared {
        &self.shared
    }
}
