//! The SQLite inbox under sustained writes, on a real database file: histories stay complete
//! while subjects are indexed in bulk, an older database's histories and numbers survive the
//! migrations, and the WAL is reused instead of growing with every call.

use std::sync::Arc;

mod common;

use common::{entry, key, process};
use loanwire_domain::Outcome;
use loanwire_store::sqlite::{SqliteOptions, SqliteStore};
use loanwire_store::{InboxEntry, Recorded, Store, Work};

/// A callback-like unit: writes the process and an inbox record about it, with `padding` bytes
/// of parameters.
fn call(no: String, call_id: String, padding: usize) -> Work {
    Box::new(move |tx| {
        tx.put_process(&process(&no), 0)?;
        let inbox_id = tx.append_inbox(&InboxEntry {
            params: format!("{{\"pad\":\"{}\"}}", "x".repeat(padding)),
            subject: Some(key(&no).subject()),
            ..entry(&call_id)
        })?;
        Ok(Recorded {
            outcome: Outcome::Applied,
            response: "r".into(),
            inbox_id,
        })
    })
}

/// Sends `n` calls spread over `subjects` processes from 16 concurrent callers.
async fn load(store: &Arc<SqliteStore>, n: usize, subjects: usize, padding: usize) {
    let mut callers = Vec::new();
    for c in 0..16 {
        let store = store.clone();
        callers.push(tokio::spawn(async move {
            for i in (c..n).step_by(16) {
                let work = call(format!("P{}", i % subjects), format!("call-{i}"), padding);
                store.transact(work).await.expect("committed");
            }
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
}

async fn history_ids(store: &SqliteStore, no: &str) -> Vec<String> {
    let view = store
        .process_view(&key(no))
        .await
        .unwrap()
        .expect("process");
    view.history.into_iter().map(|h| h.call_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn histories_hold_every_call_whether_its_subject_is_indexed_yet_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        subject_chunk: 50,
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(dir.path(), options).unwrap());
    load(&store, 1_030, 7, 10).await;
    for s in 0..7 {
        let ids = history_ids(&store, &format!("P{s}")).await;
        let expected: Vec<String> = (0..1_030)
            .filter(|i| i % 7 == s)
            .map(|i| format!("call-{i}"))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_by_key(|id| id[5..].parse::<usize>().unwrap());
        assert_eq!(sorted, expected, "P{s}: every call, none twice");
    }
    // Most of the history came from the bulk index, the rest from the tail.
    let db = rusqlite::Connection::open(dir.path().join("loanwire.db")).unwrap();
    let (indexed, upto): (i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM inbox_subjects), (SELECT id FROM inbox_subjects_upto)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(indexed >= 950, "only {indexed} of 1030 indexed");
    assert_eq!(indexed, upto, "the index reaches exactly its mark");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_still_commit_and_histories_stay_whole_when_indexing_subjects_fails() {
    let dir = tempfile::tempdir().unwrap();
    let options = || SqliteOptions {
        subject_chunk: 20,
        ..SqliteOptions::default()
    };
    drop(SqliteStore::open(dir.path(), options()).unwrap());
    let db = rusqlite::Connection::open(dir.path().join("loanwire.db")).unwrap();
    // Every attempt to index fails half-way through its chunk, as a full disk might.
    db.execute_batch(
        "CREATE TRIGGER refuse_index BEFORE INSERT ON inbox_subjects
         WHEN NEW.id % 20 = 7 BEGIN SELECT RAISE(FAIL, 'no room'); END;",
    )
    .unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), options()).unwrap());
    load(&store, 300, 3, 10).await;
    for s in 0..3 {
        let ids = history_ids(&store, &format!("P{s}")).await;
        assert_eq!(ids.len(), 100, "P{s}: every call, none twice: {ids:?}");
    }
    let (indexed, upto): (i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM inbox_subjects), (SELECT id FROM inbox_subjects_upto)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((indexed, upto), (0, 0), "no part of a failed chunk stays");
}

#[tokio::test]
async fn a_database_indexed_per_call_keeps_its_histories_after_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loanwire.db");
    {
        // A database as the first schema version left it.
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(include_str!("../migrations/sqlite/0001_initial.sql"))
            .unwrap();
        db.pragma_update(None, "user_version", 1).unwrap();
        db.execute_batch(
            "INSERT INTO processes VALUES ('c', 'CREDIT', 'OLD', 'u', 1, 'IN_PROCESSING',
                 NULL, NULL, NULL, 'app', 0, 0);
             INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, subject,
                 detail, response)
             VALUES ('old-1', 0, 'app', 'm', '{}', 'applied', 'process:[\"c\",\"CREDIT\",\"OLD\"]', '{}', 'r'),
                    ('other', 0, 'app', 'm', '{}', 'refused', NULL, '{}', 'r'),
                    ('old-2', 0, 'app', 'm', '{}', 'duplicate', 'process:[\"c\",\"CREDIT\",\"OLD\"]', '{}', 'r');",
        )
        .unwrap();
    }
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    store
        .transact(call("OLD".into(), "new-1".into(), 0))
        .await
        .unwrap();
    assert_eq!(
        history_ids(&store, "OLD").await,
        ["old-1", "old-2", "new-1"]
    );
}

