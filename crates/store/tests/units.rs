//! What every backend guarantees a unit of work, run on both (PostgreSQL when
//! `LOANWIRE_TEST_DATABASE_URL` is set, else each PostgreSQL test says SKIPPED): units committed
//! together in one batch still succeed or fail one by one, a panicking unit fails alone, what
//! was committed survives reopening, rows read back as written, and a newer schema is refused.

mod common;

use std::sync::Arc;

use common::{endpoint, entry, key, process, TestDb};
use loanwire_domain::idempotency::IdempotencyRecord;
use loanwire_domain::loan::{Flag, FlagKind, LoanState};
use loanwire_domain::Outcome;
use loanwire_store::backend::UNIT_PANICKED;
use loanwire_store::secrets::{MasterKey, SecretBox};
use loanwire_store::{
    Actor, App, AuditNote, AuditQuery, InboxEntry, InboxQuery, Reads, Recorded, Role, Store,
    StoreError, Token, Work,
};
use loanwire_top::TopDateTime;

/// How a test unit ends after writing its process and inbox record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Ok,
    Fail,
    Panic,
}

fn unit(no: String, end: End) -> Work {
    Box::new(move |tx| {
        tx.put_process(&process(&no), 0)?;
        let inbox_id = tx.append_inbox(&entry(&no))?;
        match end {
            End::Ok => Ok(Recorded {
                outcome: Outcome::Applied,
                response: "r".into(),
                inbox_id,
            }),
            End::Fail => Err(StoreError::Invalid("this unit fails after writing".into())),
            End::Panic => panic!("this unit panics after writing"),
        }
    })
}

/// Sends 40 units at once, every fifth ending as `bad`; checks that exactly the others stay.
async fn batch_with_bad_units(store: Arc<dyn Store>, bad: End) -> Vec<StoreError> {
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let end = if i % 5 == 0 { bad } else { End::Ok };
            tokio::spawn(async move { store.transact(unit(format!("P{i}"), end)).await })
        })
        .collect();
    let mut errors = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.await.unwrap() {
            Ok(_) => assert!(i % 5 != 0, "unit {i} should have failed"),
            Err(e) => {
                assert!(i % 5 == 0, "unit {i}: {e}");
                errors.push(e);
            }
        }
    }
    for i in 0..40 {
        let no = format!("P{i}");
        let kept = i % 5 != 0;
        let view = store.process_view(&key(&no)).await.unwrap();
        assert_eq!(view.is_some(), kept, "process {no}");
        assert_eq!(
            store.inbox_call(&no).await.unwrap().is_some(),
            kept,
            "inbox {no}"
        );
    }
    assert_eq!(errors.len(), 8);
    errors
}

/// Sends 40 units at once that each read one process and count one more into its status (so
/// they share batches), naming the process as a read if `named`; checks that none lost an
/// update, that each saw the columns an update leaves alone as stored, and that each answer
/// carries its own inbox record's id.
async fn count_into_one_process(store: Arc<dyn Store>, named: bool) {
    store.transact(unit("COUNT".into(), End::Ok)).await.unwrap();
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let call_id = format!("count-{i}");
                let id = call_id.clone();
                let work: Work = Box::new(move |tx| {
                    let mut p = tx.process(&key("COUNT"))?.expect("the process");
                    assert_eq!(p.user, "u", "an update leaves the user as stored");
                    let counted: u32 = p.status.parse().unwrap_or(0);
                    p.status = (counted + 1).to_string();
                    p.user = format!("not stored {i}");
                    tx.put_process(&p, 0)?;
                    let inbox_id = tx.append_inbox(&entry(&id))?;
                    Ok(Recorded {
                        outcome: Outcome::Applied,
                        response: "r".into(),
                        inbox_id,
                    })
                });
                let reads = Reads {
                    processes: if named { vec![key("COUNT")] } else { vec![] },
                    ..Reads::default()
                };
                let recorded = store.transact_reading(reads, work).await.unwrap();
                (call_id, recorded.inbox_id)
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        let (call_id, inbox_id) = h.await.unwrap();
        let record = store.inbox_call(&call_id).await.unwrap().expect("recorded");
        assert_eq!(
            inbox_id, record.id,
            "{call_id}: the answer carries its record's id"
        );
        assert!(ids.insert(inbox_id), "{call_id}: id {inbox_id} given twice");
    }
    let view = store
        .process_view(&key("COUNT"))
        .await
        .unwrap()
        .expect("the process");
    assert_eq!(view.status, "40", "no update lost");
}

