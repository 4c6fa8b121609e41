//! The writer thread and the sync thread: group commit with the durability wait taken off the
//! writer's path.
//!
//! The writer owns the only writing connection. It runs each unit of work as it arrives, in the
//! open transaction, and commits with `synchronous=NORMAL`: the commit writes its WAL frames but
//! does not wait for the disk. It hands the batch's answers to the sync thread, which
//! `fdatasync`s the WAL and only then answers. A commit's frames are in the WAL before its
//! answers reach the sync thread, so the `fdatasync` that releases them covers them (and every
//! earlier commit): no answer leaves before its commit is on disk, exactly as with
//! `synchronous=FULL`.
//!
//! While a sync is under way the writer keeps its transaction open and goes on running the units
//! that arrive; it commits when the sync thread says it is done (or the batch is full). So the
//! writer works while the disk syncs, one `fdatasync` serves every call that arrived during the
//! previous one, and batches grow with the load — which matters most when the machine's CPU is
//! the limit, since a commit costs a WAL frame for every page it changed, however few rows each.
//!
//! If the disk fails to sync, what the database shows may not be what is on disk: the store
//! stops taking work (every call answers "unavailable", `ping` fails) until it is reopened, as
//! PostgreSQL does.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, OnceLock};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch};

use super::checkpoint::{passive_checkpoint, Checkpointed};
use super::files;
use super::subjects;
use super::tx::SqliteTx;
use crate::backend::WriteRows;
use crate::backend::{run_unit, CommitHealth};
use crate::{Recorded, Stage, StoreError, Work, WriterObserverRef};
use loanwire_domain::Outcome;

pub(super) type Reply = oneshot::Sender<Result<Recorded, StoreError>>;

pub(super) struct Job {
    pub work: Unit,
    pub reply: Reply,
    /// When it was submitted.
    pub queued: Instant,
}

/// What a job does in the writer's transaction.
pub(super) enum Unit {
    /// One call's unit of work.
    Call(Work),
    /// Delivery bookkeeping (`Backend::write_rows`): it commits with the batch, so that it
    /// never holds the database's write lock against the writer. Its own answer travels in
    /// what it captured; the job's reply only says whether it committed.
    Rows(RowsWork),
}

pub(super) type RowsWork = Box<dyn FnMut(&mut dyn WriteRows) -> Result<(), StoreError> + Send>;

/// What a committed rows unit answers (its reply carries no call).
fn rows_done() -> Recorded {
    Recorded {
        outcome: Outcome::Refused,
        response: String::new(),
        inbox_id: 0,
    }
}

/// What reaches the writer thread: work, or word that a sync made this many committed batches
/// durable.
pub(super) enum Msg {
    Job(Job),
    Synced(usize),
}

/// Committed batches that may wait for their sync at once. With one, the writer's commit and
/// the disk's sync take turns (each waits for the other); with two, the writer commits the
/// next batch while the previous one syncs, and the sync thread's next `fdatasync` covers
/// everything committed before it starts.
const IN_FLIGHT: usize = 2;

/// Set once, when commits can no longer be made durable where anyone will find them (a failed
/// disk sync, the database's files removed); the store then refuses all work.
pub(super) type Failure = Arc<OnceLock<String>>;

/// Stops the store for good, saying why as loudly as the logs allow.
pub(super) fn stop(failure: &Failure, why: String) {
    if failure.set(why.clone()).is_ok() {
        tracing::error!(error = %why, "the store stops taking writes until the gateway is restarted");
    }
}

pub(super) fn failed_error(why: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "the database stopped taking writes: {why}; restart the gateway"
    ))
}

type Answers = Vec<(Reply, Result<Recorded, StoreError>)>;

/// A committed batch's answers on their way to the sync thread, and when it was committed.
struct Committed {
    answers: Answers,
    at: Instant,
}

