//! The row operations of a unit of work, inside a writer's transaction. Reads of rows the batch
//! read ahead are answered from there (`read_ahead`), others go out at once; writes are held for
//! the batch (`held`).

use std::collections::HashSet;

use loanwire_domain::process::ProcessKey;
use postgres::types::ToSql;
use postgres::{Row, Statement, Transaction};

use super::conn::{classify, statement, Statements};
use super::held::{idempotency_key, loan_key, process_key, Held, Write};
use super::read_ahead::ReadAhead;
use crate::backend::TxRows;
use crate::rows::{IdempotencyRow, LoanRow, ProcessRow};
use crate::{InboxEntry, NewEvent, StoreError, StoreResult};

pub struct PgTx<'a, 't> {
    txn: &'a mut Transaction<'t>,
    statements: &'a mut Statements,
    /// Events appended so far in this transaction, by every unit of the batch.
    events: &'a mut u32,
    /// The batch's writes not yet sent.
    held: &'a mut Held,
    /// The rows the batch read before its units ran, as its units since wrote them.
    ahead: &'a mut ReadAhead,
    /// This unit's index in the batch.
    unit: usize,
    /// Rows this unit read as absent: written with a plain INSERT, so that a concurrent creator
    /// makes this unit fail and run again instead of being overwritten.
    absent_processes: HashSet<ProcessKey>,
    absent_loans: HashSet<String>,
    /// Rows this unit read as present (and locked): their update cannot miss.
    present_processes: HashSet<ProcessKey>,
    present_loans: HashSet<String>,
}

impl<'a, 't> PgTx<'a, 't> {
    pub fn new(
        txn: &'a mut Transaction<'t>,
        statements: &'a mut Statements,
        events: &'a mut u32,
        held: &'a mut Held,
        ahead: &'a mut ReadAhead,
        unit: usize,
    ) -> Self {
        PgTx {
            txn,
            statements,
            events,
            held,
            ahead,
            unit,
            absent_processes: HashSet::new(),
            absent_loans: HashSet::new(),
            present_processes: HashSet::new(),
            present_loans: HashSet::new(),
        }
    }

    /// Whether this unit found the process, which decides how it writes it.
    fn seen_process(&mut self, key: &ProcessKey, present: bool) {
        if present {
            self.present_processes.insert(key.clone());
        } else {
            self.absent_processes.insert(key.clone());
        }
    }

    fn seen_loan(&mut self, loan_apply_no: &str, present: bool) {
        if present {
            self.present_loans.insert(loan_apply_no.to_string());
        } else {
            self.absent_loans.insert(loan_apply_no.to_string());
        }
    }

    /// Sends the held writes if `row` is among them: a read must see them, and a second write
    /// to a row must follow the first.
    fn send_if_held(&mut self, row: &str) -> Result<(), StoreError> {
        if self.held.holds(row) {
            self.send_held()?;
        }
        Ok(())
    }

    fn send_held(&mut self) -> Result<(), StoreError> {
        self.held.send(self.txn, self.statements)
    }

    /// Holds a write to `row`, after sending the held ones if it is among them.
    fn hold(&mut self, row: String, write: Write, now_ms: i64) -> Result<(), StoreError> {
        self.send_if_held(&row)?;
        self.held.write(row, write, now_ms);
        Ok(())
    }

    fn execute_owned(&mut self, sql: &'static str, args: &[Arg]) -> Result<u64, StoreError> {
        let args: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
        self.execute(sql, &args)
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

type Arg = Box<dyn ToSql + Sync + Send>;

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
        if let Some(seen) = self.ahead.process(key) {
            self.seen_process(key, seen.is_some());
            return Ok(seen);
        }
        self.send_if_held(&process_key(key))?;
        let row = self.query_opt(
            "SELECT \"user\", user_id, status, submit_ms, complete_ms, fund_products, app_key
             FROM processes WHERE channel_id = $1 AND process_type = $2 AND process_no = $3
             FOR UPDATE",
            &[&key.channel_id, &key.process_type, &key.process_no],
        )?;
        self.seen_process(key, row.is_some());
        Ok(row.as_ref().map(|r| process_row(key, r)))
    }

