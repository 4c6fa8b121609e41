//! The read API's reads and app management, on pooled connections.

use loanwire_domain::loan;
use loanwire_domain::process::ProcessKey;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::subjects::SUBJECT_IDS;
use super::tx::{loan_row, process_row};
use crate::backend::{event_limit, event_types_json, inbox_query_sql, EventRows, Queries, SqlArg};
use crate::rows::{
    AppRow, AuditRow, EventRow, InboxRow, LoanSnapshot, ProcessSnapshot, TokenRow, AUDIT_COLUMNS,
    EVENT_COLUMNS, INBOX_COLUMNS, TOKEN_COLUMNS,
};
use crate::{AuditQuery, EventQuery, InboxQuery, StoreError, StoreResult};

const APP_COLUMNS: &str = "app_key, name, secret, previous_secret, previous_secret_expires_ms,
    channels, methods, rate_limit, enabled, created_ms, updated_ms";

fn app_row(r: &Row<'_>) -> rusqlite::Result<AppRow> {
    Ok(AppRow {
        app_key: r.get(0)?,
        name: r.get(1)?,
        secret: r.get(2)?,
        previous_secret: r.get(3)?,
        previous_secret_expires_ms: r.get(4)?,
        channels: r.get(5)?,
        methods: r.get(6)?,
        rate_limit: r.get(7)?,
        enabled: r.get(8)?,
        created_ms: r.get(9)?,
        updated_ms: r.get(10)?,
    })
}

fn inbox_row(r: &Row<'_>) -> rusqlite::Result<InboxRow> {
    Ok(InboxRow {
        id: r.get(0)?,
        call_id: r.get(1)?,
        received_ms: r.get(2)?,
        app_key: r.get(3)?,
        method: r.get(4)?,
        outcome: r.get(5)?,
        error_code: r.get(6)?,
        biz_code: r.get(7)?,
        subject: r.get(8)?,
        idempotency_key: r.get(9)?,
        params: r.get(10)?,
        detail: r.get(11)?,
        response: r.get(12)?,
    })
}

