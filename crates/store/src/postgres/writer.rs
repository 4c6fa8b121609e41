//! Writer threads: each takes the units waiting on the shared channel and commits them in one
//! transaction, without a savepoint per unit (two round trips each), the units' writes sent
//! together (`held`). A lost race is rare; then the whole batch is rolled back and run again,
//! each unit seeing what the winner committed.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tokio::sync::{oneshot, watch};

use super::conn::{classify, unavailable, Conn};
use super::held::Held;
use super::read_ahead::ReadAhead;
use super::tx::PgTx;
use crate::backend::{run_unit, CommitHealth};
use crate::{Reads, Recorded, Stage, StoreError, Work, WriterObserverRef};

pub(super) struct Job {
    pub work: Work,
    /// The rows it will read, read with the rest of its batch's before the units run.
    pub reads: Reads,
    pub reply: oneshot::Sender<Result<Recorded, StoreError>>,
    /// When it was submitted.
    pub queued: Instant,
}

pub(super) fn writer_loop(
    mut conn: Conn,
    rx: Receiver<Job>,
    max_batch: usize,
    observer: Option<WriterObserverRef>,
    health: &CommitHealth,
    events_committed: &watch::Sender<u64>,
    notify: &crossbeam_channel::Sender<()>,
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
        let began = Instant::now();
        if let Some(observe) = &observer {
            for job in &batch {
                observe.stage(Stage::Queue, began.saturating_duration_since(job.queued));
            }
        }
        let committed = run_batch(&mut conn, batch, health);
        if let Some(observe) = &observer {
            observe.stage(Stage::Commit, began.elapsed());
        }
        if committed {
            events_committed.send_modify(|n| *n = n.wrapping_add(1));
            // Other instances hear of it from the notifier; a full channel means it already
            // has a notification to send, which covers this batch too.
            let _ = notify.try_send(());
        }
        if let Some(observe) = &observer {
            observe.batch(size);
        }
    }
}

/// Attempts at a batch whose units keep losing races before it is given up (code 15, retryable).
const BATCH_ATTEMPTS: u32 = 8;

enum BatchResult {
    /// The answers, and whether events were committed with them.
    Committed(Vec<Recorded>, bool),
    /// This unit failed on its own (not a race, not the database): answer it, run the rest.
    UnitFailed(usize, StoreError),
    /// A unit lost a race; everything was rolled back, run the batch again.
    Conflict(String),
    /// The database or the connection failed; nothing was committed.
    Failed(StoreError),
}

/// Runs the units one after another in one transaction.
fn try_batch(conn: &mut Conn, pending: &mut [Job]) -> BatchResult {
    let (client, statements) = match conn.parts() {
        Ok(parts) => parts,
        Err(e) => return BatchResult::Failed(e),
    };
    let mut txn = match client.transaction() {
        Ok(t) => t,
        Err(e) => return BatchResult::Failed(unavailable(e)),
    };
    let mut results = Vec::with_capacity(pending.len());
    let mut events = 0u32;
    let mut held = Held::default();
    let mut ahead = match ReadAhead::read(&mut txn, statements, pending.iter().map(|j| &j.reads)) {
        Ok(ahead) => ahead,
        Err(StoreError::Conflict(why)) => return BatchResult::Conflict(why),
        Err(e) => return BatchResult::Failed(e),
    };
    // Sending held writes fails only with a race or the database's error (`classify`), never a
    // unit's own: which unit's read happened to send them does not matter.
    for (i, job) in pending.iter_mut().enumerate() {
        let mut tx = PgTx::new(&mut txn, statements, &mut events, &mut held, &mut ahead, i);
        match run_unit(&mut job.work, &mut tx) {
            Ok(r) => results.push(r),
            Err(StoreError::Conflict(why)) => return BatchResult::Conflict(why),
            Err(e @ StoreError::Unavailable(_)) => return BatchResult::Failed(e),
            Err(e) => return BatchResult::UnitFailed(i, e),
        }
    }
    match held.send(&mut txn, statements) {
        Ok(()) => {}
        Err(StoreError::Conflict(why)) => return BatchResult::Conflict(why),
        Err(e) => return BatchResult::Failed(e),
    }
    for (unit, id) in held.sent_inbox_ids {
        results[unit].inbox_id = id;
    }
    match txn.commit() {
        Ok(()) => BatchResult::Committed(results, events > 0),
        Err(e) => match classify(e) {
            StoreError::Conflict(why) => BatchResult::Conflict(why),
            other => BatchResult::Failed(other),
        },
    }
}

/// Runs a batch to its end; whether events were committed.
fn run_batch(conn: &mut Conn, mut pending: Vec<Job>, health: &CommitHealth) -> bool {
    let mut conflicts = 0;
    let mut events = false;
    while !pending.is_empty() {
        match try_batch(conn, &mut pending) {
            BatchResult::Committed(results, with_events) => {
                health.committed();
                events |= with_events;
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
                    // A back-off, not a wait for an event: the winner's commit is not signalled
                    // across instances, and a rerun before it commits only conflicts again.
                    std::thread::sleep(Duration::from_millis(u64::from(conflicts)));
                }
            }
            BatchResult::Failed(e) => {
                // Nothing of the batch was committed; the connection is rebuilt next time.
                health.failed(&e.to_string());
                conn.reset();
                for job in pending.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }
    events
}