    fn put_process_row(&mut self, p: &ProcessRow, now_ms: i64) -> StoreResult<()> {
        let key = &p.key;
        let row = process_key(key);
        // A row read as present (and locked) is updated, one read as absent inserted plainly
        // (a concurrent creator makes the statement, and the batch, fail and run again instead
        // of being overwritten): both are held for the batch.
        self.ahead.wrote_process(p);
        if self.present_processes.contains(key) {
            return self.hold(row, Write::UpdateProcess(p.clone()), now_ms);
        }
        if self.absent_processes.remove(key) {
            self.present_processes.insert(key.clone());
            return self.hold(row, Write::InsertProcess(p.clone()), now_ms);
        }
        // Written without being read: updated if it exists, else inserted plainly.
        self.send_if_held(&row)?;
        if self.execute_owned(UPDATE_PROCESS, &process_update(p, now_ms))? == 0 {
            self.execute_owned(INSERT_PROCESS, &process_insert(p, now_ms))?;
        }
        Ok(())
    }

    fn loan_row(&mut self, loan_apply_no: &str) -> StoreResult<Option<LoanRow>> {
        if let Some(seen) = self.ahead.loan(loan_apply_no) {
            self.seen_loan(loan_apply_no, seen.is_some());
            return Ok(seen);
        }
        self.send_if_held(&loan_key(loan_apply_no))?;
        let row = self.query_opt(
            "SELECT status, app_key, customer_id, institution_loan_no, last_change_ms, needs_reconciliation
             FROM loans WHERE loan_apply_no = $1 FOR UPDATE",
            &[&loan_apply_no],
        )?;
        self.seen_loan(loan_apply_no, row.is_some());
        Ok(row.as_ref().map(|r| loan_row(loan_apply_no, r)))
    }

    fn put_loan_row(&mut self, l: &LoanRow, now_ms: i64) -> StoreResult<()> {
        let loan_apply_no = l.loan_apply_no.as_str();
        let row = loan_key(loan_apply_no);
        // As for processes.
        self.ahead.wrote_loan(l);
        if self.present_loans.contains(loan_apply_no) {
            return self.hold(row, Write::UpdateLoan(l.clone()), now_ms);
        }
        if self.absent_loans.remove(loan_apply_no) {
            self.present_loans.insert(l.loan_apply_no.clone());
            return self.hold(row, Write::InsertLoan(l.clone()), now_ms);
        }
        self.send_if_held(&row)?;
        if self.execute_owned(UPDATE_LOAN, &loan_update(l, now_ms))? == 0 {
            self.execute_owned(INSERT_LOAN, &loan_insert(l, now_ms))?;
        }
        Ok(())
    }

    fn add_loan_flags(&mut self, loan_apply_no: &str, flags: &[String]) -> StoreResult<()> {
        // A flag refers to its loan note, which may be a held insert.
        self.send_if_held(&loan_key(loan_apply_no))?;
        for f in flags {
            self.execute(
                "INSERT INTO loan_flags (loan_apply_no, flag) VALUES ($1, $2)",
                &[&loan_apply_no, f],
            )?;
        }
        Ok(())
    }

    fn idempotency_row(&mut self, app_key: &str, id: &str) -> StoreResult<Option<IdempotencyRow>> {
        if let Some(seen) = self.ahead.idempotency(app_key, id) {
            return Ok(seen);
        }
        self.send_if_held(&idempotency_key(app_key, id))?;
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

    fn idempotency_and_loan_rows(
        &mut self,
        app_key: &str,
        id: &str,
        loan_apply_no: &str,
    ) -> StoreResult<(Option<IdempotencyRow>, Option<LoanRow>)> {
        if let (Some(seen), Some(loan)) = (
            self.ahead.idempotency(app_key, id),
            self.ahead.loan(loan_apply_no),
        ) {
            self.seen_loan(loan_apply_no, loan.is_some());
            return Ok((seen, loan));
        }
        self.send_if_held(&loan_key(loan_apply_no))?;
        self.send_if_held(&idempotency_key(app_key, id))?;
        // One row always: the loan note's columns are NULL when it does not exist (its status
        // never is otherwise), the idempotency record's likewise.
        let row = self.query_opt(
            "WITH loan AS MATERIALIZED (
                 SELECT status, app_key, customer_id, institution_loan_no, last_change_ms,
                     needs_reconciliation
                 FROM loans WHERE loan_apply_no = $3 FOR UPDATE)
             SELECT l.status, l.app_key, l.customer_id, l.institution_loan_no, l.last_change_ms,
                 l.needs_reconciliation, i.fingerprint, i.response
             FROM (SELECT 1) AS one
             LEFT JOIN loan AS l ON true
             LEFT JOIN idempotency AS i ON i.app_key = $1 AND i.request_id = $2",
            &[&app_key, &id, &loan_apply_no],
        )?;
        let Some(r) = row else {
            return Err(StoreError::Unavailable(
                "reading a loan note and its request id returned no row".into(),
            ));
        };
        let loan = r
            .get::<_, Option<String>>(0)
            .map(|_| loan_row(loan_apply_no, &r));
        self.seen_loan(loan_apply_no, loan.is_some());
        let seen = r
            .get::<_, Option<String>>(6)
            .map(|fingerprint| IdempotencyRow {
                app_key: app_key.to_string(),
                request_id: id.to_string(),
                fingerprint,
                response: r.get(7),
            });
        Ok((seen, loan))
    }

