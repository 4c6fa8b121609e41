//! Copying the WAL back into the database file, off the writer's path, and keeping the WAL from
//! growing without end under sustained load.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::Connection;

use super::files::Identity;
use super::open_connection;
use super::writer::{stop, Failure};

/// What a checkpoint found: the frames in the WAL and how many of them are now copied into the
/// database file — or nothing known, when another connection was checkpointing at that moment
/// (SQLite reports that as `busy`, with both counts -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checkpointed {
    Busy,
    Frames { frames: i64, copied: i64 },
}

/// Runs a PASSIVE checkpoint, which never blocks the writer (nor waits for another checkpoint).
pub(super) fn passive_checkpoint(conn: &Connection) -> Result<Checkpointed, rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(if r.get::<_, i64>(0)? != 0 {
            Checkpointed::Busy
        } else {
            Checkpointed::Frames {
                frames: r.get(1)?,
                copied: r.get(2)?,
            }
        })
    })
}

/// Whether the writer should copy the rest of the WAL itself so that its next transaction
/// starts the WAL over.
///
/// SQLite only starts the WAL over when a write transaction begins while every frame is already
/// copied, and a writer that never pauses always has a few frames more than the last checkpoint
/// copied: checkpoints alone would let the WAL grow by every frame ever written. So once the WAL
/// holds `restart_frames`, the writer is asked to copy the remainder between two batches — when
/// the remainder is small, which keeps the writer's pause short, or in any case once the WAL is
/// four times that size.
pub(super) fn wants_restart(frames: i64, copied: i64, restart_frames: i64) -> bool {
    frames >= restart_frames
        && (frames - copied <= restart_frames / 4 || frames >= restart_frames * 4)
}

/// The checkpoint thread: copies committed frames, and watches the database file; stops when
/// the store is dropped.
pub(super) struct Checkpointer {
    pub path: PathBuf,
    pub busy: Duration,
    pub alive: Weak<()>,
    pub restart: Arc<AtomicBool>,
    pub restart_frames: i64,
    /// The database file as the store opened it.
    pub identity: Identity,
    pub failure: Failure,
}

impl Checkpointer {
    pub(super) fn run(self) {
        let Ok(conn) = open_connection(&self.path, self.busy) else {
            return;
        };
        // Every 50 ms while calls come in; an idle gateway is looked at twice a second.
        let (busy_pause, idle_pause) = (Duration::from_millis(50), Duration::from_millis(500));
        let mut pause = busy_pause;
        let mut last_version = None;
        while self.alive.upgrade().is_some() {
            std::thread::sleep(pause);
            if let Some(why) = self.identity.changed() {
                stop(&self.failure, why);
                return;
            }
            // Changes whenever another connection has committed since this one last asked.
            // (The WAL's frame count is no such sign: the WAL starts over, and comes back to
            // the same count often enough to take a busy gateway for an idle one.)
            let version = conn
                .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
                .ok();
            match passive_checkpoint(&conn) {
                Ok(Checkpointed::Frames { frames, copied }) => {
                    if wants_restart(frames, copied, self.restart_frames) {
                        self.restart.store(true, Ordering::Relaxed);
                    }
                    let idle = frames == copied && version.is_some() && last_version == version;
                    pause = if idle { idle_pause } else { busy_pause };
                    last_version = version;
                }
                // The writer is copying the WAL itself: look again soon.
                Ok(Checkpointed::Busy) => pause = busy_pause,
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
            }
        }
        // A last full checkpoint leaves a compact database behind.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::wants_restart;

    #[test]
    fn the_wal_starts_over_once_large_and_nearly_copied_or_far_too_large() {
        assert!(!wants_restart(100, 100, 4096), "small WAL");
        assert!(wants_restart(4096, 4000, 4096), "large and nearly copied");
        assert!(!wants_restart(5000, 2000, 4096), "large but far behind");
        assert!(wants_restart(20_000, 2000, 4096), "far too large");
    }
}