pub(super) struct Writer {
    pub conn: Connection,
    pub jobs: mpsc::Receiver<Msg>,
    /// For the sync thread to say it is done; weak, so that the channel closes when the store
    /// is dropped.
    pub wake: mpsc::WeakSender<Msg>,
    pub max_batch: usize,
    pub observer: Option<WriterObserverRef>,
    /// Raised by the checkpoint thread when the WAL should start over.
    pub restart_wal: Arc<AtomicBool>,
    pub failure: Failure,
    pub health: Arc<CommitHealth>,
    /// Bumped once a batch with applied calls (and so events) is durable.
    pub events_committed: Arc<watch::Sender<u64>>,
    /// Inbox records whose subjects are indexed together (see `subjects`).
    pub subject_chunk: i64,
}

/// The writer thread's state between messages.
struct Running {
    w: Writer,
    to_sync: std_mpsc::Sender<Committed>,
    open: OpenBatch,
    /// Committed batches with the sync thread, not yet durable.
    in_flight: usize,
    /// The highest inbox id committed, and how far the subject index reaches.
    last_inbox_id: i64,
    subjects_upto: i64,
}

impl Writer {
    /// Runs until the store is dropped; `wal` is the WAL file, synced by a thread of its own.
    pub fn run(self, wal: File) {
        let (to_sync, synced) = std_mpsc::channel::<Committed>();
        let (failure, wake) = (self.failure.clone(), self.wake.clone());
        let events = self.events_committed.clone();
        let observer = self.observer.clone();
        let syncer = std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || sync_loop(wal, synced, wake, failure, &events, observer));
        if let Err(e) = &syncer {
            stop(&self.failure, format!("cannot start the sync thread: {e}"));
        }
        let (last_inbox_id, subjects_upto) = match subjects::marks(&self.conn) {
            Ok(m) => m,
            Err(e) => {
                stop(&self.failure, format!("cannot read the inbox: {e}"));
                (0, 0)
            }
        };
        let mut r = Running {
            w: self,
            to_sync,
            open: OpenBatch::default(),
            in_flight: 0,
            last_inbox_id,
            subjects_upto,
        };
        while let Some(msg) = r.w.jobs.blocking_recv() {
            r.take(msg);
            while r.open.len() < r.w.max_batch {
                match r.w.jobs.try_recv() {
                    Ok(msg) => r.take(msg),
                    Err(_) => break,
                }
            }
            if !r.open.is_empty() && (r.in_flight < IN_FLIGHT || r.open.len() >= r.w.max_batch) {
                r.commit();
            }
        }
        if !r.open.is_empty() {
            r.commit();
        }
    }
}

impl Running {
    fn take(&mut self, msg: Msg) {
        let job = match msg {
            Msg::Synced(batches) => {
                self.in_flight = self.in_flight.saturating_sub(batches);
                return;
            }
            Msg::Job(job) => job,
        };
        if let Some(why) = self.w.failure.get() {
            let _ = job.reply.send(Err(failed_error(why)));
            return;
        }
        if self.open.is_empty() {
            self.begin();
        }
        if let Some(observe) = &self.w.observer {
            observe.stage(Stage::Queue, job.queued.elapsed());
        }
        self.open.add(&mut self.w.conn, job);
    }

    fn begin(&mut self) {
        if self.w.restart_wal.swap(false, Ordering::Relaxed) {
            // Outside any transaction: copies what the checkpoint thread has not copied yet, so
            // that the transaction about to begin starts the WAL over. If the checkpoint thread
            // was copying at that moment, or not every frame could be copied, the WAL cannot
            // start over now: ask again before the next batch rather than wait for the
            // checkpoint thread to ask, which under load meets the writer's copy again and
            // again while the WAL grows.
            match passive_checkpoint(&self.w.conn) {
                Ok(Checkpointed::Frames { frames, copied }) if copied == frames => {}
                Ok(_) => self.w.restart_wal.store(true, Ordering::Relaxed),
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint by the writer failed"),
            }
        }
        if !self.begin_transaction()
            || self.last_inbox_id - self.subjects_upto < self.w.subject_chunk
        {
            return;
        }
        match subjects::index_tail(&self.w.conn, self.subjects_upto, self.last_inbox_id) {
            Ok(()) => self.open.subjects_upto = Some(self.last_inbox_id),
            Err(e) => {
                // Nothing but the indexing is in the transaction yet: start it over without.
                // The chunk is left for a later batch; histories scan the longer tail meanwhile.
                tracing::warn!(error = %e, "indexing the inbox's subjects failed");
                rollback(&self.w.conn);
                self.begin_transaction();
            }
        }
    }

