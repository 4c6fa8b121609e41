//! Events on PostgreSQL: a `seq` that readers can trust with several instances committing.
//!
//! A sequence value is taken when a row is inserted, not when it commits, so a reader that saw
//! 42 could later find 41 committed, and a cursor moved past it would skip it. Here instead:
//! - an event's `seq` is `(the writing transaction's xid8 << 20) | its ordinal in the
//!   transaction` (`SEQ_OF_EVENT`): events sort by the transaction that wrote them;
//! - readers take only events below `pg_snapshot_xmin(pg_current_snapshot()) << 20` (the
//!   frontier): every transaction with a smaller xid has ended, so every event below the
//!   frontier that will ever exist is already committed and visible.
//!
//! A reader's cursor is below the frontier it read at, and any event it has not seen yet belongs
//! to a transaction that was still running then (or began later), whose xid — and so whose
//! `seq` — is at or above that frontier: `seq > cursor` never skips. The price is that an event
//! waits, unseen, while any older writing transaction on the database is still running; the
//! feed reports that as `pending` so that a long-polling reader asks again soon. Readers on
//! other instances are woken by a NOTIFY sent after the commit (`notify`), heard by `listen`.
//! 20 bits of
//! ordinal allow a million events per transaction; xid8 stays below 2^43 for centuries of load.

use std::sync::{Arc, Weak};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::watch;

/// The `seq` of an event inserted now: `$1` is its ordinal in the transaction.
pub(super) const SEQ_OF_EVENT: &str = "(pg_current_xact_id()::text::bigint << 20) | $1";

/// Events below this are all committed and visible; none will ever appear below it.
pub(super) const FRONTIER: &str = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)";

/// The channel writers notify when they commit events.
pub(super) const CHANNEL: &str = "loanwire_events";

/// At most one NOTIFY per this long: each is a transaction of the server's, and batches commit
/// hundreds of times a second; a reader elsewhere waits this much longer at most.
const NOTIFY_EVERY: Duration = Duration::from_millis(10);

/// Tells every instance listening that events were committed, once per wake-up however many
/// batches committed meanwhile. From a connection of its own, after the writers' commits:
/// PostgreSQL commits transactions that sent NOTIFY one at a time, so a NOTIFY inside the
/// writers' transactions would take group commit away from them.
pub(super) fn notify(config: postgres::Config, committed: crossbeam_channel::Receiver<()>) {
    let mut client: Option<postgres::Client> = None;
    while committed.recv().is_ok() {
        while committed.try_recv().is_ok() {}
        for _ in 0..2 {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = config.connect(postgres::NoTls).ok();
            }
            let Some(c) = client.as_mut() else {
                break;
            };
            match c.execute("SELECT pg_notify($1, '')", &[&CHANNEL]) {
                Ok(_) => break,
                // Lost connection: once more with a new one. Readers elsewhere still find the
                // events at their next look; a notification only wakes them sooner.
                Err(_) => client = None,
            }
        }
        std::thread::sleep(NOTIFY_EVERY);
    }
}

/// Listens for other instances' commits of events and bumps `signal`; reconnects when the
/// connection is lost; stops when `alive` is gone.
pub(super) fn listen(config: postgres::Config, signal: Arc<watch::Sender<u64>>, alive: Weak<()>) {
    let mut pause = Duration::from_millis(100);
    while alive.upgrade().is_some() {
        let mut client = match config.connect(postgres::NoTls) {
            Ok(c) => c,
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
            continue;
        }
        pause = Duration::from_millis(100);
        // Events committed while not listening: readers look again.
        signal.send_modify(|n| *n = n.wrapping_add(1));
        loop {
            if alive.upgrade().is_none() {
                return;
            }
            let heard = {
                let mut notifications = client.notifications();
                let first = notifications
                    .timeout_iter(Duration::from_secs(1))
                    .next()
                    .map(|n| n.is_some());
                if let Ok(true) = first {
                    // Those already here wake readers once with it, without waiting for more.
                    let mut buffered = notifications.iter();
                    while let Ok(Some(_)) = buffered.next() {}
                }
                first
            };
            match heard {
                Ok(true) => signal.send_modify(|n| *n = n.wrapping_add(1)),
                Ok(false) if !client.is_closed() => {}
                _ => break,
            }
        }
    }
}