fn history(c: &Connection, subject: &str) -> Result<Vec<InboxRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {INBOX_COLUMNS} FROM inbox WHERE id IN ({SUBJECT_IDS}) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![subject], inbox_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Queries for Connection {
    fn app(&mut self, key: &str) -> Result<Option<AppRow>, StoreError> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE app_key = ?1"
        ))?;
        Ok(stmt.query_row(params![key], app_row).optional()?)
    }

    fn apps(&mut self) -> Result<Vec<AppRow>, StoreError> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {APP_COLUMNS} FROM apps ORDER BY created_ms, app_key"
        ))?;
        let rows = stmt.query_map([], app_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn insert_app(&mut self, a: &AppRow) -> Result<bool, StoreError> {
        let n = self.execute(
            &format!(
                "INSERT INTO apps ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                      ON CONFLICT (app_key) DO NOTHING"
            ),
            params![
                a.app_key,
                a.name,
                a.secret,
                a.previous_secret,
                a.previous_secret_expires_ms,
                a.channels,
                a.methods,
                a.rate_limit,
                a.enabled,
                a.created_ms,
                a.updated_ms
            ],
        )?;
        Ok(n > 0)
    }

    fn update_app(&mut self, a: &AppRow) -> Result<bool, StoreError> {
        let n = self.execute(
            "UPDATE apps SET name = ?2, secret = ?3, previous_secret = ?4, previous_secret_expires_ms = ?5,
                 channels = ?6, methods = ?7, rate_limit = ?8, enabled = ?9, updated_ms = ?10
             WHERE app_key = ?1",
            params![
                a.app_key,
                a.name,
                a.secret,
                a.previous_secret,
                a.previous_secret_expires_ms,
                a.channels,
                a.methods,
                a.rate_limit,
                a.enabled,
                a.updated_ms
            ],
        )?;
        Ok(n > 0)
    }

    fn loan(&mut self, no: &str) -> Result<Option<LoanSnapshot>, StoreError> {
        // One read transaction, so the state and its history agree.
        let tx = self.transaction()?;
        let row = tx
            .query_row(
                "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms,
                        needs_reconciliation, created_ms, updated_ms
                 FROM loans WHERE loan_apply_no = ?1",
                params![no],
                |r| Ok((loan_row(no, r)?, r.get(6)?, r.get(7)?)),
            )
            .optional()?;
        let Some((row, created_ms, updated_ms)) = row else {
            return Ok(None);
        };
        let flags = tx
            .prepare_cached("SELECT flag FROM loan_flags WHERE loan_apply_no = ?1 AND resolved_ms IS NULL ORDER BY id")?
            .query_map(params![no], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let history = history(&tx, &loan::subject(no))?;
        Ok(Some(LoanSnapshot {
            row,
            created_ms,
            updated_ms,
            flags,
            history,
        }))
    }

    fn process(&mut self, key: &ProcessKey) -> Result<Option<ProcessSnapshot>, StoreError> {
        let tx = self.transaction()?;
        let row = tx
            .query_row(
                "SELECT user, user_id, status, submit_ms, complete_ms, fund_products, app_key,
                        created_ms, updated_ms
                 FROM processes WHERE channel_id = ?1 AND process_type = ?2 AND process_no = ?3",
                params![key.channel_id, key.process_type, key.process_no],
                |r| Ok((process_row(key, r)?, r.get(7)?, r.get(8)?)),
            )
            .optional()?;
        let Some((row, created_ms, updated_ms)) = row else {
            return Ok(None);
        };
        let history = history(&tx, &key.subject())?;
        Ok(Some(ProcessSnapshot {
            row,
            created_ms,
            updated_ms,
            history,
        }))
    }

    fn inbox(&mut self, q: &InboxQuery) -> Result<Vec<InboxRow>, StoreError> {
        let (sql, args) = inbox_query_sql(q, |n| format!("?{n}"));
        let args = args.iter().map(|a| match a {
            SqlArg::Text(s) => rusqlite::types::Value::Text(s.clone()),
            SqlArg::Int(i) => rusqlite::types::Value::Integer(*i),
        });
        let mut stmt = self.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), inbox_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn inbox_call(&mut self, call_id: &str) -> Result<Option<InboxRow>, StoreError> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {INBOX_COLUMNS} FROM inbox WHERE call_id = ?1"
        ))?;
        Ok(stmt.query_row(params![call_id], inbox_row).optional()?)
    }

    fn inbox_missing(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.prepare_cached("SELECT 1 FROM inbox WHERE call_id = ?1")?;
        let mut missing = Vec::new();
        for id in ids {
            if !stmt.exists(params![id])? {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    fn events(&mut self, q: &EventQuery) -> Result<EventRows, StoreError> {
        // One read transaction: the mark and the page agree.
        let tx = self.transaction()?;
        let pruned_through =
            tx.query_row("SELECT through_seq FROM events_pruned", [], |r| r.get(0))?;
        let rows = tx
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE seq > ?1 AND (?3 IS NULL OR type IN (SELECT value FROM json_each(?3)))
                 ORDER BY seq LIMIT ?2"
            ))?
            .query_map(params![q.after, event_limit(q), event_types_json(q)], |r| {
                Ok(EventRow {
                    seq: r.get(0)?,
                    id: r.get(1)?,
                    event_type: r.get(2)?,
                    recorded_ms: r.get(3)?,
                    app_key: r.get(4)?,
                    request_id: r.get(5)?,
                    subject: r.get(6)?,
                    data: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        // The single writer commits in `seq` order: nothing committed is ever held back.
        Ok(EventRows {
            rows,
            pruned_through,
            pending: false,
        })
    }

    fn prune_events(&mut self, before_ms: i64, keep_from: i64) -> Result<u64, StoreError> {
        let tx = self.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Events are in time order along `seq`, give or take a batch: the oldest prefix goes,
        // found by walking from the start to the first event to keep.
        let keep: Option<i64> = tx
            .query_row(
                "SELECT seq FROM events WHERE recorded_ms >= ?1 ORDER BY seq LIMIT 1",
                params![before_ms],
                |r| r.get(0),
            )
            .optional()?;
        let through: Option<i64> = tx.query_row(
            "SELECT max(seq) FROM events WHERE (?1 IS NULL OR seq < ?1) AND seq < ?2",
            params![keep, keep_from],
            |r| r.get(0),
        )?;
        let Some(through) = through else {
            return Ok(0);
        };
        let n = tx.execute("DELETE FROM events WHERE seq <= ?1", params![through])?;
        // The delivery log goes with its events (everything up to `through` was delivered:
        // pruning stops below any delivery still pending or failed).
        for table in ["attempts", "deliveries"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE endpoint_id IN (SELECT id FROM endpoints) AND seq <= ?1"),
                params![through],
            )?;
        }
        tx.execute(
            "UPDATE events_pruned SET through_seq = max(through_seq, ?1)",
            params![through],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(())
    }

    fn begin(&mut self) -> StoreResult<()> {
        Ok(self.execute_batch("BEGIN IMMEDIATE")?)
    }

    fn commit(&mut self) -> StoreResult<()> {
        Ok(self.execute_batch("COMMIT")?)
    }

    fn rollback(&mut self) {
        let _ = self.execute_batch("ROLLBACK");
    }

    fn insert_token(&mut self, t: &TokenRow) -> StoreResult<bool> {
        let n = self.execute(
            &format!(
                "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT DO NOTHING"
            ),
            params![
                t.id,
                t.name,
                t.role,
                t.secret_hash,
                t.created_ms,
                t.created_by,
                t.revoked_ms
            ],
        )?;
        Ok(n > 0)
    }

    fn token(&mut self, id: &str) -> StoreResult<Option<TokenRow>> {
        let mut stmt =
            self.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"))?;
        Ok(stmt.query_row(params![id], token_row).optional()?)
    }

    fn tokens(&mut self) -> StoreResult<Vec<TokenRow>> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_ms, id"
        ))?;
        let rows = stmt.query_map([], token_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoke_token(&mut self, name: &str, at_ms: i64) -> StoreResult<Option<TokenRow>> {
        let mut stmt = self.prepare_cached(&format!(
            "UPDATE tokens SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL
             RETURNING {TOKEN_COLUMNS}"
        ))?;
        Ok(stmt.query_row(params![name, at_ms], token_row).optional()?)
    }

    fn append_audit(&mut self, a: &AuditRow) -> StoreResult<()> {
        self.execute(
            "INSERT INTO audit (at_ms, actor, source, action, target, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a.at_ms, a.actor, a.source, a.action, a.target, a.detail],
        )?;
        Ok(())
    }

    fn audit(&mut self, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        let mut stmt = self.prepare_cached(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit
             WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR target = ?2)
             ORDER BY id DESC LIMIT ?3"
        ))?;
        let limit = q.limit.clamp(1, AuditQuery::MAX_LIMIT);
        let rows = stmt.query_map(params![q.before_id, q.target, limit], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                at_ms: r.get(1)?,
                actor: r.get(2)?,
                source: r.get(3)?,
                action: r.get(4)?,
                target: r.get(5)?,
                detail: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        secret_hash: r.get(3)?,
        created_ms: r.get(4)?,
        created_by: r.get(5)?,
        revoked_ms: r.get(6)?,
    })
}