    /// Begins the open batch's transaction; if it cannot begin, the batch will refuse its units.
    fn begin_transaction(&mut self) -> bool {
        match exec(&self.w.conn, "BEGIN IMMEDIATE") {
            Ok(()) => true,
            Err(e) => {
                self.open.not_begun = Some(e.to_string());
                false
            }
        }
    }

    fn commit(&mut self) {
        let size = self.open.len();
        let indexed = self.open.subjects_upto;
        let began = Instant::now();
        if let Some(observe) = &self.w.observer {
            for ran in &self.open.ran {
                observe.stage(Stage::CommitWait, began.saturating_duration_since(*ran));
            }
        }
        let (answers, committed) = std::mem::take(&mut self.open).finish(&mut self.w.conn);
        let at = Instant::now();
        if let Some(observe) = &self.w.observer {
            observe.stage(Stage::Commit, at - began);
        }
        if committed {
            if let Some(upto) = indexed {
                self.subjects_upto = upto;
            }
            let newest = answers
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok().map(|r| r.inbox_id))
                .max();
            self.last_inbox_id = self.last_inbox_id.max(newest.unwrap_or(0));
            self.w.health.committed();
            if let Err(std_mpsc::SendError(batch)) = self.to_sync.send(Committed { answers, at }) {
                let why = "the sync thread has stopped";
                stop(&self.w.failure, why.into());
                fail_all(batch.answers, why);
            }
            self.in_flight += 1;
        } else {
            self.w
                .health
                .failed("a batch could not be committed (see the log)");
            // Nothing of the batch is in the database: no sync to wait for.
            for (reply, result) in answers {
                let _ = reply.send(result);
            }
        }
        if let Some(observe) = &self.w.observer {
            observe.batch(size);
        }
    }
}

/// The units of the open transaction, each run as it arrived.
#[derive(Default)]
struct OpenBatch {
    jobs: Vec<Job>,
    /// When each job's unit had run.
    ran: Vec<Instant>,
    results: Vec<Recorded>,
    /// Why the transaction could not begin.
    not_begun: Option<String>,
    /// A unit failed: the transaction is to be rolled back and the batch run unit by unit.
    unit_failed: bool,
    /// The subject index reaches this far once the transaction commits.
    subjects_upto: Option<i64>,
}

impl OpenBatch {
    fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Units run without a savepoint each: a savepoint copies every page a unit first touches
    /// into the sub-journal, for a failure that almost never happens. When a unit does fail,
    /// `finish` rolls the whole transaction back and runs the batch again with a savepoint per
    /// unit, so that only the failing units are left out.
    fn add(&mut self, conn: &mut Connection, mut job: Job) {
        if self.not_begun.is_none() && !self.unit_failed {
            match run_unit_on(conn, &mut job.work) {
                Ok(r) => self.results.push(r),
                Err(_) => {
                    self.unit_failed = true;
                    // `finish` rolls back and runs the batch again without the indexing.
                    self.subjects_upto = None;
                }
            }
        }
        self.ran.push(Instant::now());
        self.jobs.push(job);
    }

    /// Commits (not yet durably); returns each unit's answer and whether anything was committed.
    fn finish(self, conn: &mut Connection) -> (Answers, bool) {
        if let Some(why) = &self.not_begun {
            return (refuse_all(self.jobs, why), false);
        }
        if !self.unit_failed {
            return commit(
                conn,
                self.jobs.into_iter().zip(self.results.into_iter().map(Ok)),
            );
        }
        rollback(conn);
        run_batch_unit_by_unit(conn, self.jobs)
    }
}

/// Answers committed units with the store's failure: their commit may not be on disk.
fn fail_all(answers: Answers, why: &str) {
    for (reply, result) in answers {
        let _ = reply.send(Err(error_of(result, || failed_error(why))));
    }
}