#[tokio::test]
async fn a_database_numbered_by_autoincrement_keeps_its_numbers_and_never_hands_one_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loanwire.db");
    {
        // A database as schema version 6 left it: three calls, five events of which the
        // oldest three were pruned and the newest two removed by hand.
        let db = rusqlite::Connection::open(&path).unwrap();
        for sql in [
            include_str!("../migrations/sqlite/0001_initial.sql"),
            include_str!("../migrations/sqlite/0002_subjects_indexed_in_bulk.sql"),
            include_str!("../migrations/sqlite/0003_events.sql"),
            include_str!("../migrations/sqlite/0004_operators.sql"),
            include_str!("../migrations/sqlite/0005_delivery.sql"),
            include_str!("../migrations/sqlite/0006_console.sql"),
        ] {
            db.execute_batch(sql).unwrap();
        }
        db.pragma_update(None, "user_version", 6).unwrap();
        db.execute_batch(
            "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, detail,
                 response)
             VALUES ('old-1', 0, 'app', 'm', '{}', 'applied', '{}', 'r'),
                    ('old-2', 0, 'app', 'm', '{}', 'applied', '{}', 'r'),
                    ('old-3', 0, 'app', 'm', '{}', 'refused', '{}', 'r');
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5)
             INSERT INTO events (id, type, recorded_ms, app_key, request_id, subject, data)
                 SELECT 'old-e' || i, 'loan.changed', 0, 'app', 'r', '{}', '{}' FROM n;
             DELETE FROM events WHERE seq <= 3;
             UPDATE events_pruned SET through_seq = 3;
             DELETE FROM events;",
        )
        .unwrap();
    }
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let recorded = store
        .transact(Box::new(|tx| {
            let inbox_id = tx.append_inbox(&entry("new-1"))?;
            tx.append_event(&loanwire_store::NewEvent {
                id: "new-e".into(),
                event_type: "loan.changed".into(),
                recorded_ms: 0,
                app_key: "app".into(),
                request_id: "r".into(),
                subject: "{}".into(),
                data: "{}".into(),
            })?;
            Ok(Recorded {
                outcome: Outcome::Applied,
                response: "r".into(),
                inbox_id,
            })
        }))
        .await
        .unwrap();
    assert_eq!(
        recorded.inbox_id, 4,
        "the inbox's numbers go on from the old ones"
    );
    let feed = store
        .events(&loanwire_store::EventQuery {
            after: 0,
            limit: 10,
            types: None,
        })
        .await
        .unwrap();
    assert_eq!(
        feed.pruned_through, 5,
        "every number handed out counts as gone"
    );
    let seqs: Vec<(i64, &str)> = feed.events.iter().map(|e| (e.seq, e.id.as_str())).collect();
    assert_eq!(
        seqs,
        [(6, "new-e")],
        "numbers 1 to 5 are never handed out again"
    );

    let db = rusqlite::Connection::open(&path).unwrap();
    let calls: Vec<(i64, String)> = db
        .prepare("SELECT id, call_id FROM inbox ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected = [(1, "old-1"), (2, "old-2"), (3, "old-3"), (4, "new-1")];
    assert_eq!(calls, expected.map(|(id, c)| (id, c.to_string())));
    let autoincrement: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master
             WHERE name IN ('inbox', 'events') AND sql LIKE '%AUTOINCREMENT%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(autoincrement, 0);
    for change in [
        "UPDATE inbox SET outcome = 'applied' WHERE id = 3",
        "DELETE FROM inbox WHERE id = 1",
    ] {
        let refused = db.execute(change, []).unwrap_err().to_string();
        assert!(refused.contains("append-only"), "{change}: {refused}");
    }
    let indexed: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'inbox_by_app'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 1, "the inbox's index by app is made again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wal_is_reused_under_sustained_writes_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        wal_restart_frames: 256, // about 1 MiB
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(dir.path(), options).unwrap());
    // About 120 MB of calls, each changing one of a thousand process rows as well, for long
    // enough that the checkpoint thread (every 50 ms) runs some dozens of times. Without the
    // restarts the WAL grows past the size of all the calls.
    load(&store, 30_000, 1_000, 4_000).await;
    let wal = std::fs::metadata(dir.path().join("loanwire.db-wal"))
        .unwrap()
        .len();
    let db = std::fs::metadata(dir.path().join("loanwire.db"))
        .unwrap()
        .len();
    let written = 30_000 * 4_000;
    assert!(
        wal < written / 4,
        "the WAL grew to {wal} bytes for {written} bytes of calls"
    );
    assert!(
        db > written / 2,
        "checkpoints copied the calls into the database file ({db} bytes)"
    );
}
