//! Events in the store, on both backends: one per unit that appends it, none from a unit that
//! fails, and a feed that never skips — read while many writers commit at once (on
//! PostgreSQL from two stores, as two gateway instances would).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{endpoint, entry, TestDb};
use loanwire_domain::Outcome;
use loanwire_store::{EventQuery, NewEvent, Recorded, Store, StoreError, Work};

fn new_event(id: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        event_type: "loan.changed".into(),
        recorded_ms: 1_700_000_000_000,
        app_key: "app".into(),
        request_id: format!("r-{id}"),
        subject: r#"{"kind":"loan","loan_apply_no":"FI1"}"#.into(),
        data: r#"{"after_status":"NORMAL"}"#.into(),
    }
}

/// A unit that records a call and its event, then fails if asked to.
fn applied(id: String, fail: bool) -> Work {
    recording(new_event(&id), fail)
}

/// A unit that records the call of `event` (`call-<its id>`) and `event`, then fails if asked to.
fn recording(event: NewEvent, fail: bool) -> Work {
    Box::new(move |tx| {
        let inbox_id = tx.append_inbox(&entry(&format!("call-{}", event.id)))?;
        tx.append_event(&event)?;
        if fail {
            return Err(StoreError::Invalid("fails after its event".into()));
        }
        Ok(Recorded {
            outcome: Outcome::Applied,
            response: "r".into(),
            inbox_id,
        })
    })
}