/// A unit's own error, or `otherwise` for a unit that succeeded but whose work did not stay.
fn error_of(
    result: Result<Recorded, StoreError>,
    otherwise: impl FnOnce() -> StoreError,
) -> StoreError {
    result.err().unwrap_or_else(otherwise)
}

/// Every unit of a batch whose transaction could not begin: none of them ran.
fn refuse_all(jobs: Vec<Job>, why: &str) -> Answers {
    jobs.into_iter()
        .map(|job| (job.reply, Err(unavailable(why))))
        .collect()
}

/// Answers committed batches once an `fdatasync` of the WAL that started after their commit
/// has returned.
fn sync_loop(
    wal: File,
    synced: std_mpsc::Receiver<Committed>,
    wake: mpsc::WeakSender<Msg>,
    failure: Failure,
    events_committed: &watch::Sender<u64>,
    observer: Option<WriterObserverRef>,
) {
    let mut pending: Answers = Vec::new();
    while let Ok(first) = synced.recv() {
        let mut batches = 0;
        let mut take = |batch: Committed| {
            if let Some(observe) = &observer {
                observe.stage(Stage::SyncWait, batch.at.elapsed());
            }
            pending.extend(batch.answers);
            batches += 1;
        };
        take(first);
        while let Ok(more) = synced.try_recv() {
            take(more);
        }
        if let Some(why) = failure.get() {
            fail_all(std::mem::take(&mut pending), why);
            continue;
        }
        // Synced is not enough: a WAL that was unlinked (its directory removed) syncs
        // without complaint into a file nobody will ever read.
        let began = Instant::now();
        let lost = match wal.sync_data() {
            Ok(()) => files::unlinked(&wal, "the database's WAL file"),
            Err(e) => Some(format!("fdatasync of the WAL failed: {e}")),
        };
        if let Some(observe) = &observer {
            observe.stage(Stage::Sync, began.elapsed());
        }
        match lost {
            None => {
                // An applied call is one whose event committed with it (SPEC 3.1).
                let applied = pending
                    .iter()
                    .any(|(_, r)| r.as_ref().is_ok_and(|r| r.outcome == Outcome::Applied));
                for (reply, result) in pending.drain(..) {
                    let _ = reply.send(result);
                }
                if applied {
                    events_committed.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            Some(why) => {
                stop(&failure, why.clone());
                fail_all(std::mem::take(&mut pending), &why);
            }
        }
        // The writer commits what it gathered meanwhile. A full channel only means it has work
        // enough; it does not wait for this.
        if let Some(writer) = wake.upgrade() {
            let _ = writer.blocking_send(Msg::Synced(batches));
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn exec(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Rolls the open transaction back, unless SQLite already has (disk full, I/O error).
fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK");
    }
}

fn run_batch_unit_by_unit(conn: &mut Connection, mut batch: Vec<Job>) -> (Answers, bool) {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        return (refuse_all(batch, &e.to_string()), false);
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut batch_lost: Option<String> = None;
    for job in batch.iter_mut() {
        if batch_lost.is_some() {
            results.push(Err(StoreError::Unavailable("batch aborted".into())));
            continue;
        }
        let result = run_unit_in_savepoint(conn, &mut job.work);
        if let Err(e) = &result {
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (disk full, I/O error): every unit of
                // the batch is lost, not just this one.
                batch_lost = Some(e.to_string());
            }
        }
        results.push(result);
    }
    if let Some(why) = batch_lost {
        return not_committed(conn, batch.into_iter().zip(results), &why);
    }
    commit(conn, batch.into_iter().zip(results))
}

fn commit(
    conn: &Connection,
    done: impl Iterator<Item = (Job, Result<Recorded, StoreError>)>,
) -> (Answers, bool) {
    match exec(conn, "COMMIT") {
        Ok(()) => (done.map(|(job, r)| (job.reply, r)).collect(), true),
        Err(e) => not_committed(conn, done, &e.to_string()),
    }
}

fn not_committed(
    conn: &Connection,
    done: impl Iterator<Item = (Job, Result<Recorded, StoreError>)>,
    why: &str,
) -> (Answers, bool) {
    rollback(conn);
    let answers: Answers = done
        .map(|(job, result)| {
            let error = error_of(result, || unavailable(format!("not committed: {why}")));
            (job.reply, Err(error))
        })
        .collect();
    tracing::error!(error = %why, units = answers.len(), "batch not committed");
    (answers, false)
}

fn run_unit_on(conn: &mut Connection, unit: &mut Unit) -> Result<Recorded, StoreError> {
    match unit {
        Unit::Call(work) => run_unit(work, &mut SqliteTx { conn }),
        Unit::Rows(f) => f(conn).map(|()| rows_done()),
    }
}

fn run_unit_in_savepoint(conn: &mut Connection, unit: &mut Unit) -> Result<Recorded, StoreError> {
    exec(conn, "SAVEPOINT part")?;
    let result = run_unit_on(conn, unit);
    // When SQLite has rolled the whole transaction back itself (disk full, I/O error) there
    // is no savepoint left to end.
    if conn.is_autocommit() {
        return result;
    }
    match &result {
        Ok(_) => exec(conn, "RELEASE part")?,
        Err(_) => {
            exec(conn, "ROLLBACK TO part")?;
            exec(conn, "RELEASE part")?;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InboxEntry;

    fn record(call_id: &str) -> Work {
        let call_id = call_id.to_string();
        Box::new(move |tx| {
            let inbox_id = tx.append_inbox(&InboxEntry {
                call_id: call_id.clone(),
                received_ms: 0,
                app_key: "app".into(),
                method: "m".into(),
                params: "{}".into(),
                outcome: Outcome::Applied,
                error_code: None,
                biz_code: None,
                subject: None,
                idempotency_key: None,
                detail: "{}".into(),
                response: "r".into(),
            })?;
            Ok(Recorded {
                outcome: Outcome::Applied,
                response: "r".into(),
                inbox_id,
            })
        })
    }

    /// A writer on a real database whose "WAL" handle cannot be synced (a pipe: `fdatasync`
    /// answers EINVAL), as a failing disk would.
    fn writer_with_unsyncable_wal() -> (tempfile::TempDir, mpsc::Sender<Msg>, Failure) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::connect(
            &dir.path().join(super::super::DB_FILE),
            std::time::Duration::from_secs(1),
            rusqlite::OpenFlags::SQLITE_OPEN_CREATE,
        )
        .unwrap();
        super::super::migrate(&mut conn).unwrap();
        let (jobs, rx) = mpsc::channel(16);
        let failure = Failure::default();
        let writer = Writer {
            conn,
            jobs: rx,
            wake: jobs.downgrade(),
            max_batch: 8,
            observer: None,
            restart_wal: Arc::default(),
            failure: failure.clone(),
            health: Arc::default(),
            events_committed: Arc::new(watch::channel(0).0),
            subject_chunk: 2048,
        };
        let (pipe, _keep_open) = std::io::pipe().unwrap();
        let wal = File::from(std::os::fd::OwnedFd::from(pipe));
        std::thread::spawn(move || {
            let _keep_open = _keep_open;
            writer.run(wal)
        });
        (dir, jobs, failure)
    }

    async fn submit(jobs: &mpsc::Sender<Msg>, work: Work) -> Result<Recorded, StoreError> {
        let (reply, answer) = oneshot::channel();
        jobs.send(Msg::Job(Job {
            work: Unit::Call(work),
            reply,
            queued: Instant::now(),
        }))
        .await
        .unwrap();
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn a_commit_the_disk_cannot_sync_is_not_acknowledged_and_stops_the_store() {
        let (_dir, jobs, failure) = writer_with_unsyncable_wal();
        let first = submit(&jobs, record("a")).await;
        match first {
            Err(StoreError::Unavailable(why)) => assert!(why.contains("fdatasync"), "{why}"),
            other => panic!("committed but not durable must not succeed: {other:?}"),
        }
        assert!(failure.get().is_some(), "the store is marked failed");
        let second = submit(&jobs, record("b")).await;
        assert!(
            matches!(&second, Err(StoreError::Unavailable(why)) if why.contains("restart")),
            "later work is refused too: {second:?}"
        );
    }
}