    fn put_idempotency_row(&mut self, row: &IdempotencyRow, now_ms: i64) -> StoreResult<()> {
        self.ahead.wrote_idempotency(row);
        self.hold(
            idempotency_key(&row.app_key, &row.request_id),
            Write::InsertIdempotency(row.clone()),
            now_ms,
        )
    }

    /// Held for the batch: the record's id is known once the batch's writes are sent, and the
    /// writer puts it into the unit's answer then.
    fn append_inbox_row(&mut self, e: &InboxEntry) -> StoreResult<i64> {
        self.held.inbox(e.clone(), self.unit);
        Ok(0)
    }

    fn append_event_row(&mut self, e: &NewEvent) -> StoreResult<()> {
        self.held.event(e.clone(), i64::from(*self.events));
        *self.events += 1;
        Ok(())
    }
}

fn process_update(p: &ProcessRow, now_ms: i64) -> Vec<Arg> {
    let k = &p.key;
    vec![
        Box::new(k.channel_id.clone()),
        Box::new(k.process_type.clone()),
        Box::new(k.process_no.clone()),
        Box::new(p.status.clone()),
        Box::new(p.submit_ms),
        Box::new(p.complete_ms),
        Box::new(p.fund_products.clone()),
        Box::new(now_ms),
    ]
}

fn process_insert(p: &ProcessRow, now_ms: i64) -> Vec<Arg> {
    let k = &p.key;
    vec![
        Box::new(k.channel_id.clone()),
        Box::new(k.process_type.clone()),
        Box::new(k.process_no.clone()),
        Box::new(p.user.clone()),
        Box::new(p.user_id),
        Box::new(p.status.clone()),
        Box::new(p.submit_ms),
        Box::new(p.complete_ms),
        Box::new(p.fund_products.clone()),
        Box::new(p.app_key.clone()),
        Box::new(now_ms),
    ]
}

fn loan_update(l: &LoanRow, now_ms: i64) -> Vec<Arg> {
    vec![
        Box::new(l.loan_apply_no.clone()),
        Box::new(l.status.clone()),
        Box::new(l.customer_id.clone()),
        Box::new(l.institution_loan_no.clone()),
        Box::new(l.last_change_ms),
        Box::new(l.needs_reconciliation),
        Box::new(now_ms),
    ]
}

fn loan_insert(l: &LoanRow, now_ms: i64) -> Vec<Arg> {
    vec![
        Box::new(l.loan_apply_no.clone()),
        Box::new(l.status.clone()),
        Box::new(l.app_key.clone()),
        Box::new(l.customer_id.clone()),
        Box::new(l.institution_loan_no.clone()),
        Box::new(l.last_change_ms),
        Box::new(l.needs_reconciliation),
        Box::new(now_ms),
    ]
}

const UPDATE_PROCESS: &str = "UPDATE processes SET status = $4, submit_ms = $5, complete_ms = $6, fund_products = $7, updated_ms = $8
     WHERE channel_id = $1 AND process_type = $2 AND process_no = $3";

const INSERT_PROCESS: &str =
    "INSERT INTO processes (channel_id, process_type, process_no, \"user\", user_id, status,
         submit_ms, complete_ms, fund_products, app_key, created_ms, updated_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";

const UPDATE_LOAN: &str =
    "UPDATE loans SET status = $2, customer_id = $3, institution_loan_no = $4, last_change_ms = $5,
         needs_reconciliation = $6, updated_ms = $7
     WHERE loan_apply_no = $1";

const INSERT_LOAN: &str =
    "INSERT INTO loans (loan_apply_no, status, app_key, customer_id, institution_loan_no,
         last_change_ms, needs_reconciliation, created_ms, updated_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
