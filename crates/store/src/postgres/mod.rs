//! The PostgreSQL backend, for several gateway instances on one database.
//!
//! Units of work are committed in groups like on SQLite, by a few writer threads that each
//! own a connection (`writer`): one transaction (one WAL flush) per batch, no savepoint per
//! unit. What serialises units on the same process or loan note is the database itself, so it
//! holds across instances: existing rows are read `FOR UPDATE`; a row that did not exist is
//! inserted plainly, and when a unit loses the race to create it (unique violation) or a
//! deadlock, the whole batch is rolled back and run again, each unit then seeing what the
//! winner committed (`tx`).
//!
//! The `postgres` client is synchronous; it runs on threads of its own, never on the async
//! runtime's.

mod conn;
mod delivery;
mod events;
mod held;
mod migrate;
mod queries;
mod read_ahead;
mod reports;
mod tx;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crossbeam_channel::Sender;
use tokio::sync::oneshot;

use conn::unavailable;
pub use conn::Conn;
use writer::{writer_loop, Job};

use crate::backend::{Backend, Shared};
use crate::secrets::SecretBox;
use crate::{Reads, Recorded, StoreError, Work, WriterObserverRef};

#[derive(Clone)]
pub struct PgOptions {
    /// Threads committing batches, each with its own connection.
    pub writers: usize,
    pub max_batch: usize,
    /// Threads serving reads.
    pub readers: usize,
    pub connect_timeout: Duration,
    /// Told every batch's size and the time spent in each stage (metrics).
    pub observer: Option<WriterObserverRef>,
    /// What seals app secrets at rest; `None`: stored as given.
    pub secrets: Option<Arc<SecretBox>>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            writers: 4,
            max_batch: 256,
            readers: 2,
            connect_timeout: Duration::from_secs(3),
            observer: None,
            secrets: None,
        }
    }
}

type ReadJob = Box<dyn FnOnce(&mut Conn) + Send>;

pub struct PgStore {
    jobs: Sender<Job>,
    reads: Sender<ReadJob>,
    shared: Shared,
    /// The listener thread runs while this lives.
    _alive: Arc<()>,
}

/// Starts a thread named `name` (cut to 15 bytes by the kernel: keep it short).
fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map(|_| ())
        .map_err(|e| unavailable(format!("cannot start a thread: {e}")))
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
        // on a thread of our own; the first writer keeps that connection.
        let first = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut first = Conn::new(config.clone());
                    migrate::migrate(first.client()?)?;
                    Ok::<_, StoreError>(first)
                })
                .join()
                .map_err(|_| unavailable("migrations panicked"))?
        })?;
        let mut first = Some(first);

        let shared = Shared::new(options.secrets.clone());
        let (health, events_committed) = (shared.health.clone(), shared.events_committed.clone());
        let (notify, to_notify) = crossbeam_channel::bounded::<()>(1);
        let (jobs, job_rx) =
            crossbeam_channel::bounded::<Job>(options.max_batch * options.writers.max(1) * 4);
        for i in 0..options.writers.max(1) {
            let rx = job_rx.clone();
            let conn = first.take().unwrap_or_else(|| Conn::new(config.clone()));
            let max_batch = options.max_batch.max(1);
            let observer = options.observer.clone();
            let (health, events, notify) =
                (health.clone(), events_committed.clone(), notify.clone());
            spawn(format!("pg-writer-{i}"), move || {
                writer_loop(conn, rx, max_batch, observer, &health, &events, &notify)
            })?;
        }
        let (reads, read_rx) = crossbeam_channel::unbounded::<ReadJob>();
        for i in 0..options.readers.max(1) {
            let rx = read_rx.clone();
            let mut conn = Conn::new(config.clone());
            spawn(format!("pg-reader-{i}"), move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })?;
        }
        let alive = Arc::new(());
        let (weak, signal, listen_config) = (
            Arc::downgrade(&alive),
            events_committed.clone(),
            config.clone(),
        );
        let notify_config = listen_config.clone();
        spawn("pg-listen".into(), move || {
            events::listen(listen_config, signal, weak)
        })?;
        // Ends when the writers (the senders) are gone.
        drop(notify);
        spawn("pg-notify".into(), move || {
            events::notify(notify_config, to_notify)
        })?;
        Ok(PgStore {
            jobs,
            reads,
            shared,
            _alive: alive,
        })
    }
}

#[async_trait]
impl Backend for PgStore {
    type Queries = Conn;

    fn shared(&self) -> &Shared {
        &self.shared
    }

    async fn submit(&self, work: Work) -> Result<Recorded, StoreError> {
        self.submit_reading(Reads::default(), work).await
    }

    async fn submit_reading(&self, reads: Reads, work: Work) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work,
            reads,
            reply,
            queued: std::time::Instant::now(),
        };
        // The channel is bounded. While it has room the job goes straight in; only when it is
        // full does the call wait for room, off the async threads (a blocking task per call
        // costs a thread hand-off both ways).
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                return Err(unavailable("the writers have stopped"))
            }
            Err(crossbeam_channel::TrySendError::Full(job)) => {
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|e| unavailable(e.to_string()))?
                    .map_err(|_| unavailable("the writers have stopped"))?;
            }
        }
        answer
            .await
            .map_err(|_| unavailable("the writers have stopped"))?
    }

    async fn query<R, F>(&self, f: F) -> Result<R, StoreError>
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
