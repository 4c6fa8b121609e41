//! The row operations of a unit of work, inside a writer's transaction.

use std::collections::HashSet;

use loanwire_domain::process::ProcessKey;
use postgres::{Row, Statement, Transaction};

use super::conn::{classify, statement, Statements};
use super::events::SEQ_OF_EVENT;
use crate::backend::TxRows;
use crate::rows::{IdempotencyRow, LoanRow, ProcessRow};
use crate::{InboxEntry, NewEvent, StoreError, StoreResult};

pub struct PgTx<'a, 't> {
    txn: &'a mut Transaction<'t>,
    statements: &'a mut Statements,
    /// Events appended so far in this transaction, by every unit of the batch.
    events: &'a mut u32,
    /// An event waiting to go out with the unit's inbox record, in one statement (one round
    /// trip fewer per applied call), with its ordinal.
    pending_event: Option<(NewEvent, i64)>,
    /// Rows this unit read as absent: written with a plain INSERT, so that a concurrent creator
    /// makes this unit fail and run again instead of being overwritten.
    absent_processes: HashSet<ProcessKey>,
    absent_loans: HashSet<String>,
}

impl<'a, 't> PgTx<'a, 't> {
    pub fn new(
        txn: &'a mut Transaction<'t>,
        statements: &'a mut Statements,
        events: &'a mut u32,
    ) -> Self {
        PgTx {
            txn,
            statements,
            events,
            pending_event: None,
            absent_processes: HashSet::new(),
            absent_loans: HashSet::new(),
        }
    }

    /// Writes an event still waiting for an inbox record to go out with; called after each
    /// unit, so that nothing a unit appended is left behind.
    pub fn finish(&mut self) -> Result<(), StoreError> {
        if let Some((e, ordinal)) = self.pending_event.take() {
            self.execute(
                insert_event_sql(),
                &[
                    &ordinal,
                    &e.id,
                    &e.event_type,
                    &e.recorded_ms,
                    &e.app_key,
                    &e.request_id,
                    &e.subject,
                    &e.data,
                ],
            )?;
        }
        Ok(())
    }

    fn stmt(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        statement(self.statements, self.txn, sql)
    }

    /// Runs a statement; the number of rows it changed.
    fn execute(
        &mut self,
        sql: &'static str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let s = self.stmt(sql)?;
        self.txn.execute(&s, args).map_err(classify)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let s = self.stmt(sql)?;
        self.txn.query_opt(&s, args).map_err(classify)
    }
}

/// Loan note `loan_apply_no`'s row from `status, app_key, customer_id, institution_loan_no,
/// last_change_ms, needs_reconciliation`.
pub(super) fn loan_row(loan_apply_no: &str, r: &Row) -> LoanRow {
    LoanRow {
        loan_apply_no: loan_apply_no.to_string(),
        status: r.get(0),
        app_key: r.get(1),
        customer_id: r.get(2),
        institution_loan_no: r.get(3),
        last_change_ms: r.get(4),
        needs_reconciliation: r.get(5),
    }
}

/// Process `key`'s row from `"user", user_id, status, submit_ms, complete_ms, fund_products,
/// app_key`.
pub(super) fn process_row(key: &ProcessKey, r: &Row) -> ProcessRow {
    ProcessRow {
        key: key.clone(),
        user: r.get(0),
        user_id: r.get(1),
        status: r.get(2),
        submit_ms: r.get(3),
        complete_ms: r.get(4),
        fund_products: r.get(5),
        app_key: r.get(6),
    }
}

impl TxRows for PgTx<'_, '_> {
    fn process_row(&mut self, key: &ProcessKey) -> StoreResult<Option<ProcessRow>> {
        let row = self.query_opt(
            "SELECT \"user\", user_id, status, submit_ms, complete_ms, fund_products, app_key
             FROM processes WHERE channel_id = $1 AND process_type = $2 AND process_no = $3
             FOR UPDATE",
            &[&key.channel_id, &key.process_type, &key.process_no],
        )?;
        if row.is_none() {
            self.absent_processes.insert(key.clone());
        }
        Ok(row.as_ref().map(|r| process_row(key, r)))
    }

    fn put_process_row(&mut self, p: &ProcessRow, now_ms: i64) -> StoreResult<()> {
        let key = &p.key;
        // A row read as present is updated; one read as absent, or found absent by the update
        // (written without being read), is inserted plainly, so that a concurrent creator
        // makes this unit run again instead of being overwritten.
        if !self.absent_processes.contains(key) {
            let updated = self.execute(
                "UPDATE processes SET status = $4, submit_ms = $5, complete_ms = $6, fund_products = $7, updated_ms = $8
                 WHERE channel_id = $1 AND process_type = $2 AND process_no = $3",
                &[
                    &key.channel_id,
                    &key.process_type,
                    &key.process_no,
                    &p.status,
                    &p.submit_ms,
                    &p.complete_ms,
                    &p.fund_products,
                    &now_ms,
                ],
            )?;
            if updated > 0 {
                return Ok(());
            }
        }
        self.execute(
            "INSERT INTO processes (channel_id, process_type, process_no, \"user\", user_id, status,
                 submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            &[
                &key.channel_id,
                &key.process_type,
                &key.process_no,
                &p.user,
                &p.user_id,
                &p.status,
                &p.submit_ms,
                &p.complete_ms,
                &p.fund_products,
                &p.app_key,
                &now_ms,
            ],
        )?;
        self.absent_processes.remove(key);
        Ok(())
    }