fn at(s: &str) -> TopDateTime {
    TopDateTime::parse(s).unwrap()
}

on_both_backends! {
    async fn a_failing_unit_leaves_nothing_while_its_batch_commits(db) {
        let errors = batch_with_bad_units(db.open().unwrap(), End::Fail).await;
        assert!(errors.iter().all(|e| matches!(e, StoreError::Invalid(_))), "{errors:?}");
    }

    async fn a_panicking_unit_fails_alone_and_leaves_nothing(db) {
        let errors = batch_with_bad_units(db.open().unwrap(), End::Panic).await;
        for e in errors {
            assert!(
                matches!(&e, StoreError::Invalid(why) if why == UNIT_PANICKED),
                "the same answer on every backend: {e:?}"
            );
        }
    }

    async fn units_on_one_row_in_one_batch_each_see_the_last_ones_write_and_their_inbox_id(db) {
        let store = db.open().unwrap();
        count_into_one_process(store, false).await;
    }

    async fn units_that_name_their_reads_see_the_same_as_units_that_do_not(db) {
        let store = db.open().unwrap();
        count_into_one_process(store, true).await;
    }

    async fn what_a_unit_committed_is_there_after_the_store_is_reopened(db) {
        let store = db.open().unwrap();
        store.transact(unit("kept".into(), End::Ok)).await.unwrap();
        drop(store);
        let store = db.open().unwrap();
        assert!(store.inbox_call("kept").await.unwrap().is_some());
        assert_eq!(
            store.inbox_missing(&["kept".into(), "never".into()]).await.unwrap(),
            vec!["never".to_string()]
        );
    }

    async fn states_flags_and_idempotency_records_read_back_as_written_apart_or_together(db) {
        let store = db.open().unwrap();
        let loan = LoanState {
            loan_apply_no: "FI1".into(),
            status: "OVERDUE".into(),
            app_key: "app".into(),
            customer_id: Some("C1".into()),
            institution_loan_no: None,
            last_change_time: at("2024-01-02 03:04:05"),
            needs_reconciliation: true,
        };
        let flag = Flag {
            kind: FlagKind::Gap,
            expected_status: "NEW".into(),
            reported_status: "NORMAL".into(),
            after_status: "OVERDUE".into(),
            request_id: "R1".into(),
            change_time: at("2024-01-02 03:04:05"),
        };
        let mut response = serde_json::Map::new();
        response.insert("result".into(), serde_json::json!({"success": true}));
        let record = IdempotencyRecord { fingerprint: "f".repeat(64), response };
        let mut p = process("P1");
        p.fund_products = Some(vec!["a".into(), "b/c".into()]);
        p.submit_time = Some(at("2025-01-17 16:00:00"));
        let (l, f, r, pr) = (loan.clone(), flag.clone(), record.clone(), p.clone());
        store
            .transact(Box::new(move |tx| {
                tx.put_loan(&l, std::slice::from_ref(&f), 1_000)?;
                tx.put_idempotency("app", "R1", &r, 1_000)?;
                tx.put_process(&pr, 1_000)?;
                let inbox_id = tx.append_inbox(&InboxEntry {
                    subject: Some(loanwire_domain::loan::subject("FI1")),
                    idempotency_key: Some("R1".into()),
                    error_code: Some(50),
                    detail: r#"{"after_status":"OVERDUE"}"#.into(),
                    ..entry("call-1")
                })?;
                Ok(Recorded { outcome: Outcome::Applied, response: "r".into(), inbox_id })
            }))
            .await
            .unwrap();
        let (l, r, pr) = (loan.clone(), record.clone(), p.clone());
        store
            .transact(Box::new(move |tx| {
                assert_eq!(tx.loan("FI1")?, Some(l.clone()));
                assert_eq!(tx.idempotency("app", "R1")?, Some(r.clone()));
                assert_eq!(tx.idempotency("other", "R1")?, None);
                assert_eq!(tx.process(&pr.key)?, Some(pr.clone()));
                let inbox_id = tx.append_inbox(&entry("call-2"))?;
                Ok(Recorded { outcome: Outcome::Applied, response: "r".into(), inbox_id })
            }))
            .await
            .unwrap();
        // Read together, as a loan change reads them, then written: an existing note is
        // updated, a new one inserted.
        let (l, r) = (loan.clone(), record.clone());
        store
            .transact(Box::new(move |tx| {
                assert_eq!(tx.idempotency_and_loan("app", "R1", "FI1")?, (Some(r.clone()), Some(l.clone())));
                assert_eq!(tx.idempotency_and_loan("app", "R2", "FI1")?, (None, Some(l.clone())));
                assert_eq!(tx.idempotency_and_loan("app", "R1", "FI2")?, (Some(r.clone()), None));
                assert_eq!(tx.idempotency_and_loan("other", "R1", "FI2")?, (None, None));
                let updated = LoanState { status: "CLEARED".into(), ..l.clone() };
                tx.put_loan(&updated, &[], 2_000)?;
                let created = LoanState { loan_apply_no: "FI2".into(), ..l.clone() };
                tx.put_loan(&created, &[], 2_000)?;
                let inbox_id = tx.append_inbox(&entry("call-3"))?;
                Ok(Recorded { outcome: Outcome::Applied, response: "r".into(), inbox_id })
            }))
            .await
            .unwrap();
        let statuses = store
            .transact(Box::new(move |tx| {
                let (_, one) = tx.idempotency_and_loan("app", "R9", "FI1")?;
                let (_, two) = tx.idempotency_and_loan("app", "R9", "FI2")?;
                let inbox_id = tx.append_inbox(&entry("call-4"))?;
                let response = format!("{}/{}", one.unwrap().status, two.unwrap().status);
                Ok(Recorded { outcome: Outcome::Applied, response, inbox_id })
            }))
            .await
            .unwrap();
        assert_eq!(statuses.response, "CLEARED/OVERDUE");
        let view = store.loan_view("FI1").await.unwrap().expect("the loan note");
        assert_eq!(view.reconciliation_reasons, vec![flag]);
        assert_eq!(view.last_change_time, "2024-01-02 03:04:05");
        assert_eq!(view.history.len(), 1);
        let call = view.history[0].call().expect("a call");
        assert_eq!(call.request_id, "R1");
        assert_eq!(call.error_code, Some(50));
        assert_eq!(call.detail["after_status"], "OVERDUE");
        let view = store.process_view(&p.key).await.unwrap().expect("the process");
        assert_eq!(view.fund_products, p.fund_products);
        assert_eq!(view.submit_time.as_deref(), Some("2025-01-17 16:00:00"));
    }

    async fn the_inbox_filters_pages_newest_first_and_clamps_its_limit(db) {
        let store = db.open().unwrap();
        for i in 0..5 {
            let outcome = if i % 2 == 0 { Outcome::Applied } else { Outcome::Refused };
            store
                .transact(Box::new(move |tx| {
                    let inbox_id = tx.append_inbox(&InboxEntry { outcome, ..entry(&format!("c{i}")) })?;
                    Ok(Recorded { outcome, response: "r".into(), inbox_id })
                }))
                .await
                .unwrap();
        }
        let ids = |records: Vec<loanwire_store::InboxRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.call_id).collect()
        };
        let q = InboxQuery { limit: 10, ..InboxQuery::default() };
        let all = store.inbox(&q).await.unwrap();
        assert_eq!(ids(all.clone()), ["c4", "c3", "c2", "c1", "c0"]);
        let applied = InboxQuery { outcome: Some(Outcome::Applied), ..q.clone() };
        assert_eq!(ids(store.inbox(&applied).await.unwrap()), ["c4", "c2", "c0"]);
        let page = InboxQuery { before_id: Some(all[1].id), limit: 2, ..q.clone() };
        assert_eq!(ids(store.inbox(&page).await.unwrap()), ["c2", "c1"]);
        let none = InboxQuery { app_key: Some("nobody".into()), ..q.clone() };
        assert!(store.inbox(&none).await.unwrap().is_empty());
        let huge = InboxQuery { limit: u32::MAX, ..q };
        assert_eq!(store.inbox(&huge).await.unwrap().len(), 5);
    }

    async fn apps_are_created_once_and_updated_only_when_they_exist(db) {
        let store = db.open().unwrap();
        let app = App {
            app_key: "12345678".into(),
            name: "Bank A".into(),
            secret: "s".into(),
            previous_secret: Some("old".into()),
            previous_secret_expires_ms: Some(9),
            channels: Some(vec!["wzzx".into()]),
            methods: None,
            rate_limit: Some(200),
            enabled: true,
            created_ms: 1,
            updated_ms: 2,
        };
        let by = Actor { name: "ops-alice".into(), source: "10.1.2.3".into() };
        store.create_app(&app, &by).await.unwrap();
        assert_eq!(store.app("12345678").await.unwrap(), Some(app.clone()));
        let again = store.create_app(&app, &by).await.unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        let changed = App { enabled: false, rate_limit: None, ..app.clone() };
        let note = AuditNote::new("app.disable", "12345678", serde_json::json!({}));
        store.update_app(&changed, &note, &by).await.unwrap();
        assert_eq!(store.apps().await.unwrap(), vec![changed]);
        let missing = App { app_key: "nope".into(), ..app };
        let e = store.update_app(&missing, &note, &by).await.unwrap_err();
        assert!(e.to_string().contains("no app"), "{e}");

        // Each change that committed is in the audit, newest first; the refused ones are not.
        let q = AuditQuery { limit: 10, ..AuditQuery::default() };
        let audit = store.audit(&q).await.unwrap();
        let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["app.disable", "app.create"]);
        assert_eq!((audit[1].actor.as_str(), audit[1].source.as_str()), ("ops-alice", "10.1.2.3"));
        assert_eq!(audit[1].detail["name"], "Bank A");
        let older = AuditQuery { before_id: Some(audit[0].id), ..q.clone() };
        assert_eq!(store.audit(&older).await.unwrap(), vec![audit[1].clone()]);
        let other = AuditQuery { target: Some("nope".into()), ..q };
        assert!(store.audit(&other).await.unwrap().is_empty());
    }

    async fn a_key_rotation_seals_every_secret_under_the_new_key_in_one_audited_commit(db) {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let by = Actor { name: "cli:root".into(), source: "cli".into() };
        let app = |key: &str| App {
            app_key: key.into(),
            name: "Bank".into(),
            secret: format!("secret-of-{key}"),
            previous_secret: Some(format!("previous-of-{key}")),
            previous_secret_expires_ms: Some(i64::MAX),
            channels: None,
            methods: None,
            rate_limit: None,
            enabled: true,
            created_ms: 1,
            updated_ms: 1,
        };
        let before = db.open_sealed(Arc::new(SecretBox::new(&old))).unwrap();
        before.create_app(&app("11111111"), &by).await.unwrap();
        before.create_app(&app("22222222"), &by).await.unwrap();
        let endpoint = loanwire_store::delivery::Endpoint {
            url: "https://example.com/hooks".into(),
            secret: "whsec_c2VjcmV0".into(),
            created_ms: 1,
            updated_ms: 1,
            ..endpoint("ep_1")
        };
        before.create_endpoint(&endpoint, &by).await.unwrap();
        drop(before);

        let both = db
            .open_sealed(Arc::new(SecretBox::with_keys(&[new.clone(), old.clone()], None)))
            .unwrap();
        assert_eq!(both.seal_secrets(true, &by).await.unwrap(), 3, "two apps, one endpoint");
        assert_eq!(both.seal_secrets(true, &by).await.unwrap(), 0, "nothing left to seal");
        drop(both);

        let after = db.open_sealed(Arc::new(SecretBox::new(&new))).unwrap();
        assert_eq!(after.app("11111111").await.unwrap(), Some(app("11111111")));
        assert_eq!(after.app("22222222").await.unwrap(), Some(app("22222222")));
        let opened = after.endpoint("ep_1").await.unwrap().unwrap();
        assert_eq!(opened.secret, "whsec_c2VjcmV0");
        let q = AuditQuery { limit: 10, target: Some("apps".into()), ..AuditQuery::default() };
        let rotations: Vec<_> = after.audit(&q).await.unwrap();
        assert_eq!(rotations.len(), 2);
        assert_eq!(rotations[1].detail["endpoints"], 1);
        assert_eq!(rotations[1].action, "keys.rotate");
        assert_eq!(rotations[1].detail["apps"], 2);
        let gone = db.open_sealed(Arc::new(SecretBox::new(&old))).unwrap();
        assert!(gone.app("11111111").await.is_err(), "the old key alone opens nothing now");
        assert!(gone.endpoint("ep_1").await.is_err());
    }

    async fn a_token_name_is_taken_until_its_token_is_revoked(db) {
        let store = db.open().unwrap();
        let by = Actor { name: "bootstrap".into(), source: "cli".into() };
        let token = Token {
            id: "0123456789ab".into(),
            name: "ci".into(),
            role: Role::Viewer,
            secret_hash: "ab".repeat(32),
            created_ms: 5,
            created_by: "bootstrap".into(),
            revoked_ms: None,
        };
        store.create_token(&token, &by).await.unwrap();
        assert_eq!(store.token("0123456789ab").await.unwrap(), Some(token.clone()));
        let twin = Token { id: "ba9876543210".into(), ..token.clone() };
        let e = store.create_token(&twin, &by).await.unwrap_err();
        assert!(e.to_string().contains("revoke it first"), "{e}");
        let revoked = store.revoke_token("ci", &by).await.unwrap();
        assert!(revoked.revoked_ms.is_some());
        assert!(store.revoke_token("ci", &by).await.is_err(), "revoked once");
        store.create_token(&twin, &by).await.unwrap();
        assert_eq!(store.tokens().await.unwrap().len(), 2);
        let q = AuditQuery { limit: 10, target: Some("ci".into()), ..AuditQuery::default() };
        let actions: Vec<_> =
            store.audit(&q).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["token.create", "token.revoke", "token.create"]);
    }

    async fn a_database_from_a_newer_loanwire_is_refused_with_a_clear_message(db) {
        drop(db.open().unwrap());
        db.exec(match &db {
            TestDb::Sqlite(_) => "PRAGMA user_version = 99",
            TestDb::Postgres { .. } => "INSERT INTO loanwire_migrations (version) VALUES (99)",
        });
        let err = db.open().err().expect("refused");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    async fn the_store_is_not_ready_while_commits_fail_and_is_again_after_one_succeeds(db) {
        let store = db.open().unwrap();
        store.ping().await.unwrap();
        // A constraint checked only at COMMIT, broken by every inbox record: each batch's
        // statements succeed and its commit fails, as on a full disk.
        db.exec(match &db {
            TestDb::Sqlite(_) => {
                "CREATE TABLE refuse (id INTEGER REFERENCES nowhere_parent(id) DEFERRABLE INITIALLY DEFERRED);
                 CREATE TABLE nowhere_parent (id INTEGER PRIMARY KEY);
                 CREATE TRIGGER refuse_commits AFTER INSERT ON inbox BEGIN INSERT INTO refuse VALUES (-1); END;"
            }
            TestDb::Postgres { .. } => {
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
                     $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
                 CREATE CONSTRAINT TRIGGER refuse_commits AFTER INSERT ON inbox
                     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse();"
            }
        });
        let failed = store.transact(unit("F1".into(), End::Ok)).await;
        assert!(matches!(failed, Err(StoreError::Unavailable(_))), "{failed:?}");
        assert!(store.inbox_call("F1").await.unwrap().is_none(), "nothing of it stays");
        let e = store.ping().await.unwrap_err();
        assert!(e.to_string().contains("last commit failed"), "{e}");
        db.exec("DROP TRIGGER refuse_commits ON inbox".trim_end_matches(match &db {
            TestDb::Sqlite(_) => " ON inbox",
            TestDb::Postgres { .. } => "",
        }));
        store.transact(unit("F2".into(), End::Ok)).await.unwrap();
        store.ping().await.unwrap();
    }

    async fn calls_are_counted_per_minute_with_their_id_range_and_rejections_add_up(db) {
        let store = db.open().unwrap();
        // A whole minute (a multiple of 60,000 ms).
        let minute = 1_700_000_040_000_i64;
        for (i, (offset, outcome, code)) in [
            (1_000, Outcome::Applied, None),
            (2_000, Outcome::Applied, None),
            (3_000, Outcome::Refused, Some(41)),
            (61_000, Outcome::Applied, None),
        ]
        .into_iter()
        .enumerate()
        {
            let e = InboxEntry {
                received_ms: minute + offset,
                outcome,
                error_code: code,
                ..entry(&format!("c{i}"))
            };
            store
                .transact(Box::new(move |tx| {
                    let inbox_id = tx.append_inbox(&e)?;
                    Ok(Recorded { outcome, response: "r".into(), inbox_id })
                }))
                .await
                .unwrap();
        }
        let mut rejected = std::collections::BTreeMap::new();
        rejected.insert((minute + 5_000, "app".to_string(), "25".to_string()), 3);
        let far = minute + 3_600_000;
        let n = store
            .roll_up(loanwire_store::reports::rejections(&rejected), far)
            .await
            .unwrap();
        assert_eq!(n, 4, "every inbox row counted");
        assert_eq!(store.roll_up(Vec::new(), far).await.unwrap(), 0, "and only once");
        store
            .roll_up(loanwire_store::reports::rejections(&rejected), far)
            .await
            .unwrap();
        let counts = store.minutes(minute, minute + 120_000).await.unwrap();
        let get = |m: i64, o: &str, c: &str| {
            counts
                .iter()
                .find(|x| x.minute_ms == m && x.outcome == o && x.code == c)
                .map(|x| x.n)
        };
        assert_eq!(get(minute, "applied", ""), Some(2));
        assert_eq!(get(minute, "refused", "41"), Some(1));
        assert_eq!(get(minute + 60_000, "applied", ""), Some(1));
        assert_eq!(get(minute, "rejected", "25"), Some(6), "rejections add up");
        let (after, before) = store.id_range(minute + 60_000, minute + 120_000).await.unwrap();
        let fourth = store.inbox_call("c3").await.unwrap().unwrap().id;
        assert_eq!((after, before), (Some(fourth - 1), Some(fourth + 1)));
        store.prune_reports(minute + 60_000, far).await.unwrap();
        assert_eq!(store.minutes(0, far).await.unwrap().len(), 1, "the older minute is gone");
    }

    async fn a_resolution_clears_the_flag_keeps_its_record_and_is_audited(db) {
        let store = db.open().unwrap();
        let loan = LoanState {
            loan_apply_no: "FR1".into(),
            status: "CLEARED".into(),
            app_key: "app".into(),
            customer_id: None,
            institution_loan_no: None,
            last_change_time: at("2024-01-02 03:04:05"),
            needs_reconciliation: true,
        };
        let flag = Flag {
            kind: FlagKind::Gap,
            expected_status: "NORMAL".into(),
            reported_status: "OVERDUE".into(),
            after_status: "CLEARED".into(),
            request_id: "R9".into(),
            change_time: at("2024-01-02 03:04:05"),
        };
        let (l, f) = (loan.clone(), flag.clone());
        store
            .transact(Box::new(move |tx| {
                tx.put_loan(&l, std::slice::from_ref(&f), 1_000)?;
                let inbox_id = tx.append_inbox(&entry("call-r"))?;
                Ok(Recorded { outcome: Outcome::Applied, response: "r".into(), inbox_id })
            }))
            .await
            .unwrap();
        let flagged = store.flagged_loans(None, 10).await.unwrap();
        assert_eq!(flagged.len(), 1);
        assert_eq!(flagged[0].flags, vec![flag.clone()]);
        let by = Actor { name: "ops".into(), source: "10.0.0.1".into() };
        assert_eq!(store.resolve_loan("FR1", "checked", &by).await.unwrap(), 1);
        assert!(store.flagged_loans(None, 10).await.unwrap().is_empty());
        let view = store.loan_view("FR1").await.unwrap().unwrap();
        assert!(!view.needs_reconciliation && view.reconciliation_reasons.is_empty());
        let e = store.resolve_loan("FR1", "again", &by).await.unwrap_err();
        assert!(e.to_string().contains("not flagged"), "{e}");
        let e = store.resolve_loan("NONE", "x", &by).await.unwrap_err();
        assert!(e.to_string().starts_with("no loan note"), "{e}");
        let audit = store
            .audit(&AuditQuery { target: Some("loan:FR1".into()), limit: 10, ..AuditQuery::default() })
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!((audit[0].actor.as_str(), audit[0].source.as_str()), ("ops", "10.0.0.1"));
        assert_eq!(audit[0].detail["resolved"][0]["kind"], "GAP");
    }

    async fn a_console_session_reads_back_and_ends(db) {
        use loanwire_store::reports::SessionRow;
        let store = db.open().unwrap();
        let s = SessionRow {
            id_hash: "h1".into(),
            token_id: "t1".into(),
            csrf: "c1".into(),
            created_ms: 1,
            expires_ms: 10,
        };
        store.create_session(&s).await.unwrap();
        assert_eq!(store.session("h1").await.unwrap(), Some(s));
        store.prune_reports(0, 10).await.unwrap();
        assert_eq!(store.session("h1").await.unwrap(), None, "expired sessions are pruned");
        store
            .create_session(&SessionRow { id_hash: "h2".into(), expires_ms: i64::MAX, ..SessionRow {
                id_hash: String::new(), token_id: "t".into(), csrf: "c".into(), created_ms: 0, expires_ms: 0 } })
            .await
            .unwrap();
        store.end_session("h2").await.unwrap();
        assert_eq!(store.session("h2").await.unwrap(), None);
    }
}
