//! The SQLite writer's unit-of-work guarantees, on a real database file: units committed
//! together in one batch still succeed or fail one by one, and what a unit returns only after
//! its commit is durable.

use std::sync::Arc;

mod common;

use common::{entry, key, process};
use loanwire_domain::Outcome;
use loanwire_store::sqlite::{SqliteOptions, SqliteStore};
use loanwire_store::{Recorded, Store, StoreError, Work};

/// A unit that writes a process and an inbox record, then fails if asked to.
fn unit(no: &'static str, fail: bool) -> Work {
    Box::new(move |tx| {
        tx.put_process(&process(no), 0)?;
        let inbox_id = tx.append_inbox(&entry(no))?;
        if fail {
            return Err(StoreError::Invalid("this unit fails after writing".into()));
        }
        Ok(Recorded {
            outcome: Outcome::Applied,
            response: "r".into(),
            inbox_id,
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_unit_leaves_nothing_while_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let names: Vec<&'static str> = (0..40)
        .map(|i| &*Box::leak(format!("P{i}").into_boxed_str()))
        .collect();
    let handles: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, no)| {
            let store = store.clone();
            let no = *no;
            tokio::spawn(async move { store.transact(unit(no, i % 5 == 0)).await })
        })
        .collect();
    let mut ok = 0;
    for (i, h) in handles.into_iter().enumerate() {
        let result = h.await.unwrap();
        if i % 5 == 0 {
            assert!(
                matches!(result, Err(StoreError::Invalid(_))),
                "unit {i}: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "unit {i}: {result:?}");
            ok += 1;
        }
    }
    for (i, no) in names.iter().enumerate() {
        let view = store.process_view(&key(no)).await.unwrap();
        assert_eq!(view.is_some(), i % 5 != 0, "process {no}");
        assert_eq!(
            store.inbox_call(no).await.unwrap().is_some(),
            i % 5 != 0,
            "inbox {no}"
        );
    }
    assert_eq!(ok, 32);
}

#[tokio::test]
async fn what_a_unit_committed_is_there_after_the_store_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        store.transact(unit("kept", false)).await.unwrap();
    }
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    assert!(store.inbox_call("kept").await.unwrap().is_some());
    assert_eq!(
        store
            .inbox_missing(&["kept".into(), "never".into()])
            .await
            .unwrap(),
        vec!["never".to_string()]
    );
}

#[tokio::test]
async fn a_database_from_a_newer_loanwire_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let db = rusqlite::Connection::open(dir.path().join("loanwire.db")).unwrap();
    db.pragma_update(None, "user_version", 99).unwrap();
    drop(db);
    let err = SqliteStore::open(dir.path(), SqliteOptions::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("newer"), "{err}");
}