    fn loan_row(&mut self, loan_apply_no: &str) -> StoreResult<Option<LoanRow>> {
        let row = self.query_opt(
            "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms, needs_reconciliation
             FROM loans WHERE loan_apply_no = $1 FOR UPDATE",
            &[&loan_apply_no],
        )?;
        if row.is_none() {
            self.absent_loans.insert(loan_apply_no.to_string());
        }
        Ok(row.as_ref().map(|r| loan_row(loan_apply_no, r)))
    }

    fn put_loan_row(&mut self, l: &LoanRow, now_ms: i64) -> StoreResult<()> {
        let loan_apply_no = l.loan_apply_no.as_str();
        // As for processes: update what exists, insert what does not.
        let mut exists = false;
        if !self.absent_loans.contains(loan_apply_no) {
            exists = self.execute(
                "UPDATE loans SET status = $2, customer_id = $3, institution_loan_no = $4, last_change_ms = $5,
                     needs_reconciliation = $6, updated_ms = $7
                 WHERE loan_apply_no = $1",
                &[
                    &loan_apply_no,
                    &l.status,
                    &l.customer_id,
                    &l.institution_loan_no,
                    &l.last_change_ms,
                    &l.needs_reconciliation,
                    &now_ms,
                ],
            )? > 0;
        }
        if !exists {
            self.execute(
                "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
                     last_change_ms, needs_reconciliation, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                &[
                    &loan_apply_no,
                    &l.status,
                    &l.app_key,
                    &l.customer_id,
                    &l.institution_loan_no,
                    &l.last_change_ms,
                    &l.needs_reconciliation,
                    &now_ms,
                ],
            )?;
            self.absent_loans.remove(loan_apply_no);
        }
        Ok(())
    }

    fn add_loan_flags(&mut self, loan_apply_no: &str, flags: &[String]) -> StoreResult<()> {
        for f in flags {
            self.execute(
                "INSERT INTO loan_flags (loan_apply_no, flag) VALUES ($1, $2)",
                &[&loan_apply_no, f],
            )?;
        }
        Ok(())
    }

    fn idempotency_row(&mut self, app_key: &str, id: &str) -> StoreResult<Option<IdempotencyRow>> {
        let row = self.query_opt(
            "SELECT fingerprint, response FROM idempotency WHERE app_key = $1 AND request_id = $2",
            &[&app_key, &id],
        )?;
        Ok(row.map(|r| IdempotencyRow {
            app_key: app_key.to_string(),
            request_id: id.to_string(),
            fingerprint: r.get(0),
            response: r.get(1),
        }))
    }

    fn put_idempotency_row(&mut self, row: &IdempotencyRow, now_ms: i64) -> StoreResult<()> {
        self.execute(
            "INSERT INTO idempotency (app_key, request_id, fingerprint, response, created_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&row.app_key, &row.request_id, &row.fingerprint, &row.response, &now_ms],
        )?;
        Ok(())
    }

    fn append_inbox_row(&mut self, e: &InboxEntry) -> StoreResult<i64> {
        let error_code = e.error_code.map(|c| c as i32);
        let outcome = e.outcome.as_str();
        let mut args: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![
            &e.call_id,
            &e.received_ms,
            &e.app_key,
            &e.method,
            &e.params,
            &outcome,
            &error_code,
            &e.biz_code,
            &e.subject,
            &e.idempotency_key,
            &e.detail,
            &e.response,
        ];
        let pending = self.pending_event.take();
        let sql = match &pending {
            None => INSERT_INBOX,
            Some((ev, ordinal)) => {
                args.extend_from_slice(&[
                    ordinal,
                    &ev.id,
                    &ev.event_type,
                    &ev.recorded_ms,
                    &ev.app_key,
                    &ev.request_id,
                    &ev.subject,
                    &ev.data,
                ]);
                insert_inbox_with_event_sql()
            }
        };
        let s = self.stmt(sql)?;
        let row = self.txn.query_one(&s, &args).map_err(classify)?;
        Ok(row.get(0))
    }

    fn append_event_row(&mut self, e: &NewEvent) -> StoreResult<()> {
        // A second event of the same unit sends the first out alone.
        self.finish()?;
        self.pending_event = Some((e.clone(), i64::from(*self.events)));
        *self.events += 1;
        Ok(())
    }
}

const INSERT_INBOX: &str =
    "INSERT INTO inbox (call_id, received_ms, app_key, method, params, outcome, error_code,
         biz_code, subject, idempotency_key, detail, response)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";

/// The inbox record and the event of its call, in one statement.
fn insert_inbox_with_event_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "WITH event AS (
                 INSERT INTO events (seq, id, type, recorded_ms, app_key, request_id, subject, data)
                 VALUES ({}, $14, $15, $16, $17, $18, $19, $20))
             {INSERT_INBOX}",
            SEQ_OF_EVENT.replace("$1", "$13")
        )
    })
}

/// The event insert, with its `seq` made from the transaction's id.
fn insert_event_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO events (seq, id, type, recorded_ms, app_key, request_id, subject, data)
             VALUES ({SEQ_OF_EVENT}, $2, $3, $4, $5, $6, $7, $8)"
        )
    })
}
