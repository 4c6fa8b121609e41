//! The row operations of a unit of work, on the writer's connection.

use loanwire_domain::process::ProcessKey;
use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::TxRows;
use crate::rows::{IdempotencyRow, LoanRow, ProcessRow};
use crate::{InboxEntry, NewEvent, StoreResult};

pub struct SqliteTx<'c> {
    pub conn: &'c Connection,
}

impl TxRows for SqliteTx<'_> {
    fn process_row(&mut self, key: &ProcessKey) -> StoreResult<Option<ProcessRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT user, user_id, status, submit_ms, complete_ms, fund_products, app_key
             FROM processes WHERE channel_id = ?1 AND process_type = ?2 AND process_no = ?3",
        )?;
        let row = stmt
            .query_row(
                params![key.channel_id, key.process_type, key.process_no],
                |r| process_row(key, r),
            )
            .optional()?;
        Ok(row)
    }

    fn put_process_row(&mut self, p: &ProcessRow, now_ms: i64) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO processes (channel_id, process_type, process_no, user, user_id, status,
                 submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
             ON CONFLICT (channel_id, process_type, process_no) DO UPDATE SET
                 status = excluded.status, submit_ms = excluded.submit_ms,
                 complete_ms = excluded.complete_ms, fund_products = excluded.fund_products,
                 updated_ms = excluded.updated_ms",
        )?;
        stmt.execute(params![
            p.key.channel_id,
            p.key.process_type,
            p.key.process_no,
            p.user,
            p.user_id,
            p.status,
            p.submit_ms,
            p.complete_ms,
            p.fund_products,
            p.app_key,
            now_ms,
        ])?;
        Ok(())
    }

    fn loan_row(&mut self, loan_apply_no: &str) -> StoreResult<Option<LoanRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms, needs_reconciliation
             FROM loans WHERE loan_apply_no = ?1",
        )?;
        Ok(stmt
            .query_row(params![loan_apply_no], |r| loan_row(loan_apply_no, r))
            .optional()?)
    }

    fn put_loan_row(&mut self, l: &LoanRow, now_ms: i64) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
                 last_change_ms, needs_reconciliation, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (loan_apply_no) DO UPDATE SET
                 status = excluded.status, customer_id = excluded.customer_id,
                 institution_loan_no = excluded.institution_loan_no,
                 last_change_ms = excluded.last_change_ms,
                 needs_reconciliation = excluded.needs_reconciliation,
                 updated_ms = excluded.updated_ms",
        )?;
        stmt.execute(params![
            l.loan_apply_no,
            l.status,
            l.app_key,
            l.customer_id,
            l.institution_loan_no,
            l.last_change_ms,
            l.needs_reconciliation,
            now_ms,
        ])?;
        Ok(())
    }

    fn add_loan_flags(&mut self, loan_apply_no: &str, flags: &[String]) -> StoreResult<()> {
        let mut ins = self
            .conn
            .prepare_cached("INSERT INTO loan_flags (loan_apply_no, flag) VALUES (?1, ?2)")?;
        for f in flags {
            ins.execute(params![loan_apply_no, f])?;
        }
        Ok(())
    }

    fn idempotency_row(&mut self, app_key: &str, id: &str) -> StoreResult<Option<IdempotencyRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT fingerprint, response FROM idempotency WHERE app_key = ?1 AND request_id = ?2",
        )?;
        let row = stmt
            .query_row(params![app_key, id], |r| {
                Ok(IdempotencyRow {
                    app_key: app_key.to_string(),
                    request_id: id.to_string(),
                    fingerprint: r.get(0)?,
                    response: r.get(1)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    fn put_idempotency_row(&mut self, row: &IdempotencyRow, now_ms: i64) -> StoreResult<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        stmt.execute(params![
            row.app_key,
            row.request_id,
            row.fingerprint,
            row.response,
            now_ms
        ])?;
        Ok(())
    }

    fn append_inbox_row(&mut self, e: &InboxEntry) -> StoreResult<i64> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, error_code,
                 biz_code, subject, idempotency_key, detail, response)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        stmt.execute(params![
            e.call_id,
            e.received_ms,
            e.app_key,
            e.method,
            e.params,
            e.outcome.as_str(),
            e.error_code,
            e.biz_code,
            e.subject,
            e.idempotency_key,
            e.detail,
            e.response,
        ])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn append_event_row(&mut self, e: &NewEvent) -> StoreResult<()> {
        append_event(self.conn, e)
    }
}

/// Appends an event. Its `seq` is one above the largest left or, once every event is pruned,
/// above the largest pruned (pruning removes the oldest first, so any event left is above every
/// pruned one): a pruned number is never handed out again. This writer is the only one, so
/// numbers follow commit order.
fn append_event(conn: &Connection, e: &NewEvent) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO events (seq, id, type, recorded_ms, app_key, request_id, subject, data)
         VALUES (coalesce((SELECT max(seq) FROM events),
                          (SELECT through_seq FROM events_pruned)) + 1,
                 ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.id,
        e.event_type,
        e.recorded_ms,
        e.app_key,
        e.request_id,
        e.subject,
        e.data
    ])?;
    Ok(())
}

/// Process `key`'s row from `user, user_id, status, submit_ms, complete_ms, fund_products,
/// app_key`.
pub(super) fn process_row(key: &ProcessKey, r: &rusqlite::Row<'_>) -> rusqlite::Result<ProcessRow> {
    Ok(ProcessRow {
        key: key.clone(),
        user: r.get(0)?,
        user_id: r.get(1)?,
        status: r.get(2)?,
        submit_ms: r.get(3)?,
        complete_ms: r.get(4)?,
        fund_products: r.get(5)?,
        app_key: r.get(6)?,
    })
}

/// Loan note `loan_apply_no`'s row from `status, app_key, customer_id, institution_loan_no,
/// last_change_ms, needs_reconciliation`.
pub(super) fn loan_row(loan_apply_no: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<LoanRow> {
    Ok(LoanRow {
        loan_apply_no: loan_apply_no.to_string(),
        status: r.get(0)?,
        app_key: r.get(1)?,
        customer_id: r.get(2)?,
        institution_loan_no: r.get(3)?,
        last_change_ms: r.get(4)?,
        needs_reconciliation: r.get(5)?,
    })
}
