//! The read API's reads and app management, on pooled connections.

use loanwire_domain::loan;
use loanwire_domain::process::ProcessKey;
use postgres::{IsolationLevel, Row, Transaction};

use super::conn::{db_unavailable, statement, Conn};
use super::events::FRONTIER;
use super::tx::{loan_row, process_row};
use crate::backend::{event_limit, event_types_json, inbox_query_sql, EventRows, Queries, SqlArg};
use crate::rows::{
    AppRow, AuditRow, EventRow, InboxRow, LoanSnapshot, ProcessSnapshot, TokenRow, AUDIT_COLUMNS,
    EVENT_COLUMNS, INBOX_COLUMNS, TOKEN_COLUMNS,
};
use crate::{AuditQuery, EventQuery, InboxQuery, StoreError, StoreResult};

const APP_COLUMNS: &str = "app_key, name, secret, previous_secret, previous_secret_expires_ms,
    channels, methods, rate_limit, enabled, created_ms, updated_ms";

fn app_row(r: &Row) -> AppRow {
    AppRow {
        app_key: r.get(0),
        name: r.get(1),
        secret: r.get(2),
        previous_secret: r.get(3),
        previous_secret_expires_ms: r.get(4),
        channels: r.get(5),
        methods: r.get(6),
        rate_limit: r.get::<_, Option<i32>>(7).map(i64::from),
        enabled: r.get(8),
        created_ms: r.get(9),
        updated_ms: r.get(10),
    }
}

/// `rate_limit` is an INTEGER column.
fn rate_limit(a: &AppRow) -> Option<i32> {
    a.rate_limit.map(|r| i32::try_from(r).unwrap_or(i32::MAX))
}

fn inbox_row(r: &Row) -> InboxRow {
    InboxRow {
        id: r.get(0),
        call_id: r.get(1),
        received_ms: r.get(2),
        app_key: r.get(3),
        method: r.get(4),
        outcome: r.get(5),
        error_code: r.get::<_, Option<i32>>(6).map(i64::from),
        biz_code: r.get(7),
        subject: r.get(8),
        idempotency_key: r.get(9),
        params: r.get(10),
        detail: r.get(11),
        response: r.get(12),
    }
}

fn history(tx: &mut Transaction<'_>, subject: &str) -> Result<Vec<InboxRow>, StoreError> {
    let rows = tx
        .query(
            &format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE subject = $1 ORDER BY id"),
            &[&subject],
        )
        .map_err(db_unavailable)?;
    Ok(rows.iter().map(inbox_row).collect())
}

/// One read-only snapshot, so that a state and its history agree.
fn snapshot(conn: &mut Conn) -> Result<Transaction<'_>, StoreError> {
    conn.client()?
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(db_unavailable)
}

impl Queries for Conn {
    fn app(&mut self, key: &str) -> Result<Option<AppRow>, StoreError> {
        let (client, stmts) = self.parts()?;
        let s = statement(
            stmts,
            client,
            "SELECT app_key, name, secret, previous_secret, previous_secret_expires_ms,
                 channels, methods, rate_limit, enabled, created_ms, updated_ms
             FROM apps WHERE app_key = $1",
        )?;
        let row = client.query_opt(&s, &[&key]).map_err(db_unavailable)?;
        Ok(row.as_ref().map(app_row))
    }

    fn apps(&mut self) -> Result<Vec<AppRow>, StoreError> {
        let rows = self
            .client()?
            .query(
                &format!("SELECT {APP_COLUMNS} FROM apps ORDER BY created_ms, app_key"),
                &[],
            )
            .map_err(db_unavailable)?;
        Ok(rows.iter().map(app_row).collect())
    }