/// Every event committed so far, read page after page until an empty page says nothing is held
/// back. On PostgreSQL an event is shown once every older writing transaction in the database
/// has ended (other tests' too).
async fn all_events(store: &dyn Store) -> Vec<loanwire_store::Event> {
    let started = Instant::now();
    let mut events: Vec<loanwire_store::Event> = Vec::new();
    loop {
        let q = EventQuery {
            after: events.last().map_or(0, |e| e.seq),
            limit: EventQuery::MAX_LIMIT,
            types: None,
        };
        let page = store.events(&q).await.unwrap();
        if page.events.is_empty() && !page.pending {
            return events;
        }
        let more = !page.events.is_empty();
        events.extend(page.events);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "events held back for 10 s"
        );
        if !more {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

on_both_backends! {
    async fn a_unit_that_fails_leaves_no_event_and_one_that_commits_leaves_one(db) {
        let store = db.open().unwrap();
        store.transact(applied("e1".into(), false)).await.unwrap();
        assert!(store.transact(applied("e2".into(), true)).await.is_err());
        let events = all_events(store.as_ref()).await;
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["e1"]);
        let e = &events[0];
        assert_eq!(e.event_type, "loan.changed");
        assert_eq!(e.recorded_at, "2023-11-14T22:13:20.000Z");
        assert_eq!(e.subject["loan_apply_no"], "FI1");
        assert_eq!(e.data["after_status"], "NORMAL");
    }

    async fn the_feed_filters_by_type_pages_by_cursor_and_marks_what_was_pruned(db) {
        let store = db.open().unwrap();
        for i in 0..5 {
            let mut e = new_event(&format!("p{i}"));
            e.recorded_ms = 1_000 * (i + 1);
            if i % 2 == 1 {
                e.event_type = "process.changed".into();
            }
            store.transact(recording(e, false)).await.unwrap();
        }
        let all = all_events(store.as_ref()).await;
        assert_eq!(all.len(), 5);
        let q = EventQuery { after: all[1].seq, limit: 2, types: None };
        let page = store.events(&q).await.unwrap();
        let ids: Vec<_> = page.events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["p2", "p3"]);
        let q = EventQuery { after: 0, limit: 10, types: Some(vec!["process.changed".into()]) };
        let ids: Vec<_> = store.events(&q).await.unwrap().events.into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["p1", "p3"]);
        // Recorded at 1 s, 2 s, 3 s …: pruning before 2.5 s removes the first two.
        assert_eq!(store.prune_events(2_500).await.unwrap(), 2);
        let page = store.events(&EventQuery { after: 0, limit: 10, types: None }).await.unwrap();
        assert_eq!(page.pruned_through, all[1].seq);
        assert_eq!(page.events.len(), 3);
        assert_eq!(store.prune_events(2_500).await.unwrap(), 0, "nothing more to prune");
    }

    async fn once_every_event_is_pruned_the_next_is_numbered_above_the_pruned_ones(db) {
        let store = db.open().unwrap();
        for i in 0..3 {
            store.transact(applied(format!("gone{i}"), false)).await.unwrap();
        }
        let gone = all_events(store.as_ref()).await;
        assert_eq!(store.prune_events(i64::MAX).await.unwrap(), 3);
        store.transact(applied("next".into(), false)).await.unwrap();
        let left = all_events(store.as_ref()).await;
        let ids: Vec<&str> = left.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["next"]);
        assert!(
            left[0].seq > gone[2].seq,
            "a pruned number is never handed out again: {} after {}",
            left[0].seq,
            gone[2].seq
        );
        let page = store.events(&EventQuery { after: 0, limit: 10, types: None }).await.unwrap();
        assert_eq!(page.pruned_through, gone[2].seq);
        // A reader that had seen the last pruned event reads on without a gap.
        let q = EventQuery { after: gone[2].seq, limit: 10, types: None };
        assert_eq!(store.events(&q).await.unwrap().events.len(), 1);
    }

    async fn pruning_keeps_the_events_an_endpoint_has_not_had_delivered(db) {
        use loanwire_store::delivery::{DispatchStep, Finished, Verdict, AttemptRow};
        let store = db.open().unwrap();
        let by = loanwire_store::Actor { name: "t".into(), source: "t".into() };
        store.create_endpoint(&endpoint("ep_1"), &by).await.unwrap();
        for i in 0..3 {
            store.transact(applied(format!("k{i}"), false)).await.unwrap();
        }
        let all = all_events(store.as_ref()).await;
        // Not yet made into deliveries: nothing may go.
        assert_eq!(store.prune_events(i64::MAX).await.unwrap(), 0);
        let events = store.events_for(0, None, 10).await.unwrap();
        let step = |results, claims| DispatchStep {
            owner: "me".into(),
            now_ms: 1,
            lease_ms: 1000,
            results,
            claims,
            fan_out: vec![],
            disable_after: 20,
        };
        let mut first = step(vec![], vec![("ep_1".into(), 1)]);
        first.fan_out = vec![("ep_1".into(), 0, events)];
        let claimed = store.dispatch(first).await.unwrap().claimed;
        assert_eq!(claimed.len(), 1, "one subject: the first pending only");
        assert_eq!(claimed[0].seq, all[0].seq);
        let done = Finished {
            attempt: AttemptRow {
                endpoint_id: "ep_1".into(),
                seq: claimed[0].seq,
                at_ms: 1,
                status_code: Some(200),
                latency_ms: 1,
                response: None,
                error: None,
            },
            verdict: Verdict::Delivered,
        };
        store.dispatch(step(vec![done], vec![])).await.unwrap();
        // The delivered event may go; the two still pending stay.
        assert_eq!(store.prune_events(i64::MAX).await.unwrap(), 1);
        let left: Vec<String> = all_events(store.as_ref()).await.into_iter().map(|e| e.id).collect();
        assert_eq!(left, ["k1", "k2"]);
        // The delivered one's log went with its event; the pending ones stay.
        let log = store.deliveries("ep_1", None, None, 10).await.unwrap();
        let seqs: Vec<i64> = log.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, [all[2].seq, all[1].seq]);
    }

    async fn a_claim_reads_past_pages_of_leased_deliveries_and_never_past_a_subjects_first(db) {
        use loanwire_store::delivery::DispatchStep;
        let store = db.open().unwrap();
        let by = loanwire_store::Actor { name: "t".into(), source: "t".into() };
        store.create_endpoint(&endpoint("ep_1"), &by).await.unwrap();
        // 150 subjects, then a second event of the first subject, then 10 more subjects.
        let subjects: Vec<String> = (0..150)
            .map(|i| format!("s{i}"))
            .chain(["s0".to_string()])
            .chain((150..160).map(|i| format!("s{i}")))
            .collect();
        for (i, subject) in subjects.iter().enumerate() {
            let mut e = new_event(&format!("c{i}"));
            e.subject = format!(r#"{{"kind":"loan","loan_apply_no":"{subject}"}}"#);
            store.transact(recording(e, false)).await.unwrap();
        }
        let all = all_events(store.as_ref()).await;
        assert_eq!(all.len(), subjects.len());
        let step = |now_ms, limit| DispatchStep {
            owner: "me".into(),
            now_ms,
            lease_ms: 1000,
            results: vec![],
            claims: vec![("ep_1".into(), limit)],
            fan_out: vec![],
            disable_after: 20,
        };
        let mut first = step(1, 140);
        first.fan_out = vec![("ep_1".into(), 0, store.events_for(0, None, 1000).await.unwrap())];
        let claimed: Vec<i64> = store.dispatch(first).await.unwrap().claimed.iter().map(|c| c.seq).collect();
        let expected: Vec<i64> = all[..140].iter().map(|e| e.seq).collect();
        assert_eq!(claimed, expected, "the first 140 subjects' deliveries, in seq order");
        // Still leased: the next claim reads more than two pages of them to find the rest, and
        // leaves the first subject's second event to wait for its first.
        let claimed: Vec<i64> = store.dispatch(step(2, 20)).await.unwrap().claimed.iter().map(|c| c.seq).collect();
        let expected: Vec<i64> = all[140..150].iter().chain(&all[151..]).map(|e| e.seq).collect();
        assert_eq!(claimed, expected);
    }

    async fn a_reader_following_the_feed_never_skips_an_event_while_writers_commit_at_once(db) {
        // On PostgreSQL two stores: two instances, each with writers of its own.
        let stores: Vec<Arc<dyn Store>> = match &db {
            TestDb::Sqlite(_) => vec![db.open().unwrap()],
            TestDb::Postgres { .. } => vec![db.open().unwrap(), db.open().unwrap()],
        };
        for round in 0..10 {
            let done = Arc::new(AtomicBool::new(false));
            let reader = {
                let store = stores[0].clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let mut cursor = 0;
                    let mut seen = Vec::new();
                    let started = Instant::now();
                    loop {
                        let finished = done.load(Ordering::SeqCst);
                        let q = EventQuery { after: cursor, limit: 100, types: None };
                        let page = store.events(&q).await.unwrap();
                        for e in &page.events {
                            assert!(e.seq > cursor, "seq {} after cursor {cursor}", e.seq);
                            cursor = e.seq;
                            seen.push(e.id.clone());
                        }
                        // After the writers are done, one empty, not-pending page ends it.
                        if finished && page.events.is_empty() && !page.pending {
                            return seen;
                        }
                        assert!(started.elapsed() < Duration::from_secs(60), "the reader never caught up");
                    }
                })
            };
            let writers: Vec<_> = (0..32)
                .map(|w| {
                    let store = stores[w % stores.len()].clone();
                    tokio::spawn(async move {
                        for i in 0..10 {
                            let id = format!("r{round}-w{w}-{i}");
                            store.transact(applied(id, false)).await.unwrap();
                        }
                    })
                })
                .collect();
            for w in writers {
                w.await.unwrap();
            }
            done.store(true, Ordering::SeqCst);
            let seen = reader.await.unwrap();
            let expected: HashSet<String> = (0..32)
                .flat_map(|w| (0..10).map(move |i| format!("r{round}-w{w}-{i}")))
                .collect();
            let seen_round: Vec<&String> = seen.iter().filter(|id| id.starts_with(&format!("r{round}-"))).collect();
            let unique: HashSet<&String> = seen_round.iter().copied().collect();
            assert_eq!(unique.len(), seen_round.len(), "round {round}: an event was read twice");
            let missing: Vec<_> = expected.iter().filter(|id| !unique.contains(id)).collect();
            assert!(missing.is_empty(), "round {round}: the reader skipped {} events, e.g. {:?}", missing.len(), missing.first());
        }
    }
}