    fn insert_app(&mut self, a: &AppRow) -> Result<bool, StoreError> {
        let n = self
            .client()?
            .execute(
                &format!(
                    "INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (app_key) DO NOTHING"
                ),
                &[
                    &a.app_key,
                    &a.name,
                    &a.secret,
                    &a.previous_secret,
                    &a.previous_secret_expires_ms,
                    &a.channels,
                    &a.methods,
                    &rate_limit(a),
                    &a.enabled,
                    &a.created_ms,
                    &a.updated_ms,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(n > 0)
    }

    fn update_app(&mut self, a: &AppRow) -> Result<bool, StoreError> {
        let n = self
            .client()?
            .execute(
                "UPDATE apps SET name = $2, secret = $3, previous_secret = $4, previous_secret_expires_ms = $5,
                     channels = $6, methods = $7, rate_limit = $8, enabled = $9, updated_ms = $10
                 WHERE app_key = $1",
                &[
                    &a.app_key,
                    &a.name,
                    &a.secret,
                    &a.previous_secret,
                    &a.previous_secret_expires_ms,
                    &a.channels,
                    &a.methods,
                    &rate_limit(a),
                    &a.enabled,
                    &a.updated_ms,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(n > 0)
    }

    fn loan(&mut self, no: &str) -> Result<Option<LoanSnapshot>, StoreError> {
        let mut tx = snapshot(self)?;
        let Some(row) = tx
            .query_opt(
                "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms,
                        needs_reconciliation, created_ms, updated_ms
                 FROM loans WHERE loan_apply_no = $1",
                &[&no],
            )
            .map_err(db_unavailable)?
        else {
            return Ok(None);
        };
        let flags = tx
            .query(
                "SELECT flag FROM loan_flags WHERE loan_apply_no = $1 AND resolved_ms IS NULL ORDER BY id",
                &[&no],
            )
            .map_err(db_unavailable)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let history = history(&mut tx, &loan::subject(no))?;
        tx.commit().map_err(db_unavailable)?;
        Ok(Some(LoanSnapshot {
            row: loan_row(no, &row),
            created_ms: row.get(6),
            updated_ms: row.get(7),
            flags,
            history,
        }))
    }

    fn process(&mut self, key: &ProcessKey) -> Result<Option<ProcessSnapshot>, StoreError> {
        let mut tx = snapshot(self)?;
        let Some(row) = tx
            .query_opt(
                "SELECT \"user\", user_id, status, submit_ms, complete_ms, fund_products, app_key,
                        created_ms, updated_ms
                 FROM processes WHERE channel_id = $1 AND process_type = $2 AND process_no = $3",
                &[&key.channel_id, &key.process_type, &key.process_no],
            )
            .map_err(db_unavailable)?
        else {
            return Ok(None);
        };
        let history = history(&mut tx, &key.subject())?;
        tx.commit().map_err(db_unavailable)?;
        Ok(Some(ProcessSnapshot {
            row: process_row(key, &row),
            created_ms: row.get(7),
            updated_ms: row.get(8),
            history,
        }))
    }

    fn inbox(&mut self, q: &InboxQuery) -> Result<Vec<InboxRow>, StoreError> {
        let (sql, args) = inbox_query_sql(q, |n| format!("${n}"));
        let args: Vec<Box<dyn postgres::types::ToSql + Sync>> = args
            .into_iter()
            .map(|a| -> Box<dyn postgres::types::ToSql + Sync> {
                match a {
                    SqlArg::Text(s) => Box::new(s),
                    SqlArg::Int(i) => Box::new(i),
                }
            })
            .collect();
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            args.iter().map(|b| b.as_ref()).collect();
        let rows = self
            .client()?
            .query(&sql, &params)
            .map_err(db_unavailable)?;
        Ok(rows.iter().map(inbox_row).collect())
    }

    fn inbox_call(&mut self, call_id: &str) -> Result<Option<InboxRow>, StoreError> {
        let row = self
            .client()?
            .query_opt(
                &format!("SELECT {INBOX_COLUMNS} FROM inbox WHERE call_id = $1"),
                &[&call_id],
            )
            .map_err(db_unavailable)?;
        Ok(row.as_ref().map(inbox_row))
    }

    fn inbox_missing(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT wanted FROM unnest($1::text[]) AS wanted
                 WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE call_id = wanted)",
                &[&ids],
            )
            .map_err(db_unavailable)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn events(&mut self, q: &EventQuery) -> Result<EventRows, StoreError> {
        let mut tx = snapshot(self)?;
        let pruned_through: i64 = tx
            .query_one("SELECT through_seq FROM events_pruned", &[])
            .map_err(db_unavailable)?
            .get(0);
        let types = event_types_json(q);
        let rows = tx
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE seq > $1 AND seq < {FRONTIER}
                       AND ($3::text IS NULL OR type IN (SELECT json_array_elements_text($3::json)))
                     ORDER BY seq LIMIT $2"
                ),
                &[&q.after, &event_limit(q), &types],
            )
            .map_err(db_unavailable)?;
        let rows: Vec<EventRow> = rows
            .iter()
            .map(|r| EventRow {
                seq: r.get(0),
                id: r.get(1),
                event_type: r.get(2),
                recorded_ms: r.get(3),
                app_key: r.get(4),
                request_id: r.get(5),
                subject: r.get(6),
                data: r.get(7),
            })
            .collect();
        // Committed past the frontier: shown once the older transactions end.
        let pending = rows.is_empty()
            && tx
                .query_one(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM events WHERE seq > $1 AND seq >= {FRONTIER})"
                    ),
                    &[&q.after],
                )
                .map_err(db_unavailable)?
                .get::<_, bool>(0);
        tx.commit().map_err(db_unavailable)?;
        Ok(EventRows {
            rows,
            pruned_through,
            pending,
        })
    }

    fn prune_events(&mut self, before_ms: i64, keep_from: i64) -> Result<u64, StoreError> {
        let mut tx = self.client()?.transaction().map_err(db_unavailable)?;
        // Events are in time order along `seq`, give or take a transaction: the oldest prefix
        // goes, up to the first event to keep.
        let through: Option<i64> = tx
            .query_one(
                "SELECT max(seq) FROM events
                 WHERE seq < coalesce((SELECT min(seq) FROM events WHERE recorded_ms >= $1), 9223372036854775807)
                   AND seq < $2",
                &[&before_ms, &keep_from],
            )
            .map_err(db_unavailable)?
            .get(0);
        let Some(through) = through else {
            return Ok(0);
        };
        let n = tx
            .execute("DELETE FROM events WHERE seq <= $1", &[&through])
            .map_err(db_unavailable)?;
        // The delivery log goes with its events (everything up to `through` was delivered:
        // pruning stops below any delivery still pending or failed).
        for table in ["attempts", "deliveries"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE endpoint_id IN (SELECT id FROM endpoints) AND seq <= $1"),
                &[&through],
            )
            .map_err(db_unavailable)?;
        }
        tx.execute(
            "UPDATE events_pruned SET through_seq = greatest(through_seq, $1)",
            &[&through],
        )
        .map_err(db_unavailable)?;
        tx.commit().map_err(db_unavailable)?;
        Ok(n)
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.client()?
            .simple_query("SELECT 1")
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn begin(&mut self) -> StoreResult<()> {
        self.client()?
            .batch_execute("BEGIN")
            .map_err(db_unavailable)
    }

    fn commit(&mut self) -> StoreResult<()> {
        self.client()?
            .batch_execute("COMMIT")
            .map_err(db_unavailable)
    }

    fn rollback(&mut self) {
        // A connection that cannot even roll back is not used again.
        if self
            .client()
            .and_then(|c| c.batch_execute("ROLLBACK").map_err(db_unavailable))
            .is_err()
        {
            self.reset();
        }
    }

    fn insert_token(&mut self, t: &TokenRow) -> StoreResult<bool> {
        let n = self
            .client()?
            .execute(
                &format!(
                    "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &t.id,
                    &t.name,
                    &t.role,
                    &t.secret_hash,
                    &t.created_ms,
                    &t.created_by,
                    &t.revoked_ms,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(n > 0)
    }

    fn token(&mut self, id: &str) -> StoreResult<Option<TokenRow>> {
        let row = self
            .client()?
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"),
                &[&id],
            )
            .map_err(db_unavailable)?;
        Ok(row.as_ref().map(token_row))
    }

    fn tokens(&mut self) -> StoreResult<Vec<TokenRow>> {
        let rows = self
            .client()?
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_ms, id"),
                &[],
            )
            .map_err(db_unavailable)?;
        Ok(rows.iter().map(token_row).collect())
    }

    fn revoke_token(&mut self, name: &str, at_ms: i64) -> StoreResult<Option<TokenRow>> {
        let row = self
            .client()?
            .query_opt(
                &format!(
                    "UPDATE tokens SET revoked_ms = $2 WHERE name = $1 AND revoked_ms IS NULL
                     RETURNING {TOKEN_COLUMNS}"
                ),
                &[&name, &at_ms],
            )
            .map_err(db_unavailable)?;
        Ok(row.as_ref().map(token_row))
    }

    fn append_audit(&mut self, a: &AuditRow) -> StoreResult<()> {
        self.client()?
            .execute(
                "INSERT INTO audit (at_ms, actor, source, action, target, detail)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &a.at_ms, &a.actor, &a.source, &a.action, &a.target, &a.detail,
                ],
            )
            .map_err(db_unavailable)?;
        Ok(())
    }

    fn audit(&mut self, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        let limit = i64::from(q.limit.clamp(1, AuditQuery::MAX_LIMIT));
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit
                     WHERE ($1::BIGINT IS NULL OR id < $1) AND ($2::TEXT IS NULL OR target = $2)
                     ORDER BY id DESC LIMIT $3"
                ),
                &[&q.before_id, &q.target, &limit],
            )
            .map_err(db_unavailable)?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                id: r.get(0),
                at_ms: r.get(1),
                actor: r.get(2),
                source: r.get(3),
                action: r.get(4),
                target: r.get(5),
                detail: r.get(6),
            })
            .collect())
    }
}

fn token_row(r: &Row) -> TokenRow {
    TokenRow {
        id: r.get(0),
        name: r.get(1),
        role: r.get(2),
        secret_hash: r.get(3),
        created_ms: r.get(4),
        created_by: r.get(5),
        revoked_ms: r.get(6),
    }
}
